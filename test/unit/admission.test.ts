import { describe, expect, it } from 'vitest';
import { ANSWERED_STREAM_WAIT_MS, Admission, MIN_PENDING_STREAMS } from '../../src/server/admission.js';
import { CALL_TOKEN_TTL_MS } from '../../src/twilio/call-token.js';
import { MIN_STREAM_CLAIMS } from '../../src/twilio/stream-claims.js';

const A = 'CA00000000000000000000000000000001';
const B = 'CA00000000000000000000000000000002';
const C = 'CA00000000000000000000000000000003';
const MAX_CALL_DURATION_MS = 10_000;

function admission(maxCalls: number, start = 1_700_000_000_000): { admission: Admission; clock: { now: number } } {
  const clock = { now: start };
  return { admission: new Admission({ maxCalls, maxCallDurationMs: MAX_CALL_DURATION_MS, wallClock: () => clock.now }), clock };
}

/** A stream for `callSid` whose start was accepted. */
function startCall(a: Admission, callSid: string): ReturnType<Admission['openStream']> {
  const stream = a.openStream();
  expect(stream.claim(callSid, false)).toEqual({ ok: true });
  expect(stream.started()).toBe(true);
  return stream;
}

describe('Admission: the webhook', () => {
  it('answers up to MAX_CALLS, counting started calls and calls answered whose stream is on its way', () => {
    const { admission: a } = admission(2);
    expect(a.mayAnswer(A)).toEqual({ ok: true });
    a.answered(A);
    startCall(a, B);
    expect(a.mayAnswer(C)).toEqual({ ok: false, why: 'busy', liveCalls: 1, answeredNotStarted: 1, maxCalls: 2 });
  });

  it('a retried webhook for the same CallSid is not counted as a new call', () => {
    const { admission: a } = admission(1);
    a.answered(A);
    expect(a.mayAnswer(A)).toEqual({ ok: true });
    a.answered(A);
    expect(a.answeredNotStarted()).toBe(1);
    // The one line is promised to that call.
    expect(a.mayAnswer(B)).toMatchObject({ ok: false, why: 'busy' });
    expect(a.mayAnswer(null)).toMatchObject({ ok: false, why: 'busy' });
  });

  it('an answered call whose stream has not started counts for ANSWERED_STREAM_WAIT_MS, then is forgotten', () => {
    const { admission: a, clock } = admission(1);
    a.answered(A);
    clock.now += ANSWERED_STREAM_WAIT_MS - 1;
    expect(a.mayAnswer(B)).toMatchObject({ ok: false, why: 'busy', answeredNotStarted: 1 });
    clock.now += 1;
    expect(a.mayAnswer(B)).toEqual({ ok: true });
    expect(a.answeredNotStarted()).toBe(0);
  });

  it('a stream that starts takes its call from the answered ones to the started ones', () => {
    const { admission: a, clock } = admission(1);
    a.answered(A);
    startCall(a, A);
    expect(a.answeredNotStarted()).toBe(0);
    expect(a.startedCalls).toBe(1);
    // A started call holds its slot however long it lasts.
    clock.now += 10 * ANSWERED_STREAM_WAIT_MS;
    expect(a.mayAnswer(B)).toMatchObject({ ok: false, why: 'busy', liveCalls: 1, answeredNotStarted: 0 });
  });

  it('sockets that never sent start do not make the line busy', () => {
    const { admission: a } = admission(1);
    for (let i = 0; i < MIN_PENDING_STREAMS; i++) a.openStream();
    expect(a.pendingStreams).toBe(MIN_PENDING_STREAMS);
    expect(a.mayAnswer(A)).toEqual({ ok: true });
  });

  it('while draining refuses every call, and says it is draining rather than busy', () => {
    const { admission: a } = admission(5);
    expect(a.startDraining()).toBe(true);
    expect(a.startDraining()).toBe(false);
    expect(a.draining).toBe(true);
    expect(a.mayAnswer(A)).toEqual({ ok: false, why: 'draining', liveCalls: 0, answeredNotStarted: 0, maxCalls: 5 });
  });

  it('refuses a call whose stream the one-stream memory could not take, and answers again once it has room', () => {
    const { admission: a, clock } = admission(1);
    for (let i = 0; i < MIN_STREAM_CLAIMS; i++) {
      const stream = a.openStream();
      expect(stream.claim(`CB${String(i).padStart(32, '0')}`, false).ok).toBe(true);
      stream.ended();
      stream.release(false);
    }
    expect(a.mayAnswer(A)).toEqual({ ok: false, why: 'memory-full', remembered: MIN_STREAM_CLAIMS, windowMs: a.claimsWindowMs });
    // Its stream would have been refused as busy (a full memory refuses rather than forgets).
    const stream = a.openStream();
    expect(stream.claim(A, false)).toMatchObject({ ok: false, refusal: 'busy' });
    expect(stream.refusal).toBe('busy');
    clock.now += a.claimsWindowMs;
    expect(a.mayAnswer(A)).toEqual({ ok: true });
  });
});

