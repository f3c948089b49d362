/**
 * Prometheus metrics, served by GET /metrics on METRICS_PORT. The bridge calls the typed recording
 * methods; nothing here knows about sockets or sessions.
 *
 * Every Metrics owns its registry: tests build many servers in one process, and metrics
 * registered on prom-client's global registry would collide (or silently add up) across them.
 *
 * Latencies are in milliseconds (`_ms`), not Prometheus' customary seconds: every timing in the
 * bridge and its logs is in ms, and these names match what the logs say.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const CALL_OUTCOMES = [
  'completed',
  'caller-hung-up',
  'upstream-failed',
  'rejected',
  'error',
  'drained',
  'max-duration',
  'agent-ended',
  'transferred',
  'idle',
  'voicemail',
] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

export const RECONNECT_OUTCOMES = ['ok', 'failed'] as const;
export type ReconnectOutcome = (typeof RECONNECT_OUTCOMES)[number];

/** `replayed`: a stream for a CallSid that already had its stream (this process's one-stream memory). */
export const REJECT_REASONS = ['bad-signature', 'bad-token', 'replayed', 'busy', 'draining', 'protocol'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * The round-trip checks of an accepted `start` (src/twilio/start-verification.ts) and how each can
 * end: passed (named by what it found), refused (the call was ended), unverified (no answer in
 * time, or an error: the call went on).
 */
export const START_VERIFICATION_OUTCOMES = {
  'call-status': ['in-progress', 'refused', 'unverified'],
  'cluster-claim': ['claimed', 'refused', 'unverified'],
} as const;
export type StartVerificationCheck = keyof typeof START_VERIFICATION_OUTCOMES;

/**
 * How a call's request to AGENT_CONFIG_URL ended: ok (answered, used or empty), timeout, error
 * (network, non-2xx, oversize), invalid (not JSON, or failed validation). Anything but ok: the
 * static profile answered.
 */
export const AGENT_CONFIG_FETCH_OUTCOMES = ['ok', 'timeout', 'error', 'invalid'] as const;
export type AgentConfigFetchOutcome = (typeof AGENT_CONFIG_FETCH_OUTCOMES)[number];

/**
 * How a post-call report sent to CALL_REPORT_URL ended: delivered (a 2xx), failed (a 4xx other
 * than 429, or every retry used up, or still pending when a shutdown's flush ran out of time),
 * dropped (pushed out of the full queue before it was sent).
 */
/**
 * How a POST /calls request ended: placed (Twilio created the call), failed (Twilio refused or
 * could not be reached), refused (draining or MAX_CALLS), unauthorized (bad or no bearer token),
 * invalid (bad body), unconfigured (Twilio credentials, PUBLIC_URL or TWILIO_FROM_NUMBER missing).
 */
export const OUTBOUND_OUTCOMES = ['placed', 'failed', 'refused', 'unauthorized', 'invalid', 'unconfigured'] as const;
export type OutboundOutcome = (typeof OUTBOUND_OUTCOMES)[number];

export const REPORT_OUTCOMES = ['delivered', 'failed', 'dropped'] as const;
export type ReportOutcome = (typeof REPORT_OUTCOMES)[number];
/** How writing a report file into REPORTS_DIR ended. */
export const REPORT_FILE_OUTCOMES = ['written', 'failed'] as const;
export type ReportFileOutcome = (typeof REPORT_FILE_OUTCOMES)[number];

export interface InterruptionSample {
  /** audio the caller heard of the interrupted item; null when nothing was truncated */
  heardMs: number | null;
  /** speech_started received → clear sent to Twilio */
  reactionMs: number;
  cancelSent: boolean;
}

/**
 * What GET /metrics on METRICS_PORT serves (src/observability/metrics-server.ts): the text
 * exposition and its content type. A Metrics is one (this process's figures); with WORKERS > 1
 * the primary serves the cluster-wide one it gathers from every worker (src/cluster/primary.ts).
 */
export interface MetricsExposition {
  readonly contentType: string;
  render(): Promise<string>;
}

/**
 * One metric family as prom-client's `getMetricsAsJSON()` gives it: plain data, so it crosses the
 * cluster IPC channel, and what `AggregatorRegistry.aggregate()` takes. `type` is prom-client's
 * string (`counter`, `gauge`, `histogram`, `summary`); `aggregator` says how the family combines
 * across processes (`sum` unless the metric set another, e.g. `omit` for process_start_time_seconds).
 */
export interface MetricFamilySnapshot {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}
export type MetricsSnapshot = MetricFamilySnapshot[];

export interface MetricsOptions {
  /** Node process/runtime metrics and the event-loop delay histogram (off in tests) */
  collectDefault?: boolean;
}

/** Distinct upstream error codes kept as their own label value; later new codes count as 'other'. */
export const MAX_UPSTREAM_ERROR_CODES = 32;
export const OTHER_ERROR_CODE = 'other';
const ERROR_CODE_SHAPE = /^[a-z_]{1,64}$/;

// The upper buckets of heard-ms cover a long monologue; a reply is rarely cut after 30 s.
const HEARD_MS_BUCKETS = [100, 250, 500, 1000, 2000, 3000, 5000, 7500, 10_000, 15_000, 20_000, 30_000];
// The session reacts synchronously, so most barge-ins land in the sub-millisecond buckets; the
// upper ones exist to show event-loop stalls, which are what would make a barge-in feel late.
const REACTION_MS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500];
// From the call's end to the receiver's 2xx: a first attempt lands in the low buckets, retries
// (0.5 s, 1 s, 2 s … backoff) in the upper ones.
const REPORT_DELIVERY_MS_BUCKETS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];
const FIRST_AUDIO_MS_BUCKETS = [50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000];
// 20 ms is one Twilio media frame: a stall past it delays outbound audio audibly.
const EVENT_LOOP_DELAY_MS_BUCKETS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
/** prom-client's own choice for its event-loop gauges */
const EVENT_LOOP_RESOLUTION_MS = 10;

