import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG_PATH, MAX_WORKERS, loadConfig, parseAgentConfig, parseWorkers, toolName } from '../../src/config.js';
import { configProblems, defaultConfigJson } from '../support/config-problems.js';

const defaults = defaultConfigJson;

/** The problems parseAgentConfig reports for the default config after `patch` (none: []). */
function problemsOf(patch: (c: Record<string, unknown>) => void): string[] {
  const raw = defaults();
  patch(raw);
  return configProblems(() => parseAgentConfig(raw));
}

const HTTP_TOOL = {
  type: 'http',
  name: 'lookup_order',
  description: 'Looks an order up by its number',
  parameters: { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] },
  url: 'https://tools.example.com/lookup',
};

const TRANSFER_TOOL = { type: 'transfer_call', to: '+14155550100' };

const CREDENTIALS = { TWILIO_ACCOUNT_SID: 'AC123', TWILIO_AUTH_TOKEN: 'token', PUBLIC_URL: 'https://cb.example.com' };

function withConfig(patch: (c: Record<string, unknown>) => void): string {
  const raw = JSON.parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as Record<string, unknown>;
  patch(raw);
  const path = join(mkdtempSync(join(tmpdir(), 'cb-config-')), 'config.json');
  writeFileSync(path, JSON.stringify(raw));
  return path;
}

