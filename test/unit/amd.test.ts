/**
 * Answering-machine detection in the pure session (fake clock), the outbound request's checks
 * and its callback state, and the `voicemail` config key.
 */
import { describe, expect, it } from 'vitest';
import { AMD_WAIT_MAX_MS } from '../../src/call/amd.js';
import type { SessionDeps } from '../../src/call/session.js';
import { MAX_VOICEMAIL_CHARS, parseAgentConfig } from '../../src/config.js';
import type { AgentConfig } from '../../src/config.js';
import { callbackQuery, callbackStateFrom, parseOutboundRequest } from '../../src/server/outbound-request.js';
import { CALL_SID, SessionHarness, defaultAgentConfig } from '../support/session-harness.js';
import { configProblems, defaultConfigJson } from '../support/config-problems.js';

const VOICEMAIL = 'Hi, this is Acme. Please call us back.';
const SAY_VOICEMAIL = `Say exactly this, word for word, and nothing else: "${VOICEMAIL}"`;
const AMD: SessionDeps = { amdPending: (start) => start.customParameters['amd'] === 'pending' };

function agent(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return defaultAgentConfig({ greeting: { text: 'Hello from Acme.' }, voicemail: VOICEMAIL, idle: null, tools: [], ...overrides });
}

/** A started outbound call with detection running, its session configured. */
function detecting(config: AgentConfig = agent(), deps: SessionDeps = AMD): SessionHarness {
  const h = new SessionHarness(config, deps);
  h.sendStart({ customParameters: { amd: 'pending' } });
  h.feed({ kind: 'upstream-open' });
  h.sessionUpdated();
  return h;
}

const purposes = (h: SessionHarness): Array<string | undefined> => h.creates().map((c) => c.purpose);
const ended = (h: SessionHarness) => h.actionsOf('end-call');

describe('answering-machine detection in the session', () => {
  it('holds the greeting until the verdict; a person gets it', () => {
    const h = detecting();
    h.advance(2000);
    expect(h.creates()).toEqual([]);
    h.feed({ kind: 'amd-result', answeredBy: 'human' });
    expect(purposes(h)).toEqual(['greeting']);
    expect(h.actionsOf('clear-timer').some((a) => a.timer === 'amd')).toBe(true);
  });

  it('greets at once without the amd parameter, and ignores a stray verdict', () => {
    const h = new SessionHarness(agent(), AMD);
    h.startCall();
    h.sessionUpdated();
    expect(purposes(h)).toEqual(['greeting']);
    const mark = h.mark();
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    expect(h.creates(mark)).toEqual([]);
    expect(ended(h)).toEqual([]);
  });

  it('a machine: the voicemail word for word, never interrupted by the machine, then a hang-up once heard', () => {
    const h = detecting();
    h.speechStarted(); // the machine's own message
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    expect(h.creates()).toEqual([{ purpose: 'voicemail', instructions: SAY_VOICEMAIL }]);
    h.responseCreated('resp_vm');
    h.itemAdded('resp_vm', 'item_vm');
    h.delta('resp_vm', 'item_vm', 300);
    // The beep, or the machine's echo, is not a barge-in.
    h.speechStarted();
    h.speechStopped();
    expect(h.actionsOf('send-realtime').some((a) => a.event.type === 'response.cancel')).toBe(false);
    h.delta('resp_vm', 'item_vm', 700);
    h.audioDone('resp_vm', 'item_vm');
    h.responseDone('resp_vm');
    expect(ended(h)).toEqual([]);
    h.advance(1500);
    expect(h.actionsOf('hangup-call')).toEqual([{ kind: 'hangup-call', callSid: CALL_SID }]);
    expect(ended(h)).toEqual([{ kind: 'end-call', reason: 'voicemail', closeCode: 1000 }]);
    expect(purposes(h)).toEqual(['voicemail']);
  });

  it('a machine whose "hello" was answered: the answer is cut and the voicemail follows, with no greeting', () => {
    const h = detecting();
    h.speechStarted();
    h.speechStopped();
    expect(purposes(h)).toEqual(['greeting']);
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_1');
    h.delta('resp_1', 'item_1', 500);
    const mark = h.mark();
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_other' });
    expect(h.actionsOf('send-realtime', mark).map((a) => a.event.type)).toContain('response.cancel');
    h.responseDone('resp_1', 'cancelled');
    expect(h.creates(mark)).toEqual([{ purpose: 'voicemail', instructions: SAY_VOICEMAIL }]);
  });

  it.each([
    ['a machine and no voicemail', 'machine_end_silence', null],
    ['a fax', 'fax', VOICEMAIL],
  ])('%s: hang up at once', (_what, answeredBy, voicemail) => {
    const h = detecting(agent({ voicemail }));
    h.feed({ kind: 'amd-result', answeredBy });
    expect(h.creates()).toEqual([]);
    expect(h.actionsOf('hangup-call')).toEqual([{ kind: 'hangup-call', callSid: CALL_SID }]);
    expect(ended(h)).toEqual([{ kind: 'end-call', reason: 'voicemail', closeCode: 1000 }]);
  });

  it('the callee speaking first ends the hold: they are greeted at their turn\'s end', () => {
    const h = detecting();
    h.speechStarted();
    expect(h.creates()).toEqual([]);
    h.speechStopped();
    expect(purposes(h)).toEqual(['greeting']);
    // A later `human` changes nothing.
    const mark = h.mark();
    h.feed({ kind: 'amd-result', answeredBy: 'human' });
    expect(h.creates(mark)).toEqual([]);
  });

  it('no verdict in time: treated as a person', () => {
    const h = detecting();
    h.advance(AMD_WAIT_MAX_MS - 10);
    expect(h.creates()).toEqual([]);
    h.advance(20);
    expect(purposes(h)).toEqual(['greeting']);
  });

  it('a verdict before the call\'s agent is known waits for its voicemail', () => {
    const h = new SessionHarness(agent({ voicemail: 'stand-in' }), { ...AMD, awaitAgent: true });
    h.sendStart({ customParameters: { amd: 'pending' } });
    h.feed({ kind: 'upstream-open' });
    h.feed({ kind: 'amd-result', answeredBy: 'machine_end_beep' });
    expect(h.creates()).toEqual([]);
    h.feed({ kind: 'agent-resolved', agent: agent(), profile: 'sales' });
    expect(h.creates()).toEqual([{ purpose: 'voicemail', instructions: SAY_VOICEMAIL }]);
  });

  it('an AnsweredBy Twilio does not send is ignored', () => {
    const h = detecting();
    h.feed({ kind: 'amd-result', answeredBy: 'robot' });
    expect(h.creates()).toEqual([]);
    expect(h.actionsOf('log').some((l) => l.msg === 'answering-machine verdict not understood: ignored')).toBe(true);
  });
});

