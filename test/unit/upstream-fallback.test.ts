/**
 * A caller never sits in silence: the hold tone while the first connection is slow, the apology
 * when no model will answer, and the call's end once the apology was heard — on the fake clock.
 */
import { describe, expect, it } from 'vitest';
import { SessionHarness, defaultAgentConfig } from '../support/session-harness.js';
import type { SessionAction } from '../../src/call/session.js';
import type { FallbackAudio } from '../../src/call/fallback-audio.js';
import { loadFallbackAudio } from '../../src/call/fallback-audio.js';
import {
  FAREWELL_GRACE_MS,
  FAREWELL_MARK,
  FIRST_CONNECT_GIVE_UP_MS,
  HOLD_TONE_AFTER_MS,
  HOLD_TONE_EVERY_MS,
} from '../../src/call/upstream-fallback.js';

const AUDIO: FallbackAudio = {
  holdTone: Buffer.alloc(400, 0x11).toString('base64'),
  apology: Buffer.alloc(4000, 0x22).toString('base64'),
  apologyMs: 500,
};

function harness(): SessionHarness {
  return new SessionHarness(defaultAgentConfig(), { fallbackAudio: AUDIO });
}

/** What went to Twilio, as media payload names (tone / apology / other) and event names, with times. */
function twilioTimeline(h: SessionHarness): Array<{ atMs: number; what: string }> {
  const out: Array<{ atMs: number; what: string }> = [];
  for (const { atMs, action } of h.actions) {
    if (action.kind !== 'send-twilio') continue;
    const m = action.message;
    if (m.event === 'media') out.push({ atMs, what: m.media.payload === AUDIO.holdTone ? 'tone' : m.media.payload === AUDIO.apology ? 'apology' : 'media' });
    else if (m.event === 'mark') out.push({ atMs, what: m.mark.name === FAREWELL_MARK ? 'farewell-mark' : 'mark' });
    else out.push({ atMs, what: m.event });
  }
  return out;
}

function ofKind<K extends SessionAction['kind']>(h: SessionHarness, kind: K): Array<{ atMs: number; action: Extract<SessionAction, { kind: K }> }> {
  return h.actions.filter((a): a is { atMs: number; action: Extract<SessionAction, { kind: K }> } => a.action.kind === kind);
}

describe('a slow first connection', () => {
  it('is silent for a moment, then plays the hold tone every few seconds until the model answers', () => {
    const h = harness();
    h.sendStart();
    h.advance(HOLD_TONE_AFTER_MS - 1);
    expect(twilioTimeline(h)).toEqual([]);
    h.advance(FIRST_CONNECT_GIVE_UP_MS - HOLD_TONE_AFTER_MS);
    const expected = [];
    for (let at = HOLD_TONE_AFTER_MS; at < FIRST_CONNECT_GIVE_UP_MS; at += HOLD_TONE_EVERY_MS) expected.push({ atMs: at, what: 'tone' });
    expect(expected.length).toBeGreaterThanOrEqual(2);
    expect(twilioTimeline(h)).toEqual(expected);
  });

  it('clears the tone when the model answers, before its first words, and stops the timers', () => {
    const h = harness();
    h.sendStart();
    h.advance(2000);
    h.feed({ kind: 'upstream-open' });
    const opened = h.actions.length;
    expect(twilioTimeline(h).map((t) => t.what)).toEqual(['tone', 'clear']);
    h.advance(10_000);
    // no tone, no give-up: the call goes on
    expect(twilioTimeline(h).map((t) => t.what)).toEqual(['tone', 'clear']);
    expect(h.session.isEnded).toBe(false);
    expect(ofKind(h, 'close-upstream')).toEqual([]);
    // the greeting is asked for once the session is configured, after the clear
    expect(h.actions.slice(opened).some((a) => a.action.kind === 'send-realtime' && a.action.event.type === 'session.update')).toBe(false);
    expect(h.actions.findIndex((a) => a.action.kind === 'send-realtime' && a.action.event.type === 'session.update')).toBeGreaterThan(
      h.actions.findIndex((a) => a.action.kind === 'send-twilio' && a.action.message.event === 'clear'),
    );
  });

  it('sends no tone and no clear when the model answers in time', () => {
    const h = harness();
    h.sendStart();
    h.advance(HOLD_TONE_AFTER_MS - 100);
    h.feed({ kind: 'upstream-open' });
    h.advance(10_000);
    expect(twilioTimeline(h)).toEqual([]);
    expect(h.session.isEnded).toBe(false);
  });
});

