/**
 * The primary of a multi-process service (WORKERS > 1). It serves no calls: it forks the workers
 * (node:cluster, which shares the listening port among them), replaces a worker that dies, stops
 * replacing them when they crash-loop, relays SIGTERM/SIGINT as a coordinated drain, serves
 * METRICS_PORT with every worker's figures gathered and summed, and keeps the cluster-wide
 * one-stream memory the workers consult for each started call.
 *
 * Its log lines carry `role: "primary"`; each worker's carry `role: "worker"` and `worker: <id>`.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { Counter, Gauge, Registry, prometheusContentType } from 'prom-client';
import type { AppConfig } from '../config.js';
import { ClusterMetrics } from '../observability/cluster-metrics.js';
import type { Logger } from '../observability/logger.js';
import { serveMetrics } from '../observability/metrics-server.js';
import { sharedProcessRegistry, snapshotOf } from '../observability/metrics.js';
import type { MetricsSnapshot } from '../observability/metrics.js';
import { CALL_TOKEN_TTL_MS } from '../twilio/call-token.js';
import { StreamClaims, streamClaimsCapacity, streamClaimsWindowMs } from '../twilio/stream-claims.js';
import { isOurs, WORKER_COUNT_ENV, WORKER_REALTIME_URL_ENV } from './protocol.js';
import type { PrimaryMessage, WorkerMessage } from './protocol.js';

/** More unexpected worker exits than this within CRASH_WINDOW_MS is a crash loop. */
export const CRASH_LOOP_MAX_DEATHS = 5;
export const CRASH_WINDOW_MS = 60_000;
/** How long a worker has to send its figures for a scrape; one that is late is counted as last reported. */
const METRICS_COLLECT_TIMEOUT_MS = 2000;
/**
 * After DRAIN_TIMEOUT_S a worker ends its remaining calls (3 s of close handshakes at most) and
 * exits; one still there this long after the drain began is killed, and the primary exits 1.
 */
const SHUTDOWN_MARGIN_MS = 30_000;

export interface PrimaryOptions {
  config: AppConfig;
  logger: Logger;
  /** The embedded local model's URL, passed to every worker; null when the workers use config.realtimeUrl. */
  localRealtimeUrl: string | null;
  /** Run once every worker has exited, before the primary exits (closes the local model). */
  beforeExit: () => Promise<void>;
}

interface WorkerState {
  readonly worker: Worker;
  readonly pid: number | undefined;
  /** listening and taking stop requests */
  ready: boolean;
  /** what the primary asked of it so far */
  asked: 'nothing' | 'drain' | 'now';
  /** began draining on a signal sent to it alone */
  selfDrained: boolean;
}

/**
 * Counts unexpected exits in a sliding window; `record` says whether they now amount to a crash
 * loop (more than `maxDeaths` within `windowMs`).
 */
export class CrashLoopDetector {
  private readonly deaths: number[] = [];

  constructor(
    private readonly maxDeaths = CRASH_LOOP_MAX_DEATHS,
    private readonly windowMs = CRASH_WINDOW_MS,
  ) {}

  record(nowMs: number): boolean {
    this.deaths.push(nowMs);
    while (this.deaths.length > 0 && nowMs - (this.deaths[0] ?? nowMs) >= this.windowMs) this.deaths.shift();
    return this.deaths.length > this.maxDeaths;
  }

  get recent(): number {
    return this.deaths.length;
  }
}

/**
 * Listens on METRICS_PORT (rejecting if it cannot), then forks the workers and supervises them
 * until the service has shut down; then exits the process.
 */
