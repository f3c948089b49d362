/**
 * Losing the upstream mid-call in CallSession: the backoff, what the new session is told (the
 * conversation, owed answers, tool results, buffered caller audio) and what it is not.
 */
import { describe, expect, it } from 'vitest';
import type { AgentConfig, HttpTool } from '../../src/config.js';
import type { SessionAction } from '../../src/call/session.js';
import { MAX_RESEED_ENTRIES } from '../../src/call/session.js';
import { SessionHarness, defaultAgentConfig, LOOKUP_TOOL } from '../support/session-harness.js';

const SILENCE_20MS_MULAW = Buffer.alloc(160, 0xff).toString('base64');

const LOOKUP: HttpTool = LOOKUP_TOOL;

function plain(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return defaultAgentConfig({ greeting: null, idle: null, ...overrides });
}

function metrics(out: SessionAction[]): unknown[] {
  return out.flatMap((a) => (a.kind === 'metric' ? [a.event] : []));
}

function lose(h: SessionHarness): SessionAction[] {
  return h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
}

function seededTexts(h: SessionHarness, since: number): string[] {
  return h.toRealtime(since).flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' ? [partText(e.item.content[0])] : []));
}

function partText(part: unknown): string {
  return typeof part === 'object' && part !== null && 'text' in part && typeof part.text === 'string' ? part.text : '';
}

describe('reconnect metrics', () => {
  it('the first open is no reconnect; reopening after a loss counts one that succeeded', () => {
    const h = new SessionHarness(plain());
    h.sendStart();
    expect(metrics(h.feed({ kind: 'upstream-open' }))).toEqual([]);
    lose(h);
    expect(metrics(h.feed({ kind: 'upstream-open' }))).toEqual([{ name: 'reconnect', outcome: 'ok' }]);
    // recovered: a later failure before any open is a fresh loss, counted again only once reopened
    lose(h);
    expect(metrics(h.feed({ kind: 'upstream-open' }))).toEqual([{ name: 'reconnect', outcome: 'ok' }]);
  });

  it('giving up while recovering from a loss counts one reconnect that failed; giving up the first connection counts none', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    lose(h);
    const failed: unknown[] = [];
    for (let i = 0; i < 10 && !h.session.isEnded; i++) failed.push(...metrics(lose(h)));
    expect(failed).toEqual([{ name: 'reconnect', outcome: 'failed' }]);
    expect(h.session.endReason).toBe('upstream-failed');

    const first = new SessionHarness(plain());
    first.sendStart();
    const none: unknown[] = [];
    for (let i = 0; i < 10 && !first.session.isEnded; i++) none.push(...metrics(lose(first)));
    expect(none).toEqual([]);
    expect(first.session.endReason).toBe('upstream-failed');
  });
});

describe('backoff', () => {
  it('a session that lived just under the healthy time keeps climbing the backoff', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    h.advance(4999);
    expect(lose(h).find((a) => a.kind === 'connect-upstream')).toEqual({ kind: 'connect-upstream', attempt: 2, delayMs: 250 });
  });

  it('a session that lived the healthy time starts afresh at an immediate attempt 1', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    h.advance(5000);
    expect(lose(h).find((a) => a.kind === 'connect-upstream')).toEqual({ kind: 'connect-upstream', attempt: 1, delayMs: 0 });
  });

  it('a close when no upstream is open or connecting (after giving up) does nothing', () => {
    const h = new SessionHarness(plain());
    // before start the upstream is idle
    expect(lose(h)).toEqual([]);
  });
});

describe('what a lost session takes with it', () => {
  it('nothing audible: no clear is sent to Twilio', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 200);
    h.advance(6000);
    const before = h.mark();
    lose(h);
    expect(h.toTwilio(before)).toEqual([]);
  });

  it('an answer cut by the loss is asked for again with its own purpose on the new session, once', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Hi there.' }, idle: null }));
    h.startCall();
    h.sessionUpdated();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
    h.responseCreated('resp_g');
    h.itemAdded('resp_g', 'item_g');
    lose(h);
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['greeting']);
    // a further loss before anything was created owes the same again, not twice
    lose(h);
    const before2 = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(h.creates(before2).map((c) => c.purpose)).toEqual(['greeting']);
  });

  it('caller audio buffered during one reconnect is sent once, not again after the next', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    lose(h);
    h.callerMedia(SILENCE_20MS_MULAW);
    h.callerMedia(SILENCE_20MS_MULAW);
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const appends = (since: number) => h.actions.slice(since).filter(({ action }) => action.kind === 'send-realtime' && action.event.type === 'input_audio_buffer.append').length;
    expect(appends(before)).toBe(2);
    h.advance(6000);
    lose(h);
    const before2 = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(appends(before2)).toBe(0);
  });

  it('a tool still running when the session died: its result reaches the new session as a note, and is answered', () => {
    const h = new SessionHarness(plain({ tools: [LOOKUP] }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', 'lookup_order', '{}');
    h.responseDone('resp_1');
    expect(h.actionsOf('run-tool')).toHaveLength(1);
    h.advance(6000);
    lose(h);
    h.feed({ kind: 'upstream-open' });
    const before = h.mark();
    h.toolResult('call_1', { ok: true, output: 'order 42 shipped' });
    const events = h.toRealtime(before);
    // never a function_call_output for a call the new session does not know
    expect(events.filter((e) => e.type === 'conversation.item.create' && e.item.type === 'function_call_output')).toEqual([]);
    const notes = events.flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' && e.item.role === 'system' ? [partText(e.item.content[0])] : []));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain('order 42 shipped');
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['tool-output']);
  });
});

