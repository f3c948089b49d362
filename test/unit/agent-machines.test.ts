/**
 * The small pure sub-machines CallSession is composed of: the turn arbiter, tool-call
 * bookkeeping, call control, keypad collection and idle reminders.
 */
import { describe, expect, it } from 'vitest';
import { TurnArbiter } from '../../src/call/turn-arbiter.js';
import { ToolCalls } from '../../src/call/tool-calls.js';
import { CONTROL_MARK_GRACE_MS, CallControl } from '../../src/call/call-control.js';
import { KeypadCollector } from '../../src/call/keypad.js';
import { IdleMonitor } from '../../src/call/idle.js';
import { dispatchToolCall, outputText } from '../../src/call/tool-dispatch.js';
import type { ToolConfig } from '../../src/config.js';

const fc = (callId: string, status: 'completed' | 'incomplete' | 'in_progress' = 'completed') => ({
  id: `item_${callId}`,
  type: 'function_call' as const,
  call_id: callId,
  name: 'lookup',
  arguments: '{}',
  status,
});

describe('TurnArbiter', () => {
  it('never two responses: a want waits for the active response to be done', () => {
    const a = new TurnArbiter();
    a.want({ purpose: 'answer' });
    expect(a.next()).toMatchObject({ type: 'response.create', response: { metadata: { purpose: 'answer' } } });
    a.onCreated('resp_1', 0);
    a.want({ purpose: 'tool-output' });
    expect(a.next()).toBeNull();
    expect(a.onDone('resp_other')).toBe(false);
    expect(a.next()).toBeNull();
    expect(a.onDone('resp_1')).toBe(true);
    expect(a.next()).toMatchObject({ response: { metadata: { purpose: 'tool-output' } } });
  });

  it('never over the caller: speech and holds keep creates back; speech drops what waited', () => {
    const a = new TurnArbiter();
    a.want({ purpose: 'reminder' });
    a.callerStarted();
    expect(a.next()).toBeNull();
    a.callerStopped();
    expect(a.next()).toBeNull(); // the reminder was dropped by the caller speaking
    a.hold('keypad');
    a.want({ purpose: 'answer' });
    expect(a.next()).toBeNull();
    a.hold('tools');
    a.release('keypad');
    expect(a.next()).toBeNull();
    a.release('tools');
    expect(a.next()).not.toBeNull();
  });

  it('wants merge into one response named by the strongest purpose', () => {
    const a = new TurnArbiter();
    a.want({ purpose: 'greeting', instructions: 'Say hi' });
    a.want({ purpose: 'answer' });
    expect(a.next()).toEqual({ type: 'response.create', event_id: 'cb_create_1', response: { metadata: { purpose: 'greeting' }, instructions: 'Say hi' } });
    expect(a.next()).toBeNull();
  });

  it('a rejected create is forgotten; an "already active" rejection asks again after that response', () => {
    const a = new TurnArbiter();
    a.want({ purpose: 'answer' });
    a.next();
    expect(a.onError('invalid_value', 'cb_create_other')).toEqual({ rejectedCreate: false });
    expect(a.onError('conversation_already_has_active_response', null)).toEqual({ rejectedCreate: true });
    expect(a.state.phase).toBe('none');
    expect(a.pendingWant).toEqual({ purpose: 'answer' });
  });

  it('a barge-in before response.created cancels it once its id is known; reset tells what was owed', () => {
    const a = new TurnArbiter();
    a.want({ purpose: 'answer' });
    a.next();
    a.cancelWhenCreated();
    expect(a.onCreated('resp_1', 5)).toEqual({ purpose: 'answer', cancel: true });
    expect(a.reset(() => true)).toEqual({ owed: null });
    a.want({ purpose: 'answer' });
    a.next();
    a.onCreated('resp_2', 6);
    expect(a.reset(() => false)).toEqual({ owed: { purpose: 'answer' } });
  });
});

