/**
 * The two audio formats on the wire, named once: Twilio's 8 kHz mu-law (one byte per sample) and
 * the Realtime API's 24 kHz PCM16 little-endian (two bytes per sample), both base64 in JSON.
 */

/** Twilio Media Streams: audio/x-mulaw at 8 kHz, mono. */
export const MULAW_RATE_HZ = 8000;
/** 8 kHz, one byte per sample. */
export const MULAW_BYTES_PER_MS = 8;
/** Twilio sends (and paces) caller audio in 20 ms frames. */
export const FRAME_MS = 20;
export const FRAME_BYTES = MULAW_BYTES_PER_MS * FRAME_MS;
/** Realtime audio/pcm at 24 kHz: 24 samples of 2 bytes per ms. */
export const PCM24K_BYTES_PER_MS = 48;

/** Bytes a base64 string decodes to, without decoding it. */
export function base64ByteLength(b64: string): number {
  const len = b64.length;
  if (len === 0) return 0;
  const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (len * 3) / 4 - padding;
}
