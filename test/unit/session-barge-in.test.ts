/**
 * Barge-in edge cases in CallSession: what is cancelled, truncated and deleted, and when a
 * second barge-in is no barge-in at all.
 */
import { describe, expect, it } from 'vitest';
import type { RealtimeClientEvent } from '../../src/realtime/events.js';
import { SessionHarness, defaultAgentConfig } from '../support/session-harness.js';

function ofType(events: RealtimeClientEvent[], type: RealtimeClientEvent['type']): RealtimeClientEvent[] {
  return events.filter((e) => e.type === type);
}

describe('barge-in', () => {
  it('at the barge-in, only the item being heard is truncated; an earlier item heard in full is not', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 200);
    h.audioDone('resp_1', 'item_a');
    h.itemAdded('resp_1', 'item_b');
    h.delta('resp_1', 'item_b', 1000);
    h.advance(500);
    const before = h.mark();
    h.speechStarted();
    const events = h.toRealtime(before);
    expect(ofType(events, 'conversation.item.truncate').map((e) => (e.type === 'conversation.item.truncate' ? e.item_id : ''))).toEqual(['item_b']);
    expect(ofType(events, 'conversation.item.delete')).toEqual([]);
    expect(ofType(events, 'response.cancel')).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
  });

  it('a second barge-in while the first one\'s create is still in flight is no new interruption', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    expect(h.creates()).toHaveLength(1);
    h.speechStarted();
    expect(h.session.interruptions).toHaveLength(1);
    h.speechStopped();
    const before = h.mark();
    h.speechStarted();
    expect(h.session.interruptions).toHaveLength(1);
    expect(h.toRealtime(before)).toEqual([]);
    // the in-flight response is cancelled once, when its id is known
    h.responseCreated('resp_1');
    expect(ofType(h.toRealtime(), 'response.cancel')).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
  });

  it('speech on silence with no response is no interruption and sends nothing', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    const before = h.mark();
    h.speechStarted();
    expect(h.session.interruptions).toEqual([]);
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.toTwilio(before)).toEqual([]);
  });

  it('an answer that finished playing is not interrupted by the next turn: no clear, no truncate', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 300);
    h.advance(1000);
    const before = h.mark();
    h.speechStarted();
    expect(h.toTwilio(before)).toEqual([]);
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.session.interruptions).toEqual([]);
  });

  it('a response created after a cancel-on-create barge-in is not the greeting heard: the greeting stays owed', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Welcome.' }, idle: null }));
    h.startCall();
    h.sessionUpdated();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
    h.speechStarted(); // before response.created
    h.responseCreated('resp_g');
    h.responseDone('resp_g', 'cancelled');
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'greeting']);
  });

  it('a greeting partly heard is not said again: the next turn gets an answer', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Welcome to Acme, how can I help?' }, idle: null }));
    h.startCall();
    h.sessionUpdated();
    h.responseCreated('resp_g');
    h.itemAdded('resp_g', 'item_g');
    h.delta('resp_g', 'item_g', 1000);
    h.advance(300);
    h.speechStarted();
    h.responseDone('resp_g', 'cancelled');
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'answer']);
  });

  it('the items of a cancelled response the caller never heard are deleted once it is done, those listed in its output too', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.speechStarted(); // nothing of item_a was produced or heard
    expect(ofType(h.toRealtime(), 'conversation.item.delete')).toEqual([]);
    const before = h.mark();
    h.responseDone('resp_1', 'cancelled', [
      { id: 'item_a', type: 'message', role: 'assistant', status: 'incomplete', content: [] },
      { id: 'item_late', type: 'message', role: 'assistant', status: 'incomplete', content: [] },
    ]);
    expect(ofType(h.toRealtime(before), 'conversation.item.delete')).toEqual([
      { type: 'conversation.item.delete', item_id: 'item_a' },
      { type: 'conversation.item.delete', item_id: 'item_late' },
    ]);
    // and only once
    const again = h.mark();
    h.responseDone('resp_1', 'cancelled');
    expect(ofType(h.toRealtime(again), 'conversation.item.delete')).toEqual([]);
  });

  it('an earlier item of the cut response that was heard in full stays when the response is done; only the item being heard is cut', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 200);
    h.audioDone('resp_1', 'item_a');
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'first sentence heard' });
    h.itemAdded('resp_1', 'item_b');
    h.delta('resp_1', 'item_b', 1000);
    h.advance(500); // item_a played to its end (its last mark came back), item_b is 300 ms in
    h.speechStarted();
    const before = h.mark();
    h.responseDone('resp_1', 'cancelled');
    expect(ofType(h.toRealtime(before), 'conversation.item.delete')).toEqual([]);
    const [record] = h.session.interruptions;
    expect(record?.deleted).toEqual([]);
    expect(record?.truncated.map((t) => t.itemId)).toEqual(['item_b']);
    expect(record?.truncated[0]?.audioEndMs).toBeGreaterThanOrEqual(290);
    expect(record?.truncated[0]?.audioEndMs).toBeLessThanOrEqual(300);
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'first sentence heard' }]);
  });

  it('an item heard in full while its response still generated stays when the cut response is done', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 200);
    h.audioDone('resp_1', 'item_a');
    h.advance(400); // all of item_a heard; resp_1 is still generating (e.g. a function call)
    h.speechStarted();
    expect(ofType(h.toRealtime(), 'response.cancel')).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
    const before = h.mark();
    h.responseDone('resp_1', 'cancelled');
    expect(ofType(h.toRealtime(before), 'conversation.item.delete')).toEqual([]);
    expect(h.session.interruptions[0]?.deleted).toEqual([]);
    expect(h.session.interruptions[0]?.truncated).toEqual([]);
  });

  it('a truncated item is not deleted when its cancelled response is done', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 500);
    h.advance(200);
    h.speechStarted();
    const before = h.mark();
    h.responseDone('resp_1', 'cancelled');
    expect(ofType(h.toRealtime(before), 'conversation.item.delete')).toEqual([]);
  });

  it('a done response that was not interrupted deletes nothing', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 100);
    const before = h.mark();
    h.realtime({
      type: 'response.done',
      response: { id: 'resp_1', object: 'realtime.response', status: 'completed', output: [{ id: 'item_a', type: 'message', role: 'assistant', status: 'completed', content: [] }] },
    });
    expect(ofType(h.toRealtime(before), 'conversation.item.delete')).toEqual([]);
  });

  it('a benign cancel error while our create is in flight does not forget it: still one response at a time', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    const create = h.toRealtime().find((e) => e.type === 'response.create');
    const eventId = create?.type === 'response.create' ? create.event_id : undefined;
    h.realtime({ type: 'error', error: { type: 'invalid_request_error', code: 'response_cancel_not_active', message: 'no active response', event_id: eventId ?? null } });
    h.speechStarted();
    h.speechStopped();
    expect(h.creates()).toHaveLength(1);
  });
});

