/**
 * A model of Twilio's outbound playback for one Media Stream: the one the simulated caller
 * plays by, the session tests' harness plays by, and the replay summary reconstructs a call's
 * playback with. (The bridge's own estimate of what the caller heard is src/call/playout.ts; this
 * is the Twilio it is checked against.)
 *
 * Twilio's behaviour (bidirectional Media Streams): `media` payloads are appended to a
 * playback buffer and played in order, in real time, at 8 bytes (8 kHz mu-law samples) per ms,
 * from the moment they arrive if nothing was playing; when the buffer runs dry playback pauses
 * until more audio arrives. A `mark` is echoed when everything queued before it has played, or at
 * once if nothing is buffered. `clear` empties the buffer at once and echoes every pending mark.
 *
 * Pure: no timers, no I/O. The clock is passed in (`nowMs`, ms on any monotonic timeline, e.g.
 * since the stream started) and must not go backwards. Every call that takes `nowMs` first settles
 * what has happened by then and returns the marks that came due on the way, so the state depends
 * only on the inputs and their times, never on how often `advance` was called.
 *
 * Playback sits on the sample grid: a stretch of playback starts on a whole byte (1/8 ms) and the
 * played count is whole bytes, so byte positions on the stream timeline (`startsAtMs * 8`) and the
 * played count agree exactly.
 */
import { MULAW_BYTES_PER_MS } from '../audio/wire-format.js';

const BYTES_PER_MS = MULAW_BYTES_PER_MS;

/** A mark Twilio sends back. */
export interface PlaybackEcho {
  name: string;
  /** played: playback reached it; cleared: echoed by `clear`; idle: nothing was buffered when it arrived. */
  cause: 'played' | 'cleared' | 'idle';
  /** When Twilio echoes it: the instant playback reached it (played), else when it (or the clear) arrived. */
  atMs: number;
  /**
   * Bytes played when it was echoed: for 'played', exactly the audio queued before it; for
   * 'cleared', what had played when the clear arrived; for 'idle', everything sent so far.
   */
  playedBytes: number;
}

/** A contiguous stretch of playback that has ended. */
export interface PlaybackStretch {
  startMs: number;
  endMs: number;
  /** drained: everything queued played; cleared: cut by `clear`; call-ended: cut by end(). */
  end: 'drained' | 'cleared' | 'call-ended';
}

export interface Appended {
  echoes: PlaybackEcho[];
  /** When the payload's first byte plays (unless a clear drops it first). */
  startsAtMs: number;
  /**
   * Position in the played-byte count (playedBytes()) of the payload's first byte. Audio cleared
   * before it played never counts, so positions stay true across clears.
   */
  startsAtPlayedByte: number;
}

export interface Cleared {
  echoes: PlaybackEcho[];
  /** playedBytes() when the clear arrived */
  playedBytes: number;
  /** buffered bytes the clear dropped */
  droppedBytes: number;
  /** Where playback stopped: the dropped audio would have played from here. */
  stoppedAtMs: number;
}

export interface TwilioPlaybackOptions {
  /** Told about each stretch of playback once it has ended (for benchmarks; observation only). */
  onStretch?: (s: PlaybackStretch) => void;
}

/** Audio queued since playback last started from idle, on the byte grid. */
interface Run {
  /** Stream byte index (ms * 8) where it began playing. */
  startIdx: number;
  /** Bytes queued into it (played or not). */
  bytes: number;
}

interface PendingMark {
  name: string;
  /** Played-byte position it sits at. */
  atByte: number;
}

export class TwilioPlayback {
  /** Bytes played before the current run (cleared audio never counts). */
  private playedBase = 0;
  private run: Run | undefined;
  /** Stream byte index since which nothing has played (while there is no run). */
  private idleSinceIdx = 0;
  private readonly pending: PendingMark[] = [];
  private endIdx: number | undefined;
  private readonly onStretch: ((s: PlaybackStretch) => void) | undefined;

  constructor(options: TwilioPlaybackOptions = {}) {
    this.onStretch = options.onStretch;
  }

  // ---------------------------------------------------------------- inputs (what the bridge sends)

  /** Time passes: the marks playback has reached by nowMs, in order. */
  advance(nowMs: number): PlaybackEcho[] {
    return this.settle(this.idx(nowMs));
  }

  /** A `media` payload of `bytes` bytes arrives. */
  append(bytes: number, nowMs: number): Appended {
    const idx = this.idx(nowMs);
    const echoes = this.settle(idx);
    const startsAtPlayedByte = this.playedBase + (this.run?.bytes ?? 0);
    if (bytes <= 0 || this.endIdx !== undefined) {
      return { echoes, startsAtPlayedByte, startsAtMs: (this.run ? this.run.startIdx + this.run.bytes : idx) / BYTES_PER_MS };
    }
    let run = this.run;
    if (run === undefined) {
      run = { startIdx: Math.max(Math.round(idx), Math.ceil(this.idleSinceIdx)), bytes: 0 };
      this.run = run;
    }
    const at = run.startIdx + run.bytes;
    run.bytes += bytes;
    return { echoes, startsAtPlayedByte, startsAtMs: at / BYTES_PER_MS };
  }

