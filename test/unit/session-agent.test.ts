/**
 * The phone-agent behaviour of CallSession on the fake clock: greeting, tools, end_call,
 * transfer, keypad and idle reminders, each under the interruption guarantees.
 */
import { describe, expect, it } from 'vitest';
import type { AgentConfig, HttpTool } from '../../src/config.js';
import { CALL_SID, SessionHarness, defaultAgentConfig, LOOKUP_TOOL } from '../support/session-harness.js';

const LOOKUP: HttpTool = LOOKUP_TOOL;

function agent(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return defaultAgentConfig({
    greeting: { text: 'Thanks for calling Acme.' },
    tools: [{ type: 'end_call' }, { type: 'transfer_call', to: '+15550001111' }, LOOKUP],
    dtmf: { timeoutMs: 2000, terminator: '#', maxDigits: 4 },
    idle: null,
    ...overrides,
  });
}

const configured = (config: AgentConfig = agent()): SessionHarness => SessionHarness.configured(config);

const speak = (h: SessionHarness, id: string, itemId: string, ms: number): void => h.speak(id, itemId, ms);

function realtimeErrors(h: SessionHarness): number {
  return h.actionsOf('log').filter((a) => a.msg === 'realtime error').length;
}

describe('greeting', () => {
  it('the agent speaks first once the session is configured, with the fixed text and its purpose', () => {
    const h = new SessionHarness(agent());
    h.startCall();
    const session = h.toRealtime().find((e) => e.type === 'session.update');
    expect(session?.type === 'session.update' ? session.session.tools?.map((t) => t.name) : null).toEqual(['end_call', 'transfer_call', 'lookup_order']);
    expect(session?.type === 'session.update' ? session.session.tool_choice : null).toBe('auto');
    expect(h.creates()).toEqual([]);
    h.sessionUpdated();
    expect(h.creates()).toEqual([{ purpose: 'greeting', instructions: 'Say exactly this, word for word, and nothing else: "Thanks for calling Acme."' }]);
  });

  it('generated greetings carry the configured instructions; null waits for the caller', () => {
    expect(configured(agent({ greeting: { instructions: 'Greet warmly, mention Acme.' } })).creates()).toEqual([
      { purpose: 'greeting', instructions: 'Greet warmly, mention Acme.' },
    ]);
    expect(configured(agent({ greeting: null })).creates()).toEqual([]);
  });

  it('a greeting barged into gets the full routine: cancel, clear, truncate at the heard position, then an answer', () => {
    const h = configured();
    h.responseCreated('resp_g');
    h.itemAdded('resp_g', 'item_g');
    for (let i = 0; i < 20; i++) h.delta('resp_g', 'item_g', 100); // 2 s generated, still generating
    h.advance(700);
    const before = h.mark();
    h.speechStarted();
    const sent = h.toRealtime(before);
    expect(sent[0]).toEqual({ type: 'response.cancel', response_id: 'resp_g' });
    const truncate = sent.find((e) => e.type === 'conversation.item.truncate');
    expect(truncate).toMatchObject({ item_id: 'item_g', audio_end_ms: 700 });
    expect(h.toTwilio(before).map((m) => m.event)).toContain('clear');
    h.responseDone('resp_g', 'cancelled');
    h.speechStopped();
    // Heard a part: the greeting is done, the caller's turn gets a normal answer.
    expect(h.creates(before)).toEqual([{ purpose: 'answer', instructions: undefined }]);
    expect(realtimeErrors(h)).toBe(0);
  });

  it('a caller already talking is not spoken over: no greeting until their turn ends', () => {
    const h = new SessionHarness(agent());
    h.startCall();
    h.speechStarted();
    h.sessionUpdated();
    h.advance(1500);
    expect(h.creates()).toEqual([]);
    h.speechStopped();
    expect(h.creates()).toEqual([{ purpose: 'greeting', instructions: expect.stringContaining('Thanks for calling Acme.') }]);
  });

  it('a greeting that had begun generating but was cut before a word was heard is still owed', () => {
    const h = configured();
    h.responseCreated('resp_g');
    h.itemAdded('resp_g', 'item_g');
    h.speechStarted(); // no audio sent yet: nothing heard
    h.responseDone('resp_g', 'cancelled');
    const before = h.mark();
    h.speechStopped();
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['greeting']);
  });

  it('a greeting cut before any of it was heard is still owed at the end of the turn', () => {
    const h = configured();
    h.speechStarted(); // before response.created: cancelled as soon as it has an id
    h.responseCreated('resp_g');
    h.responseDone('resp_g', 'cancelled');
    const before = h.mark();
    h.speechStopped();
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['greeting']);
  });
});

