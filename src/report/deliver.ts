/**
 * CALL_REPORT_URL: each report is POSTed as JSON, signed like the http tools
 * (`X-Callbridge-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed with TOOLS_SECRET), from a
 * bounded queue that never makes a call wait: enqueue() is synchronous and only queues.
 *
 * - Retried with exponential backoff (jittered, Retry-After honoured, capped) on a network error,
 *   a timeout, a 5xx or a 429; never on another 4xx (the receiver said no: asking again changes
 *   nothing) or a redirect. Every attempt sends the same bytes, so the signature and the body's
 *   `timestamp` stay those of the report, and a receiver can deduplicate on callSid + streamSid.
 * - At most `capacity` reports wait; one more pushes the oldest waiting out (logged at error with
 *   its callSid, counted `dropped`): a receiver down for long costs bounded memory.
 * - flush() is the shutdown's: it waits for the queue to empty, up to a deadline, then gives up on
 *   what is left (each logged at error with its callSid, counted `failed`).
 */
import { performance } from 'node:perf_hooks';
import { SIGNATURE_HEADER, toolSignature } from '../call/http-tool.js';
import type { Logger } from '../observability/logger.js';
import type { ReportOutcome } from '../observability/metrics.js';
import type { CallReport } from './schema.js';

export const DEFAULT_REPORT_QUEUE_CAPACITY = 1000;
/** Requests in flight at once: a slow receiver does not hold the rest back, and is not flooded. */
const DEFAULT_CONCURRENCY = 4;
/** First attempt plus five retries: about 15 s of backoff in all. */
const DEFAULT_MAX_ATTEMPTS = 6;
const DEFAULT_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_MS = 500;
export const MAX_BACKOFF_MS = 30_000;

export interface ReportDeliveryOptions {
  url: string;
  /** TOOLS_SECRET; null: unsigned (a start-up warning says so) */
  secret: string | null;
  logger: Logger;
  /** Told how each report ended; `latencyMs` (enqueued → 2xx) when delivered. */
  onOutcome: (outcome: ReportOutcome, latencyMs?: number) => void;
  capacity?: number;
  concurrency?: number;
  maxAttempts?: number;
  timeoutMs?: number;
  /** Wait before retry number `retry` (1 = the first retry). Default: 0.5 s doubling, jittered, ≤ 30 s. */
  backoffMs?: (retry: number) => number;
}

interface Job {
  body: string;
  callSid: string;
  streamSid: string;
  log: Logger;
  enqueuedAtMs: number;
}

type Attempt = { kind: 'delivered'; status: number } | { kind: 'retry'; detail: string; retryAfterMs: number | null } | { kind: 'refused'; detail: string };

export interface FlushResult {
  /** Reports still queued or in flight when the deadline came: given up on. */
  abandoned: number;
}

