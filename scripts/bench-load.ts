/**
 * Load benchmark: CPU and memory the bridge needs per concurrent call.
 *
 * The bridge runs in a child process (`node --import tsx src/main.ts`) and is measured from the
 * outside through /proc/<pid>/stat (CPU time) and /proc/<pid>/status (RSS), so the load
 * generator does not count: the simulated Twilio callers and the local Realtime model it talks
 * to both run in this (parent) process.
 *
 * Each call asks a question and waits for the answer, says something else and talks over part
 * of that second answer (a barge-in: the bridge must clear Twilio's buffer and truncate
 * upstream), then lets the reply to the barge-in play out, and starts over, until hung up.
 *
 * Run: npm run bench:load -- [--calls 50] [--seconds 30]
 * Linux only (/proc).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startLocalRealtimeServer } from '../src/realtime/local/server.js';
import type { LocalRealtimeServer } from '../src/realtime/local/server.js';
import { SimulatedCaller } from '../src/twilio/simulated-caller.js';
import type { CallerSegment } from '../src/twilio/simulated-caller.js';
import { loadCallerMulaw } from '../test/support/fixtures.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const RAMP_MS = 2000;
const WARM_UP_MS = 3000;
/** Idle baseline: let the child settle, then measure its idle CPU over this long. */
const IDLE_SETTLE_MS = 1000;
const IDLE_MEASURE_MS = 3000;
const RSS_SAMPLE_MS = 500;
const CHILD_START_TIMEOUT_MS = 30_000;
const CHILD_EXIT_TIMEOUT_MS = 20_000;
const DRAIN_TIMEOUT_S = 5;
/** mu-law 8 kHz */
const BYTES_PER_MS = 8;
/** Pauses in the caller script. */
const POLITE_PAUSE_MS = 600;
const BARGE_IN_AFTER_HEARD_MS = 1200;
/** A conservative lower bound on one script cycle, to know how many cycles fill the run. */
const MIN_CYCLE_MS = 10_000;
/** Both event-loop samplers tick every 10 ms and record the whole interval; this is taken off. */
const EVENT_LOOP_RESOLUTION_MS = 10;
const MAX_LOG_SAMPLES = 5;
/** The local model's generation speed (its default): audio arrives 4x faster than real time, as in bursts from the real API. */
const MODEL_SPEED = 4;

// ---------------------------------------------------------------- arguments

interface Args {
  calls: number;
  seconds: number;
}

function parseCliArgs(): Args {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '30' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help === true) {
    process.stdout.write('usage: npm run bench:load -- [--calls 50] [--seconds 30]\n');
    process.exit(0);
  }
  const calls = Number(values.calls);
  const seconds = Number(values.seconds);
  if (!Number.isInteger(calls) || calls < 1 || calls > 10_000) throw new Error(`--calls must be an integer 1-10000, got "${values.calls}"`);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) throw new Error(`--seconds must be a number 1-3600, got "${values.seconds}"`);
  return { calls, seconds };
}

// ---------------------------------------------------------------- /proc readings

const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

interface ProcSample {
  atMs: number;
  /** user and system CPU seconds of all the process's threads */
  userS: number;
  sysS: number;
  rssKiB: number;
  threads: number;
  /** ms the main (event-loop) thread spent runnable but waiting for a CPU, since it started */
  runQueueWaitMs: number;
  /** times the main thread was scheduled onto a CPU */
  timeslices: number;
}

function readProc(pid: number): ProcSample {
  const atMs = performance.now();
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const threads = Number(fields[17]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || rss?.[1] === undefined) throw new Error(`cannot parse /proc/${pid}/stat or status`);
  // schedstat of the thread-group leader: on-CPU ns, run-queue wait ns, timeslices.
  let runQueueWaitMs = Number.NaN;
  let timeslices = Number.NaN;
  try {
    const sched = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    runQueueWaitMs = Number(sched[1]) / 1e6;
    timeslices = Number(sched[2]);
  } catch {
    // kernels without schedstats: reported as n/a
  }
  return { atMs, userS: utime / CLK_TCK, sysS: stime / CLK_TCK, rssKiB: Number(rss[1]), threads, runQueueWaitMs, timeslices };
}