describe('tools', () => {
  it('a completed call runs once per call_id; its output goes back, then one create after response.done', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', 'lookup_order', '{"order":"42"}');
    // the server repeats the item (e.g. in response.done's output): still one run
    h.realtime({
      type: 'response.output_item.done',
      response_id: 'resp_1',
      output_index: 1,
      item: { id: 'item_fc', type: 'function_call', call_id: 'call_1', name: 'lookup_order', arguments: '{"order":"42"}', status: 'completed' },
    });
    expect(h.actionsOf('run-tool')).toEqual([{ kind: 'run-tool', callId: 'call_1', tool: LOOKUP, arguments: { order: '42' } }]);
    const before = h.mark();
    h.toolResult('call_1', { ok: true, output: '{"status":"shipped"}' });
    // the response that made the call is still active: output written, create waits
    expect(h.toRealtime(before)).toEqual([
      { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_1', output: '{"status":"shipped"}' } },
    ]);
    h.responseDone('resp_1');
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['tool-output']);
    h.toolResult('call_1', { ok: true, output: 'again' });
    expect(h.toRealtime(before).filter((e) => e.type === 'conversation.item.create')).toHaveLength(1);
  });

  it('two calls in one response: one create, after both outputs', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_a', 'call_a', 'lookup_order', '{}');
    h.functionCall('resp_1', 'item_b', 'call_b', 'lookup_order', '{}');
    h.responseDone('resp_1');
    const before = h.mark();
    h.toolResult('call_a', { ok: true, output: 'a' });
    expect(h.creates(before)).toEqual([]);
    h.toolResult('call_b', { ok: true, output: 'b' });
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['tool-output']);
  });

  it('a tool output arriving while the caller talks is written at once; the answer waits for their turn', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', 'lookup_order', '{}');
    h.responseDone('resp_1');
    h.speechStarted();
    const before = h.mark();
    h.toolResult('call_1', { ok: false, error: 'tool lookup_order timed out after 5000 ms' });
    expect(h.toRealtime(before)).toEqual([
      {
        type: 'conversation.item.create',
        item: { type: 'function_call_output', call_id: 'call_1', output: '{"error":"tool lookup_order timed out after 5000 ms"}' },
      },
    ]);
    h.advance(800);
    expect(h.creates(before)).toEqual([]);
    h.speechStopped();
    expect(h.creates(before)).toHaveLength(1);
  });

  it('a function call in a cancelled response never runs and leaves the conversation', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.speechStarted();
    h.functionCall('resp_1', 'item_fc', 'call_1', 'lookup_order', '{"order":"4', 'incomplete');
    h.responseDone('resp_1', 'cancelled', [{ id: 'item_fc', type: 'function_call', call_id: 'call_1', name: 'lookup_order', arguments: '{"order":"4', status: 'incomplete' }]);
    expect(h.actionsOf('run-tool')).toEqual([]);
    const sent = h.toRealtime();
    expect(sent.some((e) => e.type === 'conversation.item.create' && e.item.type === 'function_call_output')).toBe(false);
    expect(sent).toContainEqual({ type: 'conversation.item.delete', item_id: 'item_fc' });
  });

  it('invalid JSON arguments and unknown tools become error outputs the model can speak about', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_a', 'call_a', 'lookup_order', '{"order":');
    h.functionCall('resp_1', 'item_b', 'call_b', 'reboot_server', '{}');
    h.responseDone('resp_1');
    expect(h.actionsOf('run-tool')).toEqual([]);
    const outputs = h.toRealtime().flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'function_call_output' ? [e.item] : []));
    expect(outputs.map((o) => o.call_id)).toEqual(['call_a', 'call_b']);
    expect(JSON.parse(outputs[0]?.output ?? '')).toEqual({ error: expect.stringMatching(/^arguments are not valid JSON/) });
    expect(JSON.parse(outputs[1]?.output ?? '')).toEqual({ error: 'unknown tool "reboot_server"' });
    expect(h.session.isEnded).toBe(false);
    expect(h.creates().map((c) => c.purpose)).toEqual(['answer', 'tool-output']);
  });
});

