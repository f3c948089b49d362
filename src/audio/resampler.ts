/**
 * Stateful 3x polyphase FIR resamplers between 8 kHz (Twilio) and 24 kHz (Realtime).
 *
 * One Kaiser-windowed-sinc prototype at 24 kHz serves both directions:
 *  - cutoff 4000 Hz (the 8 kHz Nyquist), so passband 0–3400 Hz and stopband from 4600 Hz are
 *    symmetric about it; images/aliases of 300–3400 Hz speech land at >= 4600 Hz and are removed;
 *  - 121 taps, beta 8.5: measured ~87 dB stopband from 4600 Hz, < 0.001 dB passband ripple;
 *  - the cutoff being exactly fs_in/2 makes it a Nyquist (third-band) filter: every third tap
 *    of the interpolator is zero except the centre, so the upsampler passes the original 8 kHz
 *    samples through unchanged and only synthesises the two samples in between.
 *
 * Length 6m+1 gives a linear-phase delay of 3m samples at 24 kHz, i.e. a whole m samples at
 * 8 kHz, so both directions have an integer, documented delay for alignment.
 *
 * History is kept across `process` calls in a doubled ring (every sample is written twice,
 * K apart) so the newest K samples are always contiguous: the per-sample work does not depend on
 * how the stream is chunked, which makes chunked output bit-identical to one-shot output.
 */

const RESAMPLE_FACTOR = 3;
const PROTOTYPE_RATE_HZ = 24_000;
const PROTOTYPE_CUTOFF_HZ = 4_000;
/** Must be 6m+1 so the delay is whole at both 24 kHz and 8 kHz. */
const PROTOTYPE_TAPS = 121;
/** Chosen by sweeping beta at 121 taps for the deepest stopband from 4600 Hz (~87 dB). */
const KAISER_BETA = 8.5;

const PROTOTYPE_CENTRE_TAP = (PROTOTYPE_TAPS - 1) / 2;

/** Output sample m of the upsampler corresponds to input time (m - this) / 3. */
export const UPSAMPLER_DELAY_SAMPLES_24K = PROTOTYPE_CENTRE_TAP;
/** Output sample n of the downsampler corresponds to input time 3 * (n - this). */
export const DOWNSAMPLER_DELAY_SAMPLES_8K = PROTOTYPE_CENTRE_TAP / RESAMPLE_FACTOR;

/** Same delay expressed in ms, for the call layer's latency accounting. */
export const RESAMPLER_DELAY_MS = (PROTOTYPE_CENTRE_TAP * 1000) / PROTOTYPE_RATE_HZ;

const INT16_MAX = 32767;
const INT16_MIN = -32768;

function besselI0(x: number): number {
  // Power series; converges quickly for the beta range used by Kaiser windows (< 20).
  const halfX = x / 2;
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 100; k++) {
    term *= (halfX / k) * (halfX / k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function designPrototype(): Float64Array {
  const taps = new Float64Array(PROTOTYPE_TAPS);
  const normalisedCutoff = PROTOTYPE_CUTOFF_HZ / PROTOTYPE_RATE_HZ;
  const windowNorm = besselI0(KAISER_BETA);
  for (let j = 0; j < PROTOTYPE_TAPS; j++) {
    const offset = j - PROTOTYPE_CENTRE_TAP;
    const ratio = offset / PROTOTYPE_CENTRE_TAP;
    const window = besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - ratio * ratio))) / windowNorm;
    let sinc: number;
    if (offset === 0) sinc = 2 * normalisedCutoff;
    // Exact zeros (rather than sin(pi*k) ~ 1e-16) keep the interpolator's Nyquist property exact.
    else if (offset % RESAMPLE_FACTOR === 0) sinc = 0;
    else sinc = Math.sin(2 * Math.PI * normalisedCutoff * offset) / (Math.PI * offset);
    taps[j] = sinc * window;
  }
  return taps;
}

const PROTOTYPE = designPrototype();

/** Taps per polyphase branch of the interpolator (prototype zero-padded to a multiple of 3). */
const UPSAMPLER_TAPS_PER_PHASE = Math.ceil(PROTOTYPE_TAPS / RESAMPLE_FACTOR);

/** Design parameters, exported so the benchmark can report exactly what it measured. */
export const RESAMPLER_DESIGN = {
  prototypeRateHz: PROTOTYPE_RATE_HZ,
  cutoffHz: PROTOTYPE_CUTOFF_HZ,
  prototypeTaps: PROTOTYPE_TAPS,
  kaiserBeta: KAISER_BETA,
  upsamplerTapsPerPhase: UPSAMPLER_TAPS_PER_PHASE,
} as const;

/**
 * Interpolator branches, laid out phase-major and time-reversed so each output is a forward dot
 * product over the contiguous history window (oldest first). Each branch is normalised to unit
 * DC gain on its own; normalising only the whole filter would leave a small 8 kHz-periodic
 * ripple on constant input.
 */
