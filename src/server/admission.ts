/**
 * Admission: the counts MAX_CALLS, draining and replays are decided on, and the decisions.
 *
 * - started calls: streams whose `start` was accepted and that have not ended (what MAX_CALLS counts);
 * - pending streams: sockets that have not sent `start` yet, capped on their own;
 * - answered, not started: calls the webhook handed a `<Stream>` whose stream has not started here;
 * - live CallSids and the one-stream memory (StreamClaims): one stream per call, ever;
 * - draining.
 *
 * Pure bookkeeping with the wall clock injected: no I/O, no timers, no logging. The routes ask and
 * then do the talking (TwiML, status codes, logs, metrics); signatures and call tokens are checked
 * by the caller before it asks (src/server/twilio-access.ts).
 */
import { CALL_TOKEN_TTL_MS } from '../twilio/call-token.js';
import { StreamClaims, streamClaimsCapacity, streamClaimsWindowMs } from '../twilio/stream-claims.js';

/** How long an answered call counts against MAX_CALLS (and holds a drain) until its stream starts. */
export const ANSWERED_STREAM_WAIT_MS = 15_000;
/**
 * Sockets that have not sent `start` yet cost a bridge each and are not calls: Twilio sends
 * `start` within a second, so a crowd of them is someone holding sockets open. A floor of 10 keeps
 * a small MAX_CALLS from refusing honest streams that merely arrive together.
 */
export const MIN_PENDING_STREAMS = 10;

export interface AdmissionOptions {
  /** MAX_CALLS (this process's share of it with WORKERS > 1) */
  maxCalls: number;
  /** MAX_CALL_DURATION_S in ms: part of how long the one-stream memory remembers a CallSid */
  maxCallDurationMs: number;
  /** ms since the epoch: the one-stream memory and the wait for answered streams follow it */
  wallClock: () => number;
}

/** Why the webhook may not answer a call with a stream. */
export type AnswerRefusal =
  /** draining: no new calls at all; busy: MAX_CALLS are started or promised to answered calls */
  | { ok: false; why: 'draining' | 'busy'; liveCalls: number; answeredNotStarted: number; maxCalls: number }
  /** the one-stream memory could not take its CallSid, so its stream would be refused */
  | { ok: false; why: 'memory-full'; remembered: number; windowMs: number };
export type AnswerVerdict = { ok: true } | AnswerRefusal;

export type UpgradeVerdict = { ok: true } | { ok: false; pendingStreams: number; maxPendingStreams: number };

/** Why admission refused a stream's `start`, as the rejected-connections metric names it. */
export type StreamRefusal = 'replayed' | 'busy';
export type ClaimVerdict = { ok: true } | { ok: false; refusal: StreamRefusal; reason: string };

/**
 * One media-stream connection, followed from its upgrade (pending) through its `start` (started)
 * to its end, each step counted once however often it is reported.
 */
export interface StreamTicket {
  /**
   * The `start`'s CallSid against the live calls and the one-stream memory. On success the CallSid
   * is live and no longer awaited. `resume`: the stream says it brings a caller back from a transfer.
   */
  claim(callSid: string, resume: boolean): ClaimVerdict;
  /** why admission refused its `start`; null when it did not (a bad call token is the caller's) */
  readonly refusal: StreamRefusal | null;
  /** pending → started; false when it was not pending (already started or ended) */
  started(): boolean;
  /** pending or started → ended; false when it had ended already */
  ended(): boolean;
  /**
   * The connection is closed: its CallSid is no longer live. `transferred`: the call left in a
   * transfer, so the caller may come back on one new stream. Returns the CallSid it had claimed.
   */
  release(transferred: boolean): string | null;
}

export class Admission {
  readonly maxCalls: number;
  readonly maxPendingStreams: number;
  /** how long the one-stream memory keeps a CallSid */
  readonly claimsWindowMs: number;
  private readonly wallClock: () => number;
  // Clock-independent: one live stream per CallSid whatever the wall clock does. The one-stream
  // memory below says the same for the whole window, but a clock stepped forward could expire it.
  private readonly liveCallSids = new Set<string>();
  // Every CallSid that opened a stream here, for a call token's lifetime plus the longest call:
  // a replayed signed webhook gets a fresh token, so only this (and the REST check) stops its
  // stream. Per process; with WORKERS > 1 the primary keeps the cluster's (sharedStreamClaims).
  private readonly streamClaims: StreamClaims;
  // Calls the webhook handed a <Stream> whose stream has not started here yet (callSid → wall-clock
  // ms). They count against MAX_CALLS and hold a drain open: the caller is already connected and
  // the stream is on its way. Twilio opens the stream within a second or two; one that has not
  // started here after ANSWERED_STREAM_WAIT_MS went to another replica (or the caller hung up),
  // and holding its slot for the token's whole lifetime would make a fleet busy at a fraction of
  // its load.
  private readonly answeredNotStartedAt = new Map<string, number>();
  private startedCallsValue = 0;
  private pendingStreamsValue = 0;
  private drainingValue = false;

