/**
 * Pure matching of what the model sent with what the simulated caller received, for one call.
 * No I/O and no clocks: every time here is milliseconds on one clock shared by all processes
 * (CLOCK_MONOTONIC via process.hrtime.bigint(), relative to one base). Unit-tested in
 * test/unit/bench-load-stats.test.ts.
 */
import { upperBound } from './stats.js';
import { MULAW_BYTES_PER_MS } from '../../src/audio/wire-format.js';

/** mu-law 8 kHz */
export const BYTES_PER_MS = MULAW_BYTES_PER_MS;

/** The model sent `input_audio_buffer.speech_started`. */
export interface SpeechStartedObs {
  t: number;
  /** the model had a response in progress (created, not yet done) when it sent it */
  responseActive: boolean;
}

/** A `clear` arrived at the caller. */
export interface ClearObs {
  t: number;
  /** the caller's played-byte count when it arrived */
  playedBytes: number;
}

/** A stretch of the caller's playback (agent audio actually playing), on the shared clock. */
export interface PlaybackRun {
  startT: number;
  endT: number;
  /** cut short by a clear (else it drained, or the call ended) */
  cleared: boolean;
}

/** The model sent the first `response.output_audio.delta` of a response. */
export interface FirstDeltaObs {
  t: number;
  responseId: string;
  itemId: string;
}

/** The model received `conversation.item.truncate`. */
export interface TruncateObs {
  t: number;
  itemId: string;
  audioEndMs: number;
}

/** Media arrivals at the caller, in arrival order (ascending t). */
export interface MediaArrivals {
  readonly length: number;
  /** arrival times */
  readonly t: ArrayLike<number>;
  /** played-byte position at which each payload's first byte plays */
  readonly startsAtByte: ArrayLike<number>;
}

// ---------------------------------------------------------------- barge-in reaction

export interface BargeIn {
  t: number;
  /**
   * The bridge must clear: the model had a response in progress, or the caller was hearing agent
   * audio that went on for at least the audible margin (or was cut by a clear).
   */
  expected: boolean;
  /** arrival of the clear that answered it */
  clearT: number | null;
  /** clearT − t */
  reactionMs: number | null;
}

export interface BargeInMatch {
  bargeIns: BargeIn[];
  /** clears that answered no speech_started */
  unpromptedClears: number;
}

/** The caller was playing agent audio at t, and it did not simply run out within marginMs. */
export function audibleAt(playback: readonly PlaybackRun[], t: number, marginMs: number): boolean {
  return playback.some((r) => r.startT <= t && t < r.endT && (r.cleared || r.endT - t >= marginMs));
}

/**
 * Pairs each clear with the speech_started that caused it. In arrival order, a clear answers the
 * latest still-unanswered expected speech_started sent before it (so one that never got its clear
 * does not take a later one's); failing that, the latest speech_started sent before it if that one
 * is unanswered (a clear the bridge was free to send or not, e.g. as playback was ending);
 * otherwise it answered nothing.
 */
export function matchBargeIns(
  speech: readonly SpeechStartedObs[],
  clears: readonly ClearObs[],
  playback: readonly PlaybackRun[],
  audibleMarginMs: number,
): BargeInMatch {
  const sortedSpeech = [...speech].sort((a, b) => a.t - b.t);
  const bargeIns: BargeIn[] = sortedSpeech.map((s) => ({
    t: s.t,
    expected: s.responseActive || audibleAt(playback, s.t, audibleMarginMs),
    clearT: null,
    reactionMs: null,
  }));
  let unpromptedClears = 0;
  for (const c of [...clears].sort((a, b) => a.t - b.t)) {
    let target: BargeIn | undefined;
    for (const b of bargeIns) if (b.t <= c.t && b.expected && b.clearT === null) target = b;
    if (target === undefined) {
      const before = bargeIns.filter((b) => b.t <= c.t);
      const latest = before[before.length - 1];
      if (latest !== undefined && latest.clearT === null) target = latest;
    }
    if (target === undefined) {
      unpromptedClears += 1;
      continue;
    }
    target.clearT = c.t;
    target.reactionMs = c.t - target.t;
  }
  return { bargeIns, unpromptedClears };
}

// ---------------------------------------------------------------- first audio

export interface FirstAudio {
  responseId: string;
  itemId: string;
  deltaT: number;
  /** arrival of the first media of this response's audio; null if none reached the caller */
  mediaT: number | null;
  startsAtByte: number | null;
  latencyMs: number | null;
}

/**
 * The first media of a response's audio is the first media arriving after its first delta left
 * the model, before the next response's first delta left and with no clear arriving in between
 * (the bridge forwards audio in order and drops what a clear cut off).
 */
