import { describe, expect, it } from 'vitest';

import {
  DOWNSAMPLER_DELAY_SAMPLES_8K,
  Downsampler3x,
  RESAMPLER_DESIGN,
  UPSAMPLER_DELAY_SAMPLES_24K,
  Upsampler3x,
} from '../../src/audio/resampler.js';
import {
  ALIAS_PROBE_FREQUENCIES_HZ,
  IMAGING_FLOOR_HZ,
  INBOUND_MAX_IMAGING_DB,
  INBOUND_MIN_SNR_DB,
  NAIVE_DECIMATOR_DELAY_SAMPLES_8K,
  NAIVE_UPSAMPLER_DELAY_SAMPLES_24K,
  NaiveDecimator3x,
  NaiveLinearUpsampler3x,
  OUTBOUND_MAX_ALIAS_DB,
  OUTBOUND_MIN_SNR_WITH_MULAW_DB,
  type Resampler,
  RATE_24K_HZ,
  TELEPHONE_BAND_HIGH_HZ,
  TELEPHONE_BAND_LOW_HZ,
  bandPower,
  measureAliasDb,
  measureDownsampler,
  measureUpsampler,
  powerRatioDb,
  powerSpectrum,
  quantizeInt16,
  randomChunkSizes,
  renderTones,
  makeMultitone,
  RATE_8K_HZ,
  seededRandom,
} from '../support/fidelity.js';

/** The mu-law codec alone measures ~38 dB on the test signal; the inbound path must not lose much more. */
const INBOUND_MIN_SNR_WITH_MULAW_DB = 35;

function whiteNoise(length: number, seed: number, peak = 20_000): Int16Array {
  const random = seededRandom(seed);
  return Int16Array.from({ length }, () => Math.round((random() * 2 - 1) * peak));
}

function oneShot(resampler: Resampler, input: Int16Array, capacity: number): Int16Array {
  const output = new Int16Array(capacity);
  return output.slice(0, resampler.process(input, input.length, output));
}

function chunked(resampler: Resampler, input: Int16Array, capacity: number, seed: number): Int16Array {
  const output = new Int16Array(capacity);
  const scratch = new Int16Array(capacity);
  let read = 0;
  let written = 0;
  for (const size of randomChunkSizes(input.length, seed)) {
    // Hand over a fresh copy so the resampler cannot lean on the caller's buffer between calls.
    const chunk = input.slice(read, read + size);
    const n = resampler.process(chunk, size, scratch);
    output.set(scratch.subarray(0, n), written);
    read += size;
    written += n;
  }
  return output.slice(0, written);
}


/** Full-scale noise that includes both int16 extremes, so nothing relies on headroom. */
function fullScaleNoise(length: number, seed: number): Int16Array {
  const noise = whiteNoise(length, seed, 32_767);
  noise[10] = -32_768;
  noise[11] = 32_767;
  noise[length - 7] = -32_768;
  return noise;
}

/** Full-scale square wave: band-limiting makes it ring past full scale (Gibbs). */
function fullScaleSquareWave(length: number, halfPeriod: number): Int16Array {
  return Int16Array.from({ length }, (_, i) => (Math.floor(i / halfPeriod) % 2 === 0 ? 32_767 : -32_768));
}

function largestJump(signal: Int16Array): number {
  let largest = 0;
  for (let i = 1; i < signal.length; i++) largest = Math.max(largest, Math.abs(signal[i]! - signal[i - 1]!));
  return largest;
}

/**
 * The prototype re-derived from RESAMPLER_DESIGN, independently of src/audio/resampler.ts: a
 * Kaiser-windowed sinc, evaluated below in float64 direct form, with no folding or SIMD.
 */
function referencePrototype(): Float64Array {
  const { prototypeTaps, prototypeRateHz, cutoffHz, kaiserBeta } = RESAMPLER_DESIGN;
  const besselI0 = (x: number): number => {
    let sum = 1;
    let term = 1;
    for (let k = 1; k < 200; k++) {
      term *= (x / 2 / k) ** 2;
      sum += term;
    }
    return sum;
  };
  const centre = (prototypeTaps - 1) / 2;
  const fc = cutoffHz / prototypeRateHz;
  return Float64Array.from({ length: prototypeTaps }, (_, j) => {
    const offset = j - centre;
    const sinc = offset === 0 ? 2 * fc : offset % 3 === 0 ? 0 : Math.sin(2 * Math.PI * fc * offset) / (Math.PI * offset);
    return (sinc * besselI0(kaiserBeta * Math.sqrt(1 - (offset / centre) ** 2))) / besselI0(kaiserBeta);
  });
}