describe('the outbound request', () => {
  const profiles = ['default', 'sales'];

  it('takes a full request and carries profile, context and amd through the callback query', () => {
    const parsed = parseOutboundRequest({ to: '+15553334444', profile: 'sales', context: { name: 'Ann\nLee', plan: 'gold' }, amd: true }, profiles);
    expect(parsed).toEqual({ ok: true, call: { to: '+15553334444', profile: 'sales', context: { name: 'Ann Lee', plan: 'gold' }, amd: true } });
    if (!parsed.ok) return;
    const query = callbackQuery(parsed.call);
    expect(callbackStateFrom(new URLSearchParams(query.slice(1)), profiles)).toEqual({ profile: 'sales', context: { name: 'Ann Lee', plan: 'gold' }, amd: true });
    expect(callbackQuery({ profile: null, context: {}, amd: false })).toBe('');
  });

  it('names every bad field at once', () => {
    const parsed = parseOutboundRequest({ to: 12, profile: 'x', context: { to: 'y' }, amd: 1, extra: true }, profiles);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems.map((p) => p.split(' ')[0])).toEqual(['extra', 'to', 'profile', 'context.to', 'amd']);
  });

  it('refuses callback state it cannot read', () => {
    expect(callbackStateFrom(new URLSearchParams('profile=gone'), profiles)).toBeNull();
    expect(callbackStateFrom(new URLSearchParams('context=%7Bnot-json'), profiles)).toBeNull();
    expect(callbackStateFrom(new URLSearchParams('amd=yes'), profiles)).toBeNull();
  });
});

describe('the voicemail config key', () => {
  const base = defaultConfigJson;

  it('is optional text with placeholders', () => {
    expect(parseAgentConfig(base()).voicemail).toBeNull();
    expect(parseAgentConfig({ ...base(), voicemail: 'Hi {{context.name}}' }).voicemail).toBe('Hi {{context.name}}');
  });

  it.each([
    [42, 'voicemail must be a non-empty string'],
    ['', 'voicemail must be a non-empty string'],
    ['x'.repeat(MAX_VOICEMAIL_CHARS + 1), `voicemail must be at most ${MAX_VOICEMAIL_CHARS} characters`],
    ['Hi {{form}}', 'voicemail has an unknown placeholder {{form}}'],
  ])('refuses %j', (voicemail, problem) => {
    expect(configProblems(() => parseAgentConfig({ ...base(), voicemail })).join('\n')).toContain(problem);
  });
});
