/**
 * The one-stream memory: every CallSid that opened a Media Stream, remembered for a window, so a
 * second stream for the same call is refused.
 *
 * Why: Twilio's request signature carries no time, so a captured signed webhook can be replayed
 * later and is answered with a fresh call token; and the stream handshake is signed over the
 * fixed stream URL, the same for every call. Replaying both would open a new upstream session on
 * the operator's API key. Twilio opens exactly one stream per `<Connect><Stream>`, so a CallSid
 * that already had its stream can only be a replay — with one exception: a call whose transfer
 * was not answered comes back on a new stream (`allowResume`), once per failed transfer.
 *
 * Pure bookkeeping with the time passed in: no timers, no I/O. Used synchronously in the stream's
 * `start` check (before anything goes upstream) and, with WORKERS > 1, by the primary for the
 * whole cluster.
 *
 * Memory is bounded. Entries are kept in a Map in expiry order (every write re-inserts with
 * `now + windowMs`, which is never earlier than any entry already there), so expired ones are
 * pruned from the front. At `maxEntries` unexpired entries a new CallSid is REFUSED rather than
 * an old one forgotten: forgetting would reopen exactly the replay this exists to stop, while a
 * full memory means far more calls than the line can carry (see `streamClaimsCapacity`).
 */

export type ClaimRefusal = 'already-streamed' | 'full';
export type ClaimResult = { ok: true } | { ok: false; refusal: ClaimRefusal; reason: string };

export interface StreamClaimsOptions {
  /** how long a CallSid is remembered after its (last) stream started */
  windowMs: number;
  /** unexpired CallSids kept at most; past it new ones are refused */
  maxEntries: number;
}

/**
 * A stream started at most this often per call slot on average, sustained over a whole window:
 * even a line that is always full turns over no faster than one call every 10 s per slot (answer,
 * greeting, a question). The cap is sized from it, so only abuse or a misconfiguration reaches it.
 */
export const MIN_CALL_SPACING_MS = 10_000;
/** The cap's floor (a small MAX_CALLS still remembers plenty) and ceiling (~145 B per entry: ≤ 145 MB). */
export const MIN_STREAM_CLAIMS = 10_000;
export const MAX_STREAM_CLAIMS = 1_000_000;

/** The window: a call token's lifetime plus the longest a call may last (MAX_CALL_DURATION_S). */
export function streamClaimsWindowMs(callTokenTtlMs: number, maxCallDurationMs: number): number {
  return callTokenTtlMs + maxCallDurationMs;
}

/**
 * How many CallSids to keep: every call slot (`maxCalls`) starting a stream every
 * MIN_CALL_SPACING_MS for the whole window, between the floor and the ceiling. For the defaults
 * (MAX_CALLS=100, 4 h + 60 s) that is 144,600 entries, about 21 MB at the cap (the default 50: 72,300).
 */
export function streamClaimsCapacity(maxCalls: number, windowMs: number): number {
  const wanted = Math.ceil((maxCalls * windowMs) / MIN_CALL_SPACING_MS);
  return Math.min(MAX_STREAM_CLAIMS, Math.max(MIN_STREAM_CLAIMS, wanted));
}

export class StreamClaims {
  /** CallSid → ms (same clock as `nowMs`) after which it is forgotten; in expiry order */
  private readonly expiries = new Map<string, number>();
  /** CallSids whose stream ended in a transfer: one more stream, a resume, is theirs */
  private readonly resumable = new Set<string>();
  private readonly windowMs: number;
  private readonly maxEntries: number;

  constructor({ windowMs, maxEntries }: StreamClaimsOptions) {
    if (!(Number.isFinite(windowMs) && windowMs > 0)) throw new RangeError(`stream claims: bad window ${windowMs}`);
    if (!(Number.isInteger(maxEntries) && maxEntries > 0)) throw new RangeError(`stream claims: bad capacity ${maxEntries}`);
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
  }

  /**
   * A stream for `callSid` starts. `resume`: it says it brings the caller back from a transfer
   * (only honoured after `allowResume`). On success the CallSid is remembered for the window.
   */
  claim(callSid: string, resume: boolean, nowMs: number): ClaimResult {
    this.prune(nowMs);
    if (this.expiries.has(callSid)) {
      if (!(resume && this.resumable.has(callSid))) {
        return { ok: false, refusal: 'already-streamed', reason: 'this CallSid already had its stream (a replay)' };
      }
      this.resumable.delete(callSid);
    } else if (this.expiries.size >= this.maxEntries) {
      return { ok: false, refusal: 'full', reason: `the one-stream memory is full (${this.maxEntries} CallSids within ${Math.round(this.windowMs / 1000)} s)` };
    }
    this.remember(callSid, nowMs);
    return { ok: true };
  }

  /**
   * The call's stream ended because the call was transferred: if the target does not answer,
   * Twilio brings the caller back on one new stream, which `claim(…, resume = true)` accepts once.
   */
  allowResume(callSid: string, nowMs: number): void {
    this.prune(nowMs);
    // Remembered afresh: the resume must not find the entry expired and treat a later replay as new.
    this.remember(callSid, nowMs);
    this.resumable.add(callSid);
  }

  /** Whether a new CallSid would be taken now (the webhook answers busy when not). */
  hasRoom(nowMs: number): boolean {
    this.prune(nowMs);
    return this.expiries.size < this.maxEntries;
  }

  get size(): number {
    return this.expiries.size;
  }

  private remember(callSid: string, nowMs: number): void {
    // Deleted first so the entry moves to the back: the Map stays in expiry order.
    this.expiries.delete(callSid);
    this.expiries.set(callSid, nowMs + this.windowMs);
  }

  private prune(nowMs: number): void {
    for (const [callSid, expiresAtMs] of this.expiries) {
      // Written as "not before expiry" so a NaN clock keeps entries (refusing) rather than dropping them.
      if (!(nowMs >= expiresAtMs)) return;
      this.expiries.delete(callSid);
      this.resumable.delete(callSid);
    }
  }
}
