/**
 * Load benchmark: what callers hear (barge-in reaction, first audio, truncation accuracy, correct
 * calls) and the CPU and memory the bridge needs per concurrent call.
 *
 * The bridge runs in a child process (`node --import tsx src/main.ts`; with --workers N it gets
 * WORKERS=N and runs as a node:cluster primary and N workers) and is measured from outside
 * through /proc, summed over its process tree. The simulated Twilio callers run in this process
 * and the local Realtime model in another child: latencies are timed between the model's sockets
 * and the callers' on one machine-wide monotonic clock, so every queue inside the bridge counts.
 *
 * Each call asks a question and waits for the answer, says something else and talks over part
 * of that second answer (a barge-in: the bridge must clear Twilio's buffer and truncate
 * upstream), then lets the reply to the barge-in play out, and starts over, until hung up.
 *
 * Run: npm run bench:load -- [--calls 50] [--seconds 30] [--workers N]
 *      npm run bench:load -- --find-capacity [--seconds 30] [--workers N] [--steps 25,50,...]
 * Linux only (/proc). Modules: scripts/bench-load/.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { capacityTable, fmt, machineLine, methodNotes, stepReport } from './bench-load/report.js';
import { runStep, StepError, type StepOptions, type StepResult } from './bench-load/run.js';
import { slope } from './bench-load/stats.js';

/** Simulated callers per caller process by default: at 200 in one process its own timers sent mark echoes up to 15-29 ms late. */
const CALLS_PER_CALLER_PROCESS = 100;
/** The local model yields the cores to the bridge and the callers, as a remote API would not compete for them. */
const DEFAULT_MODEL_NICE = 10;
const DEFAULT_STEPS = [25, 50, 75, 100, 150, 200, 300, 400, 600, 800];
/** A step whose model or bridge did not start is tried this many times more, this long apart. */
const STARTUP_RETRIES = 2;
const STARTUP_RETRY_DELAY_MS = 15_000;
const USAGE = `usage: npm run bench:load -- [options]
  --calls N                     concurrent calls (default 50)
  --seconds S                   measurement window per step (default 30)
  --workers N                   run the bridge with WORKERS=N (cluster primary + N workers); default: WORKERS unset
  --ramp-seconds S              spread call placement over S seconds (default 10, at least 5 ms per call)
  --find-capacity               raise the calls step by step until a step fails, then bisect; prints the last passing number
  --steps 25,50,...             the steps of --find-capacity (default ${DEFAULT_STEPS.join(',')})
  --resolution N                stop bisecting when pass and fail are this close (default 10; 0: no bisection)
  --min-barge-ins N             --find-capacity: lengthen a step's window until about N barge-ins are expected (default 200),
                                so its p99 is a percentile and not the one worst sample; a failing step is run a second time
                                and fails only if it fails again
  --max-reaction-p99-ms X       pass criterion: barge-in reaction p99 (default 5)
  --max-truncation-error-ms X   a call with a larger truncation error is incorrect (default 20)
  --live-heap                   read the bridge's live JS heap after a full GC at the window's start and end (one process; via its inspector)
  --model-nice N                nice value of the local model's process (default 10; 0: same priority as the bridge). The model
                                stands in for OpenAI's servers, which do not share the bridge's cores; it still runs on them
  --caller-processes N          child processes the simulated callers are spread over (default: one per 100 calls, at most one
                                per core), so one process's own event-loop delay is not in every call's figures
  --bridge-root DIR             measure the bridge of another checkout (its src/main.ts, run with its own node_modules), e.g. a
                                baseline commit: git worktree add /tmp/base <commit>, npm ci in it, then --bridge-root /tmp/base
  --profile DIR                 write V8 CPU profiles of the bridge's processes to DIR (node --cpu-prof; adds overhead)
environment: BENCH_DEBUG=1 prints each incorrect call's timeline (JSON) to stderr
`;

interface Args {
  calls: number;
  seconds: number;
  workers: number | null;
  rampMs: number | null;
  findCapacity: boolean;
  steps: number[];
  resolution: number;
  minBargeIns: number;
  maxReactionP99Ms: number;
  maxTruncationErrorMs: number;
  profileDir: string | null;
  liveHeap: boolean;
  modelNice: number;
  bridgeRoot: string | null;
  /** null: one per CALLS_PER_CALLER_PROCESS calls, at most one per core */
  callerProcesses: number | null;
}

