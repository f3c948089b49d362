/**
 * Typed configuration: agent behaviour from config/default.json, secrets and endpoints from the
 * environment. Validated once; every problem is reported with the key that caused it.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MIN_SILENCE_DURATION_MS = 500;

/** What the agent says first. `null`: wait for the caller. */
export type GreetingConfig = null | { text: string } | { instructions: string };

/** Ends the call once the caller has heard the agent's goodbye. */
export interface EndCallTool {
  type: 'end_call';
  description?: string;
}
/** Cold transfer to a number (E.164) or a SIP URI, once the handoff sentence has been heard. */
export interface TransferCallTool {
  type: 'transfer_call';
  to: string;
  description?: string;
}
/** A function the model may call, run as a signed JSON POST to `url`. */
export interface HttpTool {
  type: 'http';
  name: string;
  description: string;
  /** JSON Schema of the arguments object */
  parameters: Record<string, unknown>;
  url: string;
  timeoutMs: number;
}
export type ToolConfig = EndCallTool | TransferCallTool | HttpTool;

/** Keypad digits are collected into one entry until the terminator, maxDigits or a pause. */
export interface DtmfConfig {
  timeoutMs: number;
  /** one of the keys `#` or `*`, or '' for none */
  terminator: string;
  maxDigits: number;
}

export interface IdleConfig {
  reminderAfterMs: number;
  maxReminders: number;
}

export interface AgentConfig {
  model: string;
  instructions: string;
  voice: string;
  transcriptionModel: string | null;
  noiseReduction: 'near_field' | 'far_field' | null;
  turnDetection: { threshold: number; prefixPaddingMs: number; silenceDurationMs: number };
  suppressDeltasMs: number;
  markIntervalMs: number;
  maxBufferedInboundMs: number;
  greeting: GreetingConfig;
  tools: ToolConfig[];
  dtmf: DtmfConfig | null;
  idle: IdleConfig | null;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export type RealtimeBackend = 'openai' | 'local';

export interface AppConfig {
  port: number;
  /** `local`: the embedded echo model on loopback (the default without an API key) */
  realtimeBackend: RealtimeBackend;
  host: string;
  openaiApiKey: string | null;
  realtimeUrl: string;
  publicUrl: string | null;
  logLevel: LogLevel;
  /** RECORD_CALLS: folder for per-call captures (replayable with `npm run replay`) */
  recordCallsDir: string | null;
  /** TWILIO_AUTH_TOKEN: when set, every webhook and stream must be signed by Twilio */
  twilioAuthToken: string | null;
  /** TWILIO_ACCOUNT_SID: with the auth token, lets the service hang calls up through the REST API */
  twilioAccountSid: string | null;
  /** MAX_CALLS: concurrent calls per process; beyond it the webhook answers "busy" */
  maxCalls: number;
  /** MAX_CALL_DURATION_S */
  maxCallDurationMs: number;
  /** DRAIN_TIMEOUT_S: how long live calls may go on after SIGTERM */
  drainTimeoutMs: number;
  agent: AgentConfig;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_CONFIG_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'config', 'default.json');

type Json = Record<string, unknown>;

class Reader {
  readonly problems: string[] = [];

  constructor(private readonly root: Json) {}

  private at(path: string): unknown {
    let v: unknown = this.root;
    for (const key of path.split('.')) {
      if (typeof v !== 'object' || v === null) return undefined;
      v = (v as Json)[key];
    }
    return v;
  }

  string(path: string): string {
    const v = this.at(path);
    if (typeof v !== 'string' || v.trim() === '') {
      this.problems.push(`${path} must be a non-empty string`);
      return '';
    }
    return v;
  }

  nullableString(path: string): string | null {
    const v = this.at(path);
    if (v === null) return null;
    return this.string(path);
  }

  number(path: string, min: number, max: number, integer = false): number {
    const v = this.at(path);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      this.problems.push(`${path} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(v)}`);
      return min;
    }
    return v;
  }
}

export function parseAgentConfig(raw: unknown): AgentConfig {
  if (typeof raw !== 'object' || raw === null) throw new ConfigError(['config file must hold a JSON object']);
  const r = new Reader(raw as Json);
  const transcription = (raw as Json)['transcription'];
  const noise = (raw as Json)['noiseReduction'];
  const problems: string[] = [];
  if (noise !== null && noise !== 'near_field' && noise !== 'far_field') {
    problems.push(`noiseReduction must be "near_field", "far_field" or null, got ${JSON.stringify(noise)}`);
  }
  const agent: AgentConfig = {
    model: r.string('model'),
    instructions: r.string('instructions'),
    voice: r.string('voice'),
    transcriptionModel: transcription === null ? null : r.string('transcription.model'),
    noiseReduction: noise === 'near_field' || noise === 'far_field' ? noise : null,
    turnDetection: {
      threshold: r.number('turnDetection.threshold', 0, 1),
      prefixPaddingMs: r.number('turnDetection.prefixPaddingMs', 0, 2000, true),
      silenceDurationMs: r.number('turnDetection.silenceDurationMs', MIN_SILENCE_DURATION_MS, 5000, true),
    },
    suppressDeltasMs: r.number('interruption.suppressDeltasMs', 0, 5000, true),
    markIntervalMs: r.number('playout.markIntervalMs', 10, 100, true),
    maxBufferedInboundMs: r.number('limits.maxBufferedInboundMs', 100, 60_000, true),
    // PLACEHOLDER: replaced by validated parsing of the agent keys
    greeting: null,
    tools: [],
    dtmf: null,
    idle: null,
  };
  const all = [...r.problems, ...problems];
  if (all.length > 0) throw new ConfigError(all);
  return agent;
}

