/**
 * Regroups an arbitrary stream of mu-law bytes into fixed 20 ms frames for Twilio.
 *
 * Twilio plays whatever it is sent, but fixed 20 ms frames keep mark/clear bookkeeping and
 * pacing in whole, predictable units regardless of how Realtime chunks its audio.
 */

/** 8 kHz, one byte per sample. */
export const MULAW_BYTES_PER_MS = 8;
export const FRAME_MS = 20;
export const FRAME_BYTES = MULAW_BYTES_PER_MS * FRAME_MS;

export class MulawFramer {
  private readonly frame = new Uint8Array(FRAME_BYTES);
  private filled = 0;
  /** Bumped by reset() so a push in progress can tell it was interrupted from its callback. */
  private resets = 0;

  /**
   * Appends `length` bytes of `bytes` and calls `onFrame` for every completed frame. The frame
   * is this framer's own buffer: it is only valid during the callback, copy it to keep it.
   * If the callback calls reset() (barge-in), the rest of this push is dropped too.
   */
  push(bytes: Uint8Array, length: number, onFrame: (frame: Uint8Array) => void): void {
    if (!Number.isInteger(length) || length < 0 || length > bytes.length) {
      throw new RangeError(`MulawFramer: length ${length} out of range (0..${bytes.length})`);
    }
    const frame = this.frame;
    const resetsAtStart = this.resets;
    let filled = this.filled;
    let read = 0;
    while (read < length) {
      const take = Math.min(FRAME_BYTES - filled, length - read);
      // A plain loop rather than set(subarray()) so no view object is allocated per frame.
      for (let i = 0; i < take; i++) frame[filled + i] = bytes[read + i]!;
      filled += take;
      read += take;
      if (filled === FRAME_BYTES) {
        // Reset before the callback so a re-entrant flush/reset from it sees a consistent state.
        filled = 0;
        this.filled = 0;
        onFrame(frame);
        if (this.resets !== resetsAtStart) return;
      }
    }
    this.filled = filled;
  }

  /** Emits the partial tail as a shorter frame (no padding), if there is one. */
  flush(onFrame: (frame: Uint8Array) => void): void {
    if (this.filled === 0) return;
    const length = this.filled;
    this.filled = 0;
    onFrame(this.frame.subarray(0, length));
  }

  /** Drops the partial frame. */
  reset(): void {
    this.filled = 0;
    this.resets++;
  }

  get pendingBytes(): number {
    return this.filled;
  }
}
