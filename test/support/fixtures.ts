/**
 * Audio fixtures for tests (see test/fixtures/audio/README.md for how they were made).
 * Formats are checked on load so a regenerated fixture in the wrong format fails here, not as
 * mysterious VAD or playback behaviour in a test far away.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readWav, type DecodedWav } from '../../src/tooling/audio/wav.js';

export type CallerFixture = 'caller-question' | 'caller-interrupt' | 'caller-yes';
export type AgentFixture = 'agent-answer';

const AUDIO_DIR = fileURLToPath(new URL('../fixtures/audio/', import.meta.url));

function load(name: string): DecodedWav {
  return readWav(readFileSync(`${AUDIO_DIR}${name}.wav`));
}

function describe(w: DecodedWav): string {
  return `${w.encoding} ${w.sampleRate} Hz ${w.channels} ch`;
}

/** 8 kHz mono mu-law bytes of a caller utterance, exactly as stored (ready for media frames). */
export function loadCallerMulaw(name: CallerFixture | (string & {})): Uint8Array {
  const w = load(name);
  if (w.encoding !== 'mulaw' || w.sampleRate !== 8000 || w.channels !== 1) {
    throw new Error(`fixture ${name}.wav must be 8 kHz mono mu-law, got ${describe(w)}`);
  }
  return w.data;
}

/** 24 kHz mono PCM16 samples of an agent answer (what the Realtime API would stream). */
export function loadAgentPcm24k(name: AgentFixture | (string & {})): Int16Array {
  const w = load(name);
  if (w.encoding !== 'pcm16' || w.sampleRate !== 24000 || w.channels !== 1) {
    throw new Error(`fixture ${name}.wav must be 24 kHz mono PCM16, got ${describe(w)}`);
  }
  return w.samples;
}