/**
 * prom-client's default collectors cannot be stopped: they start a monitorEventLoopDelay and a
 * gc PerformanceObserver and never hand them back. Registering them per Metrics would leak one
 * of each per server a test builds, so they are registered once per process and shared. They
 * describe the process, not a server, so sharing them is also what they mean. Neither holds the
 * process open.
 */
let processRegistry: Registry | null = null;

/** This process's default metrics (memory, CPU, GC, handles), shared as described above. */
export function sharedProcessRegistry(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class Metrics implements MetricsExposition {
  readonly contentType: string;
  private readonly registry = new Registry();
  /** what render() exposes: this registry, plus the process metrics when collected */
  private readonly exposed: Registry;
  private readonly eventLoop: IntervalHistogram | null = null;

  private activeCount = 0;
  private readonly errorCodes = new Set<string>();

  private readonly activeCalls: Gauge;
  private readonly calls: Counter<'outcome'>;
  private readonly interruptions: Counter<'cancel_sent'>;
  private readonly heardMs: Histogram;
  private readonly reactionMs: Histogram;
  private readonly firstAudioMs: Histogram;
  private readonly upstreamErrors: Counter<'code'>;
  private readonly reconnects: Counter<'outcome'>;
  private readonly toolCalls: Counter<'kind' | 'outcome'>;
  private readonly toolDurationMs: Histogram<'kind'>;
  private readonly rejected: Counter<'reason'>;
  private readonly startVerifications: Counter<'check' | 'outcome'>;
  private readonly agentConfigFetches: Counter<'outcome'>;
  private readonly outboundCalls: Counter<'outcome'>;
  private readonly amdResults: Counter<'answered_by'>;
  private readonly reports: Counter<'outcome'>;
  private readonly reportDeliveryMs: Histogram;
  private readonly reportFiles: Counter<'outcome'>;

  constructor(options: MetricsOptions = {}) {
    // Without `registers`, prom-client adds every metric to its global registry as well.
    const registers = [this.registry];
    this.activeCalls = new Gauge({ name: 'callbridge_active_calls', help: 'Calls in progress.', registers });
    this.calls = new Counter({
      name: 'callbridge_calls_total',
      help: 'Calls ended, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.interruptions = new Counter({
      name: 'callbridge_interruptions_total',
      help: 'Barge-ins acted on; cancel_sent is whether a response.cancel went upstream.',
      labelNames: ['cancel_sent'],
      registers,
    });
    this.heardMs = new Histogram({
      name: 'callbridge_interruption_heard_ms',
      help: 'Assistant audio the caller had heard when a barge-in truncated it, in ms.',
      buckets: HEARD_MS_BUCKETS,
      registers,
    });
    this.reactionMs = new Histogram({
      name: 'callbridge_barge_in_reaction_ms',
      help: 'From input_audio_buffer.speech_started to the clear sent to Twilio, in ms.',
      buckets: REACTION_MS_BUCKETS,
      registers,
    });
    this.firstAudioMs = new Histogram({
      name: 'callbridge_first_audio_latency_ms',
      help: 'From the end of the caller turn to the first assistant audio sent to Twilio, in ms.',
      buckets: FIRST_AUDIO_MS_BUCKETS,
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'callbridge_upstream_errors_total',
      help: `Realtime error events by code; codes past the first ${MAX_UPSTREAM_ERROR_CODES} distinct, or not shaped like a code, count as "${OTHER_ERROR_CODE}".`,
      labelNames: ['code'],
      registers,
    });
    this.reconnects = new Counter({
      name: 'callbridge_upstream_reconnects_total',
      help: 'Upstream connections lost mid-call, by how the recovery ended: ok = restored, failed = given up after the retries. One per recovery, however many connection attempts it took.',
      labelNames: ['outcome'],
      registers,
    });
    this.toolCalls = new Counter({
      name: 'callbridge_tool_calls_total',
      help: 'Function calls run for the model, by tool kind (end_call, transfer_call, http) and outcome (ok, error). Calls in cancelled responses never run and are not counted.',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.toolDurationMs = new Histogram({
      name: 'callbridge_tool_duration_ms',
      help: 'Time from a function call being complete to its output being written, ms.',
      labelNames: ['kind'],
      buckets: [5, 25, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers,
    });
    this.rejected = new Counter({
      name: 'callbridge_rejected_connections_total',
      help: 'Media-stream connections refused before they became calls, by reason.',
      labelNames: ['reason'],
      registers,
    });

    this.startVerifications = new Counter({
      name: 'callbridge_start_verifications_total',
      help: 'Checks of an accepted stream start run alongside the upstream connect, by check (call-status: Twilio REST; cluster-claim: the primary\'s one-stream memory, WORKERS > 1) and outcome (in-progress / claimed: passed; refused: the call was ended; unverified: timeout or error, the call went on).',
      labelNames: ['check', 'outcome'],
      registers,
    });

    this.reports = new Counter({
      name: 'callbridge_reports_total',
      help: 'Post-call reports for CALL_REPORT_URL, by outcome: delivered (2xx), failed (4xx other than 429, retries used up, or cut by the shutdown flush), dropped (pushed out of the full queue).',
      labelNames: ['outcome'],
      registers,
    });
    this.reportDeliveryMs = new Histogram({
      name: 'callbridge_report_delivery_ms',
      help: 'From the end of a call to its report being accepted (2xx) by CALL_REPORT_URL, retries included, in ms.',
      buckets: REPORT_DELIVERY_MS_BUCKETS,
      registers,
    });
    this.reportFiles = new Counter({
      name: 'callbridge_report_files_total',
      help: 'Post-call report files written into REPORTS_DIR, by outcome (written, failed).',
      labelNames: ['outcome'],
      registers,
    });

    this.agentConfigFetches = new Counter({
      name: 'callbridge_agent_config_fetches_total',
      help: 'Requests to AGENT_CONFIG_URL used by a call, by outcome: ok (answered, applied or empty), timeout, error (network, non-2xx, oversize), invalid (not JSON or failed validation). Anything but ok: the static profile answered.',
      labelNames: ['outcome'],
      registers,
    });

    // Outbound calls (src/server/outbound-routes.ts).
    this.outboundCalls = new Counter({
      name: 'callbridge_outbound_calls_total',
      help: 'POST /calls requests, by outcome: placed, failed (Twilio said no or was unreachable), refused (draining, MAX_CALLS), unauthorized, invalid, unconfigured.',
      labelNames: ['outcome'],
      registers,
    });
    this.amdResults = new Counter({
      name: 'callbridge_amd_results_total',
      help: "Answering-machine verdicts received (POST /amd-status), by Twilio's AnsweredBy (other: a value Twilio does not document).",
      labelNames: ['answered_by'],
      registers,
    });
    for (const outcome of OUTBOUND_OUTCOMES) this.outboundCalls.inc({ outcome }, 0);

    // Known label values start at 0 so the first occurrence is an increase rate() can see.
    for (const outcome of CALL_OUTCOMES) this.calls.inc({ outcome }, 0);
    for (const cancelSent of ['true', 'false']) this.interruptions.inc({ cancel_sent: cancelSent }, 0);
    for (const outcome of RECONNECT_OUTCOMES) this.reconnects.inc({ outcome }, 0);
    for (const reason of REJECT_REASONS) this.rejected.inc({ reason }, 0);
    for (const outcome of AGENT_CONFIG_FETCH_OUTCOMES) this.agentConfigFetches.inc({ outcome }, 0);
    for (const outcome of REPORT_OUTCOMES) this.reports.inc({ outcome }, 0);
    for (const outcome of REPORT_FILE_OUTCOMES) this.reportFiles.inc({ outcome }, 0);
    for (const [check, outcomes] of Object.entries(START_VERIFICATION_OUTCOMES)) {
      for (const outcome of outcomes) this.startVerifications.inc({ check, outcome }, 0);
    }

    if (options.collectDefault === true) {
      this.eventLoop = this.startEventLoopHistogram(registers);
      this.exposed = Registry.merge([this.registry, sharedProcessRegistry()]);
    } else {
      this.exposed = this.registry;
    }
    this.contentType = this.exposed.contentType;
  }

  callStarted(): void {
    this.activeCount += 1;
    this.activeCalls.set(this.activeCount);
  }

  /** Once per callStarted(). A connection refused before it was a call is rejectedConnection(). */
  callEnded(outcome: CallOutcome): void {
    this.calls.inc({ outcome });
    // An unpaired end is a wiring bug; a negative number of calls would only hide where it is.
    if (this.activeCount > 0) this.activeCount -= 1;
    this.activeCalls.set(this.activeCount);
  }

  interruption(sample: InterruptionSample): void {
    this.interruptions.inc({ cancel_sent: sample.cancelSent ? 'true' : 'false' });
    if (sample.heardMs !== null) observe(this.heardMs, sample.heardMs);
    observe(this.reactionMs, sample.reactionMs);
  }

  /** From the end of the caller's turn (speech_stopped) to the first audio of the reply sent to Twilio. */
  firstAudioLatency(ms: number): void {
    observe(this.firstAudioMs, ms);
  }

  /** `code` is the Realtime error's code, which the server may omit. */
  upstreamError(code: string | null): void {
    this.upstreamErrors.inc({ code: this.errorCodeLabel(code) });
  }

  toolCall(kind: 'end_call' | 'transfer_call' | 'http' | 'unknown', ok: boolean, durationMs: number): void {
    this.toolCalls.inc({ kind, outcome: ok ? 'ok' : 'error' });
    if (Number.isFinite(durationMs) && durationMs >= 0) this.toolDurationMs.observe({ kind }, durationMs);
  }

  reconnect(outcome: ReconnectOutcome): void {
    this.reconnects.inc({ outcome });
  }

  rejectedConnection(reason: RejectReason): void {
    this.rejected.inc({ reason });
  }

  /** `outcome`: one of START_VERIFICATION_OUTCOMES[check]; anything else is a wiring bug and is dropped. */
  startVerification(check: StartVerificationCheck, outcome: string): void {
    if (!(START_VERIFICATION_OUTCOMES[check] as readonly string[]).includes(outcome)) return;
    this.startVerifications.inc({ check, outcome });
  }

  /** A report for CALL_REPORT_URL is settled; `latencyMs` (call end → 2xx) only when delivered. */
  report(outcome: ReportOutcome, latencyMs?: number): void {
    this.reports.inc({ outcome });
    if (outcome === 'delivered' && latencyMs !== undefined) observe(this.reportDeliveryMs, latencyMs);
  }

  reportFile(outcome: ReportFileOutcome): void {
    this.reportFiles.inc({ outcome });
  }

  agentConfigFetch(outcome: AgentConfigFetchOutcome): void {
    this.agentConfigFetches.inc({ outcome });
  }

  outboundCall(outcome: OutboundOutcome): void {
    this.outboundCalls.inc({ outcome });
  }

  /** `answeredBy`: one of src/call/amd.ts ANSWERED_BY_VALUES, or `other` (the label set stays bounded). */
  amdResult(answeredBy: string): void {
    this.amdResults.inc({ answered_by: answeredBy });
  }

  /** The Prometheus text exposition; serve it with `contentType`. */
  render(): Promise<string> {
    return this.exposed.metrics();
  }

  /** The same figures as render(), as data: what a worker hands its primary to aggregate. */
  async snapshot(): Promise<MetricsSnapshot> {
    return snapshotOf(this.exposed);
  }

  /** Stop what this instance started (the event-loop sampler). Idempotent; render() still works. */
  stop(): void {
    this.eventLoop?.disable();
  }

  private errorCodeLabel(code: string | null): string {
    // Codes come from the server: a label per arbitrary string would let it grow our series without bound.
    if (code === null || !ERROR_CODE_SHAPE.test(code)) return OTHER_ERROR_CODE;
    if (this.errorCodes.has(code)) return code;
    if (this.errorCodes.size >= MAX_UPSTREAM_ERROR_CODES) return OTHER_ERROR_CODE;
    this.errorCodes.add(code);
    return code;
  }

  /**
   * prom-client only reports event-loop delay as gauges of the last scrape interval (min, max,
   * mean, p50/p90/p99), which cannot be aggregated over time or across instances. This keeps a
   * native monitorEventLoopDelay (no JS runs per tick) and folds its samples into a Prometheus
   * histogram at each scrape.
   */
  private startEventLoopHistogram(registers: Registry[]): IntervalHistogram {
    const sampler = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    sampler.enable();
    // Reachable through the registry and its collect(); nothing else touches it.
    new Histogram({
      name: 'callbridge_event_loop_delay_ms',
      help: `How late the event loop ran a ${EVENT_LOOP_RESOLUTION_MS} ms timer, in ms.`,
      buckets: EVENT_LOOP_DELAY_MS_BUCKETS,
      registers,
      collect() {
        foldEventLoopSamples(sampler, this);
      },
    });
    return sampler;
  }
}

/** A registry's families as plain data (prom-client's JSON form, without its collect functions). */
export async function snapshotOf(registry: Registry): Promise<MetricsSnapshot> {
  const families = await registry.getMetricsAsJSON();
  return families.map((f) => ({
    name: f.name,
    help: f.help,
    type: String(f.type),
    aggregator: f.aggregator ?? 'sum',
    values: f.values.map((v) => {
      const named = v as { metricName?: string };
      return { value: v.value, labels: { ...(v.labels as Record<string, string | number>) }, ...(named.metricName === undefined ? {} : { metricName: named.metricName }) };
    }),
  }));
}

/** A measurement must never throw into a call: prom-client throws on non-finite values. */
function observe(histogram: Histogram, value: number): void {
  if (Number.isFinite(value) && value >= 0) histogram.observe(value);
}

/**
 * Moves the samples recorded since the last scrape into `into`, then resets the sampler.
 *
 * The sampler's samples are not individually readable, only its percentiles. For each bucket
 * bound, the number of samples at or below it is found by binary search over ranks (exact to the
 * sampler's precision), and that bucket's samples are observed at their median value so that
 * `_sum` stays close to the true total.
 *
 * The sampler records the whole interval between timer runs, so an idle loop reads ~resolution;
 * the resolution is subtracted to report how late the timer ran.
 */
function foldEventLoopSamples(sampler: IntervalHistogram, into: Histogram): void {
  const total = sampler.count;
  if (total === 0) return;
  const delayAtRank = (rank: number): number =>
    Math.max(0, sampler.percentile((100 * rank) / total) / 1e6 - EVENT_LOOP_RESOLUTION_MS);

  let counted = 0;
  for (const bound of [...EVENT_LOOP_DELAY_MS_BUCKETS, Number.POSITIVE_INFINITY]) {
    let atOrBelow = counted;
    let high = total;
    while (atOrBelow < high) {
      const mid = Math.ceil((atOrBelow + high) / 2);
      if (delayAtRank(mid) <= bound) atOrBelow = mid;
      else high = mid - 1;
    }
    const inBucket = atOrBelow - counted;
    if (inBucket > 0) {
      const median = delayAtRank(counted + Math.ceil(inBucket / 2));
      for (let i = 0; i < inBucket; i++) into.observe(median);
    }
    counted = atOrBelow;
  }
  sampler.reset();
}