export async function runPrimary(options: PrimaryOptions): Promise<void> {
  const { config, logger } = options;
  const count = config.workers;
  const workers = new Map<number, WorkerState>();
  const crashes = new CrashLoopDetector();
  const clusterMetrics = new ClusterMetrics();
  // The cluster's one-stream memory: a worker's own memory only knows the streams it served, and
  // node:cluster hands a replayed stream to whichever worker is next. Sized for the whole service.
  const claimsWindowMs = streamClaimsWindowMs(CALL_TOKEN_TTL_MS, config.maxCallDurationMs);
  const streamClaims = new StreamClaims({ windowMs: claimsWindowMs, maxEntries: streamClaimsCapacity(config.maxCalls, claimsWindowMs) });

  // The primary's own figures: its process metrics (memory and CPU add up to the service's) and
  // the workers' supervision.
  const ownRegistry = new Registry();
  const workersGauge = new Gauge({ name: 'callbridge_workers', help: 'Worker processes running (WORKERS > 1 only).', registers: [ownRegistry], aggregator: 'first' });
  const restarts = new Counter({
    name: 'callbridge_worker_restarts_total',
    help: 'Workers that exited while the service was running and were replaced (WORKERS > 1 only).',
    registers: [ownRegistry],
    aggregator: 'first',
  });
  restarts.inc(0);
  const exposed = Registry.merge([ownRegistry, sharedProcessRegistry()]);

  let phase: 'running' | 'draining' | 'ending' = 'running';
  let failed = false;
  let announced = false;
  let deadline: NodeJS.Timeout | null = null;

  const send = (state: WorkerState, message: PrimaryMessage): void => {
    if (!state.worker.isConnected()) return;
    const report = (err: unknown): void => {
      // A worker exiting as it is sent something: its exit is handled on its own.
      logger.debug({ worker: state.worker.id, workerPid: state.pid, err: (err as Error).message }, 'message to worker failed');
    };
    try {
      // With a callback, a failed send is reported there rather than as an 'error' event.
      state.worker.send(message, undefined, (err) => {
        if (err !== null) report(err);
      });
    } catch (err) {
      report(err);
    }
  };

  /** Tell a ready worker what the shutdown phase asks of it (once each). */
  const relayPhase = (state: WorkerState, signal: string): void => {
    if (!state.ready) return; // told when it says it is ready
    if (phase === 'draining' && state.asked === 'nothing') {
      state.asked = 'drain';
      send(state, { type: 'callbridge:drain', signal });
    } else if (phase === 'ending' && state.asked !== 'now') {
      state.asked = 'now';
      send(state, { type: 'callbridge:end-now', signal });
    }
  };
  let lastSignal = 'SIGTERM';

  const fork = (): void => {
    const env: Record<string, string> = { [WORKER_COUNT_ENV]: String(count) };
    if (options.localRealtimeUrl !== null) env[WORKER_REALTIME_URL_ENV] = options.localRealtimeUrl;
    const worker = cluster.fork(env);
    const state: WorkerState = { worker, pid: worker.process.pid, ready: false, asked: 'nothing', selfDrained: false };
    workers.set(worker.id, state);
    workersGauge.set(workers.size);
    logger.info({ worker: worker.id, workerPid: state.pid }, 'worker started');
    worker.on('message', (message: unknown) => onMessage(state, message));
    // Failing to signal or message a worker is not the primary's end; its exit is what counts.
    worker.on('error', (err: Error) => logger.warn({ worker: worker.id, workerPid: state.pid, err: err.message }, 'worker process error'));
  };

  const onMessage = (state: WorkerState, message: unknown): void => {
    if (!isOurs<WorkerMessage>(message)) return;
    switch (message.type) {
      case 'callbridge:ready':
        state.ready = true;
        relayPhase(state, lastSignal);
        if (!announced && phase === 'running' && [...workers.values()].filter((w) => w.ready).length >= count) {
          announced = true;
          // The form Fastify logs for one process (scripts and tests read the port from it), once,
          // when every worker listens.
          for (const address of message.addresses) logger.info({ workers: count }, `Server listening at ${address}`);
        }
        return;
      case 'callbridge:draining':
        state.selfDrained = true;
        if (phase === 'running') {
          logger.warn({ worker: state.worker.id, workerPid: state.pid, signal: message.signal }, 'a worker was signalled on its own: it drains, then a replacement starts; signal the primary to stop the service');
        }
        return;
      case 'callbridge:metrics-snapshot':
        onSnapshot(state, message.id, message.snapshot, message.error);
        return;
      case 'callbridge:stream-claim': {
        const claim = streamClaims.claim(message.callSid, message.resume, Date.now());
        if (!claim.ok) {
          logger.warn({ callSid: message.callSid, worker: state.worker.id, workerPid: state.pid, reason: claim.reason }, 'stream refused cluster-wide');
          send(state, { type: 'callbridge:stream-claim-result', id: message.id, ok: false, reason: `${claim.reason}, seen by another worker` });
          return;
        }
        send(state, { type: 'callbridge:stream-claim-result', id: message.id, ok: true });
        return;
      }
      case 'callbridge:stream-resumable':
        streamClaims.allowResume(message.callSid, Date.now());
        return;
    }
  };

  // Metrics: a scrape asks every ready worker for its figures, then aggregates.
  let nextCollectId = 1;
  const collecting = new Map<string, (got: boolean) => void>();
  const onSnapshot = (state: WorkerState, id: number, snapshot: MetricsSnapshot | undefined, error: string | undefined): void => {
    const key = `${state.worker.id}:${id}`;
    const done = collecting.get(key);
    if (done === undefined) return; // late: the scrape went on without it
    collecting.delete(key);
    if (snapshot !== undefined) clusterMetrics.record(state.worker.id, snapshot);
    else logger.warn({ worker: state.worker.id, workerPid: state.pid, error }, 'worker could not report its metrics');
    done(snapshot !== undefined);
  };
  const collectFrom = (state: WorkerState, id: number): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const key = `${state.worker.id}:${id}`;
      const timer = setTimeout(() => {
        collecting.delete(key);
        resolve(false);
      }, METRICS_COLLECT_TIMEOUT_MS);
      collecting.set(key, (got) => {
        clearTimeout(timer);
        resolve(got);
      });
      send(state, { type: 'callbridge:metrics-collect', id });
      if (!state.worker.isConnected()) collecting.get(key)?.(false);
    });
  // Scrapes that arrive together share one gathering: each gathering asks every worker.
  let gathering: Promise<string> | null = null;
  const gatherMetrics = (): Promise<string> => {
    if (gathering === null) {
      gathering = gatherOnce().finally(() => {
        gathering = null;
      });
    }
    return gathering;
  };
  const gatherOnce = async (): Promise<string> => {
    const id = nextCollectId++;
    const targets = [...workers.values()].filter((w) => w.ready && w.worker.isConnected());
    const answers = await Promise.all(targets.map((w) => collectFrom(w, id)));
    const late = targets.filter((_, i) => answers[i] !== true);
    if (late.length > 0) {
      logger.warn(
        { workers: late.map((w) => ({ worker: w.worker.id, workerPid: w.pid })), timeoutMs: METRICS_COLLECT_TIMEOUT_MS },
        'workers did not report their metrics in time: their last reported figures are used',
      );
    }
    return clusterMetrics.render([await snapshotOf(exposed)]);
  };

  const finish = async (): Promise<void> => {
    if (deadline !== null) clearTimeout(deadline);
    try {
      await options.beforeExit();
    } catch (err) {
      failed = true;
      logger.error({ err: (err as Error).message }, 'closing the local model failed');
    }
    if (failed) logger.error('shut down after a failure: exiting 1');
    else logger.info('shut down cleanly');
    // Every line out, in order, before exiting (pino writes asynchronously).
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    process.exit(failed ? 1 : 0);
  };

  const beginShutdown = (signal: string): void => {
    phase = 'draining';
    lastSignal = signal;
    for (const state of workers.values()) relayPhase(state, signal);
    deadline = setTimeout(() => {
      failed = true;
      logger.error(
        { workers: [...workers.values()].map((w) => ({ worker: w.worker.id, workerPid: w.pid })), afterMs: config.drainTimeoutMs + SHUTDOWN_MARGIN_MS },
        'workers did not exit after the drain: killing them',
      );
      for (const state of workers.values()) state.worker.process.kill('SIGKILL');
    }, config.drainTimeoutMs + SHUTDOWN_MARGIN_MS);
    if (workers.size === 0) void finish();
  };

  cluster.on('exit', (worker, code, signal) => {
    const state = workers.get(worker.id);
    if (state === undefined) return;
    workers.delete(worker.id);
    workersGauge.set(workers.size);
    clusterMetrics.retire(worker.id);
    for (const [key, done] of collecting) if (key.startsWith(`${worker.id}:`)) done(false);
    const clean = code === 0 && signal === null;
    const fields = { worker: worker.id, workerPid: state.pid, exitCode: code, signal };
    if (phase === 'running') {
      restarts.inc();
      if (clean && state.selfDrained) {
        // Drained on a signal of its own: not a crash, but the service needs its place filled.
        logger.warn(fields, 'worker exited after draining on its own signal: starting a replacement');
        fork();
        return;
      }
      const loop = crashes.record(Date.now());
      if (loop) {
        failed = true;
        logger.fatal(
          { ...fields, deaths: crashes.recent, windowMs: CRASH_WINDOW_MS },
          `workers are crash-looping (more than ${CRASH_LOOP_MAX_DEATHS} unexpected exits within ${CRASH_WINDOW_MS / 1000} s): not starting more; draining the rest and exiting 1`,
        );
        logger.info({ signal: 'crash-loop', workers: workers.size, drainTimeoutMs: config.drainTimeoutMs }, 'draining before shutdown');
        beginShutdown('crash-loop');
        return;
      }
      logger.error(fields, 'worker died unexpectedly: starting a replacement');
      fork();
      return;
    }
    if (clean) logger.info(fields, 'worker exited');
    else {
      failed = true;
      logger.error(fields, 'worker exited uncleanly during shutdown');
    }
    if (workers.size === 0) void finish();
  });

  const onSignal = (signal: string): void => {
    if (phase === 'running') {
      logger.info({ signal, workers: workers.size, drainTimeoutMs: config.drainTimeoutMs }, 'draining before shutdown');
      beginShutdown(signal);
      return;
    }
    if (phase === 'draining') {
      // A second signal means "now", as for a single process.
      phase = 'ending';
      lastSignal = signal;
      logger.warn({ signal }, 'second signal: ending live calls now');
      for (const state of workers.values()) relayPhase(state, signal);
      return;
    }
    logger.info({ signal, workers: workers.size }, 'already ending the calls; waiting for the workers to exit');
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  // Before any worker: a service whose metrics port is taken fails to start rather than run blind.
  await serveMetrics({ exposition: { contentType: prometheusContentType, render: gatherMetrics }, host: config.host, port: config.metricsPort, logger });

  // Structured clone on the IPC channel, not JSON: metric values may be NaN or ±Inf (a gauge with
  // no samples yet), which JSON would turn into null and the sums into 0.
  cluster.setupPrimary({ serialization: 'advanced' });
  logger.info({ workers: count, maxCallsPerWorker: Math.ceil(config.maxCalls / count), maxCalls: config.maxCalls }, 'starting workers');
  for (let i = 0; i < count; i++) fork();
}
