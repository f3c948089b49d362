/**
 * Tool calls, hang-up, transfer and idle check-ins in CallSession: what runs, what the model is
 * told, when the call's end or handoff is carried out, and when the idle timer may run.
 */
import { describe, expect, it } from 'vitest';
import type { AgentConfig, HttpTool } from '../../src/config.js';
import type { SessionAction } from '../../src/call/session.js';
import { CONTROL_MARK_GRACE_MS } from '../../src/call/call-control.js';
import { CALL_SID, STREAM_SID, SessionHarness, defaultAgentConfig, LOOKUP_TOOL } from '../support/session-harness.js';

const LOOKUP: HttpTool = LOOKUP_TOOL;
const TRACK: HttpTool = { ...LOOKUP, name: 'track_parcel', url: 'http://127.0.0.1:1/track' };

function agent(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return defaultAgentConfig({
    greeting: null,
    tools: [{ type: 'end_call' }, { type: 'transfer_call', to: '+15550001111' }, LOOKUP, TRACK],
    dtmf: { timeoutMs: 2000, terminator: '#', maxDigits: 4 },
    idle: null,
    ...overrides,
  });
}

const configured = (config: AgentConfig = agent()): SessionHarness => SessionHarness.configured(config);

const speak = (h: SessionHarness, id: string, itemId: string, ms: number): void => h.fullResponse(id, itemId, ms);

/** The caller's turn ends and resp_1 answers it with one call (call_1, item item_f1) of `name`; the response stays open. */
function turnAnsweredWithCall(h: SessionHarness, name: string, args = '{}'): void {
  h.speechStopped();
  h.responseCreated('resp_1');
  h.functionCall('resp_1', 'item_f1', 'call_1', name, args);
}

function toolMetrics(h: SessionHarness): unknown[] {
  return h.actionsOf('metric').flatMap((m) => (m.event.name === 'tool-call' ? [m.event] : []));
}

function outputs(h: SessionHarness, since = 0): Array<{ call_id: string; output: string }> {
  return h.toRealtime(since).flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'function_call_output' ? [{ call_id: e.item.call_id, output: e.item.output }] : []));
}

function systemNotes(h: SessionHarness, since = 0): string[] {
  return h.toRealtime(since).flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' && e.item.role === 'system' ? [partText(e.item.content[0])] : []));
}

function partText(part: unknown): string {
  return typeof part === 'object' && part !== null && 'text' in part && typeof part.text === 'string' ? part.text : '';
}

