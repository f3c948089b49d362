import { describe, expect, it } from 'vitest';
import { PlayoutTracker } from '../../src/call/playout.js';

const ITEM_A = { itemId: 'item_a', responseId: 'resp_1', contentIndex: 0 };
const ITEM_B = { itemId: 'item_b', responseId: 'resp_2', contentIndex: 0 };

/** Send `ms` of audio for an item in 20 ms frames with a mark every 100 ms; returns the marks. */
function send(p: PlayoutTracker, item: typeof ITEM_A, ms: number, nowMs: number): string[] {
  const marks: string[] = [];
  for (let sent = 0; sent < ms; sent += 20) {
    p.recordSent(item, 20, nowMs);
    if (p.unmarkedMs() >= 100) marks.push(p.createMark().name);
  }
  if (p.unmarkedMs() > 0) marks.push(p.createMark().name);
  return marks;
}

describe('PlayoutTracker', () => {
  it('reports nothing played before any audio was sent', () => {
    const p = new PlayoutTracker();
    expect(p.playedMs(1000)).toBe(0);
    expect(p.isAudible()).toBe(false);
    expect(p.heardItems(1000)).toEqual([]);
  });

  it('extrapolates from the last acknowledged mark, capped at the next unacknowledged mark', () => {
    const p = new PlayoutTracker();
    const marks = send(p, ITEM_A, 1000, 0); // marks at 100, 200, ... 1000
    expect(marks).toHaveLength(10);
    expect(p.playedMs(50)).toBe(50);
    expect(p.playedMs(150)).toBe(100); // the 100 ms mark was not echoed yet: cannot be past it
    expect(p.onMarkEcho(marks[0] ?? '', 105)).toMatchObject({ kind: 'acknowledged' });
    expect(p.playedMs(150)).toBe(145);
    expect(p.isAudible()).toBe(true);
  });

  it('acknowledges every earlier mark when a later one is echoed (Twilio plays in order)', () => {
    const p = new PlayoutTracker();
    const marks = send(p, ITEM_A, 500, 0);
    p.onMarkEcho(marks[2] ?? '', 300);
    expect(p.pendingMarks).toBe(2);
    expect(p.playedMs(300)).toBe(300);
  });

  it('stops counting while the buffer is dry and resumes when new audio arrives (underrun)', () => {
    const p = new PlayoutTracker();
    const first = send(p, ITEM_A, 400, 0);
    for (const [i, m] of first.entries()) p.onMarkEcho(m, (i + 1) * 100);
    expect(p.isAudible()).toBe(false);
    expect(p.playedMs(2000)).toBe(400); // 1.6 s of dead air adds nothing
    send(p, ITEM_A, 400, 2000); // playback restarts on arrival
    expect(p.playedMs(2250)).toBe(400 + 100); // capped at the next mark until it is echoed
    expect(p.heardItems(2050)).toEqual([{ ...ITEM_A, heardMs: 450, sentMs: 800 }]);
  });

  it('never reports more than was sent', () => {
    const p = new PlayoutTracker();
    p.recordSent(ITEM_A, 60, 0);
    expect(p.playedMs(10_000)).toBe(60);
  });

  it('ignores marks from before a clear and starts the new generation from zero', () => {
    const p = new PlayoutTracker();
    const old = send(p, ITEM_A, 1000, 0);
    p.onMarkEcho(old[1] ?? '', 200);
    p.newGeneration();
    expect(p.isAudible()).toBe(false);
    send(p, ITEM_B, 600, 250);
    // Twilio echoes every mark that was pending when it received clear:
    for (const m of old.slice(2)) expect(p.onMarkEcho(m, 260)).toEqual({ kind: 'stale', generation: 0 });
    expect(p.playedMs(310)).toBe(60);
    expect(p.heardItems(310)).toEqual([{ ...ITEM_B, heardMs: 60, sentMs: 600 }]);
  });

  it('maps the played position onto consecutive items', () => {
    const p = new PlayoutTracker();
    const a = send(p, ITEM_A, 300, 0);
    send(p, ITEM_B, 300, 0);
    expect(p.heardItems(250)).toEqual([
      { ...ITEM_A, heardMs: 100, sentMs: 300 }, // capped at the first unacknowledged mark
      { ...ITEM_B, heardMs: 0, sentMs: 300 },
    ]);
    for (const [i, m] of a.entries()) p.onMarkEcho(m, (i + 1) * 100);
    // item A is wholly acknowledged and no longer interruptible; B is 50 ms in
    expect(p.heardItems(350)).toEqual([{ ...ITEM_B, heardMs: 50, sentMs: 300 }]);
  });

  it('forgets a finished item once all of it was acknowledged and a later item follows', () => {
    const p = new PlayoutTracker();
    const a = send(p, ITEM_A, 200, 0);
    send(p, ITEM_B, 200, 0);
    expect(p.trackedItemIds()).toEqual(new Set(['item_a', 'item_b']));
    for (const m of a) p.onMarkEcho(m, 200);
    expect(p.trackedItemIds()).toEqual(new Set(['item_b']));
  });

  it('tracks a second content part of the same item as its own stretch', () => {
    const p = new PlayoutTracker();
    p.recordSent(ITEM_A, 300, 0);
    p.recordSent({ ...ITEM_A, contentIndex: 1 }, 200, 0);
    p.createMark();
    expect(p.heardItems(400).map((h) => [h.itemId, h.contentIndex, h.sentMs, h.heardMs])).toEqual([
      ['item_a', 0, 300, 300],
      ['item_a', 1, 200, 100],
    ]);
  });

  it('treats foreign and malformed mark names as unknown', () => {
    const p = new PlayoutTracker();
    send(p, ITEM_A, 100, 0);
    expect(p.onMarkEcho('someone-else', 10)).toEqual({ kind: 'unknown' });
    expect(p.onMarkEcho('cb:0:999', 10)).toEqual({ kind: 'unknown' });
    expect(p.onMarkEcho('cb:x:1', 10)).toEqual({ kind: 'unknown' });
  });
});
