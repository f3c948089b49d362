/**
 * What the primary and its workers say to each other over the cluster IPC channel (WORKERS > 1),
 * and the environment a worker is started with. No node:cluster here: main.ts reads these names
 * without loading any cluster code when it runs as one process.
 */
import type { MetricsSnapshot } from '../observability/metrics.js';

/** Set by the primary on every worker it forks: the number of workers (MAX_CALLS is shared by it). */
export const WORKER_COUNT_ENV = 'CALLBRIDGE_CLUSTER_WORKERS';
/** Set by the primary when it runs the embedded local model: the model's URL, for every worker. */
export const WORKER_REALTIME_URL_ENV = 'CALLBRIDGE_CLUSTER_REALTIME_URL';

const PREFIX = 'callbridge:';

export type PrimaryMessage =
  /** Drain as a single process does on its first SIGTERM/SIGINT. */
  | { type: 'callbridge:drain'; signal: string }
  /** End the calls now (a second signal to the primary). */
  | { type: 'callbridge:end-now'; signal: string }
  /** Send this worker's metrics snapshot, tagged `id`. */
  | { type: 'callbridge:metrics-collect'; id: number }
  /** The answer to the worker's stream claim `id`: ok, or why the CallSid is refused. */
  | { type: 'callbridge:stream-claim-result'; id: number; ok: boolean; reason?: string };

export type WorkerMessage =
  /** The worker listens and takes stop requests; `addresses` as Fastify would log them. */
  | { type: 'callbridge:ready'; addresses: string[] }
  /** The worker began draining on a signal of its own (not one relayed by the primary). */
  | { type: 'callbridge:draining'; signal: string }
  | { type: 'callbridge:metrics-snapshot'; id: number; snapshot?: MetricsSnapshot; error?: string }
  /**
   * A stream for `callSid` started on this worker (its own memory took it): may it, cluster-wide?
   * `resume`: it says it brings the caller back from a transfer.
   */
  | { type: 'callbridge:stream-claim'; id: number; callSid: string; resume: boolean }
  /** The call's stream ended in a transfer: one resumed stream may follow, on any worker. */
  | { type: 'callbridge:stream-resumable'; callSid: string };

/** Messages of ours, told apart from anything else on the channel (prom-client's, a user's). */
export function isOurs<T extends { type: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith(PREFIX);
}