describe('http tools', () => {
  it('runs with the parsed arguments; the answer waits until every running call of the response has its output', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.now = 100;
    h.functionCall('resp_1', 'item_f1', 'call_1', 'lookup_order', '{"order":"42"}');
    h.functionCall('resp_1', 'item_f2', 'call_2', 'track_parcel', '');
    h.responseDone('resp_1');
    expect(h.actionsOf('run-tool')).toEqual([
      { kind: 'run-tool', callId: 'call_1', tool: LOOKUP, arguments: { order: '42' } },
      { kind: 'run-tool', callId: 'call_2', tool: TRACK, arguments: {} },
    ]);
    const before = h.mark();
    h.now = 400;
    h.toolResult('call_1', { ok: true, output: 'shipped' });
    expect(outputs(h, before)).toEqual([{ call_id: 'call_1', output: 'shipped' }]);
    expect(h.creates(before)).toEqual([]);
    h.now = 600;
    h.toolResult('call_2', { ok: false, error: 'timeout' });
    expect(outputs(h, before).map((o) => o.call_id)).toEqual(['call_1', 'call_2']);
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['tool-output']);
    expect(toolMetrics(h)).toEqual([
      { name: 'tool-call', kind: 'http', ok: true, durationMs: 300 },
      { name: 'tool-call', kind: 'http', ok: false, durationMs: 500 },
    ]);
  });

  it('a result for a call that is not running, or a second result for the same call, changes nothing', () => {
    const h = configured();
    turnAnsweredWithCall(h, 'lookup_order');
    h.responseDone('resp_1');
    const stray = h.mark();
    expect(h.toolResult('call_unknown', { ok: true, output: 'x' }).filter((a) => a.kind !== 'log')).toEqual([]);
    expect(h.creates(stray)).toEqual([]);
    h.toolResult('call_1', { ok: true, output: 'first' });
    const again = h.mark();
    expect(h.toolResult('call_1', { ok: true, output: 'second' }).filter((a) => a.kind !== 'log')).toEqual([]);
    expect(outputs(h, again)).toEqual([]);
  });

  it('a function call whose item did not complete is not run', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_f1', 'call_1', 'lookup_order', '{}', 'incomplete');
    expect(h.actionsOf('run-tool')).toEqual([]);
  });

  it('a completed call listed only in response.done (its own item done never came) still runs', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    const item = { id: 'item_f1', type: 'function_call' as const, call_id: 'call_1', name: 'lookup_order', arguments: '{"order":"7"}' };
    h.realtime({ type: 'response.output_item.added', response_id: 'resp_1', output_index: 0, item: { ...item, arguments: '', status: 'in_progress' } });
    h.realtime({ type: 'response.done', response: { id: 'resp_1', object: 'realtime.response', status: 'completed', output: [{ ...item, status: 'completed' }] } });
    expect(h.actionsOf('run-tool')).toEqual([{ kind: 'run-tool', callId: 'call_1', tool: LOOKUP, arguments: { order: '7' } }]);
  });

  it('calls of a response that ended unfinished are deleted from the conversation', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    const item = { id: 'item_f1', type: 'function_call' as const, call_id: 'call_1', name: 'lookup_order', arguments: '' };
    h.realtime({ type: 'response.output_item.added', response_id: 'resp_1', output_index: 0, item: { ...item, status: 'in_progress' } });
    const before = h.mark();
    h.realtime({ type: 'response.done', response: { id: 'resp_1', object: 'realtime.response', status: 'incomplete', output: [] } });
    expect(h.toRealtime(before)).toEqual([{ type: 'conversation.item.delete', item_id: 'item_f1' }]);
    expect(h.actionsOf('run-tool')).toEqual([]);
  });
});

describe('built-in tools', () => {
  it('end_call is answered at once and counted as an end_call tool; an unknown tool as unknown', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.now = 100;
    h.functionCall('resp_1', 'item_f1', 'call_1', 'end_call', '{}');
    h.functionCall('resp_1', 'item_f2', 'call_2', 'no_such_tool', '{}');
    expect(outputs(h).map((o) => o.call_id)).toEqual(['call_1', 'call_2']);
    expect(toolMetrics(h)).toEqual([
      { name: 'tool-call', kind: 'end_call', ok: true, durationMs: 0 },
      { name: 'tool-call', kind: 'unknown', ok: false, durationMs: 0 },
    ]);
  });

  it('end_call hangs up the call by its sid and ends it as agent-ended once the goodbye was heard', () => {
    const h = configured();
    turnAnsweredWithCall(h, 'end_call');
    h.responseDone('resp_1');
    speak(h, 'resp_2', 'item_bye', 300);
    expect(h.session.isEnded).toBe(false);
    h.advance(400);
    expect(h.actionsOf('hangup-call')).toEqual([{ kind: 'hangup-call', callSid: CALL_SID }]);
    expect(h.actionsOf('end-call')).toEqual([{ kind: 'end-call', reason: 'agent-ended', closeCode: 1000 }]);
  });

  it('a hang-up whose last mark never comes back is carried out after the unheard audio plus a grace, not before', () => {
    const h = configured();
    turnAnsweredWithCall(h, 'end_call');
    h.responseDone('resp_1');
    h.twilioEchoesMarks = false;
    speak(h, 'resp_2', 'item_bye', 1000);
    const timer = h.actionsOf('set-timer').filter((t) => t.timer === 'control');
    expect(timer).toHaveLength(1);
    expect(timer[0]?.delayMs).toBeGreaterThanOrEqual(1000 + CONTROL_MARK_GRACE_MS);
    expect(timer[0]?.delayMs).toBeLessThanOrEqual(1010 + CONTROL_MARK_GRACE_MS);
    h.advance(1000 + CONTROL_MARK_GRACE_MS - 20);
    expect(h.session.isEnded).toBe(false);
    h.advance(40);
    expect(h.session.endReason).toBe('agent-ended');
  });

  it('the fallback delay counts only the audio not yet heard when the goodbye finished generating', () => {
    const h = configured();
    turnAnsweredWithCall(h, 'end_call');
    h.responseDone('resp_1');
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_bye');
    for (let i = 0; i < 10; i++) h.delta('resp_2', 'item_bye', 100);
    h.advance(400);
    h.twilioEchoesMarks = false;
    h.audioDone('resp_2', 'item_bye');
    h.responseDone('resp_2');
    const timer = h.actionsOf('set-timer').filter((t) => t.timer === 'control');
    expect(timer).toHaveLength(1);
    expect(timer[0]?.delayMs).toBeGreaterThanOrEqual(600 + CONTROL_MARK_GRACE_MS);
    expect(timer[0]?.delayMs).toBeLessThanOrEqual(620 + CONTROL_MARK_GRACE_MS);
  });

  it('a control timer firing with nothing pending does nothing', () => {
    const h = configured();
    expect(h.feed({ kind: 'timer', timer: 'control' }).filter((a) => a.kind !== 'log')).toEqual([]);
    expect(h.session.isEnded).toBe(false);
  });
});

