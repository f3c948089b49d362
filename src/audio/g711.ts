/**
 * G.711 mu-law and A-law codecs, table-driven.
 *
 * Every direction is a single table lookup so the per-sample cost is one load and one store
 * and nothing is allocated on the hot path. The tables are built once at module load.
 *
 * Rounding convention: a negative int16 is quantised by its exact magnitude (sign-magnitude;
 * mu-law with the 16-bit bias 0x84 and clip at 32635), which keeps the quantiser symmetric about
 * zero as G.711's decision tables are (they are defined on magnitudes). This is the classic
 * CCITT/Sun-style 16-bit mu-law encoder and, for both laws, is bit-identical to the `alawmulaw`
 * package for all 65536 inputs. The ITU G.191 STL reference instead takes the ones' complement
 * of negative inputs before dropping the low bits, so it lands one step lower on some negative
 * inputs that sit exactly on a decision boundary; the unit tests pin which convention we follow.
 */

/** Encoded mu-law for a linear 0 (positive zero); what a silent Twilio frame is filled with. */
export const MULAW_SILENCE = 0xff;

/** Added to the magnitude so every segment's decision levels fall on a power-of-two grid. */
const MULAW_BIAS = 0x84;
/** Largest magnitude (before bias) that still fits the top segment after the bias is added. */
const MULAW_CLIP_MAGNITUDE = 32635;
const CODE_COUNT = 256;
const INT16_VALUE_COUNT = 65536;

/** Encoded A-law for a linear 0 (positive zero, even bits inverted); A-law's idle pattern. */
export const ALAW_SILENCE = 0xd5;

/** A-law inverts every even bit of the code on the wire. */
const ALAW_EVEN_BIT_MASK = 0x55;
/** Largest int16 magnitude; only -32768 exceeds it and would wrap the top segment's mantissa. */
const ALAW_CLIP_MAGNITUDE = 32767;

function mulawDecodeCode(code: number): number {
  const inverted = ~code & 0xff;
  const sign = inverted & 0x80;
  const exponent = (inverted >> 4) & 0x07;
  const mantissa = inverted & 0x0f;
  const magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
  return sign !== 0 ? -magnitude : magnitude;
}

function mulawEncodeSample(sample: number): number {
  const sign = sample < 0 ? 0x80 : 0;
  let magnitude = sign !== 0 ? -sample : sample;
  if (magnitude > MULAW_CLIP_MAGNITUDE) magnitude = MULAW_CLIP_MAGNITUDE;
  magnitude += MULAW_BIAS;
  // The segment is the position of the highest set bit above bit 7 of the biased magnitude.
  let exponent = 7;
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function alawDecodeCode(code: number): number {
  const toggled = code ^ ALAW_EVEN_BIT_MASK;
  // A-law's sign bit is set for positive values (the opposite of two's complement).
  const positive = (toggled & 0x80) !== 0;
  const exponent = (toggled >> 4) & 0x07;
  const mantissa = toggled & 0x0f;
  // Segments 0 and 1 share the step of 16; each later segment doubles it. Levels sit at the
  // midpoint of their interval (+8 in segment 0, the implicit leading bit plus half a step after).
  const magnitude = exponent === 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1);
  return positive ? magnitude : -magnitude;
}

function alawEncodeSample(sample: number): number {
  const sign = sample < 0 ? 0 : 0x80;
  let magnitude = sample < 0 ? -sample : sample;
  if (magnitude > ALAW_CLIP_MAGNITUDE) magnitude = ALAW_CLIP_MAGNITUDE;
  let code: number;
  if (magnitude < 0x100) {
    // Segment 0: 16 steps of 16 below 256.
    code = magnitude >> 4;
  } else {
    // Segment 1..7 is the position of the highest set bit, counted from bit 8.
    let exponent = 7;
    for (let mask = 0x4000; (magnitude & mask) === 0; mask >>= 1) exponent--;
    const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    code = (exponent << 4) | mantissa;
  }
  return (sign | code) ^ ALAW_EVEN_BIT_MASK;
}

function buildDecodeTable(decode: (code: number) => number): Int16Array {
  const table = new Int16Array(CODE_COUNT);
  for (let code = 0; code < CODE_COUNT; code++) table[code] = decode(code);
  return table;
}

/** Indexed by the int16 sample's 16-bit two's-complement pattern (`sample & 0xffff`). */
function buildEncodeTable(encode: (sample: number) => number): Uint8Array {
  const table = new Uint8Array(INT16_VALUE_COUNT);
  for (let pattern = 0; pattern < INT16_VALUE_COUNT; pattern++) {
    const sample = pattern >= 0x8000 ? pattern - INT16_VALUE_COUNT : pattern;
    table[pattern] = encode(sample);
  }
  return table;
}

const MULAW_DECODE_TABLE = buildDecodeTable(mulawDecodeCode);
const MULAW_ENCODE_TABLE = buildEncodeTable(mulawEncodeSample);
const ALAW_DECODE_TABLE = buildDecodeTable(alawDecodeCode);
const ALAW_ENCODE_TABLE = buildEncodeTable(alawEncodeSample);

function checkLength(length: number, srcLength: number, dstLength: number): void {
  if (!Number.isInteger(length) || length < 0 || length > srcLength || length > dstLength) {
    throw new RangeError(
      `g711: length ${length} out of range (src ${srcLength}, dst ${dstLength})`,
    );
  }
}

/** Decodes `length` mu-law bytes from `src` into `dst` (both starting at index 0). */
export function mulawDecode(src: Uint8Array, dst: Int16Array, length: number = src.length): void {
  checkLength(length, src.length, dst.length);
  for (let i = 0; i < length; i++) dst[i] = MULAW_DECODE_TABLE[src[i]!]!;
}

/**
 * Encodes `length` int16 samples from `src` (from index 0) into mu-law bytes in `dst` from
 * `dstOffset`, so a caller appending to a buffer needs no view object per call.
 */
export function mulawEncode(src: Int16Array, dst: Uint8Array, length: number = src.length, dstOffset = 0): void {
  if (!Number.isInteger(dstOffset) || dstOffset < 0 || dstOffset > dst.length) {
    throw new RangeError(`g711: dstOffset ${dstOffset} out of range (dst ${dst.length})`);
  }
  checkLength(length, src.length, dst.length - dstOffset);
  for (let i = 0; i < length; i++) dst[dstOffset + i] = MULAW_ENCODE_TABLE[src[i]! & 0xffff]!;
}

/** Decodes `length` A-law bytes from `src` into `dst` (both starting at index 0). */
export function alawDecode(src: Uint8Array, dst: Int16Array, length: number = src.length): void {
  checkLength(length, src.length, dst.length);
  for (let i = 0; i < length; i++) dst[i] = ALAW_DECODE_TABLE[src[i]!]!;
}

/** Encodes `length` int16 samples from `src` into A-law bytes in `dst` (both from index 0). */
export function alawEncode(src: Int16Array, dst: Uint8Array, length: number = src.length): void {
  checkLength(length, src.length, dst.length);
  for (let i = 0; i < length; i++) dst[i] = ALAW_ENCODE_TABLE[src[i]! & 0xffff]!;
}