/** Machine-wide busy and total jiffies from the first line of /proc/stat. */
function readMachineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const n = line.trim().split(/\s+/).slice(1).map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  const idle = (n[3] ?? 0) + (n[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

// ---------------------------------------------------------------- Prometheus text

type Series = Map<string, number>;

/** `name{labels} value` lines into a map keyed by `name{labels}` as written. */
function parseProm(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (at < 0) continue;
    const value = Number(line.slice(at + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, at), value);
  }
  return out;
}

function sumMatching(s: Series, prefix: string): number {
  let total = 0;
  for (const [k, v] of s) if (k.startsWith(prefix)) total += v;
  return total;
}

interface Bucket {
  le: number;
  /** cumulative count */
  count: number;
}

function histogramBuckets(s: Series, name: string): Bucket[] {
  const out: Bucket[] = [];
  const re = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`);
  for (const [k, v] of s) {
    const m = re.exec(k);
    if (m?.[1] === undefined) continue;
    out.push({ le: m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), count: v });
  }
  return out.sort((a, b) => a.le - b.le);
}

interface HistogramWindow {
  count: number;
  sum: number;
  buckets: Bucket[];
}

/** The observations made between two scrapes of one histogram. */
function histogramDiff(before: Series, after: Series, name: string): HistogramWindow {
  const b0 = histogramBuckets(before, name);
  const b1 = histogramBuckets(after, name);
  const buckets = b1.map((b) => ({ le: b.le, count: b.count - (b0.find((x) => x.le === b.le)?.count ?? 0) }));
  return {
    count: (after.get(`${name}_count`) ?? 0) - (before.get(`${name}_count`) ?? 0),
    sum: (after.get(`${name}_sum`) ?? 0) - (before.get(`${name}_sum`) ?? 0),
    buckets,
  };
}

/** histogram_quantile() semantics: linear within the bucket; `>` the top bound if it lands in +Inf. */
function quantile(h: HistogramWindow, q: number): string {
  if (h.count <= 0) return 'n/a';
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return `>${fmt(prevLe, 0)} ms`;
      const inBucket = b.count - prevCount;
      const v = inBucket <= 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
      return `${fmt(v, v < 10 ? 2 : 1)} ms`;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return 'n/a';
}

// ---------------------------------------------------------------- the bridge child process

interface LogTally {
  byLevel: Map<string, number>;
  /** warn and above: message -> count, first few kept */
  problems: Map<string, number>;
}

interface Bridge {
  child: ChildProcess;
  pid: number;
  port: number;
  baseUrl: string;
  logs: LogTally;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startBridge(upstreamUrl: string, calls: number): Promise<Bridge> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Nothing from the caller's shell may change what is measured (signatures, capture, a real key).
  for (const k of ['OPENAI_API_KEY', 'TWILIO_AUTH_TOKEN', 'TWILIO_ACCOUNT_SID', 'PUBLIC_URL', 'RECORD_CALLS', 'MAX_CALL_DURATION_S', 'NODE_OPTIONS']) delete env[k];
  Object.assign(env, {
    PORT: '0',
    HOST: '127.0.0.1',
    // info, as in production; it is also the level at which Fastify logs the port.
    LOG_LEVEL: 'info',
    REALTIME_BACKEND: 'openai',
    OPENAI_REALTIME_URL: upstreamUrl,
    DRAIN_TIMEOUT_S: String(DRAIN_TIMEOUT_S),
    MAX_CALLS: String(Math.max(100, calls * 2)),
  });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not spawn the bridge');
  const pid = child.pid;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const logs: LogTally = { byLevel: new Map(), problems: new Map() };
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge did not listen within ${CHILD_START_TIMEOUT_MS} ms`)), CHILD_START_TIMEOUT_MS);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`bridge exited during startup (code ${code}, signal ${signal}):\n${stderr.slice(-20).join('\n')}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (typeof entry !== 'object' || entry === null) return;
      const rec = entry as Record<string, unknown>;
      const level = typeof rec['level'] === 'string' ? rec['level'] : '?';
      const msg = typeof rec['msg'] === 'string' ? rec['msg'] : '';
      logs.byLevel.set(level, (logs.byLevel.get(level) ?? 0) + 1);
      if (level === 'warn' || level === 'error' || level === 'fatal') {
        // The two startup warnings about running unauthenticated are expected here.
        if (!/TWILIO_AUTH_TOKEN is not set|PUBLIC_URL is not set/.test(msg)) {
          const key = `${level}: ${msg}`;
          if (logs.problems.has(key) || logs.problems.size < MAX_LOG_SAMPLES) logs.problems.set(key, (logs.problems.get(key) ?? 0) + 1);
        }
      }
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(msg);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { child, pid, port, baseUrl: `http://127.0.0.1:${port}`, logs, stderr, exited };
}

