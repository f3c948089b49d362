/**
 * Minimal, strict RIFF/WAVE reader and writer for the two encodings this project meets:
 * PCM16 little-endian (format 1) and G.711 mu-law (format 7), plain or WAVE_FORMAT_EXTENSIBLE.
 * Format only: no resampling or channel mixing lives here.
 */
import { mulawDecode, mulawEncode } from '../../audio/g711.js';

export type WavEncoding = 'pcm16' | 'mulaw';

export interface WavFormat {
  sampleRate: number;
  channels: number;
}

export interface WavAudio extends WavFormat {
  /** Interleaved PCM16 samples, decoded from whatever the file stored. */
  samples: Int16Array;
}

export interface DecodedWav extends WavAudio {
  /** How the samples were stored in the file. */
  encoding: WavEncoding;
  /**
   * The data chunk exactly as stored (a copy). For mu-law files these are the original codes,
   * which a decode/encode round trip would not preserve (0x7F and 0xFF both decode to 0).
   */
  data: Uint8Array;
}

export class WavFormatError extends Error {
  override name = 'WavFormatError';
}

const FORMAT_PCM = 0x0001;
const FORMAT_MULAW = 0x0007;
const FORMAT_EXTENSIBLE = 0xfffe;
/** KSDATAFORMAT_SUBTYPE_* GUIDs share this tail after their 16-bit format code (little-endian). */
const EXTENSIBLE_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

const MAX_CHANNELS = 64;

function fourcc(view: DataView, offset: number): string {
  return String.fromCharCode(
    view.getUint8(offset),
    view.getUint8(offset + 1),
    view.getUint8(offset + 2),
    view.getUint8(offset + 3),
  );
}

interface FmtChunk {
  encoding: WavEncoding;
  channels: number;
  sampleRate: number;
  blockAlign: number;
}

function parseFmt(view: DataView, start: number, size: number): FmtChunk {
  if (size < 16) throw new WavFormatError(`fmt chunk is ${size} bytes; at least 16 required`);
  let formatTag = view.getUint16(start, true);
  const channels = view.getUint16(start + 2, true);
  const sampleRate = view.getUint32(start + 4, true);
  const byteRate = view.getUint32(start + 8, true);
  const blockAlign = view.getUint16(start + 12, true);
  const bitsPerSample = view.getUint16(start + 14, true);

  if (formatTag === FORMAT_EXTENSIBLE) {
    if (size < 40) throw new WavFormatError(`WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes; 40 required`);
    const cbSize = view.getUint16(start + 16, true);
    if (cbSize < 22) throw new WavFormatError(`WAVE_FORMAT_EXTENSIBLE cbSize is ${cbSize}; 22 required`);
    const validBits = view.getUint16(start + 18, true);
    if (validBits !== bitsPerSample) {
      throw new WavFormatError(`${validBits} valid bits in ${bitsPerSample}-bit containers are not supported`);
    }
    const sub = start + 24;
    for (let i = 0; i < EXTENSIBLE_GUID_TAIL.length; i++) {
      if (view.getUint8(sub + 2 + i) !== EXTENSIBLE_GUID_TAIL[i]) {
        throw new WavFormatError('WAVE_FORMAT_EXTENSIBLE sub-format GUID is not a standard audio format');
      }
    }
    formatTag = view.getUint16(sub, true);
  }

  let encoding: WavEncoding;
  let bytesPerSample: number;
  if (formatTag === FORMAT_PCM) {
    if (bitsPerSample !== 16) throw new WavFormatError(`PCM with ${bitsPerSample} bits per sample is not supported (16 only)`);
    encoding = 'pcm16';
    bytesPerSample = 2;
  } else if (formatTag === FORMAT_MULAW) {
    if (bitsPerSample !== 8) throw new WavFormatError(`mu-law with ${bitsPerSample} bits per sample is invalid (8 required)`);
    encoding = 'mulaw';
    bytesPerSample = 1;
  } else {
    throw new WavFormatError(`unsupported WAV format tag 0x${formatTag.toString(16).padStart(4, '0')} (PCM16 and mu-law only)`);
  }

  if (channels < 1 || channels > MAX_CHANNELS) throw new WavFormatError(`invalid channel count ${channels}`);
  if (sampleRate < 1) throw new WavFormatError('sample rate is 0');
  if (blockAlign !== channels * bytesPerSample) {
    throw new WavFormatError(`block align ${blockAlign} does not match ${channels} channel(s) of ${bytesPerSample} byte(s)`);
  }
  if (byteRate !== sampleRate * blockAlign) {
    throw new WavFormatError(`byte rate ${byteRate} does not match ${sampleRate} Hz x ${blockAlign} bytes`);
  }
  return { encoding, channels, sampleRate, blockAlign };
}

