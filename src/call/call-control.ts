/**
 * Ending or handing off the call on the agent's behalf. The decision is made when the model
 * calls `end_call` / `transfer_call` (or the idle reminders run out), but it is carried out only
 * once the caller has heard the agent's last words: generation ending is not hearing, and a
 * goodbye cut off by a hang-up is the one thing a caller remembers. A barge-in calls it off.
 */

export type ControlRequest =
  | { kind: 'end'; reason: 'agent-ended' | 'idle' | 'voicemail' }
  | { kind: 'transfer'; to: string };

/** Margin over the audio still unheard before a due hang-up or transfer stops waiting for its mark. */
export const CONTROL_MARK_GRACE_MS = 1500;

/** The fallback timer that carries a request out if the last mark never comes back. */
export type ControlTimer = { kind: 'set'; delayMs: number } | { kind: 'clear' } | null;

export interface ControlStep {
  /** carry this out now */
  due: ControlRequest | null;
  timer: ControlTimer;
}

export interface ControlReadiness {
  /** no response generating or waiting to be created */
  responsesQuiet: boolean;
  /** no tool call still running */
  toolsIdle: boolean;
  /** Twilio has acknowledged every mark: the caller heard all the audio sent */
  allHeard: boolean;
  /** audio sent but not yet heard, ms: how long the last mark may still take */
  unheardMs: number;
}

export class CallControl {
  private request: ControlRequest | null = null;
  private executing = false;
  private timerSet = false;

  get pending(): ControlRequest | null {
    return this.executing ? null : this.request;
  }

  /** Being carried out (REST redirect in flight, or the call ending). */
  get inProgress(): ControlRequest | null {
    return this.executing ? this.request : null;
  }

  /** An end beats a transfer asked for at the same time: the model changed its mind last. */
  ask(request: ControlRequest): void {
    if (this.executing) return;
    this.request = request;
  }

  /** The caller barged in: the conversation goes on. Returns what was called off. */
  callOff(): { off: ControlRequest | null; timer: ControlTimer } {
    if (this.executing || this.request === null) return { off: null, timer: null };
    const off = this.request;
    this.request = null;
    return { off, timer: this.clearTimer() };
  }

  /**
   * Whether the request is due: once nothing is generating, no tool runs and everything said has
   * been heard. Only the last mark missing arms the fallback timer; `force` is that timer firing.
   */
  check(state: ControlReadiness, force = false): ControlStep {
    const r = this.pending;
    if (force) this.timerSet = false;
    if (r === null || !state.responsesQuiet || !state.toolsIdle) return { due: null, timer: null };
    if (!state.allHeard && !force) {
      if (this.timerSet) return { due: null, timer: null };
      this.timerSet = true;
      return { due: null, timer: { kind: 'set', delayMs: Math.ceil(state.unheardMs) + CONTROL_MARK_GRACE_MS } };
    }
    this.executing = true;
    return { due: r, timer: this.clearTimer() };
  }

  /** A transfer that could not be started: the agent carries on. */
  failed(): void {
    this.executing = false;
    this.request = null;
  }

  private clearTimer(): ControlTimer {
    if (!this.timerSet) return null;
    this.timerSet = false;
    return { kind: 'clear' };
  }
}
