/**
 * The bytes of the recorder's stereo PCM16 WAV, written as a stream: the 44-byte header goes first
 * with sizes 0, the samples follow as the call goes, and the header is rewritten with the final
 * sizes at the end (audio-recorder.ts).
 *
 * Hand-written rather than wavefile (which src/tooling/audio/wav.ts uses): wavefile only serialises
 * a whole file from samples it holds (toBuffer() takes the sizes from them), so it cannot write a
 * header for data still to come without the whole call in memory. The layout is the canonical one:
 * RIFF, a 16-byte format-1 fmt chunk, then the data chunk.
 */
export interface PcmFormat {
  sampleRate: number;
  channels: number;
}

export const PCM16_WAV_HEADER_BYTES = 44;

/** The header of a PCM16 file whose data chunk holds `dataBytes` bytes. */
export function pcm16WavHeader(format: PcmFormat, dataBytes: number): Uint8Array {
  const out = new Uint8Array(PCM16_WAV_HEADER_BYTES);
  const view = new DataView(out.buffer);
  const ascii = (at: number, s: string): void => out.set([...s].map((c) => c.charCodeAt(0)), at);
  const blockAlign = format.channels * 2;
  ascii(0, 'RIFF');
  // An odd data chunk would be followed by a pad byte; PCM16 data never is odd.
  view.setUint32(4, PCM16_WAV_HEADER_BYTES - 8 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // WAVE_FORMAT_PCM
  view.setUint16(22, format.channels, true);
  view.setUint32(24, format.sampleRate, true);
  view.setUint32(28, format.sampleRate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, 16, true);
  ascii(36, 'data');
  view.setUint32(40, dataBytes, true);
  return out;
}

/** PCM16 samples as a WAV data chunk stores them: little-endian, whatever the machine. */
export function pcm16Bytes(samples: Int16Array): Uint8Array {
  const body = new Uint8Array(samples.length * 2);
  const view = new DataView(body.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i] ?? 0, true);
  return body;
}
