/**
 * Signal generation, spectral measurement and naive baselines shared by the audio unit tests
 * and scripts/bench.ts, so the bench prints exactly the figures the tests assert on.
 */

import { mulawDecode, mulawEncode } from '../../src/audio/g711.js';

export const RATE_8K_HZ = 8_000;
export const RATE_24K_HZ = 24_000;
export const TELEPHONE_BAND_LOW_HZ = 300;
export const TELEPHONE_BAND_HIGH_HZ = 3_400;
/** Images of 300–3400 Hz content start at 4600 Hz; the bound leaves a 200 Hz guard below that. */
export const IMAGING_FLOOR_HZ = 4_400;
/** Total RMS of the multitone test signal: a realistic speech level, well clear of clipping. */
export const TEST_SIGNAL_RMS_DBFS = -15;
export const INT16_FULL_SCALE = 32767;

/** Bounds the tests assert and the bench reports against. */
export const INBOUND_MIN_SNR_DB = 40;
export const INBOUND_MAX_IMAGING_DB = -60;
export const OUTBOUND_MIN_SNR_WITH_MULAW_DB = 35;
export const OUTBOUND_MAX_ALIAS_DB = -50;

/** The resampler shape shared by our filters and the naive baselines. */
export interface Resampler {
  process(input: Int16Array, inputLength: number, output: Int16Array): number;
  reset(): void;
}

/** Deterministic PRNG (mulberry32) so failures reproduce. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Tone {
  frequencyHz: number;
  amplitude: number;
  phaseRad: number;
}

/** Spread across the telephone band, up to its edges, on deliberately non-harmonic frequencies. */
export const TELEPHONE_TEST_FREQUENCIES_HZ: readonly number[] = [
  313, 587, 941, 1297, 1733, 2203, 2711, 3089, 3371,
];

/** Equal-amplitude tones with seeded random phases, scaled to `rmsDbfs` total RMS. */
export function makeMultitone(
  frequenciesHz: readonly number[] = TELEPHONE_TEST_FREQUENCIES_HZ,
  rmsDbfs: number = TEST_SIGNAL_RMS_DBFS,
  seed = 1,
): Tone[] {
  const random = seededRandom(seed);
  const totalRms = INT16_FULL_SCALE * 10 ** (rmsDbfs / 20);
  const amplitude = totalRms * Math.sqrt(2 / frequenciesHz.length);
  return frequenciesHz.map((frequencyHz) => ({
    frequencyHz,
    amplitude,
    phaseRad: 2 * Math.PI * random(),
  }));
}

/** Ideal (continuous-time) signal sampled at `sampleRateHz`, shifted later by `delaySamples`. */
export function renderTones(
  tones: readonly Tone[],
  sampleRateHz: number,
  length: number,
  delaySamples = 0,
): Float64Array {
  const out = new Float64Array(length);
  for (const tone of tones) {
    const step = (2 * Math.PI * tone.frequencyHz) / sampleRateHz;
    for (let n = 0; n < length; n++) {
      out[n] = out[n]! + tone.amplitude * Math.sin(step * (n - delaySamples) + tone.phaseRad);
    }
  }
  return out;
}

