/**
 * Edge cases of CallSession that a one-line change would break: events the session ignores,
 * the apology after giving up, the pre-open buffer's bound, repeated configuration.
 */
import { describe, expect, it } from 'vitest';
import type { RealtimeServerEvent } from '../../src/realtime/events.js';
import type { FallbackAudio } from '../../src/call/fallback-audio.js';
import type { SessionAction } from '../../src/call/session.js';
import { FAREWELL_MARK } from '../../src/call/upstream-fallback.js';
import { STREAM_SID, SessionHarness, defaultAgentConfig } from '../support/session-harness.js';
import type { ServerEventInput } from '../support/session-harness.js';

const AUDIO: FallbackAudio = {
  holdTone: Buffer.alloc(400, 0x11).toString('base64'),
  apology: Buffer.alloc(4000, 0x22).toString('base64'),
  apologyMs: 500,
};

function nonLog(actions: SessionAction[]): SessionAction[] {
  return actions.filter((a) => a.kind !== 'log');
}

describe('server events the session has nothing to do with', () => {
  const ignored = [
    { type: 'session.created', session: {} },
    { type: 'input_audio_buffer.cleared' },
    { type: 'conversation.item.added', item: { id: 'i1', type: 'message', role: 'user', content: [] } },
    { type: 'conversation.item.done', item: { id: 'i1', type: 'message', role: 'user', content: [] } },
    { type: 'conversation.item.created', item: { id: 'i1', type: 'message', role: 'user', content: [] } },
    { type: 'conversation.item.deleted', item_id: 'i1' },
    { type: 'conversation.item.truncated', item_id: 'i1', content_index: 0, audio_end_ms: 10 },
    { type: 'response.function_call_arguments.delta', response_id: 'r', item_id: 'i', output_index: 0, call_id: 'c', delta: '{' },
    { type: 'response.function_call_arguments.done', response_id: 'r', item_id: 'i', output_index: 0, call_id: 'c', arguments: '{}' },
    { type: 'response.content_part.added', response_id: 'r', item_id: 'i', output_index: 0, content_index: 0, part: { type: 'audio' } },
    { type: 'response.content_part.done', response_id: 'r', item_id: 'i', output_index: 0, content_index: 0, part: { type: 'audio' } },
    { type: 'rate_limits.updated', rate_limits: [] },
  ];

  it.each(ignored.map((e) => [e.type, e]))('%s is accepted and changes nothing', (_type, event) => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }));
    h.startCall();
    const out = h.realtime(event as unknown as ServerEventInput);
    expect(nonLog(out)).toEqual([]);
    expect(h.session.isEnded).toBe(false);
  });

  it('an event of a type the session does not know is accepted as "other"', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }));
    h.startCall();
    const out = h.feed({ kind: 'realtime', event: { type: 'other', event_id: 'e1' } as unknown as RealtimeServerEvent });
    expect(nonLog(out)).toEqual([]);
  });

  it('a transcript delta for an item the session does not track is ignored', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }));
    h.startCall();
    expect(() => h.realtime({ type: 'response.output_audio_transcript.delta', response_id: 'r', item_id: 'nope', output_index: 0, content_index: 0, delta: 'hi' })).not.toThrow();
    expect(h.session.transcript).toEqual([]);
  });
});

