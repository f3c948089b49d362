/**
 * Audio-layer benchmark: per-frame cost and fidelity of our resamplers side by side with maintained
 * library resamplers and the naive baselines; our G.711 mu-law codec against `alawmulaw`; and the
 * whole transcoders (base64 in, base64 out) with the heap they allocate per frame; then the parse
 * of a Twilio media frame, and the WebSocket unmasking ws does for every frame Twilio sends.
 *
 * The fidelity figures come from the same helpers the unit tests assert on
 * (test/support/fidelity.ts), so what is printed here is what is tested. Libraries go through
 * the same helpers via the `Resampler` interface, each with its own delay measured here.
 *
 * Run: npm run bench
 */

import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import vm from 'node:vm';

import LibSampleRate from '@alexanderolsen/libsamplerate-js';
import createSpeexResamplerModule, { type SpeexResamplerModule } from '@echogarden/speex-resampler-wasm/simd';
import alawmulaw from 'alawmulaw';

import { FRAME_BYTES } from '../src/audio/wire-format.js';
import { mulawDecode, mulawEncode } from '../src/audio/g711.js';
import {
  DOWNSAMPLER_DELAY_SAMPLES_8K,
  Downsampler3x,
  RESAMPLER_DESIGN,
  UPSAMPLER_DELAY_SAMPLES_24K,
  Upsampler3x,
} from '../src/audio/resampler.js';
import { InboundTranscoder, OutboundTranscoder } from '../src/audio/transcoder.js';
import { parseTwilioMessage, twilioMessageFrom } from '../src/twilio/messages.js';
import {
  ALIAS_PROBE_AMPLITUDE,
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
  RATE_24K_HZ,
  RATE_8K_HZ,
  type Resampler,
  TELEPHONE_BAND_HIGH_HZ,
  TELEPHONE_BAND_LOW_HZ,
  TELEPHONE_TEST_FREQUENCIES_HZ,
  TEST_SIGNAL_RMS_DBFS,
  bandPower,
  makeMultitone,
  measureAliasDb,
  measureDownsampler,
  measureUpsampler,
  powerRatioDb,
  powerSpectrum,
  quantizeInt16,
  renderTones,
  runResampler,
} from '../test/support/fidelity.js';

const FRAME_MS = 20;
const SAMPLES_PER_FRAME_24K = FRAME_BYTES * 3;
/** Warm-up stops at whichever comes first, so the slow libraries do not take minutes. */
const WARM_UP_ITERATIONS = 3_000;
const WARM_UP_MAX_MS = 300;
const ITERATIONS_PER_RUN = 5_000;
/** Slow steps run fewer iterations per run, enough for this long a run. */
const MIN_RUN_MS = 40;
const TIMING_RUNS = 7;
/** Frames profiled for allocations; with the sampling interval this gives ~20k samples per pipeline. */
const HEAP_PROFILE_FRAMES = 5_000;
const HEAP_SAMPLING_INTERVAL_BYTES = 256;
/** V8 keeps allocating transiently (feedback, tier-up) for a while after the timing warm-up. */
const HEAP_WARM_UP_ITERATIONS = 20_000;
/** Input frames cycled through, so the work is not one identical frame over and over. */
const DISTINCT_INPUT_FRAMES = 50;
/**
 * The alias bound must hold for any tone, not only the four probes the tests use, which a filter
 * could pass on a lucky null: this grid covers the whole stopband the probes sample.
 */
const ALIAS_SWEEP_FROM_HZ = 4_600;
const ALIAS_SWEEP_STEP_HZ = 100;
/** Likewise the imaging bound for any single in-band tone, not only the multitone's nine. */
const IMAGING_SWEEP_STEP_HZ = 100;
/** Margin the design keeps over every bound the filter controls (see src/audio/resampler.ts). */
const DESIGN_MARGIN_DB = 6;

/** alawmulaw ships CommonJS, so under Node's ESM loader only its default export is reachable. */
const alawmulawMulaw = alawmulaw.mulaw;

// --- naive pipelines: same plumbing as the transcoders, only the resampler differs ------------

class NaiveInbound {
  private readonly upsampler = new NaiveLinearUpsampler3x();
  private readonly mulaw = Buffer.alloc(FRAME_BYTES * 8);
  private readonly pcm8k = new Int16Array(FRAME_BYTES * 8);
  private readonly pcm24k = new Int16Array(FRAME_BYTES * 8 * 3);
  private readonly pcm24kBytes = Buffer.from(this.pcm24k.buffer);

  transcode(base64: string): string {
    const n = this.mulaw.write(base64, 0, 'base64');
    mulawDecode(this.mulaw, this.pcm8k, n);
    const out = this.upsampler.process(this.pcm8k, n, this.pcm24k);
    return this.pcm24kBytes.toString('base64', 0, out * 2);
  }
}

