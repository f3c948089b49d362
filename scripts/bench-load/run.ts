/**
 * One load step: start the model host and the bridge, measure the bridge idle, place the calls
 * one at a time (pairing each with the upstream session it caused), warm up, measure a window,
 * hang up, stop the bridge, and judge every call.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  BYTES_PER_MS,
  judgeCall,
  matchBargeIns,
  matchFirstAudio,
  truncationErrors,
  type BargeIn,
  type Failure,
  type FirstAudio,
  type TruncationCheck,
} from './analysis.js';
import { startBridge, type Bridge, type LogTally } from './bridge.js';
import { CallerPool, RemoteCall } from './caller-pool.js';
import { ModelHost } from './model.js';
import { describeTree, readMachineCpu, readProc, readTree, treeDelta, type TreeDelta, type TreeSample } from './proc.js';
import { histogramDiff, scrape, sumMatching, type HistogramWindow, type Series } from './prom.js';
import { clockMs, type LoopStats } from './protocol.js';
import { slope, summarize, type Point, type Summary } from './stats.js';
import { liveHeapMiB } from './heap.js';

const WARM_UP_MS = 3000;
/** Idle baseline: let the child settle, then measure its idle CPU over this long. */
const IDLE_SETTLE_MS = 1000;
const IDLE_MEASURE_MS = 3000;
const RSS_SAMPLE_MS = 1000;
/** After the window, clears still in flight get this long to land before everyone hangs up. */
const GRACE_MS = 1000;
/** How long the bench waits for the upstream session of a call it just placed. */
const SESSION_WAIT_MS = 30_000;
const CHILD_EXIT_TIMEOUT_MS = 20_000;
/** Playback that ran out within this long after speech_started needed no clear (the bridge may or may not send one). */
export const AUDIBLE_MARGIN_MS = 100;
/** The local model's generation speed (its default): audio arrives 4x faster than real time, as in bursts from the real API. */
export const MODEL_SPEED = 4;
const MAX_SAMPLES = 5;

/**
 * A step that could not be measured. 'startup': the model or the bridge did not start (e.g. a
 * source file mid-edit): says nothing about capacity. 'load': the service failed under the load.
 */
export class StepError extends Error {
  constructor(
    readonly phase: 'startup' | 'load',
    message: string,
  ) {
    super(message);
  }
}

