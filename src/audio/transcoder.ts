/**
 * Per-call, per-direction audio pipelines between Twilio (base64 8 kHz mu-law) and the Realtime
 * API (base64 24 kHz PCM16 little-endian mono).
 *
 * Each instance owns its resampler history and scratch buffers, so one instance must serve
 * exactly one direction of one call. Scratch buffers grow only when a larger chunk than ever
 * before arrives; steady-state frames allocate nothing but the base64 string they return.
 */

import { endianness } from 'node:os';

import { mulawDecode, mulawEncode } from './g711.js';
import { DOWNSAMPLER_DELAY_SAMPLES_8K, Downsampler3x, Upsampler3x } from './resampler.js';
import { MulawFramer } from './framer.js';

const BYTES_PER_PCM16_SAMPLE = 2;
const UPSAMPLE_FACTOR = 3;
/** Enough for a 100 ms chunk at 24 kHz PCM16 before any growth is needed. */
const INITIAL_PCM24_BYTES = 4800;
/** Enough for a 100 ms chunk of 8 kHz mu-law before any growth is needed. */
const INITIAL_MULAW_BYTES = 800;

/** Typed arrays use host byte order; the wire format is little-endian. */
const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';
/** Silence that pushes an item's last samples out of the downsampler's filter delay. */
const DRAIN_24K = new Int16Array(DOWNSAMPLER_DELAY_SAMPLES_8K * UPSAMPLE_FACTOR);

/** Upper bound on the bytes a base64 string decodes to, padded or not. */
function maxBase64DecodedBytes(base64: string): number {
  return Math.ceil(base64.length / 4) * 3;
}

function grownCapacity(current: number, needed: number): number {
  let capacity = Math.max(current, 1);
  while (capacity < needed) capacity *= 2;
  return capacity;
}

/** Twilio -> Realtime: base64 mu-law 8 kHz in, base64 PCM16 LE 24 kHz out. */
export class InboundTranscoder {
  private readonly upsampler = new Upsampler3x();
  private mulawBytes: Buffer = Buffer.alloc(INITIAL_MULAW_BYTES);
  private pcm8k = new Int16Array(INITIAL_MULAW_BYTES);
  /** `pcm24k` and `pcm24kBytes` alias the same ArrayBuffer (offset 0, so always aligned). */
  private pcm24k = new Int16Array(INITIAL_MULAW_BYTES * UPSAMPLE_FACTOR);
  private pcm24kBytes: Buffer = Buffer.from(this.pcm24k.buffer);

  /** Every sample is forwarded in order; resampler state carries over between calls. */
  transcode(mulawBase64: string): string {
    this.ensureCapacity(maxBase64DecodedBytes(mulawBase64));
    const sampleCount = this.mulawBytes.write(mulawBase64, 0, 'base64');
    mulawDecode(this.mulawBytes, this.pcm8k, sampleCount);
    const outSamples = this.upsampler.process(this.pcm8k, sampleCount, this.pcm24k);
    const outBytes = outSamples * BYTES_PER_PCM16_SAMPLE;
    if (!HOST_IS_LITTLE_ENDIAN) this.pcm24kBytes.subarray(0, outBytes).swap16();
    return this.pcm24kBytes.toString('base64', 0, outBytes);
  }

  reset(): void {
    this.upsampler.reset();
  }

  private ensureCapacity(mulawBytes: number): void {
    if (mulawBytes <= this.mulawBytes.length) return;
    const capacity = grownCapacity(this.mulawBytes.length, mulawBytes);
    this.mulawBytes = Buffer.alloc(capacity);
    this.pcm8k = new Int16Array(capacity);
    this.pcm24k = new Int16Array(capacity * UPSAMPLE_FACTOR);
    this.pcm24kBytes = Buffer.from(this.pcm24k.buffer);
  }
}

/** Realtime -> Twilio: base64 PCM16 LE 24 kHz in, 20 ms base64 mu-law frames out. */
export class OutboundTranscoder {
  private readonly downsampler = new Downsampler3x();
  private readonly framer = new MulawFramer();
  /**
   * Decoded input bytes; `pcm24k` aliases the same ArrayBuffer at offset 0 so sample i is bytes
   * 2i and 2i+1 with no copy and no alignment problem. Slot 0 may hold a carried odd byte.
   */
  private pcm24kBytes: Buffer;
  private pcm24k: Int16Array;
  private pcm8k: Int16Array;
  private mulaw: Uint8Array;
  /** Low byte of a sample whose high byte has not arrived yet, or -1. */
  private carriedByte = -1;