describe('Admission: the stream upgrade', () => {
  it('caps the sockets waiting for start at max(MIN_PENDING_STREAMS, MAX_CALLS)', () => {
    expect(admission(2).admission.maxPendingStreams).toBe(MIN_PENDING_STREAMS);
    expect(admission(50).admission.maxPendingStreams).toBe(50);
    const { admission: a } = admission(2);
    const streams = Array.from({ length: MIN_PENDING_STREAMS }, () => a.openStream());
    expect(a.mayUpgrade()).toEqual({ ok: false, pendingStreams: MIN_PENDING_STREAMS, maxPendingStreams: MIN_PENDING_STREAMS });
    // A pending socket that goes frees its slot; so does one whose call starts.
    streams[0]?.ended();
    expect(a.mayUpgrade()).toEqual({ ok: true });
    a.openStream();
    expect(streams[1]?.claim(A, false)).toEqual({ ok: true });
    expect(streams[1]?.started()).toBe(true);
    expect(a.mayUpgrade()).toEqual({ ok: true });
  });

  it('does not refuse streams while draining: their calls were answered already', () => {
    const { admission: a } = admission(1);
    a.startDraining();
    expect(a.mayUpgrade()).toEqual({ ok: true });
    const stream = a.openStream();
    expect(stream.claim(A, false)).toEqual({ ok: true });
  });
});

describe('Admission: one stream per CallSid', () => {
  it('refuses a second stream for a live CallSid as a replay', () => {
    const { admission: a } = admission(5);
    startCall(a, A);
    const second = a.openStream();
    expect(second.claim(A, false)).toEqual({ ok: false, refusal: 'replayed', reason: 'a stream for this CallSid is already live' });
    expect(second.refusal).toBe('replayed');
  });

  it('refuses a stream for a CallSid whose stream has ended, for a call token\'s lifetime plus the longest call', () => {
    const { admission: a, clock } = admission(5);
    const first = startCall(a, A);
    first.ended();
    expect(first.release(false)).toBe(A);
    expect(a.claimsWindowMs).toBe(CALL_TOKEN_TTL_MS + MAX_CALL_DURATION_MS);
    clock.now += a.claimsWindowMs - 1;
    expect(a.openStream().claim(A, false)).toMatchObject({ ok: false, refusal: 'replayed', reason: 'this CallSid already had its stream (a replay)' });
    clock.now += 1;
    expect(a.openStream().claim(A, false)).toEqual({ ok: true });
  });

  it('a call released after a transfer may come back on one stream that says it resumes', () => {
    const { admission: a } = admission(5);
    const first = startCall(a, A);
    first.ended();
    first.release(true);
    expect(a.openStream().claim(A, false)).toMatchObject({ ok: false, refusal: 'replayed' });
    expect(a.openStream().claim(A, true)).toEqual({ ok: true });
    expect(a.openStream().claim(A, true)).toMatchObject({ ok: false, refusal: 'replayed' });
  });

  it('a stream refused or never claimed releases nothing, and its refusal is null unless admission refused it', () => {
    const { admission: a } = admission(5);
    const unclaimed = a.openStream();
    expect(unclaimed.refusal).toBeNull();
    expect(unclaimed.release(false)).toBeNull();
    startCall(a, A);
    const refused = a.openStream();
    refused.claim(A, false);
    // Releasing the refused stream must not free the live call's CallSid.
    expect(refused.release(false)).toBeNull();
    expect(a.openStream().claim(A, false)).toMatchObject({ ok: false, reason: 'a stream for this CallSid is already live' });
  });
});

describe('Admission: each connection counted once per step', () => {
  it('pending → started → ended, however often each is reported', () => {
    const { admission: a } = admission(5);
    const stream = a.openStream();
    expect([a.pendingStreams, a.startedCalls]).toEqual([1, 0]);
    expect(stream.claim(A, false)).toEqual({ ok: true });
    expect(stream.started()).toBe(true);
    expect(stream.started()).toBe(false);
    expect([a.pendingStreams, a.startedCalls]).toEqual([0, 1]);
    expect(stream.ended()).toBe(true);
    expect(stream.ended()).toBe(false);
    expect(stream.started()).toBe(false);
    expect([a.pendingStreams, a.startedCalls]).toEqual([0, 0]);
  });

  it('a stream that ends without starting leaves the pending count', () => {
    const { admission: a } = admission(5);
    const stream = a.openStream();
    expect(stream.ended()).toBe(true);
    expect(stream.ended()).toBe(false);
    expect([a.pendingStreams, a.startedCalls]).toEqual([0, 0]);
  });
});