/** Same shape as OutboundTranscoder: push decodes, decimates and encodes; take hands out base64. */
class NaiveOutbound {
  private readonly downsampler = new NaiveDecimator3x();
  private readonly pcm24k = new Int16Array(SAMPLES_PER_FRAME_24K * 8);
  private readonly pcm24kBytes = Buffer.from(this.pcm24k.buffer);
  private readonly pcm8k = new Int16Array(FRAME_BYTES * 8);
  private readonly pending = Buffer.alloc(FRAME_BYTES * 8);
  private pendingBytes = 0;

  push(base64: string): void {
    const bytes = this.pcm24kBytes.write(base64, 0, 'base64');
    const out = this.downsampler.process(this.pcm24k, bytes >> 1, this.pcm8k);
    mulawEncode(this.pcm8k, this.pending.subarray(this.pendingBytes), out);
    this.pendingBytes += out;
  }

  take(maxBytes: number): string {
    const bytes = Math.min(maxBytes, this.pendingBytes);
    const base64 = this.pending.toString('base64', 0, bytes);
    this.pending.copy(this.pending, 0, bytes, this.pendingBytes);
    this.pendingBytes -= bytes;
    return base64;
  }
}

// --- library resamplers behind the same Resampler interface as ours ---------------------------

const speex: SpeexResamplerModule = await createSpeexResamplerModule();
/** Scratch sized for this many input samples per library call; longer inputs take several calls. */
const LIBRARY_CHUNK_SAMPLES = 4_096;
/** Output samples per input sample at most (8k -> 24k). */
const LIBRARY_MAX_RATIO = 3;

/** SpeexDSP's resampler (WASM SIMD build): int16 in and out, its own state in WASM memory. */
class SpeexResampler implements Resampler {
  private readonly state: number;
  private readonly inputPointer = speex._malloc(2 * LIBRARY_CHUNK_SAMPLES);
  private readonly outputPointer = speex._malloc(2 * LIBRARY_CHUNK_SAMPLES * LIBRARY_MAX_RATIO);
  /** Two uint32 in/out lengths: input, then output. */
  private readonly lengthsPointer = speex._malloc(8);

  constructor(inputRateHz: number, outputRateHz: number, readonly quality: number) {
    const errorPointer = speex._malloc(4);
    this.state = speex._speex_resampler_init(1, inputRateHz, outputRateHz, quality, errorPointer);
    const error = speex.HEAP32[errorPointer >> 2]!;
    speex._free(errorPointer);
    if (this.state === 0 || error !== 0) throw new Error(`speex_resampler_init failed: ${error}`);
  }

  process(input: Int16Array, inputLength: number, output: Int16Array): number {
    const lengths = this.lengthsPointer >> 2;
    const outputCapacity = LIBRARY_CHUNK_SAMPLES * LIBRARY_MAX_RATIO;
    let written = 0;
    for (let done = 0; done < inputLength; ) {
      const chunk = Math.min(LIBRARY_CHUNK_SAMPLES, inputLength - done);
      speex.HEAP16.set(input.subarray(done, done + chunk), this.inputPointer >> 1);
      speex.HEAPU32[lengths] = chunk;
      speex.HEAPU32[lengths + 1] = outputCapacity;
      speex._speex_resampler_process_int(
        this.state, 0, this.inputPointer, this.lengthsPointer, this.outputPointer, this.lengthsPointer + 4,
      );
      const consumed = speex.HEAPU32[lengths]!;
      const produced = speex.HEAPU32[lengths + 1]!;
      const start = this.outputPointer >> 1;
      output.set(speex.HEAP16.subarray(start, start + produced), written);
      written += produced;
      done += consumed;
    }
    return written;
  }

  reset(): void {
    speex._speex_resampler_reset_mem(this.state);
  }
}

type LibSampleRateConverter = (typeof LibSampleRate.ConverterType)[keyof typeof LibSampleRate.ConverterType];
type LibSampleRateSrc = Awaited<ReturnType<typeof LibSampleRate.create>>;
const INT16_SCALE = 32768;

/** libsamplerate (WASM), full streaming API: float32 in [-1, 1), so int16 is converted both ways. */
class LibSampleRateResampler implements Resampler {
  private floatInput = new Float32Array(LIBRARY_CHUNK_SAMPLES);
  private floatOutput = new Float32Array(LIBRARY_CHUNK_SAMPLES * LIBRARY_MAX_RATIO);
  private readonly produced = { frames: 0 };
  /** libsamplerate holds its filter delay back on the first call; padding it makes a fixed delay. */
  private primed = false;

  private constructor(
    private readonly src: LibSampleRateSrc,
    private readonly inputRateHz: number,
    private readonly ratio: number,
  ) {}

  static async create(
    inputRateHz: number,
    outputRateHz: number,
    converterType: LibSampleRateConverter,
  ): Promise<LibSampleRateResampler> {
    const src = await LibSampleRate.create(1, inputRateHz, outputRateHz, { converterType });
    return new LibSampleRateResampler(src, inputRateHz, outputRateHz / inputRateHz);
  }