describe('ToolCalls', () => {
  it('runs a call only when its item completed, once per call_id', () => {
    const t = new ToolCalls();
    t.onItemAdded(fc('c1', 'in_progress'), 'r1');
    expect(t.onItemDone(fc('c1'), 'r1', 10)?.callId).toBe('c1');
    expect(t.onItemDone(fc('c1'), 'r1', 11)).toBeNull();
    expect(t.running).toBe(1);
    expect(t.onResult('c1', { ok: true, output: 'x' }, 30)?.finishedAtMs).toBe(30);
    expect(t.onResult('c1', { ok: true, output: 'y' }, 31)).toBeNull();
    // seen again after it was answered: still never a second run
    expect(t.onItemDone(fc('c1'), 'r1', 40)).toBeNull();
    expect(t.running).toBe(0);
  });

  it('calls of a response that ended without completing them are dropped and reported', () => {
    const t = new ToolCalls();
    t.onItemAdded(fc('c1', 'in_progress'), 'r1');
    expect(t.onItemDone(fc('c1', 'incomplete'), 'r1', 0)).toBeNull();
    t.onItemAdded(fc('c2', 'in_progress'), 'r1');
    expect(t.onResponseDone('r1')).toEqual(['item_c1', 'item_c2']);
    expect(t.records.map((r) => r.state)).toEqual(['dropped', 'dropped']);
  });

  it('running calls survive an upstream loss as orphans; pending ones die with it', () => {
    const t = new ToolCalls();
    t.onItemDone(fc('c1'), 'r1', 0);
    t.onItemAdded(fc('c2', 'in_progress'), 'r1');
    t.onUpstreamLost();
    expect(t.toolCall('c1')?.orphaned).toBe(true);
    expect(t.records.find((r) => r.callId === 'c2')?.state).toBe('dropped');
  });
});

describe('CallControl', () => {
  const ready = { responsesQuiet: true, toolsIdle: true, allHeard: true, unheardMs: 0 };
  it('is due only when quiet, tools idle and everything heard; a missing last mark arms the fallback once', () => {
    const c = new CallControl();
    c.ask({ kind: 'end', reason: 'agent-ended' });
    expect(c.check({ ...ready, responsesQuiet: false })).toEqual({ due: null, timer: null });
    expect(c.check({ ...ready, toolsIdle: false })).toEqual({ due: null, timer: null });
    expect(c.check({ ...ready, allHeard: false, unheardMs: 400.2 })).toEqual({ due: null, timer: { kind: 'set', delayMs: 401 + CONTROL_MARK_GRACE_MS } });
    expect(c.check({ ...ready, allHeard: false, unheardMs: 300 })).toEqual({ due: null, timer: null });
    expect(c.check({ ...ready, allHeard: false }, true)).toEqual({ due: { kind: 'end', reason: 'agent-ended' }, timer: null });
    expect(c.inProgress).toEqual({ kind: 'end', reason: 'agent-ended' });
    expect(c.callOff()).toEqual({ off: null, timer: null }); // too late once under way
  });

  it('the last mark arriving clears the armed fallback', () => {
    const c = new CallControl();
    c.ask({ kind: 'end', reason: 'idle' });
    c.check({ ...ready, allHeard: false, unheardMs: 100 });
    expect(c.check(ready)).toEqual({ due: { kind: 'end', reason: 'idle' }, timer: { kind: 'clear' } });
  });

  it('a barge-in calls a pending request off (and its fallback); a failed transfer lets the agent carry on', () => {
    const c = new CallControl();
    c.ask({ kind: 'transfer', to: '+15550001111' });
    c.check({ ...ready, allHeard: false, unheardMs: 100 });
    expect(c.callOff()).toEqual({ off: { kind: 'transfer', to: '+15550001111' }, timer: { kind: 'clear' } });
    expect(c.check(ready)).toEqual({ due: null, timer: null });
    c.ask({ kind: 'transfer', to: '+15550001111' });
    c.check(ready);
    c.failed();
    expect(c.pending).toBeNull();
    expect(c.inProgress).toBeNull();
  });
});