describe('after giving up on the upstream', () => {
  function givingUpMidAnswer(): SessionHarness {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }), { fallbackAudio: AUDIO });
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 3000); // marks queued in Twilio's buffer
    h.advance(500);
    for (let i = 0; i < 10 && h.actionsOf('close-upstream').length === 0; i++) h.feed({ kind: 'upstream-closed', code: 1006, reason: 'gone' });
    return h;
  }

  it('marks of the cleared answer echoed during the apology do not end the call early; the apology\'s own mark does', () => {
    const h = givingUpMidAnswer();
    h.flushImmediateEchoes(); // the answer's marks, echoed at once by the clear
    expect(h.markEchoes.some((e) => e.name !== FAREWELL_MARK)).toBe(true);
    expect(h.session.isEnded).toBe(false);
    h.advance(AUDIO.apologyMs);
    expect(h.session.endReason).toBe('upstream-failed');
  });

  it('a close of the abandoned upstream connection starts no new attempt', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }), { fallbackAudio: AUDIO });
    h.sendStart();
    h.feed({ kind: 'timer', timer: 'connect-deadline' });
    expect(h.actionsOf('close-upstream')).toHaveLength(1);
    const out = h.feed({ kind: 'upstream-closed', code: 1000, reason: 'closed by us' });
    expect(nonLog(out)).toEqual([]);
  });

  it('a key pressed during the apology does nothing', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }), { fallbackAudio: AUDIO });
    h.sendStart();
    h.feed({ kind: 'timer', timer: 'connect-deadline' });
    expect(nonLog(h.dtmf('5'))).toEqual([]);
  });
});

describe('the pre-open buffer', () => {
  it('keeps a single frame longer than the bound rather than nothing', () => {
    const h = new SessionHarness(defaultAgentConfig({ maxBufferedInboundMs: 10 }));
    h.sendStart();
    h.callerMedia(Buffer.alloc(160, 0xff).toString('base64')); // 20 ms
    h.feed({ kind: 'upstream-open' });
    expect(h.actionsOf('send-realtime').filter((a) => a.event.type === 'input_audio_buffer.append')).toHaveLength(1);
  });
});

describe('reconnected sessions', () => {
  it('reopening after a loss does not touch the start timers again', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }));
    h.startCall();
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const out = nonLog(h.feed({ kind: 'upstream-open' }));
    expect(out.filter((a) => a.kind === 'clear-timer' || a.kind === 'set-timer')).toEqual([]);
  });

  it('a session opened late in the call and lost before it was healthy keeps climbing the backoff', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }));
    h.sendStart();
    h.advance(1000);
    h.feed({ kind: 'upstream-open' }); // opened at 1000 ms
    h.advance(4999);
    const out = h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    expect(out.find((a) => a.kind === 'connect-upstream')).toEqual({ kind: 'connect-upstream', attempt: 2, delayMs: 250 });
  });

  it('a greeting already heard is not said again when a new session is configured', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Hello.' }, idle: null }));
    h.startCall();
    h.sessionUpdated();
    h.fullResponse('resp_g', 'item_g', 300);
    h.advance(6000);
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    h.feed({ kind: 'upstream-open' });
    h.sessionUpdated();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
  });

  it('a duplicate output_item.added does not forget the audio already produced', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 500);
    h.itemAdded('resp_1', 'item_a');
    h.advance(300);
    const before = h.mark();
    h.speechStarted();
    expect(h.toRealtime(before).find((e) => e.type === 'conversation.item.truncate')).toMatchObject({ item_id: 'item_a', audio_end_ms: 300 });
  });
});

describe('a caller back from a failed transfer, with the agent awaited', () => {
  it('is never greeted, even once the transfer-failed answer is done', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }), {
      awaitAgent: true,
      resumeFor: () => ({ transcript: [], transferFailed: { to: '+15550001111', status: 'busy' } }),
    });
    h.sendStart();
    h.feed({ kind: 'agent-resolved', agent: defaultAgentConfig({ greeting: { text: 'Hello!' }, idle: null }), profile: 'p' });
    h.feed({ kind: 'upstream-open' });
    h.sessionUpdated();
    h.fullResponse('resp_1', 'item_a', 200);
    h.advance(1000);
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['transfer-failed', 'answer']);
  });
});

describe('tool call records', () => {
  it('are exposed for reports, one per call run', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null, tools: [{ type: 'end_call' }] }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_f', 'call_1', 'end_call', '{}');
    expect(h.session.toolCalls.map((r) => ({ name: r.name, callId: r.callId }))).toEqual([{ name: 'end_call', callId: 'call_1' }]);
  });
});

