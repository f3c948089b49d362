/**
 * Which agent answers: `numbers` and `profiles` in the config file (merged over it, validated at
 * start), the choice per call (src/agent/resolve.ts), and AGENT_CONFIG_URL's answer applied over
 * the chosen profile with the same rules.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentConfigToJson, loadConfig, parseAgentConfig } from '../../src/config.js';
import { configProblems, defaultConfigJson } from '../support/config-problems.js';
import type { AppConfig } from '../../src/config.js';
import { mergeAgentJson } from '../../src/agent/merge.js';
import { applyOverride, ownNumber, selectProfile } from '../../src/agent/resolve.js';

const SALES = '+15551110000';
const SUPPORT = '+15552220000';
const ELSEWHERE = '+15559990000';

const mainConfig = defaultConfigJson;

/** Writes the files into a fresh folder; returns the path of `config.json` in it. */
function files(main: Record<string, unknown>, others: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'cb-profiles-'));
  for (const [name, content] of Object.entries(others)) {
    const path = join(dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  }
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify(main));
  return path;
}

function problemsLoading(path: string, env: NodeJS.ProcessEnv = {}): string[] {
  return configProblems(() => loadConfig(env, path));
}

const SALES_PROFILE = {
  instructions: 'You sell Acme widgets to {{from}}.',
  voice: 'cedar',
  turnDetection: { silenceDurationMs: 800 },
  greeting: { instructions: 'Greet the caller as Acme Sales.' },
  tools: [{ type: 'end_call', description: 'Hang up once the sale is done.' }],
  dtmf: null,
};

function loaded(): AppConfig {
  return loadConfig(
    {},
    files({ ...mainConfig(), numbers: { [SALES]: 'profiles/sales.json', [SUPPORT]: 'profiles/support.json' }, profiles: ['outbound.json'] }, {
      'profiles/sales.json': SALES_PROFILE,
      'profiles/support.json': { name: 'helpdesk', instructions: 'You help with Acme products.' },
      'outbound.json': { name: 'callback', greeting: null },
    }),
  );
}

