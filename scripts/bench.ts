/**
 * Audio-layer benchmark: per-frame transcoding cost, heap allocated per frame, and fidelity of
 * our pipeline side by side with the naive baselines (linear interpolation / plain decimation).
 *
 * The fidelity figures come from the same helpers the unit tests assert on
 * (test/support/fidelity.ts), so what is printed here is what is tested.
 *
 * Run: npm run bench
 */

import { Session } from 'node:inspector/promises';

import { FRAME_BYTES, MulawFramer } from '../src/audio/framer.js';
import { mulawDecode, mulawEncode } from '../src/audio/g711.js';
import {
  DOWNSAMPLER_DELAY_SAMPLES_8K,
  Downsampler3x,
  RESAMPLER_DESIGN,
  UPSAMPLER_DELAY_SAMPLES_24K,
  Upsampler3x,
} from '../src/audio/resampler.js';
import { InboundTranscoder, OutboundTranscoder } from '../src/audio/transcoder.js';
import {
  ALIAS_PROBE_AMPLITUDE,
  ALIAS_PROBE_FREQUENCIES_HZ,
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
  TELEPHONE_TEST_FREQUENCIES_HZ,
  TEST_SIGNAL_RMS_DBFS,
  makeMultitone,
  measureAliasDb,
  measureDownsampler,
  measureUpsampler,
  quantizeInt16,
  renderTones,
} from '../test/support/fidelity.js';

const FRAME_MS = 20;
const SAMPLES_PER_FRAME_24K = FRAME_BYTES * 3;
const WARM_UP_ITERATIONS = 3_000;
const ITERATIONS_PER_RUN = 5_000;
const TIMING_RUNS = 7;
/** Frames profiled for allocations; with the sampling interval this gives ~20k samples per pipeline. */
const HEAP_PROFILE_FRAMES = 5_000;
const HEAP_SAMPLING_INTERVAL_BYTES = 256;
/** V8 keeps allocating transiently (feedback, tier-up) for a while after the timing warm-up. */
const HEAP_WARM_UP_ITERATIONS = 20_000;
/** Input frames cycled through, so the work is not one identical frame over and over. */
const DISTINCT_INPUT_FRAMES = 50;

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

class NaiveOutbound {
  private readonly downsampler = new NaiveDecimator3x();
  private readonly framer = new MulawFramer();
  private readonly pcm24k = new Int16Array(SAMPLES_PER_FRAME_24K * 8);
  private readonly pcm24kBytes = Buffer.from(this.pcm24k.buffer);
  private readonly pcm8k = new Int16Array(FRAME_BYTES * 8);
  private readonly mulaw = new Uint8Array(FRAME_BYTES * 8);
  private readonly frameBytes = Buffer.alloc(FRAME_BYTES);
  private onFrame: (base64: string) => void = () => {};
  private readonly emit = (frame: Uint8Array): void => {
    for (let i = 0; i < frame.length; i++) this.frameBytes[i] = frame[i]!;
    this.onFrame(this.frameBytes.toString('base64', 0, frame.length));
  };

  push(base64: string, onFrame: (base64: string) => void): void {
    const bytes = this.pcm24kBytes.write(base64, 0, 'base64');
    const out = this.downsampler.process(this.pcm24k, bytes >> 1, this.pcm8k);
    mulawEncode(this.pcm8k, this.mulaw, out);
    this.onFrame = onFrame;
    this.framer.push(this.mulaw, out, this.emit);
  }
}

// --- inputs ------------------------------------------------------------------------------------

function inboundFrames(): string[] {
  const pcm = quantizeInt16(renderTones(makeMultitone(), RATE_8K_HZ, FRAME_BYTES * DISTINCT_INPUT_FRAMES));
  const codes = Buffer.alloc(pcm.length);
  mulawEncode(pcm, codes);
  return Array.from({ length: DISTINCT_INPUT_FRAMES }, (_, i) =>
    codes.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES).toString('base64'),
  );
}