describe('config', () => {
  it('has the documented defaults and runs on the local model without a key', () => {
    const c = loadConfig({});
    expect(c.port).toBe(5050);
    expect(c.metricsPort).toBe(9464);
    expect(c.host).toBe('0.0.0.0');
    expect(c.realtimeBackend).toBe('local');
    expect(c.realtimeUrl).toBe('wss://api.openai.com/v1/realtime?model=gpt-realtime');
    expect(c.publicUrl).toBeNull();
    expect(c.agent.turnDetection).toEqual({ threshold: 0.6, prefixPaddingMs: 300, silenceDurationMs: 500 });
    expect(c.agent.suppressDeltasMs).toBe(500);
  });

  it('takes secrets and endpoints from the environment', () => {
    const c = loadConfig({
      PORT: '6060',
      OPENAI_API_KEY: 'sk-test',
      OPENAI_REALTIME_URL: 'wss://example.openai.azure.com/openai/v1/realtime?model=dep',
      PUBLIC_URL: 'https://abc.ngrok.app/',
      LOG_LEVEL: 'debug',
      TWILIO_AUTH_TOKEN: 'token',
    });
    expect(c.port).toBe(6060);
    expect(c.realtimeBackend).toBe('openai');
    expect(c.openaiApiKey).toBe('sk-test');
    expect(c.realtimeUrl).toBe('wss://example.openai.azure.com/openai/v1/realtime?model=dep');
    expect(c.publicUrl).toBe('https://abc.ngrok.app');
    expect(c.logLevel).toBe('debug');
  });

  it('refuses to spend a real API key unsigned unless told to; the embedded model needs neither', () => {
    expect(() => loadConfig({ OPENAI_API_KEY: 'sk-test' })).toThrow(/OPENAI_API_KEY is set but TWILIO_AUTH_TOKEN is not.*ALLOW_UNSIGNED_TWILIO=true/);
    expect(loadConfig({ OPENAI_API_KEY: 'sk-test', ALLOW_UNSIGNED_TWILIO: 'true' }).twilioAuthToken).toBeNull();
    expect(loadConfig({ OPENAI_API_KEY: 'sk-test', TWILIO_AUTH_TOKEN: 't', PUBLIC_URL: 'https://x.example' }).openaiApiKey).toBe('sk-test');
    // the key is not used by the embedded model, so nothing is at stake
    expect(loadConfig({ OPENAI_API_KEY: 'sk-test', REALTIME_BACKEND: 'local' }).realtimeBackend).toBe('local');
    expect(loadConfig({}).realtimeBackend).toBe('local');
    // an endpoint that takes no key (a local model) is not a real key either
    expect(loadConfig({ REALTIME_BACKEND: 'openai', OPENAI_REALTIME_URL: 'ws://127.0.0.1:9/v1' }).twilioAuthToken).toBeNull();
    expect(() => loadConfig({ OPENAI_API_KEY: 'sk-test', ALLOW_UNSIGNED_TWILIO: 'yes' })).toThrow(/ALLOW_UNSIGNED_TWILIO must be "true" or "false"/);
  });

  it('refuses a silence duration below 500 ms, naming the key', () => {
    const path = withConfig((c) => {
      (c['turnDetection'] as Record<string, unknown>)['silenceDurationMs'] = 200;
    });
    expect(() => loadConfig({}, path)).toThrow(ConfigError);
    expect(() => loadConfig({}, path)).toThrow(/turnDetection\.silenceDurationMs/);
  });

  it('reports every bad environment value at once', () => {
    try {
      loadConfig({ PORT: 'abc', OPENAI_REALTIME_URL: 'http://x', LOG_LEVEL: 'loud', REALTIME_BACKEND: 'cloud' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toHaveLength(4);
    }
  });

  describe('METRICS_PORT', () => {
    it('is 9464 unless set, and takes 1-65535 or 0 (an ephemeral port)', () => {
      expect(loadConfig({}).metricsPort).toBe(9464);
      expect(loadConfig({ METRICS_PORT: '' }).metricsPort).toBe(9464);
      expect(loadConfig({ METRICS_PORT: '9100' }).metricsPort).toBe(9100);
      expect(loadConfig({ METRICS_PORT: ' 1 ' }).metricsPort).toBe(1);
      expect(loadConfig({ METRICS_PORT: '65535' }).metricsPort).toBe(65535);
      expect(loadConfig({ METRICS_PORT: '0' }).metricsPort).toBe(0);
    });

    it('refuses anything else, naming the variable and the value', () => {
      for (const bad of ['65536', '-1', '9464.5', '1e3', 'metrics', '0x2400']) {
        try {
          loadConfig({ METRICS_PORT: bad });
          expect.unreachable(`METRICS_PORT=${bad} was accepted`);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).problems).toEqual([`METRICS_PORT must be an integer 1-65535 (or 0 for an ephemeral port), got "${bad}"`]);
        }
      }
    });

    it('must differ from PORT, so metrics never land on the public port; two ephemeral ports do differ', () => {
      expect(() => loadConfig({ PORT: '6000', METRICS_PORT: '6000' })).toThrow(/METRICS_PORT must differ from PORT \(both are 6000\)/);
      expect(() => loadConfig({ PORT: '9464' })).toThrow(/PORT is 9464, the default METRICS_PORT/);
      expect(loadConfig({ PORT: '9464', METRICS_PORT: '9465' }).metricsPort).toBe(9465);
      expect(loadConfig({ PORT: '0', METRICS_PORT: '0' })).toMatchObject({ port: 0, metricsPort: 0 });
    });
  });

  describe('WORKERS', () => {
    it('is one process unless asked: unset, empty or 1', () => {
      expect(loadConfig({}).workers).toBe(1);
      expect(loadConfig({ WORKERS: '' }).workers).toBe(1);
      expect(loadConfig({ WORKERS: '1' }).workers).toBe(1);
    });

    it('takes a count up to 64, and auto as the cores Node may use', () => {
      expect(loadConfig({ WORKERS: '2' }).workers).toBe(2);
      expect(loadConfig({ WORKERS: ' 64 ' }).workers).toBe(64);
      expect(loadConfig({ WORKERS: 'auto' }).workers).toBe(Math.min(64, availableParallelism()));
      expect(loadConfig({ WORKERS: 'AUTO' }).workers).toBe(Math.min(64, availableParallelism()));
      expect(parseWorkers('auto', [], () => 200)).toBe(MAX_WORKERS);
      expect(parseWorkers('auto', [], () => 1)).toBe(1);
    });

    it('refuses anything else, naming the variable and the value', () => {
      for (const bad of ['0', '65', '-2', '2.5', '1e1', 'two', 'auto-ish', '0x2']) {
        try {
          loadConfig({ WORKERS: bad });
          expect.unreachable(`WORKERS=${bad} was accepted`);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).problems).toEqual([`WORKERS must be an integer 1-64 or "auto", got "${bad}"`]);
        }
      }
    });

    it('warns when there are more workers than MAX_CALLS, since each admits at least one call', () => {
      expect(loadConfig({ WORKERS: '4', MAX_CALLS: '3' }).startupWarnings.some((w) => w.startsWith('WORKERS=4 is more than MAX_CALLS=3'))).toBe(true);
      expect(loadConfig({ WORKERS: '4', MAX_CALLS: '4' }).startupWarnings.some((w) => w.startsWith('WORKERS='))).toBe(false);
    });
  });

  it('refuses the openai backend with no key and the default endpoint', () => {
    expect(() => loadConfig({ REALTIME_BACKEND: 'openai' })).toThrow(/OPENAI_API_KEY/);
  });

  describe('agent keys', () => {
    it('the shipped default.json has greeting, end_call, dtmf and idle', () => {
      const c = loadConfig({});
      expect(c.configFile).toBe(DEFAULT_CONFIG_PATH);
      expect(c.agent.greeting).toEqual({ text: 'Hello! How can I help you today?' });
      expect(c.agent.tools).toEqual([{ type: 'end_call' }]);
      expect(c.agent.dtmf).toEqual({ timeoutMs: 2000, terminator: '#', maxDigits: 20 });
      expect(c.agent.idle).toEqual({ reminderAfterMs: 8000, maxReminders: 2 });
      expect(c.toolsSecret).toBeNull();
      expect(c.twilioApiBaseUrl).toBe('https://api.twilio.com');
    });

    it('fills the defaults when the keys are absent', () => {
      const raw = defaults();
      for (const key of ['greeting', 'tools', 'dtmf', 'idle', 'input']) delete raw[key];
      const a = parseAgentConfig(raw);
      expect(a.greeting).toEqual({ text: 'Hello! How can I help you today?' });
      expect(a.tools).toEqual([]);
      expect(a.dtmf).toEqual({ timeoutMs: 2000, terminator: '#', maxDigits: 20 });
      expect(a.idle).toEqual({ reminderAfterMs: 8000, maxReminders: 2 });
    });

    it('null turns greeting, dtmf and idle off', () => {
      const raw = { ...defaults(), greeting: null, dtmf: null, idle: null };
      const a = parseAgentConfig(raw);
      expect(a.greeting).toBeNull();
      expect(a.dtmf).toBeNull();
      expect(a.idle).toBeNull();
    });

    it('accepts instructions greetings, every tool type and a $comment', () => {
      const a = parseAgentConfig({
        ...defaults(),
        $comment: 'test agent',
        greeting: { instructions: 'Greet the caller by the time of day.' },
        tools: [
          { type: 'end_call', description: 'Hang up once the caller said goodbye' },
          { type: 'transfer_call', to: 'sip:support@pbx.example.com', description: 'A human' },
          HTTP_TOOL,
          { ...HTTP_TOOL, name: 'book-slot', url: 'http://127.0.0.1:9000/book', timeoutMs: 12_000 },
        ],
        dtmf: { timeoutMs: 3000, terminator: '', maxDigits: 4 },
        idle: { reminderAfterMs: 15_000, maxReminders: 0 },
      });
      expect(a.greeting).toEqual({ instructions: 'Greet the caller by the time of day.' });
      expect(a.tools.map(toolName)).toEqual(['end_call', 'transfer_call', 'lookup_order', 'book-slot']);
      expect(a.tools[2]).toEqual({ ...HTTP_TOOL, timeoutMs: 5000 });
      expect(a.tools[3]).toMatchObject({ timeoutMs: 12_000 });
      expect(a.dtmf).toEqual({ timeoutMs: 3000, terminator: '', maxDigits: 4 });
      expect(a.idle).toEqual({ reminderAfterMs: 15_000, maxReminders: 0 });
    });

    it('refuses an unknown top-level key, naming it', () => {
      const problems = problemsOf((c) => {
        c['greting'] = { text: 'Hi' };
      });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^greting is not a known key .*"greeting"/);
      expect(() => loadConfig({}, withConfig((c) => void (c['greting'] = null)))).toThrow(/greting/);
    });

    it('refuses unknown keys in the nested objects', () => {
      const problems = problemsOf((c) => {
        (c['turnDetection'] as Record<string, unknown>)['silenceMs'] = 700;
        (c['limits'] as Record<string, unknown>)['other'] = 1;
      });
      expect(problems).toEqual([expect.stringMatching(/^turnDetection\.silenceMs is not a known key/), expect.stringMatching(/^limits\.other /)]);
    });

    it('names the field and what it got when a section has the wrong type', () => {
      expect(problemsOf((c) => void (c['transcription'] = 3))).toEqual(['transcription must be null or an object {model}, got 3']);
      expect(problemsOf((c) => void ((c['turnDetection'] as Record<string, unknown>)['threshold'] = '0.5'))).toEqual([
        'turnDetection.threshold must be a number in [0, 1], got "0.5"',
      ]);
      expect(problemsOf((c) => void (c['tools'] = [{ ...HTTP_TOOL, parameters: { type: 'object', properties: [] } }]))).toEqual([
        'tools[0].parameters.properties must be an object',
      ]);
    });

    it('refuses a bad tool url, naming the tool', () => {
      const problems = problemsOf((c) => {
        c['tools'] = [{ type: 'end_call' }, TRANSFER_TOOL, { ...HTTP_TOOL, url: 'ftp://tools.example.com/x' }];
      });
      expect(problems).toEqual(['tools[2].url must be an http(s) URL, got "ftp://tools.example.com/x"']);
    });

    it('refuses duplicate tool names, a second end_call, a reserved name', () => {
      const problems = problemsOf((c) => {
        c['tools'] = [HTTP_TOOL, { type: 'end_call' }, { ...HTTP_TOOL }, { type: 'end_call' }, { ...HTTP_TOOL, name: 'transfer_call' }];
      });
      expect(problems).toHaveLength(3);
      expect(problems[0]).toMatch(/^tools\[2\]\.name "lookup_order" is already used by tools\[0\]/);
      expect(problems[1]).toMatch(/^tools\[3\]: a second end_call tool/);
      expect(problems[2]).toMatch(/^tools\[4\]\.name "transfer_call" is reserved/);
    });

    it('refuses bad tool fields, each with its key path', () => {
      const problems = problemsOf((c) => {
        c['tools'] = [
          { type: 'hangup' },
          { type: 'transfer_call', to: '4155550100' },
          { type: 'end_call', reason: 'x' },
          { ...HTTP_TOOL, name: 'has space', description: '', parameters: { type: 'string' }, timeoutMs: 50 },
          'end_call',
        ];
      });
      expect(problems).toEqual([
        expect.stringMatching(/^tools\[0\]\.type "hangup" is not a known tool type/),
        expect.stringMatching(/^tools\[1\]\.to must be an E\.164 number/),
        expect.stringMatching(/^tools\[2\]\.reason is not a known key of an end_call tool/),
        expect.stringMatching(/^tools\[3\]\.name must be 1-64/),
        expect.stringMatching(/^tools\[3\]\.description must be a non-empty string/),
        expect.stringMatching(/^tools\[3\]\.parameters must be a JSON Schema object/),
        expect.stringMatching(/^tools\[3\]\.timeoutMs must be an integer in \[100, 60000\]/),
        expect.stringMatching(/^tools\[4\] must be an object/),
      ]);
    });

    it('refuses a bad greeting shape', () => {
      expect(problemsOf((c) => void (c['greeting'] = { text: 'Hi', instructions: 'Greet' }))).toEqual([
        expect.stringMatching(/^greeting must be null, .*exactly one of greeting\.text and greeting\.instructions/),
      ]);
      expect(problemsOf((c) => void (c['greeting'] = 'Hello'))).toEqual([expect.stringMatching(/^greeting must be null/)]);
      expect(problemsOf((c) => void (c['greeting'] = { text: '' }))).toEqual([expect.stringMatching(/^greeting\.text must be a non-empty string/)]);
      expect(problemsOf((c) => void (c['greeting'] = { txt: 'Hi' }))).toEqual([
        expect.stringMatching(/^greeting\.txt is not a known key/),
        expect.stringMatching(/^greeting must be null/),
      ]);
    });

    it('input.appendMs: caller audio per upstream message, whole 20 ms frames up to 100 ms, 40 when absent', () => {
      expect(loadConfig({}).agent.inputAppendMs).toBe(40);
      const raw = defaults();
      delete raw['input'];
      expect(parseAgentConfig(raw).inputAppendMs).toBe(40);
      expect(parseAgentConfig({ ...defaults(), input: { appendMs: 100 } }).inputAppendMs).toBe(100);
      expect(parseAgentConfig({ ...defaults(), input: { appendMs: 20 } }).inputAppendMs).toBe(20);
      for (const bad of [10, 50, 101, 120, 40.5]) {
        expect(problemsOf((c) => void (c['input'] = { appendMs: bad }))).toEqual([`input.appendMs must be one of 20, 40, 60, 80 or 100, got ${bad}`]);
      }
      expect(problemsOf((c) => void (c['input'] = { appendMs: 40, frames: 2 }))).toEqual(['input.frames is not a known key (known: appendMs)']);
    });

    it('refuses a bad dtmf terminator and out-of-range dtmf and idle values', () => {
      expect(problemsOf((c) => void (c['dtmf'] = { timeoutMs: 2000, terminator: '0', maxDigits: 20 }))).toEqual([
        'dtmf.terminator must be "#", "*" or "" (none), got "0"',
      ]);
      expect(problemsOf((c) => void (c['dtmf'] = { timeoutMs: 100, terminator: '#', maxDigits: 65 }))).toEqual([
        expect.stringMatching(/^dtmf\.timeoutMs must be an integer in \[200, 30000\]/),
        expect.stringMatching(/^dtmf\.maxDigits must be an integer in \[1, 64\]/),
      ]);
      expect(problemsOf((c) => void (c['idle'] = { reminderAfterMs: 999, maxReminders: 11 }))).toEqual([
        'idle.reminderAfterMs must be an integer in [1000, 600000], got 999',
        'idle.maxReminders must be an integer in [0, 10], got 11',
      ]);
      expect(problemsOf((c) => void (c['idle'] = { reminderAfterMs: 8000 }))).toEqual([expect.stringMatching(/^idle\.maxReminders /)]);
    });

    it('reports every problem of the file at once, prefixed with its path', () => {
      const path = withConfig((c) => {
        c['greting'] = null;
        c['idle'] = { reminderAfterMs: 0, maxReminders: 2 };
        c['tools'] = [{ ...HTTP_TOOL, url: 'not a url' }];
      });
      try {
        loadConfig({}, path);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        const problems = (err as ConfigError).problems;
        expect(problems).toHaveLength(3);
        for (const p of problems) expect(p.startsWith(`${path}: `)).toBe(true);
      }
    });
  });

  describe('CONFIG_FILE', () => {
    it('reads the agent config from CONFIG_FILE', () => {
      const path = withConfig((c) => {
        c['voice'] = 'cedar';
        c['greeting'] = null;
      });
      const c = loadConfig({ CONFIG_FILE: path });
      expect(c.configFile).toBe(path);
      expect(c.agent.voice).toBe('cedar');
      expect(c.agent.greeting).toBeNull();
    });

    it('an explicit configPath wins over CONFIG_FILE', () => {
      const path = withConfig((c) => void (c['voice'] = 'cedar'));
      const c = loadConfig({ CONFIG_FILE: join(tmpdir(), 'does-not-exist.json') }, path);
      expect(c.configFile).toBe(path);
      expect(c.agent.voice).toBe('cedar');
    });

    it('a missing CONFIG_FILE stops the service, naming the path', () => {
      const missing = join(mkdtempSync(join(tmpdir(), 'cb-config-')), 'missing.json');
      expect(() => loadConfig({ CONFIG_FILE: missing })).toThrow(ConfigError);
      expect(() => loadConfig({ CONFIG_FILE: missing })).toThrow(`cannot read CONFIG_FILE ${missing}`);
    });

    it('a CONFIG_FILE that is not JSON stops the service, naming the path', () => {
      const path = join(mkdtempSync(join(tmpdir(), 'cb-config-')), 'broken.json');
      writeFileSync(path, '{ "model": ');
      expect(() => loadConfig({ CONFIG_FILE: path })).toThrow(`CONFIG_FILE ${path} is not valid JSON`);
    });
  });

  describe('TWILIO_API_BASE_URL', () => {
    it('takes https anywhere and http on loopback only', () => {
      expect(loadConfig({ TWILIO_API_BASE_URL: 'https://twilio-proxy.example.com/' }).twilioApiBaseUrl).toBe('https://twilio-proxy.example.com');
      expect(loadConfig({ TWILIO_API_BASE_URL: 'http://127.0.0.1:4010' }).twilioApiBaseUrl).toBe('http://127.0.0.1:4010');
      expect(loadConfig({ TWILIO_API_BASE_URL: 'http://localhost:4010' }).twilioApiBaseUrl).toBe('http://localhost:4010');
      expect(loadConfig({ TWILIO_API_BASE_URL: 'http://[::1]:4010' }).twilioApiBaseUrl).toBe('http://[::1]:4010');
    });

    it('refuses plain http to another host', () => {
      expect(() => loadConfig({ TWILIO_API_BASE_URL: 'http://api.twilio.com' })).toThrow(ConfigError);
      expect(() => loadConfig({ TWILIO_API_BASE_URL: 'http://api.twilio.com' })).toThrow(/TWILIO_API_BASE_URL/);
      expect(() => loadConfig({ TWILIO_API_BASE_URL: 'http://127.example.com' })).toThrow(/TWILIO_API_BASE_URL/);
      expect(() => loadConfig({ TWILIO_API_BASE_URL: 'wss://api.twilio.com' })).toThrow(/TWILIO_API_BASE_URL/);
    });
  });

  describe('startup warnings', () => {
    const withTools = (tools: unknown[]): string => withConfig((c) => void (c['tools'] = tools));

    it('none with REST credentials, TOOLS_SECRET and every tool', () => {
      const c = loadConfig({ ...CREDENTIALS, TOOLS_SECRET: 's3cret' }, withTools([{ type: 'end_call' }, TRANSFER_TOOL, HTTP_TOOL]));
      expect(c.startupWarnings).toEqual([]);
      expect(c.toolsSecret).toBe('s3cret');
      expect(c.agent.tools.map(toolName)).toEqual(['end_call', 'transfer_call', 'lookup_order']);
    });

    it('transfer_call is removed without REST credentials, with a warning', () => {
      for (const env of [{}, { TWILIO_ACCOUNT_SID: 'AC123' }, { TWILIO_AUTH_TOKEN: 'token', PUBLIC_URL: 'https://cb.example.com' }]) {
        const c = loadConfig(env, withTools([TRANSFER_TOOL]));
        expect(c.agent.tools).toEqual([]);
        expect(c.startupWarnings).toEqual([expect.stringMatching(/transfer_call .*not offered to the model/)]);
      }
    });

    it('transfer_call is kept with REST credentials', () => {
      const c = loadConfig(CREDENTIALS, withTools([TRANSFER_TOOL]));
      expect(c.agent.tools).toEqual([TRANSFER_TOOL]);
      expect(c.startupWarnings).toEqual([]);
    });

    it('warns that http tool requests are unsigned without TOOLS_SECRET', () => {
      const c = loadConfig(CREDENTIALS, withTools([HTTP_TOOL]));
      expect(c.toolsSecret).toBeNull();
      expect(c.startupWarnings).toEqual([expect.stringMatching(/^TOOLS_SECRET is not set: .*lookup_order.*unsigned/)]);
      expect(loadConfig(CREDENTIALS, withTools([{ type: 'end_call' }])).startupWarnings).toEqual([]);
    });

    it('warns that end_call only closes the stream without REST credentials', () => {
      const c = loadConfig({});
      expect(c.agent.tools).toEqual([{ type: 'end_call' }]);
      expect(c.startupWarnings).toEqual([expect.stringMatching(/^end_call .*closing the media stream/)]);
    });
  });
});