/**
 * Parse a WAV file. Unknown chunks (LIST, fact, cue, ...) are skipped; sizes are validated
 * against the buffer so truncated or padded-with-garbage files fail loudly rather than decode noise.
 */
export function readWav(input: Uint8Array): DecodedWav {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (input.byteLength < 12) throw new WavFormatError(`not a WAV file: ${input.byteLength} bytes is shorter than a RIFF header`);
  const riff = fourcc(view, 0);
  if (riff === 'RIFX') throw new WavFormatError('big-endian RIFX files are not supported');
  if (riff === 'RF64') throw new WavFormatError('RF64 files are not supported');
  if (riff !== 'RIFF') throw new WavFormatError('not a WAV file: missing RIFF header');
  if (fourcc(view, 8) !== 'WAVE') throw new WavFormatError(`not a WAV file: RIFF form type is "${fourcc(view, 8)}", not "WAVE"`);

  const riffSize = view.getUint32(4, true);
  const riffEnd = 8 + riffSize;
  if (riffEnd > input.byteLength) {
    throw new WavFormatError(`truncated WAV file: RIFF header declares ${riffEnd} bytes but only ${input.byteLength} are present`);
  }

  let fmt: FmtChunk | undefined;
  let data: Uint8Array | undefined;
  let offset = 12;
  while (offset < riffEnd) {
    if (offset + 8 > riffEnd) throw new WavFormatError(`truncated chunk header at byte ${offset}`);
    const id = fourcc(view, offset);
    const size = view.getUint32(offset + 4, true);
    const bodyStart = offset + 8;
    const bodyEnd = bodyStart + size;
    if (bodyEnd > riffEnd) {
      throw new WavFormatError(`truncated "${id}" chunk: declares ${size} bytes but only ${riffEnd - bodyStart} remain`);
    }
    if (id === 'fmt ') {
      if (fmt) throw new WavFormatError('duplicate fmt chunk');
      fmt = parseFmt(view, bodyStart, size);
    } else if (id === 'data') {
      if (data) throw new WavFormatError('duplicate data chunk');
      if (!fmt) throw new WavFormatError('data chunk appears before the fmt chunk');
      data = input.slice(bodyStart, bodyEnd);
    }
    // Chunks are word-aligned; many writers omit the pad byte after a final odd-sized chunk.
    offset = bodyEnd + (size % 2 === 1 && bodyEnd < riffEnd ? 1 : 0);
  }

  if (!fmt) throw new WavFormatError('no fmt chunk');
  if (!data) throw new WavFormatError('no data chunk');
  if (data.byteLength % fmt.blockAlign !== 0) {
    throw new WavFormatError(`data chunk of ${data.byteLength} bytes is not a whole number of ${fmt.blockAlign}-byte frames`);
  }

  let samples: Int16Array;
  if (fmt.encoding === 'pcm16') {
    samples = new Int16Array(data.byteLength / 2);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < samples.length; i++) samples[i] = dv.getInt16(i * 2, true);
  } else {
    samples = new Int16Array(data.length);
    mulawDecode(data, samples);
  }
  return { sampleRate: fmt.sampleRate, channels: fmt.channels, encoding: fmt.encoding, samples, data };
}

function checkFormat(format: WavFormat, frameSamples: number): void {
  if (!Number.isInteger(format.sampleRate) || format.sampleRate < 1 || format.sampleRate > 0xffffffff) {
    throw new RangeError(`invalid sample rate ${format.sampleRate}`);
  }
  // More than two channels needs WAVE_FORMAT_EXTENSIBLE with a channel mask; nothing here needs it.
  if (format.channels !== 1 && format.channels !== 2) throw new RangeError(`only mono or stereo can be written, not ${format.channels} channels`);
  if (frameSamples % format.channels !== 0) {
    throw new RangeError(`${frameSamples} interleaved samples are not a whole number of ${format.channels}-channel frames`);
  }
}

