/**
 * Expectations: what a replayed call must have done, checked against its post-call report, so that
 * `npm run replay -- <captures…> --expect expectations.json` is a pass/fail step in a CI. The
 * format is documented in docs/report.md (Expectations); every key is optional, and a file with a
 * key it does not know, or a value of the wrong kind, is refused whole, naming each key.
 */
import { readFileSync } from 'node:fs';
import type { CallReport, ReportEndReason } from './schema.js';
import { REPORT_END_REASONS } from './schema.js';

export interface Expectations {
  /** At most this many Realtime API error events. */
  maxApiErrors?: number;
  /** The call ended for this reason (or one of these). */
  endReason?: ReportEndReason[];
  /** Each of these tools was called and ran. */
  toolCalled?: string[];
  /** None of these tools ran. */
  toolNotCalled?: string[];
  /** At most this many tool calls answered with an error. */
  maxToolErrors?: number;
  minInterruptions?: number;
  maxInterruptions?: number;
  /** Every barge-in silenced the agent within this many ms of the caller's speech (or key) being detected. */
  interruptionsHeardWithinMs?: number;
  /** Every caller turn got its first agent audio within this many ms of its end. */
  maxFirstAudioMs?: number;
  /** The caller heard each of these (case-insensitive, in what the agent said and the caller heard: heardText). */
  callerHeard?: string[];
  maxDurationMs?: number;
}

export type ExpectationKey = keyof Expectations;

export class ExpectationsError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length === 1 ? problems[0] : `\n  - ${problems.join('\n  - ')}`}`);
    this.name = 'ExpectationsError';
  }
}

const COUNTS = ['maxApiErrors', 'maxToolErrors', 'minInterruptions', 'maxInterruptions'] as const;
const DURATIONS = ['interruptionsHeardWithinMs', 'maxFirstAudioMs', 'maxDurationMs'] as const;
const NAME_LISTS = ['toolCalled', 'toolNotCalled', 'callerHeard'] as const;
export const EXPECTATION_KEYS: readonly ExpectationKey[] = [...COUNTS, ...DURATIONS, ...NAME_LISTS, 'endReason'];

/** Reads an expectations document (parsed JSON); `source` names it in every problem. */
export function parseExpectations(raw: unknown, source: string): Expectations {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ExpectationsError(source, [`must be a JSON object of expectations (${EXPECTATION_KEYS.join(', ')}), got ${JSON.stringify(raw)}`]);
  }
  const problems: string[] = [];
  const out: Expectations = {};
  const record = raw as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    if ((COUNTS as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) problems.push(`${key} must be a whole number ≥ 0, got ${JSON.stringify(value)}`);
      else out[key as (typeof COUNTS)[number]] = value;
    } else if ((DURATIONS as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) problems.push(`${key} must be a number of ms ≥ 0, got ${JSON.stringify(value)}`);
      else out[key as (typeof DURATIONS)[number]] = value;
    } else if ((NAME_LISTS as readonly string[]).includes(key)) {
      const list = stringList(value);
      if (list === null) problems.push(`${key} must be a non-empty string or an array of them, got ${JSON.stringify(value)}`);
      else out[key as (typeof NAME_LISTS)[number]] = list;
    } else if (key === 'endReason') {
      const list = stringList(value);
      const bad = list?.filter((r) => !(REPORT_END_REASONS as readonly string[]).includes(r)) ?? [];
      if (list === null || bad.length > 0) problems.push(`endReason must be one of ${REPORT_END_REASONS.join(', ')} (or an array of them), got ${JSON.stringify(value)}`);
      else out.endReason = list as ReportEndReason[];
    } else {
      problems.push(`unknown key "${key}" (known: ${EXPECTATION_KEYS.join(', ')})`);
    }
  }
  if (out.minInterruptions !== undefined && out.maxInterruptions !== undefined && out.minInterruptions > out.maxInterruptions) {
    problems.push(`minInterruptions (${out.minInterruptions}) is more than maxInterruptions (${out.maxInterruptions})`);
  }
  if (problems.length > 0) throw new ExpectationsError(source, problems);
  return out;
}

/** Reads and checks an expectations file; every problem (unreadable, not JSON, a bad key) is an ExpectationsError naming the file. */
export function loadExpectations(file: string): Expectations {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ExpectationsError(file, [`cannot be read: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ExpectationsError(file, [`is not valid JSON: ${(err as Error).message}`]);
  }
  return parseExpectations(raw, file);
}

function stringList(v: unknown): string[] | null {
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : null;
  if (list === null || list.length === 0 || !list.every((s): s is string => typeof s === 'string' && s.trim() !== '')) return null;
  return list;
}