/** end_call made in response resp_1; its output answered; the goodbye (resp_2, `ms` of audio) generated. */
function goodbyeGenerated(ms: number): SessionHarness {
  const h = configured(agent({ greeting: null }));
  h.speechStopped();
  h.responseCreated('resp_1');
  h.functionCall('resp_1', 'item_fc', 'call_end', 'end_call', '{}');
  h.responseDone('resp_1');
  expect(h.creates().map((c) => c.purpose)).toEqual(['answer', 'tool-output']);
  speak(h, 'resp_2', 'item_bye', ms);
  h.responseDone('resp_2');
  return h;
}

describe('end_call', () => {
  it('hangs up after the caller heard the goodbye (final mark acknowledged), not when generation ended', () => {
    const h = goodbyeGenerated(1200);
    expect(h.actionsOf('end-call')).toEqual([]);
    h.advance(1100);
    expect(h.actionsOf('end-call')).toEqual([]);
    expect(h.actionsOf('hangup-call')).toEqual([]);
    h.advance(200);
    const lastEcho = h.markEchoes[h.markEchoes.length - 1];
    const end = h.actions.find((a) => a.action.kind === 'end-call');
    expect(end?.action).toEqual({ kind: 'end-call', reason: 'agent-ended', closeCode: 1000 });
    expect(h.actionsOf('hangup-call')).toEqual([{ kind: 'hangup-call', callSid: CALL_SID }]);
    // goodbye never cut: everything sent was heard, and the end came with the last echo
    expect(h.heardMs).toBeGreaterThanOrEqual(1200);
    expect((end?.atMs ?? 0) - (lastEcho?.atMs ?? -1000)).toBe(0);
    expect(h.session.endReason).toBe('agent-ended');
  });

  it('a caller who barges into the goodbye calls the end off: the conversation goes on', () => {
    const h = goodbyeGenerated(1500);
    h.advance(600);
    const before = h.mark();
    h.speechStarted();
    expect(h.toTwilio(before).map((m) => m.event)).toContain('clear');
    const note = h.toRealtime(before).find((e) => e.type === 'conversation.item.create');
    expect(note).toMatchObject({ item: { type: 'message', role: 'system' } });
    h.advance(3000);
    expect(h.actionsOf('end-call')).toEqual([]);
    h.speechStopped();
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['answer']);
    expect(h.session.isEnded).toBe(false);
  });

  it('a stalled stream whose last mark never returns still ends, after the audio plus a grace period', () => {
    const h = goodbyeGenerated(1000);
    h.twilioEchoesMarks = false;
    h.advance(2000);
    expect(h.actionsOf('end-call')).toEqual([]);
    h.advance(600);
    expect(h.actionsOf('end-call')).toHaveLength(1);
  });
});

