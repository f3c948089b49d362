/**
 * WAV files for the tooling: the two encodings this project meets, PCM16 little-endian (format 1)
 * and G.711 mu-law (format 7), plain or WAVE_FORMAT_EXTENSIBLE. The container is read and written
 * by `wavefile`; what is here is what this project accepts, and the guards for what wavefile 11
 * gets wrong (each marked "wavefile:"). Format only: no resampling or channel mixing lives here.
 */
// wavefile is a UMD bundle: Node's ESM loader exposes it as the default export only.
import wavefile from 'wavefile';
import { mulawDecode, mulawEncode } from '../../audio/g711.js';
import { pcm16Bytes } from '../../recording/wav-header.js';

// The recorder's streaming header lives with the recorder (product code); re-exported for the tooling.
export { pcm16Bytes, pcm16WavHeader } from '../../recording/wav-header.js';

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

/** The parts of wavefile's `fmt` and `data` this module reads (its types declare them as `object`). */
interface WaveFileFmt {
  chunkSize: number;
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  byteRate: number;
  blockAlign: number;
  bitsPerSample: number;
  cbSize: number;
  validBitsPerSample: number;
  /** The sub-format GUID as four little-endian 32-bit words. */
  subformat: number[];
}

interface WaveFileData {
  chunkSize: number;
  samples: Uint8Array;
}

const FORMAT_PCM = 0x0001;
const FORMAT_MULAW = 0x0007;
const FORMAT_EXTENSIBLE = 0xfffe;
/** Words 2-4 of every KSDATAFORMAT_SUBTYPE_* GUID; word 1 is the 16-bit format code. */
const EXTENSIBLE_GUID_TAIL = [0x00100000, 0xaa000080, 0x719b3800];
const MAX_CHANNELS = 64;

function fourcc(input: Uint8Array, at: number): string {
  return String.fromCharCode(...input.subarray(at, at + 4));
}

/** What the fmt chunk says, limited to what this project decodes. */
function checkFmt(fmt: WaveFileFmt): { encoding: WavEncoding; blockAlign: number } {
  // wavefile: reads the 16 basic fields (and the extension) whatever the chunk's size, past its end.
  if (fmt.chunkSize < 16) throw new WavFormatError(`fmt chunk is ${fmt.chunkSize} bytes; at least 16 required`);
  const { numChannels: channels, sampleRate, blockAlign, bitsPerSample } = fmt;
  let formatTag = fmt.audioFormat;
  if (formatTag === FORMAT_EXTENSIBLE) {
    if (fmt.chunkSize < 40) throw new WavFormatError(`WAVE_FORMAT_EXTENSIBLE fmt chunk is ${fmt.chunkSize} bytes; 40 required`);
    if (fmt.cbSize < 22) throw new WavFormatError(`WAVE_FORMAT_EXTENSIBLE cbSize is ${fmt.cbSize}; 22 required`);
    if (fmt.validBitsPerSample !== bitsPerSample) {
      throw new WavFormatError(`${fmt.validBitsPerSample} valid bits in ${bitsPerSample}-bit containers are not supported`);
    }
    // wavefile: ignores the sub-format (it decodes by bit depth alone, so float or mu-law
    // extensible files would come out as integer PCM); the format code is its first word.
    const [code = -1, ...tail] = fmt.subformat;
    if (code >>> 16 !== 0 || EXTENSIBLE_GUID_TAIL.some((word, i) => tail[i] !== word)) {
      throw new WavFormatError('WAVE_FORMAT_EXTENSIBLE sub-format GUID is not a standard audio format');
    }
    formatTag = code;
  }

  let encoding: WavEncoding;
  if (formatTag === FORMAT_PCM) {
    if (bitsPerSample !== 16) throw new WavFormatError(`PCM with ${bitsPerSample} bits per sample is not supported (16 only)`);
    encoding = 'pcm16';
  } else if (formatTag === FORMAT_MULAW) {
    if (bitsPerSample !== 8) throw new WavFormatError(`mu-law with ${bitsPerSample} bits per sample is invalid (8 required)`);
    encoding = 'mulaw';
  } else {
    throw new WavFormatError(`unsupported WAV format tag 0x${formatTag.toString(16).padStart(4, '0')} (PCM16 and mu-law only)`);
  }
  const bytesPerSample = bitsPerSample / 8;
  if (channels < 1 || channels > MAX_CHANNELS) throw new WavFormatError(`invalid channel count ${channels}`);
  if (sampleRate < 1) throw new WavFormatError('sample rate is 0');
  if (blockAlign !== channels * bytesPerSample) {
    throw new WavFormatError(`block align ${blockAlign} does not match ${channels} channel(s) of ${bytesPerSample} byte(s)`);
  }
  if (fmt.byteRate !== sampleRate * blockAlign) {
    throw new WavFormatError(`byte rate ${fmt.byteRate} does not match ${sampleRate} Hz x ${blockAlign} bytes`);
  }
  return { encoding, blockAlign };
}

/**
 * Parse a WAV file. Unknown chunks (LIST, fact, cue, ...) are skipped, truncated files fail loudly
 * rather than decode what is left, and anything after the RIFF chunk is ignored.
 *
 * Not guarded: wavefile parses cue and smpl chunks eagerly and trusts their point/loop counts, so a
 * corrupt count makes even a tiny file slow to read (a cue chunk claiming 16M points: 71 s). Fine
 * for the tooling's own and chosen files; do not point this at untrusted uploads.
 */
