/**
 * The call's own agent (profile, AGENT_CONFIG_URL's override, caller context) reaches the session
 * after `start` as `agent-resolved`. Until then nothing is configured upstream: the first
 * session.update and the greeting are the call's agent's, whichever of the upstream and the agent
 * comes first.
 */
import { describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../src/config.js';
import { FIRST_CONNECT_GIVE_UP_MS, HOLD_TONE_AFTER_MS } from '../../src/call/upstream-fallback.js';
import { SessionHarness, defaultAgentConfig } from '../support/session-harness.js';
import type { SessionDeps } from '../../src/call/session.js';

/** The stand-in the session is built with: what the call must never be configured with. */
const STAND_IN = defaultAgentConfig({ instructions: 'STAND-IN instructions', voice: 'alloy', greeting: { text: 'Stand-in hello.' }, idle: null });
/** The call's own agent, as the shell resolves it. */
const RESOLVED: AgentConfig = defaultAgentConfig({
  instructions: 'You answer for Acme Sales. The caller is +15550001111.',
  voice: 'marin',
  greeting: { text: 'Acme Sales, hello!' },
  dtmf: { timeoutMs: 2000, terminator: '#', maxDigits: 2 },
  idle: null,
});

function harness(deps: SessionDeps = {}): SessionHarness {
  return new SessionHarness(STAND_IN, { awaitAgent: true, ...deps });
}

function sessionUpdates(h: SessionHarness): Array<{ instructions: string | undefined; voice: string | undefined }> {
  return h.toRealtime().flatMap((e) => (e.type === 'session.update' ? [{ instructions: e.session.instructions, voice: e.session.audio?.output?.voice }] : []));
}

function resolve(h: SessionHarness, agent: AgentConfig = RESOLVED, profile = 'sales'): void {
  h.feed({ kind: 'agent-resolved', agent, profile });
}

describe('the call\'s agent is awaited before anything is configured upstream', () => {
  it('upstream first: no session.update until the agent arrives, then the agent\'s, and its greeting', () => {
    const h = harness();
    h.sendStart();
    h.callerMedia(Buffer.alloc(160, 0xff).toString('base64'));
    h.feed({ kind: 'upstream-open' });
    expect(h.toRealtime()).toEqual([]);
    expect(h.actionsOf('send-realtime').filter((a) => a.event.type === 'input_audio_buffer.append')).toEqual([]);

    resolve(h);
    expect(sessionUpdates(h)).toEqual([{ instructions: RESOLVED.instructions, voice: 'marin' }]);
    // The caller's audio held meanwhile follows the configuration, as on any connect.
    const types = h.actionsOf('send-realtime').map((a) => a.event.type);
    expect(types).toEqual(['session.update', 'input_audio_buffer.append']);
    h.sessionUpdated();
    expect(h.creates()).toEqual([{ purpose: 'greeting', instructions: 'Say exactly this, word for word, and nothing else: "Acme Sales, hello!"' }]);
    expect(h.session.profile).toBe('sales');
  });

  it('agent first: the upstream\'s open configures the session with it at once', () => {
    const h = harness();
    h.sendStart();
    resolve(h);
    expect(h.toRealtime()).toEqual([]);
    h.feed({ kind: 'upstream-open' });
    expect(sessionUpdates(h)).toEqual([{ instructions: RESOLVED.instructions, voice: 'marin' }]);
  });

  it('without awaitAgent the given agent is the call\'s: configured on open, and a late agent-resolved is ignored with a warning', () => {
    const h = new SessionHarness(STAND_IN);
    h.startCall();
    expect(sessionUpdates(h)).toEqual([{ instructions: 'STAND-IN instructions', voice: 'alloy' }]);
    const before = h.mark();
    resolve(h);
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.actionsOf('log', before).map((l) => l.msg)).toEqual(['agent config arrived when none was awaited: ignored']);
    expect(h.session.profile).toBeNull();
  });

  it('keys pressed before the agent wait for it and are collected with its keypad settings', () => {
    const h = harness();
    h.sendStart();
    h.dtmf('1');
    h.dtmf('2');
    // The stand-in collects up to 20 digits: nothing is an entry yet, and no timer runs.
    expect(h.actionsOf('log').filter((l) => l.msg === 'keypad entry')).toEqual([]);
    expect(h.actionsOf('set-timer').filter((t) => t.timer === 'keypad')).toEqual([]);
    resolve(h);
    // The call's agent takes 2 digits: the held keys are its entry.
    expect(h.actionsOf('log').filter((l) => l.msg === 'keypad entry').map((l) => l.fields['digits'])).toEqual(['12']);
    h.feed({ kind: 'upstream-open' });
    const items = h.toRealtime().filter((e) => e.type === 'conversation.item.create');
    expect(JSON.stringify(items)).toContain('Keypad entry: 12');
  });

  it('a caller back from a failed transfer is not greeted, whatever the agent', () => {
    const h = harness({ resumeFor: () => ({ transcript: [], transferFailed: { to: '+15557778888', status: 'busy' } }) });
    h.sendStart();
    resolve(h);
    h.feed({ kind: 'upstream-open' });
    h.sessionUpdated();
    expect(h.creates().map((c) => c.purpose)).toEqual(['transfer-failed']);
  });

  it('an agent with no greeting waits for the caller even when the stand-in would have greeted', () => {
    const h = harness();
    h.sendStart();
    resolve(h, { ...RESOLVED, greeting: null });
    h.feed({ kind: 'upstream-open' });
    h.sessionUpdated();
    expect(h.creates()).toEqual([]);
  });

  it('an upstream lost while the agent was awaited is reconnected; the session is configured once, on the connection that is open', () => {
    const h = harness();
    h.sendStart();
    h.feed({ kind: 'upstream-open' });
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    expect(h.actionsOf('connect-upstream').map((a) => a.attempt)).toEqual([1, 2]);
    resolve(h);
    expect(sessionUpdates(h)).toEqual([]);
    h.feed({ kind: 'upstream-open' });
    expect(sessionUpdates(h)).toEqual([{ instructions: RESOLVED.instructions, voice: 'marin' }]);
  });

  it('a slow agent counts as a slow connection: the hold tone plays, and the give-up deadline stands', () => {
    const h = harness({ fallbackAudio: { holdTone: Buffer.alloc(160, 0x7f).toString('base64'), apology: Buffer.alloc(800, 0x7f).toString('base64'), apologyMs: 100 } });
    h.sendStart();
    h.feed({ kind: 'upstream-open' });
    h.advance(HOLD_TONE_AFTER_MS + 10);
    expect(h.actionsOf('log').some((l) => l.msg === 'upstream slow to connect: playing the hold tone')).toBe(true);
    resolve(h);
    // The tone stops for the agent's first words.
    expect(h.toTwilio().some((m) => m.event === 'clear')).toBe(true);
    expect(sessionUpdates(h)).toHaveLength(1);
    expect(h.timers.has('connect-deadline')).toBe(false);
    expect(FIRST_CONNECT_GIVE_UP_MS).toBeGreaterThan(HOLD_TONE_AFTER_MS);
  });
});