function parseCliArgs(): Args {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '30' },
      workers: { type: 'string' },
      'ramp-seconds': { type: 'string' },
      'find-capacity': { type: 'boolean', default: false },
      steps: { type: 'string' },
      resolution: { type: 'string', default: '10' },
      'min-barge-ins': { type: 'string', default: '200' },
      'max-reaction-p99-ms': { type: 'string', default: '5' },
      'max-truncation-error-ms': { type: 'string', default: '20' },
      profile: { type: 'string' },
      'live-heap': { type: 'boolean', default: false },
      'model-nice': { type: 'string', default: String(DEFAULT_MODEL_NICE) },
      'bridge-root': { type: 'string' },
      'caller-processes': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}-${max}, got "${v}"`);
    return n;
  };
  const num = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number ${min}-${max}, got "${v}"`);
    return n;
  };
  const steps = values.steps === undefined ? DEFAULT_STEPS : values.steps.split(',').map((s) => int('steps', s.trim(), 1, 10_000));
  return {
    calls: int('calls', values.calls, 1, 10_000),
    seconds: num('seconds', values.seconds, 1, 3600),
    workers: values.workers === undefined ? null : int('workers', values.workers, 1, 64),
    rampMs: values['ramp-seconds'] === undefined ? null : num('ramp-seconds', values['ramp-seconds'], 0, 600) * 1000,
    findCapacity: values['find-capacity'] === true,
    steps: [...new Set(steps)].sort((a, b) => a - b),
    resolution: int('resolution', values.resolution, 0, 10_000),
    minBargeIns: int('min-barge-ins', values['min-barge-ins'], 0, 100_000),
    maxReactionP99Ms: num('max-reaction-p99-ms', values['max-reaction-p99-ms'], 0, 60_000),
    maxTruncationErrorMs: num('max-truncation-error-ms', values['max-truncation-error-ms'], 0, 60_000),
    profileDir: values.profile === undefined ? null : path.resolve(values.profile),
    liveHeap: values['live-heap'] === true,
    modelNice: int('model-nice', values['model-nice'], 0, 19),
    bridgeRoot: values['bridge-root'] === undefined ? null : path.resolve(values['bridge-root']),
    callerProcesses: values['caller-processes'] === undefined ? null : int('caller-processes', values['caller-processes'], 1, 64),
  };
}

function checkArgs(a: Args): Args {
  if (a.liveHeap && a.workers !== null && a.workers > 1) throw new Error('--live-heap reads one process: use it without --workers');
  return a;
}

/** Calls are spread over one script cycle by default, so their barge-ins do not all fall together. */
function rampMsFor(a: Args, calls: number): number {
  return Math.max(a.rampMs ?? 10_000, calls * 5);
}

function stepOptions(a: Args, calls: number, seconds = a.seconds): StepOptions {
  return {
    calls,
    seconds,
    workers: a.workers,
    rampMs: rampMsFor(a, calls),
    maxReactionP99Ms: a.maxReactionP99Ms,
    maxTruncationErrorMs: a.maxTruncationErrorMs,
    profileDir: a.profileDir,
    liveHeap: a.liveHeap,
    modelNice: a.modelNice,
    bridgeRoot: a.bridgeRoot,
    callerProcesses: a.callerProcesses ?? Math.min(Math.ceil(calls / CALLS_PER_CALLER_PROCESS), os.cpus().length),
    progress: (line) => process.stderr.write(`${line}\n`),
  };
}

function commandLine(a: Args, calls: number | null): string {
  const parts = ['npm run bench:load --'];
  if (calls !== null) parts.push(`--calls ${calls}`);
  else parts.push('--find-capacity');
  parts.push(`--seconds ${a.seconds}`);
  if (a.workers !== null) parts.push(`--workers ${a.workers}`);
  if (a.modelNice !== DEFAULT_MODEL_NICE) parts.push(`--model-nice ${a.modelNice}`);
  if (a.bridgeRoot !== null) parts.push(`--bridge-root ${a.bridgeRoot}`);
  if (a.callerProcesses !== null) parts.push(`--caller-processes ${a.callerProcesses}`);
  return parts.join(' ');
}

async function single(a: Args): Promise<void> {
  const r = await runStep(stepOptions(a, a.calls));
  process.stdout.write(`${stepReport(r, commandLine(a, a.calls))}\n`);
  if (r.bridge.exit.code !== 0 || r.startErrors.length > 0 || r.dropped.length > 0) process.exitCode = 1;
}

interface FailedStep {
  calls: number;
  error: string;
}

class SearchStopped extends Error {}
class StepBroken extends Error {}

const INITIAL_BARGE_INS_PER_CALL_S = 0.07;

