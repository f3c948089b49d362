import { describe, expect, it } from 'vitest';

import { FRAME_BYTES } from '../../src/audio/wire-format.js';
import { MULAW_SILENCE, mulawDecode, mulawEncode } from '../../src/audio/g711.js';
import {
  DOWNSAMPLER_DELAY_SAMPLES_8K,
  Downsampler3x,
  UPSAMPLER_DELAY_SAMPLES_24K,
  Upsampler3x,
} from '../../src/audio/resampler.js';
import { InboundTranscoder, OutboundTranscoder } from '../../src/audio/transcoder.js';
import {
  INBOUND_MAX_IMAGING_DB,
  IMAGING_FLOOR_HZ,
  OUTBOUND_MAX_ALIAS_DB,
  OUTBOUND_MIN_SNR_WITH_MULAW_DB,
  RATE_24K_HZ,
  RATE_8K_HZ,
  TELEPHONE_BAND_HIGH_HZ,
  TELEPHONE_BAND_LOW_HZ,
  bandPower,
  inBandSnrDb,
  makeMultitone,
  powerRatioDb,
  powerSpectrum,
  quantizeInt16,
  randomChunkSizes,
  renderTones,
  seededRandom,
} from '../support/fidelity.js';

/** The mu-law codec alone measures ~38 dB on the test signal. */
const INBOUND_MIN_SNR_WITH_MULAW_DB = 35;

function pcm16LeBytes(samples: Int16Array): Buffer {
  const bytes = Buffer.alloc(samples.length * 2);
  samples.forEach((v, i) => bytes.writeInt16LE(v, i * 2));
  return bytes;
}

function readPcm16Le(base64: string): Int16Array {
  const bytes = Buffer.from(base64, 'base64');
  expect(bytes.length % 2).toBe(0);
  return Int16Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readInt16LE(i * 2));
}

function mulawOf(samples: Int16Array): Uint8Array {
  const codes = new Uint8Array(samples.length);
  mulawEncode(samples, codes);
  return codes;
}

function decodeMulaw(codes: Uint8Array): Int16Array {
  const pcm = new Int16Array(codes.length);
  mulawDecode(codes, pcm);
  return pcm;
}

function randomPcm(length: number, seed: number): Int16Array {
  const random = seededRandom(seed);
  return Int16Array.from({ length }, () => Math.round((random() * 2 - 1) * 30_000));
}

function concatBuffers(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)));
}

/** flush() drains the downsampler's filter delay: this many zeros at 24 kHz, a third as many samples at 8 kHz. */
const DRAIN_24K_SAMPLES = DOWNSAMPLER_DELAY_SAMPLES_8K * 3;
const DRAIN_8K = DOWNSAMPLER_DELAY_SAMPLES_8K;

/**
 * What OutboundTranscoder emits, as one mu-law byte stream, for one item ended by flush(): the
 * downsampled item, then the filter delay drained with zeros; the filter then starts clean.
 * `downsampler` is shared across items so the reference carries state exactly where it should.
 */
function referenceOutboundItem(downsampler: Downsampler3x, pcm: Int16Array): Uint8Array {
  const drain = new Int16Array(DRAIN_24K_SAMPLES);
  const down = new Int16Array(downsampler.outputLengthFor(pcm.length) + DOWNSAMPLER_DELAY_SAMPLES_8K);
  let n = downsampler.process(pcm, pcm.length, down);
  n += downsampler.process(drain, drain.length, down.subarray(n));
  downsampler.reset();
  return mulawOf(down.subarray(0, n));
}

/**
 * Pushes `bytes` in the given chunk sizes, taking everything pending after each push (one piece
 * per push that produced audio), then flushes and takes the tail; returns the decoded pieces.
 */