describe('KeypadCollector', () => {
  it('collects until the terminator, maxDigits or a pause; rejects anything but 0-9 * #', () => {
    const k = new KeypadCollector({ timeoutMs: 1500, terminator: '#', maxDigits: 3 });
    expect(k.press('1')).toEqual({ kind: 'collecting', timeoutMs: 1500 });
    expect(k.press('*')).toEqual({ kind: 'collecting', timeoutMs: 1500 });
    expect(k.press('#')).toEqual({ kind: 'entry', digits: '1*', ended: 'terminator' });
    expect(k.press('#')).toEqual({ kind: 'entry', digits: '#', ended: 'terminator' });
    for (const d of ['4', '5']) k.press(d);
    expect(k.press('6')).toEqual({ kind: 'entry', digits: '456', ended: 'max-digits' });
    k.press('7');
    expect(k.collecting).toBe(true);
    expect(k.timeout()).toBe('7');
    expect(k.timeout()).toBeNull();
    for (const bad of ['A', '10', '', ' ', 'é']) expect(k.press(bad)).toEqual({ kind: 'invalid' });
  });

  it('without a terminator, # is a digit like any other', () => {
    const k = new KeypadCollector({ timeoutMs: 1000, terminator: '', maxDigits: 5 });
    k.press('#');
    expect(k.timeout()).toBe('#');
  });
});

describe('IdleMonitor', () => {
  it('starts the timer on becoming idle, stops it on activity, reminds then gives up', () => {
    const i = new IdleMonitor({ reminderAfterMs: 8000, maxReminders: 1 });
    expect(i.update(false)).toBeNull();
    expect(i.update(true)).toEqual({ kind: 'start', delayMs: 8000 });
    expect(i.update(true)).toBeNull();
    expect(i.update(false)).toEqual({ kind: 'stop' });
    expect(i.fire()).toBeNull(); // a stale expiry after the call stopped being idle
    i.update(true);
    expect(i.fire()).toBe('remind');
    i.update(false);
    i.update(true);
    expect(i.fire()).toBe('give-up');
    i.callerActive();
    i.update(false);
    i.update(true);
    expect(i.fire()).toBe('remind');
  });
});

describe('dispatchToolCall', () => {
  const tools: ToolConfig[] = [
    { type: 'end_call' },
    { type: 'transfer_call', to: 'sip:desk@example.test' },
    { type: 'http', name: 'lookup', description: 'd', parameters: { type: 'object' }, url: 'http://127.0.0.1:1/', timeoutMs: 1000 },
  ];

  it('built-in tools are answered at once and ask for call control; http tools run with parsed arguments', () => {
    expect(dispatchToolCall('end_call', '', tools)).toMatchObject({ kind: 'answer', outcome: { ok: true }, control: { kind: 'end', reason: 'agent-ended' } });
    expect(dispatchToolCall('transfer_call', '{"reason":"x"}', tools)).toMatchObject({ kind: 'answer', control: { kind: 'transfer', to: 'sip:desk@example.test' } });
    expect(dispatchToolCall('lookup', '{"a":[1]}', tools)).toEqual({ kind: 'run-http', tool: tools[2], arguments: { a: [1] } });
    expect(dispatchToolCall('lookup', '  ', tools)).toMatchObject({ kind: 'run-http', arguments: {} });
  });

  it('an unknown name or invalid JSON is an error output, with no call control', () => {
    const unknown = dispatchToolCall('format_disk', '{}', tools);
    expect(unknown).toEqual({ kind: 'answer', outcome: { ok: false, error: 'unknown tool "format_disk"' }, control: null });
    const invalid = dispatchToolCall('end_call', '{"', tools);
    expect(invalid).toMatchObject({ kind: 'answer', outcome: { ok: false }, control: null });
    expect(outputText({ ok: false, error: 'boom' })).toBe('{"error":"boom"}');
    expect(outputText({ ok: true, output: 'plain' })).toBe('plain');
  });
});