const UPSAMPLER_BRANCHES: Float64Array = (() => {
  const k = UPSAMPLER_TAPS_PER_PHASE;
  const branches = new Float64Array(RESAMPLE_FACTOR * k);
  for (let phase = 0; phase < RESAMPLE_FACTOR; phase++) {
    let sum = 0;
    for (let tap = 0; tap < k; tap++) {
      const j = tap * RESAMPLE_FACTOR + phase;
      sum += j < PROTOTYPE_TAPS ? PROTOTYPE[j]! : 0;
    }
    for (let tap = 0; tap < k; tap++) {
      const j = tap * RESAMPLE_FACTOR + phase;
      const coefficient = j < PROTOTYPE_TAPS ? PROTOTYPE[j]! / sum : 0;
      branches[phase * k + (k - 1 - tap)] = coefficient;
    }
  }
  return branches;
})();

/** Decimator taps, unit DC gain; symmetric, so no reversal is needed for the dot product. */
const DOWNSAMPLER_TAPS: Float64Array = (() => {
  let sum = 0;
  for (let j = 0; j < PROTOTYPE_TAPS; j++) sum += PROTOTYPE[j]!;
  const taps = new Float64Array(PROTOTYPE_TAPS);
  for (let j = 0; j < PROTOTYPE_TAPS; j++) taps[j] = PROTOTYPE[j]! / sum;
  return taps;
})();

function toInt16(value: number): number {
  const rounded = Math.round(value);
  if (rounded > INT16_MAX) return INT16_MAX;
  if (rounded < INT16_MIN) return INT16_MIN;
  return rounded;
}

function checkInput(input: Int16Array, inputLength: number): void {
  if (!Number.isInteger(inputLength) || inputLength < 0 || inputLength > input.length) {
    throw new RangeError(`resampler: inputLength ${inputLength} out of range (0..${input.length})`);
  }
}

/** 8 kHz -> 24 kHz. Writes exactly 3 output samples per input sample. */
export class Upsampler3x {
  /** Doubled ring: sample at slot s is also stored at s + K. */
  private readonly history = new Float64Array(2 * UPSAMPLER_TAPS_PER_PHASE);
  /** Slot the next input sample goes into. */
  private writeSlot = 0;

  process(input: Int16Array, inputLength: number, output: Int16Array): number {
    checkInput(input, inputLength);
    const outputLength = inputLength * RESAMPLE_FACTOR;
    if (output.length < outputLength) {
      throw new RangeError(`Upsampler3x: output holds ${output.length}, needs ${outputLength}`);
    }
    const k = UPSAMPLER_TAPS_PER_PHASE;
    const history = this.history;
    const branches = UPSAMPLER_BRANCHES;
    let slot = this.writeSlot;
    let out = 0;
    for (let i = 0; i < inputLength; i++) {
      const sample = input[i]!;
      history[slot] = sample;
      history[slot + k] = sample;
      // Newest K samples, oldest first, now live at [slot + 1, slot + K].
      const windowStart = slot + 1;
      for (let phase = 0; phase < RESAMPLE_FACTOR; phase++) {
        const branchStart = phase * k;
        let acc = 0;
        for (let tap = 0; tap < k; tap++) acc += branches[branchStart + tap]! * history[windowStart + tap]!;
        output[out++] = toInt16(acc);
      }
      slot = slot + 1 === k ? 0 : slot + 1;
    }
    this.writeSlot = slot;
    return outputLength;
  }

  reset(): void {
    this.history.fill(0);
    this.writeSlot = 0;
  }
}

/**
 * 24 kHz -> 8 kHz. Emits one output for every third input sample, counting across calls, so any
 * chunk size (including 1 or non-multiples of 3) is accepted.
 */
export class Downsampler3x {
  private readonly history = new Float64Array(2 * PROTOTYPE_TAPS);
  private writeSlot = 0;
  /** Input samples still to consume before the next output; 0 means the next sample emits one. */
  private samplesUntilOutput = 0;

  /** How many samples the next `process(…, inputLength, …)` call will write. */
  outputLengthFor(inputLength: number): number {
    if (inputLength <= this.samplesUntilOutput) return 0;
    return Math.floor((inputLength - this.samplesUntilOutput - 1) / RESAMPLE_FACTOR) + 1;
  }

  process(input: Int16Array, inputLength: number, output: Int16Array): number {
    checkInput(input, inputLength);
    const needed = this.outputLengthFor(inputLength);
    if (output.length < needed) {
      throw new RangeError(`Downsampler3x: output holds ${output.length}, needs ${needed}`);
    }
    const n = PROTOTYPE_TAPS;
    const history = this.history;
    const taps = DOWNSAMPLER_TAPS;
    let slot = this.writeSlot;
    let countdown = this.samplesUntilOutput;
    let out = 0;
    for (let i = 0; i < inputLength; i++) {
      const sample = input[i]!;
      history[slot] = sample;
      history[slot + n] = sample;
      if (countdown === 0) {
        const windowStart = slot + 1;
        let acc = 0;
        for (let tap = 0; tap < n; tap++) acc += taps[tap]! * history[windowStart + tap]!;
        output[out++] = toInt16(acc);
        countdown = RESAMPLE_FACTOR - 1;
      } else {
        countdown--;
      }
      slot = slot + 1 === n ? 0 : slot + 1;
    }
    this.writeSlot = slot;
    this.samplesUntilOutput = countdown;
    return out;
  }

  reset(): void {
    this.history.fill(0);
    this.writeSlot = 0;
    this.samplesUntilOutput = 0;
  }
}