  process(input: Int16Array, inputLength: number, output: Int16Array): number {
    if (inputLength > this.floatInput.length) {
      this.floatInput = new Float32Array(inputLength);
      this.floatOutput = new Float32Array(Math.ceil(inputLength * this.ratio) + 1);
    }
    const floatInput = this.floatInput.subarray(0, inputLength);
    for (let i = 0; i < inputLength; i++) floatInput[i] = input[i]! / INT16_SCALE;
    this.src.full(floatInput, this.floatOutput, this.produced);
    const frames = this.produced.frames;
    let written = 0;
    if (!this.primed) {
      const expected = Math.ceil(inputLength * this.ratio);
      for (; written < expected - frames; written++) output[written] = 0;
      this.primed = true;
    }
    for (let i = 0; i < frames; i++) {
      const value = Math.round(this.floatOutput[i]! * INT16_SCALE);
      output[written++] = value > 32767 ? 32767 : value < -32768 ? -32768 : value;
    }
    return written;
  }

  reset(): void {
    // Re-assigning the rate is the wrapper's only way to re-initialise the converter's state.
    this.src.inputSampleRate = this.inputRateHz;
    this.primed = false;
  }
}

/**
 * Delay of a linear-phase resampler in output samples, from the peak of its impulse response
 * (parabolic fit between samples). Snapped to a whole sample when it is one: a few hundredths of
 * a sample of misalignment would already cost ~20 dB of measured SNR at 3.4 kHz.
 */
function measureDelay(resampler: Resampler, direction: 'up' | 'down'): number {
  const impulseAt8k = 300;
  const input = new Int16Array(direction === 'up' ? 2 * impulseAt8k : 6 * impulseAt8k);
  input[direction === 'up' ? impulseAt8k : 3 * impulseAt8k] = 30_000;
  const output = new Int16Array(input.length * 3 + 16);
  resampler.reset();
  const written = resampler.process(input, input.length, output);
  resampler.reset();
  let peak = 1;
  for (let i = 2; i < written - 1; i++) if (output[i]! > output[peak]!) peak = i;
  const before = output[peak - 1]!;
  const at = output[peak]!;
  const after = output[peak + 1]!;
  const offset = (before - after) / (2 * (before - 2 * at + after));
  const delay = peak + offset - (direction === 'up' ? 3 * impulseAt8k : impulseAt8k);
  return Math.abs(delay - Math.round(delay)) < 0.05 ? Math.round(delay) : delay;
}

/**
 * Worst imaging over single tones across the telephone band, measured as measureUpsampler does
 * for the multitone: energy above IMAGING_FLOOR_HZ over telephone-band energy. A tone near
 * 3.4 kHz puts its image right at the stopband edge, which the multitone dilutes ninefold.
 */
function worstSingleToneImagingDb(resampler: Resampler, delaySamples24k: number): number {
  const fftSize = 8192;
  const start24k = 3 * 256 + Math.ceil(delaySamples24k);
  const inputLength = Math.ceil((start24k + fftSize) / 3) + 16;
  let worst = Number.NEGATIVE_INFINITY;
  for (let hz = TELEPHONE_BAND_LOW_HZ; hz <= TELEPHONE_BAND_HIGH_HZ; hz += IMAGING_SWEEP_STEP_HZ) {
    const input = quantizeInt16(renderTones([{ frequencyHz: hz, amplitude: 10_000, phaseRad: 0.7 }], RATE_8K_HZ, inputLength));
    resampler.reset();
    const output = runResampler(resampler, input, inputLength * 3);
    const spectrum = powerSpectrum(output, start24k, fftSize);
    const imagingDb = powerRatioDb(
      bandPower(spectrum, RATE_24K_HZ, IMAGING_FLOOR_HZ, RATE_24K_HZ / 2),
      bandPower(spectrum, RATE_24K_HZ, TELEPHONE_BAND_LOW_HZ, TELEPHONE_BAND_HIGH_HZ),
    );
    worst = Math.max(worst, imagingDb);
  }
  resampler.reset();
  return worst;
}

// --- inputs ------------------------------------------------------------------------------------

function multitoneFrames(rateHz: number, samplesPerFrame: number): Int16Array[] {
  const pcm = quantizeInt16(renderTones(makeMultitone(), rateHz, samplesPerFrame * DISTINCT_INPUT_FRAMES));
  return Array.from({ length: DISTINCT_INPUT_FRAMES }, (_, i) =>
    pcm.subarray(i * samplesPerFrame, (i + 1) * samplesPerFrame),
  );
}

function inboundFrames(): string[] {
  return multitoneFrames(RATE_8K_HZ, FRAME_BYTES).map((pcm) => {
    const codes = Buffer.alloc(pcm.length);
    mulawEncode(pcm, codes);
    return codes.toString('base64');
  });
}

function outboundFrames(): string[] {
  return multitoneFrames(RATE_24K_HZ, SAMPLES_PER_FRAME_24K).map((pcm) => {
    const bytes = Buffer.alloc(pcm.length * 2);
    pcm.forEach((v, i) => bytes.writeInt16LE(v, i * 2));
    return bytes.toString('base64');
  });
}

// --- measurement -------------------------------------------------------------------------------

/** One frame of work; returns something derived from the output so it cannot be optimised away. */
type FrameStep = (frameIndex: number) => number;