describe('stream checks on marks', () => {
  it('a mark for our stream is accepted', () => {
    const h = SessionHarness.answering();
    const out = h.feed({ kind: 'twilio', message: { event: 'mark', sequenceNumber: '9', streamSid: STREAM_SID, mark: { name: 'unknown-mark' } } });
    expect(nonLog(out)).toEqual([]);
    expect(h.session.isEnded).toBe(false);
  });
});

describe('call control waits for everything', () => {
  const LOOKUP = { type: 'http' as const, name: 'lookup_order', description: 'Look up', parameters: { type: 'object', properties: {} }, url: 'http://127.0.0.1:1/x', timeoutMs: 5000 };

  it('an end_call beside a failing call in the same response still ends the call', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null, tools: [{ type: 'end_call' }] }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_f1', 'call_1', 'end_call', '{}');
    h.functionCall('resp_1', 'item_f2', 'call_2', 'no_such_tool', '{}');
    h.responseDone('resp_1');
    h.fullResponse('resp_2', 'item_bye', 300);
    h.advance(400);
    expect(h.session.endReason).toBe('agent-ended');
  });

  it('does not hang up while a tool of the call is still running', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null, tools: [{ type: 'end_call' }, LOOKUP] }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_f1', 'call_1', 'end_call', '{}');
    h.functionCall('resp_1', 'item_f2', 'call_2', 'lookup_order', '{}');
    h.responseDone('resp_1');
    h.advance(5000);
    expect(h.session.isEnded).toBe(false);
    h.toolResult('call_2', { ok: true, output: 'done' });
    h.fullResponse('resp_2', 'item_bye', 300);
    h.advance(400);
    expect(h.session.endReason).toBe('agent-ended');
  });

  it('the fallback timer armed while the goodbye plays is cleared once it was heard', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null, tools: [{ type: 'end_call' }] }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_f1', 'call_1', 'end_call', '{}');
    h.responseDone('resp_1');
    h.fullResponse('resp_2', 'item_bye', 300);
    expect(h.timers.has('control')).toBe(true);
    h.advance(400);
    expect(h.actionsOf('clear-timer')).toContainEqual({ kind: 'clear-timer', timer: 'control' });
  });
});

describe('idle without a keypad', () => {
  it('a call with dtmf off still goes idle and checks in', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, dtmf: null, idle: { reminderAfterMs: 3000, maxReminders: 1 } }));
    h.startCall();
    h.advance(3000);
    expect(h.creates().map((c) => c.purpose)).toEqual(['reminder']);
  });
});

describe('a machine\'s verdict', () => {
  const VM = 'Please call us back.';
  function detecting(): SessionHarness {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Hi.' }, idle: null, voicemail: VM }), { amdPending: () => true });
    h.startCall();
    h.sessionUpdated();
    return h;
  }

  it('with nothing said yet: no clear, no interruption, just the voicemail', () => {
    const h = detecting();
    const before = h.mark();
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    expect(h.toTwilio(before)).toEqual([]);
    expect(h.session.interruptions).toEqual([]);
    expect(h.creates().map((c) => c.purpose)).toEqual(['voicemail']);
  });

  it('with an answer asked for but not yet created: it is cancelled as soon as it exists', () => {
    const h = detecting();
    h.speechStarted();
    h.speechStopped(); // the machine's "hello": the greeting is asked for
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    h.responseCreated('resp_1');
    expect(h.toRealtime().filter((e) => e.type === 'response.cancel')).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
  });

  it('with an answer generating but not yet heard: it is cancelled by its id', () => {
    const h = detecting();
    h.speechStarted();
    h.speechStopped();
    h.responseCreated('resp_1');
    const before = h.mark();
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    expect(h.toRealtime(before).filter((e) => e.type === 'response.cancel')).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
  });
});

