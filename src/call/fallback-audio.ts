/**
 * The audio a call plays without a model: a hold tone (synthesised here) and the apology
 * (pre-rendered speech in voice/unavailable.ulaw, 8 kHz mu-law, made with espeak-ng and sox).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MULAW_BYTES_PER_MS, MULAW_RATE_HZ } from '../audio/wire-format.js';
import { mulawEncode } from '../audio/g711.js';

export interface FallbackAudio {
  /** base64 mu-law, one period of the hold tone */
  holdTone: string;
  /** base64 mu-law, the spoken apology */
  apology: string;
  apologyMs: number;
}

const SAMPLE_RATE_HZ = MULAW_RATE_HZ;
/** Two soft 440 Hz pips: clearly "still connecting", not a ring or a busy signal. */
const PIP_HZ = 440;
const PIP_MS = 150;
const PIP_GAP_MS = 150;
/** -18 dBFS: audible over a phone line without being loud. */
const PIP_AMPLITUDE = 32767 * 10 ** (-18 / 20);
/** Ramps on each pip so it starts and stops without a click. */
const PIP_RAMP_MS = 10;

function holdTonePcm(): Int16Array {
  const pip = (PIP_MS * SAMPLE_RATE_HZ) / 1000;
  const gap = (PIP_GAP_MS * SAMPLE_RATE_HZ) / 1000;
  const ramp = (PIP_RAMP_MS * SAMPLE_RATE_HZ) / 1000;
  const pcm = new Int16Array(2 * pip + gap);
  for (const start of [0, pip + gap]) {
    for (let i = 0; i < pip; i++) {
      const envelope = Math.min(1, i / ramp, (pip - 1 - i) / ramp);
      pcm[start + i] = Math.round(PIP_AMPLITUDE * envelope * Math.sin((2 * Math.PI * PIP_HZ * i) / SAMPLE_RATE_HZ));
    }
  }
  return pcm;
}

const MODULE_DIR = dirname(fileURLToPath(import.meta.url));
/** Next to this module (src/ under tsx or vitest), else the sources' copy for dist/call/ (tsc does not copy it). */
const APOLOGY_PATHS = [join(MODULE_DIR, 'voice', 'unavailable.ulaw'), join(MODULE_DIR, '..', '..', 'src', 'call', 'voice', 'unavailable.ulaw')];

/** Reads the apology once; throws when the clip is missing (an install without the voice folder). */
export function loadFallbackAudio(): FallbackAudio {
  const path = APOLOGY_PATHS.find((p) => existsSync(p));
  if (path === undefined) throw new Error(`fallback clip unavailable.ulaw not found in ${APOLOGY_PATHS.join(' or ')}`);
  const apology = readFileSync(path);
  const pcm = holdTonePcm();
  const tone = Buffer.alloc(pcm.length);
  mulawEncode(pcm, tone);
  return { holdTone: tone.toString('base64'), apology: apology.toString('base64'), apologyMs: apology.length / MULAW_BYTES_PER_MS };
}