async function scrape(baseUrl: string): Promise<Series> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  return parseProm(await res.text());
}

// ---------------------------------------------------------------- callers

const QUESTION = loadCallerMulaw('caller-question');
const INTERRUPT = loadCallerMulaw('caller-interrupt');
const YES = loadCallerMulaw('caller-yes');

/**
 * One cycle: ask (politely, once the agent is quiet), hear the answer out; say something else
 * and barge in on that second answer; let the reply to the barge-in play out. Repeated.
 */
function callerScript(runMs: number): CallerSegment[] {
  const cycles = Math.ceil(runMs / MIN_CYCLE_MS) + 1;
  const segments: CallerSegment[] = [];
  for (let i = 0; i < cycles; i++) {
    segments.push(
      { audio: QUESTION, start: i === 0 ? { atMs: 300 } : { afterAgentQuietMs: POLITE_PAUSE_MS }, label: 'question' },
      { audio: INTERRUPT, start: { afterAgentQuietMs: POLITE_PAUSE_MS }, label: 'follow-up' },
      { audio: YES, start: { afterHeardMs: BARGE_IN_AFTER_HEARD_MS }, label: 'barge-in' },
    );
  }
  return segments;
}

interface CallState {
  caller: SimulatedCaller;
  startError: Error | null;
  hangingUp: boolean;
  /** ended before we hung up (server closed it, or a socket error) */
  dropped: boolean;
  /** stream ms and heard bytes at the window's start and end */
  w0Ms: number;
  w1Ms: number;
  heard0: number;
  heard1: number;
}

function placeCall(mediaUrl: string, runMs: number): { state: CallState; started: Promise<void> } {
  const caller = new SimulatedCaller({ url: mediaUrl, segments: callerScript(runMs) });
  const state: CallState = { caller, startError: null, hangingUp: false, dropped: false, w0Ms: 0, w1Ms: 0, heard0: 0, heard1: 0 };
  void caller.done.then(() => {
    if (!state.hangingUp) state.dropped = true;
  });
  const started = caller.start().catch((err: unknown) => {
    state.startError = err instanceof Error ? err : new Error(String(err));
  });
  return { state, started };
}

// ---------------------------------------------------------------- formatting

