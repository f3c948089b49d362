/**
 * Answering-machine detection of an outbound call, as the session sees it. Pure: it says what a
 * verdict means for the call; the session (src/call/session.ts) carries it out.
 *
 * Twilio runs the detection (`MachineDetection=DetectMessageEnd`, `AsyncAmd=true`) while the
 * stream is already live, and reports `AnsweredBy` to POST /amd-status seconds later. Until then
 * the agent must not greet: a greeting spoken over a machine's own message is lost, and the
 * message would be recorded half over it. Two things end the wait early: the callee speaking
 * (a person says "Hello?" and expects an answer; the agent answers at their turn's end as on any
 * call), and the detection's own bound (AMD_WAIT_MAX_MS), so a verdict that never arrives (the
 * callback failed, or went to a replica that does not hold the stream) cannot keep a person
 * waiting in silence for ever.
 */

/** What Twilio's `AnsweredBy` says, in the categories the call acts on. */
export type AmdVerdict = 'human' | 'machine' | 'fax' | 'unknown';

/**
 * Twilio's `AnsweredBy` values (https://www.twilio.com/docs/voice/answering-machine-detection):
 * with DetectMessageEnd a machine is reported once its message ended (`machine_end_*`);
 * `machine_start` only comes with `Enable`, and means a machine all the same.
 */
const VERDICTS: Readonly<Record<string, AmdVerdict>> = {
  human: 'human',
  unknown: 'unknown',
  machine_start: 'machine',
  machine_end_beep: 'machine',
  machine_end_silence: 'machine',
  machine_end_other: 'machine',
  fax: 'fax',
};

/** Every `AnsweredBy` value Twilio documents: a bounded label set for the metric. */
export const ANSWERED_BY_VALUES: readonly string[] = Object.keys(VERDICTS);

/** The verdict of an `AnsweredBy` value; null for a value Twilio does not send. */
export function amdVerdict(answeredBy: string): AmdVerdict | null {
  return Object.prototype.hasOwnProperty.call(VERDICTS, answeredBy) ? (VERDICTS[answeredBy] ?? null) : null;
}

/**
 * Twilio's MachineDetectionTimeout defaults to 30 s, after which it reports `unknown`; the
 * margin covers the callback's trip. Past it the agent greets as if the verdict were `unknown`.
 */
export const AMD_WAIT_MAX_MS = 35_000;

/** What a verdict asks of the call. */
export type AmdStep =
  /** a person (or nobody can tell): the normal greeting, now that the hold is off */
  | { kind: 'greet' }
  /** a machine, and the profile has a message: say it after the beep, then hang up */
  | { kind: 'leave-voicemail'; text: string }
  /** a machine without a message to leave, or a fax: hang up now */
  | { kind: 'hang-up' }
  /** nothing to do: no detection on this call, or its verdict was already applied */
  | { kind: 'none'; why: 'no-detection' | 'already-decided' };

type State = 'off' | 'detecting' | 'callee-spoke' | 'person' | 'machine';

export class AnsweringMachineGate {
  private state: State = 'off';

  /** The call runs detection: the greeting waits for its verdict. */
  begin(): void {
    if (this.state === 'off') this.state = 'detecting';
  }

  /** The greeting is held for the verdict. */
  get holding(): boolean {
    return this.state === 'detecting';
  }

  /** Detection runs or ran and no verdict has been applied yet. */
  get undecided(): boolean {
    return this.state === 'detecting' || this.state === 'callee-spoke';
  }

  /**
   * A machine answered and the call is ending on it: what the line says is the machine's
   * recording (or its beep), not a turn of a person, and must not interrupt the message.
   */
  get machine(): boolean {
    return this.state === 'machine';
  }

  /** The callee spoke during detection. True when this ends the hold (the first time). */
  calleeSpoke(): boolean {
    if (this.state !== 'detecting') return false;
    this.state = 'callee-spoke';
    return true;
  }

  /** Twilio's verdict (or `unknown` when AMD_WAIT_MAX_MS passed); `voicemail` is the call's agent's. */
  decide(verdict: AmdVerdict, voicemail: string | null): AmdStep {
    if (this.state === 'off') return { kind: 'none', why: 'no-detection' };
    if (this.state === 'person' || this.state === 'machine') return { kind: 'none', why: 'already-decided' };
    if (verdict === 'human' || verdict === 'unknown') {
      this.state = 'person';
      return { kind: 'greet' };
    }
    this.state = 'machine';
    return verdict === 'machine' && voicemail !== null ? { kind: 'leave-voicemail', text: voicemail } : { kind: 'hang-up' };
  }
}