/** Output 3i + p = sum_t h[3t + p] x[i - t], each phase scaled to unit DC gain. */
function referenceUpsample(input: Int16Array): Float64Array {
  const h = referencePrototype();
  const output = new Float64Array(input.length * 3);
  for (let phase = 0; phase < 3; phase++) {
    let gain = 0;
    for (let j = phase; j < h.length; j += 3) gain += h[j]!;
    for (let i = 0; i < input.length; i++) {
      let acc = 0;
      for (let j = phase, t = 0; j < h.length && i - t >= 0; j += 3, t++) acc += h[j]! * input[i - t]!;
      output[3 * i + phase] = acc / gain;
    }
  }
  return output;
}

/** Output n = sum_j g[j] x[3n - j], unit DC gain. */
function referenceDownsample(input: Int16Array): Float64Array {
  const g = referencePrototype();
  const gain = g.reduce((a, b) => a + b, 0);
  const output = new Float64Array(Math.ceil(input.length / 3));
  for (let n = 0; n < output.length; n++) {
    let acc = 0;
    for (let j = 0; j < g.length && 3 * n - j >= 0; j++) acc += g[j]! * input[3 * n - j]!;
    output[n] = acc / gain;
  }
  return output;
}

/** Largest |ours - reference| and how many outputs differ from the rounded reference at all. */
function compareToReference(ours: Int16Array, reference: Float64Array): { maxError: number; mismatches: number } {
  let maxError = 0;
  let mismatches = 0;
  for (let i = 0; i < reference.length; i++) {
    const expected = Math.max(-32_768, Math.min(32_767, reference[i]!));
    maxError = Math.max(maxError, Math.abs(ours[i]! - expected));
    if (ours[i] !== Math.round(expected)) mismatches++;
  }
  return { maxError, mismatches };
}