describe('transfer_call', () => {
  function handoffHeard(): SessionHarness {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_t', 'transfer_call', '{"reason":"wants a human"}');
    h.responseDone('resp_1');
    speak(h, 'resp_2', 'item_handoff', 800);
    h.responseDone('resp_2');
    return h;
  }

  it('redirects the call once the handoff sentence was heard; the stop that follows ends it as transferred', () => {
    const h = handoffHeard();
    expect(h.actionsOf('transfer-call')).toEqual([]);
    h.advance(900);
    expect(h.actionsOf('transfer-call')).toEqual([{ kind: 'transfer-call', callSid: CALL_SID, to: '+15550001111' }]);
    h.feed({ kind: 'transfer-result', ok: true, detail: 'redirected' });
    expect(h.session.transferTarget).toBe('+15550001111');
    h.feed({ kind: 'twilio', message: { event: 'stop', sequenceNumber: '9', streamSid: h.session.ids.streamSid ?? '', stop: { accountSid: 'AC1', callSid: CALL_SID } } });
    expect(h.session.endReason).toBe('transferred');
  });

  it('a transfer Twilio refuses: the model is told and answers; the call goes on', () => {
    const h = handoffHeard();
    h.advance(900);
    const before = h.mark();
    h.feed({ kind: 'transfer-result', ok: false, detail: 'HTTP 400' });
    const note = h.toRealtime(before).find((e) => e.type === 'conversation.item.create');
    expect(JSON.stringify(note)).toContain('could not be started (HTTP 400)');
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['transfer-failed']);
    expect(h.session.isEnded).toBe(false);
  });

  it('a caller back from a transfer the target refused: conversation re-seeded, model told, no greeting', () => {
    const h = new SessionHarness(agent(), {
      resumeFor: () => ({
        transcript: [
          { role: 'user', itemId: 'u1', text: 'I want a human' },
          { role: 'assistant', itemId: 'a1', text: 'Transferring you now.' },
        ],
        transferFailed: { to: '+15550001111', status: 'busy' },
      }),
    });
    h.startCall();
    h.sessionUpdated();
    const texts = h
      .toRealtime()
      .flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' ? [e.item.content[0]] : []))
      .map((c) => (c !== undefined && 'text' in c ? c.text : ''));
    expect(texts[0]).toBe('I want a human');
    expect(texts[1]).toBe('Transferring you now.');
    expect(texts[2]).toContain('the transfer failed (busy)');
    expect(h.creates().map((c) => c.purpose)).toEqual(['transfer-failed']);
  });
});

describe('keypad', () => {
  it('an entry made while the upstream reconnects is not lost: the new session learns it, then answers it', () => {
    const h = configured(agent({ greeting: null }));
    h.feed({ kind: 'upstream-closed', code: 1006, reason: 'dropped' });
    const lost = h.mark();
    h.dtmf('7');
    h.dtmf('#');
    // nothing can be sent now: the bridge would drop it
    expect(h.toRealtime(lost)).toEqual([]);
    h.feed({ kind: 'upstream-open' });
    const sent = h.toRealtime(lost);
    expect(sent.filter((e) => e.type === 'conversation.item.create')).toContainEqual({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Keypad entry: 7' }] },
    });
    h.sessionUpdated();
    expect(h.creates(lost).map((c) => c.purpose)).toEqual(['answer']);
  });

  it('digits until the terminator become one user message, answered under the turn rules', () => {
    const h = configured(agent({ greeting: null }));
    h.dtmf('1');
    h.dtmf('2');
    expect(h.toRealtime()).not.toContainEqual(expect.objectContaining({ type: 'conversation.item.create' }));
    h.dtmf('#');
    expect(h.toRealtime().filter((e) => e.type === 'conversation.item.create')).toEqual([
      { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Keypad entry: 12' }] } },
    ]);
    expect(h.creates().map((c) => c.purpose)).toEqual(['answer']);
    expect(h.session.keypadEntries).toEqual([{ atMs: 0, digits: '12' }]);
  });

  it('a pause ends the entry; maxDigits ends it at once', () => {
    const h = configured(agent({ greeting: null }));
    h.dtmf('7');
    h.advance(1999);
    expect(h.session.keypadEntries).toEqual([]);
    h.advance(1);
    expect(h.session.keypadEntries).toEqual([{ atMs: 2000, digits: '7' }]);
    for (const d of ['1', '2', '3', '4']) h.dtmf(d);
    expect(h.session.keypadEntries.map((e) => e.digits)).toEqual(['7', '1234']);
  });

  it('a key pressed while the agent speaks interrupts it like speech, and no answer starts while keys come in', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    speak(h, 'resp_1', 'item_a', 2000);
    h.responseDone('resp_1');
    h.advance(500);
    const before = h.mark();
    h.dtmf('5');
    expect(h.toTwilio(before).map((m) => m.event)).toContain('clear');
    expect(h.toRealtime(before)).toContainEqual({ type: 'conversation.item.truncate', item_id: 'item_a', content_index: 0, audio_end_ms: 500 });
    expect(h.creates(before)).toEqual([]);
    h.advance(2000);
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['answer']);
  });

  it('an entry made while the upstream reconnects is asked about only once the new session is open', () => {
    const h = configured(agent({ greeting: null }));
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const before = h.mark();
    h.dtmf('4');
    h.dtmf('#');
    expect(h.creates(before)).toEqual([]);
    h.feed({ kind: 'upstream-open' });
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['answer']);
  });

  it('a key pressed while the answer is still generating cancels that response by its id, once', () => {
    const h = configured(agent({ greeting: null }));
    h.speechStopped();
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    for (let i = 0; i < 5; i++) h.delta('resp_1', 'item_a', 100);
    h.advance(200);
    const before = h.mark();
    h.dtmf('1');
    h.dtmf('2');
    const cancels = h.toRealtime(before).filter((e) => e.type === 'response.cancel');
    expect(cancels).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
    h.responseDone('resp_1', 'cancelled');
    h.dtmf('#');
    expect(h.creates(before).map((c) => c.purpose)).toEqual(['answer']);
    expect(realtimeErrors(h)).toBe(0);
  });

  it('invalid digits are ignored with a rate-limited warning', () => {
    const h = configured(agent({ greeting: null }));
    for (let i = 0; i < 8; i++) h.dtmf('A');
    const warnings = h.actionsOf('log').filter((a) => a.msg === 'ignored invalid twilio frame');
    expect(warnings.filter((w) => w.level === 'warn')).toHaveLength(5);
    expect(warnings.filter((w) => w.level === 'debug')).toHaveLength(3);
    expect(h.toRealtime().filter((e) => e.type === 'conversation.item.create')).toEqual([]);
  });
});