  /** Buffer view over the framer's frame storage, built once so frames encode without allocating. */
  private frameView: Buffer | null = null;
  private frameViewSource: ArrayBufferLike | null = null;
  private frameViewOffset = -1;
  private currentOnFrame: ((mulawBase64: string) => void) | null = null;
  private readonly emitFrame = (frame: Uint8Array): void => {
    let view = this.frameView;
    if (view === null || frame.buffer !== this.frameViewSource || frame.byteOffset !== this.frameViewOffset) {
      view = Buffer.from(frame.buffer, frame.byteOffset, frame.buffer.byteLength - frame.byteOffset);
      this.frameView = view;
      this.frameViewSource = frame.buffer;
      this.frameViewOffset = frame.byteOffset;
    }
    const onFrame = this.currentOnFrame;
    if (onFrame !== null) onFrame(view.toString('base64', 0, frame.length));
  };

  constructor() {
    this.pcm24k = new Int16Array(INITIAL_PCM24_BYTES / BYTES_PER_PCM16_SAMPLE);
    this.pcm24kBytes = Buffer.from(this.pcm24k.buffer);
    this.pcm8k = new Int16Array(Math.ceil(this.pcm24k.length / UPSAMPLE_FACTOR) + 1);
    this.mulaw = new Uint8Array(this.pcm8k.length);
  }

  /**
   * Accepts any byte count, including odd ones (the dangling byte is carried to the next call),
   * and emits every completed 20 ms frame as base64.
   */
  push(pcm24kBase64: string, onFrame: (mulawBase64: string) => void): void {
    const carry = this.carriedByte >= 0 ? 1 : 0;
    this.ensureCapacity(carry + maxBase64DecodedBytes(pcm24kBase64));
    if (carry === 1) this.pcm24kBytes[0] = this.carriedByte;
    const totalBytes = carry + this.pcm24kBytes.write(pcm24kBase64, carry, 'base64');
    const sampleCount = totalBytes >> 1;
    this.carriedByte = (totalBytes & 1) === 1 ? this.pcm24kBytes[totalBytes - 1]! : -1;
    if (sampleCount === 0) return;

    const sampleBytes = sampleCount * BYTES_PER_PCM16_SAMPLE;
    if (!HOST_IS_LITTLE_ENDIAN) this.pcm24kBytes.subarray(0, sampleBytes).swap16();
    const outSamples = this.downsampler.process(this.pcm24k, sampleCount, this.pcm8k);
    mulawEncode(this.pcm8k, this.mulaw, outSamples);
    this.currentOnFrame = onFrame;
    try {
      this.framer.push(this.mulaw, outSamples, this.emitFrame);
    } finally {
      this.currentOnFrame = null;
    }
  }

  /**
   * End of an item's audio: drains the filter delay (the item's last 2.5 ms would otherwise open
   * the next item) and emits the partial tail frame. The next item starts from a clean filter.
   * A dangling odd byte is dropped: it can never complete within this item, and carrying it into
   * the next item would shift every following sample by one byte, turning it into noise.
   */
  flush(onFrame: (mulawBase64: string) => void): void {
    this.carriedByte = -1;
    const drained = this.downsampler.process(DRAIN_24K, DRAIN_24K.length, this.pcm8k);
    mulawEncode(this.pcm8k, this.mulaw, drained);
    this.currentOnFrame = onFrame;
    try {
      this.framer.push(this.mulaw, drained, this.emitFrame);
      this.framer.flush(this.emitFrame);
    } finally {
      this.currentOnFrame = null;
    }
    this.downsampler.reset();
  }

  /** Interruption: drops the partial frame, the carried odd byte and the resampler history. */
  reset(): void {
    this.framer.reset();
    this.downsampler.reset();
    this.carriedByte = -1;
  }

  private ensureCapacity(inputBytes: number): void {
    if (inputBytes <= this.pcm24kBytes.length) return;
    const capacity = grownCapacity(this.pcm24kBytes.length, inputBytes);
    // Even byte length so the Int16Array view covers the whole buffer.
    const evenCapacity = capacity + (capacity & 1);
    this.pcm24k = new Int16Array(evenCapacity / BYTES_PER_PCM16_SAMPLE);
    this.pcm24kBytes = Buffer.from(this.pcm24k.buffer);
    this.pcm8k = new Int16Array(Math.ceil(this.pcm24k.length / UPSAMPLE_FACTOR) + 1);
    this.mulaw = new Uint8Array(this.pcm8k.length);
  }
}