describe('Upsampler3x (8 kHz -> 24 kHz)', () => {
  it('writes exactly three samples per input sample', () => {
    const upsampler = new Upsampler3x();
    const output = new Int16Array(30);
    expect(upsampler.process(new Int16Array(10), 10, output)).toBe(30);
    expect(upsampler.process(new Int16Array(10), 0, output)).toBe(0);
    expect(upsampler.process(new Int16Array(10), 7, output)).toBe(21);
    expect(() => upsampler.process(new Int16Array(10), 11, output)).toThrow(RangeError);
    expect(() => upsampler.process(new Int16Array(10), 10, new Int16Array(29))).toThrow(RangeError);
  });

  it('passes the original samples through unchanged, delayed by the documented group delay', () => {
    // Cutoff at 4 kHz makes the prototype a third-band filter: one branch is a pure delay.
    const input = whiteNoise(2000, 7);
    const output = oneShot(new Upsampler3x(), input, input.length * 3);
    expect(UPSAMPLER_DELAY_SAMPLES_24K % 3).toBe(0);
    const delayIn8k = UPSAMPLER_DELAY_SAMPLES_24K / 3;
    for (let n = 0; n + delayIn8k < input.length; n++) {
      if (output[3 * (n + delayIn8k)] !== input[n]) {
        expect.fail(`sample ${n}: ${output[3 * (n + delayIn8k)]} !== ${input[n]}`);
      }
    }
  });

  it('passes full-scale samples (both int16 extremes) through phase 0 exactly, in any chunking', () => {
    const input = fullScaleNoise(3000, 31);
    const delayIn8k = UPSAMPLER_DELAY_SAMPLES_24K / 3;
    for (const output of [
      oneShot(new Upsampler3x(), input, input.length * 3),
      chunked(new Upsampler3x(), input, input.length * 3, 32),
    ]) {
      for (let n = 0; n < delayIn8k; n++) expect(output[3 * n]).toBe(0);
      for (let n = 0; n + delayIn8k < input.length; n++) {
        if (output[3 * (n + delayIn8k)] !== input[n]) {
          expect.fail(`sample ${n}: ${output[3 * (n + delayIn8k)]} !== ${input[n]}`);
        }
      }
    }
  });

  it('computes the designed filter: within 0.5 of a float64 direct-form evaluation, across passes', () => {
    // Longer than one kernel pass (1024 inputs), so the history hand-over between passes counts too.
    const input = whiteNoise(3000, 41, 30_000);
    const ours = oneShot(new Upsampler3x(), input, input.length * 3);
    const { maxError, mismatches } = compareToReference(ours, referenceUpsample(input));
    // Float32 arithmetic may only tip values within a few thousandths of a rounding boundary.
    expect(maxError).toBeLessThanOrEqual(0.51);
    expect(mismatches).toBeLessThan(input.length * 3 * 0.005);
  });

  it(`keeps the images of every single in-band tone (${TELEPHONE_BAND_LOW_HZ}–${TELEPHONE_BAND_HIGH_HZ} Hz, 100 Hz grid) <= ${INBOUND_MAX_IMAGING_DB} dB`, () => {
    // A tone at the band edge puts its image right at the stopband edge; the multitone dilutes that.
    const fftSize = 8192;
    const start = 3 * 256;
    const inputLength = Math.ceil((start + fftSize) / 3) + 16;
    let worst = Number.NEGATIVE_INFINITY;
    for (let hz = TELEPHONE_BAND_LOW_HZ; hz <= TELEPHONE_BAND_HIGH_HZ; hz += 100) {
      const input = quantizeInt16(renderTones([{ frequencyHz: hz, amplitude: 10_000, phaseRad: 0.7 }], RATE_8K_HZ, inputLength));
      const spectrum = powerSpectrum(oneShot(new Upsampler3x(), input, inputLength * 3), start, fftSize);
      const imagingDb = powerRatioDb(
        bandPower(spectrum, RATE_24K_HZ, IMAGING_FLOOR_HZ, RATE_24K_HZ / 2),
        bandPower(spectrum, RATE_24K_HZ, TELEPHONE_BAND_LOW_HZ, TELEPHONE_BAND_HIGH_HZ),
      );
      worst = Math.max(worst, imagingDb);
    }
    expect(worst).toBeLessThanOrEqual(INBOUND_MAX_IMAGING_DB);
  });

  it('has exactly unit gain at DC on every output phase', () => {
    const input = new Int16Array(400).fill(-12_345);
    const output = oneShot(new Upsampler3x(), input, input.length * 3);
    const settled = output.subarray(200 * 3);
    expect(settled.every((v) => v === -12_345)).toBe(true);
  });

  it(`meets >= ${INBOUND_MIN_SNR_DB} dB telephone-band SNR and <= ${INBOUND_MAX_IMAGING_DB} dB imaging`, () => {
    const fidelity = measureUpsampler(new Upsampler3x(), UPSAMPLER_DELAY_SAMPLES_24K);
    expect(fidelity.inBandSnrDb).toBeGreaterThanOrEqual(INBOUND_MIN_SNR_DB);
    expect(fidelity.imagingDb).toBeLessThanOrEqual(INBOUND_MAX_IMAGING_DB);
    expect(fidelity.withMulawInBandSnrDb).toBeGreaterThanOrEqual(INBOUND_MIN_SNR_WITH_MULAW_DB);
  });

  it('the measurement has teeth: linear interpolation fails both bounds', () => {
    const fidelity = measureUpsampler(new NaiveLinearUpsampler3x(), NAIVE_UPSAMPLER_DELAY_SAMPLES_24K);
    expect(fidelity.imagingDb).toBeGreaterThan(INBOUND_MAX_IMAGING_DB);
    expect(fidelity.inBandSnrDb).toBeLessThan(INBOUND_MIN_SNR_DB);
  });

  it('the measurement has teeth: a misaligned delay fails the SNR bound', () => {
    const fidelity = measureUpsampler(new Upsampler3x(), UPSAMPLER_DELAY_SAMPLES_24K + 1);
    expect(fidelity.inBandSnrDb).toBeLessThan(INBOUND_MIN_SNR_DB);
  });

  it('gives bit-identical output whether fed in one go or in random chunks (sizes 1, 2, odd)', () => {
    const input = whiteNoise(5000, 11);
    const whole = oneShot(new Upsampler3x(), input, input.length * 3);
    for (const seed of [1, 2, 3]) {
      expect(chunked(new Upsampler3x(), input, input.length * 3, seed)).toEqual(whole);
    }
  });

  it('reset() returns to the freshly constructed state', () => {
    const input = whiteNoise(500, 5);
    const fresh = oneShot(new Upsampler3x(), input, 1500);
    const reused = new Upsampler3x();
    oneShot(reused, whiteNoise(333, 6), 999);
    reused.reset();
    expect(oneShot(reused, input, 1500)).toEqual(fresh);
  });

  it('keeps instances independent (coefficients shared, history not)', () => {
    const a = whiteNoise(900, 21);
    const b = whiteNoise(900, 22);
    const expectedA = oneShot(new Upsampler3x(), a, 2700);
    const expectedB = oneShot(new Upsampler3x(), b, 2700);
    const ua = new Upsampler3x();
    const ub = new Upsampler3x();
    const outA = new Int16Array(2700);
    const outB = new Int16Array(2700);
    for (let i = 0; i < 900; i += 90) {
      ua.process(a.subarray(i, i + 90), 90, outA.subarray(i * 3));
      ub.process(b.subarray(i, i + 90), 90, outB.subarray(i * 3));
    }
    expect(outA).toEqual(expectedA);
    expect(outB).toEqual(expectedB);
  });

  it('clamps overshoot to int16 instead of wrapping', () => {
    // A full-scale square wave rings above full scale after band-limiting.
    const input = fullScaleSquareWave(800, 8);
    const output = oneShot(new Upsampler3x(), input, 2400);
    expect(Math.max(...output)).toBe(32767);
    expect(Math.min(...output)).toBe(-32768);
    expect(largestJump(output)).toBeLessThan(40_000);
  });
});

