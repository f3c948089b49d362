/**
 * What the call's own agent (agent-resolved) replaces when it arrives after start: keypad,
 * idle settings, greeting and the keys and verdicts that waited for it.
 */
import { describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../src/config.js';
import { SessionHarness, defaultAgentConfig } from '../support/session-harness.js';

const STAND_IN = defaultAgentConfig({ instructions: 'STAND-IN', greeting: null, idle: null, dtmf: { timeoutMs: 2000, terminator: '#', maxDigits: 20 } });

function harness(): SessionHarness {
  return new SessionHarness(STAND_IN, { awaitAgent: true });
}

function resolve(h: SessionHarness, overrides: Partial<AgentConfig>, profile: string | null = 'support'): void {
  h.feed({ kind: 'agent-resolved', agent: defaultAgentConfig({ greeting: null, idle: null, ...overrides }), profile });
}

function entries(h: SessionHarness): string[] {
  return h.session.keypadEntries.map((e) => e.digits);
}

describe('keys pressed before the agent is known', () => {
  it('are held up to a bound; more than that are not a caller and are dropped', () => {
    const h = harness();
    h.sendStart();
    for (let i = 0; i < 40; i++) h.dtmf(String(i % 10));
    resolve(h, { dtmf: { timeoutMs: 2000, terminator: '#', maxDigits: 64 } });
    h.feed({ kind: 'upstream-open' });
    h.advance(2000);
    expect(entries(h)).toEqual(['01234567890123456789012345678901']);
  });

  it('are dropped when the call\'s agent has the keypad off', () => {
    const h = harness();
    h.sendStart();
    h.dtmf('1');
    h.dtmf('#');
    resolve(h, { dtmf: null });
    h.feed({ kind: 'upstream-open' });
    h.advance(3000);
    expect(entries(h)).toEqual([]);
    expect(h.creates()).toEqual([]);
  });

  it('are not processed while the agent is awaited, even if the pause passes', () => {
    const h = harness();
    h.sendStart();
    h.dtmf('9');
    expect(h.timers.has('keypad')).toBe(false);
    h.feed({ kind: 'timer', timer: 'keypad' });
    expect(entries(h)).toEqual([]);
  });
});

describe('the agent\'s own settings apply once it arrives', () => {
  it('its idle settings: a stand-in without check-ins, an agent with them', () => {
    const h = harness();
    h.sendStart();
    resolve(h, { idle: { reminderAfterMs: 4000, maxReminders: 1 } });
    h.feed({ kind: 'upstream-open' });
    expect(h.actionsOf('set-timer').filter((t) => t.timer === 'idle')).toEqual([{ kind: 'set-timer', timer: 'idle', delayMs: 4000 }]);
    h.advance(4000);
    expect(h.creates().map((c) => c.purpose)).toEqual(['reminder']);
  });

  it('an agent without idle check-ins never checks in, whatever the stand-in had', () => {
    const h = new SessionHarness({ ...STAND_IN, idle: { reminderAfterMs: 1000, maxReminders: 1 } }, { awaitAgent: true });
    h.sendStart();
    resolve(h, { idle: null });
    h.feed({ kind: 'upstream-open' });
    h.advance(10_000);
    expect(h.creates()).toEqual([]);
  });

  it('an agent with a keypad where the stand-in had none collects keys', () => {
    const h = new SessionHarness({ ...STAND_IN, dtmf: null }, { awaitAgent: true });
    h.sendStart();
    resolve(h, { dtmf: { timeoutMs: 2000, terminator: '#', maxDigits: 4 } });
    h.feed({ kind: 'upstream-open' });
    h.dtmf('3');
    h.dtmf('#');
    expect(entries(h)).toEqual(['3']);
  });

  it('the agent\'s greeting is owed and asked for once the session is configured; the profile is the resolved one', () => {
    const h = harness();
    h.sendStart();
    resolve(h, { greeting: { text: 'Support here.' } }, null);
    expect(h.session.profile).toBeNull();
    h.feed({ kind: 'upstream-open' });
    h.sessionUpdated();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
  });

  it('a second agent-resolved is ignored: the first agent stays the call\'s', () => {
    const h = harness();
    h.sendStart();
    resolve(h, { instructions: 'FIRST' }, 'first');
    resolve(h, { instructions: 'SECOND' }, 'second');
    h.feed({ kind: 'upstream-open' });
    expect(h.session.profile).toBe('first');
    const update = h.toRealtime().find((e) => e.type === 'session.update');
    expect(update?.type === 'session.update' ? update.session.instructions : null).toBe('FIRST');
  });

  it('the upstream open that waited for the agent is not replayed twice', () => {
    const h = harness();
    h.sendStart();
    h.feed({ kind: 'upstream-open' });
    resolve(h, {});
    expect(h.toRealtime().filter((e) => e.type === 'session.update')).toHaveLength(1);
    // an amd verdict without detection changes nothing afterwards
    h.feed({ kind: 'amd-result', answeredBy: 'human' });
    expect(h.toRealtime().filter((e) => e.type === 'session.update')).toHaveLength(1);
  });
});

describe('answering-machine verdicts before the agent', () => {
  it('a person\'s verdict that waited for the agent releases the greeting once it arrives', () => {
    const h = new SessionHarness(STAND_IN, { awaitAgent: true, amdPending: () => true });
    h.sendStart();
    h.feed({ kind: 'upstream-open' });
    h.feed({ kind: 'amd-result', answeredBy: 'human' });
    resolve(h, { greeting: { text: 'Hi.' } });
    h.sessionUpdated();
    expect(h.creates().map((c) => c.purpose)).toEqual(['greeting']);
    expect(h.timers.has('amd')).toBe(false);
  });

  it('a machine without a message, known before the agent, hangs up once the agent says there is no voicemail', () => {
    const h = new SessionHarness(STAND_IN, { awaitAgent: true, amdPending: () => true });
    h.sendStart();
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    expect(h.session.isEnded).toBe(false);
    resolve(h, { voicemail: null });
    expect(h.session.endReason).toBe('voicemail');
  });

  it('the amd timer firing after a verdict was applied does nothing', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Hi.' }, idle: null }), { amdPending: () => true });
    h.startCall();
    h.sessionUpdated();
    h.feed({ kind: 'amd-result', answeredBy: 'human' });
    const before = h.mark();
    h.feed({ kind: 'timer', timer: 'amd' });
    expect(h.creates(before)).toEqual([]);
    expect(h.actionsOf('clear-timer', before)).toEqual([]);
  });
});