const LOG_LEVELS: ReadonlySet<string> = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function loadConfig(env: NodeJS.ProcessEnv = process.env, configPath = DEFAULT_CONFIG_PATH): AppConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new ConfigError([`cannot read ${configPath}: ${(err as Error).message}`]);
  }
  const agent = parseAgentConfig(raw);
  const problems: string[] = [];

  const port = env['PORT'] === undefined || env['PORT'] === '' ? 5050 : Number(env['PORT']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`PORT must be an integer 0-65535, got "${env['PORT']}"`);

  const realtimeUrl = nonEmpty(env['OPENAI_REALTIME_URL']) ?? `wss://api.openai.com/v1/realtime?model=${encodeURIComponent(agent.model)}`;
  if (!isUrl(realtimeUrl, ['ws:', 'wss:'])) problems.push(`OPENAI_REALTIME_URL must be a ws:// or wss:// URL, got "${realtimeUrl}"`);

  const publicUrlRaw = nonEmpty(env['PUBLIC_URL']);
  let publicUrl: string | null = null;
  if (publicUrlRaw !== null) {
    if (!isUrl(publicUrlRaw, ['https:', 'http:'])) problems.push(`PUBLIC_URL must be an https:// URL, got "${publicUrlRaw}"`);
    else publicUrl = publicUrlRaw.replace(/\/+$/, '');
  }

  const logLevel = (nonEmpty(env['LOG_LEVEL']) ?? 'info').toLowerCase();
  if (!LOG_LEVELS.has(logLevel)) problems.push(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}, got "${logLevel}"`);

  const intEnv = (name: string, fallback: number, min: number, max: number): number => {
    const raw = nonEmpty(env[name]);
    if (raw === null) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer ${min}-${max}, got "${raw}"`);
      return fallback;
    }
    return n;
  };
  const maxCalls = intEnv('MAX_CALLS', 100, 1, 100_000);
  const maxCallDurationS = intEnv('MAX_CALL_DURATION_S', 4 * 3600, 10, 24 * 3600);
  const drainTimeoutS = intEnv('DRAIN_TIMEOUT_S', 300, 0, 24 * 3600);
  const twilioAuthToken = nonEmpty(env['TWILIO_AUTH_TOKEN']);
  if (twilioAuthToken !== null && publicUrl === null && publicUrlRaw === null) {
    problems.push('TWILIO_AUTH_TOKEN is set but PUBLIC_URL is not: signatures are computed over the public URL, never the Host header');
  }

  const openaiApiKey = nonEmpty(env['OPENAI_API_KEY']);
  const backendRaw = (nonEmpty(env['REALTIME_BACKEND']) ?? (openaiApiKey === null ? 'local' : 'openai')).toLowerCase();
  if (backendRaw !== 'local' && backendRaw !== 'openai') problems.push(`REALTIME_BACKEND must be "local" or "openai", got "${backendRaw}"`);
  if (backendRaw === 'openai' && openaiApiKey === null && nonEmpty(env['OPENAI_REALTIME_URL']) === null) {
    problems.push('REALTIME_BACKEND=openai needs OPENAI_API_KEY (or an OPENAI_REALTIME_URL that takes no key)');
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    port,
    realtimeBackend: backendRaw === 'local' ? 'local' : 'openai',
    host: nonEmpty(env['HOST']) ?? '0.0.0.0',
    openaiApiKey,
    realtimeUrl,
    publicUrl,
    logLevel: logLevel as LogLevel,
    recordCallsDir: nonEmpty(env['RECORD_CALLS']),
    twilioAuthToken,
    twilioAccountSid: nonEmpty(env['TWILIO_ACCOUNT_SID']),
    maxCalls,
    maxCallDurationMs: maxCallDurationS * 1000,
    drainTimeoutMs: drainTimeoutS * 1000,
    agent,
  };
}

function nonEmpty(v: string | undefined): string | null {
  return v === undefined || v.trim() === '' ? null : v.trim();
}

function isUrl(s: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(s).protocol);
  } catch {
    return false;
  }
}