/** Name of every step function, so the heap profile can be cut down to the per-frame work. */
const STEP_FUNCTION_NAME = 'frameStep';

function inboundStep(transcoder: { transcode(base64: string): string }, frames: string[]): FrameStep {
  return function frameStep(i) {
    return transcoder.transcode(frames[i % frames.length]!).length;
  };
}

interface OutboundPipeline {
  push(pcm24kBase64: string): void;
  take(maxBytes: number): string;
}

/** Transcoder-level outbound work for one 20 ms frame: push it, take the 160 bytes it yields. */
function outboundStep(transcoder: OutboundPipeline, frames: string[]): FrameStep {
  return function frameStep(i) {
    transcoder.push(frames[i % frames.length]!);
    return transcoder.take(FRAME_BYTES).length;
  };
}

function resamplerStep(resampler: Resampler, frames: Int16Array[], outputCapacity: number): FrameStep {
  const output = new Int16Array(outputCapacity);
  return function frameStep(i) {
    const frame = frames[i % frames.length]!;
    return resampler.process(frame, frame.length, output) + output[0]!;
  };
}

let sink = 0;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function nsPerFrame(step: FrameStep): number {
  const warmUpStart = process.hrtime.bigint();
  let warmUps = 0;
  const warmUpLimitNs = BigInt(WARM_UP_MAX_MS * 1e6);
  while (warmUps < WARM_UP_ITERATIONS && process.hrtime.bigint() - warmUpStart < warmUpLimitNs) {
    sink += step(warmUps++);
  }
  const estimateNs = Number(process.hrtime.bigint() - warmUpStart) / warmUps;
  const iterations = Math.max(20, Math.min(ITERATIONS_PER_RUN, Math.round((MIN_RUN_MS * 1e6) / estimateNs)));
  const runs: number[] = [];
  for (let run = 0; run < TIMING_RUNS; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink += step(i);
    runs.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  return median(runs);
}

interface HeapProfileNode {
  callFrame: { functionName: string; url: string };
  selfSize: number;
  children: HeapProfileNode[];
}

/**
 * Heap bytes allocated per frame, from V8's sampling heap profiler (counting objects already
 * collected). heapUsed deltas were tried first and read up to 2x high at random, depending on
 * where V8 placed the strings; the sampler counts actual allocations. Call-site attribution is
 * not used because inlined frames are not always reported.
 */
async function allocationPerFrame(step: FrameStep): Promise<number> {
  for (let i = 0; i < HEAP_WARM_UP_ITERATIONS; i++) sink += step(i);
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: HEAP_SAMPLING_INTERVAL_BYTES,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    for (let i = 0; i < HEAP_PROFILE_FRAMES; i++) sink += step(i);
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let bytes = 0;
    const visit = (node: HeapProfileNode, inStep: boolean): void => {
      const isStep = inStep || node.callFrame.functionName === STEP_FUNCTION_NAME;
      if (isStep) bytes += node.selfSize;
      for (const child of node.children) visit(child, isStep);
    };
    visit(profile.head as HeapProfileNode, false);
    return bytes / HEAP_PROFILE_FRAMES;
  } finally {
    session.disconnect();
  }
}

/** Heap size of a sequential one-byte string on 64-bit V8: 16-byte header, 8-byte aligned. */
function oneByteStringHeapBytes(chars: number): number {
  const V8_STRING_HEADER_BYTES = 16;
  const V8_OBJECT_ALIGNMENT_BYTES = 8;
  return Math.ceil((V8_STRING_HEADER_BYTES + chars) / V8_OBJECT_ALIGNMENT_BYTES) * V8_OBJECT_ALIGNMENT_BYTES;
}

// --- Twilio frame parsing ----------------------------------------------------------------------

/**
 * A live call's media frame: sequenceNumber, chunk and timestamp change on every frame, and
 * JSON.parse interns each (values of up to 10 characters; these stay at 7-8 digits), adding the
 * ones not seen yet to old space: two per frame here, as on one call. Frames are built in the
 * step (a reused frame would find its strings interned already); the "build only" row is that cost.
 */
function twilioFrameText(n: number, payload: string): string {
  return `{"event":"media","sequenceNumber":"${n + 2}","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"track":"inbound","chunk":"${n + 1}","timestamp":"${n * FRAME_MS}","payload":"${payload}"}}`;
}

async function twilioParseTable(): Promise<void> {
  const payloads = inboundFrames();
  // Continues across the rows, so every row sees values no earlier row interned.
  let n = 1_000_000;
  const next = (): string => twilioFrameText(n++, payloads[n % payloads.length]!);
  const steps: Array<[string, FrameStep]> = [
    ['build only (baseline)', function frameStep() { return next().length; }],
    ['parseTwilioMessage (Twilio\'s spelling: one pattern)', function frameStep() { const r = parseTwilioMessage(next()); return r.ok ? 1 : 0; }],
    ['JSON.parse + schema check (any other spelling)', function frameStep() { const r = twilioMessageFrom(JSON.parse(next())); return r.ok ? 1 : 0; }],
  ];
  const rows: string[][] = [];
  for (const [name, step] of steps) {
    const t = nsPerFrame(step);
    const heap = await allocationPerFrame(step);
    const oldSpace = oldSpaceGrowthPerFrame(step);
    rows.push([name, ns(t), `${Math.round(heap)} B`, `${oldSpace.toFixed(0)} B`]);
  }
  printTable(
    'Twilio media frame parse, per frame (frames with new sequence numbers, as on a live call)',
    ['path', 'time', 'heap / frame', 'old space / frame'],
    rows,
  );
  console.log('old space / frame: growth of V8\'s old space over 100000 frames between full GCs (strings JSON.parse interns live there until the next full GC).');
}