export function defaultBackoffMs(retry: number): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, BACKOFF_BASE_MS * 2 ** (retry - 1));
  // Half fixed, half random: a fleet that lost its receiver at once does not retry in step.
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class ReportDelivery {
  private readonly queue: Job[] = [];
  private readonly inFlight = new Set<{ job: Job; abort: AbortController }>();
  private readonly waiters = new Set<() => void>();
  private readonly capacity: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: (retry: number) => number;
  private active = 0;
  private closed = false;

  constructor(private readonly options: ReportDeliveryOptions) {
    this.capacity = Math.max(1, options.capacity ?? DEFAULT_REPORT_QUEUE_CAPACITY);
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
    this.maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.backoffMs = options.backoffMs ?? defaultBackoffMs;
  }

  /** Reports queued or being delivered. */
  get pending(): number {
    return this.queue.length + this.active;
  }

  /** Queue a report: returns at once, on the call's path. */
  enqueue(report: CallReport, log: Logger): void {
    if (this.closed) {
      log.error('post-call report not sent: the service is shutting down and its reports were already flushed');
      this.options.onOutcome('failed');
      return;
    }
    const job: Job = { body: JSON.stringify(report), callSid: report.callSid, streamSid: report.streamSid, log, enqueuedAtMs: performance.now() };
    if (this.queue.length >= this.capacity) {
      const dropped = this.queue.shift();
      if (dropped !== undefined) {
        dropped.log.error({ capacity: this.capacity, waiting: this.queue.length + 1 }, 'post-call report dropped: the delivery queue is full (CALL_REPORT_URL is not keeping up)');
        this.options.onOutcome('dropped');
      }
    }
    this.queue.push(job);
    this.pump();
  }

  /**
   * Waits until every report is settled, or `timeoutMs` has passed; then gives up on the rest and
   * refuses new ones. For the shutdown: afterwards the process exits.
   */
  async flush(timeoutMs: number): Promise<FlushResult> {
    if (this.pending > 0 && !this.closed) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.waiters.delete(done);
          clearTimeout(timer);
          resolve();
        };
        this.waiters.add(done);
        timer = setTimeout(done, Math.max(0, timeoutMs));
      });
    }
    // A second flush (a second signal during the first) finds the first one's work done.
    if (this.closed) return { abandoned: 0 };
    this.closed = true;
    const abandoned = [...this.queue.splice(0), ...[...this.inFlight].map((f) => f.job)];
    for (const f of this.inFlight) f.abort.abort();
    for (const job of abandoned) {
      job.log.error({ url: this.safeUrl }, 'post-call report not delivered: the shutdown ran out of time');
      this.options.onOutcome('failed');
    }
    return { abandoned: abandoned.length };
  }

  private get safeUrl(): string {
    try {
      const u = new URL(this.options.url);
      return `${u.origin}${u.pathname}`;
    } catch {
      return 'CALL_REPORT_URL';
    }
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const job = this.queue.shift();
      if (job === undefined) break;
      this.active += 1;
      void this.deliver(job).finally(() => {
        this.active -= 1;
        this.pump();
        if (this.pending === 0) for (const w of [...this.waiters]) w();
      });
    }
  }

  private async deliver(job: Job): Promise<void> {
    const entry = { job, abort: new AbortController() };
    this.inFlight.add(entry);
    try {
      for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
        const result = await this.attempt(job, entry.abort.signal);
        if (entry.abort.signal.aborted) return; // given up by flush(), which counted it
        if (result.kind === 'delivered') {
          const latencyMs = performance.now() - job.enqueuedAtMs;
          job.log.info({ status: result.status, attempts: attempt, latencyMs: Math.round(latencyMs) }, 'post-call report delivered');
          this.options.onOutcome('delivered', latencyMs);
          return;
        }
        if (result.kind === 'refused') {
          job.log.error({ url: this.safeUrl, attempts: attempt, detail: result.detail }, 'post-call report refused by CALL_REPORT_URL; not retried');
          this.options.onOutcome('failed');
          return;
        }
        if (attempt === this.maxAttempts) {
          job.log.error({ url: this.safeUrl, attempts: attempt, detail: result.detail }, 'post-call report not delivered: every retry failed');
          this.options.onOutcome('failed');
          return;
        }
        const waitMs = Math.min(MAX_BACKOFF_MS, Math.max(this.backoffMs(attempt), result.retryAfterMs ?? 0));
        job.log.warn({ attempt, detail: result.detail, retryInMs: Math.round(waitMs) }, 'post-call report delivery failed; retrying');
        await sleep(waitMs, entry.abort.signal);
        if (entry.abort.signal.aborted) return;
      }
    } finally {
      this.inFlight.delete(entry);
    }
  }

  private async attempt(job: Job, shutdown: AbortSignal): Promise<Attempt> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.secret !== null) headers[SIGNATURE_HEADER] = toolSignature(this.options.secret, job.body);
    const signal = AbortSignal.any([AbortSignal.timeout(this.timeoutMs), shutdown]);
    let response: Response;
    try {
      response = await fetch(this.options.url, { method: 'POST', headers, body: job.body, signal, redirect: 'error' });
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : '';
      const detail = signal.aborted && !shutdown.aborted ? `no answer within ${this.timeoutMs} ms` : `${(err as Error).message}${cause === '' ? '' : `: ${cause}`}`;
      // A redirect is an answer, and the wrong one: following it would send the report elsewhere.
      if (cause === 'unexpected redirect') return { kind: 'refused', detail: 'answered with a redirect' };
      return { kind: 'retry', detail, retryAfterMs: null };
    }
    // Only the status matters; the body is not read, and cancelling it frees the connection.
    await response.body?.cancel().catch(() => undefined);
    if (response.ok) return { kind: 'delivered', status: response.status };
    const detail = `HTTP ${response.status}`;
    if (response.status === 429 || response.status >= 500) return { kind: 'retry', detail, retryAfterMs: retryAfterMs(response.headers.get('retry-after')) };
    return { kind: 'refused', detail };
  }
}

/** Retry-After in seconds (an HTTP date is rare from a webhook receiver and is ignored). */
function retryAfterMs(header: string | null): number | null {
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  return Number(header.trim()) * 1000;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    // A retry waiting must not keep a finished process (a replay, a test) alive.
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