export function readWav(input: Uint8Array): DecodedWav {
  // The RIFF header is checked here for clearer messages than wavefile's ("Not a supported format.")
  // and because RIFX/RF64, which wavefile reads, are not decoded here.
  if (input.byteLength < 12) throw new WavFormatError(`not a WAV file: ${input.byteLength} bytes is shorter than a RIFF header`);
  const container = fourcc(input, 0);
  if (container === 'RIFX') throw new WavFormatError('big-endian RIFX files are not supported');
  if (container === 'RF64') throw new WavFormatError('RF64 files are not supported');
  if (container !== 'RIFF') throw new WavFormatError('not a WAV file: missing RIFF header');
  if (fourcc(input, 8) !== 'WAVE') throw new WavFormatError(`not a WAV file: RIFF form type is "${fourcc(input, 8)}", not "WAVE"`);
  // wavefile: ignores the RIFF size, so a file cut short reads as a shorter one.
  const riffEnd = 8 + new DataView(input.buffer, input.byteOffset, input.byteLength).getUint32(4, true);
  if (riffEnd > input.byteLength) {
    throw new WavFormatError(`truncated WAV file: RIFF header declares ${riffEnd} bytes but only ${input.byteLength} are present`);
  }

  const wav = new wavefile.WaveFile();
  try {
    wav.fromBuffer(input.subarray(0, riffEnd));
  } catch (err) {
    throw new WavFormatError(`not a readable WAV file: ${(err as Error).message}`);
  }
  const { encoding, blockAlign } = checkFmt(wav.fmt as WaveFileFmt);
  const { chunkSize, samples: stored } = wav.data as WaveFileData;
  // wavefile: cuts the data chunk to what is there, silently.
  if (stored.byteLength < chunkSize) {
    throw new WavFormatError(`truncated "data" chunk: declares ${chunkSize} bytes but only ${stored.byteLength} remain`);
  }
  // wavefile: includes the pad byte after an odd-sized data chunk (a spurious last sample);
  // `new Uint8Array` also makes the copy a plain array where wavefile's slice of a Buffer is a view.
  const data = new Uint8Array(stored.subarray(0, chunkSize));
  if (data.byteLength % blockAlign !== 0) {
    throw new WavFormatError(`data chunk of ${data.byteLength} bytes is not a whole number of ${blockAlign}-byte frames`);
  }

  // Decoded here rather than with wavefile's getSamples()/fromMuLaw(): several times faster, and
  // mu-law goes through the bridge's own G.711 tables.
  const samples = new Int16Array(data.byteLength / (encoding === 'pcm16' ? 2 : 1));
  if (encoding === 'pcm16') {
    const view = new DataView(data.buffer);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true);
  } else {
    mulawDecode(data, samples);
  }
  const fmt = wav.fmt as WaveFileFmt;
  return { sampleRate: fmt.sampleRate, channels: fmt.numChannels, encoding, samples, data };
}

function checkFormat(format: WavFormat, frameSamples: number): void {
  if (!Number.isInteger(format.sampleRate) || format.sampleRate < 1 || format.sampleRate > 0xffffffff) {
    throw new RangeError(`invalid sample rate ${format.sampleRate}`);
  }
  // wavefile would write more than two channels as WAVE_FORMAT_EXTENSIBLE; nothing here needs it.
  if (format.channels !== 1 && format.channels !== 2) throw new RangeError(`only mono or stereo can be written, not ${format.channels} channels`);
  if (frameSamples % format.channels !== 0) {
    throw new RangeError(`${frameSamples} interleaved samples are not a whole number of ${format.channels}-channel frames`);
  }
}

/** The finished file of a WaveFile set up from scratch. */
function fileBytes(wav: InstanceType<typeof wavefile.WaveFile>): Uint8Array {
  const file = wav.toBuffer();
  if (file.byteLength % 2 === 0) return file;
  // wavefile: leaves out the pad byte after an odd-sized data chunk, which the WAVE spec requires.
  // The data chunk is the last one it writes, so the pad goes at the end and into the RIFF size.
  const padded = new Uint8Array(file.byteLength + 1);
  padded.set(file);
  new DataView(padded.buffer).setUint32(4, padded.byteLength - 8, true);
  return padded;
}

/** Write interleaved PCM16 samples as a format-1 WAV file. */
export function writeWavPcm16(samples: Int16Array, format: WavFormat): Uint8Array {
  checkFormat(format, samples.length);
  const wav = new wavefile.WaveFile();
  // wavefile packs samples one at a time through a generic packer (~40x slower: 77 ms against
  // 1.8 ms for 10 s at 24 kHz), so the samples go in as ready-made bytes: data.samples is the data
  // chunk (as wavefile's README documents), and toBuffer() takes the sizes from it.
  wav.fromScratch(format.channels, format.sampleRate, '16', []);
  (wav.data as WaveFileData).samples = pcm16Bytes(samples);
  return fileBytes(wav);
}

/** Write already-encoded mu-law bytes (interleaved) as a format-7 WAV file (with its fact chunk). */
export function writeWavMulaw(bytes: Uint8Array, format: WavFormat): Uint8Array {
  checkFormat(format, bytes.length);
  const wav = new wavefile.WaveFile();
  wav.fromScratch(format.channels, format.sampleRate, '8m', bytes);
  return fileBytes(wav);
}

/** Encode interleaved PCM16 to mu-law and write it as a format-7 WAV file. */
export function writeWavMulawFromPcm16(samples: Int16Array, format: WavFormat): Uint8Array {
  const encoded = new Uint8Array(samples.length);
  mulawEncode(samples, encoded);
  return writeWavMulaw(encoded, format);
}