interface HeaderSpec {
  formatTag: number;
  bitsPerSample: number;
  /** Non-PCM formats carry cbSize and a fact chunk (sample frames), as the WAVE spec requires. */
  nonPcm: boolean;
}

/** The RIFF header of a file whose data chunk holds `dataBytes` bytes (`frames` sample frames). */
function containerHeader(format: WavFormat, spec: HeaderSpec, dataBytes: number, frames: number): Uint8Array {
  const fmtSize = spec.nonPcm ? 18 : 16;
  const factSize = spec.nonPcm ? 12 : 0;
  const headerSize = 12 + 8 + fmtSize + factSize + 8;
  const total = headerSize + dataBytes + (dataBytes % 2);
  if (total - 8 > 0xffffffff) throw new RangeError('audio too long for a RIFF file');
  const out = new Uint8Array(headerSize);
  const view = new DataView(out.buffer);
  const ascii = (offset: number, s: string): void => {
    for (let i = 0; i < 4; i++) view.setUint8(offset + i, s.charCodeAt(i));
  };
  const blockAlign = format.channels * (spec.bitsPerSample / 8);
  ascii(0, 'RIFF');
  view.setUint32(4, total - 8, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, fmtSize, true);
  view.setUint16(20, spec.formatTag, true);
  view.setUint16(22, format.channels, true);
  view.setUint32(24, format.sampleRate, true);
  view.setUint32(28, format.sampleRate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, spec.bitsPerSample, true);
  let offset = 36;
  if (spec.nonPcm) {
    view.setUint16(offset, 0, true);
    offset += 2;
    ascii(offset, 'fact');
    view.setUint32(offset + 4, 4, true);
    view.setUint32(offset + 8, frames, true);
    offset += 12;
  }
  ascii(offset, 'data');
  view.setUint32(offset + 4, dataBytes, true);
  return out;
}

function writeContainer(format: WavFormat, spec: HeaderSpec, body: Uint8Array, frames: number): Uint8Array {
  const header = containerHeader(format, spec, body.byteLength, frames);
  const out = new Uint8Array(header.byteLength + body.byteLength + (body.byteLength % 2));
  out.set(header);
  out.set(body, header.byteLength);
  return out;
}

/** PCM16 samples as a WAV data chunk stores them: little-endian, whatever the machine. */
export function pcm16Bytes(samples: Int16Array): Uint8Array {
  const body = new Uint8Array(samples.length * 2);
  const dv = new DataView(body.buffer);
  for (let i = 0; i < samples.length; i++) dv.setInt16(i * 2, samples[i] ?? 0, true);
  return body;
}

/**
 * The 44-byte header of a format-1 PCM16 file with `dataBytes` of samples: for a file written as
 * a stream, the header goes first with the final size patched in at the end.
 */
export function pcm16WavHeader(format: WavFormat, dataBytes: number): Uint8Array {
  return containerHeader(format, { formatTag: FORMAT_PCM, bitsPerSample: 16, nonPcm: false }, dataBytes, dataBytes / 2 / format.channels);
}

/** Write interleaved PCM16 samples as a format-1 WAV file. */
export function writeWavPcm16(samples: Int16Array, format: WavFormat): Uint8Array {
  checkFormat(format, samples.length);
  return writeContainer(format, { formatTag: FORMAT_PCM, bitsPerSample: 16, nonPcm: false }, pcm16Bytes(samples), samples.length / format.channels);
}

/** Write already-encoded mu-law bytes (interleaved) as a format-7 WAV file. */
export function writeWavMulaw(bytes: Uint8Array, format: WavFormat): Uint8Array {
  checkFormat(format, bytes.length);
  return writeContainer(format, { formatTag: FORMAT_MULAW, bitsPerSample: 8, nonPcm: true }, bytes, bytes.length / format.channels);
}

/** Encode interleaved PCM16 to mu-law and write it as a format-7 WAV file. */
export function writeWavMulawFromPcm16(samples: Int16Array, format: WavFormat): Uint8Array {
  const encoded = new Uint8Array(samples.length);
  mulawEncode(samples, encoded);
  return writeWavMulaw(encoded, format);
}
