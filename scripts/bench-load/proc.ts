/**
 * /proc readings: CPU time, RSS and scheduler wait of one process or of a whole process tree
 * (the bridge: one process, or a node:cluster primary and its workers). Linux only.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  pid: number;
  ppid: number;
  /** the command name (/proc/<pid>/stat field 2), e.g. node */
  comm: string;
  /** user and system CPU seconds of all the process's threads */
  userS: number;
  sysS: number;
  /** CPU seconds of its children that exited and were reaped */
  childrenS: number;
  rssKiB: number;
  threads: number;
  /** ms the main (event-loop) thread spent runnable but waiting for a CPU, since it started */
  runQueueWaitMs: number;
  /** times the main thread was scheduled onto a CPU */
  timeslices: number;
}

/** One process; undefined if it is gone. */
export function readProc(pid: number): ProcSample | undefined {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
  const f = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17, num_threads 20.
  const ppid = Number(f[1]);
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  const cutime = Number(f[13]);
  const cstime = Number(f[14]);
  const threads = Number(f[17]);
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  // A zombie has no VmRSS line: it holds no memory.
  const rssKiB = rss?.[1] === undefined ? 0 : Number(rss[1]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  let runQueueWaitMs = Number.NaN;
  let timeslices = Number.NaN;
  try {
    // schedstat of the thread-group leader (the event-loop thread): on-CPU ns, run-queue wait ns, timeslices.
    const sched = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    runQueueWaitMs = Number(sched[1]) / 1e6;
    timeslices = Number(sched[2]);
  } catch {
    // kernels without schedstats: reported as n/a
  }
  return {
    pid,
    ppid,
    comm,
    userS: utime / CLK_TCK,
    sysS: stime / CLK_TCK,
    childrenS: (cutime + cstime) / CLK_TCK,
    rssKiB,
    threads,
    runQueueWaitMs,
    timeslices,
  };
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c !== '') out.push(Number(c));
    } catch {
      return childrenByScan(pid);
    }
  }
  return out;
}

/** Fallback for kernels without /proc/<pid>/task/<tid>/children: every process whose ppid is pid. */
function childrenByScan(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** pid and all its descendants, root first. */
export function processTree(rootPid: number): number[] {
  const out: number[] = [];
  const queue = [rootPid];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift();
    if (pid === undefined || seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    queue.push(...childrenOf(pid));
  }
  return out;
}

/**
 * Helpers of the dev runtime rather than the service: tsx starts an esbuild service process to
 * transpile (more often while source files change). Listed, never summed.
 */
const NOT_THE_SERVICE: ReadonlySet<string> = new Set(['esbuild']);

export interface TreeSample {
  atMs: number;
  /** the service's processes (summed below) */
  procs: ProcSample[];
  /** tree members left out of the sums (see NOT_THE_SERVICE) */
  excluded: ProcSample[];
  /** sums over the tree */
  cpuS: number;
  userS: number;
  sysS: number;
  rssKiB: number;
  threads: number;
  runQueueWaitMs: number;
  timeslices: number;
}

/** Every process of the tree rooted at rootPid, read now. */
export function readTree(rootPid: number): TreeSample {
  const atMs = performance.now();
  const all = processTree(rootPid)
    .map(readProc)
    .filter((p): p is ProcSample => p !== undefined);
  const procs = all.filter((p) => !NOT_THE_SERVICE.has(p.comm));
  const excluded = all.filter((p) => NOT_THE_SERVICE.has(p.comm));
  let userS = 0;
  let sysS = 0;
  let rssKiB = 0;
  let threads = 0;
  let wait = 0;
  let slices = 0;
  for (const p of procs) {
    userS += p.userS;
    sysS += p.sysS;
    rssKiB += p.rssKiB;
    threads += p.threads;
    wait += p.runQueueWaitMs;
    slices += p.timeslices;
  }
  // Reaped children's time lives on in the parent's cutime/cstime; only the root's is counted,
  // since the tree's own members are counted live.
  const root = procs.find((p) => p.pid === rootPid);
  return { atMs, procs, excluded, cpuS: userS + sysS + (root?.childrenS ?? 0), userS, sysS, rssKiB, threads, runQueueWaitMs: wait, timeslices: slices };
}

export interface TreeDelta {
  wallS: number;
  cpuS: number;
  userS: number;
  sysS: number;
  runQueueWaitMs: number;
  timeslices: number;
  /** processes at the end; processes that started or ended within the interval */
  processes: number;
  started: number;
  ended: number;
}

/** "node ×3 (not counted: esbuild ×1)": what a tree reading holds. */
export function describeTree(t: TreeSample): string {
  const list = (ps: readonly ProcSample[]): string => {
    const counts = new Map<string, number>();
    for (const p of ps) counts.set(p.comm, (counts.get(p.comm) ?? 0) + 1);
    return [...counts].map(([c, n]) => `${c} ×${n}`).join(', ');
  };
  return t.excluded.length === 0 ? list(t.procs) : `${list(t.procs)} (not counted: ${list(t.excluded)}, ${Math.round(t.excluded.reduce((n, p) => n + p.rssKiB, 0) / 1024)} MiB)`;
}

/** CPU used between two readings of a tree: a process that started in between counts from zero. */
export function treeDelta(a: TreeSample, b: TreeSample): TreeDelta {
  const before = new Map(a.procs.map((p) => [p.pid, p]));
  const after = new Set(b.procs.map((p) => p.pid));
  let userS = 0;
  let sysS = 0;
  let wait = 0;
  let slices = 0;
  let started = 0;
  for (const p of b.procs) {
    const p0 = before.get(p.pid);
    if (p0 === undefined) started += 1;
    userS += p.userS - (p0?.userS ?? 0);
    sysS += p.sysS - (p0?.sysS ?? 0);
    wait += p.runQueueWaitMs - (p0?.runQueueWaitMs ?? 0);
    slices += p.timeslices - (p0?.timeslices ?? 0);
  }
  const ended = a.procs.filter((p) => !after.has(p.pid)).length;
  const rootA = a.procs[0];
  const rootB = b.procs[0];
  const reaped = rootA !== undefined && rootB !== undefined && rootA.pid === rootB.pid ? rootB.childrenS - rootA.childrenS : 0;
  return {
    wallS: (b.atMs - a.atMs) / 1000,
    cpuS: userS + sysS + reaped,
    userS,
    sysS,
    runQueueWaitMs: wait,
    timeslices: slices,
    processes: b.procs.length,
    started,
    ended,
  };
}

/** Machine-wide busy and total jiffies from the first line of /proc/stat. */
export function readMachineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const n = line.trim().split(/\s+/).slice(1).map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  const idle = (n[3] ?? 0) + (n[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/**
 * Raises the nice value of every thread of a process to `nice` (Linux keeps nice per thread;
 * threads it starts later inherit it from the thread that starts them). Never lowers one: a
 * thread already at or above `nice` (the bench itself run under `nice`) is left as it is, which
 * needs no privilege. Returns the threads changed.
 */
export function reniceProcess(pid: number, nice: number): number {
  let changed = 0;
  let lastError: Error | null = null;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (os.getPriority(Number(tid)) >= nice) continue;
      os.setPriority(Number(tid), nice);
      changed += 1;
    } catch (err) {
      // the thread ended meanwhile, or the system refused
      lastError = err instanceof Error ? err : new Error(String(err));
    }
  }
  if (lastError !== null && changed === 0) throw new Error(`could not renice process ${pid} to ${nice}: ${lastError.message}`);
  return changed;
}