describe('transfer', () => {
  function handoffHeard(): SessionHarness {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_t', 'transfer_call', '{}');
    h.responseDone('resp_1');
    speak(h, 'resp_2', 'item_handoff', 300);
    h.advance(400);
    return h;
  }

  it('is under way once redirected: the target is known, no idle check-in runs, and the socket closing ends the call as transferred', () => {
    const h = handoffHeard();
    expect(h.actionsOf('transfer-call')).toEqual([{ kind: 'transfer-call', callSid: CALL_SID, to: '+15550001111' }]);
    expect(h.session.transferTarget).toBe('+15550001111');
    h.feed({ kind: 'transfer-result', ok: true, detail: 'redirected' });
    expect(h.session.isEnded).toBe(false);
    h.feed({ kind: 'twilio-closed', code: 1000 });
    expect(h.session.endReason).toBe('transferred');
  });

  it('a refused redirect: the model is told in a note and answers; the target is forgotten and the call goes on', () => {
    const h = handoffHeard();
    const before = h.mark();
    h.feed({ kind: 'transfer-result', ok: false, detail: 'HTTP 400' });
    expect(systemNotes(h, before)).toHaveLength(1);
    expect(systemNotes(h, before)[0]).toContain('HTTP 400');
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['transfer-failed']);
    expect(h.session.transferTarget).toBeNull();
    h.feed({ kind: 'twilio', message: { event: 'stop', sequenceNumber: '9', streamSid: STREAM_SID, stop: { accountSid: 'AC1', callSid: CALL_SID } } });
    expect(h.session.endReason).toBe('twilio-stop');
  });

  it('a transfer result with no transfer under way is ignored', () => {
    const h = configured();
    const before = h.mark();
    h.feed({ kind: 'transfer-result', ok: false, detail: 'late' });
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.creates(before)).toEqual([]);
  });

  it('a barge-in before the handoff was heard calls it off: no redirect, the model is told', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_t', 'transfer_call', '{}');
    h.responseDone('resp_1');
    speak(h, 'resp_2', 'item_handoff', 1000);
    h.advance(300);
    const before = h.mark();
    h.speechStarted();
    expect(systemNotes(h, before)).toHaveLength(1);
    h.advance(3000);
    expect(h.actionsOf('transfer-call')).toEqual([]);
  });
});