function runOutbound(transcoder: OutboundTranscoder, bytes: Buffer, sizes: readonly number[]): Buffer[] {
  const pieces: Buffer[] = [];
  const takeAll = (): void => {
    const piece = transcoder.take();
    if (piece !== '') pieces.push(Buffer.from(piece, 'base64'));
  };
  let offset = 0;
  for (const size of sizes) {
    transcoder.push(bytes.subarray(offset, offset + size).toString('base64'));
    offset += size;
    takeAll();
  }
  transcoder.flush();
  takeAll();
  return pieces;
}

describe('InboundTranscoder (Twilio -> Realtime)', () => {
  it('turns one 20 ms Twilio frame into 20 ms of 24 kHz PCM16', () => {
    const transcoder = new InboundTranscoder();
    const out = transcoder.transcode(Buffer.alloc(FRAME_BYTES, MULAW_SILENCE).toString('base64'));
    const pcm = readPcm16Le(out);
    expect(pcm.length).toBe(FRAME_BYTES * 3);
    expect(pcm.every((v) => v === 0)).toBe(true);
    expect(transcoder.transcode('')).toBe('');
  });

  it('matches decode + Upsampler3x exactly, serialised little-endian', () => {
    const codes = mulawOf(randomPcm(800, 1));
    const expected = new Int16Array(2400);
    new Upsampler3x().process(decodeMulaw(codes), codes.length, expected);
    const out = new InboundTranscoder().transcode(Buffer.from(codes).toString('base64'));
    expect(Buffer.from(out, 'base64')).toEqual(pcm16LeBytes(expected));
  });

  it('gives bit-identical output for random chunking (1 byte, odd sizes, growth past scratch)', () => {
    const codes = Buffer.from(mulawOf(randomPcm(12_000, 2)));
    const whole = Buffer.from(new InboundTranscoder().transcode(codes.toString('base64')), 'base64');
    for (const seed of [1, 2]) {
      const transcoder = new InboundTranscoder();
      const parts: Buffer[] = [];
      let offset = 0;
      // Max chunk 3000 bytes is larger than the initial scratch, so growth happens mid-stream.
      for (const size of randomChunkSizes(codes.length, seed, 3000)) {
        const out = transcoder.transcode(codes.subarray(offset, offset + size).toString('base64'));
        parts.push(Buffer.from(out, 'base64'));
        offset += size;
      }
      // Buffer.equals: a deep toEqual over 72 kB is needlessly slow.
      expect(concatBuffers(parts).equals(whole)).toBe(true);
    }
  });

  it('holds what is pushed until taken: any takes, random pushes, past the scratch size, bit-identical to one go', () => {
    const codes = Buffer.from(mulawOf(randomPcm(12_000, 5)));
    const whole = Buffer.from(new InboundTranscoder().transcode(codes.toString('base64')), 'base64');
    const transcoder = new InboundTranscoder();
    const parts: Buffer[] = [];
    let offset = 0;
    let held = 0;
    let n = 0;
    for (const size of randomChunkSizes(codes.length, 3, 700)) {
      transcoder.push(codes.subarray(offset, offset + size).toString('base64'));
      offset += size;
      held += size;
      expect(transcoder.heldMs).toBe(held / 8);
      // take after every third push: up to ~260 ms held at once, past the 100 ms of scratch
      if (++n % 3 === 0) {
        parts.push(Buffer.from(transcoder.take(), 'base64'));
        held = 0;
        expect(transcoder.heldMs).toBe(0);
      }
    }
    parts.push(Buffer.from(transcoder.take(), 'base64'));
    expect(transcoder.take()).toBe('');
    expect(concatBuffers(parts).equals(whole)).toBe(true);
  });

  it('reset() drops what is held', () => {
    const transcoder = new InboundTranscoder();
    transcoder.push(Buffer.alloc(FRAME_BYTES, 0x12).toString('base64'));
    expect(transcoder.heldMs).toBe(20);
    transcoder.reset();
    expect(transcoder.heldMs).toBe(0);
    expect(transcoder.take()).toBe('');
  });

  it('reset() forgets the resampler history', () => {
    const a = Buffer.from(mulawOf(randomPcm(300, 3))).toString('base64');
    const b = Buffer.from(mulawOf(randomPcm(300, 4))).toString('base64');
    const fresh = new InboundTranscoder().transcode(b);
    const reused = new InboundTranscoder();
    reused.transcode(a);
    expect(reused.transcode(b)).not.toBe(fresh);
    reused.reset();
    reused.transcode(a);
    reused.reset();
    expect(reused.transcode(b)).toBe(fresh);
  });

  it(`keeps >= ${INBOUND_MIN_SNR_WITH_MULAW_DB} dB in-band SNR and <= ${INBOUND_MAX_IMAGING_DB} dB imaging end to end`, () => {
    const tones = makeMultitone();
    const samples8k = 4000;
    const codes = Buffer.from(mulawOf(quantizeInt16(renderTones(tones, RATE_8K_HZ, samples8k))));
    const transcoder = new InboundTranscoder();
    const parts: Buffer[] = [];
    for (let i = 0; i < samples8k; i += FRAME_BYTES) {
      parts.push(Buffer.from(transcoder.transcode(codes.subarray(i, i + FRAME_BYTES).toString('base64')), 'base64'));
    }
    const out = readPcm16Le(concatBuffers(parts).toString('base64'));
    const reference = renderTones(tones, RATE_24K_HZ, out.length, UPSAMPLER_DELAY_SAMPLES_24K);
    const start = 1200;
    const fftSize = 8192;
    expect(inBandSnrDb(out, reference, RATE_24K_HZ, start, fftSize)).toBeGreaterThanOrEqual(
      INBOUND_MIN_SNR_WITH_MULAW_DB,
    );
    // mu-law noise is white up to 4 kHz, so its images are filtered like the signal's.
    const spectrum = powerSpectrum(out, start, fftSize);
    const imagingDb = powerRatioDb(
      bandPower(spectrum, RATE_24K_HZ, IMAGING_FLOOR_HZ, RATE_24K_HZ / 2),
      bandPower(spectrum, RATE_24K_HZ, TELEPHONE_BAND_LOW_HZ, TELEPHONE_BAND_HIGH_HZ),
    );
    expect(imagingDb).toBeLessThanOrEqual(INBOUND_MAX_IMAGING_DB);
  });
});

