import { alaw, mulaw } from 'alawmulaw';
import { describe, expect, it } from 'vitest';

import {
  ALAW_SILENCE,
  alawDecode,
  alawEncode,
  MULAW_SILENCE,
  mulawDecode,
  mulawEncode,
} from '../../src/audio/g711.js';

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, code) => code);
const ALL_INT16 = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);

/**
 * Port of the ITU-T G.191 STL `ulaw_compress`, kept only to pin down where the rounding
 * conventions differ (see the comment at the top of src/audio/g711.ts).
 */
function g191UlawCompress(linear: number): number {
  let absolute = linear < 0 ? (~linear >> 2) + 33 : (linear >> 2) + 33;
  if (absolute > 0x1fff) absolute = 0x1fff;
  let segment = 1;
  for (let i = absolute >> 6; i !== 0; i >>= 1) segment++;
  const highNibble = 0x08 - segment;
  const lowNibble = 0x0f - ((absolute >> segment) & 0x0f);
  const code = (highNibble << 4) | lowNibble;
  return linear >= 0 ? code | 0x80 : code;
}

/** Port of the ITU-T G.191 STL `alaw_compress`, for the same purpose as the mu-law one. */
function g191AlawCompress(linear: number): number {
  let ix = linear < 0 ? ~linear >> 4 : linear >> 4;
  if (ix > 15) {
    let exponent = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      exponent++;
    }
    ix -= 16;
    ix += exponent << 4;
  }
  if (linear >= 0) ix |= 0x80;
  return ix ^ 0x55;
}

