/**
 * The conversations of transferred calls, kept for their return: when the transfer target does
 * not answer, Twilio brings the caller back on a new stream (POST /transfer-status), and the agent
 * picks the conversation up where it left it. Bounded in age and number: most transfers are
 * answered, and an entry nobody comes back for must not stay.
 */
import type { TranscriptEntry } from '../call/session.js';

/** Conversations of transferred calls kept for their return if the target does not answer. */
export const MAX_HANDOFFS = 1000;
export const HANDOFF_TTL_MS = 60 * 60 * 1000;

export interface Handoff {
  /** where the call was transferred to */
  target: string;
  /** what was said before the transfer */
  transcript: TranscriptEntry[];
  /**
   * The stream's parameters that describe the call (from, to, direction, profile, caller
   * context), given again to the returning stream so its agent is the same.
   */
  parameters: Readonly<Record<string, string>>;
  /** wall-clock ms when it was kept */
  atMs: number;
}

export interface HandoffsOptions {
  /** ms since the epoch */
  wallClock: () => number;
  ttlMs?: number;
  maxEntries?: number;
}

export class Handoffs {
  private readonly entries = new Map<string, Handoff>();
  private readonly wallClock: () => number;
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor({ wallClock, ttlMs = HANDOFF_TTL_MS, maxEntries = MAX_HANDOFFS }: HandoffsOptions) {
    this.wallClock = wallClock;
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
  }

  /** The call's stream ended in a transfer: keep its conversation. Old and surplus entries go. */
  keep(callSid: string, handoff: Omit<Handoff, 'atMs'>): void {
    const now = this.wallClock();
    for (const [sid, h] of this.entries) if (now - h.atMs > this.ttlMs) this.entries.delete(sid);
    this.entries.set(callSid, { ...handoff, atMs: now });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** The handoff of a call, left in place (its returning stream takes it). */
  peek(callSid: string): Handoff | undefined {
    return this.entries.get(callSid);
  }

  /** The handoff of a call whose caller is back: handed over once. */
  take(callSid: string): Handoff | undefined {
    const handoff = this.entries.get(callSid);
    this.entries.delete(callSid);
    return handoff;
  }

  /** The transfer was answered: the call is over and will not come back. */
  forget(callSid: string): void {
    this.entries.delete(callSid);
  }

  get size(): number {
    return this.entries.size;
  }
}