  /** A `mark` arrives: queued behind the buffered audio, or echoed at once if nothing is buffered. */
  mark(name: string, nowMs: number): PlaybackEcho[] {
    const idx = this.idx(nowMs);
    const echoes = this.settle(idx);
    if (this.endIdx !== undefined) return echoes;
    const run = this.run;
    // With due marks echoed and a drained run retired, no run means nothing is buffered.
    if (run === undefined) echoes.push({ name, cause: 'idle', atMs: idx / BYTES_PER_MS, playedBytes: this.playedBase });
    else this.pending.push({ name, atByte: this.playedBase + run.bytes });
    return echoes;
  }

  /** A `clear` arrives: the buffer is dropped and every pending mark echoed (after any already due). */
  clear(nowMs: number): Cleared {
    const idx = this.idx(nowMs);
    const echoes = this.settle(idx);
    const played = this.playedAt(idx);
    const run = this.run;
    let stopIdx = idx;
    let dropped = 0;
    if (run !== undefined && this.endIdx === undefined) {
      stopIdx = run.startIdx + (played - this.playedBase);
      dropped = this.playedBase + run.bytes - played;
      if (stopIdx > run.startIdx) this.onStretch?.({ startMs: run.startIdx / BYTES_PER_MS, endMs: stopIdx / BYTES_PER_MS, end: 'cleared' });
      this.playedBase = played;
      this.idleSinceIdx = stopIdx;
      this.run = undefined;
    }
    if (this.endIdx === undefined) {
      for (const m of this.pending.splice(0)) echoes.push({ name: m.name, cause: 'cleared', atMs: idx / BYTES_PER_MS, playedBytes: played });
    }
    return { echoes, playedBytes: played, droppedBytes: dropped, stoppedAtMs: stopIdx / BYTES_PER_MS };
  }

  /**
   * The stream ends: playback stops where it is, pending marks are never echoed, and every later
   * reading is taken at the end. Idempotent.
   */
  end(nowMs: number): void {
    if (this.endIdx !== undefined) return;
    this.endIdx = nowMs * BYTES_PER_MS;
    const run = this.run;
    if (run === undefined) return;
    const runEnd = run.startIdx + run.bytes;
    const stop = Math.min(runEnd, this.endIdx);
    if (stop > run.startIdx) this.onStretch?.({ startMs: run.startIdx / BYTES_PER_MS, endMs: stop / BYTES_PER_MS, end: stop < runEnd ? 'call-ended' : 'drained' });
  }

  // ---------------------------------------------------------------- readings

  /** Bytes played by nowMs (audio cleared before it played never counts). */
  playedBytes(nowMs: number): number {
    return this.playedAt(this.idx(nowMs));
  }

  /** ms of audio played by nowMs. */
  heardMs(nowMs: number): number {
    return this.playedBytes(nowMs) / BYTES_PER_MS;
  }

  /** Bytes queued but not yet played at nowMs. */
  bufferedBytes(nowMs: number): number {
    const run = this.run;
    return run === undefined ? 0 : this.playedBase + run.bytes - this.playedAt(this.idx(nowMs));
  }

  /** Since when nothing has been playing (the timeline's 0 before any audio), or undefined while audio plays. */
  idleSinceMs(nowMs: number): number | undefined {
    const run = this.run;
    if (run === undefined) return this.idleSinceIdx / BYTES_PER_MS;
    const runEnd = run.startIdx + run.bytes;
    return this.idx(nowMs) >= runEnd ? runEnd / BYTES_PER_MS : undefined;
  }

  /** When the next pending mark comes due (advance() then returns it); null if none is pending, or the stream ended. */
  nextEchoAtMs(): number | null {
    const head = this.pending[0];
    const run = this.run;
    if (head === undefined || run === undefined || this.endIdx !== undefined) return null;
    return (run.startIdx + (head.atByte - this.playedBase)) / BYTES_PER_MS;
  }

  // ---------------------------------------------------------------- internals

  private idx(nowMs: number): number {
    const idx = nowMs * BYTES_PER_MS;
    return this.endIdx === undefined ? idx : Math.min(idx, this.endIdx);
  }

  /** Bytes played by stream byte index idx: run start + elapsed, capped at what was queued. */
  private playedAt(idx: number): number {
    const run = this.run;
    if (run === undefined) return this.playedBase;
    return this.playedBase + Math.min(run.bytes, Math.max(0, Math.floor(idx - run.startIdx)));
  }

  /** Echo the marks due by idx, then close out a run that has all played (the next audio starts a new one). */
  private settle(idx: number): PlaybackEcho[] {
    const echoes: PlaybackEcho[] = [];
    const run = this.run;
    if (run === undefined || this.endIdx !== undefined) return echoes;
    const played = this.playedAt(idx);
    let head = this.pending[0];
    while (head !== undefined && head.atByte <= played) {
      this.pending.shift();
      echoes.push({ name: head.name, cause: 'played', atMs: (run.startIdx + (head.atByte - this.playedBase)) / BYTES_PER_MS, playedBytes: head.atByte });
      head = this.pending[0];
    }
    const runEnd = run.startIdx + run.bytes;
    if (idx >= runEnd) {
      this.onStretch?.({ startMs: run.startIdx / BYTES_PER_MS, endMs: runEnd / BYTES_PER_MS, end: 'drained' });
      this.playedBase += run.bytes;
      this.idleSinceIdx = runEnd;
      this.run = undefined;
    }
    return echoes;
  }
}
