/**
 * The checks of a stream's `start` that need a round trip, run while the upstream connects so
 * that they add no latency: the call's status over Twilio's REST API (is it really in progress?)
 * and, with WORKERS > 1, the cluster-wide one-stream memory held by the primary.
 *
 * The synchronous checks (signature, call token, this process's one-stream memory) have already
 * passed when these start; these only catch what the process cannot know alone. So they fail
 * closed on a definite "no" and open on silence: a timeout or an error is logged, counted and
 * the call goes on, because refusing every call whenever the Twilio API has a bad minute would be
 * an outage, while a replay would still have had to get past the token and the local memory.
 */
import type { Logger } from '../observability/logger.js';
import type { TwilioClient } from './rest.js';
import { TwilioInputError, callStatus } from './rest.js';

/** Long enough for a healthy REST round trip from anywhere, short of a noticeable wait. */
export const START_VERIFICATION_TIMEOUT_MS = 2000;

export type StartCheckName = 'call-status' | 'cluster-claim';

/** What one check concluded. `passed` carries the metric label of a pass (`in-progress`, `claimed`). */
export type CheckOutcome =
  | { result: 'passed'; label: string }
  | { result: 'refused'; reason: string }
  | { result: 'unverified'; reason: string };

export interface StartedCall {
  callSid: string;
  /** the stream says it brings the caller back from a transfer */
  resume: boolean;
}

export interface StartCheck {
  readonly name: StartCheckName;
  run(call: StartedCall): Promise<CheckOutcome>;
}

export type StartVerdict = { ok: true } | { ok: false; reason: string };

/** Verifies a started call; `log` is the call's logger (it carries callSid). Never rejects. */
export type StartVerifier = (call: StartedCall, log: Logger) => Promise<StartVerdict>;

export interface StartVerifierOptions {
  timeoutMs?: number;
  /** each check's outcome, for metrics: `outcome` is the pass label, `refused` or `unverified` */
  record(check: StartCheckName, outcome: string): void;
}

/**
 * Runs every check at once, each under the deadline. The first refusal settles the verdict at
 * once (the call is ended without waiting for the others); otherwise it is ok once all are in.
 */
export function createStartVerifier(checks: readonly StartCheck[], options: StartVerifierOptions): StartVerifier {
  const timeoutMs = options.timeoutMs ?? START_VERIFICATION_TIMEOUT_MS;
  return (call, log) =>
    new Promise<StartVerdict>((resolve) => {
      let pending = checks.length;
      let settled = false;
      const settle = (verdict: StartVerdict): void => {
        if (settled) return;
        settled = true;
        resolve(verdict);
      };
      if (pending === 0) settle({ ok: true });
      for (const check of checks) {
        void runWithDeadline(check, call, timeoutMs).then((outcome) => {
          report(check.name, outcome, log, options.record);
          if (outcome.result === 'refused') settle({ ok: false, reason: `${check.name}: ${outcome.reason}` });
          pending -= 1;
          if (pending === 0) settle({ ok: true });
        });
      }
    });
}

async function runWithDeadline(check: StartCheck, call: StartedCall, timeoutMs: number): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ result: 'unverified', reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([
      check.run(call).catch((err: unknown): CheckOutcome => ({ result: 'unverified', reason: err instanceof Error ? err.message : String(err) })),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function report(name: StartCheckName, outcome: CheckOutcome, log: Logger, record: StartVerifierOptions['record']): void {
  try {
    record(name, outcome.result === 'passed' ? outcome.label : outcome.result);
    if (outcome.result === 'passed') log.debug({ check: name, outcome: outcome.label }, 'start verified');
    else if (outcome.result === 'refused') log.warn({ check: name, reason: outcome.reason }, 'start refused: closing the call');
    else log.warn({ check: name, err: outcome.reason }, 'start could not be verified: the call goes on (token and one-stream checks passed)');
  } catch {
    // Metrics and logs must not decide the verdict.
  }
}

/** The Twilio status a stream's call must have: its `<Connect><Stream>` is being executed. */
export const STREAMING_CALL_STATUS = 'in-progress';

/**
 * The call's status from Twilio's REST API: `in-progress` passes; any other status, or a call
 * Twilio does not know (404 / 20404), is refused — a replay of a call that has ended. A request
 * that fails or takes too long is `unverified`.
 */
export function callStatusCheck(client: TwilioClient): StartCheck {
  return {
    name: 'call-status',
    async run({ callSid }) {
      try {
        const answer = await callStatus(client, callSid);
        if (answer.kind === 'not-found') return { result: 'refused', reason: 'Twilio has no such call (404)' };
        if (answer.status === STREAMING_CALL_STATUS) return { result: 'passed', label: STREAMING_CALL_STATUS };
        return { result: 'refused', reason: `Twilio reports the call as ${answer.status.slice(0, 32)}` };
      } catch (err) {
        // A CallSid no call can have: as definite as a 404.
        if (err instanceof TwilioInputError) return { result: 'refused', reason: err.message };
        return { result: 'unverified', reason: err instanceof Error ? err.message : String(err) };
      }
    },
  };
}

/**
 * The one-stream memory of the whole cluster, held by the primary (WORKERS > 1), as a worker
 * reaches it over IPC. Each worker also keeps its own, checked synchronously first; this one
 * catches a replay whose first stream was served by another worker.
 */
export interface SharedStreamClaims {
  claim(callSid: string, resume: boolean): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** the call's stream ended in a transfer: one resumed stream may follow, on any worker */
  allowResume(callSid: string): void;
}

export function clusterClaimCheck(shared: SharedStreamClaims): StartCheck {
  return {
    name: 'cluster-claim',
    async run({ callSid, resume }) {
      const answer = await shared.claim(callSid, resume);
      return answer.ok ? { result: 'passed', label: 'claimed' } : { result: 'refused', reason: answer.reason };
    },
  };
}
