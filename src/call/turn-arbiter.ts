/**
 * The single place that decides when a `response.create` may go out. Pure: it returns the events
 * to send and knows nothing of audio.
 *
 * Rules (each one a way public bridges produce API errors or talk over the caller):
 * - never two responses: a create waits until the previous response's `response.done`;
 * - never over the caller: no create while they speak or type a keypad entry (a "hold");
 * - one create for everything that wants an answer: a caller turn, tool outputs, a greeting or a
 *   reminder wanting a response at the same time produce one response, not one each;
 * - no create while tool calls of the last response are still running: the model answers once
 *   it has every output.
 */
import type { RealtimeClientEvent, ResponseCreateParams } from '../realtime/events.js';

/** Why a response is asked for; sent as `metadata.purpose`, echoed back by the server. */
export type ResponsePurpose = 'greeting' | 'answer' | 'tool-output' | 'reminder' | 'goodbye' | 'transfer-failed' | 'voicemail';

export interface ResponseRequest {
  purpose: ResponsePurpose;
  /** per-response instructions (the session's stay in force when absent) */
  instructions?: string;
}

/** When several wants meet, the strongest one names the response (and brings its instructions). */
const PRIORITY: Record<ResponsePurpose, number> = {
  reminder: 0,
  answer: 1,
  'tool-output': 2,
  'transfer-failed': 3,
  greeting: 4,
  goodbye: 5,
  // An answering machine took the call: the message is all that is left to say.
  voicemail: 6,
};

export type ResponsePhase =
  | { phase: 'none' }
  /** response.create sent, response.created not yet seen */
  | { phase: 'requested'; eventId: string; purpose: ResponsePurpose; cancelOnCreated: boolean }
  | { phase: 'active'; id: string; purpose: ResponsePurpose; startedAtMs: number };

/**
 * Reasons the caller's side holds responses back, besides speaking. `amd`: an outbound call's
 * answering-machine detection is running, and nobody greets a machine before the beep.
 */
export type Hold = 'keypad' | 'tools' | 'amd';

export class TurnArbiter {
  private phase: ResponsePhase = { phase: 'none' };
  private wanted: ResponseRequest | null = null;
  private speaking = false;
  private readonly holds = new Set<Hold>();
  private seq = 0;

  get state(): ResponsePhase {
    return this.phase;
  }

  get callerSpeaking(): boolean {
    return this.speaking;
  }

  get pendingWant(): ResponseRequest | null {
    return this.wanted;
  }

  /** Nothing generating, nothing asked for, nothing waiting to be asked for. */
  get quiet(): boolean {
    return this.phase.phase === 'none' && this.wanted === null;
  }

  activeId(): string | null {
    return this.phase.phase === 'active' ? this.phase.id : null;
  }

  /** Ask for a response as soon as the rules allow; merged with any want already waiting. */
  want(request: ResponseRequest): void {
    if (this.wanted === null || PRIORITY[request.purpose] >= PRIORITY[this.wanted.purpose]) this.wanted = request;
  }

  /** The caller started talking: whatever was waiting to be said must wait for their turn. */
  callerStarted(): void {
    this.speaking = true;
    this.wanted = null;
  }

  callerStopped(): void {
    this.speaking = false;
  }

  hold(reason: Hold): void {
    this.holds.add(reason);
  }

  release(reason: Hold): void {
    this.holds.delete(reason);
  }

  /** The response.create to send now, if any. */
  next(): RealtimeClientEvent | null {
    const want = this.wanted;
    if (want === null || this.phase.phase !== 'none' || this.speaking || this.holds.size > 0) return null;
    this.wanted = null;
    this.seq += 1;
    const eventId = `cb_create_${this.seq}`;
    this.phase = { phase: 'requested', eventId, purpose: want.purpose, cancelOnCreated: false };
    const response: ResponseCreateParams = { metadata: { purpose: want.purpose } };
    if (want.instructions !== undefined) response.instructions = want.instructions;
    return { type: 'response.create', event_id: eventId, response };
  }

  /** response.created: returns whether the caller barged in before its id was known (cancel it). */
  onCreated(id: string, nowMs: number): { purpose: ResponsePurpose; cancel: boolean } {
    const p = this.phase;
    const purpose = p.phase === 'requested' ? p.purpose : p.phase === 'active' ? p.purpose : 'answer';
    const cancel = p.phase === 'requested' && p.cancelOnCreated;
    this.phase = { phase: 'active', id, purpose, startedAtMs: nowMs };
    return { purpose, cancel };
  }

  /** response.done: true when it ended the response we track. */
  onDone(id: string): boolean {
    if (this.phase.phase === 'active' && this.phase.id === id) {
      this.phase = { phase: 'none' };
      return true;
    }
    return false;
  }

  /** A barge-in while our create is in flight: cancel the response as soon as it has an id. */
  cancelWhenCreated(): void {
    if (this.phase.phase === 'requested') this.phase.cancelOnCreated = true;
  }

  /**
   * An error event: if it rejected our create, the response never existed. When the server still
   * runs one we thought over, ask again after its done.
   */
  onError(code: string | null, eventId: string | null | undefined): { rejectedCreate: boolean } {
    const p = this.phase;
    if (p.phase !== 'requested') return { rejectedCreate: false };
    if (eventId !== p.eventId && code !== 'conversation_already_has_active_response') return { rejectedCreate: false };
    this.phase = { phase: 'none' };
    if (code === 'conversation_already_has_active_response') this.want({ purpose: p.purpose });
    return { rejectedCreate: true };
  }

  /** The upstream session is gone: returns whether an answer the caller waits for was owed. */
  reset(interrupted: (id: string) => boolean): { owed: ResponseRequest | null } {
    const p = this.phase;
    let owed: ResponseRequest | null = this.wanted;
    if (p.phase === 'active' && !interrupted(p.id)) owed = owed ?? { purpose: p.purpose };
    if (p.phase === 'requested' && !p.cancelOnCreated) owed = owed ?? { purpose: p.purpose };
    this.phase = { phase: 'none' };
    this.wanted = null;
    this.speaking = false;
    return { owed };
  }
}