describe('idle', () => {
  const idleAgent = (): AgentConfig => agent({ idle: { reminderAfterMs: 8000, maxReminders: 2 } });

  it('checks in after the caller heard the last words and nobody spoke; gives up after the reminders, then hangs up once heard', () => {
    const h = configured(idleAgent());
    speak(h, 'resp_g', 'item_g', 1000);
    h.responseDone('resp_g');
    // the audio ends a couple of ms after 1000 ms (the resampler's tail), the reminder 8 s later
    h.advance(1000 + 7990);
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
    h.advance(20);
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'reminder']);
    speak(h, 'resp_r1', 'item_r1', 500);
    h.responseDone('resp_r1');
    h.advance(500 + 8010);
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'reminder', 'reminder']);
    speak(h, 'resp_r2', 'item_r2', 500);
    h.responseDone('resp_r2');
    h.advance(500 + 8010);
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'reminder', 'reminder', 'goodbye']);
    speak(h, 'resp_bye', 'item_bye', 700);
    h.responseDone('resp_bye');
    expect(h.session.isEnded).toBe(false);
    h.advance(710);
    expect(h.session.endReason).toBe('idle');
    expect(realtimeErrors(h)).toBe(0);
  });

  it('the caller speaking resets the reminders; timers pause while a tool runs', () => {
    const h = configured(agent({ idle: { reminderAfterMs: 8000, maxReminders: 1 } }));
    speak(h, 'resp_g', 'item_g', 500);
    h.responseDone('resp_g');
    h.advance(500 + 8010);
    expect(h.creates().filter((c) => c.purpose === 'reminder')).toHaveLength(1);
    speak(h, 'resp_r', 'item_r', 500);
    h.responseDone('resp_r');
    h.advance(600);
    h.speechStarted();
    h.speechStopped();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting', 'reminder', 'answer']);
    h.responseCreated('resp_1');
    h.functionCall('resp_1', 'item_fc', 'call_1', 'lookup_order', '{}');
    h.responseDone('resp_1');
    h.advance(30_000); // the tool takes 30 s: no reminder meanwhile
    expect(h.actionsOf('log').filter((l) => l.msg === 'caller silent: checking in')).toHaveLength(1);
    h.toolResult('call_1', { ok: true, output: 'done' });
    speak(h, 'resp_2', 'item_2', 500);
    h.responseDone('resp_2');
    h.advance(500 + 8010);
    // counting started over after the caller spoke: this is reminder 1 of 1 again, not a goodbye
    expect(h.creates().map((c) => c.purpose).slice(-1)).toEqual(['reminder']);
    expect(h.session.isEnded).toBe(false);
  });
});
