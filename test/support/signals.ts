/** Test signals: tones in the formats the tests feed the bridge and its tooling. */
import { mulawEncode } from '../../src/audio/g711.js';

/**
 * 8 kHz mu-law of `lengthMs`, silent but for a sine in each [fromMs, toMs) span: a recording of
 * a caller (or an agent) who speaks exactly then.
 */
export function mulawToneSpans(lengthMs: number, spans: Array<[number, number]>, { amplitude = 8000, hz = 440 } = {}): Uint8Array {
  const pcm = new Int16Array(lengthMs * 8);
  for (const [from, to] of spans) for (let i = from * 8; i < to * 8; i++) pcm[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / 8000));
  const out = new Uint8Array(pcm.length);
  mulawEncode(pcm, out);
  return out;
}