describe('the heard share of words', () => {
  it('counts words, not the spaces around them', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 1000);
    h.advance(500);
    h.speechStarted();
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: '  one  two three   four ' });
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'one two' }]);
  });

  it('a greeting of which a single millisecond was heard is not said again', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Welcome.' }, idle: null }));
    h.startCall();
    h.sessionUpdated();
    h.responseCreated('resp_g');
    h.itemAdded('resp_g', 'item_g');
    h.delta('resp_g', 'item_g', 500);
    h.advance(1);
    h.speechStarted();
    h.responseDone('resp_g', 'cancelled');
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'answer']);
  });
});

describe('only a greeting cut before a word was heard is owed again', () => {
  it('an answer cut before any of it was heard is followed by an answer, not by the greeting', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Welcome.' }, idle: null }));
    h.startCall();
    h.sessionUpdated();
    h.fullResponse('resp_g', 'item_g', 300);
    h.advance(1000);
    h.speechStopped();
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    h.speechStarted(); // nothing of the answer heard yet
    h.responseDone('resp_1', 'cancelled');
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'answer', 'answer']);
  });
});

describe('more barge-in details', () => {
  it('an item heard in full while its response still runs is not truncated by a barge-in', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 300);
    h.audioDone('resp_1', 'item_a');
    h.advance(1000); // all heard; resp_1 not done yet
    const before = h.mark();
    h.speechStarted();
    const events = h.toRealtime(before);
    expect(events.filter((e) => e.type === 'response.cancel')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'conversation.item.truncate')).toEqual([]);
  });

  it('an answer already done but not yet heard at all is deleted at once when the caller barges in', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 1000);
    const before = h.mark();
    h.speechStarted(); // same instant: nothing heard
    expect(h.toRealtime(before)).toContainEqual({ type: 'conversation.item.delete', item_id: 'item_a' });
  });

  it('an item barged into after a single millisecond is truncated at 1 ms, not deleted', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 500);
    h.advance(1);
    const before = h.mark();
    h.speechStarted();
    expect(h.toRealtime(before).filter((e) => e.type === 'conversation.item.truncate')).toEqual([
      { type: 'conversation.item.truncate', item_id: 'item_a', content_index: 0, audio_end_ms: 1 },
    ]);
  });

  it('an earlier answer heard in full is never deleted when a later, cancelled response is done', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 1000); // done while still playing
    h.advance(1200);
    h.speechStarted();
    h.speechStopped();
    h.responseCreated('resp_2');
    h.speechStarted(); // cancels resp_2
    const before = h.mark();
    h.responseDone('resp_2', 'cancelled');
    expect(h.toRealtime(before).filter((e) => e.type === 'conversation.item.delete')).toEqual([]);
  });

  it('an item never announced, truncated at the barge-in, is not deleted when its response is done', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.delta('resp_1', 'item_z', 500);
    h.advance(100);
    h.speechStarted();
    const before = h.mark();
    h.responseDone('resp_1', 'cancelled');
    expect(h.toRealtime(before).filter((e) => e.type === 'conversation.item.delete')).toEqual([]);
  });

  it('an item never announced has no words to keep when the upstream dies', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.delta('resp_1', 'item_z', 1000);
    h.advance(500);
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    expect(h.session.transcript).toEqual([]);
  });

  it('output_audio.done for an item with no audio streamed is harmless', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    expect(() => h.audioDone('resp_1', 'item_a')).not.toThrow();
    expect(h.toTwilio()).toEqual([]);
  });
});

describe('transcript entries', () => {
  it('the transcript of an item being played is the assistant\'s', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.delta('resp_1', 'item_a', 200);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'hello' });
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'hello' }]);
  });

  it('every committed caller turn gets its place, not only the first', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u1', previous_item_id: null });
    h.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u2', previous_item_id: 'item_u1' });
    expect(h.session.transcript.map((t) => t.itemId)).toEqual(['item_u1', 'item_u2']);
  });
});
