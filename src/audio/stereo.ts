/**
 * Two mu-law tracks on one timeline as one stereo PCM16 picture: the caller left, what the caller
 * heard right. The replay's heard.wav and RECORD_AUDIO's recordings are both drawn with it.
 */
import { mulawDecode } from './g711.js';

/** Interleaved stereo PCM16 of `left` and `right`; the shorter is padded with silence. */
export function mulawStereoPcm16(left: Uint8Array, right: Uint8Array): Int16Array {
  const frames = Math.max(left.length, right.length);
  const l = new Int16Array(left.length);
  const r = new Int16Array(right.length);
  mulawDecode(left, l);
  mulawDecode(right, r);
  const stereo = new Int16Array(frames * 2);
  for (let i = 0; i < frames; i++) {
    stereo[2 * i] = l[i] ?? 0;
    stereo[2 * i + 1] = r[i] ?? 0;
  }
  return stereo;
}
