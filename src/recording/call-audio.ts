/**
 * The two tracks of a call's recording, built as the call goes and handed out in finished pieces,
 * so a call of any length holds only a few seconds of audio in memory:
 *
 *   left   the caller, each inbound media frame placed at its `timestamp`;
 *   right  what the caller heard: each stretch of agent audio plays from when the bridge sent it
 *          (or, queued, from the end of the audio before it), in real time, as Twilio plays its
 *          buffer; a `clear` silences everything from its instant on, as does the end of the call.
 *
 * The right track is the same picture the replay's simulated caller draws for heard.wav, seen from
 * the bridge: the network delay to Twilio (tens of ms on a good path) is not in it.
 *
 * Positions are 8 kHz samples (one mu-law byte each) since the stream's `start`. A piece is final,
 * and emitted, once the call has moved `holdMs` past it: a clear can only cut audio from its own
 * instant on, and a caller frame arriving that late is dropped (and counted).
 */
import { MULAW_SILENCE } from '../audio/g711.js';
import { MULAW_BYTES_PER_MS } from '../audio/wire-format.js';

const SAMPLES_PER_MS = MULAW_BYTES_PER_MS;

export interface CallAudioLimits {
  /** How far behind the call's present the finished part ends. */
  holdMs: number;
  /** Pieces are at least this long (fewer, larger writes). */
  pieceMs: number;
  /** Agent audio queued further ahead than this (a runaway answer) is not kept. */
  maxAheadMs: number;
}

export const CALL_AUDIO_LIMITS: CallAudioLimits = { holdMs: 1000, pieceMs: 2000, maxAheadMs: 10 * 60_000 };

export interface CallAudioStats {
  /** Caller audio that arrived after its place was written out, dropped. */
  lateCallerMs: number;
  /** Agent audio queued beyond maxAheadMs, dropped. */
  droppedAheadMs: number;
}

export class CallAudio {
  /** Sample position of index 0 of the buffers: everything before it was emitted. */
  private base = 0;
  private left: Uint8Array;
  private right: Uint8Array;
  /** End of the caller's last frame. */
  private callerEnd = 0;
  /** The stretch of agent audio playing or queued: from its first sample to where the next one goes. */
  private run: { start: number; end: number } | null = null;
  private finished = false;
  readonly stats: CallAudioStats = { lateCallerMs: 0, droppedAheadMs: 0 };

  constructor(
    private readonly emit: (left: Uint8Array, right: Uint8Array) => void,
    private readonly limits: CallAudioLimits = CALL_AUDIO_LIMITS,
  ) {
    const initial = (limits.holdMs + limits.pieceMs) * SAMPLES_PER_MS * 2;
    this.left = new Uint8Array(initial).fill(MULAW_SILENCE);
    this.right = new Uint8Array(initial).fill(MULAW_SILENCE);
  }

  /** A caller frame, at Twilio's `timestamp` (ms since the stream started). */
  caller(timestampMs: number, payload: Uint8Array): void {
    if (this.finished) return;
    let at = Math.round(timestampMs * SAMPLES_PER_MS);
    let bytes = payload;
    if (at < this.base) {
      const late = Math.min(bytes.length, this.base - at);
      this.stats.lateCallerMs += late / SAMPLES_PER_MS;
      bytes = bytes.subarray(late);
      at = this.base;
    }
    this.put('left', at, bytes);
    this.callerEnd = Math.max(this.callerEnd, at + bytes.length);
  }

  /** Agent audio sent to Twilio at `atMs` (stream ms). */
  agent(atMs: number, payload: Uint8Array): void {
    if (this.finished || payload.length === 0) return;
    const at = Math.max(this.base, Math.round(atMs * SAMPLES_PER_MS));
    // Twilio's buffer had run dry: this audio starts playing on arrival.
    if (this.run === null || this.run.end <= at) this.run = { start: at, end: at };
    const room = this.base + this.limits.maxAheadMs * SAMPLES_PER_MS - this.run.end;
    const kept = payload.subarray(0, Math.max(0, room));
    this.stats.droppedAheadMs += (payload.length - kept.length) / SAMPLES_PER_MS;
    this.put('right', this.run.end, kept);
    this.run.end += kept.length;
  }

  /** A `clear` sent at `atMs`: nothing queued plays after it. */
  clear(atMs: number): void {
    if (this.finished) return;
    this.cutAt(Math.round(atMs * SAMPLES_PER_MS));
  }

  /** The call has reached `atMs`: emit what can no longer change. */
  advance(atMs: number): void {
    if (this.finished) return;
    const finalUpTo = Math.round((atMs - this.limits.holdMs) * SAMPLES_PER_MS);
    if (finalUpTo - this.base >= this.limits.pieceMs * SAMPLES_PER_MS) this.emitUpTo(finalUpTo);
  }

  /** The call ended at `atMs`: agent audio still queued never played; emit the rest. Returns the length in ms. */
  finish(atMs: number): number {
    if (this.finished) return this.base / SAMPLES_PER_MS;
    const end = Math.max(this.base, Math.round(atMs * SAMPLES_PER_MS));
    this.cutAt(end);
    this.emitUpTo(Math.max(end, this.callerEnd));
    this.finished = true;
    return this.base / SAMPLES_PER_MS;
  }

  private cutAt(at: number): void {
    const run = this.run;
    if (run === null) return;
    if (run.end > at) {
      const from = Math.max(at, this.base) - this.base;
      this.right.fill(MULAW_SILENCE, from, Math.max(from, run.end - this.base));
    }
    this.run = null;
  }

  private put(track: 'left' | 'right', at: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.ensure(at + bytes.length);
    this[track].set(bytes, at - this.base);
  }

  private ensure(end: number): void {
    const need = end - this.base;
    if (need <= this.left.length) return;
    const size = Math.max(need, this.left.length * 2);
    for (const track of ['left', 'right'] as const) {
      const grown = new Uint8Array(size).fill(MULAW_SILENCE);
      grown.set(this[track]);
      this[track] = grown;
    }
  }

  private emitUpTo(upTo: number): void {
    const n = upTo - this.base;
    if (n <= 0) return;
    this.ensure(upTo);
    this.emit(this.left.slice(0, n), this.right.slice(0, n));
    for (const track of ['left', 'right'] as const) {
      const buf = this[track];
      buf.copyWithin(0, n);
      buf.fill(MULAW_SILENCE, buf.length - n);
    }
    this.base = upTo;
  }
}
