/**
 * G.711 mu-law codec, table-driven.
 *
 * Both directions are single table lookups so the per-sample cost is one load and one store
 * and nothing is allocated on the hot path. The tables are built once at module load.
 *
 * Rounding convention: a negative int16 is quantised by its exact magnitude (sign-magnitude,
 * 16-bit bias 0x84, clip at 32635), which keeps the quantiser symmetric about zero as G.711's
 * decision tables are (they are defined on magnitudes). This is the classic CCITT/Sun-style
 * 16-bit encoder and is bit-identical to the `alawmulaw` package for all 65536 inputs. The ITU
 * G.191 STL reference instead takes the ones' complement of negative inputs before dropping
 * the two LSBs, so it lands one step lower on some negative inputs that sit exactly on a
 * decision boundary; the unit test pins which convention we follow.
 */

/** Encoded mu-law for a linear 0 (positive zero); what a silent Twilio frame is filled with. */
export const MULAW_SILENCE = 0xff;

/** Added to the magnitude so every segment's decision levels fall on a power-of-two grid. */
const MULAW_BIAS = 0x84;
/** Largest magnitude (before bias) that still fits the top segment after the bias is added. */
const MULAW_CLIP_MAGNITUDE = 32635;
const MULAW_CODE_COUNT = 256;
const INT16_VALUE_COUNT = 65536;

function decodeCode(code: number): number {
  const inverted = ~code & 0xff;
  const sign = inverted & 0x80;
  const exponent = (inverted >> 4) & 0x07;
  const mantissa = inverted & 0x0f;
  const magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
  return sign !== 0 ? -magnitude : magnitude;
}

function encodeSample(sample: number): number {
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

const DECODE_TABLE: Int16Array = (() => {
  const table = new Int16Array(MULAW_CODE_COUNT);
  for (let code = 0; code < MULAW_CODE_COUNT; code++) table[code] = decodeCode(code);
  return table;
})();

/** Indexed by the int16 sample's 16-bit two's-complement pattern (`sample & 0xffff`). */
const ENCODE_TABLE: Uint8Array = (() => {
  const table = new Uint8Array(INT16_VALUE_COUNT);
  for (let pattern = 0; pattern < INT16_VALUE_COUNT; pattern++) {
    const sample = pattern >= 0x8000 ? pattern - INT16_VALUE_COUNT : pattern;
    table[pattern] = encodeSample(sample);
  }
  return table;
})();

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
  for (let i = 0; i < length; i++) dst[i] = DECODE_TABLE[src[i]!]!;
}

/** Encodes `length` int16 samples from `src` into mu-law bytes in `dst` (both from index 0). */
export function mulawEncode(src: Int16Array, dst: Uint8Array, length: number = src.length): void {
  checkLength(length, src.length, dst.length);
  for (let i = 0; i < length; i++) dst[i] = ENCODE_TABLE[src[i]! & 0xffff]!;
}