type Unmask = (buffer: Buffer, mask: Buffer) => void;

/**
 * Every frame Twilio sends is masked (RFC 6455 requires it of clients) and ws unmasks it in place.
 * Without bufferutil, ws does it in a JavaScript loop over the bytes; with it, in native code.
 * Both functions come from bufferutil: its fallback is the same byte loop ws carries.
 */
function websocketUnmaskTable(): void {
  const require = createRequire(import.meta.url);
  let native: { unmask: Unmask };
  let loop: { unmask: Unmask };
  try {
    native = require('bufferutil') as { unmask: Unmask };
    loop = require('bufferutil/fallback.js') as { unmask: Unmask };
  } catch (err) {
    // An optional dependency: `npm ci --omit=optional` leaves it out, and ws then uses its own loop.
    console.log(`\nWebSocket unmasking: bufferutil is not installed (${(err as Error).message.split('\n')[0]}); ws unmasks in JavaScript.`);
    return;
  }
  const nativeLoaded = native !== loop;
  const frameBytes = Buffer.byteLength(twilioFrameText(1_000_000, inboundFrames()[0]!));
  const frame = Buffer.alloc(frameBytes, 0x41);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const rows: string[][] = [];
  for (const [name, unmask] of [
    ['JavaScript byte loop (ws without bufferutil)', loop.unmask],
    [nativeLoaded ? 'bufferutil, native (what ws loads)' : 'bufferutil (its native part did not load: the loop again)', native.unmask],
  ] as const) {
    rows.push([name, ns(nsPerFrame(function frameStep() { unmask(frame, key); return frame[0]!; }))]);
  }
  printTable(`WebSocket unmasking of one Twilio media frame (${frameBytes} bytes), per frame`, ['path', 'time'], rows);
}

function oldSpaceGrowthPerFrame(step: FrameStep): number {
  const OLD_SPACE_FRAMES = 100_000;
  const oldUsed = (): number => v8.getHeapSpaceStatistics().find((sp) => sp.space_name === 'old_space')?.space_used_size ?? Number.NaN;
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  const before = oldUsed();
  for (let i = 0; i < OLD_SPACE_FRAMES; i++) sink += step(i);
  const grown = oldUsed() - before;
  gc();
  return grown / OLD_SPACE_FRAMES;
}

// --- output ------------------------------------------------------------------------------------

function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

/**
 * An all-zero int16 output means every residue sample rounded to 0, i.e. the residue's peak is
 * under half an LSB: below this level relative to the probe tone.
 */
const ROUNDED_AWAY_FLOOR_DB = 20 * Math.log10(0.5 / ALIAS_PROBE_AMPLITUDE);

function db(value: number): string {
  if (value === Number.NEGATIVE_INFINITY) return `< ${ROUNDED_AWAY_FLOOR_DB.toFixed(0)} dB`;
  return `${value.toFixed(1)} dB`;
}

function ns(value: number): string {
  return `${Math.round(value).toLocaleString('en-US')} ns`;
}

function worstAlias(make: () => Resampler, frequenciesHz: readonly number[]): number {
  return Math.max(...frequenciesHz.map((hz) => measureAliasDb(make(), hz)));
}

const ALIAS_SWEEP_HZ: readonly number[] = Array.from(
  { length: Math.floor((RATE_24K_HZ / 2 - ALIAS_SWEEP_FROM_HZ) / ALIAS_SWEEP_STEP_HZ) },
  (_, i) => ALIAS_SWEEP_FROM_HZ + i * ALIAS_SWEEP_STEP_HZ,
);

interface Candidate {
  name: string;
  makeUp: () => Resampler | Promise<Resampler>;
  makeDown: () => Resampler | Promise<Resampler>;
  /** Known delays; measured by impulse when absent. */
  delays?: { up24k: number; down8k: number };
}

interface CandidateResult {
  name: string;
  delayUp24k: number;
  delayDown8k: number;
  inSnrDb: number;
  imagingDb: number;
  imagingSweepDb: number;
  outSnrDb: number;
  outSnrWithMulawDb: number;
  aliasProbesDb: number;
  aliasSweepDb: number;
  upNs: number;
  downNs: number;
}

