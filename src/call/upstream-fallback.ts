/**
 * What the caller hears while no model answers. A first connection that takes longer than a
 * moment gets a hold tone; one that does not open in time, or a call whose upstream is lost for
 * good, gets a short spoken apology before the call ends. Never silence, and never long: from
 * `start` to the end of the apology stays under 10 s.
 *
 * Pure bookkeeping: the session turns its answers into timers, media and the end of the call.
 */

/** Silence a caller takes for a glitch; after this the first connection is audibly on hold. */
export const HOLD_TONE_AFTER_MS = 1500;
/** The hold tone repeats at this period while the first connection is pending. */
export const HOLD_TONE_EVERY_MS = 2000;
/**
 * The first connection is given up after this long, whatever attempts remain: with a 3 s
 * handshake timeout that is two attempts, and the ~4 s apology still ends the call within 10 s.
 */
export const FIRST_CONNECT_GIVE_UP_MS = 5000;
/** Margin over the apology's length before the call ends without its mark's echo. */
export const FAREWELL_GRACE_MS = 1000;
/** The mark after the apology: its echo means the caller heard it all. */
export const FAREWELL_MARK = 'cb-unavailable';

type Phase = 'idle' | 'first-connect' | 'connected' | 'giving-up';

export class UpstreamFallback {
  private phase: Phase = 'idle';
  private toneSent = false;

  /** Giving up: the apology is playing, the call ends when it has been heard. */
  get givingUp(): boolean {
    return this.phase === 'giving-up';
  }

  /** The first connection starts now. */
  begin(): void {
    if (this.phase === 'idle') this.phase = 'first-connect';
  }

  /** The hold timer fired: whether to play the tone (and arm the timer again). */
  holdDue(): boolean {
    if (this.phase !== 'first-connect') return false;
    this.toneSent = true;
    return true;
  }

  /**
   * The upstream opened. `first`: the first connection, whose hold and give-up timers end here;
   * `clearTone`: a hold tone may still be in Twilio's buffer and must go before the agent speaks.
   */
  connected(): { first: boolean; clearTone: boolean } {
    if (this.phase !== 'first-connect') return { first: false, clearTone: false };
    this.phase = 'connected';
    const clearTone = this.toneSent;
    this.toneSent = false;
    return { first: true, clearTone };
  }

  /** The deadline for the first connection passed: whether it is still pending (give up). */
  deadlinePassed(): boolean {
    return this.phase === 'first-connect';
  }

  /** Starts giving up; false when already doing so. */
  giveUp(): boolean {
    if (this.phase === 'giving-up') return false;
    this.phase = 'giving-up';
    return true;
  }
}