export function quantizeInt16(signal: Float64Array): Int16Array {
  const out = new Int16Array(signal.length);
  for (let i = 0; i < signal.length; i++) {
    const v = Math.round(signal[i]!);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

/** In-place iterative radix-2 FFT; `re.length` must be a power of two. */
export function fftInPlace(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (n === 0 || (n & (n - 1)) !== 0 || im.length !== n) {
    throw new RangeError(`fft: length ${n} is not a power of two (or im length differs)`);
  }
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; (j & bit) !== 0; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i]!;
      re[i] = re[j]!;
      re[j] = tr;
      const ti = im[i]!;
      im[i] = im[j]!;
      im[j] = ti;
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const angle = (-2 * Math.PI) / size;
    for (let k = 0; k < half; k++) {
      const wr = Math.cos(angle * k);
      const wi = Math.sin(angle * k);
      for (let start = 0; start < n; start += size) {
        const a = start + k;
        const b = a + half;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
}

/**
 * Hann-windowed power spectrum (bins 0..N/2) of `signal[start, start + fftSize)`. Only ratios of
 * band powers are used, so the window's gain needs no correction.
 */
export function powerSpectrum(
  signal: ArrayLike<number>,
  start: number,
  fftSize: number,
): Float64Array {
  if (start < 0 || start + fftSize > signal.length) {
    throw new RangeError(`powerSpectrum: segment [${start}, ${start + fftSize}) outside signal`);
  }
  const re = new Float64Array(fftSize);
  const im = new Float64Array(fftSize);
  for (let i = 0; i < fftSize; i++) {
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / fftSize);
    re[i] = signal[start + i]! * hann;
  }
  fftInPlace(re, im);
  const power = new Float64Array(fftSize / 2 + 1);
  for (let k = 0; k <= fftSize / 2; k++) power[k] = re[k]! * re[k]! + im[k]! * im[k]!;
  return power;
}

/** Sum of spectrum bins whose centre frequency lies in [lowHz, highHz]. */
export function bandPower(
  spectrum: Float64Array,
  sampleRateHz: number,
  lowHz: number,
  highHz: number,
): number {
  const fftSize = (spectrum.length - 1) * 2;
  const binHz = sampleRateHz / fftSize;
  const first = Math.max(0, Math.ceil(lowHz / binHz));
  const last = Math.min(spectrum.length - 1, Math.floor(highHz / binHz));
  let sum = 0;
  for (let k = first; k <= last; k++) sum += spectrum[k]!;
  return sum;
}

export function powerRatioDb(numerator: number, denominator: number): number {
  return 10 * Math.log10(numerator / denominator);
}

function difference(actual: ArrayLike<number>, reference: Float64Array): Float64Array {
  const error = new Float64Array(reference.length);
  for (let i = 0; i < reference.length; i++) error[i] = actual[i]! - reference[i]!;
  return error;
}

/** Reference energy over error energy, both restricted to the telephone band. */
export function inBandSnrDb(
  actual: ArrayLike<number>,
  reference: Float64Array,
  sampleRateHz: number,
  start: number,
  fftSize: number,
): number {
  const signal = bandPower(
    powerSpectrum(reference, start, fftSize),
    sampleRateHz,
    TELEPHONE_BAND_LOW_HZ,
    TELEPHONE_BAND_HIGH_HZ,
  );
  const noise = bandPower(
    powerSpectrum(difference(actual, reference), start, fftSize),
    sampleRateHz,
    TELEPHONE_BAND_LOW_HZ,
    TELEPHONE_BAND_HIGH_HZ,
  );
  return powerRatioDb(signal, noise);
}

/** Runs a whole signal through `resampler` in one call, sizing the output generously. */
export function runResampler(
  resampler: Resampler,
  input: Int16Array,
  outputCapacity: number,
): Int16Array {
  const output = new Int16Array(outputCapacity);
  const written = resampler.process(input, input.length, output);
  return output.subarray(0, written);
}

// --- naive baselines -------------------------------------------------------------------------

/** Linear interpolation 8 kHz -> 24 kHz: what "just interpolate" gives you. */
export class NaiveLinearUpsampler3x implements Resampler {
  private previous = 0;

  process(input: Int16Array, inputLength: number, output: Int16Array): number {
    let out = 0;
    for (let i = 0; i < inputLength; i++) {
      const current = input[i]!;
      const previous = this.previous;
      output[out++] = Math.round(previous + (current - previous) / 3);
      output[out++] = Math.round(previous + ((current - previous) * 2) / 3);
      output[out++] = current;
      this.previous = current;
    }
    return out;
  }

  reset(): void {
    this.previous = 0;
  }
}
/** Output m of the linear interpolator is input time (m - 2) / 3. */
export const NAIVE_UPSAMPLER_DELAY_SAMPLES_24K = 2;

/** Plain decimation (every third sample, no anti-alias filter). */
export class NaiveDecimator3x implements Resampler {
  private samplesUntilOutput = 0;

  process(input: Int16Array, inputLength: number, output: Int16Array): number {
    let out = 0;
    for (let i = 0; i < inputLength; i++) {
      if (this.samplesUntilOutput === 0) {
        output[out++] = input[i]!;
        this.samplesUntilOutput = 2;
      } else {
        this.samplesUntilOutput--;
      }
    }
    return out;
  }

  reset(): void {
    this.samplesUntilOutput = 0;
  }
}
export const NAIVE_DECIMATOR_DELAY_SAMPLES_8K = 0;

// --- pipeline measurements -------------------------------------------------------------------

/** Samples skipped at the start of every measurement so filter warm-up is excluded. */
const WARM_UP_SAMPLES_8K = 256;
const FFT_SIZE_8K = 4096;
const FFT_SIZE_24K = 8192;

export interface UpsamplerFidelity {
  /** Telephone-band SNR against ideal 24 kHz tones, resampler only (PCM16 in). */
  inBandSnrDb: number;
  /** Energy above IMAGING_FLOOR_HZ relative to telephone-band energy (negative = below). */
  imagingDb: number;
  /** Telephone-band SNR of the whole inbound path, mu-law 8 kHz -> PCM16 24 kHz. */
  withMulawInBandSnrDb: number;
}

export function measureUpsampler(resampler: Resampler, delaySamples24k: number): UpsamplerFidelity {
  const tones = makeMultitone();
  const start24k = WARM_UP_SAMPLES_8K * 3;
  const inputLength = Math.ceil((start24k + FFT_SIZE_24K) / 3) + WARM_UP_SAMPLES_8K;
  const input = quantizeInt16(renderTones(tones, RATE_8K_HZ, inputLength));
  const reference = renderTones(tones, RATE_24K_HZ, inputLength * 3, delaySamples24k);

  resampler.reset();
  const output = runResampler(resampler, input, inputLength * 3);
  const resamplerSnrDb = inBandSnrDb(output, reference, RATE_24K_HZ, start24k, FFT_SIZE_24K);
  const spectrum = powerSpectrum(output, start24k, FFT_SIZE_24K);
  const imagingDb = powerRatioDb(
    bandPower(spectrum, RATE_24K_HZ, IMAGING_FLOOR_HZ, RATE_24K_HZ / 2),
    bandPower(spectrum, RATE_24K_HZ, TELEPHONE_BAND_LOW_HZ, TELEPHONE_BAND_HIGH_HZ),
  );

  const mulaw = new Uint8Array(inputLength);
  mulawEncode(input, mulaw);
  const decoded = new Int16Array(inputLength);
  mulawDecode(mulaw, decoded);
  resampler.reset();
  const viaMulaw = runResampler(resampler, decoded, inputLength * 3);
  const pipelineSnrDb = inBandSnrDb(viaMulaw, reference, RATE_24K_HZ, start24k, FFT_SIZE_24K);
  resampler.reset();
  return { inBandSnrDb: resamplerSnrDb, imagingDb, withMulawInBandSnrDb: pipelineSnrDb };
}

export interface DownsamplerFidelity {
  /** Telephone-band SNR against ideal 8 kHz tones, resampler only. */
  inBandSnrDb: number;
  /** Same, after mu-law encode + decode: what Twilio actually plays. */
  withMulawInBandSnrDb: number;
}

export function measureDownsampler(resampler: Resampler, delaySamples8k: number): DownsamplerFidelity {
  const tones = makeMultitone();
  const outputLength = WARM_UP_SAMPLES_8K * 2 + FFT_SIZE_8K;
  const input = quantizeInt16(renderTones(tones, RATE_24K_HZ, outputLength * 3));
  const reference = renderTones(tones, RATE_8K_HZ, outputLength, delaySamples8k);

  resampler.reset();
  const output = runResampler(resampler, input, outputLength + 1);
  const mulaw = new Uint8Array(output.length);
  mulawEncode(output, mulaw);
  const decoded = new Int16Array(output.length);
  mulawDecode(mulaw, decoded);
  resampler.reset();
  return {
    inBandSnrDb: inBandSnrDb(output, reference, RATE_8K_HZ, WARM_UP_SAMPLES_8K, FFT_SIZE_8K),
    withMulawInBandSnrDb: inBandSnrDb(decoded, reference, RATE_8K_HZ, WARM_UP_SAMPLES_8K, FFT_SIZE_8K),
  };
}

/** Frequencies above 4 kHz that plain decimation folds straight into the telephone band. */
export const ALIAS_PROBE_FREQUENCIES_HZ: readonly number[] = [4_700, 6_000, 9_000, 11_000];
/** A loud out-of-band tone makes the worst case: -6 dBFS peak. */
export const ALIAS_PROBE_AMPLITUDE = INT16_FULL_SCALE / 2;

/**
 * Output power at 8 kHz relative to the power of a single `toneHz` sine at the 24 kHz input
 * (0 dB = passed straight through, negative = attenuated).
 */
export function measureAliasDb(resampler: Resampler, toneHz: number): number {
  const tones: Tone[] = [{ frequencyHz: toneHz, amplitude: ALIAS_PROBE_AMPLITUDE, phaseRad: 0.3 }];
  const outputLength = WARM_UP_SAMPLES_8K * 2 + FFT_SIZE_8K;
  const input = quantizeInt16(renderTones(tones, RATE_24K_HZ, outputLength * 3));
  resampler.reset();
  const output = runResampler(resampler, input, outputLength + 1);
  resampler.reset();
  let outputEnergy = 0;
  for (let i = WARM_UP_SAMPLES_8K; i < WARM_UP_SAMPLES_8K + FFT_SIZE_8K; i++) {
    outputEnergy += output[i]! * output[i]!;
  }
  const outputPower = outputEnergy / FFT_SIZE_8K;
  const inputPower = (ALIAS_PROBE_AMPLITUDE * ALIAS_PROBE_AMPLITUDE) / 2;
  return powerRatioDb(outputPower, inputPower);
}

/** Worst (highest) alias level over ALIAS_PROBE_FREQUENCIES_HZ. */
export function worstAliasDb(makeResampler: () => Resampler): { toneHz: number; aliasDb: number } {
  let worst = { toneHz: 0, aliasDb: Number.NEGATIVE_INFINITY };
  for (const toneHz of ALIAS_PROBE_FREQUENCIES_HZ) {
    const aliasDb = measureAliasDb(makeResampler(), toneHz);
    if (aliasDb > worst.aliasDb) worst = { toneHz, aliasDb };
  }
  return worst;
}

/** Splits `total` into random chunk sizes that always include 1, 2 and some odd sizes. */
export function randomChunkSizes(total: number, seed: number, maxChunk = 700): number[] {
  const random = seededRandom(seed);
  const sizes: number[] = [];
  const forced = [1, 2, 1, 3, 7, 1];
  let remaining = total;
  for (let i = 0; remaining > 0; i++) {
    const want = i < forced.length ? forced[i]! : 1 + Math.floor(random() * maxChunk);
    const size = Math.min(want, remaining);
    sizes.push(size);
    remaining -= size;
  }
  return sizes;
}