describe('profiles from the config file', () => {
  it('merges each profile over the main config: objects key by key, arrays and greeting replaced whole', () => {
    const c = loaded();
    const sales = c.profiles.byName.get('sales');
    expect(sales?.file).toMatch(/profiles\/sales\.json$/);
    expect(sales?.agent).toEqual({
      ...c.agent,
      instructions: 'You sell Acme widgets to {{from}}.',
      voice: 'cedar',
      // one key of turnDetection set: the others are the main config's
      turnDetection: { ...c.agent.turnDetection, silenceDurationMs: 800 },
      // greeting is {text} in the main config: replaced, not merged into {text, instructions}
      greeting: { instructions: 'Greet the caller as Acme Sales.' },
      tools: [{ type: 'end_call', description: 'Hang up once the sale is done.' }],
      dtmf: null,
    });
  });

  it('names a profile by its `name`, else by its file name; maps numbers to names', () => {
    const c = loaded();
    expect(c.profiles.defaultName).toBe('default');
    expect([...c.profiles.byName.keys()].sort()).toEqual(['callback', 'helpdesk', 'sales']);
    expect(Object.fromEntries(c.profiles.numbers)).toEqual({ [SALES]: 'sales', [SUPPORT]: 'helpdesk' });
    expect(c.profiles.byName.get('callback')?.agent.greeting).toBeNull();
  });

  it('without numbers or profiles there is only the default profile', () => {
    const c = loadConfig({});
    expect(c.profiles.byName.size).toBe(0);
    expect(c.profiles.numbers.size).toBe(0);
  });

  it('reads a file named by several numbers once, as one profile', () => {
    const c = loadConfig({}, files({ ...mainConfig(), numbers: { [SALES]: 'sales.json', [SUPPORT]: './sales.json' } }, { 'sales.json': { voice: 'cedar' } }));
    expect(c.profiles.byName.size).toBe(1);
    expect(Object.fromEntries(c.profiles.numbers)).toEqual({ [SALES]: 'sales', [SUPPORT]: 'sales' });
  });

  it('stops the start on every problem, naming the file and the key', () => {
    const path = files(
      {
        ...mainConfig(),
        numbers: { '555-1234': 'a.json', [SALES]: 'missing.json', [SUPPORT]: 'bad.json', '+15553330000': 'broken.json', '+15554440000': 42 },
        profiles: ['one/desk.json', 'two/desk.json', 'nested.json'],
      },
      {
        'bad.json': { voice: '', greting: { text: 'x' }, instructions: 'Hi {{fro}}' },
        'broken.json': '{ not json',
        'one/desk.json': {},
        'two/desk.json': { voice: 'cedar' },
        'nested.json': { numbers: { [ELSEWHERE]: 'a.json' }, model: 'gpt-other' },
      },
    );
    const problems = problemsLoading(path);
    const dir = join(path, '..');
    expect(problems).toEqual([
      `${path}: numbers["555-1234"]: "555-1234" is not an E.164 number ("+" and 2-15 digits, e.g. "+15551234567")`,
      expect.stringMatching(new RegExp(`^${escape(path)}: numbers\\["\\${SALES}"\\]: cannot read ${escape(join(dir, 'missing.json'))}: ENOENT`)),
      `${join(dir, 'bad.json')}: voice must be a non-empty string`,
      `${join(dir, 'bad.json')}: greting is not a known key (did you mean "greeting"?)`,
      `${join(dir, 'bad.json')}: instructions has an unknown placeholder {{fro}} (did you mean {{from}}?)`,
      expect.stringMatching(new RegExp(`^${escape(path)}: numbers\\["\\+15553330000"\\]: ${escape(join(dir, 'broken.json'))} is not valid JSON`)),
      `${path}: numbers["+15554440000"] must be the path of a profile file (relative to the config file), got 42`,
      `${join(dir, 'two/desk.json')}: the profile name "desk" is taken by ${join(dir, 'one/desk.json')}: give one of them another "name"`,
      `${join(dir, 'nested.json')}: numbers belongs in the main config file, not in a profile`,
      `${join(dir, 'nested.json')}: model "gpt-other" differs from the service's "gpt-realtime": the model is chosen once, for every call`,
    ]);
  });

  it('refuses a profile whose name is taken by the default profile, and a badly typed numbers', () => {
    expect(problemsLoading(files({ ...mainConfig(), profiles: ['default.json'] }, { 'default.json': {} }))).toEqual([
      expect.stringMatching(/default\.json: the profile name "default" is taken by .*config\.json/),
    ]);
    expect(problemsLoading(files({ ...mainConfig(), numbers: ['a.json'] }))).toEqual([expect.stringMatching(/numbers must be an object \{"\+15551234567": "profiles\/sales\.json", …\}, got \["a\.json"\]/)]);
    expect(problemsLoading(files({ ...mainConfig(), numbrs: {} }))).toEqual([expect.stringMatching(/numbrs is not a known key \(did you mean "numbers"\?\)/)]);
  });

  it('drops transfer_call from a profile without REST credentials, with a warning naming the file', () => {
    const c = loadConfig({}, files({ ...mainConfig(), profiles: ['desk.json'] }, { 'desk.json': { tools: [{ type: 'transfer_call', to: '+15557778888' }, { type: 'end_call' }] } }));
    expect(c.profiles.byName.get('desk')?.agent.tools).toEqual([{ type: 'end_call' }]);
    expect(c.startupWarnings).toContainEqual(expect.stringMatching(/desk\.json: transfer_call is configured but .* not offered to the model/));
  });
});

describe('which profile answers a call', () => {
  it('the dialled number\'s profile on an inbound call; an unknown number gets the default', () => {
    const c = loaded();
    expect(selectProfile(c, { from: ELSEWHERE, to: SALES, direction: 'inbound' }, null)).toMatchObject({ name: 'sales', by: 'number' });
    expect(selectProfile(c, { from: ELSEWHERE, to: SALES, direction: 'inbound' }, null).agent.voice).toBe('cedar');
    expect(selectProfile(c, { from: SALES, to: ELSEWHERE, direction: 'inbound' }, null)).toMatchObject({ name: 'default', by: 'default' });
    expect(selectProfile(c, { from: null, to: null, direction: null }, null)).toMatchObject({ name: 'default', by: 'default' });
    expect(selectProfile(c, { from: ELSEWHERE, to: SUPPORT, direction: null }, null).agent).toBe(c.profiles.byName.get('helpdesk')?.agent);
  });

  it('on an outbound call, the number calling out decides', () => {
    const c = loaded();
    expect(ownNumber({ from: SALES, to: ELSEWHERE, direction: 'outbound-api' })).toBe(SALES);
    expect(selectProfile(c, { from: SALES, to: ELSEWHERE, direction: 'outbound-api' }, null)).toMatchObject({ name: 'sales', by: 'number' });
  });

  it('a profile the call names wins (an outbound call\'s `profile`); an unknown name falls back and is reported', () => {
    const c = loaded();
    expect(selectProfile(c, { from: SALES, to: SUPPORT, direction: 'outbound-api' }, 'callback')).toMatchObject({ name: 'callback', by: 'profile-parameter', unknownProfile: null });
    expect(selectProfile(c, { from: ELSEWHERE, to: SUPPORT, direction: 'inbound' }, 'default').agent).toBe(c.agent);
    expect(selectProfile(c, { from: ELSEWHERE, to: SUPPORT, direction: 'inbound' }, 'nope')).toMatchObject({ name: 'helpdesk', by: 'number', unknownProfile: 'nope' });
  });
});