describe('Downsampler3x (24 kHz -> 8 kHz)', () => {
  it('emits one sample per three inputs, keeping phase across calls of any length', () => {
    const downsampler = new Downsampler3x();
    const output = new Int16Array(10);
    expect(downsampler.outputLengthFor(1)).toBe(1);
    expect(downsampler.process(new Int16Array(1), 1, output)).toBe(1);
    expect(downsampler.outputLengthFor(2)).toBe(0);
    expect(downsampler.process(new Int16Array(2), 2, output)).toBe(0);
    expect(downsampler.outputLengthFor(4)).toBe(2);
    expect(downsampler.process(new Int16Array(4), 4, output)).toBe(2);
    // 7 inputs so far, the next output falls on input 9 (the 3rd of the next call).
    expect(downsampler.outputLengthFor(2)).toBe(0);
    expect(downsampler.outputLengthFor(3)).toBe(1);
    expect(downsampler.process(new Int16Array(30), 30, output)).toBe(10);
    expect(() => downsampler.process(new Int16Array(30), 30, new Int16Array(9))).toThrow(RangeError);
  });

  it('has the documented group delay and unit gain at DC', () => {
    const impulse = new Int16Array(600);
    impulse[300] = 30_000;
    const response = oneShot(new Downsampler3x(), impulse, 200);
    let peakIndex = 0;
    for (let i = 0; i < response.length; i++) if (response[i]! > response[peakIndex]!) peakIndex = i;
    expect(peakIndex).toBe(300 / 3 + DOWNSAMPLER_DELAY_SAMPLES_8K);

    const dc = oneShot(new Downsampler3x(), new Int16Array(900).fill(23_456), 300);
    expect(dc.subarray(100).every((v) => v === 23_456)).toBe(true);
  });

  it(`meets >= ${OUTBOUND_MIN_SNR_WITH_MULAW_DB} dB telephone-band SNR after mu-law`, () => {
    const fidelity = measureDownsampler(new Downsampler3x(), DOWNSAMPLER_DELAY_SAMPLES_8K);
    expect(fidelity.withMulawInBandSnrDb).toBeGreaterThanOrEqual(OUTBOUND_MIN_SNR_WITH_MULAW_DB);
    // Before mu-law the resampler itself must be far cleaner than the codec.
    expect(fidelity.inBandSnrDb).toBeGreaterThanOrEqual(INBOUND_MIN_SNR_DB);
  });

  it.each(ALIAS_PROBE_FREQUENCIES_HZ)(`attenuates a %d Hz input tone by >= ${-OUTBOUND_MAX_ALIAS_DB} dB`, (toneHz) => {
    expect(measureAliasDb(new Downsampler3x(), toneHz)).toBeLessThanOrEqual(OUTBOUND_MAX_ALIAS_DB);
  });

  it('computes the designed filter: within 0.5 of a float64 direct-form evaluation, across passes', () => {
    // Longer than one kernel pass (1024 inputs) and not a multiple of 3.
    const input = whiteNoise(9001, 42, 30_000);
    const ours = oneShot(new Downsampler3x(), input, Math.ceil(input.length / 3));
    const reference = referenceDownsample(input);
    expect(ours.length).toBe(reference.length);
    const { maxError, mismatches } = compareToReference(ours, reference);
    expect(maxError).toBeLessThanOrEqual(0.51);
    expect(mismatches).toBeLessThan(reference.length * 0.005);
  });

  it(`attenuates every tone from 4.6 to 12 kHz (100 Hz grid) by >= ${-OUTBOUND_MAX_ALIAS_DB} dB, not only the probes`, () => {
    // The probes could sit on a stopband null; the grid cannot all do so.
    const downsampler = new Downsampler3x();
    let worst = { toneHz: 0, aliasDb: Number.NEGATIVE_INFINITY };
    for (let toneHz = 4_600; toneHz < RATE_24K_HZ / 2; toneHz += 100) {
      const aliasDb = measureAliasDb(downsampler, toneHz);
      if (aliasDb > worst.aliasDb) worst = { toneHz, aliasDb };
    }
    expect(worst.aliasDb, `worst at ${worst.toneHz} Hz`).toBeLessThanOrEqual(OUTBOUND_MAX_ALIAS_DB);
  });

  it('clamps overshoot to int16 instead of wrapping', () => {
    // 500 Hz full-scale square wave at 24 kHz: the decimated, band-limited edges ring past full scale.
    const input = fullScaleSquareWave(2400, 24);
    const output = oneShot(new Downsampler3x(), input, 800);
    const reference = referenceDownsample(input);
    expect(Math.max(...reference)).toBeGreaterThan(33_000);
    expect(Math.min(...reference)).toBeLessThan(-33_000);
    expect(Math.max(...output)).toBe(32767);
    expect(Math.min(...output)).toBe(-32768);
    // A wrapped sample would be ~65536 off the (clamped) reference.
    expect(compareToReference(output, reference).maxError).toBeLessThanOrEqual(0.51);
  });

  it('passes full-scale noise in random chunks bit-identically to one shot', () => {
    const input = fullScaleNoise(6001, 43);
    const capacity = Math.ceil(input.length / 3);
    const whole = oneShot(new Downsampler3x(), input, capacity);
    expect(chunked(new Downsampler3x(), input, capacity, 44)).toEqual(whole);
  });

  it.each([6_000, 9_000])('the measurement has teeth: plain decimation folds %d Hz into the band', (toneHz) => {
    expect(measureAliasDb(new NaiveDecimator3x(), toneHz)).toBeGreaterThan(OUTBOUND_MAX_ALIAS_DB);
  });

  it('the measurement has teeth: a misaligned delay fails the SNR bound', () => {
    const fidelity = measureDownsampler(new Downsampler3x(), DOWNSAMPLER_DELAY_SAMPLES_8K + 1);
    expect(fidelity.withMulawInBandSnrDb).toBeLessThan(OUTBOUND_MIN_SNR_WITH_MULAW_DB);
    // Plain decimation is exact on in-band tones, so it passes SNR: aliasing is what it gets wrong.
    const naive = measureDownsampler(new NaiveDecimator3x(), NAIVE_DECIMATOR_DELAY_SAMPLES_8K);
    expect(naive.withMulawInBandSnrDb).toBeGreaterThanOrEqual(OUTBOUND_MIN_SNR_WITH_MULAW_DB);
  });

  it('gives bit-identical output whether fed in one go or in random chunks (sizes 1, 2, odd)', () => {
    const input = whiteNoise(15_001, 12);
    const capacity = Math.ceil(input.length / 3);
    const whole = oneShot(new Downsampler3x(), input, capacity);
    expect(whole.length).toBe(capacity);
    for (const seed of [4, 5, 6]) {
      expect(chunked(new Downsampler3x(), input, capacity, seed)).toEqual(whole);
    }
  });

  it('reset() returns to the freshly constructed state, including the decimation phase', () => {
    const input = whiteNoise(900, 8);
    const fresh = oneShot(new Downsampler3x(), input, 300);
    const reused = new Downsampler3x();
    oneShot(reused, whiteNoise(101, 9), 40);
    reused.reset();
    expect(oneShot(reused, input, 300)).toEqual(fresh);
  });

  it('round-trips in-band speech-like audio 8k -> 24k -> 8k with the combined delay', () => {
    const tones = makeMultitone();
    const input = quantizeInt16(renderTones(tones, RATE_8K_HZ, 3000));
    const up = oneShot(new Upsampler3x(), input, 9000);
    const down = oneShot(new Downsampler3x(), up, 3000);
    const delay8k = UPSAMPLER_DELAY_SAMPLES_24K / 3 + DOWNSAMPLER_DELAY_SAMPLES_8K;
    const reference = renderTones(tones, RATE_8K_HZ, 3000, delay8k);
    let signal = 0;
    let noise = 0;
    for (let i = 500; i < 2900; i++) {
      signal += reference[i]! ** 2;
      noise += (down[i]! - reference[i]!) ** 2;
    }
    expect(10 * Math.log10(signal / noise)).toBeGreaterThanOrEqual(INBOUND_MIN_SNR_DB);
  });
});
