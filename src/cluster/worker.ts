/**
 * A worker's side of the cluster (WORKERS > 1): stop requests, metrics, the cluster-wide
 * one-stream memory, and telling the primary it is ready. The worker otherwise runs the ordinary
 * server (src/main.ts). It serves no metrics itself: the primary gathers every worker's figures
 * and serves them on METRICS_PORT.
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
import type { Metrics } from '../observability/metrics.js';
import { START_VERIFICATION_TIMEOUT_MS } from '../twilio/start-verification.js';
import type { SharedStreamClaims } from '../twilio/start-verification.js';
import { isOurs, WORKER_COUNT_ENV, WORKER_REALTIME_URL_ENV } from './protocol.js';
import type { PrimaryMessage, WorkerMessage } from './protocol.js';

/**
 * How long a stream claim waits for the primary. The start verification gives up at the same
 * deadline (and lets the call go on); this only frees the pending entry.
 */
const STREAM_CLAIM_TIMEOUT_MS = START_VERIFICATION_TIMEOUT_MS;

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
  /** the primary's cluster-wide one-stream memory */
  readonly streamClaims: SharedStreamClaims;
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
      // would crash the worker; a stream claim waiting on it times out instead.
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
  let nextClaimId = 1;
  type ClaimAnswer = { ok: true } | { ok: false; reason: string };
  const pendingClaims = new Map<number, { resolve: (answer: ClaimAnswer) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();

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
      case 'callbridge:stream-claim-result': {
        const pending = pendingClaims.get(message.id);
        if (pending === undefined) return; // late: the verification went on without it
        pendingClaims.delete(message.id);
        clearTimeout(pending.timer);
        pending.resolve(message.ok ? { ok: true } : { ok: false, reason: message.reason ?? 'refused by the primary' });
        return;
      }
    }
  });

  // A rejection is "could not ask" (unverified: the call goes on), never a refusal.
  const streamClaims: SharedStreamClaims = {
    claim: (callSid, resume) =>
      new Promise<ClaimAnswer>((resolve, reject) => {
        const id = nextClaimId++;
        const timer = setTimeout(() => {
          pendingClaims.delete(id);
          reject(new Error(`the primary did not answer the stream claim within ${STREAM_CLAIM_TIMEOUT_MS} ms`));
        }, STREAM_CLAIM_TIMEOUT_MS);
        pendingClaims.set(id, { resolve, reject, timer });
        if (!send({ type: 'callbridge:stream-claim', id, callSid, resume })) {
          pendingClaims.delete(id);
          clearTimeout(timer);
          reject(new Error('not connected to the primary'));
        }
      }),
    allowResume: (callSid) => {
      send({ type: 'callbridge:stream-resumable', callSid });
    },
  };

  return {
    id: self.id,
    count,
    realtimeUrl: realtimeUrl === undefined || realtimeUrl === '' ? null : realtimeUrl,
    streamClaims,
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