describe('idle check-ins run only when nobody is waiting for anything', () => {
  const idleAgent = (o: Partial<AgentConfig> = {}): AgentConfig => agent({ idle: { reminderAfterMs: 8000, maxReminders: 1 }, ...o });
  const idleArmed = (h: SessionHarness): boolean => h.timers.has('idle');

  it('a quiet, configured call arms the timer for the configured delay', () => {
    const h = configured(idleAgent());
    expect(h.actionsOf('set-timer').filter((t) => t.timer === 'idle')).toEqual([{ kind: 'set-timer', timer: 'idle', delayMs: 8000 }]);
  });

  it('not before the upstream is open, and not while it reconnects', () => {
    const h = new SessionHarness(idleAgent());
    h.sendStart();
    expect(idleArmed(h)).toBe(false);
    h.feed({ kind: 'upstream-open' });
    expect(idleArmed(h)).toBe(true);
    const out = h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    expect(out).toContainEqual({ kind: 'clear-timer', timer: 'idle' });
    expect(idleArmed(h)).toBe(false);
  });

  it('not while the caller is speaking', () => {
    const h = configured(idleAgent());
    h.speechStarted();
    expect(idleArmed(h)).toBe(false);
    h.advance(20_000);
    expect(h.creates()).toEqual([]);
  });

  it('not while a keypad entry is being typed', () => {
    const h = configured(idleAgent());
    h.dtmf('1');
    expect(idleArmed(h)).toBe(false);
  });

  it('not while a greeting is still owed (the session not yet configured)', () => {
    const h = new SessionHarness(idleAgent({ greeting: { text: 'Hello.' } }));
    h.startCall();
    expect(idleArmed(h)).toBe(false);
  });

  it('not while answering-machine detection waits for its verdict', () => {
    const h = new SessionHarness(idleAgent(), { amdPending: () => true });
    h.startCall();
    h.sessionUpdated();
    expect(idleArmed(h)).toBe(false);
    h.feed({ kind: 'amd-result', answeredBy: 'human' });
    expect(idleArmed(h)).toBe(true);
  });

  it('not while a transfer is being carried out', () => {
    const h = configured(idleAgent());
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_t', 'transfer_call', '{}');
    h.responseDone('resp_1');
    speak(h, 'resp_2', 'item_handoff', 300);
    h.advance(400);
    expect(h.actionsOf('transfer-call')).toHaveLength(1);
    expect(idleArmed(h)).toBe(false);
    h.advance(20_000);
    expect(h.creates().map((c) => c.purpose)).toEqual(['answer', 'tool-output']);
  });

  it('an idle timer that fires when the call is no longer idle does nothing', () => {
    const h = configured(idleAgent());
    h.speechStarted();
    const out = h.feed({ kind: 'timer', timer: 'idle' });
    expect(out.filter((a) => a.kind !== 'log')).toEqual([]);
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['answer']);
  });

  it('gives up after the last reminder with a goodbye, and hangs up as idle once it was heard', () => {
    const h = configured(idleAgent());
    h.advance(8000);
    expect(h.creates().map((c) => c.purpose)).toEqual(['reminder']);
    speak(h, 'resp_r', 'item_r', 200);
    h.advance(8300);
    expect(h.creates().map((c) => c.purpose)).toEqual(['reminder', 'goodbye']);
    speak(h, 'resp_b', 'item_b', 200);
    h.advance(300);
    expect(h.session.endReason).toBe('idle');
    expect(h.actionsOf('hangup-call')).toEqual([{ kind: 'hangup-call', callSid: CALL_SID }]);
  });
});