function fmt(n: number, digits: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const MiB = (kib: number): number => kib / 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { calls, seconds } = parseCliArgs();
  if (process.platform !== 'linux') throw new Error('bench:load reads /proc and runs on Linux only');
  const runMs = RAMP_MS + WARM_UP_MS + seconds * 1000;

  // The upstream model lives here, not in the bridge process, so its CPU is not the bridge's.
  const model: LocalRealtimeServer = await startLocalRealtimeServer({ record: false, speed: MODEL_SPEED });
  let bridge: Bridge | null = null;
  const states: CallState[] = [];
  try {
    bridge = await startBridge(model.url, calls);
    const b = bridge;
    const mediaUrl = `ws://127.0.0.1:${b.port}/media-stream`;
    process.stderr.write(`bridge pid ${b.pid} on :${b.port}; upstream ${model.url}\n`);

    // Idle baseline.
    await sleep(IDLE_SETTLE_MS);
    const idle0 = readProc(b.pid);
    await sleep(IDLE_MEASURE_MS);
    const idle1 = readProc(b.pid);

    // Ramp up.
    process.stderr.write(`ramping up ${calls} calls over ${RAMP_MS / 1000} s, warm-up ${WARM_UP_MS / 1000} s, window ${seconds} s\n`);
    const starts: Array<Promise<void>> = [];
    const rampStart = performance.now();
    for (let i = 0; i < calls; i++) {
      const due = rampStart + (i * RAMP_MS) / calls;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const { state, started } = placeCall(mediaUrl, runMs);
      states.push(state);
      starts.push(started);
    }
    await Promise.all(starts);
    const rampEnd = performance.now();
    await sleep(Math.max(0, WARM_UP_MS - (performance.now() - rampEnd)));

    // Window start. The scrape folds the warm-up's event-loop samples away first.
    const m0 = await scrape(b.baseUrl);
    const parentLoop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    parentLoop.enable();
    const machine0 = readMachineCpu();
    const parentCpu0 = process.cpuUsage();
    for (const s of states) {
      s.w0Ms = s.caller.nowMs();
      s.heard0 = s.caller.playedBytesTotal();
    }
    const w0 = readProc(b.pid);
    let peakRssKiB = w0.rssKiB;
    const rssSampler = setInterval(() => {
      try {
        peakRssKiB = Math.max(peakRssKiB, readProc(b.pid).rssKiB);
      } catch {
        // the child is gone; the end-of-window read reports it
      }
    }, RSS_SAMPLE_MS);

    await sleep(seconds * 1000);

    // Window end: /proc first, so the scrape's own cost is outside the window.
    const w1 = readProc(b.pid);
    clearInterval(rssSampler);
    peakRssKiB = Math.max(peakRssKiB, w1.rssKiB);
    const parentCpu = process.cpuUsage(parentCpu0);
    const machine1 = readMachineCpu();
    parentLoop.disable();
    for (const s of states) {
      s.w1Ms = s.caller.nowMs();
      s.heard1 = s.caller.playedBytesTotal();
    }
    const m1 = await scrape(b.baseUrl);

    // Hang up everyone, let the bridge see the calls end, then stop it as an orchestrator would.
    for (const s of states) s.hangingUp = true;
    await Promise.all(states.map((s) => s.caller.hangUp().catch(() => undefined)));
    const hangUpDeadline = performance.now() + 5000;
    let m2 = await scrape(b.baseUrl);
    while ((m2.get('callbridge_active_calls') ?? 0) > 0 && performance.now() < hangUpDeadline) {
      await sleep(100);
      m2 = await scrape(b.baseUrl);
    }
    const termAt = performance.now();
    b.child.kill('SIGTERM');
    const killTimer = setTimeout(() => b.child.kill('SIGKILL'), CHILD_EXIT_TIMEOUT_MS);
    const exit = await b.exited;
    clearTimeout(killTimer);
    const stopMs = performance.now() - termAt;

    // ------------------------------------------------------------ results
    const wallS = (w1.atMs - w0.atMs) / 1000;
    const cpuS = w1.userS + w1.sysS - (w0.userS + w0.sysS);
    const cores = cpuS / wallS;
    const idleCores = (idle1.userS + idle1.sysS - (idle0.userS + idle0.sysS)) / ((idle1.atMs - idle0.atMs) / 1000);
    const idleRss = idle1.rssKiB;
    const perCallRssKiB = (w1.rssKiB - idleRss) / calls;

    const startErrors = states.filter((s) => s.startError !== null);
    const dropped = states.filter((s) => s.startError === null && s.dropped);
    const liveAtW1 = Number(m1.get('callbridge_active_calls') ?? 0);
    const clearsInWindow = states.reduce((n, s) => n + s.caller.clears.filter((t) => t >= s.w0Ms && t < s.w1Ms).length, 0);
    const clearsTotal = states.reduce((n, s) => n + s.caller.clears.length, 0);
    const heardMsWindow = states.reduce((n, s) => n + (s.heard1 - s.heard0) / BYTES_PER_MS, 0);
    const callMsWindow = states.reduce((n, s) => n + (s.w1Ms - s.w0Ms), 0);
    const spokenInWindow = states.map((s) => s.caller.speech.filter((r) => r.startMs >= s.w0Ms && r.startMs < s.w1Ms).length);
    const speechMsWindow = states.reduce(
      (n, s) =>
        n +
        s.caller.speech.reduce((m, r) => {
          const end = r.endMs ?? s.w1Ms;
          return m + Math.max(0, Math.min(end, s.w1Ms) - Math.max(r.startMs, s.w0Ms));
        }, 0),
      0,
    );
    const silentCalls = states.filter((s) => s.startError === null && s.heard1 - s.heard0 === 0).length;
    const protocolErrors = states.reduce((n, s) => n + s.caller.protocolErrors.length, 0);
    const callerErrors = states.filter((s) => s.startError === null && s.caller.error !== undefined);

    const loop = histogramDiff(m0, m1, 'callbridge_event_loop_delay_ms');
    const promP50 = (m1.get('nodejs_eventloop_lag_p50_seconds') ?? Number.NaN) * 1000;
    const promP99 = (m1.get('nodejs_eventloop_lag_p99_seconds') ?? Number.NaN) * 1000;
    const promMax = (m1.get('nodejs_eventloop_lag_max_seconds') ?? Number.NaN) * 1000;
    const interruptionsBridge = sumMatching(m1, 'callbridge_interruptions_total') - sumMatching(m0, 'callbridge_interruptions_total');
    const reaction = histogramDiff(m0, m1, 'callbridge_barge_in_reaction_ms');
    const firstAudio = histogramDiff(m0, m1, 'callbridge_first_audio_latency_ms');
    const upstreamErrors = sumMatching(m2, 'callbridge_upstream_errors_total');
    const reconnects = m2.get('callbridge_upstream_reconnects_total{outcome="ok"}') ?? 0;
    const outcomes = [...m2]
      .filter(([k, v]) => k.startsWith('callbridge_calls_total{') && v > 0)
      .map(([k, v]) => `${/outcome="([^"]+)"/.exec(k)?.[1] ?? k} ${v}`)
      .join(', ');
    const machineBusy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
    const parentCores = (parentCpu.user + parentCpu.system) / 1e6 / wallS;
    const waitMs = w1.runQueueWaitMs - w0.runQueueWaitMs;
    const slices = w1.timeslices - w0.timeslices;
    const otherCores = machineBusy * os.cpus().length - cores - parentCores;
    const parentLoopP99 = Math.max(0, parentLoop.percentile(99) / 1e6 - EVENT_LOOP_RESOLUTION_MS);
    const promRss = m1.get('process_resident_memory_bytes');
    const promCpu = m1.get('process_cpu_seconds_total');
    const heap0 = m0.get('nodejs_heap_size_used_bytes');
    const heap1 = m1.get('nodejs_heap_size_used_bytes');

    const cpu0 = os.cpus()[0];
    const lines: string[] = [];
    const row = (k: string, v: string): void => void lines.push(`| ${k} | ${v} |`);
    lines.push('');
    lines.push(`callbridge load benchmark (npm run bench:load -- --calls ${calls} --seconds ${seconds})`);
    lines.push(
      `machine: ${cpu0?.model.trim() ?? 'unknown CPU'}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM; ` +
        `${os.type()} ${os.release()}; Node ${process.version}`,
    );
    lines.push(
      `bridge: child process \`node --import tsx src/main.ts\`, LOG_LEVEL=info; callers and local model (speed ${MODEL_SPEED}x) in the parent process; ` +
        `ramp ${RAMP_MS / 1000} s, warm-up ${WARM_UP_MS / 1000} s`,
    );
    lines.push('');
    lines.push('| metric | value |');
    lines.push('|---|---|');
    row('concurrent calls (live at the bridge at window end)', `${calls} (${liveAtW1})`);
    row('measurement window', `${fmt(wallS, 1)} s`);
    row(
      'bridge CPU',
      `**${fmt(cores, 3)} cores** (${fmt(cpuS, 2)} s CPU: user ${fmt(w1.userS - w0.userS, 2)}, sys ${fmt(w1.sysS - w0.sysS, 2)}); ` +
        `idle ${fmt(idleCores, 3)} cores`,
    );
    row('bridge CPU per call', `**${fmt((cores * 1000) / calls, 1)} millicores** (${fmt(((cores - idleCores) * 1000) / calls, 1)} above idle)`);
    row(
      'bridge RSS',
      `idle ${fmt(MiB(idleRss), 1)} MiB -> under load ${fmt(MiB(w1.rssKiB), 1)} MiB (window start ${fmt(MiB(w0.rssKiB), 1)}, peak ${fmt(MiB(peakRssKiB), 1)})`,
    );
    row('bridge RSS per call', `**${fmt(MiB(perCallRssKiB), 2)} MiB** ((under load - idle) / calls)`);
    row(
      'bridge event-loop delay (window)',
      `p50 ${quantile(loop, 0.5)}, p99 ${quantile(loop, 0.99)}, mean ${loop.count > 0 ? fmt(loop.sum / loop.count, 2) : 'n/a'} ms ` +
        `(callbridge_event_loop_delay_ms, ${loop.count} samples); prom-client p50/p99/max ${fmt(promP50, 1)}/${fmt(promP99, 1)}/${fmt(promMax, 1)} ms incl. the 10 ms tick`,
    );
    row('barge-in reaction / first audio (bridge, window)', `reaction p50 ${quantile(reaction, 0.5)}, p99 ${quantile(reaction, 0.99)}; first audio p50 ${quantile(firstAudio, 0.5)}, p99 ${quantile(firstAudio, 0.99)}`);
    row('interruptions in window (clears received by callers / counted by bridge)', `${clearsInWindow} / ${interruptionsBridge} (whole run: ${clearsTotal} clears)`);
    row(
      'agent audio heard by callers in window',
      `${fmt(heardMsWindow / 60_000, 2)} min (${fmt((100 * heardMsWindow) / Math.max(1, callMsWindow), 0)}% of call time)`,
    );
    row(
      'caller speech in window',
      `${fmt(speechMsWindow / 60_000, 2)} min (${fmt((100 * speechMsWindow) / Math.max(1, callMsWindow), 0)}% of call time); ` +
        `utterances started per call min/max ${Math.min(...spokenInWindow)}/${Math.max(...spokenInWindow)}`,
    );
    row(
      'failures',
      `${startErrors.length} failed to connect, ${dropped.length} dropped, ${callerErrors.length} socket errors, ${protocolErrors} Twilio protocol errors, ` +
        `${silentCalls} calls heard nothing in window, ${upstreamErrors} upstream errors, ${reconnects} upstream reconnects`,
    );
    row('call outcomes at the bridge', outcomes === '' ? 'none' : outcomes);
    row(
      'bridge logs (whole run)',
      [...b.logs.byLevel].map(([l, n]) => `${l} ${n}`).join(', ') + (b.logs.problems.size > 0 ? `; ${[...b.logs.problems].map(([m, n]) => `${n}x ${m}`).join('; ')}` : ''),
    );
    row('bridge shutdown', `SIGTERM -> exit code ${exit.code ?? `signal ${exit.signal}`} after ${fmt(stopMs, 0)} ms`);
    row(
      'bridge event-loop thread waiting for a CPU (window)',
      Number.isNaN(waitMs)
        ? 'n/a'
        : `${fmt(waitMs, 0)} ms in all (${fmt((100 * waitMs) / (wallS * 1000), 1)}% of the window), ${fmt((1000 * waitMs) / Math.max(1, slices), 0)} µs on average ` +
          `over ${fmt(slices / wallS, 0)} wake-ups/s (/proc/<pid>/schedstat)`,
    );
    row(
      'load generator + model (parent process)',
      `${fmt(parentCores, 2)} cores, event-loop delay p99 ${fmt(parentLoopP99, 1)} ms; machine ${fmt(100 * machineBusy, 0)}% busy over ${os.cpus().length} cores ` +
        `(other processes: ${fmt(Math.max(0, otherCores), 2)} cores)`,
    );
    row(
      'cross-check (bridge /metrics)',
      `process_resident_memory_bytes ${promRss === undefined ? 'n/a' : `${fmt(promRss / 2 ** 20, 1)} MiB`}, process_cpu_seconds_total ${promCpu === undefined ? 'n/a' : fmt(promCpu, 2)} s, ` +
        `JS heap used ${heap0 === undefined || heap1 === undefined ? 'n/a' : `${fmt(heap0 / 2 ** 20, 1)} -> ${fmt(heap1 / 2 ** 20, 1)} MiB`} over the window; ${w1.threads} threads`,
    );
    for (const s of startErrors.slice(0, MAX_LOG_SAMPLES)) lines.push(`connect error: ${s.startError?.message ?? ''}`);
    for (const s of dropped.slice(0, MAX_LOG_SAMPLES)) {
      lines.push(`dropped: ${s.caller.callSid} ${s.caller.endReason ?? ''} close ${s.caller.closeCode ?? '-'} ${s.caller.closeReason ?? ''} ${s.caller.error?.message ?? ''}`);
    }
    if (exit.code !== 0) lines.push(`bridge stderr (tail):\n${b.stderr.slice(-20).join('\n')}`);
    if (machineBusy > 0.9) lines.push('warning: the machine was over 90% busy; the bridge may have been starved of CPU.');
    if (otherCores > 0.1) lines.push(`warning: other processes used ${fmt(otherCores, 2)} cores during the window; event-loop figures may be inflated.`);
    process.stdout.write(`${lines.join('\n')}\n`);
    bridge = null;
    if (exit.code !== 0 || startErrors.length > 0 || dropped.length > 0) process.exitCode = 1;
  } finally {
    for (const s of states) s.hangingUp = true;
    await Promise.all(states.map((s) => s.caller.hangUp().catch(() => undefined)));
    if (bridge !== null && bridge.child.exitCode === null && bridge.child.signalCode === null) bridge.child.kill('SIGKILL');
    await model.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:load failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