describe('g711 mu-law', () => {
  it('decodes all 256 codes exactly like alawmulaw', () => {
    const ours = new Int16Array(256);
    mulawDecode(ALL_CODES, ours);
    expect(Array.from(ours)).toEqual(Array.from(mulaw.decode(ALL_CODES)));
  });

  it('encodes all 65536 int16 values exactly like alawmulaw', () => {
    const ours = new Uint8Array(ALL_INT16.length);
    mulawEncode(ALL_INT16, ours);
    const theirs = mulaw.encode(ALL_INT16);
    let mismatches = 0;
    for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('decodes the standard G.711 end points', () => {
    const out = new Int16Array(4);
    mulawDecode(Uint8Array.of(0xff, 0x7f, 0x80, 0x00), out);
    expect(Array.from(out)).toEqual([0, 0, 32124, -32124]);
  });

  it('uses 0xff as silence, and silence decodes to 0', () => {
    expect(MULAW_SILENCE).toBe(0xff);
    const code = new Uint8Array(1);
    mulawEncode(Int16Array.of(0), code);
    expect(code[0]).toBe(MULAW_SILENCE);
    const pcm = new Int16Array(1);
    mulawDecode(Uint8Array.of(MULAW_SILENCE), pcm);
    expect(pcm[0]).toBe(0);
  });

  it('re-encodes every decoded code to itself (except negative zero, which becomes 0xff)', () => {
    const decoded = new Int16Array(256);
    mulawDecode(ALL_CODES, decoded);
    const reencoded = new Uint8Array(256);
    mulawEncode(decoded, reencoded);
    for (let code = 0; code < 256; code++) {
      expect(reencoded[code]).toBe(code === 0x7f ? 0xff : code);
    }
  });

  it('quantises symmetrically about zero, which is where it departs from G.191', () => {
    const encoded = new Uint8Array(ALL_INT16.length);
    mulawEncode(ALL_INT16, encoded);
    const codeOf = (sample: number): number => encoded[sample + 32768]!;
    let asymmetric = 0;
    for (let x = 1; x <= 32767; x++) if (codeOf(-x) !== (codeOf(x) ^ 0x80)) asymmetric++;
    expect(asymmetric).toBe(0);

    // G.191 takes the ones' complement of negatives, so it agrees on every non-negative input
    // and, on negatives, lands on the adjacent code only for inputs at a decision boundary.
    let nonNegativeDifferences = 0;
    let negativeDifferences = 0;
    let differencesBeyondAdjacentCode = 0;
    for (let x = -32768; x <= 32767; x++) {
      const reference = g191UlawCompress(x);
      const ours = codeOf(x);
      if (ours === reference) continue;
      if (x >= 0) nonNegativeDifferences++;
      else negativeDifferences++;
      if (Math.abs(ours - reference) !== 1) differencesBeyondAdjacentCode++;
    }
    expect(nonNegativeDifferences).toBe(0);
    expect(differencesBeyondAdjacentCode).toBe(0);
    // Non-zero on purpose: if this ever reaches 0 the convention changed and the docs are stale.
    expect(negativeDifferences).toBeGreaterThan(0);
  });

  it('keeps the quantisation error within half a step of the chosen segment', () => {
    const encoded = new Uint8Array(ALL_INT16.length);
    mulawEncode(ALL_INT16, encoded);
    const decoded = new Int16Array(ALL_INT16.length);
    mulawDecode(encoded, decoded);
    const clipMagnitude = 32635;
    let violations = 0;
    for (let i = 0; i < ALL_INT16.length; i++) {
      const x = ALL_INT16[i]!;
      const exponent = (~encoded[i]! >> 4) & 0x07;
      // Levels sit at interval midpoints and the interval width is 8 << exponent.
      const halfStep = 4 << exponent;
      const clipExcess = Math.max(0, Math.abs(x) - clipMagnitude);
      if (Math.abs(decoded[i]! - x) > halfStep + clipExcess) violations++;
    }
    expect(violations).toBe(0);
  });

  it('honours the length argument and rejects lengths the arrays cannot hold', () => {
    const pcm = new Int16Array(4).fill(123);
    mulawDecode(Uint8Array.of(0x00, 0x00, 0x00, 0x00), pcm, 2);
    expect(Array.from(pcm)).toEqual([-32124, -32124, 123, 123]);

    const codes = new Uint8Array(4).fill(0x55);
    mulawEncode(Int16Array.of(0, 0, 0, 0), codes, 3);
    expect(Array.from(codes)).toEqual([0xff, 0xff, 0xff, 0x55]);

    expect(() => mulawDecode(new Uint8Array(4), new Int16Array(3))).toThrow(RangeError);
    expect(() => mulawEncode(new Int16Array(2), new Uint8Array(2), 3)).toThrow(RangeError);
    expect(() => mulawEncode(new Int16Array(2), new Uint8Array(2), -1)).toThrow(RangeError);

    // appending at an offset writes only there, and never past the end
    const appended = new Uint8Array(5).fill(0x55);
    mulawEncode(Int16Array.of(0, 0), appended, 2, 2);
    expect(Array.from(appended)).toEqual([0x55, 0x55, 0xff, 0xff, 0x55]);
    expect(() => mulawEncode(new Int16Array(2), new Uint8Array(3), 2, 2)).toThrow(RangeError);
    expect(() => mulawEncode(new Int16Array(2), new Uint8Array(3), 1, -1)).toThrow(RangeError);
  });
});

describe('g711 A-law', () => {
  it('decodes all 256 codes exactly like alawmulaw', () => {
    const ours = new Int16Array(256);
    alawDecode(ALL_CODES, ours);
    expect(Array.from(ours)).toEqual(Array.from(alaw.decode(ALL_CODES)));
  });

  it('encodes all 65536 int16 values exactly like alawmulaw', () => {
    const ours = new Uint8Array(ALL_INT16.length);
    alawEncode(ALL_INT16, ours);
    const theirs = alaw.encode(ALL_INT16);
    let mismatches = 0;
    for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('decodes the standard G.711 end points', () => {
    const out = new Int16Array(4);
    alawDecode(Uint8Array.of(0xd5, 0x55, 0xaa, 0x2a), out);
    expect(Array.from(out)).toEqual([8, -8, 32256, -32256]);
  });

  it('uses 0xd5 as silence, and silence decodes to the smallest positive level', () => {
    expect(ALAW_SILENCE).toBe(0xd5);
    const code = new Uint8Array(1);
    alawEncode(Int16Array.of(0), code);
    expect(code[0]).toBe(ALAW_SILENCE);
    const pcm = new Int16Array(1);
    alawDecode(Uint8Array.of(ALAW_SILENCE), pcm);
    // A-law has no zero level; its idle code is half a step above zero.
    expect(pcm[0]).toBe(8);
  });

  it('re-encodes every decoded code to itself', () => {
    const decoded = new Int16Array(256);
    alawDecode(ALL_CODES, decoded);
    const reencoded = new Uint8Array(256);
    alawEncode(decoded, reencoded);
    expect(Array.from(reencoded)).toEqual(Array.from(ALL_CODES));
  });

  it('quantises symmetrically about zero, which is where it departs from G.191', () => {
    const encoded = new Uint8Array(ALL_INT16.length);
    alawEncode(ALL_INT16, encoded);
    const codeOf = (sample: number): number => encoded[sample + 32768]!;
    let asymmetric = 0;
    for (let x = 1; x <= 32767; x++) if (codeOf(-x) !== (codeOf(x) ^ 0x80)) asymmetric++;
    expect(asymmetric).toBe(0);

    let nonNegativeDifferences = 0;
    let negativeDifferences = 0;
    let differencesBeyondAdjacentCode = 0;
    for (let x = -32768; x <= 32767; x++) {
      const reference = g191AlawCompress(x);
      const ours = codeOf(x);
      if (ours === reference) continue;
      if (x >= 0) nonNegativeDifferences++;
      else negativeDifferences++;
      // Compare with the even bits restored, where adjacent levels are adjacent integers.
      if (Math.abs((ours ^ 0x55) - (reference ^ 0x55)) !== 1) differencesBeyondAdjacentCode++;
    }
    expect(nonNegativeDifferences).toBe(0);
    expect(differencesBeyondAdjacentCode).toBe(0);
    expect(negativeDifferences).toBeGreaterThan(0);
  });

  it('keeps the quantisation error within half a step of the chosen segment', () => {
    const encoded = new Uint8Array(ALL_INT16.length);
    alawEncode(ALL_INT16, encoded);
    const decoded = new Int16Array(ALL_INT16.length);
    alawDecode(encoded, decoded);
    let violations = 0;
    for (let i = 0; i < ALL_INT16.length; i++) {
      const x = ALL_INT16[i]!;
      const exponent = ((encoded[i]! ^ 0x55) >> 4) & 0x07;
      // Segments 0 and 1 have a step of 16; each later one doubles it. The top interval reaches
      // past 32767, so unlike mu-law no int16 input is clipped.
      const halfStep = 8 << Math.max(0, exponent - 1);
      if (Math.abs(decoded[i]! - x) > halfStep) violations++;
    }
    expect(violations).toBe(0);
  });

  it('honours the length argument and rejects lengths the arrays cannot hold', () => {
    const pcm = new Int16Array(4).fill(123);
    alawDecode(Uint8Array.of(0x2a, 0x2a, 0x2a, 0x2a), pcm, 2);
    expect(Array.from(pcm)).toEqual([-32256, -32256, 123, 123]);

    const codes = new Uint8Array(4).fill(0x00);
    alawEncode(Int16Array.of(0, 0, 0, 0), codes, 3);
    expect(Array.from(codes)).toEqual([0xd5, 0xd5, 0xd5, 0x00]);

    expect(() => alawDecode(new Uint8Array(4), new Int16Array(3))).toThrow(RangeError);
    expect(() => alawEncode(new Int16Array(2), new Uint8Array(2), 3)).toThrow(RangeError);
    expect(() => alawEncode(new Int16Array(2), new Uint8Array(2), -1)).toThrow(RangeError);
  });
});
