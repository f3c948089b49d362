import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from '../../src/config.js';

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
    });
    expect(c.port).toBe(6060);
    expect(c.realtimeBackend).toBe('openai');
    expect(c.openaiApiKey).toBe('sk-test');
    expect(c.realtimeUrl).toBe('wss://example.openai.azure.com/openai/v1/realtime?model=dep');
    expect(c.publicUrl).toBe('https://abc.ngrok.app');
    expect(c.logLevel).toBe('debug');
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

  it('refuses the openai backend with no key and the default endpoint', () => {
    expect(() => loadConfig({ REALTIME_BACKEND: 'openai' })).toThrow(/OPENAI_API_KEY/);
  });
});
