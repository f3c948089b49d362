/**
 * Ending or handing off the call on the agent's behalf. The decision is made when the model
 * calls `end_call` / `transfer_call` (or the idle reminders run out), but it is carried out only
 * once the caller has heard the agent's last words: generation ending is not hearing, and a
 * goodbye cut off by a hang-up is the one thing a caller remembers. A barge-in calls it off.
 */

export type ControlRequest =
  | { kind: 'end'; reason: 'agent-ended' | 'idle' }
  | { kind: 'transfer'; to: string };

export interface ControlReadiness {
  /** no response generating or waiting to be created */
  responsesQuiet: boolean;
  /** no tool call still running */
  toolsIdle: boolean;
  /** Twilio has acknowledged every mark: the caller heard all the audio sent */
  allHeard: boolean;
}

export class CallControl {
  private request: ControlRequest | null = null;
  private executing = false;

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
  callOff(): ControlRequest | null {
    if (this.executing || this.request === null) return null;
    const off = this.request;
    this.request = null;
    return off;
  }

  /** The request to carry out now, once everything said has been heard. */
  due(state: ControlReadiness, force = false): ControlRequest | null {
    const r = this.pending;
    if (r === null) return null;
    if (!state.responsesQuiet || !state.toolsIdle) return null;
    if (!state.allHeard && !force) return null;
    this.executing = true;
    return r;
  }

  /** A transfer that could not be started: the agent carries on. */
  failed(): void {
    this.executing = false;
    this.request = null;
  }
}
