import { describe, expect, it } from 'vitest';
import { MULAW_SILENCE } from '../../src/audio/g711.js';
import { CallAudio } from '../../src/recording/call-audio.js';

/** `ms` of a constant mu-law code: easy to find again in a track. */
const tone = (ms: number, code: number): Uint8Array => new Uint8Array(ms * 8).fill(code);

function recorder(limits = { holdMs: 100, pieceMs: 200, maxAheadMs: 60_000 }): { audio: CallAudio; left: () => Uint8Array; right: () => Uint8Array; pieces: number[] } {
  const lefts: Uint8Array[] = [];
  const rights: Uint8Array[] = [];
  const pieces: number[] = [];
  const audio = new CallAudio((l, r) => {
    expect(l.length).toBe(r.length);
    lefts.push(l);
    rights.push(r);
    pieces.push(l.length / 8);
  }, limits);
  const join = (parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
  return { audio, left: () => join(lefts), right: () => join(rights), pieces };
}

/** The code at each ms of a track (its first sample in that ms). */
const codeAt = (track: Uint8Array, ms: number): number | undefined => track[ms * 8];

describe('the recording of a call', () => {
  it('left: the caller by timestamp; right: agent audio from when it was sent, queued after what plays, cut at a clear', () => {
    const { audio, left, right } = recorder();
    audio.caller(0, tone(20, 0x10));
    audio.caller(40, tone(20, 0x10)); // a 20 ms gap: silence
    audio.agent(100, tone(300, 0x20)); // plays 100–400
    audio.agent(150, tone(200, 0x30)); // queued: plays 400–600
    audio.clear(500); // the caller barged in: 500–600 never played
    audio.agent(700, tone(100, 0x40)); // Twilio's buffer was empty: plays on arrival, 700–800
    expect(audio.finish(750)).toBe(750); // hung up at 750: 750–800 never played
    const l = left();
    const r = right();
    expect(l.length).toBe(750 * 8);
    expect([codeAt(l, 0), codeAt(l, 25), codeAt(l, 45), codeAt(l, 70)]).toEqual([0x10, MULAW_SILENCE, 0x10, MULAW_SILENCE]);
    expect([codeAt(r, 50), codeAt(r, 100), codeAt(r, 399), codeAt(r, 400), codeAt(r, 499)]).toEqual([MULAW_SILENCE, 0x20, 0x20, 0x30, 0x30]);
    // Silent from the clear on, until the next answer.
    expect(r.subarray(500 * 8, 700 * 8).every((b) => b === MULAW_SILENCE)).toBe(true);
    expect([codeAt(r, 700), codeAt(r, 749)]).toEqual([0x40, 0x40]);
  });

  it('hands out finished pieces as the call goes, keeping only the last moments', () => {
    const { audio, pieces } = recorder();
    for (let t = 0; t < 2000; t += 20) {
      audio.caller(t, tone(20, 0x10));
      audio.advance(t + 20);
    }
    // Nothing within holdMs (100) of the present is final; pieces are at least pieceMs (200).
    expect(pieces.length).toBeGreaterThanOrEqual(8);
    expect(pieces.every((ms) => ms >= 200)).toBe(true);
    expect(pieces.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1900);
    audio.finish(2000);
    expect(pieces.reduce((a, b) => a + b, 0)).toBe(2000);
  });

  it('a caller frame later than what was written out is dropped and counted; runaway agent audio is capped', () => {
    const { audio, left } = recorder({ holdMs: 100, pieceMs: 200, maxAheadMs: 1000 });
    for (let t = 0; t < 600; t += 20) {
      audio.caller(t, tone(20, 0x10));
      audio.advance(t + 20);
    }
    audio.caller(100, tone(20, 0x50)); // long written out
    expect(audio.stats.lateCallerMs).toBe(20);
    audio.agent(600, tone(5000, 0x20)); // 5 s queued, far more than 1 s ahead of what is written
    expect(audio.stats.droppedAheadMs).toBeGreaterThan(0);
    audio.finish(700);
    expect(left().includes(0x50)).toBe(false);
  });
});