describe('AGENT_CONFIG_URL\'s answer over the profile', () => {
  const profile = (): AppConfig['agent'] => loaded().profiles.byName.get('sales')?.agent ?? loaded().agent;

  it('overrides what it names, with the profile rules, and keeps the rest', () => {
    const base = profile();
    const result = applyOverride(base, { instructions: 'VIP caller.', voice: 'marin', turnDetection: { threshold: 0.7 }, greeting: { text: 'Welcome back!' }, tools: [] }, true);
    expect(result).toEqual({
      ok: true,
      dropped: [],
      agent: { ...base, instructions: 'VIP caller.', voice: 'marin', turnDetection: { ...base.turnDetection, threshold: 0.7 }, greeting: { text: 'Welcome back!' }, tools: [] },
    });
  });

  it('an empty object changes nothing', () => {
    expect(applyOverride(profile(), {}, true)).toEqual({ ok: true, agent: profile(), dropped: [] });
  });

  it('rejects the whole answer for one bad key, naming every problem', () => {
    expect(applyOverride(profile(), { instructions: 'ok', voice: 7, greting: null }, true)).toEqual({
      ok: false,
      problems: ['voice must be a non-empty string', 'greting is not a known key (did you mean "greeting"?)'],
    });
    expect(applyOverride(profile(), { name: 'x', numbers: {} }, true)).toMatchObject({ ok: false });
    expect(applyOverride(profile(), { model: 'gpt-other' }, true)).toMatchObject({ ok: false, problems: [expect.stringMatching(/^model "gpt-other" differs/)] });
    expect(applyOverride(profile(), { instructions: 'Hi {{fro}}' }, true)).toMatchObject({ ok: false, problems: [expect.stringMatching(/unknown placeholder \{\{fro\}\}/)] });
  });

  it('rejects an answer that is not an object', () => {
    for (const answer of [[], 'text', 42, null, true]) expect(applyOverride(profile(), answer, true)).toMatchObject({ ok: false, problems: [expect.stringMatching(/must be a JSON object/)] });
  });

  it('takes transfer_call out without REST credentials, and says so', () => {
    const result = applyOverride(profile(), { tools: [{ type: 'transfer_call', to: '+15557778888' }] }, false);
    expect(result).toMatchObject({ ok: true, dropped: ['transfer_call'] });
    expect(result.ok && result.agent.tools).toEqual([]);
  });
});

describe('the merge and the serialiser behind it', () => {
  it('agentConfigToJson is the inverse of parseAgentConfig', () => {
    const c = loaded();
    for (const agent of [c.agent, ...[...c.profiles.byName.values()].map((p) => p.agent)]) {
      expect(parseAgentConfig(agentConfigToJson(agent))).toEqual(agent);
    }
    const withHttp = parseAgentConfig({
      ...mainConfig(),
      transcription: null,
      noiseReduction: null,
      idle: null,
      tools: [{ type: 'http', name: 't', description: 'd', parameters: { type: 'object' }, url: 'https://x.example/t' }, { type: 'transfer_call', to: 'sip:a@b' }],
    });
    expect(parseAgentConfig(agentConfigToJson(withHttp))).toEqual(withHttp);
  });

  it('merges objects at any depth, replaces arrays, null and scalars, and leaves both inputs alone', () => {
    const base = { a: { b: 1, c: { d: 2, e: 3 } }, list: [1, 2], greeting: { text: 'x' }, keep: true };
    const overlay = { a: { c: { e: 4 } }, list: [3], greeting: { instructions: 'y' }, extra: null };
    const frozen = JSON.stringify([base, overlay]);
    expect(mergeAgentJson(base, overlay)).toEqual({ a: { b: 1, c: { d: 2, e: 4 } }, list: [3], greeting: { instructions: 'y' }, keep: true, extra: null });
    expect(JSON.stringify([base, overlay])).toBe(frozen);
    expect(mergeAgentJson({ dtmf: { timeoutMs: 1 } }, { dtmf: null })).toEqual({ dtmf: null });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