describe('the upstream lost while the last words play', () => {
  /** end_call (or transfer_call) decided, then `ms` of goodbye (or handoff) sent to Twilio in full. */
  function lastWordsPlaying(tool: 'end_call' | 'transfer_call', ms = 1000): SessionHarness {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', tool, '{}');
    h.responseDone('resp_1');
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_last');
    for (let sent = 0; sent < ms; sent += 100) h.delta('resp_2', 'item_last', 100);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_2', item_id: 'item_last', output_index: 0, content_index: 0, transcript: 'one two three four five six seven eight nine ten' });
    h.audioDone('resp_2', 'item_last');
    h.responseDone('resp_2');
    return h;
  }

  function lose(h: SessionHarness): void {
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
  }

  it('the goodbye already sent plays to its end and the call is hung up when its mark comes back, without a reconnect', () => {
    const h = lastWordsPlaying('end_call');
    h.advance(300);
    const before = h.mark();
    lose(h);
    expect(h.toTwilio(before)).toEqual([]); // no clear: the rest of the goodbye stays in Twilio's buffer
    expect(h.session.isEnded).toBe(false);
    expect(h.actionsOf('hangup-call')).toEqual([]);
    h.advance(650);
    expect(h.session.isEnded).toBe(false);
    h.advance(100);
    expect(h.heardMs).toBeGreaterThanOrEqual(1000);
    expect(h.actionsOf('hangup-call')).toEqual([{ kind: 'hangup-call', callSid: CALL_SID }]);
    expect(h.session.endReason).toBe('agent-ended');
    expect(h.actionsOf('connect-upstream', before)).toEqual([]);
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.session.transcript.map((t) => t.text)).toEqual(['one two three four five six seven eight nine ten']);
  });

  it('a goodbye whose mark never comes back is ended by the control timer, after the audio still unheard and a grace', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', 'end_call', '{}');
    h.responseDone('resp_1');
    h.twilioEchoesMarks = false;
    speak(h, 'resp_2', 'item_bye', 1000);
    h.advance(300);
    const before = h.mark();
    lose(h);
    expect(h.session.isEnded).toBe(false);
    h.advance(700 + CONTROL_MARK_GRACE_MS - 20);
    expect(h.session.isEnded).toBe(false);
    h.advance(40);
    expect(h.session.endReason).toBe('agent-ended');
    expect(h.actionsOf('connect-upstream', before)).toEqual([]);
    expect(h.toTwilio(before).map((m) => m.event)).toEqual([]);
  });

  it('the handoff sentence plays to its end before the redirect; a refused redirect reconnects, and the new session hears the words and the note, then answers', () => {
    const h = lastWordsPlaying('transfer_call');
    h.advance(300);
    const before = h.mark();
    lose(h);
    expect(h.toTwilio(before)).toEqual([]);
    expect(h.actionsOf('transfer-call')).toEqual([]);
    h.advance(800);
    expect(h.heardMs).toBeGreaterThanOrEqual(1000);
    expect(h.actionsOf('transfer-call')).toEqual([{ kind: 'transfer-call', callSid: CALL_SID, to: '+15550001111' }]);
    expect(h.actionsOf('connect-upstream', before)).toEqual([]);
    expect(h.toRealtime(before)).toEqual([]);
    h.feed({ kind: 'transfer-result', ok: false, detail: 'HTTP 400' });
    expect(h.toRealtime(before)).toEqual([]); // nothing sent to a dead connection
    expect(h.actionsOf('connect-upstream', before)).toHaveLength(1);
    const reopened = h.mark();
    h.feed({ kind: 'upstream-open' });
    const texts = h.toRealtime(reopened).flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' ? [partText(e.item.content[0])] : []));
    expect(texts[0]).toBe('one two three four five six seven eight nine ten');
    expect(systemNotes(h, reopened)).toHaveLength(1);
    expect(systemNotes(h, reopened)[0]).toContain('HTTP 400');
    expect(h.creates(reopened).map((c) => c.purpose)).toEqual(['transfer-failed']);
  });

  it('a redirect that goes through needs no new session: the stream closing ends the call as transferred', () => {
    const h = lastWordsPlaying('transfer_call');
    h.advance(300);
    const before = h.mark();
    lose(h);
    h.advance(800);
    h.feed({ kind: 'transfer-result', ok: true, detail: 'redirected' });
    h.feed({ kind: 'twilio-closed', code: 1000 });
    expect(h.session.endReason).toBe('transferred');
    expect(h.actionsOf('connect-upstream', before)).toEqual([]);
  });

  it('a key that calls the goodbye off stops it there; the conversation goes on on a new session, seeded with the words heard', () => {
    const h = lastWordsPlaying('end_call');
    h.advance(300);
    const before = h.mark();
    lose(h);
    h.advance(200); // half of the goodbye heard
    h.dtmf('1');
    expect(h.toTwilio(before).map((m) => m.event)).toEqual(['clear']);
    expect(h.toRealtime(before)).toEqual([]); // nothing sent to a dead connection
    expect(h.actionsOf('connect-upstream', before)).toHaveLength(1);
    h.advance(3000);
    expect(h.session.isEnded).toBe(false);
    const reopened = h.mark();
    h.feed({ kind: 'upstream-open' });
    const texts = h.toRealtime(reopened).flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' && e.item.role === 'assistant' ? [partText(e.item.content[0])] : []));
    expect(texts).toEqual(['one two three four five']);
  });

  it('a goodbye still being generated when the upstream dies is not taken as heard: it is asked for again on the new session', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', 'end_call', '{}');
    h.responseDone('resp_1');
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_bye');
    h.delta('resp_2', 'item_bye', 200);
    h.advance(100);
    const before = h.mark();
    lose(h);
    h.advance(500);
    expect(h.session.isEnded).toBe(false);
    expect(h.actionsOf('connect-upstream', before)).toHaveLength(1);
    const reopened = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(h.creates(reopened).map((c) => c.purpose)).toEqual(['tool-output']);
    speak(h, 'resp_3', 'item_bye2', 300);
    h.advance(400);
    expect(h.session.endReason).toBe('agent-ended');
  });
});

