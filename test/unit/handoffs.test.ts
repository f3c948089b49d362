import { describe, expect, it } from 'vitest';
import { HANDOFF_TTL_MS, Handoffs, MAX_HANDOFFS } from '../../src/server/handoffs.js';
import type { Handoff } from '../../src/server/handoffs.js';

const A = 'CA00000000000000000000000000000001';
const B = 'CA00000000000000000000000000000002';
const C = 'CA00000000000000000000000000000003';
const HANDOFF: Omit<Handoff, 'atMs'> = { target: '+15557778888', transcript: [], parameters: { from: '+15550001111', to: '+15552223333' } };

describe('Handoffs (conversations of transferred calls)', () => {
  it('keeps a handoff for the transfer-status callback to read, and hands it to the returning stream once', () => {
    let now = 1000;
    const handoffs = new Handoffs({ wallClock: () => now });
    handoffs.keep(A, HANDOFF);
    now += 5;
    expect(handoffs.peek(A)).toEqual({ ...HANDOFF, atMs: 1000 });
    expect(handoffs.peek(A)).toBeDefined();
    expect(handoffs.take(A)).toEqual({ ...HANDOFF, atMs: 1000 });
    expect(handoffs.take(A)).toBeUndefined();
  });

  it('forgets the handoff of a transfer that was answered', () => {
    const handoffs = new Handoffs({ wallClock: () => 0 });
    handoffs.keep(A, HANDOFF);
    handoffs.forget(A);
    expect(handoffs.peek(A)).toBeUndefined();
  });

  it('drops handoffs older than the TTL when the next one is kept', () => {
    let now = 0;
    const handoffs = new Handoffs({ wallClock: () => now });
    handoffs.keep(A, HANDOFF);
    now = HANDOFF_TTL_MS;
    handoffs.keep(B, HANDOFF);
    expect(handoffs.size).toBe(2);
    now = HANDOFF_TTL_MS + 1;
    handoffs.keep(C, HANDOFF);
    expect(handoffs.peek(A)).toBeUndefined();
    expect([handoffs.peek(B)?.atMs, handoffs.peek(C)?.atMs]).toEqual([HANDOFF_TTL_MS, HANDOFF_TTL_MS + 1]);
  });

  it('beyond its cap drops the oldest', () => {
    const handoffs = new Handoffs({ wallClock: () => 0, maxEntries: 2 });
    handoffs.keep(A, HANDOFF);
    handoffs.keep(B, HANDOFF);
    handoffs.keep(C, HANDOFF);
    expect(handoffs.size).toBe(2);
    expect(handoffs.peek(A)).toBeUndefined();
    expect(MAX_HANDOFFS).toBe(1000);
  });
});