describe('OutboundTranscoder (Realtime -> Twilio)', () => {
  it('turns 20 ms of 24 kHz PCM16 into 160 mu-law bytes at once; flush adds only the drained filter delay', () => {
    const transcoder = new OutboundTranscoder();
    transcoder.push(Buffer.alloc(480 * 2).toString('base64'));
    expect(transcoder.pendingBytes).toBe(FRAME_BYTES);
    const body = Buffer.from(transcoder.take(), 'base64');
    expect(body.length).toBe(FRAME_BYTES);
    expect(body.every((b) => b === MULAW_SILENCE)).toBe(true);
    expect(transcoder.pendingBytes).toBe(0);
    expect(transcoder.take()).toBe('');
    transcoder.flush();
    const tail = Buffer.from(transcoder.take(), 'base64');
    expect(tail.length).toBe(DOWNSAMPLER_DELAY_SAMPLES_8K);
    expect(tail.every((b) => b === MULAW_SILENCE)).toBe(true);
  });

  it('hands pending audio out oldest first, in pieces no longer than asked for', () => {
    const pcm = randomPcm(4800, 21);
    const expected = referenceOutboundItem(new Downsampler3x(), pcm);
    const transcoder = new OutboundTranscoder();
    transcoder.push(pcm16LeBytes(pcm).toString('base64'));
    transcoder.flush();
    const pieces: Buffer[] = [];
    for (const max of [1, 799, 0, 333, 10_000]) pieces.push(Buffer.from(transcoder.take(max), 'base64'));
    expect(pieces.map((p) => p.length)).toEqual([1, 799, 0, 333, expected.length - 1133]);
    expect(Buffer.concat(pieces)).toEqual(Buffer.from(expected));
  });

  it('keeps pending audio across pushes that outgrow its buffer, without losing or reordering a byte', () => {
    const pcm = randomPcm(48_000, 22); // 2 s: 16000 mu-law bytes, far over the initial room
    const bytes = pcm16LeBytes(pcm);
    const transcoder = new OutboundTranscoder();
    const pieces: Buffer[] = [];
    // Take a little after every push so the live bytes sit mid-buffer when it must grow or slide.
    for (let offset = 0; offset < bytes.length; offset += 4800) {
      transcoder.push(bytes.subarray(offset, offset + 4800).toString('base64'));
      pieces.push(Buffer.from(transcoder.take(500), 'base64'));
    }
    transcoder.flush();
    pieces.push(Buffer.from(transcoder.take(), 'base64'));
    expect(Buffer.concat(pieces)).toEqual(Buffer.from(referenceOutboundItem(new Downsampler3x(), pcm)));
  });

  it('matches Downsampler3x + encode (item, then drained filter delay) exactly, reading the input as little-endian', () => {
    const pcm = randomPcm(4800, 5);
    const expected = referenceOutboundItem(new Downsampler3x(), pcm);
    const pieces = runOutbound(new OutboundTranscoder(), pcm16LeBytes(pcm), [pcm.length * 2]);
    // 4800 samples -> 1600 at 8 kHz at once; the drain adds the filter's delay as a tail.
    expect(expected.length).toBe(1600 + DRAIN_8K);
    expect(pieces.map((f) => f.length)).toEqual([1600, DRAIN_8K]);
    expect(concatBuffers(pieces)).toEqual(Buffer.from(expected));
  });

  it('matches the reference across consecutive items: each is drained, the next starts from a clean filter', () => {
    // 1000 samples leave the decimation phase mid-cycle (1000 = 3 * 333 + 1), so the reset matters.
    const a = randomPcm(1000, 15);
    const b = randomPcm(2000, 16);
    const reference = new Downsampler3x();
    const expectedA = referenceOutboundItem(reference, a);
    const expectedB = referenceOutboundItem(reference, b);
    // ceil(1000 / 3) = 334 and ceil(2000 / 3) = 667, each with its drained tail.
    expect([expectedA.length, expectedB.length]).toEqual([334 + DRAIN_8K, 667 + DRAIN_8K]);
    // B alone through a fresh transcoder is what B must give after A.
    expect(Buffer.from(expectedB)).toEqual(Buffer.from(referenceOutboundItem(new Downsampler3x(), b)));

    const transcoder = new OutboundTranscoder();
    const piecesA = runOutbound(transcoder, pcm16LeBytes(a), [777, 1223]);
    const piecesB = runOutbound(transcoder, pcm16LeBytes(b), [4000]);
    // 777 bytes = 388 samples (+1 odd byte) -> 130 at 8 kHz; the rest -> 204; then the tail.
    expect(piecesA.map((f) => f.length)).toEqual([130, 204, DRAIN_8K]);
    expect(piecesB.map((f) => f.length)).toEqual([667, DRAIN_8K]);
    expect(concatBuffers(piecesA)).toEqual(Buffer.from(expectedA));
    expect(concatBuffers(piecesB)).toEqual(Buffer.from(expectedB));
  });

  it("emits an item's filter tail before the next item: nothing of item A leaks into item B", () => {
    const level = 20_000;
    const a = new Int16Array(4800).fill(level);
    const b = new Int16Array(4800);
    const transcoder = new OutboundTranscoder();
    const piecesA = runOutbound(transcoder, pcm16LeBytes(a), [a.length * 2]);
    const piecesB = runOutbound(transcoder, pcm16LeBytes(b), [b.length * 2]);

    // Each item: 4800 samples -> 1600 at 8 kHz, then the drained tail.
    const lengths = [1600, DOWNSAMPLER_DELAY_SAMPLES_8K];
    expect(piecesA.map((f) => f.length)).toEqual(lengths);
    expect(piecesB.map((f) => f.length)).toEqual(lengths);

    // Item B is silence from its very first byte: A's last samples did not stay in the filter.
    expect(piecesB.every((f) => f.every((byte) => byte === MULAW_SILENCE))).toBe(true);

    // A's tail carries A's energy: these are A's last DRAIN_8K samples. Drained output n is centred
    // on input 3 * (n - DRAIN_8K), so every one of them lies at least 2.5 input samples inside A. A
    // 4 kHz low-pass step response that far from the edge is within ~0.95..1.09 of the level
    // (Gibbs), so with mu-law steps every drained sample is within 15 % of A's level. The first is
    // centred a whole filter half-length before A's end: its window is inside A, so it is exact.
    const steady = decodeMulaw(mulawOf(Int16Array.of(level)))[0]!;
    const tailA = decodeMulaw(piecesA[piecesA.length - 1]!);
    expect(tailA[0]).toBe(steady);
    expect(tailA.every((v) => Math.abs(v - level) <= 0.15 * level)).toBe(true);
    // The last 20 ms of A's body is steady: the drain only appends, it does not alter A's body.
    expect(decodeMulaw(piecesA[0]!.subarray(1600 - FRAME_BYTES)).every((v) => v === steady)).toBe(true);
  });

  it('gives identical output for random byte-level chunking, including odd byte counts', () => {
    const bytes = pcm16LeBytes(randomPcm(24_000 + 77, 6));
    const whole = concatBuffers(runOutbound(new OutboundTranscoder(), bytes, [bytes.length]));
    // 24077 samples -> ceil(24077 / 3) = 8026 at 8 kHz, and the drained tail.
    expect(whole.length).toBe(8026 + DRAIN_8K);
    for (const seed of [7, 8, 9]) {
      // Max chunk 9000 bytes is larger than the initial scratch, so growth happens mid-stream.
      const sizes = randomChunkSizes(bytes.length, seed, 9000);
      expect(sizes.some((s) => s % 2 === 1)).toBe(true);
      expect(concatBuffers(runOutbound(new OutboundTranscoder(), bytes, sizes))).toEqual(whole);
    }
  });

  it('carries an odd byte to the next push', () => {
    const bytes = pcm16LeBytes(randomPcm(480, 10));
    const whole = concatBuffers(runOutbound(new OutboundTranscoder(), bytes, [960]));
    expect(concatBuffers(runOutbound(new OutboundTranscoder(), bytes, [1, 958, 1]))).toEqual(whole);
    expect(concatBuffers(runOutbound(new OutboundTranscoder(), bytes, [3, 0, 1, 955, 1]))).toEqual(whole);
  });

  it('flush drains the filter tail and drops a dangling odd byte so the next item stays aligned', () => {
    const item = pcm16LeBytes(randomPcm(300, 11));
    const transcoder = new OutboundTranscoder();
    transcoder.push(item.toString('base64'));
    transcoder.push(Buffer.of(0x7f).toString('base64')); // half a sample, never completed
    transcoder.flush();
    // 300 samples -> 100 at 8 kHz, and the drained tail; the half sample adds nothing.
    expect(transcoder.pendingBytes).toBe(100 + DRAIN_8K);
    expect(Buffer.from(transcoder.take(), 'base64')).toEqual(Buffer.from(referenceOutboundItem(new Downsampler3x(), randomPcm(300, 11))));

    // After the flush, a constant 20000 must come out as a constant 20000, not byte-shifted noise.
    transcoder.push(pcm16LeBytes(new Int16Array(4800).fill(20_000)).toString('base64'));
    const settled = decodeMulaw(Buffer.from(transcoder.take(), 'base64').subarray(100));
    const expected = decodeMulaw(mulawOf(Int16Array.of(20_000)))[0];
    expect(settled.every((v) => v === expected)).toBe(true);
  });

  it('reset() drops the pending output, the odd byte and the resampler history', () => {
    const noise = pcm16LeBytes(randomPcm(1001, 12));
    const item = pcm16LeBytes(randomPcm(2400, 13));
    const fresh = runOutbound(new OutboundTranscoder(), item, [item.length]);
    // 2400 samples -> 800 at 8 kHz, and the drained tail.
    expect(fresh.map((f) => f.length)).toEqual([800, DRAIN_8K]);

    // 2001 bytes -> 1000 samples (+ 1 odd byte) -> 334 at 8 kHz pending, none taken.
    // The next item follows reset() directly (no flush, which would reset the filter itself).
    const transcoder = new OutboundTranscoder();
    transcoder.push(noise.subarray(0, 2001).toString('base64'));
    expect(transcoder.pendingBytes).toBe(334);
    transcoder.reset();
    expect(transcoder.pendingBytes).toBe(0);
    expect(runOutbound(transcoder, item, [item.length])).toEqual(fresh);

    // flush after reset: the pending bytes are gone and the drain runs through a clean filter,
    // so all that comes out is the tail's length of silence (the noise's history would not be silent).
    const flushed = new OutboundTranscoder();
    flushed.push(noise.subarray(0, 2001).toString('base64'));
    flushed.take(100);
    flushed.reset();
    flushed.flush();
    const tail = Buffer.from(flushed.take(), 'base64');
    expect(tail.length).toBe(DOWNSAMPLER_DELAY_SAMPLES_8K);
    expect(tail.every((b) => b === MULAW_SILENCE)).toBe(true);
  });

  it(`keeps >= ${OUTBOUND_MIN_SNR_WITH_MULAW_DB} dB in-band SNR after mu-law and rejects a 6 kHz tone by >= ${-OUTBOUND_MAX_ALIAS_DB} dB`, () => {
    const tones = makeMultitone();
    const samples24k = 480 * 32;
    const bytes = pcm16LeBytes(quantizeInt16(renderTones(tones, RATE_24K_HZ, samples24k)));
    const frames = runOutbound(new OutboundTranscoder(), bytes, Array(samples24k / 480).fill(960));
    const out = decodeMulaw(concatBuffers(frames));
    // 15360 samples -> 5120 at 8 kHz, and the drained tail. The SNR window 400..4496 is steady state.
    const steadyEnd = samples24k / 3;
    expect(out.length).toBe(steadyEnd + DOWNSAMPLER_DELAY_SAMPLES_8K);
    expect(400 + 4096).toBeLessThanOrEqual(steadyEnd);
    const reference = renderTones(tones, RATE_8K_HZ, out.length, DOWNSAMPLER_DELAY_SAMPLES_8K);
    expect(inBandSnrDb(out, reference, RATE_8K_HZ, 400, 4096)).toBeGreaterThanOrEqual(OUTBOUND_MIN_SNR_WITH_MULAW_DB);

    const amplitude = 16_000;
    const tone = pcm16LeBytes(
      quantizeInt16(renderTones([{ frequencyHz: 6_000, amplitude, phaseRad: 0 }], RATE_24K_HZ, samples24k)),
    );
    const aliased = decodeMulaw(concatBuffers(runOutbound(new OutboundTranscoder(), tone, [tone.length])));
    expect(aliased.length).toBe(steadyEnd + DOWNSAMPLER_DELAY_SAMPLES_8K);
    // Steady state only, as before the drain: the drained tail is the tone's abrupt end, not aliasing.
    let energy = 0;
    for (let i = 400; i < steadyEnd; i++) energy += aliased[i]! ** 2;
    const aliasDb = powerRatioDb(energy / (steadyEnd - 400) + Number.MIN_VALUE, (amplitude * amplitude) / 2);
    expect(aliasDb).toBeLessThanOrEqual(OUTBOUND_MAX_ALIAS_DB);
  });
});
