import { describe, expect, it } from 'vitest';
import { MAX_STREAM_CLAIMS, MIN_STREAM_CLAIMS, StreamClaims, streamClaimsCapacity, streamClaimsWindowMs } from '../../src/twilio/stream-claims.js';

const A = 'CA00000000000000000000000000000001';
const B = 'CA00000000000000000000000000000002';
const C = 'CA00000000000000000000000000000003';
const WINDOW = 1000;

describe('StreamClaims (the one-stream memory)', () => {
  it('takes a CallSid once and refuses it again, live or ended, for the whole window', () => {
    const claims = new StreamClaims({ windowMs: WINDOW, maxEntries: 10 });
    expect(claims.claim(A, false, 0)).toEqual({ ok: true });
    expect(claims.claim(A, false, 1)).toMatchObject({ ok: false, refusal: 'already-streamed' });
    expect(claims.claim(A, false, WINDOW - 1)).toMatchObject({ ok: false, refusal: 'already-streamed' });
    expect(claims.claim(B, false, WINDOW - 1)).toEqual({ ok: true });
  });

  it('forgets a CallSid once its window is over, and only then', () => {
    const claims = new StreamClaims({ windowMs: WINDOW, maxEntries: 10 });
    claims.claim(A, false, 0);
    claims.claim(B, false, 500);
    expect(claims.claim(A, false, WINDOW)).toEqual({ ok: true });
    expect(claims.claim(B, false, WINDOW)).toMatchObject({ ok: false });
    expect(claims.size).toBe(2);
    expect(claims.hasRoom(10 * WINDOW)).toBe(true);
    expect(claims.size).toBe(0);
  });

  it('a stream that says it resumes is refused unless the call was transferred, and then accepted once', () => {
    const claims = new StreamClaims({ windowMs: WINDOW, maxEntries: 10 });
    claims.claim(A, false, 0);
    // Anyone can put `resume` in the start's parameters: alone it is worth nothing.
    expect(claims.claim(A, true, 10)).toMatchObject({ ok: false, refusal: 'already-streamed' });
    claims.allowResume(A, 20);
    expect(claims.claim(A, false, 30)).toMatchObject({ ok: false });
    expect(claims.claim(A, true, 40)).toEqual({ ok: true });
    expect(claims.claim(A, true, 50)).toMatchObject({ ok: false, refusal: 'already-streamed' });
    // Each failed transfer earns one more.
    claims.allowResume(A, 60);
    expect(claims.claim(A, true, 70)).toEqual({ ok: true });
  });

  it('remembers a resumed call for a fresh window', () => {
    const claims = new StreamClaims({ windowMs: WINDOW, maxEntries: 10 });
    claims.claim(A, false, 0);
    claims.allowResume(A, 900);
    claims.claim(A, true, 950);
    expect(claims.claim(A, false, 950 + WINDOW - 1)).toMatchObject({ ok: false });
  });

  it('at its cap refuses new CallSids rather than forgetting old ones, until entries expire', () => {
    const claims = new StreamClaims({ windowMs: WINDOW, maxEntries: 2 });
    claims.claim(A, false, 0);
    claims.claim(B, false, 100);
    expect(claims.hasRoom(200)).toBe(false);
    expect(claims.claim(C, false, 200)).toMatchObject({ ok: false, refusal: 'full' });
    // The remembered ones are still refused: nothing was forgotten to make room.
    expect(claims.claim(A, false, 200)).toMatchObject({ ok: false, refusal: 'already-streamed' });
    expect(claims.claim(C, false, WINDOW)).toEqual({ ok: true });
    expect(claims.claim(B, false, WINDOW)).toMatchObject({ ok: false, refusal: 'already-streamed' });
  });

  it('a clock that reads NaN keeps every entry (refusing) rather than dropping them', () => {
    const claims = new StreamClaims({ windowMs: WINDOW, maxEntries: 10 });
    claims.claim(A, false, 0);
    expect(claims.claim(A, false, Number.NaN)).toMatchObject({ ok: false });
  });

  it('is sized from the line: a call token lifetime plus the longest call, a stream per slot every 10 s', () => {
    expect(streamClaimsWindowMs(60_000, 14_400_000)).toBe(14_460_000);
    expect(streamClaimsCapacity(100, 14_460_000)).toBe(144_600);
    expect(streamClaimsCapacity(1, 70_000)).toBe(MIN_STREAM_CLAIMS);
    expect(streamClaimsCapacity(100_000, 86_460_000)).toBe(MAX_STREAM_CLAIMS);
    expect(() => new StreamClaims({ windowMs: 0, maxEntries: 1 })).toThrow(RangeError);
    expect(() => new StreamClaims({ windowMs: 1, maxEntries: 0 })).toThrow(RangeError);
  });
});
