/**
 * A call's account (src/report/facts.ts) → its `callbridge.report/1` (src/report/schema.ts).
 * Pure: the wall-clock times come in as arguments.
 */
import { DIRECTION_PARAMETER, FROM_PARAMETER, isResume, PROFILE_PARAMETER, TO_PARAMETER } from '../server/twiml-contract.js';
import type { CallFactsSnapshot } from './facts.js';
import { round1 } from './fields.js';
import { REPORT_END_REASON_BY_SESSION, REPORT_FORMAT } from './schema.js';
import type { AgentTurn, CallerTurn, CallReport, LatencyFigures, ReportEndReason, TranscriptEntry } from './schema.js';

export interface ReportContext {
  /** Wall clock (ms since the epoch) of the stream's `start`: the facts' time 0. */
  startedAtEpochMs: number;
  /** Wall clock now: the report's timestamp. */
  nowEpochMs: number;
  /** The profile that answered, as the session resolved it; else the stream's `profile` parameter names it. */
  profile?: string | null;
}

/** The report of a call, or null when there is none to make: the stream never started, or it was refused. */
export function buildReport(facts: CallFactsSnapshot, context: ReportContext): CallReport | null {
  const start = facts.start;
  const sessionEndReason = facts.ended?.reason ?? null;
  // A stream refused after its start (a replayed CallSid, a call that is not live) is not a call:
  // its report would stand beside, or overwrite, the real call's.
  if (start === null || sessionEndReason === 'unauthorized') return null;
  const params = start.customParameters;
  const durationMs = round1(Math.max(0, facts.ended?.atMs ?? 0));
  return {
    format: REPORT_FORMAT,
    timestamp: context.nowEpochMs,
    callSid: start.callSid,
    streamSid: start.streamSid,
    from: params[FROM_PARAMETER] ?? null,
    to: params[TO_PARAMETER] ?? null,
    direction: params[DIRECTION_PARAMETER] ?? 'inbound',
    profile: context.profile ?? params[PROFILE_PARAMETER] ?? null,
    resumed: isResume(params),
    startedAt: new Date(context.startedAtEpochMs).toISOString(),
    endedAt: new Date(context.startedAtEpochMs + durationMs).toISOString(),
    durationMs,
    endReason: reportEndReason(sessionEndReason),
    sessionEndReason,
    transcript: transcriptOf(facts),
    interruptions: facts.clears
      .filter((c) => c.trigger !== 'other')
      .map((c) => ({
        atMs: c.atMs,
        by: c.trigger === 'keypad' ? ('keypad' as const) : ('speech' as const),
        responseId: c.responseId,
        itemId: c.itemId,
        heardMs: c.heardMs,
        reactionMs: c.reactionMs,
        cancelled: c.cancelledResponseId !== null,
      })),
    toolCalls: facts.toolCalls.map((c) => ({
      atMs: c.startMs,
      callId: c.callId,
      name: c.name,
      arguments: c.arguments,
      ran: c.ran,
      ok: c.ok,
      ...(c.output === undefined ? {} : { output: c.output }),
      ...(c.error === undefined ? {} : { error: c.error }),
      durationMs: c.durationMs,
    })),
    keypad: facts.keypadEntries.map((k) => ({ atMs: k.atMs, digits: k.digits })),
    latency: {
      firstAudioMs: figures(facts.callerTurns.map((t) => t.firstAudioLatencyMs)),
      bargeInReactionMs: figures(facts.clears.filter((c) => c.trigger !== 'other').map((c) => c.reactionMs)),
    },
    apiErrors: {
      count: Object.values(facts.errorCounts).reduce((n, c) => n + c, 0),
      byCode: { ...facts.errorCounts },
      errors: facts.errors.map((e) => ({ atMs: e.atMs, code: e.code, type: e.type, message: e.message })),
    },
    upstreamReconnects: Math.max(0, facts.upstreamSessions - 1),
    omitted: { ...facts.omitted },
  };
}

export function reportEndReason(sessionEndReason: string | null): ReportEndReason {
  if (sessionEndReason === null) return 'error';
  return (REPORT_END_REASON_BY_SESSION as Record<string, ReportEndReason | undefined>)[sessionEndReason] ?? 'error';
}

function transcriptOf(facts: CallFactsSnapshot): TranscriptEntry[] {
  const agent = facts.agentItems
    .filter((i) => i.text !== '' || i.audioMs > 0)
    .map(
      (i): AgentTurn => ({
        role: 'agent',
        atMs: i.firstAudioSentMs ?? i.startedMs,
        itemId: i.itemId,
        responseId: i.responseId,
        purpose: i.purpose,
        text: i.text,
        heardText: i.heardText,
        interrupted: i.interrupted,
        audioMs: i.audioMs,
        heardMs: i.heardMs,
      }),
    );
  const caller = facts.callerTurns.map((t): CallerTurn => ({ role: 'caller', atMs: t.startedMs, endMs: t.stoppedMs, itemId: t.itemId, text: t.text }));
  // Stable: an agent item and a caller turn at the same instant keep agent first.
  return [...agent, ...caller].sort((a, b) => a.atMs - b.atMs);
}

/** Nearest-rank percentiles: each figure is one that was measured. */
export function figures(values: ReadonlyArray<number | null>): LatencyFigures | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const rank = (q: number): number => xs[Math.max(0, Math.ceil(q * xs.length) - 1)] ?? 0;
  return { count: xs.length, p50: round1(rank(0.5)), p95: round1(rank(0.95)), max: round1(xs[xs.length - 1] ?? 0) };
}