describe('no model at all', () => {
  it('gives the first connection up in time, apologises, and ends the call once the apology was heard: all within 10 s', () => {
    const h = harness();
    h.sendStart();
    h.advance(12_000);
    const timeline = twilioTimeline(h);
    const giveUpAt = FIRST_CONNECT_GIVE_UP_MS;
    expect(timeline.filter((t) => t.atMs >= giveUpAt)).toEqual([
      { atMs: giveUpAt, what: 'clear' },
      { atMs: giveUpAt, what: 'apology' },
      { atMs: giveUpAt, what: 'farewell-mark' },
    ]);
    expect(ofKind(h, 'close-upstream')).toEqual([{ atMs: giveUpAt, action: { kind: 'close-upstream' } }]);
    // the mark came back when playback reached it: the caller heard every word
    const [end] = ofKind(h, 'end-call');
    expect(end).toEqual({ atMs: giveUpAt + AUDIO.apologyMs, action: { kind: 'end-call', reason: 'upstream-failed', closeCode: 1011 } });
    expect(ofKind(h, 'hangup-call').map((a) => a.atMs)).toEqual([giveUpAt + AUDIO.apologyMs]);
    // the real clip, with the real timings, fits the bound
    expect(FIRST_CONNECT_GIVE_UP_MS + loadFallbackAudio().apologyMs).toBeLessThanOrEqual(10_000);
  });

  it('ends the call after the apology and a grace when Twilio never echoes its mark', () => {
    const h = harness();
    h.twilioEchoesMarks = false;
    h.sendStart();
    h.advance(12_000);
    const [end] = ofKind(h, 'end-call');
    expect(end?.atMs).toBe(FIRST_CONNECT_GIVE_UP_MS + AUDIO.apologyMs + FAREWELL_GRACE_MS);
  });

  it('ignores a connection that opens after giving up, and keys pressed during the apology', () => {
    const h = harness();
    h.sendStart();
    h.advance(FIRST_CONNECT_GIVE_UP_MS + 100);
    const before = h.actions.length;
    h.feed({ kind: 'upstream-open' });
    h.dtmf('1');
    const after = h.actions.slice(before).map((a) => a.action);
    expect(after.filter((a) => a.kind === 'send-realtime' || a.kind === 'send-twilio')).toEqual([]);
    h.advance(5000);
    expect(ofKind(h, 'end-call')).toHaveLength(1);
  });

  it('gives up when every attempt failed before the deadline, and apologises the same way', () => {
    const h = harness();
    h.sendStart();
    for (let i = 0; i < 10 && ofKind(h, 'close-upstream').length === 0; i++) h.feed({ kind: 'upstream-closed', code: 1006, reason: 'refused' });
    expect(twilioTimeline(h).map((t) => t.what)).toEqual(['clear', 'apology', 'farewell-mark']);
    h.advance(AUDIO.apologyMs);
    expect(h.session.isEnded).toBe(true);
    expect(h.session.endReason).toBe('upstream-failed');
  });
});

describe('an upstream lost mid-call for good', () => {
  it('cuts the answer that was playing and apologises instead of going silent', () => {
    const h = harness();
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 3000);
    h.advance(500);
    const before = h.actions.length;
    for (let i = 0; i < 10 && ofKind(h, 'close-upstream').length === 0; i++) h.feed({ kind: 'upstream-closed', code: 1006, reason: 'gone' });
    const sent = twilioTimeline(h).filter((t) => t.atMs >= 500);
    expect(sent.map((t) => t.what).slice(-3)).toEqual(['clear', 'apology', 'farewell-mark']);
    // no hold tone mid-call: the reconnects are fast, and the apology follows at once when they fail
    expect(h.actions.slice(before).some((a) => a.action.kind === 'send-twilio' && a.action.message.event === 'media' && a.action.message.media.payload === AUDIO.holdTone)).toBe(false);
    h.advance(AUDIO.apologyMs);
    expect(h.session.endReason).toBe('upstream-failed');
  });
});

describe('the fallback clips', () => {
  it('are real audio: a short tone with silence between its pips, and a spoken apology of a few seconds', () => {
    const audio = loadFallbackAudio();
    const tone = Buffer.from(audio.holdTone, 'base64');
    expect(tone.length).toBeGreaterThan(8 * 200);
    expect(new Set(tone).size).toBeGreaterThan(20);
    expect(tone.includes(0xff)).toBe(true); // silence between the pips
    expect(audio.apologyMs).toBeGreaterThan(2000);
    expect(audio.apologyMs).toBeLessThanOrEqual(10_000 - FIRST_CONNECT_GIVE_UP_MS);
    expect(Buffer.from(audio.apology, 'base64').length).toBe(audio.apologyMs * 8);
  });
});