describe('the heard share of the agent\'s words', () => {
  it('a transcript that arrives after the item was cut keeps only the heard share', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 1000);
    h.advance(500);
    h.speechStarted();
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'one two three four' });
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'one two' }]);
  });

  it('a transcript of an item no longer tracked is kept whole', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_x', item_id: 'item_x', output_index: 0, content_index: 0, transcript: 'all of it' });
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_x', text: 'all of it' }]);
  });

  it('the words so far are kept as they grow, and cut at the heard share when the upstream dies', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 1000);
    for (const w of ['alpha ', 'beta ', 'gamma ', 'delta']) h.realtime({ type: 'response.output_audio_transcript.delta', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, delta: w });
    h.advance(750);
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'alpha beta gamma' }]);
  });

  it('nothing heard of a cut item leaves no words of it', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 1000);
    h.realtime({ type: 'response.output_audio_transcript.delta', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, delta: 'hello there' });
    h.speechStarted();
    expect(h.session.transcript).toEqual([]);
  });
});

describe('words the caller never heard', () => {
  it('an item the server added after the cancel, never played, leaves no words behind when the upstream dies', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 500);
    h.advance(100);
    h.speechStarted(); // resp_1 cancelled
    h.itemAdded('resp_1', 'item_late');
    h.delta('resp_1', 'item_late', 300); // dropped: its response was cancelled
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_late', output_index: 1, content_index: 0, transcript: 'words never heard' });
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    expect(h.session.transcript.map((t) => t.text)).not.toContain('words never heard');
  });

  it('an item the server added after the cancel loses its words with it when the response is done, and they are never re-seeded', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 500);
    h.advance(100);
    h.speechStarted(); // resp_1 cancelled
    h.itemAdded('resp_1', 'item_late');
    h.delta('resp_1', 'item_late', 300); // dropped: its response was cancelled
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_late', output_index: 1, content_index: 0, transcript: 'words never heard' });
    expect(h.session.transcript.map((t) => t.text)).not.toContain('words never heard');
    const before = h.mark();
    h.responseDone('resp_1', 'cancelled');
    expect(h.toRealtime(before)).toContainEqual({ type: 'conversation.item.delete', item_id: 'item_late' });
    expect(h.session.transcript.map((t) => t.text)).not.toContain('words never heard');
    h.advance(6000);
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const reopened = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(JSON.stringify(h.toRealtime(reopened))).not.toContain('words never heard');
  });

  it('an item cut before any of its audio arrived keeps none of the transcript that came first', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'early words' });
    h.speechStarted(); // resp_1 cancelled; nothing of item_a was produced, let alone heard
    expect(h.session.transcript).toEqual([]);
    h.responseDone('resp_1', 'cancelled');
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const reopened = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(JSON.stringify(h.toRealtime(reopened))).not.toContain('early words');
  });
});