describe('re-seeding', () => {
  it('leaves out words never transcribed, and sends user and assistant entries in their own shapes', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    // committed but never transcribed: a placeholder that must not reach the new session
    h.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u0', previous_item_id: null });
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 100);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'hello there' });
    h.realtime({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_u1', content_index: 0, transcript: 'a question' });
    h.advance(6000);
    lose(h);
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const creates = h.toRealtime(before).filter((e) => e.type === 'conversation.item.create');
    expect(creates).toEqual([
      { type: 'conversation.item.create', item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'hello there' }] } },
      { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a question' }] } },
    ]);
  });

  it('a committed turn is placed once, and not at all without transcription', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    h.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u1', previous_item_id: null });
    h.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u1', previous_item_id: null });
    expect(h.session.transcript).toEqual([{ role: 'user', itemId: 'item_u1', text: '' }]);

    const none = new SessionHarness(plain({ transcriptionModel: null }));
    none.startCall();
    none.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u1', previous_item_id: null });
    expect(none.session.transcript).toEqual([]);
  });

  it('re-seeds only the most recent entries', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    for (let i = 0; i < MAX_RESEED_ENTRIES + 5; i++) {
      h.realtime({ type: 'conversation.item.input_audio_transcription.completed', item_id: `item_u${i}`, content_index: 0, transcript: `words ${i}` });
    }
    h.advance(6000);
    lose(h);
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const texts = seededTexts(h, before);
    expect(texts).toHaveLength(MAX_RESEED_ENTRIES);
    expect(texts[0]).toBe('words 5');
    expect(texts.at(-1)).toBe(`words ${MAX_RESEED_ENTRIES + 4}`);
  });

  it('the kept transcript is bounded for calls that last hours: the oldest entries go', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    for (let i = 0; i < 205; i++) {
      h.realtime({ type: 'conversation.item.input_audio_transcription.completed', item_id: `item_u${i}`, content_index: 0, transcript: `w${i}` });
    }
    expect(h.session.transcript).toHaveLength(200);
    expect(h.session.transcript[0]?.text).toBe('w5');
  });

  it('an empty transcription removes the entry; a repeated one replaces it in place', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    const done = (id: string, transcript: string) => h.realtime({ type: 'conversation.item.input_audio_transcription.completed', item_id: id, content_index: 0, transcript });
    done('item_u1', 'first');
    done('item_u2', 'second');
    done('item_u1', 'first again');
    expect(h.session.transcript.map((t) => t.text)).toEqual(['first again', 'second']);
    done('item_u1', '');
    expect(h.session.transcript.map((t) => t.text)).toEqual(['second']);
    done('item_u9', '');
    expect(h.session.transcript.map((t) => t.text)).toEqual(['second']);
  });
});

describe('a caller back from a failed transfer', () => {
  function resumed(transcript: Array<{ role: 'user' | 'assistant'; itemId: string; text: string }>): SessionHarness {
    return new SessionHarness(defaultAgentConfig({ idle: null }), { resumeFor: () => ({ transcript, transferFailed: { to: '+15550001111', status: 'busy' } }) });
  }

  it('with no conversation to resume: nothing re-seeded, but the model is told and answers, without a greeting', () => {
    const h = resumed([]);
    h.startCall();
    const events = h.toRealtime();
    expect(events.map((e) => e.type)).toEqual(['session.update', 'conversation.item.create', 'response.create']);
    const note = events[1];
    expect(note?.type === 'conversation.item.create' && note.item.type === 'message' ? note.item.role : null).toBe('system');
    expect(h.creates().map((c) => c.purpose)).toEqual(['transfer-failed']);
    h.sessionUpdated();
    h.fullResponse('resp_1', 'item_a', 200);
    h.advance(1000);
    // never the greeting: the caller was already greeted before the transfer
    expect(h.creates().map((c) => c.purpose)).toEqual(['transfer-failed']);
  });

  it('resumes only the most recent entries of a long conversation', () => {
    const entries = Array.from({ length: MAX_RESEED_ENTRIES + 3 }, (_, i) => ({ role: 'user' as const, itemId: `u${i}`, text: `t${i}` }));
    const h = resumed(entries);
    h.startCall();
    const texts = seededTexts(h, 0).filter((t) => t.startsWith('t'));
    expect(texts).toHaveLength(MAX_RESEED_ENTRIES);
    expect(texts[0]).toBe('t3');
    expect(h.session.transcript).toHaveLength(MAX_RESEED_ENTRIES);
  });

  it('the note is told once: a later reconnect re-seeds but does not repeat it or ask again', () => {
    const h = resumed([{ role: 'user', itemId: 'u1', text: 'get me sales' }]);
    h.startCall();
    h.responseCreated('resp_1');
    h.responseDone('resp_1');
    h.advance(6000);
    lose(h);
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const events = h.toRealtime(before);
    expect(events.filter((e) => e.type === 'conversation.item.create' && e.item.type === 'message' && e.item.role === 'system')).toEqual([]);
    expect(h.creates(before)).toEqual([]);
    expect(seededTexts(h, before)).toEqual(['get me sales']);
  });
});