  constructor({ maxCalls, maxCallDurationMs, wallClock }: AdmissionOptions) {
    this.maxCalls = maxCalls;
    this.maxPendingStreams = Math.max(MIN_PENDING_STREAMS, maxCalls);
    this.wallClock = wallClock;
    this.claimsWindowMs = streamClaimsWindowMs(CALL_TOKEN_TTL_MS, maxCallDurationMs);
    this.streamClaims = new StreamClaims({ windowMs: this.claimsWindowMs, maxEntries: streamClaimsCapacity(maxCalls, this.claimsWindowMs) });
  }

  /** calls whose `start` was accepted and that have not ended: what MAX_CALLS counts */
  get startedCalls(): number {
    return this.startedCallsValue;
  }

  /** connections that have not sent `start` yet (nor ended) */
  get pendingStreams(): number {
    return this.pendingStreamsValue;
  }

  get draining(): boolean {
    return this.drainingValue;
  }

  /** Calls answered whose stream is still due here; those waited for too long are forgotten first. */
  answeredNotStarted(): number {
    const now = this.wallClock();
    for (const [callSid, answeredAtMs] of this.answeredNotStartedAt) {
      if (!(now - answeredAtMs < ANSWERED_STREAM_WAIT_MS)) this.answeredNotStartedAt.delete(callSid);
    }
    return this.answeredNotStartedAt.size;
  }

  /** Stop taking calls. False when already draining. */
  startDraining(): boolean {
    if (this.drainingValue) return false;
    this.drainingValue = true;
    return true;
  }

  /** May the webhook answer this call with a stream? (`callSid` null: the form had none.) */
  mayAnswer(callSid: string | null): AnswerVerdict {
    // Sockets that never sent `start` are not calls: counting them would let anyone fill the line.
    // A retried webhook for a call already answered is that same call, not one more.
    const answered = this.answeredNotStarted();
    const committed = this.startedCallsValue + answered - (callSid !== null && this.answeredNotStartedAt.has(callSid) ? 1 : 0);
    if (this.drainingValue || committed >= this.maxCalls) {
      return {
        ok: false,
        why: this.drainingValue ? 'draining' : 'busy',
        liveCalls: this.startedCallsValue,
        answeredNotStarted: this.answeredNotStartedAt.size,
        maxCalls: this.maxCalls,
      };
    }
    // Its stream would be refused (the memory refuses rather than forgets): a busy signal is kinder.
    if (!this.streamClaims.hasRoom(this.wallClock())) {
      return { ok: false, why: 'memory-full', remembered: this.streamClaims.size, windowMs: this.claimsWindowMs };
    }
    return { ok: true };
  }

  /** The call was handed a `<Stream>` (by the webhook, or back from a transfer): its stream is due. */
  answered(callSid: string): void {
    this.answeredNotStartedAt.set(callSid, this.wallClock());
  }

  /**
   * May one more socket upgrade to a media stream? Only pending ones are capped here: a stream
   * exists because some replica already answered its call, so draining does not refuse it.
   */
  mayUpgrade(): UpgradeVerdict {
    if (this.pendingStreamsValue >= this.maxPendingStreams) {
      return { ok: false, pendingStreams: this.pendingStreamsValue, maxPendingStreams: this.maxPendingStreams };
    }
    return { ok: true };
  }

  /** A socket upgraded to a media stream: it is pending until its `start` is accepted. */
  openStream(): StreamTicket {
    let state: 'pending' | 'started' | 'ended' = 'pending';
    let claimed: string | null = null;
    let refusal: StreamRefusal | null = null;
    this.pendingStreamsValue += 1;
    return {
      claim: (callSid, resume) => {
        const verdict = this.claim(callSid, resume);
        if (!verdict.ok) refusal = verdict.refusal;
        else claimed = callSid;
        return verdict;
      },
      get refusal() {
        return refusal;
      },
      started: () => {
        if (state !== 'pending') return false;
        state = 'started';
        this.pendingStreamsValue -= 1;
        this.startedCallsValue += 1;
        return true;
      },
      ended: () => {
        if (state === 'ended') return false;
        if (state === 'started') this.startedCallsValue -= 1;
        else this.pendingStreamsValue -= 1;
        state = 'ended';
        return true;
      },
      release: (transferred) => {
        if (claimed === null) return null;
        this.liveCallSids.delete(claimed);
        // The caller comes back on one new stream if the target does not answer.
        if (transferred) this.streamClaims.allowResume(claimed, this.wallClock());
        return claimed;
      },
    };
  }

  private claim(callSid: string, resume: boolean): ClaimVerdict {
    // Twilio allows one stream per call: a second one for a live CallSid is a replay.
    if (this.liveCallSids.has(callSid)) return { ok: false, refusal: 'replayed', reason: 'a stream for this CallSid is already live' };
    // ...and one per call ever (but for a caller back from a failed transfer): a CallSid whose
    // stream has ended is a replay too, with a fresh token from a replayed webhook.
    const claim = this.streamClaims.claim(callSid, resume, this.wallClock());
    if (!claim.ok) return { ok: false, refusal: claim.refusal === 'full' ? 'busy' : 'replayed', reason: claim.reason };
    this.liveCallSids.add(callSid);
    this.answeredNotStartedAt.delete(callSid);
    return { ok: true };
  }
}
