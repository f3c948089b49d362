/**
 * Per-call, per-direction audio pipelines between Twilio (base64 8 kHz mu-law) and the Realtime
 * API (base64 24 kHz PCM16 little-endian mono).
 *
 * Each instance owns its resampler history and scratch buffers, so one instance must serve
 * exactly one direction of one call. Scratch buffers grow only when more audio than ever before
 * is converted or held at once; steady-state frames allocate nothing but the base64 string taken.
 */

import { endianness } from 'node:os';

import { mulawDecode, mulawEncode } from './g711.js';
import { DOWNSAMPLER_DELAY_SAMPLES_8K, Downsampler3x, Upsampler3x } from './resampler.js';
import { PCM24K_BYTES_PER_MS } from './wire-format.js';

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

/**
 * Twilio -> Realtime: base64 mu-law 8 kHz in, base64 PCM16 LE 24 kHz out. Converted audio is held
 * until taken, so the caller of `push` decides how much goes into one upstream message.
 */
export class InboundTranscoder {
  private readonly upsampler = new Upsampler3x();
  private mulawBytes: Buffer = Buffer.alloc(INITIAL_MULAW_BYTES);
  private pcm8k = new Int16Array(INITIAL_MULAW_BYTES);
  /** `pcm24k` and `pcm24kBytes` alias the same ArrayBuffer (offset 0, so always aligned). */
  private pcm24k = new Int16Array(INITIAL_MULAW_BYTES * UPSAMPLE_FACTOR);
  private pcm24kBytes: Buffer = Buffer.from(this.pcm24k.buffer);
  /** converted samples not taken yet: pcm24k[0, heldSamples) */
  private heldSamples = 0;

  /** ms of converted audio pushed and not taken yet. */
  get heldMs(): number {
    return (this.heldSamples * BYTES_PER_PCM16_SAMPLE) / PCM24K_BYTES_PER_MS;
  }

  /** Converts and holds; every sample is converted in order, resampler state carries over. */
  push(mulawBase64: string): void {
    this.ensureCapacity(maxBase64DecodedBytes(mulawBase64));
    const sampleCount = this.mulawBytes.write(mulawBase64, 0, 'base64');
    mulawDecode(this.mulawBytes, this.pcm8k, sampleCount);
    this.heldSamples += this.upsampler.process(this.pcm8k, sampleCount, this.pcm24k, this.heldSamples);
  }

  /** Base64 of everything held ('' when nothing is), which is then no longer held. */
  take(): string {
    const outBytes = this.heldSamples * BYTES_PER_PCM16_SAMPLE;
    this.heldSamples = 0;
    if (!HOST_IS_LITTLE_ENDIAN) this.pcm24kBytes.subarray(0, outBytes).swap16();
    return this.pcm24kBytes.toString('base64', 0, outBytes);
  }

  /** push, then take: for a caller that sends each piece as it converts it (tests, the bench). */
  transcode(mulawBase64: string): string {
    this.push(mulawBase64);
    return this.take();
  }

  /** A new stream: audio held for the old one must not open it, nor its filter history colour it. */
  reset(): void {
    this.heldSamples = 0;
    this.upsampler.reset();
  }

  /** Room for `mulawBytes` more input next to what is held; what is held is kept. */
  private ensureCapacity(mulawBytes: number): void {
    const neededOut = this.heldSamples + mulawBytes * UPSAMPLE_FACTOR;
    if (mulawBytes <= this.mulawBytes.length && neededOut <= this.pcm24k.length) return;
    if (mulawBytes > this.mulawBytes.length) {
      const capacity = grownCapacity(this.mulawBytes.length, mulawBytes);
      this.mulawBytes = Buffer.alloc(capacity);
      this.pcm8k = new Int16Array(capacity);
    }
    if (neededOut > this.pcm24k.length) {
      const grown = new Int16Array(grownCapacity(this.pcm24k.length, neededOut));
      grown.set(this.pcm24k.subarray(0, this.heldSamples));
      this.pcm24k = grown;
      this.pcm24kBytes = Buffer.from(grown.buffer);
    }
  }
}

/**
 * Realtime -> Twilio: base64 PCM16 LE 24 kHz in, base64 mu-law 8 kHz out, in pieces of the
 * caller's choosing. Output is not cut into 20 ms frames: Twilio plays media payloads of any
 * length back to back, and one message per stretch between marks costs a fifth of the messages
 * (and syscalls) that 20 ms frames do. Marks, not frame boundaries, keep the heard position exact.
 */
export class OutboundTranscoder {
  private readonly downsampler = new Downsampler3x();
  /**
   * Decoded input bytes; `pcm24k` aliases the same ArrayBuffer at offset 0 so sample i is bytes
   * 2i and 2i+1 with no copy and no alignment problem. Slot 0 may hold a carried odd byte.
   */
  private pcm24kBytes: Buffer;
  private pcm24k: Int16Array;
  private pcm8k: Int16Array;
  /** Encoded mu-law not taken yet: bytes [pendingStart, pendingEnd) of `pending`. */
  private pending: Buffer = Buffer.alloc(INITIAL_MULAW_BYTES * 4);
  private pendingStart = 0;
  private pendingEnd = 0;
  /** Low byte of a sample whose high byte has not arrived yet, or -1. */
  private carriedByte = -1;

