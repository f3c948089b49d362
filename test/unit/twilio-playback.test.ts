import { describe, expect, it } from 'vitest';
import { TwilioPlayback, type PlaybackEcho, type PlaybackStretch } from '../../src/tooling/twilio-playback.js';

/** 8 kHz mu-law: 8 bytes per ms. */
const ms = (n: number): number => n * 8;
const names = (echoes: PlaybackEcho[]): string[] => echoes.map((e) => e.name);

describe('TwilioPlayback', () => {
  it('echoes a mark exactly when the audio queued before it has played, not before', () => {
    const p = new TwilioPlayback();
    expect(p.append(ms(100), 0).startsAtMs).toBe(0);
    expect(p.mark('m1', 0)).toEqual([]);
    expect(p.nextEchoAtMs()).toBe(100);
    expect(p.advance(99.9)).toEqual([]);
    expect(p.advance(100)).toEqual([{ name: 'm1', cause: 'played', atMs: 100, playedBytes: ms(100) }]);
    expect(p.advance(200)).toEqual([]);
    expect(p.nextEchoAtMs()).toBeNull();
  });

  it('echoes a mark at once when nothing is buffered: before any audio, and once the buffer has drained', () => {
    const p = new TwilioPlayback();
    expect(p.mark('first', 5)).toEqual([{ name: 'first', cause: 'idle', atMs: 5, playedBytes: 0 }]);
    p.append(ms(10), 20);
    // Still 0.1 ms to play: queued.
    expect(p.mark('queued', 29.9)).toEqual([]);
    // Drained at 30: the queued mark is due, and a new one has nothing to wait for.
    expect(p.mark('idle', 30)).toEqual([
      { name: 'queued', cause: 'played', atMs: 30, playedBytes: ms(10) },
      { name: 'idle', cause: 'idle', atMs: 30, playedBytes: ms(10) },
    ]);
    expect(p.nextEchoAtMs()).toBeNull();
  });

  it('plays multiple appends back to back, and pauses when the buffer runs dry', () => {
    const p = new TwilioPlayback();
    expect(p.append(ms(100), 0)).toMatchObject({ startsAtMs: 0, startsAtPlayedByte: 0 });
    // Arrives while the first plays: queued behind it.
    expect(p.append(ms(50), 10)).toMatchObject({ startsAtMs: 100, startsAtPlayedByte: ms(100) });
    p.mark('end', 20);
    expect(p.nextEchoAtMs()).toBe(150);
    expect(p.bufferedBytes(20)).toBe(ms(130));
    expect(p.heardMs(120)).toBe(120);
    expect(p.advance(150)).toEqual([{ name: 'end', cause: 'played', atMs: 150, playedBytes: ms(150) }]);
    // Nothing plays from 150 to 200: the next audio starts when it arrives, not where the last ended.
    expect(p.heardMs(190)).toBe(150);
    expect(p.idleSinceMs(190)).toBe(150);
    expect(p.append(ms(20), 200)).toMatchObject({ startsAtMs: 200, startsAtPlayedByte: ms(150) });
    expect(p.idleSinceMs(210)).toBeUndefined();
    expect(p.heardMs(210)).toBe(160);
    expect(p.heardMs(500)).toBe(170);
    expect(p.bufferedBytes(500)).toBe(0);
  });

  it('clear drops the buffer and echoes every pending mark at once, after those already reached', () => {
    const p = new TwilioPlayback();
    p.append(ms(100), 0);
    p.mark('a', 0);
    p.append(ms(100), 0);
    p.mark('b', 0);
    p.append(ms(100), 0);
    p.mark('c', 0);
    const cleared = p.clear(150);
    expect(cleared).toEqual({
      echoes: [
        { name: 'a', cause: 'played', atMs: 100, playedBytes: ms(100) },
        { name: 'b', cause: 'cleared', atMs: 150, playedBytes: ms(150) },
        { name: 'c', cause: 'cleared', atMs: 150, playedBytes: ms(150) },
      ],
      playedBytes: ms(150),
      droppedBytes: ms(150),
      stoppedAtMs: 150,
    });
    expect(p.nextEchoAtMs()).toBeNull();
    expect(p.advance(1000)).toEqual([]);
    expect(p.bufferedBytes(150)).toBe(0);
  });

  it('a mark reached at the very instant of the clear was played, not cleared', () => {
    const p = new TwilioPlayback();
    p.append(ms(100), 0);
    p.mark('a', 0);
    expect(p.clear(100).echoes).toEqual([{ name: 'a', cause: 'played', atMs: 100, playedBytes: ms(100) }]);
  });

  it('counts only what played before a clear as heard, and plays later audio from when it arrives', () => {
    const p = new TwilioPlayback();
    p.append(ms(1000), 0);
    p.clear(30);
    expect(p.heardMs(30)).toBe(30);
    expect(p.heardMs(1000)).toBe(30);
    expect(p.append(ms(10), 50)).toMatchObject({ startsAtMs: 50, startsAtPlayedByte: ms(30) });
    p.mark('after', 50);
    expect(p.heardMs(55)).toBe(35);
    expect(p.heardMs(5000)).toBe(40);
    expect(p.advance(60)).toEqual([{ name: 'after', cause: 'played', atMs: 60, playedBytes: ms(40) }]);
  });

  it('reports each stretch of playback when it ends: drained, cleared or cut by the end of the call', () => {
    const stretches: PlaybackStretch[] = [];
    const p = new TwilioPlayback({ onStretch: (s) => stretches.push(s) });
    p.append(ms(50), 0);
    p.append(ms(10), 100); // the first stretch drained at 50
    p.clear(105);
    p.append(ms(100), 200);
    p.mark('never', 200);
    p.end(250);
    expect(stretches).toEqual([
      { startMs: 0, endMs: 50, end: 'drained' },
      { startMs: 100, endMs: 105, end: 'cleared' },
      { startMs: 200, endMs: 250, end: 'call-ended' },
    ]);
    // After the end nothing plays and nothing is echoed.
    expect(p.heardMs(1000)).toBe(105);
    expect(p.nextEchoAtMs()).toBeNull();
    expect(p.advance(1000)).toEqual([]);
  });

  it('plays on the sample grid: a stretch starts on a whole byte and whole bytes are counted', () => {
    const p = new TwilioPlayback();
    expect(p.append(ms(10), 0.3).startsAtMs).toBe(0.25);
    expect(p.playedBytes(1)).toBe(6);
    expect(p.playedBytes(1.1)).toBe(6);
  });

  it('depends only on its inputs and their times, not on how often it is advanced', () => {
    const script = (p: TwilioPlayback, poll: boolean): PlaybackEcho[] => {
      const out: PlaybackEcho[] = [];
      const tick = (to: number): void => {
        if (poll) for (let t = 0; t <= to; t += 7) out.push(...p.advance(t));
      };
      out.push(...p.append(ms(40), 0).echoes);
      out.push(...p.mark('m1', 1));
      tick(60);
      out.push(...p.append(ms(40), 60).echoes);
      out.push(...p.mark('m2', 61));
      out.push(...p.append(ms(40), 62).echoes);
      out.push(...p.mark('m3', 63));
      tick(130);
      out.push(...p.clear(130).echoes);
      out.push(...p.mark('m4', 131));
      return out;
    };
    const polled = new TwilioPlayback();
    const lazy = new TwilioPlayback();
    const a = script(polled, true);
    const b = script(lazy, false);
    expect(a).toEqual(b);
    expect(names(a)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(a.map((e) => e.cause)).toEqual(['played', 'played', 'cleared', 'idle']);
    expect(polled.playedBytes(500)).toBe(lazy.playedBytes(500));
  });
});