describe('system notes', () => {
  it('are not sent while no upstream session is open', () => {
    const h = configured();
    turnAnsweredWithCall(h, 'end_call');
    h.functionCall('resp_1', 'item_f2', 'call_2', 'lookup_order', '{}'); // keeps the end pending
    h.responseDone('resp_1');
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const before = h.mark();
    h.dtmf('1'); // calls the end off: no session to tell
    expect(h.toRealtime(before)).toEqual([]);
    h.feed({ kind: 'upstream-open' });
    h.toolResult('call_2', { ok: true, output: 'x' });
    h.advance(10_000);
    expect(h.session.isEnded).toBe(false);
  });

  it('are system messages with input text', () => {
    const h = configured();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_t', 'transfer_call', '{}');
    h.responseDone('resp_1');
    speak(h, 'resp_2', 'item_handoff', 1000);
    h.advance(300);
    const before = h.mark();
    h.speechStarted();
    const note = h.toRealtime(before).find((e) => e.type === 'conversation.item.create');
    expect(note).toMatchObject({ type: 'conversation.item.create', item: { type: 'message', role: 'system', content: [{ type: 'input_text' }] } });
  });
});

function nonLog(actions: SessionAction[]): SessionAction[] {
  return actions.filter((a) => a.kind !== 'log');
}

describe('keypad timer', () => {
  it('a key starts collection with the configured pause; the pause ends the entry as one user message', () => {
    const h = configured();
    const out = nonLog(h.dtmf('4'));
    expect(out).toContainEqual({ kind: 'set-timer', timer: 'keypad', delayMs: 2000 });
    h.dtmf('2');
    const before = h.mark();
    h.advance(2000);
    const msgs = h.toRealtime(before).filter((e) => e.type === 'conversation.item.create');
    expect(msgs).toHaveLength(1);
    expect(JSON.stringify(msgs[0])).toContain('42');
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['answer']);
    expect(h.session.keypadEntries).toEqual([{ atMs: 2000, digits: '42' }]);
  });

  it('a terminator clears the pause timer', () => {
    const h = configured();
    h.dtmf('7');
    const out = nonLog(h.dtmf('#'));
    expect(out).toContainEqual({ kind: 'clear-timer', timer: 'keypad' });
  });

  it('a keypad timer with nothing collected does nothing', () => {
    const h = configured();
    expect(nonLog(h.feed({ kind: 'timer', timer: 'keypad' }))).toEqual([]);
  });

  it('with dtmf off, keys do nothing at all: no barge-in, no entry', () => {
    const h = configured(agent({ dtmf: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    h.delta('resp_1', 'item_a', 1000);
    const before = h.mark();
    expect(nonLog(h.dtmf('5'))).toEqual([]);
    expect(h.toRealtime(before)).toEqual([]);
  });

  it('keeps the most recent keypad entries only', () => {
    const h = configured();
    for (let i = 0; i < 105; i++) {
      h.dtmf(String(i % 10));
      h.dtmf('#');
    }
    expect(h.session.keypadEntries).toHaveLength(100);
    expect(h.session.keypadEntries[0]?.digits).toBe('5');
  });
});