export function matchFirstAudio(firstDeltas: readonly FirstDeltaObs[], media: MediaArrivals, clears: readonly ClearObs[]): FirstAudio[] {
  const deltas = [...firstDeltas].sort((a, b) => a.t - b.t);
  const clearTimes = clears.map((c) => c.t).sort((a, b) => a - b);
  return deltas.map((d, i) => {
    const out: FirstAudio = { responseId: d.responseId, itemId: d.itemId, deltaT: d.t, mediaT: null, startsAtByte: null, latencyMs: null };
    const nextT = deltas[i + 1]?.t ?? Number.POSITIVE_INFINITY;
    // media strictly after the delta left: first index with t > d.t
    const m = upperBound(media.t, d.t, 0, media.length);
    if (m >= media.length) return out;
    const mt = media.t[m] ?? Number.POSITIVE_INFINITY;
    if (mt >= nextT) return out;
    const clearAfterDelta = clearTimes[upperBound(clearTimes, d.t)];
    if (clearAfterDelta !== undefined && clearAfterDelta < mt) return out;
    out.mediaT = mt;
    out.startsAtByte = media.startsAtByte[m] ?? null;
    out.latencyMs = mt - d.t;
    return out;
  });
}

// ---------------------------------------------------------------- truncation

export interface TruncationCheck {
  t: number;
  itemId: string;
  audioEndMs: number;
  /** what the caller had played of the item when the clear arrived */
  playedMs: number | null;
  /** |audioEndMs − playedMs| */
  errorMs: number | null;
  /** why it could not be judged */
  unmatched?: 'item never reached the caller' | 'no clear after the item began';
}

/**
 * For each truncate the bridge sent: the caller had played of that item, when the clear arrived,
 * its played-byte count then minus the position of the item's first byte. The clear is the first
 * one to arrive after the item's first media: the one that cut the item.
 */
export function truncationErrors(truncates: readonly TruncateObs[], firstAudio: readonly FirstAudio[], clears: readonly ClearObs[]): TruncationCheck[] {
  const sortedClears = [...clears].sort((a, b) => a.t - b.t);
  const clearTimes = sortedClears.map((c) => c.t);
  return truncates.map((tr) => {
    const out: TruncationCheck = { t: tr.t, itemId: tr.itemId, audioEndMs: tr.audioEndMs, playedMs: null, errorMs: null };
    const fa = firstAudio.find((f) => f.itemId === tr.itemId && f.mediaT !== null && f.startsAtByte !== null);
    if (fa === undefined || fa.mediaT === null || fa.startsAtByte === null) {
      out.unmatched = 'item never reached the caller';
      return out;
    }
    const clear = sortedClears[upperBound(clearTimes, fa.mediaT)];
    if (clear === undefined) {
      out.unmatched = 'no clear after the item began';
      return out;
    }
    out.playedMs = (clear.playedBytes - fa.startsAtByte) / BYTES_PER_MS;
    out.errorMs = Math.abs(tr.audioEndMs - out.playedMs);
    return out;
  });
}

// ---------------------------------------------------------------- API errors

export interface ResponseLedger {
  /** responses the model has sent response.done for */
  done: ReadonlySet<string>;
  /** the newest response created in the session */
  lastResponseId: string | null;
}

/**
 * A `response_cancel_not_active` is a benign race when the cancel crossed its response's
 * response.done in flight: the model had already sent response.done for the response the cancel
 * named (or, when it named none, for the session's newest response) before it received the cancel.
 */
export function isCancelRace(cancelResponseId: string | null, ledger: ResponseLedger): boolean {
  const id = cancelResponseId ?? ledger.lastResponseId;
  return id !== null && ledger.done.has(id);
}

// ---------------------------------------------------------------- verdict

export interface CallFacts {
  /** the media stream opened and the model saw this call's upstream session */
  connected: boolean;
  /** the call ended before the bench hung up */
  dropped: boolean;
  socketError: boolean;
  protocolErrors: number;
  heardBytesInWindow: number;
  /** barge-ins (speech_started) that must be judged */
  bargeIns: readonly BargeIn[];
  /** error events from the model other than counted cancel races */
  apiErrors: number;
  truncations: readonly TruncationCheck[];
}

export type Failure =
  | 'not connected'
  | 'dropped'
  | 'socket error'
  | 'Twilio protocol error'
  | 'heard nothing'
  | 'barge-in without clear'
  | 'API error'
  | 'truncation unmatched'
  | 'truncation error over bound';

export function judgeCall(f: CallFacts, maxTruncationErrorMs: number): Failure[] {
  const out: Failure[] = [];
  if (!f.connected) return ['not connected'];
  if (f.dropped) out.push('dropped');
  if (f.socketError) out.push('socket error');
  if (f.protocolErrors > 0) out.push('Twilio protocol error');
  if (f.heardBytesInWindow <= 0) out.push('heard nothing');
  if (f.bargeIns.some((b) => b.expected && b.clearT === null)) out.push('barge-in without clear');
  if (f.apiErrors > 0) out.push('API error');
  if (f.truncations.some((t) => t.errorMs === null)) out.push('truncation unmatched');
  if (f.truncations.some((t) => t.errorMs !== null && t.errorMs > maxTruncationErrorMs)) out.push('truncation error over bound');
  return out;
}