function outboundFrames(): string[] {
  const pcm = quantizeInt16(
    renderTones(makeMultitone(), RATE_24K_HZ, SAMPLES_PER_FRAME_24K * DISTINCT_INPUT_FRAMES),
  );
  const bytes = Buffer.alloc(pcm.length * 2);
  pcm.forEach((v, i) => bytes.writeInt16LE(v, i * 2));
  const frameBytes = SAMPLES_PER_FRAME_24K * 2;
  return Array.from({ length: DISTINCT_INPUT_FRAMES }, (_, i) =>
    bytes.subarray(i * frameBytes, (i + 1) * frameBytes).toString('base64'),
  );
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

function outboundStep(
  transcoder: { push(base64: string, onFrame: (base64: string) => void): void },
  frames: string[],
): FrameStep {
  let lastLength = 0;
  const onFrame = (base64: string): void => {
    lastLength = base64.length;
  };
  return function frameStep(i) {
    transcoder.push(frames[i % frames.length]!, onFrame);
    return lastLength;
  };
}

let sink = 0;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function nsPerFrame(step: FrameStep): number {
  for (let i = 0; i < WARM_UP_ITERATIONS; i++) sink += step(i);
  const runs: number[] = [];
  for (let run = 0; run < TIMING_RUNS; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS_PER_RUN; i++) sink += step(i);
    runs.push(Number(process.hrtime.bigint() - start) / ITERATIONS_PER_RUN);
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
  if (value === Number.NEGATIVE_INFINITY) return `< ${ROUNDED_AWAY_FLOOR_DB.toFixed(0)} dB (all 0)`;
  return `${value.toFixed(1)} dB`;
}

function verdict(ok: boolean): string {
  return ok ? 'pass' : 'FAIL';
}

function worstAlias(make: () => Resampler): number {
  return Math.max(...ALIAS_PROBE_FREQUENCIES_HZ.map((hz) => measureAliasDb(make(), hz)));
}

async function main(): Promise<void> {
  const startedMs = Date.now();
  console.log('callbridge audio benchmark');
  console.log(
    `filter: Kaiser windowed sinc, ${RESAMPLER_DESIGN.prototypeTaps} taps @ ${RESAMPLER_DESIGN.prototypeRateHz} Hz, ` +
      `beta ${RESAMPLER_DESIGN.kaiserBeta}, cutoff ${RESAMPLER_DESIGN.cutoffHz} Hz ` +
      `(${RESAMPLER_DESIGN.upsamplerTapsPerPhase} taps/phase when upsampling); ` +
      `delay ${UPSAMPLER_DELAY_SAMPLES_24K} samples @ 24 kHz = ${DOWNSAMPLER_DELAY_SAMPLES_8K} @ 8 kHz ` +
      `= ${((UPSAMPLER_DELAY_SAMPLES_24K / RATE_24K_HZ) * 1000).toFixed(2)} ms`,
  );
  const toneList = TELEPHONE_TEST_FREQUENCIES_HZ;
  console.log(
    `test signal: ${toneList.length}-tone multitone ${toneList[0]}–${toneList[toneList.length - 1]} Hz ` +
      `at ${TEST_SIGNAL_RMS_DBFS} dBFS RMS; alias probes are single tones at -6 dBFS`,
  );

  // Fidelity
  const up = measureUpsampler(new Upsampler3x(), UPSAMPLER_DELAY_SAMPLES_24K);
  const upNaive = measureUpsampler(new NaiveLinearUpsampler3x(), NAIVE_UPSAMPLER_DELAY_SAMPLES_24K);
  const down = measureDownsampler(new Downsampler3x(), DOWNSAMPLER_DELAY_SAMPLES_8K);
  const downNaive = measureDownsampler(new NaiveDecimator3x(), NAIVE_DECIMATOR_DELAY_SAMPLES_8K);
  const alias = worstAlias(() => new Downsampler3x());
  const aliasNaive = worstAlias(() => new NaiveDecimator3x());
  const aliasAt = (hz: number): [number, number] => [
    measureAliasDb(new Downsampler3x(), hz),
    measureAliasDb(new NaiveDecimator3x(), hz),
  ];
  const [alias6k, alias6kNaive] = aliasAt(6_000);
  const [alias9k, alias9kNaive] = aliasAt(9_000);

  printTable(
    'Fidelity (telephone band 300–3400 Hz, steady state, Hann-windowed FFT)',
    ['metric', 'bound', 'ours', 'naive', 'verdict'],
    [
      ['in: 8k->24k resampler SNR', `>= ${INBOUND_MIN_SNR_DB} dB`, db(up.inBandSnrDb), db(upNaive.inBandSnrDb), verdict(up.inBandSnrDb >= INBOUND_MIN_SNR_DB)],
      ['in: imaging > 4.4 kHz vs in-band', `<= ${INBOUND_MAX_IMAGING_DB} dB`, db(up.imagingDb), db(upNaive.imagingDb), verdict(up.imagingDb <= INBOUND_MAX_IMAGING_DB)],
      ['in: mu-law + 8k->24k SNR', '(info)', db(up.withMulawInBandSnrDb), db(upNaive.withMulawInBandSnrDb), ''],
      ['out: 24k->8k resampler SNR', '(info)', db(down.inBandSnrDb), db(downNaive.inBandSnrDb), ''],
      ['out: 24k->8k + mu-law SNR', `>= ${OUTBOUND_MIN_SNR_WITH_MULAW_DB} dB`, db(down.withMulawInBandSnrDb), db(downNaive.withMulawInBandSnrDb), verdict(down.withMulawInBandSnrDb >= OUTBOUND_MIN_SNR_WITH_MULAW_DB)],
      ['out: alias of 6 kHz tone', `<= ${OUTBOUND_MAX_ALIAS_DB} dB`, db(alias6k), db(alias6kNaive), verdict(alias6k <= OUTBOUND_MAX_ALIAS_DB)],
      ['out: alias of 9 kHz tone', `<= ${OUTBOUND_MAX_ALIAS_DB} dB`, db(alias9k), db(alias9kNaive), verdict(alias9k <= OUTBOUND_MAX_ALIAS_DB)],
      [`out: worst alias (${ALIAS_PROBE_FREQUENCIES_HZ.join('/')} Hz)`, `<= ${OUTBOUND_MAX_ALIAS_DB} dB`, db(alias), db(aliasNaive), verdict(alias <= OUTBOUND_MAX_ALIAS_DB)],
    ],
  );

  // Cost
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
      name: 'outbound: 480 x 24k PCM16 b64 -> mu-law frame b64',
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
      `${Math.round(oursNs).toLocaleString('en-US')} ns`,
      `${Math.round(naiveNs).toLocaleString('en-US')} ns`,
      `${((oursNs / (FRAME_MS * 1e6)) * 100).toFixed(3)} %`,
      `${Math.round(heap)} B`,
      `${oneByteStringHeapBytes(step.outputChars)} B (${step.outputChars} chars)`,
      `${Math.round(heap - oneByteStringHeapBytes(step.outputChars))} B`,
    ]);
  }
  printTable(
    `Cost per 20 ms frame (median of ${TIMING_RUNS} runs x ${ITERATIONS_PER_RUN} frames, after ${WARM_UP_ITERATIONS} warm-up)`,
    ['direction', 'ours', 'naive', 'ours / real time', 'heap / frame', 'output b64 string', 'other'],
    costRows,
  );
  console.log(
    `\nheap / frame: bytes allocated per frame by our pipeline, from V8's sampling heap profiler ` +
      `(${HEAP_PROFILE_FRAMES} frames, 1 sample per ${HEAP_SAMPLING_INTERVAL_BYTES} B, so within ~2%). ` +
      'output b64 string: heap size of the one string the brief allows per frame; other = the rest, ~0 when the hot path is allocation-free.',
  );
  console.log(`done in ${((Date.now() - startedMs) / 1000).toFixed(1)} s (checksum ${sink})`);
}

await main();