async function evaluate(candidate: Candidate): Promise<CandidateResult> {
  const up = await candidate.makeUp();
  // One instance serves every downsampler measurement: each helper resets it first.
  const down = await candidate.makeDown();
  const delayUp24k = candidate.delays?.up24k ?? measureDelay(up, 'up');
  const delayDown8k = candidate.delays?.down8k ?? measureDelay(down, 'down');
  const upFidelity = measureUpsampler(up, delayUp24k);
  const imagingSweepDb = worstSingleToneImagingDb(up, delayUp24k);
  const downFidelity = measureDownsampler(down, delayDown8k);
  const aliasProbesDb = worstAlias(() => down, ALIAS_PROBE_FREQUENCIES_HZ);
  const aliasSweepDb = worstAlias(() => down, ALIAS_SWEEP_HZ);
  up.reset();
  down.reset();
  const upNs = nsPerFrame(resamplerStep(up, multitoneFrames(RATE_8K_HZ, FRAME_BYTES), SAMPLES_PER_FRAME_24K + 16));
  const downNs = nsPerFrame(resamplerStep(down, multitoneFrames(RATE_24K_HZ, SAMPLES_PER_FRAME_24K), FRAME_BYTES + 16));
  return {
    name: candidate.name,
    delayUp24k,
    delayDown8k,
    inSnrDb: upFidelity.inBandSnrDb,
    imagingDb: upFidelity.imagingDb,
    imagingSweepDb,
    outSnrDb: downFidelity.inBandSnrDb,
    outSnrWithMulawDb: downFidelity.withMulawInBandSnrDb,
    aliasProbesDb,
    aliasSweepDb,
    upNs,
    downNs,
  };
}

/** Bounds a result misses; the resampler-only outbound SNR bound is the one the unit test asserts. */
function failedBounds(r: CandidateResult): string[] {
  const failed: string[] = [];
  if (!(r.inSnrDb >= INBOUND_MIN_SNR_DB)) failed.push('in SNR');
  if (!(Math.max(r.imagingDb, r.imagingSweepDb) <= INBOUND_MAX_IMAGING_DB)) failed.push('imaging');
  if (!(r.outSnrDb >= INBOUND_MIN_SNR_DB)) failed.push('out SNR');
  if (!(r.outSnrWithMulawDb >= OUTBOUND_MIN_SNR_WITH_MULAW_DB)) failed.push('out SNR+mu');
  if (!(Math.max(r.aliasProbesDb, r.aliasSweepDb) <= OUTBOUND_MAX_ALIAS_DB)) failed.push('alias');
  return failed;
}

/**
 * Smallest distance to a bound the filter controls, in dB (negative = a bound is missed). The
 * SNR after mu-law is left out: the codec alone sets it (~38.4 dB even with no filter at all).
 */
function filterMarginDb(r: CandidateResult): number {
  return Math.min(
    r.inSnrDb - INBOUND_MIN_SNR_DB,
    INBOUND_MAX_IMAGING_DB - Math.max(r.imagingDb, r.imagingSweepDb),
    r.outSnrDb - INBOUND_MIN_SNR_DB,
    OUTBOUND_MAX_ALIAS_DB - Math.max(r.aliasProbesDb, r.aliasSweepDb),
  );
}

function delayText(r: CandidateResult): string {
  const ms = (r.delayUp24k / RATE_24K_HZ) * 1000;
  const msDown = (r.delayDown8k / RATE_8K_HZ) * 1000;
  const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  return `${ms.toFixed(2)}/${msDown.toFixed(2)} ms (${fmt(r.delayUp24k)}@24k/${fmt(r.delayDown8k)}@8k)`;
}

function codecStep(work: (frame: number) => number): FrameStep {
  return function frameStep(i) {
    return work(i);
  };
}