  constructor() {
    this.pcm24k = new Int16Array(INITIAL_PCM24_BYTES / BYTES_PER_PCM16_SAMPLE);
    this.pcm24kBytes = Buffer.from(this.pcm24k.buffer);
    this.pcm8k = new Int16Array(Math.ceil(this.pcm24k.length / UPSAMPLE_FACTOR) + 1);
  }

  /** mu-law bytes encoded and not yet taken. */
  get pendingBytes(): number {
    return this.pendingEnd - this.pendingStart;
  }

  /**
   * Accepts any byte count, including odd ones (the dangling byte is carried to the next call),
   * and adds the encoded mu-law to what `take` hands out.
   */
  push(pcm24kBase64: string): void {
    const carry = this.carriedByte >= 0 ? 1 : 0;
    this.ensureInputCapacity(carry + maxBase64DecodedBytes(pcm24kBase64));
    if (carry === 1) this.pcm24kBytes[0] = this.carriedByte;
    const totalBytes = carry + this.pcm24kBytes.write(pcm24kBase64, carry, 'base64');
    const sampleCount = totalBytes >> 1;
    this.carriedByte = (totalBytes & 1) === 1 ? this.pcm24kBytes[totalBytes - 1]! : -1;
    if (sampleCount === 0) return;

    const sampleBytes = sampleCount * BYTES_PER_PCM16_SAMPLE;
    if (!HOST_IS_LITTLE_ENDIAN) this.pcm24kBytes.subarray(0, sampleBytes).swap16();
    this.downsampleAndEncode(this.pcm24k, sampleCount);
  }

  /** Base64 of up to `maxBytes` of the oldest pending mu-law; '' when nothing is pending. */
  take(maxBytes: number = Number.POSITIVE_INFINITY): string {
    const bytes = Math.min(this.pendingBytes, Math.max(0, Math.floor(maxBytes)));
    if (bytes === 0) return '';
    const start = this.pendingStart;
    this.pendingStart += bytes;
    if (this.pendingStart === this.pendingEnd) {
      this.pendingStart = 0;
      this.pendingEnd = 0;
    }
    return this.pending.toString('base64', start, start + bytes);
  }

  /**
   * End of an item's audio: drains the filter delay (the item's last 1.75 ms would otherwise open
   * the next item) into the pending output. The next item starts from a clean filter.
   * A dangling odd byte is dropped: it can never complete within this item, and carrying it into
   * the next item would shift every following sample by one byte, turning it into noise.
   */
  flush(): void {
    this.carriedByte = -1;
    this.downsampleAndEncode(DRAIN_24K, DRAIN_24K.length);
    this.downsampler.reset();
  }

  /** Interruption: drops the pending output, the carried odd byte and the resampler history. */
  reset(): void {
    this.pendingStart = 0;
    this.pendingEnd = 0;
    this.downsampler.reset();
    this.carriedByte = -1;
  }

  private downsampleAndEncode(pcm24k: Int16Array, sampleCount: number): void {
    const outSamples = this.downsampler.process(pcm24k, sampleCount, this.pcm8k);
    this.ensurePendingRoom(outSamples);
    mulawEncode(this.pcm8k, this.pending, outSamples, this.pendingEnd);
    this.pendingEnd += outSamples;
  }

  private ensurePendingRoom(bytes: number): void {
    if (this.pendingEnd + bytes <= this.pending.length) return;
    const live = this.pendingBytes;
    // Slide the live bytes to the front first: a caller that takes as it goes never grows.
    if (live + bytes <= this.pending.length) {
      this.pending.copy(this.pending, 0, this.pendingStart, this.pendingEnd);
    } else {
      const grown = Buffer.alloc(grownCapacity(this.pending.length, live + bytes));
      this.pending.copy(grown, 0, this.pendingStart, this.pendingEnd);
      this.pending = grown;
    }
    this.pendingStart = 0;
    this.pendingEnd = live;
  }

  private ensureInputCapacity(inputBytes: number): void {
    if (inputBytes <= this.pcm24kBytes.length) return;
    const capacity = grownCapacity(this.pcm24kBytes.length, inputBytes);
    // Even byte length so the Int16Array view covers the whole buffer.
    const evenCapacity = capacity + (capacity & 1);
    this.pcm24k = new Int16Array(evenCapacity / BYTES_PER_PCM16_SAMPLE);
    this.pcm24kBytes = Buffer.from(this.pcm24k.buffer);
    this.pcm8k = new Int16Array(Math.ceil(this.pcm24k.length / UPSAMPLE_FACTOR) + 1);
  }
}
