/**
 * A worker's side of the cluster (WORKERS > 1): stop requests, metrics, and telling the primary
 * it is ready. The worker otherwise runs the ordinary server (src/main.ts).
 *
 * Signals. A terminal's Ctrl-C (and systemd's stop, which signals the whole control group)
 * reaches the primary and every worker at once. If a worker treated its own signals as a single
 * process does, the first Ctrl-C would reach it twice, once directly and once relayed by the
 * primary, and the second would end its calls at once instead of draining. So a worker's own
 * SIGTERM/SIGINT only ever starts its drain, which is idempotent; ending calls without waiting
 * comes only from the primary, on the primary's second signal. A worker signalled on its own
 * (`kill <worker pid>`) drains and exits, and the primary starts a replacement.
 */
import cluster from 'node:cluster';
import { prometheusContentType } from 'prom-client';
import type { Metrics, MetricsExposition } from '../observability/metrics.js';
import { isOurs, WORKER_COUNT_ENV, WORKER_REALTIME_URL_ENV } from './protocol.js';
import type { PrimaryMessage, WorkerMessage } from './protocol.js';

/** How long a scrape waits for the primary's aggregated text before answering 503. */
const METRICS_REQUEST_TIMEOUT_MS = 5000;

export interface StopRequest {
  /** drain: as a single process's first signal; now: end the calls without waiting */
  kind: 'drain' | 'now';
  signal: string;
  /** who asked: the primary, or a signal sent to this worker itself */
  from: 'primary' | 'signal';
}

export interface WorkerLink {
  /** cluster.worker.id: 1, 2, … in fork order; a replacement gets a new id */
  readonly id: number;
  /** workers in the cluster; MAX_CALLS is shared among them */
  readonly count: number;
  /** the primary's embedded local model, when it runs one */
  readonly realtimeUrl: string | null;
  /** the cluster-wide /metrics, gathered by the primary from every worker */
  readonly exposition: MetricsExposition;
  /** Answer the primary's metrics collection with these figures. */
  serveMetrics(metrics: Metrics): void;
  /** Stop requests; any that came before (a signal during start-up) are delivered at once. */
  onStop(handler: (request: StopRequest) => void): void;
  /** The server listens (at `addresses`) and stop requests are handled. */
  ready(addresses: string[]): void;
}

/**
 * The link to the primary when this process is a callbridge worker: forked by node:cluster with
 * WORKER_COUNT_ENV set. Anything else (one process; a cluster of some other manager) gets null
 * and runs as a single process.
 */
export function connectToPrimary(env: NodeJS.ProcessEnv = process.env): WorkerLink | null {
  const countRaw = env[WORKER_COUNT_ENV];
  const self = cluster.worker;
  if (!cluster.isWorker || self === undefined || countRaw === undefined) return null;
  const count = Number(countRaw);
  if (!Number.isInteger(count) || count < 1) throw new Error(`${WORKER_COUNT_ENV} must be a positive integer, got "${countRaw}"`);
  const realtimeUrl = env[WORKER_REALTIME_URL_ENV];

  const send = (message: WorkerMessage): boolean => {
    if (!process.connected || process.send === undefined) return false;
    try {
      // With a callback, a failed send (the primary going away) is not an 'error' event that
      // would crash the worker; a scrape waiting on it times out instead.
      process.send(message, undefined, undefined, () => undefined);
      return true;
    } catch {
      return false;
    }
  };

  let stopHandler: ((request: StopRequest) => void) | null = null;
  const queued: StopRequest[] = [];
  const stop = (request: StopRequest): void => {
    if (stopHandler === null) queued.push(request);
    else stopHandler(request);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    // Installed first thing, so that a Ctrl-C during start-up is not the default "die now".
    process.on(signal, () => stop({ kind: 'drain', signal, from: 'signal' }));
  }

  let metrics: Metrics | null = null;
  let nextRequestId = 1;
  const pendingTexts = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();

  process.on('message', (message: unknown) => {
    if (!isOurs<PrimaryMessage>(message)) return;
    switch (message.type) {
      case 'callbridge:drain':
        stop({ kind: 'drain', signal: message.signal, from: 'primary' });
        return;
      case 'callbridge:end-now':
        stop({ kind: 'now', signal: message.signal, from: 'primary' });
        return;
      case 'callbridge:metrics-collect': {
        const id = message.id;
        if (metrics === null) {
          send({ type: 'callbridge:metrics-snapshot', id, error: 'metrics not set up yet' });
          return;
        }
        metrics.snapshot().then(
          (snapshot) => send({ type: 'callbridge:metrics-snapshot', id, snapshot }),
          (err: unknown) => send({ type: 'callbridge:metrics-snapshot', id, error: err instanceof Error ? err.message : String(err) }),
        );
        return;
      }
      case 'callbridge:metrics-text': {
        const pending = pendingTexts.get(message.id);
        if (pending === undefined) return;
        pendingTexts.delete(message.id);
        clearTimeout(pending.timer);
        if (message.text !== undefined) pending.resolve(message.text);
        else pending.reject(new Error(message.error ?? 'no metrics from the primary'));
        return;
      }
    }
  });

  const exposition: MetricsExposition = {
    contentType: prometheusContentType,
    render: () =>
      new Promise<string>((resolve, reject) => {
        const id = nextRequestId++;
        const timer = setTimeout(() => {
          pendingTexts.delete(id);
          reject(new Error(`the primary did not send the cluster metrics within ${METRICS_REQUEST_TIMEOUT_MS} ms`));
        }, METRICS_REQUEST_TIMEOUT_MS);
        pendingTexts.set(id, { resolve, reject, timer });
        if (!send({ type: 'callbridge:metrics-request', id })) {
          pendingTexts.delete(id);
          clearTimeout(timer);
          reject(new Error('not connected to the primary'));
        }
      }),
  };

  return {
    id: self.id,
    count,
    realtimeUrl: realtimeUrl === undefined || realtimeUrl === '' ? null : realtimeUrl,
    exposition,
    serveMetrics(m) {
      metrics = m;
    },
    onStop(handler) {
      stopHandler = (request) => {
        if (request.kind === 'drain' && request.from === 'signal') send({ type: 'callbridge:draining', signal: request.signal });
        handler(request);
      };
      for (const request of queued.splice(0)) stopHandler(request);
    },
    ready(addresses) {
      send({ type: 'callbridge:ready', addresses });
    },
  };
}
