/**
 * Playback accounting: what the caller has actually heard of the agent's audio.
 *
 * Twilio buffers outbound audio and plays it in real time; the only ground truth we get back is
 * a mark echoed when playback reaches it. So the played position is the last acknowledged mark
 * plus the time since that acknowledgement, capped at the next unacknowledged mark (playback
 * cannot have passed it, or Twilio would have echoed it) and at what was sent. When the buffer
 * runs dry, the cap holds the position still: it counts audio played, not time elapsed.
 *
 * `clear` echoes every pending mark, so marks carry a generation; a new generation begins at
 * every clear and echoes from older ones are ignored.
 *
 * Positions are "stream ms": ms of audio sent to Twilio since the generation began.
 */

export interface PlayoutMark {
  readonly name: string;
  readonly generation: number;
  /** stream position at which the mark sits: everything before it must play first */
  readonly positionMs: number;
}

/** One assistant audio item's share of the stream. */
export interface PlayoutItem {
  readonly itemId: string;
  readonly responseId: string;
  readonly contentIndex: number;
  /** stream position of the item's first sent sample */
  readonly startMs: number;
  sentMs: number;
}

export interface HeardItem {
  readonly itemId: string;
  readonly responseId: string;
  readonly contentIndex: number;
  readonly heardMs: number;
  readonly sentMs: number;
}

export type MarkEchoResult =
  | { kind: 'acknowledged'; mark: PlayoutMark }
  | { kind: 'stale'; generation: number }
  | { kind: 'unknown' };

const MARK_PREFIX = 'cb';

export class PlayoutTracker {
  private generationNo = 0;
  private markSeq = 0;
  private sentTotalMs = 0;
  private readonly pending: PlayoutMark[] = [];
  private ackPositionMs = 0;
  /** when playback was last known to be at ackPositionMs; null until audio was first sent */
  private ackAtMs: number | null = null;
  private items: PlayoutItem[] = [];

  get sentMs(): number {
    return this.sentTotalMs;
  }

  get pendingMarks(): number {
    return this.pending.length;
  }

  /** Record audio handed to Twilio for an item. */
  recordSent(item: { itemId: string; responseId: string; contentIndex: number }, ms: number, nowMs: number): void {
    // Everything sent so far was acknowledged: Twilio's buffer is idle and this audio starts
    // playing on arrival, so playback resumes from here and now.
    if (this.ackPositionMs >= this.sentTotalMs) {
      this.ackPositionMs = this.sentTotalMs;
      this.ackAtMs = nowMs;
    }
    let current = this.items[this.items.length - 1];
    if (current === undefined || current.itemId !== item.itemId || current.contentIndex !== item.contentIndex) {
      current = { ...item, startMs: this.sentTotalMs, sentMs: 0 };
      this.items.push(current);
    }
    current.sentMs += ms;
    this.sentTotalMs += ms;
  }

  /** A mark at the current end of what was sent. The caller sends it to Twilio. */
  createMark(): PlayoutMark {
    this.markSeq += 1;
    const mark: PlayoutMark = {
      name: `${MARK_PREFIX}:${this.generationNo}:${this.markSeq}`,
      generation: this.generationNo,
      positionMs: this.sentTotalMs,
    };
    this.pending.push(mark);
    return mark;
  }

  /** Whether a mark is needed to cover audio sent since the last one. */
  unmarkedMs(): number {
    const last = this.pending[this.pending.length - 1];
    const markedUpTo = last !== undefined ? last.positionMs : this.ackPositionMs;
    return this.sentTotalMs - markedUpTo;
  }

  onMarkEcho(name: string, nowMs: number): MarkEchoResult {
    const parsed = parseMarkName(name);
    if (parsed === null) return { kind: 'unknown' };
    if (parsed.generation !== this.generationNo) return { kind: 'stale', generation: parsed.generation };
    const index = this.pending.findIndex((m) => m.name === name);
    if (index < 0) return { kind: 'unknown' };
    // Twilio plays in order, so reaching this mark means every earlier one was reached too.
    const [mark] = this.pending.splice(0, index + 1).slice(-1);
    if (mark === undefined) return { kind: 'unknown' };
    this.ackPositionMs = mark.positionMs;
    this.ackAtMs = nowMs;
    this.pruneFullyPlayed();
    return { kind: 'acknowledged', mark };
  }

  /** Stream position the caller has heard up to, in ms (fractional). */
  playedMs(nowMs: number): number {
    if (this.ackAtMs === null) return 0;
    const next = this.pending[0];
    const cap = Math.min(next !== undefined ? next.positionMs : this.sentTotalMs, this.sentTotalMs);
    const extrapolated = this.ackPositionMs + Math.max(0, nowMs - this.ackAtMs);
    return Math.max(this.ackPositionMs, Math.min(extrapolated, cap));
  }

  /** The caller may still be hearing agent audio: Twilio has not acknowledged all of it. */
  isAudible(): boolean {
    return this.sentTotalMs > this.ackPositionMs;
  }

  /** How much of each item still tracked in this generation the caller has heard. */
  heardItems(nowMs: number): HeardItem[] {
    const played = this.playedMs(nowMs);
    return this.items.map((it) => ({
      itemId: it.itemId,
      responseId: it.responseId,
      contentIndex: it.contentIndex,
      sentMs: it.sentMs,
      heardMs: Math.min(it.sentMs, Math.max(0, played - it.startMs)),
    }));
  }

  trackedItemIds(): Set<string> {
    return new Set(this.items.map((it) => it.itemId));
  }

  /** After a clear: nothing is buffered any more and marks still in flight belong to the past. */
  newGeneration(): void {
    this.generationNo += 1;
    this.markSeq = 0;
    this.sentTotalMs = 0;
    this.pending.length = 0;
    this.ackPositionMs = 0;
    this.ackAtMs = null;
    this.items = [];
  }

  private pruneFullyPlayed(): void {
    // An item followed by another is complete; once all of it was acknowledged it can no longer
    // be interrupted. The last item stays: its generation may merely have stalled.
    while (this.items.length > 1) {
      const first = this.items[0];
      if (first === undefined || first.startMs + first.sentMs > this.ackPositionMs) break;
      this.items.shift();
    }
  }
}

function parseMarkName(name: string): { generation: number; seq: number } | null {
  const parts = name.split(':');
  if (parts.length !== 3 || parts[0] !== MARK_PREFIX) return null;
  const generation = Number(parts[1]);
  const seq = Number(parts[2]);
  if (!Number.isInteger(generation) || !Number.isInteger(seq)) return null;
  return { generation, seq };
}