async function startup<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw new StepError('startup', `${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface StepOptions {
  calls: number;
  seconds: number;
  /** WORKERS for the bridge; null: not set (one process) */
  workers: number | null;
  rampMs: number;
  maxTruncationErrorMs: number;
  maxReactionP99Ms: number;
  /** write V8 CPU profiles of the bridge's processes here (--cpu-prof); null: none */
  profileDir: string | null;
  /** read the bridge's live heap after a full GC at the window's start and end (one process only) */
  liveHeap: boolean;
  /** nice value of the local model's process (0: the same as the bridge and the callers) */
  modelNice: number;
  /** the checkout whose bridge is measured; null: this one */
  bridgeRoot: string | null;
  /** child processes the simulated callers are spread over */
  callerProcesses: number;
  progress: (line: string) => void;
}

export interface StepResult {
  opts: Omit<StepOptions, 'progress'>;
  wallS: number;
  bridge: {
    pid: number;
    processes: number;
    /** e.g. "node ×3" at idle and at window end */
    treeIdle: string;
    treeLoad: string;
    listening: number;
    cpu: TreeDelta;
    cores: number;
    idleCores: number;
    idleRssKiB: number;
    /** MiB per call: the slope of the tree's RSS against the calls placed, one sample per call over the ramp */
    rampRssPerCallMiB: number;
    rss0KiB: number;
    rss1KiB: number;
    peakRssKiB: number;
    /** MiB per minute over the window, and over its second half */
    /** live JS heap after a full GC at the window's start and end (--live-heap) */
    liveHeapMiB: { idle: number; start: number; end: number; afterCalls: number } | null;
    rssSlope: number;
    rssSlopeLastHalf: number;
    rssSamples: number;
    threads: number;
    exit: { code: number | null; signal: NodeJS.Signals | null };
    stopMs: number;
    logs: LogTally;
    stderrTail: string[];
  };
  reaction: Summary;
  /** expected barge-ins (whole run up to the window end) and how many got no clear */
  bargeInsExpected: number;
  missingClears: number;
  /** clears the bridge was free to send (playback was ending), and clears that answered nothing */
  optionalClears: number;
  unpromptedClears: number;
  firstAudio: Summary;
  responsesUnheard: number;
  truncation: Summary;
  /** how late the callers sent the echoes of played marks (a late echo makes the bridge under-count what was heard) */
  echoLate: Summary;
  truncationsUnmatched: number;
  truncationsOverBound: number;
  apiErrors: { real: number; races: number; samples: string[] };
  correct: number;
  failures: Map<Failure, number>;
  loop: HistogramWindow;
  promLag: { p50: number; p99: number; max: number };
  bridgeInternal: { reaction: HistogramWindow; firstAudio: HistogramWindow };
  interruptionsBridge: number;
  clearsInWindow: number;
  heardMsWindow: number;
  callMsWindow: number;
  speechMsWindow: number;
  utterances: { min: number; max: number };
  startErrors: string[];
  dropped: string[];
  callerErrors: number;
  protocolErrors: number;
  silentCalls: number;
  upstreamErrors: number;
  reconnects: number;
  outcomes: string;
  liveAtW1: number;
  unclaimedSessions: number;
  loadgen: { callerCores: number; modelCores: number; callerLoopP99: number; callerLoopMax: number; modelLoop: LoopStats; machineBusy: number; otherCores: number; modelRssKiB: number };
  crossCheck: { promRss: number | undefined; promCpu: number | undefined; heap0: number | undefined; heap1: number | undefined };
  rampS: number;
  pass: boolean;
  verdict: string;
}

/** BENCH_DEBUG=1: one JSON line per incorrect call, times in ms since its stream start. */
function debugTrace(c: RemoteCall, fails: Failure[], w0T: number, w1T: number, bargeIns: BargeIn[], fa: FirstAudio[], tr: TruncationCheck[]): string {
  const rel = (t: number | null): number | null => (t === null ? null : Math.round((t - (c.streamStartT ?? 0)) * 10) / 10);
  return JSON.stringify({
    call: c.index,
    callSid: c.caller.callSid,
    fails,
    window: [rel(w0T), rel(w1T)],
    bargeIns: bargeIns.map((x) => ({ t: rel(x.t), expected: x.expected, clear: rel(x.clearT) })),
    clears: c.clears.map((x) => ({ t: rel(x.t), played: x.playedBytes })),
    playback: c.playback.map((x) => [rel(x.startT), rel(x.endT), x.cleared]),
    firstAudio: fa.map((x) => ({ delta: rel(x.deltaT), media: rel(x.mediaT), at: x.startsAtByte, item: x.itemId })),
    truncations: tr.map((x) => ({ t: rel(x.t), item: x.itemId, audioEndMs: x.audioEndMs, playedMs: x.playedMs })),
    lateEchoes: lateEchoes(c),
    errors: c.trace?.errors.map((e) => ({ t: rel(e.t), code: e.code, race: e.race })) ?? [],
  });
}

/** Echoes of played marks sent more than 5 ms after playback reached the mark: [stream ms, ms late]. */
function lateEchoes(c: RemoteCall): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < c.echoes.length; i++) {
    const late = c.echoes.value[i] ?? 0;
    if (late > 5) out.push([Math.round(((c.echoes.t[i] ?? 0) - (c.streamStartT ?? 0)) * 10) / 10, Math.round(late * 10) / 10]);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const MiB = (kib: number): number => kib / 1024;

export async function runStep(o: StepOptions): Promise<StepResult> {
  const { calls, seconds, workers, rampMs, progress } = o;
  const clockBase = process.hrtime.bigint();
  const now = (): number => clockMs(process.hrtime.bigint(), clockBase);
  const runMs = rampMs + WARM_UP_MS + seconds * 1000 + GRACE_MS + 10_000;

  // The upstream model runs in its own process: its CPU is neither the bridge's nor the callers'.
  const model = await startup('model host', () => ModelHost.start(MODEL_SPEED, clockBase, o.modelNice));
  let bridge: Bridge | null = null;
  let pool: CallerPool | null = null;
  const callsPlaced: RemoteCall[] = [];
  try {
    const nodeArgs = [...(o.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`]), ...(o.liveHeap ? ['--inspect=127.0.0.1:0'] : [])];
    bridge = await startup('bridge', () => startBridge(model.url, calls, workers, nodeArgs, o.bridgeRoot ?? undefined));
    const b = bridge;
    pool = await startup('caller hosts', () => CallerPool.start(o.callerProcesses, clockBase));
    const callers = pool;
    const mediaUrl = `ws://127.0.0.1:${b.port}/media-stream`;
    progress(`bridge pid ${b.pid} on :${b.port}${workers !== null ? ` (WORKERS=${workers})` : ''}; model pid ${model.pid} on ${model.url}`);

    // Idle baseline (a cluster's workers get longer to finish loading).
    await sleep(workers !== null && workers > 1 ? 2 * IDLE_SETTLE_MS : IDLE_SETTLE_MS);
    const idle0 = readTree(b.pid);
    await sleep(IDLE_MEASURE_MS);
    const idle1 = readTree(b.pid);
    const liveHeapIdle = o.liveHeap ? await liveHeapOf(b) : null;

    // Ramp up, one call at a time: each waits for its upstream session, which pairs the two.
    progress(`placing ${calls} calls over ${rampMs / 1000} s, warm-up ${WARM_UP_MS / 1000} s, window ${seconds} s`);
    const rampStart = performance.now();
    // RSS against calls live, sampled as each call is placed: its slope is the memory a call adds,
    // whatever the start-up heap (which a GC under load may give back) was at idle.
    const rampRss: Point[] = [{ x: 0, y: MiB(readTree(b.pid).rssKiB) }];
    for (let i = 0; i < calls; i++) {
      const wait = rampStart + (i * rampMs) / calls - performance.now();
      if (wait > 0) await sleep(wait);
      const call = await callers.place(i, mediaUrl, runMs);
      callsPlaced.push(call);
      if (call.startError !== null) continue;
      call.trace = await model.nextSession(SESSION_WAIT_MS);
      if (call.trace === null) throw new StepError('load', `call ${i}: the model saw no upstream session within ${SESSION_WAIT_MS / 1000} s; pairing calls with sessions is no longer possible`);
      rampRss.push({ x: i + 1, y: MiB(readTree(b.pid).rssKiB) });
    }
    const rampEnd = performance.now();
    const rampS = (rampEnd - rampStart) / 1000;
    await sleep(WARM_UP_MS);

    // The forced GCs run before the window opens and after it closes, so they are not measured.
    const liveHeap0 = o.liveHeap ? await liveHeapOf(b) : null;
    // Window start. The scrape folds the warm-up's event-loop samples away first.
    const m0 = await scrape(b.metricsUrl);
    callers.loopStart();
    model.loopStart();
    const machine0 = readMachineCpu();
    const callerCpu0 = callerCpu(callers.pids);
    const model0 = readProc(model.pid);
    const snap0 = await callers.snapshot();
    for (const c of callsPlaced) {
      c.w0Ms = snap0.get(c.index)?.nowMs ?? 0;
      c.heard0 = snap0.get(c.index)?.playedBytes ?? 0;
    }
    const w0 = readTree(b.pid);
    const w0T = now();
    const rssPoints: Point[] = [{ x: 0, y: MiB(w0.rssKiB) }];
    let peakRssKiB = w0.rssKiB;
    const rssSampler = setInterval(() => {
      const t: TreeSample = readTree(b.pid);
      peakRssKiB = Math.max(peakRssKiB, t.rssKiB);
      rssPoints.push({ x: (t.atMs - w0.atMs) / 60_000, y: MiB(t.rssKiB) });
    }, RSS_SAMPLE_MS);

    await sleep(seconds * 1000);

    // Window end: /proc first, so the scrape's own cost is outside the window.
    const w1 = readTree(b.pid);
    const w1T = now();
    // The callers' stream position and heard bytes at the window's end, before anything else waits.
    const snap1 = await callers.snapshot();
    for (const c of callsPlaced) {
      c.w1Ms = snap1.get(c.index)?.nowMs ?? 0;
      c.heard1 = snap1.get(c.index)?.playedBytes ?? 0;
    }
    const liveHeap1 = o.liveHeap ? await liveHeapOf(b) : null;
    clearInterval(rssSampler);
    rssPoints.push({ x: (w1.atMs - w0.atMs) / 60_000, y: MiB(w1.rssKiB) });
    peakRssKiB = Math.max(peakRssKiB, w1.rssKiB);
    const callerCpuS = callerCpu(callers.pids) - callerCpu0;
    const model1 = readProc(model.pid);
    const machine1 = readMachineCpu();
    const modelLoop = await model.loopStop();
    const callersLoop = await callers.loopStop();
    const m1 = await scrape(b.metricsUrl);

    // Clears still in flight land, then everyone hangs up; the bridge sees the calls end and is
    // stopped as an orchestrator would.
    await sleep(GRACE_MS);
    await callers.hangUpAndCollect();
    const hangUpDeadline = performance.now() + 5000;
    let m2: Series = await scrape(b.metricsUrl);
    while ((m2.get('callbridge_active_calls') ?? 0) > 0 && performance.now() < hangUpDeadline) {
      await sleep(100);
      m2 = await scrape(b.metricsUrl);
    }
    // With every call over, what is left of their state: a leak shows here, call history does not.
    const liveHeapAfter = o.liveHeap ? await liveHeapOf(b) : null;
    const termAt = performance.now();
    b.child.kill('SIGTERM');
    const killTimer = setTimeout(() => b.child.kill('SIGKILL'), CHILD_EXIT_TIMEOUT_MS);
    const exit = await b.exited;
    clearTimeout(killTimer);
    const stopMs = performance.now() - termAt;
    bridge = null;

    // ------------------------------------------------------------ judging the calls
    const inWindow = (t: number): boolean => t >= w0T && t < w1T;
    const reactions: number[] = [];
    const firstAudioMs: number[] = [];
    const truncErrs: number[] = [];
    const echoLateMs: number[] = [];
    let bargeInsExpected = 0;
    let missingClears = 0;
    let optionalClears = 0;
    let unpromptedClears = 0;
    let responsesUnheard = 0;
    let truncationsUnmatched = 0;
    let truncationsOverBound = 0;
    let realErrors = 0;
    let races = 0;
    const errorSamples = new Map<string, number>();
    const failures = new Map<Failure, number>();
    let correct = 0;
    for (const c of callsPlaced) {
      const trace = c.trace;
      const match = matchBargeIns(trace?.speechStarted ?? [], c.clears, c.playback, AUDIBLE_MARGIN_MS);
      const fa: FirstAudio[] = matchFirstAudio(trace?.firstDeltas ?? [], c.media, c.clears);
      const tr: TruncationCheck[] = truncationErrors(trace?.truncates ?? [], fa, c.clears);
      unpromptedClears += match.unpromptedClears;
      for (const bi of match.bargeIns) {
        if (inWindow(bi.t) && bi.reactionMs !== null) reactions.push(bi.reactionMs);
        if (bi.t < w1T && !bi.expected && bi.clearT !== null) optionalClears += 1;
      }
      const judged: BargeIn[] = match.bargeIns.filter((bi) => bi.t < w1T);
      for (const bi of judged) {
        if (!bi.expected) continue;
        bargeInsExpected += 1;
        if (bi.clearT === null) missingClears += 1;
      }
      for (const f of fa) {
        if (!inWindow(f.deltaT)) continue;
        if (f.latencyMs === null) responsesUnheard += 1;
        else firstAudioMs.push(f.latencyMs);
      }
      const truncJudged = tr.filter((x) => x.t < w1T);
      for (const x of truncJudged) {
        if (x.errorMs === null) truncationsUnmatched += 1;
        else if (x.errorMs > o.maxTruncationErrorMs) truncationsOverBound += 1;
      }
      for (const x of tr) if (inWindow(x.t) && x.errorMs !== null) truncErrs.push(x.errorMs);
      for (let i = 0; i < c.echoes.length; i++) if (inWindow(c.echoes.t[i] ?? 0)) echoLateMs.push(c.echoes.value[i] ?? 0);
      let callApiErrors = 0;
      for (const e of trace?.errors ?? []) {
        if (e.race) {
          races += 1;
          continue;
        }
        realErrors += 1;
        callApiErrors += 1;
        const key = `${e.code}: ${e.message}`;
        if (errorSamples.has(key) || errorSamples.size < MAX_SAMPLES) errorSamples.set(key, (errorSamples.get(key) ?? 0) + 1);
      }
      const fails = judgeCall(
        {
          connected: c.startError === null && trace !== null,
          dropped: c.startError === null && c.dropped,
          socketError: c.startError === null && c.caller.error !== undefined,
          protocolErrors: c.caller.protocolErrors.length,
          heardBytesInWindow: c.heard1 - c.heard0,
          bargeIns: judged,
          apiErrors: callApiErrors,
          truncations: truncJudged,
        },
        o.maxTruncationErrorMs,
      );
      if (fails.length === 0) correct += 1;
      else if (process.env['BENCH_DEBUG'] === '1') process.stderr.write(`${debugTrace(c, fails, w0T, w1T, match.bargeIns, fa, tr)}\n`);
      for (const f of fails) failures.set(f, (failures.get(f) ?? 0) + 1);
    }

    // ------------------------------------------------------------ the bridge's own figures
    const cpu = treeDelta(w0, w1);
    const wallS = cpu.wallS;
    const cores = cpu.cpuS / wallS;
    const idle = treeDelta(idle0, idle1);
    const idleCores = idle.cpuS / idle.wallS;
    const half = rssPoints.filter((p) => p.x >= rssPoints[rssPoints.length - 1]!.x / 2);
    const startErrors = callsPlaced.filter((c) => c.startError !== null);
    const dropped = callsPlaced.filter((c) => c.startError === null && c.dropped);
    const spoken = callsPlaced.map((c) => c.caller.speech.filter((r) => r.startMs >= c.w0Ms && r.startMs < c.w1Ms).length);
    const speechMsWindow = callsPlaced.reduce(
      (n, c) =>
        n +
        c.caller.speech.reduce((m, r) => {
          const end = r.endMs ?? c.w1Ms;
          return m + Math.max(0, Math.min(end, c.w1Ms) - Math.max(r.startMs, c.w0Ms));
        }, 0),
      0,
    );
    const machineBusy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
    const callerCores = callerCpuS / wallS;
    const modelCores = model0 && model1 ? (model1.userS + model1.sysS - model0.userS - model0.sysS) / wallS : Number.NaN;
    const otherCores = machineBusy * os.cpus().length - cores - callerCores - (Number.isNaN(modelCores) ? 0 : modelCores);
    const reaction = summarize(reactions);
    const pass = correct === calls && reaction.count > 0 && reaction.p99 <= o.maxReactionP99Ms;
    const verdict = pass
      ? `pass (all ${calls} calls correct, barge-in p99 ${reaction.p99.toFixed(2)} ms <= ${o.maxReactionP99Ms} ms)`
      : `fail (${[
          correct < calls ? `${calls - correct} of ${calls} calls incorrect` : '',
          reaction.count === 0 ? 'no barge-in measured' : reaction.p99 > o.maxReactionP99Ms ? `barge-in p99 ${reaction.p99.toFixed(1)} ms > ${o.maxReactionP99Ms} ms` : '',
        ]
          .filter((s) => s !== '')
          .join('; ')})`;

    return {
      opts: {
        calls,
        seconds,
        workers,
        rampMs,
        maxTruncationErrorMs: o.maxTruncationErrorMs,
        maxReactionP99Ms: o.maxReactionP99Ms,
        profileDir: o.profileDir,
        liveHeap: o.liveHeap,
        modelNice: o.modelNice,
        bridgeRoot: o.bridgeRoot,
        callerProcesses: o.callerProcesses,
      },
      wallS,
      bridge: {
        pid: b.pid,
        processes: w1.procs.length,
        treeIdle: describeTree(idle1),
        treeLoad: describeTree(w1),
        listening: b.listening,
        cpu,
        cores,
        idleCores,
        idleRssKiB: idle1.rssKiB,
        rampRssPerCallMiB: slope(rampRss),
        rss0KiB: w0.rssKiB,
        rss1KiB: w1.rssKiB,
        peakRssKiB,
        liveHeapMiB:
          liveHeapIdle === null || liveHeap0 === null || liveHeap1 === null || liveHeapAfter === null
            ? null
            : { idle: liveHeapIdle, start: liveHeap0, end: liveHeap1, afterCalls: liveHeapAfter },
        rssSlope: slope(rssPoints),
        rssSlopeLastHalf: slope(half),
        rssSamples: rssPoints.length,
        threads: w1.threads,
        exit,
        stopMs,
        logs: b.logs,
        stderrTail: b.stderr.slice(-20),
      },
      reaction,
      bargeInsExpected,
      missingClears,
      optionalClears,
      unpromptedClears,
      firstAudio: summarize(firstAudioMs),
      responsesUnheard,
      truncation: summarize(truncErrs),
      echoLate: summarize(echoLateMs),
      truncationsUnmatched,
      truncationsOverBound,
      apiErrors: { real: realErrors, races, samples: [...errorSamples].map(([k, n]) => `${n}x ${k}`) },
      correct,
      failures,
      loop: histogramDiff(m0, m1, 'callbridge_event_loop_delay_ms'),
      promLag: {
        p50: (m1.get('nodejs_eventloop_lag_p50_seconds') ?? Number.NaN) * 1000,
        p99: (m1.get('nodejs_eventloop_lag_p99_seconds') ?? Number.NaN) * 1000,
        max: (m1.get('nodejs_eventloop_lag_max_seconds') ?? Number.NaN) * 1000,
      },
      bridgeInternal: {
        reaction: histogramDiff(m0, m1, 'callbridge_barge_in_reaction_ms'),
        firstAudio: histogramDiff(m0, m1, 'callbridge_first_audio_latency_ms'),
      },
      interruptionsBridge: sumMatching(m1, 'callbridge_interruptions_total') - sumMatching(m0, 'callbridge_interruptions_total'),
      clearsInWindow: callsPlaced.reduce((n, c) => n + c.clears.filter((x) => inWindow(x.t)).length, 0),
      heardMsWindow: callsPlaced.reduce((n, c) => n + (c.heard1 - c.heard0) / BYTES_PER_MS, 0),
      callMsWindow: callsPlaced.reduce((n, c) => n + (c.w1Ms - c.w0Ms), 0),
      speechMsWindow,
      utterances: { min: Math.min(...spoken), max: Math.max(...spoken) },
      startErrors: startErrors.slice(0, MAX_SAMPLES).map((c) => c.startError?.message ?? ''),
      dropped: dropped
        .slice(0, MAX_SAMPLES)
        .map((c) => `${c.caller.callSid} ${c.caller.endReason ?? ''} close ${c.caller.closeCode ?? '-'} ${c.caller.closeReason ?? ''} ${c.caller.error?.message ?? ''}`),
      callerErrors: callsPlaced.filter((c) => c.startError === null && c.caller.error !== undefined).length,
      protocolErrors: callsPlaced.reduce((n, c) => n + c.caller.protocolErrors.length, 0),
      silentCalls: callsPlaced.filter((c) => c.startError === null && c.heard1 - c.heard0 === 0).length,
      upstreamErrors: sumMatching(m2, 'callbridge_upstream_errors_total'),
      reconnects: m2.get('callbridge_upstream_reconnects_total{outcome="ok"}') ?? 0,
      outcomes: [...m2]
        .filter(([k, v]) => k.startsWith('callbridge_calls_total{') && v > 0)
        .map(([k, v]) => `${/outcome="([^"]+)"/.exec(k)?.[1] ?? k} ${v}`)
        .join(', '),
      liveAtW1: Number(m1.get('callbridge_active_calls') ?? 0),
      unclaimedSessions: model.unclaimedSessions,
      loadgen: {
        callerCores,
        modelCores,
        callerLoopP99: callersLoop.p99,
        callerLoopMax: callersLoop.max,
        modelLoop,
        machineBusy,
        otherCores,
        modelRssKiB: model1?.rssKiB ?? Number.NaN,
      },
      crossCheck: {
        promRss: m1.get('process_resident_memory_bytes'),
        promCpu: m1.get('process_cpu_seconds_total'),
        heap0: m0.get('nodejs_heap_size_used_bytes'),
        heap1: m1.get('nodejs_heap_size_used_bytes'),
      },
      rampS,
      pass,
      verdict,
    };
  } finally {
    await pool?.close();
    const br = bridge as Bridge | null;
    if (br !== null && br.child.exitCode === null && br.child.signalCode === null) {
      // Kill the whole tree (a cluster's workers too): only processes this step started.
      for (const pid of [...readTree(br.pid).procs].reverse().map((p) => p.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await model.close();
  }
}

/** CPU seconds the caller hosts have used so far. */
function callerCpu(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => {
    const p = readProc(pid);
    return sum + (p === undefined ? 0 : p.userS + p.sysS);
  }, 0);
}

async function liveHeapOf(b: Bridge): Promise<number> {
  if (b.inspectorUrl === null) throw new StepError('startup', 'the bridge printed no inspector address (--live-heap needs one process)');
  return liveHeapMiB(b.inspectorUrl);
}
