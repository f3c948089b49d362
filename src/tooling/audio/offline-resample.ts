/**
 * Whole-buffer resampling between any two rates, for recordings loaded once (replay input). Not a
 * hot path: clarity over speed. The per-call 8k<->24k paths use the polyphase filters in
 * resampler.ts instead.
 *
 * Each output sample is the input convolved with a Kaiser-windowed sinc centred on the output
 * sample's exact position in the input. The sinc's cutoff sits just below the lower of the two
 * Nyquist frequencies, so downsampling removes everything that would alias and upsampling
 * removes the images.
 */

/** Cutoff as a fraction of the lower Nyquist frequency: the rest is the transition band. */
const CUTOFF_FRACTION = 0.9;
/** Sinc zero crossings kept on each side of the centre: sets the transition band's width. */
const HALF_ZERO_CROSSINGS = 32;
/** Kaiser beta: about 80 dB of stopband attenuation. */
const KAISER_BETA = 8;
/** Kernel table resolution, in samples per zero crossing (linear interpolation in between). */
const TABLE_STEPS_PER_ZERO = 512;

/** Modified Bessel function of the first kind, order 0 (power series; converges fast for beta <= 20). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const half = x / 2;
  for (let k = 1; k < 50; k++) {
    term *= (half / k) ** 2;
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

/** The windowed sinc sampled at u = 0, 1/STEPS, 2/STEPS ... HALF_ZERO_CROSSINGS (u in zero crossings). */
function buildKernelTable(): Float64Array {
  const n = HALF_ZERO_CROSSINGS * TABLE_STEPS_PER_ZERO + 1;
  const table = new Float64Array(n + 1);
  const norm = besselI0(KAISER_BETA);
  for (let i = 0; i < n; i++) {
    const u = i / TABLE_STEPS_PER_ZERO;
    const sinc = u === 0 ? 1 : Math.sin(Math.PI * u) / (Math.PI * u);
    const r = u / HALF_ZERO_CROSSINGS;
    const window = besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - r * r))) / norm;
    table[i] = sinc * window;
  }
  // One guard entry so interpolation at the very edge reads a zero, not past the end.
  table[n] = 0;
  return table;
}

let kernelTable: Float64Array | undefined;

function kernelAt(u: number): number {
  kernelTable ??= buildKernelTable();
  const pos = Math.abs(u) * TABLE_STEPS_PER_ZERO;
  const i = Math.floor(pos);
  if (i >= kernelTable.length - 1) return 0;
  const frac = pos - i;
  return (kernelTable[i] ?? 0) * (1 - frac) + (kernelTable[i + 1] ?? 0) * frac;
}

function checkRate(name: string, rate: number): void {
  if (!Number.isFinite(rate) || rate <= 0) throw new RangeError(`${name} must be a positive number of Hz, got ${rate}`);
}

/**
 * Resample mono PCM16 from `fromRate` to `toRate`. The output holds round(length * toRate /
 * fromRate) samples, aligned so that output sample n sits at time n / toRate; samples outside
 * the input count as silence.
 */
export function resampleOffline(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  checkRate('fromRate', fromRate);
  checkRate('toRate', toRate);
  if (fromRate === toRate) return input.slice();
  const outLength = Math.round((input.length * toRate) / fromRate);
  const out = new Int16Array(outLength);

  const cutoffHz = (CUTOFF_FRACTION * Math.min(fromRate, toRate)) / 2;
  /** Zero crossings per input sample: the kernel's argument advances this much per input sample. */
  const zerosPerInputSample = (2 * cutoffHz) / fromRate;
  const halfWidthInput = HALF_ZERO_CROSSINGS / zerosPerInputSample;
  // A sinc with cutoff fc sums to fromRate / (2 fc) over the input grid: this scale gives unity DC gain.
  const gain = zerosPerInputSample;

  for (let n = 0; n < outLength; n++) {
    const centre = (n * fromRate) / toRate;
    const first = Math.max(0, Math.ceil(centre - halfWidthInput));
    const last = Math.min(input.length - 1, Math.floor(centre + halfWidthInput));
    let acc = 0;
    for (let j = first; j <= last; j++) acc += (input[j] ?? 0) * kernelAt((centre - j) * zerosPerInputSample);
    const v = Math.round(acc * gain);
    out[n] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}
