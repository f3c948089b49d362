/** The bridge under test: `node --import tsx src/main.ts` in a child process (with WORKERS, a cluster). */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { inspectorUrlFrom } from './heap.js';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const START_TIMEOUT_MS = 30_000;
/** With workers, how long to wait for every worker's "listening" line after the first. */
const WORKERS_LISTEN_TIMEOUT_MS = 15_000;
const DRAIN_TIMEOUT_S = 5;
const MAX_LOG_SAMPLES = 5;

export interface LogTally {
  byLevel: Map<string, number>;
  /** warn and above: message -> count, first few kept */
  problems: Map<string, number>;
}

export interface Bridge {
  child: ChildProcess;
  pid: number;
  port: number;
  baseUrl: string;
  /** where GET /metrics is served (METRICS_PORT=0: read from the "metrics listening at" line) */
  metricsUrl: string;
  /** the bridge's inspector (started with --inspect=127.0.0.1:0), for the live heap; null without */
  readonly inspectorUrl: string | null;
  /** "Server listening" lines seen (one per listening process) */
  listening: number;
  logs: LogTally;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `nodeArgs`: extra Node options for the bridge (and, through execArgv, its workers), e.g. --cpu-prof.
 * `root`: the checkout whose src/main.ts runs (another commit's, to measure a baseline under this bench).
 */
export async function startBridge(
  upstreamUrl: string,
  calls: number,
  workers: number | null,
  nodeArgs: readonly string[] = [],
  root: string = REPO_ROOT,
): Promise<Bridge> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Nothing from the caller's shell may change what is measured (signatures, capture, a real key).
  for (const k of ['OPENAI_API_KEY', 'TWILIO_AUTH_TOKEN', 'TWILIO_ACCOUNT_SID', 'PUBLIC_URL', 'RECORD_CALLS', 'MAX_CALL_DURATION_S', 'NODE_OPTIONS', 'WORKERS']) {
    delete env[k];
  }
  Object.assign(env, {
    PORT: '0',
    // /metrics is not on the public port: an ephemeral metrics port, found in the log.
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    // info, as in production; it is also the level at which Fastify logs the port.
    LOG_LEVEL: 'info',
    REALTIME_BACKEND: 'openai',
    OPENAI_REALTIME_URL: upstreamUrl,
    DRAIN_TIMEOUT_S: String(DRAIN_TIMEOUT_S),
    MAX_CALLS: String(Math.max(100, calls * 2)),
  });
  if (workers !== null) env['WORKERS'] = String(workers);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not spawn the bridge');
  const pid = child.pid;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const logs: LogTally = { byLevel: new Map(), problems: new Map() };
  const stderr: string[] = [];
  let inspectorUrl: string | null = null;
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line);
    inspectorUrl ??= inspectorUrlFrom(line);
  });

  const wanted = workers !== null && workers > 1 ? workers : 1;
  let listening = 0;
  let port = 0;
  let metricsUrl = '';
  let onListening: () => void = () => undefined;
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
    const metrics = /^metrics listening at (http:\/\/127\.0\.0\.1:\d+)$/.exec(msg);
    if (metrics?.[1] !== undefined) metricsUrl = metrics[1];
    const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(msg);
    if (m?.[1] !== undefined) {
      listening += 1;
      if (port === 0) port = Number(m[1]);
      onListening();
    }
  });

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`bridge exited during startup (code ${code}, signal ${signal}):\n${stderr.slice(-20).join('\n')}`));
    });
    onListening = () => {
      if (listening !== 1) return;
      clearTimeout(timer);
      resolve();
    };
  });
  if (wanted > 1 && listening < wanted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, WORKERS_LISTEN_TIMEOUT_MS);
      onListening = () => {
        if (listening < wanted) return;
        clearTimeout(timer);
        resolve();
      };
    });
  }
  onListening = () => undefined;
  // Logged before the public port listens (single process and primary alike), so it is known here.
  // A bridge of an older commit (--bridge-root) served /metrics on its public port instead.
  if (metricsUrl === '' && root !== REPO_ROOT && port !== 0) metricsUrl = `http://127.0.0.1:${port}`;
  if (metricsUrl === '') {
    child.kill('SIGKILL');
    throw new Error('bridge did not log its metrics address ("metrics listening at …")');
  }
  const bridge: Bridge = { child, pid, port, baseUrl: `http://127.0.0.1:${port}`, metricsUrl, inspectorUrl, listening, logs, stderr, exited };
  // `listening` keeps counting after startup (a respawned worker)
  Object.defineProperty(bridge, 'listening', { get: () => listening, enumerable: true });
  Object.defineProperty(bridge, 'inspectorUrl', { get: () => inspectorUrl, enumerable: true });
  return bridge;
}