export interface ExpectationFailure {
  key: ExpectationKey;
  /** One line: what was expected, and what the call did. */
  reason: string;
}

/** The expectations `report` does not meet, one line each; empty when it meets all. */
export function checkExpectations(report: CallReport, e: Expectations): ExpectationFailure[] {
  const failures: ExpectationFailure[] = [];
  const fail = (key: ExpectationKey, reason: string): void => {
    failures.push({ key, reason });
  };
  const ms = (v: number): string => `${Math.round(v * 10) / 10} ms`;

  if (e.maxApiErrors !== undefined && report.apiErrors.count > e.maxApiErrors) {
    const codes = Object.entries(report.apiErrors.byCode)
      .map(([code, n]) => `${code} ×${n}`)
      .join(', ');
    fail('maxApiErrors', `${report.apiErrors.count} API errors (${codes}), at most ${e.maxApiErrors} expected`);
  }
  const toolErrors = report.toolCalls.filter((c) => c.ok === false);
  if (e.maxToolErrors !== undefined && toolErrors.length > e.maxToolErrors) {
    fail('maxToolErrors', `${toolErrors.length} tool calls failed (${toolErrors.map((c) => `${c.name}: ${c.error ?? ''}`).join('; ')}), at most ${e.maxToolErrors} expected`);
  }
  const n = report.interruptions.length;
  if (e.minInterruptions !== undefined && n < e.minInterruptions) fail('minInterruptions', `${n} interruptions, at least ${e.minInterruptions} expected`);
  if (e.maxInterruptions !== undefined && n > e.maxInterruptions) fail('maxInterruptions', `${n} interruptions, at most ${e.maxInterruptions} expected`);
  if (e.interruptionsHeardWithinMs !== undefined) {
    const limit = e.interruptionsHeardWithinMs;
    const late = report.interruptions.filter((i) => i.reactionMs === null || i.reactionMs > limit);
    if (late.length > 0) {
      const worst = late.map((i) => (i.reactionMs === null ? `at ${ms(i.atMs)}: not measured` : `at ${ms(i.atMs)}: ${ms(i.reactionMs)}`)).join(', ');
      fail('interruptionsHeardWithinMs', `${late.length} of ${n} barge-ins took longer than ${ms(limit)} to silence the agent (${worst})`);
    }
  }
  if (e.maxFirstAudioMs !== undefined) {
    const worst = report.latency.firstAudioMs?.max;
    if (worst !== undefined && worst > e.maxFirstAudioMs) {
      fail('maxFirstAudioMs', `first agent audio came ${ms(worst)} after a caller's turn ended (p50 ${ms(report.latency.firstAudioMs?.p50 ?? 0)}), at most ${ms(e.maxFirstAudioMs)} expected`);
    }
  }
  if (e.maxDurationMs !== undefined && report.durationMs > e.maxDurationMs) fail('maxDurationMs', `the call lasted ${ms(report.durationMs)}, at most ${ms(e.maxDurationMs)} expected`);
  for (const name of e.toolCalled ?? []) {
    const calls = report.toolCalls.filter((c) => c.name === name);
    if (!calls.some((c) => c.ran)) {
      const seen = [...new Set(report.toolCalls.filter((c) => c.ran).map((c) => c.name))];
      fail('toolCalled', `${name} was ${calls.length > 0 ? 'called but never ran (its response was cancelled)' : 'not called'}${seen.length > 0 ? `; tools that ran: ${seen.join(', ')}` : '; no tool ran'}`);
    }
  }
  for (const name of e.toolNotCalled ?? []) {
    const ran = report.toolCalls.filter((c) => c.name === name && c.ran);
    if (ran.length > 0) fail('toolNotCalled', `${name} ran ${ran.length} time(s) (first at ${ms(ran[0]?.atMs ?? 0)}), expected never`);
  }
  if (e.callerHeard !== undefined) {
    const heard = report.transcript.flatMap((t) => (t.role === 'agent' ? [t.heardText] : [])).join('\n').toLowerCase();
    for (const phrase of e.callerHeard) {
      if (!heard.includes(phrase.toLowerCase())) fail('callerHeard', `the caller never heard "${phrase}"`);
    }
  }
  if (e.endReason !== undefined && !e.endReason.includes(report.endReason)) {
    fail('endReason', `ended ${report.endReason}${report.sessionEndReason === null ? '' : ` (${report.sessionEndReason})`}, expected ${e.endReason.join(' or ')}`);
  }
  return failures;
}
