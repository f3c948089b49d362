import { describe, expect, it } from 'vitest';

import { FRAME_BYTES, FRAME_MS, MULAW_BYTES_PER_MS, MulawFramer } from '../../src/audio/framer.js';
import { randomChunkSizes } from '../support/fidelity.js';

/** Bytes whose value encodes their stream position, so reordering or loss shows up. */
function ramp(length: number, start = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
}

/** Copies frames out, since the framer's frame view is only valid during the callback. */
function collector(): { frames: Uint8Array[]; onFrame: (frame: Uint8Array) => void } {
  const frames: Uint8Array[] = [];
  return { frames, onFrame: (frame) => frames.push(frame.slice()) };
}

function concat(frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((sum, f) => sum + f.length, 0));
  let offset = 0;
  for (const f of frames) {
    out.set(f, offset);
    offset += f.length;
  }
  return out;
}

describe('MulawFramer', () => {
  it('defines a frame as 20 ms of 8 kHz mu-law', () => {
    expect(MULAW_BYTES_PER_MS).toBe(8);
    expect(FRAME_MS).toBe(20);
    expect(FRAME_BYTES).toBe(160);
  });

  it('emits exactly one 160-byte frame once 160 bytes have arrived', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    framer.push(ramp(159), 159, onFrame);
    expect(frames).toHaveLength(0);
    expect(framer.pendingBytes).toBe(159);
    framer.push(ramp(1, 159), 1, onFrame);
    expect(frames).toHaveLength(1);
    expect(frames[0]).toEqual(ramp(160));
    expect(framer.pendingBytes).toBe(0);
  });

  it('splits a large push into whole frames and keeps the remainder pending', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    const input = ramp(160 * 7 + 33);
    framer.push(input, input.length, onFrame);
    expect(frames.map((f) => f.length)).toEqual(Array(7).fill(160));
    expect(concat(frames)).toEqual(input.subarray(0, 160 * 7));
    expect(framer.pendingBytes).toBe(33);
  });

  it('only consumes `length` bytes of the given buffer', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    const input = ramp(400);
    framer.push(input, 170, onFrame);
    expect(frames).toHaveLength(1);
    expect(framer.pendingBytes).toBe(10);
    expect(() => framer.push(input, 401, onFrame)).toThrow(RangeError);
    expect(() => framer.push(input, -1, onFrame)).toThrow(RangeError);
  });

  it('reassembles tiny and odd-sized pushes into the same frames as one big push', () => {
    const input = ramp(160 * 20 + 77, 3);
    const whole = collector();
    const reference = new MulawFramer();
    reference.push(input, input.length, whole.onFrame);
    reference.flush(whole.onFrame);

    for (const seed of [1, 2, 3]) {
      const framer = new MulawFramer();
      const pieces = collector();
      let offset = 0;
      for (const size of randomChunkSizes(input.length, seed, 300)) {
        framer.push(input.slice(offset, offset + size), size, pieces.onFrame);
        offset += size;
      }
      framer.flush(pieces.onFrame);
      expect(pieces.frames).toEqual(whole.frames);
    }
    expect(whole.frames.map((f) => f.length)).toEqual([...Array(20).fill(160), 77]);
  });

  it('accepts empty pushes', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    framer.push(new Uint8Array(0), 0, onFrame);
    expect(frames).toHaveLength(0);
    expect(framer.pendingBytes).toBe(0);
  });

  it('flush emits the partial tail unpadded, then nothing more', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    framer.push(ramp(200), 200, onFrame);
    framer.flush(onFrame);
    expect(frames.map((f) => f.length)).toEqual([160, 40]);
    expect(frames[1]).toEqual(ramp(40, 160));
    expect(framer.pendingBytes).toBe(0);
    framer.flush(onFrame);
    expect(frames).toHaveLength(2);
  });

  it('flush with nothing pending emits nothing', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    framer.push(ramp(320), 320, onFrame);
    framer.flush(onFrame);
    expect(frames).toHaveLength(2);
  });

  it('reset drops the partial frame so the next frame starts clean', () => {
    const framer = new MulawFramer();
    const { frames, onFrame } = collector();
    framer.push(ramp(100), 100, onFrame);
    framer.reset();
    expect(framer.pendingBytes).toBe(0);
    framer.flush(onFrame);
    expect(frames).toHaveLength(0);
    framer.push(ramp(160, 50), 160, onFrame);
    expect(frames).toEqual([ramp(160, 50)]);
  });

  it('reset from inside the callback also drops the rest of that push', () => {
    const framer = new MulawFramer();
    const lengths: number[] = [];
    framer.push(ramp(160 * 3 + 50), 160 * 3 + 50, (frame) => {
      lengths.push(frame.length);
      framer.reset();
    });
    expect(lengths).toEqual([160]);
    expect(framer.pendingBytes).toBe(0);
  });

  it('hands out its own buffer, so callers must copy (and the same storage is reused)', () => {
    const framer = new MulawFramer();
    const seen: Uint8Array[] = [];
    framer.push(ramp(320), 320, (frame) => seen.push(frame));
    expect(seen).toHaveLength(2);
    expect(seen[0]!.buffer).toBe(seen[1]!.buffer);
  });
});