async function findCapacity(a: Args): Promise<void> {
  const done: StepResult[] = [];
  const broken: FailedStep[] = [];
  let stopped: string | null = null;
  // Barge-ins per call-second, from the steps so far (the callers' script gives about 0.07).
  let bargeInRate = INITIAL_BARGE_INS_PER_CALL_S;
  const windowFor = (calls: number): number => Math.max(a.seconds, Math.ceil(a.minBargeIns / (bargeInRate * calls)));
  const measure = async (calls: number, confirm: boolean): Promise<StepResult> => {
    for (let attempt = 0; ; attempt++) {
      const seconds = windowFor(calls);
      process.stderr.write(`\n--- step: ${calls} calls, ${seconds} s window${confirm ? ' (second run of a failed step)' : ''}${attempt > 0 ? ` (retry ${attempt})` : ''} ---\n`);
      try {
        const r = await runStep(stepOptions(a, calls, seconds));
        done.push(r);
        if (r.reaction.count > 0) bargeInRate = r.reaction.count / (calls * r.wallS);
        process.stderr.write(`${calls} calls: ${r.verdict}\n`);
        return r;
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        if (err instanceof StepError && err.phase === 'startup') {
          process.stderr.write(`${calls} calls: not measured (${error})\n`);
          if (attempt < STARTUP_RETRIES) {
            await new Promise((resolve) => setTimeout(resolve, STARTUP_RETRY_DELAY_MS));
            continue;
          }
          throw new SearchStopped(`step ${calls} calls could not be started ${STARTUP_RETRIES + 1} times: ${error}`);
        }
        throw new StepBroken(error);
      }
    }
  };
  // On two shared cores one scheduling hiccup can push a single step over: a step fails only if
  // a second run of it fails too. A broken step (the bridge died, calls dropped) is not rerun.
  const run = async (calls: number): Promise<boolean> => {
    try {
      if ((await measure(calls, false)).pass) return true;
      return (await measure(calls, true)).pass;
    } catch (err) {
      if (!(err instanceof StepBroken)) throw err;
      broken.push({ calls, error: err.message });
      process.stderr.write(`${calls} calls: fail (${err.message})\n`);
      return false;
    }
  };
  let lastPass: number | null = null;
  let firstFail: number | null = null;
  try {
    for (const n of a.steps) {
      if (await run(n)) lastPass = n;
      else {
        firstFail = n;
        break;
      }
    }
    if (firstFail !== null && a.resolution > 0) {
      let lo = lastPass ?? 0;
      let hi = firstFail;
      while (hi - lo > a.resolution) {
        const mid = Math.round((lo + hi) / 2);
        if (mid <= 0 || mid === lo || mid === hi) break;
        if (await run(mid)) {
          lo = mid;
          lastPass = mid;
        } else {
          hi = mid;
          firstFail = mid;
        }
      }
    }
  } catch (err) {
    if (!(err instanceof SearchStopped)) throw err;
    stopped = err.message;
  }

  const lines: string[] = [];
  lines.push('');
  lines.push(`callbridge capacity search (${commandLine(a, null)})`);
  lines.push(machineLine());
  lines.push(
    `a step passes when every call is fully correct and barge-in reaction p99 <= ${a.maxReactionP99Ms} ms; ` +
      `steps ${a.steps.join(', ')}, then bisection to ${a.resolution} calls; each step: fresh bridge${a.workers !== null ? ` (WORKERS=${a.workers})` : ''} and model, ` +
      `calls placed over max(${(a.rampMs ?? 10_000) / 1000} s, 5 ms per call), 3 s warm-up, a window of at least ${a.seconds} s and long enough for about ${a.minBargeIns} barge-ins; ` +
      'a failing step is run a second time and fails only if it fails again',
  );
  lines.push('');
  lines.push(...methodNotes(a.maxTruncationErrorMs));
  lines.push('');
  lines.push(...capacityTable([...done].sort((x, y) => x.opts.calls - y.opts.calls)));
  for (const b of broken) lines.push(`step ${b.calls} calls failed before it could be measured: ${b.error}`);
  lines.push('');
  if (stopped !== null) lines.push(`**search stopped early**: ${stopped}; the capacity below is a lower bound.`);
  const failed = firstFail === null ? null : ([...done].reverse().find((r) => r.opts.calls === firstFail)?.verdict ?? broken.find((b) => b.calls === firstFail)?.error ?? 'fail');
  lines.push(
    lastPass === null
      ? `**capacity: below ${a.steps[0] ?? 0} calls** (the first step failed: ${failed ?? ''})`
      : `**capacity: ${lastPass} calls**${a.workers !== null ? ` with WORKERS=${a.workers}` : ''} (last passing step${firstFail !== null ? `; ${firstFail} calls: ${failed ?? ''}` : '; no step failed'})`,
  );
  // Per-call cost as the slope across the passing steps: free of the idle baseline's noise.
  const passing = done.filter((r) => r.pass);
  if (passing.length >= 2) {
    const cpuSlope = slope(passing.map((r) => ({ x: r.opts.calls, y: r.bridge.cores * 1000 })));
    const rssSlope = slope(passing.map((r) => ({ x: r.opts.calls, y: r.bridge.rss1KiB / 1024 })));
    lines.push(
      `marginal cost per call over the passing steps (least-squares slope of bridge CPU and RSS against calls): ${fmt(cpuSlope, 2)} millicores, ${fmt(rssSlope, 2)} MiB`,
    );
  }
  const last = done.find((r) => r.opts.calls === lastPass && r.pass);
  if (last !== undefined) {
    lines.push(
      `at ${lastPass} calls: barge-in p99 ${fmt(last.reaction.p99, 2)} ms, bridge ${fmt((last.bridge.cores * 1000) / last.opts.calls, 1)} millicores and ` +
        `${fmt(last.bridge.rampRssPerCallMiB, 2)} MiB per call (RSS slope over the ramp)`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const a = checkArgs(parseCliArgs());
  if (process.platform !== 'linux') throw new Error('bench:load reads /proc and runs on Linux only');
  if (a.findCapacity) await findCapacity(a);
  else await single(a);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:load failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