async function main(): Promise<void> {
  const startedMs = Date.now();
  console.log('callbridge audio benchmark');
  console.log(
    `filter: Kaiser windowed sinc, ${RESAMPLER_DESIGN.prototypeTaps} taps @ ${RESAMPLER_DESIGN.prototypeRateHz} Hz, ` +
      `beta ${RESAMPLER_DESIGN.kaiserBeta}, cutoff ${RESAMPLER_DESIGN.cutoffHz} Hz, stopband from ${RESAMPLER_DESIGN.stopbandFromHz} Hz; ` +
      `up: phase 0 passed through, phases 1+2 (${RESAMPLER_DESIGN.upsamplerTapsPerPhase} taps each) from ` +
      `${RESAMPLER_DESIGN.upsamplerMultipliesPerInput} multiplies per input; ` +
      `down: ${RESAMPLER_DESIGN.downsamplerMultipliesPerOutput} multiplies per output; kernel: ${RESAMPLER_DESIGN.kernel}; ` +
      `delay ${UPSAMPLER_DELAY_SAMPLES_24K} samples @ 24 kHz = ${DOWNSAMPLER_DELAY_SAMPLES_8K} @ 8 kHz ` +
      `= ${((UPSAMPLER_DELAY_SAMPLES_24K / RATE_24K_HZ) * 1000).toFixed(2)} ms`,
  );
  const toneList = TELEPHONE_TEST_FREQUENCIES_HZ;
  console.log(
    `test signal: ${toneList.length}-tone multitone ${toneList[0]}–${toneList[toneList.length - 1]} Hz ` +
      `at ${TEST_SIGNAL_RMS_DBFS} dBFS RMS; alias probes are single tones at -6 dBFS`,
  );

  // Resamplers side by side
  const speexQualities = [3, 4];
  const candidates: Candidate[] = [
    {
      name: `ours (${RESAMPLER_DESIGN.prototypeTaps}-tap Kaiser, folded)`,
      makeUp: () => new Upsampler3x(),
      makeDown: () => new Downsampler3x(),
      delays: { up24k: UPSAMPLER_DELAY_SAMPLES_24K, down8k: DOWNSAMPLER_DELAY_SAMPLES_8K },
    },
    ...speexQualities.map((quality) => ({
      name: `speexdsp q${quality} (wasm simd)${quality === 3 ? ', VoIP default' : ''}`,
      makeUp: () => new SpeexResampler(RATE_8K_HZ, RATE_24K_HZ, quality),
      makeDown: () => new SpeexResampler(RATE_24K_HZ, RATE_8K_HZ, quality),
    })),
    ...(
      [
        ['SINC_FASTEST', LibSampleRate.ConverterType.SRC_SINC_FASTEST],
        ['SINC_MEDIUM', LibSampleRate.ConverterType.SRC_SINC_MEDIUM_QUALITY],
      ] as const
    ).map(([label, converter]) => ({
      name: `libsamplerate ${label} (wasm)`,
      makeUp: () => LibSampleRateResampler.create(RATE_8K_HZ, RATE_24K_HZ, converter),
      makeDown: () => LibSampleRateResampler.create(RATE_24K_HZ, RATE_8K_HZ, converter),
    })),
    {
      name: 'naive (linear interp. / plain decimation)',
      makeUp: () => new NaiveLinearUpsampler3x(),
      makeDown: () => new NaiveDecimator3x(),
      delays: { up24k: NAIVE_UPSAMPLER_DELAY_SAMPLES_24K, down8k: NAIVE_DECIMATOR_DELAY_SAMPLES_8K },
    },
  ];
  const results: CandidateResult[] = [];
  for (const candidate of candidates) results.push(await evaluate(candidate));
  printTable(
    'Resamplers 8k <-> 24k, side by side (fidelity from test/support/fidelity.ts; cost = one 20 ms frame through process(), Int16Array in and out)',
    [
      'resampler',
      'delay in/out',
      `in SNR >= ${INBOUND_MIN_SNR_DB}`,
      `imaging <= ${INBOUND_MAX_IMAGING_DB}`,
      'imaging 1-tone sweep',
      `out SNR >= ${INBOUND_MIN_SNR_DB}`,
      `+mu-law >= ${OUTBOUND_MIN_SNR_WITH_MULAW_DB}`,
      `alias probes <= ${OUTBOUND_MAX_ALIAS_DB}`,
      `alias ${ALIAS_SWEEP_FROM_HZ / 1000}-12k sweep`,
      'filter margin',
      'up 160->480',
      'down 480->160',
      'bounds',
    ],
    results.map((r) => {
      const failed = failedBounds(r);
      return [
        r.name,
        delayText(r),
        db(r.inSnrDb),
        db(r.imagingDb),
        db(r.imagingSweepDb),
        db(r.outSnrDb),
        db(r.outSnrWithMulawDb),
        db(r.aliasProbesDb),
        db(r.aliasSweepDb),
        db(filterMarginDb(r)),
        ns(r.upNs),
        ns(r.downNs),
        failed.length === 0 ? 'pass' : `FAIL: ${failed.join(', ')}`,
      ];
    }),
  );
  const ours = results[0]!;
  const passing = results.filter((r) => failedBounds(r).length === 0);
  const fastestUp = passing.reduce((a, b) => (b.upNs < a.upNs ? b : a));
  const fastestDown = passing.reduce((a, b) => (b.downNs < a.downNs ? b : a));
  console.log(
    `\nsweeps: alias of single tones every ${ALIAS_SWEEP_STEP_HZ} Hz from ${ALIAS_SWEEP_FROM_HZ} Hz to 12 kHz (the four probes can land on a filter null); ` +
      `imaging of single tones every ${IMAGING_SWEEP_STEP_HZ} Hz over ${TELEPHONE_BAND_LOW_HZ}–${TELEPHONE_BAND_HIGH_HZ} Hz. ` +
      `filter margin: distance to the nearest bound the filter controls (all but +mu-law, which the codec sets); ` +
      `the design aims for >= ${DESIGN_MARGIN_DB} dB, ours has ${db(filterMarginDb(ours))}.`,
  );
  console.log(
    `fastest passing every bound: up ${fastestUp.name} (${ns(fastestUp.upNs)}), down ${fastestDown.name} (${ns(fastestDown.downNs)}).`,
  );

  // mu-law codec side by side
  const pcmFrames = multitoneFrames(RATE_8K_HZ, FRAME_BYTES);
  const codeFrames = pcmFrames.map((pcm) => {
    const codes = new Uint8Array(pcm.length);
    mulawEncode(pcm, codes);
    return codes;
  });
  const codes = new Uint8Array(FRAME_BYTES);
  const pcm = new Int16Array(FRAME_BYTES);
  const allInt16 = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
  const allCodes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const ourEncoded = new Uint8Array(allInt16.length);
  mulawEncode(allInt16, ourEncoded);
  const ourDecoded = new Int16Array(256);
  mulawDecode(allCodes, ourDecoded);
  const encodeIdentical = Buffer.from(ourEncoded).equals(Buffer.from(alawmulawMulaw.encode(allInt16)));
  const decodeIdentical = Buffer.from(ourDecoded.buffer).equals(Buffer.from(alawmulawMulaw.decode(allCodes).buffer));
  const codecRows: string[][] = [
    [
      `encode ${FRAME_BYTES} samples`,
      ns(nsPerFrame(codecStep((i) => (mulawEncode(pcmFrames[i % DISTINCT_INPUT_FRAMES]!, codes), codes[0]!)))),
      ns(nsPerFrame(codecStep((i) => alawmulawMulaw.encode(pcmFrames[i % DISTINCT_INPUT_FRAMES]!)[0]!))),
      ns(
        nsPerFrame(
          codecStep((i) => {
            const frame = pcmFrames[i % DISTINCT_INPUT_FRAMES]!;
            for (let s = 0; s < frame.length; s++) codes[s] = alawmulawMulaw.encodeSample(frame[s]!);
            return codes[0]!;
          }),
        ),
      ),
      encodeIdentical ? 'yes (all 65536 inputs)' : 'NO',
    ],
    [
      `decode ${FRAME_BYTES} bytes`,
      ns(nsPerFrame(codecStep((i) => (mulawDecode(codeFrames[i % DISTINCT_INPUT_FRAMES]!, pcm), pcm[0]!)))),
      ns(nsPerFrame(codecStep((i) => alawmulawMulaw.decode(codeFrames[i % DISTINCT_INPUT_FRAMES]!)[0]!))),
      ns(
        nsPerFrame(
          codecStep((i) => {
            const frame = codeFrames[i % DISTINCT_INPUT_FRAMES]!;
            for (let s = 0; s < frame.length; s++) pcm[s] = alawmulawMulaw.decodeSample(frame[s]!);
            return pcm[0]!;
          }),
        ),
      ),
      decodeIdentical ? 'yes (all 256 codes)' : 'NO',
    ],
  ];
  printTable(
    'G.711 mu-law per 20 ms frame: ours (table lookup, caller-owned buffers) vs alawmulaw',
    ['operation', 'ours', 'alawmulaw array API', 'alawmulaw per-sample API', 'bit-identical'],
    codecRows,
  );

  // Whole transcoders
  const inFrames = inboundFrames();
  const outFrames = outboundFrames();
  const steps: Array<{ name: string; ours: FrameStep; naive: FrameStep; outputChars: number }> = [
    {
      name: 'inbound: 160 B mu-law b64 -> 24k PCM16 b64',
      ours: inboundStep(new InboundTranscoder(), inFrames),
      naive: inboundStep(new NaiveInbound(), inFrames),
      outputChars: Math.ceil((SAMPLES_PER_FRAME_24K * 2) / 3) * 4,
    },
    {
      name: 'outbound: 480 x 24k PCM16 b64 -> 160 B mu-law b64',
      ours: outboundStep(new OutboundTranscoder(), outFrames),
      naive: outboundStep(new NaiveOutbound(), outFrames),
      outputChars: Math.ceil(FRAME_BYTES / 3) * 4,
    },
  ];
  const costRows: string[][] = [];
  for (const step of steps) {
    const oursNs = nsPerFrame(step.ours);
    const naiveNs = nsPerFrame(step.naive);
    const heap = await allocationPerFrame(step.ours);
    costRows.push([
      step.name,
      ns(oursNs),
      ns(naiveNs),
      `${((oursNs / (FRAME_MS * 1e6)) * 100).toFixed(3)} %`,
      `${Math.round(heap)} B`,
      `${oneByteStringHeapBytes(step.outputChars)} B (${step.outputChars} chars)`,
      `${Math.round(heap - oneByteStringHeapBytes(step.outputChars))} B`,
    ]);
  }
  printTable(
    `Transcoders, cost per 20 ms frame incl. base64 (median of ${TIMING_RUNS} runs x ${ITERATIONS_PER_RUN} frames, after ${WARM_UP_ITERATIONS} warm-up)`,
    ['direction', 'ours', 'naive', 'ours / real time', 'heap / frame', 'output b64 string', 'other'],
    costRows,
  );
  console.log(
    `\nheap / frame: bytes allocated per frame by our pipeline, from V8's sampling heap profiler ` +
      `(${HEAP_PROFILE_FRAMES} frames, 1 sample per ${HEAP_SAMPLING_INTERVAL_BYTES} B, so within ~2%). ` +
      'output b64 string: heap size of the one string the brief allows per frame; other = the rest, ~0 when the hot path is allocation-free.',
  );
  await twilioParseTable();
  websocketUnmaskTable();
  console.log(`done in ${((Date.now() - startedMs) / 1000).toFixed(1)} s (checksum ${sink})`);
}

await main();
