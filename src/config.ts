/**
 * Typed configuration: agent behaviour from config/default.json, secrets and endpoints from the
 * environment. Validated once; every problem is reported with the key that caused it.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isJsonObject, mergeAgentJson } from './agent/merge.js';
import { BUILTIN_PLACEHOLDERS, CONTEXT_PREFIX, unknownPlaceholders } from './agent/template.js';

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
  /**
   * What the agent says, word for word, to an answering machine on an outbound call with
   * answering-machine detection, before it hangs up; null: hang up without a message.
   */
  voicemail: string | null;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export type RealtimeBackend = 'openai' | 'local';

export interface AppConfig {
  port: number;
  /**
   * METRICS_PORT: where GET /metrics is served, bound to HOST like PORT but never on the public
   * port (which answers 404 for it). 0: an ephemeral port (tests). With WORKERS > 1 the primary
   * listens here.
   */
  metricsPort: number;
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
  /**
   * MAX_CALLS: concurrent calls of the whole service; beyond it the webhook answers "busy". With
   * WORKERS > 1 each worker admits its share, ceil(MAX_CALLS / workers).
   */
  maxCalls: number;
  /**
   * WORKERS: processes serving calls. 1 (the default): one process, no cluster. More: a primary
   * forks this many workers (node:cluster) sharing the port. `auto` is resolved here to
   * os.availableParallelism(), capped at MAX_WORKERS.
   */
  workers: number;
  /** MAX_CALL_DURATION_S */
  maxCallDurationMs: number;
  /** DRAIN_TIMEOUT_S: how long live calls may go on after SIGTERM */
  drainTimeoutMs: number;
  /** the agent config file actually read: the `configPath` argument, else CONFIG_FILE, else config/default.json */
  configFile: string;
  /** TOOLS_SECRET: key of the `X-Callbridge-Signature` HMAC-SHA256 on http tool requests; `null`: unsigned */
  toolsSecret: string | null;
  /** REPORTS_DIR, CALL_REPORT_URL, RECORD_AUDIO: what each call leaves behind (parseReportSettings) */
  reports: ReportSettings;
  /** TWILIO_API_BASE_URL (no trailing slash): https, or http on loopback only (tests, fakes) */
  twilioApiBaseUrl: string;
  /** to be logged at start (`logger.warn`): degraded but working set-ups */
  startupWarnings: string[];
  /** the default profile: the main config file's agent, which answers every number `numbers` does not map */
  agent: AgentConfig;
  /** the other profiles (`numbers`, `profiles` of the config file), merged over `agent` */
  profiles: AgentProfiles;
  /** AGENT_CONFIG_URL: asked per call for overrides of the profile; null: the static profiles only */
  agentConfigUrl: string | null;
  /** AGENT_CONFIG_TIMEOUT_MS: how long a call's agent may wait for AGENT_CONFIG_URL's answer */
  agentConfigTimeoutMs: number;
  /** API_TOKEN: bearer token of POST /calls (outbound calls); null: the route does not exist */
  apiToken: string | null;
  /** TWILIO_FROM_NUMBER (E.164): the caller id of outbound calls */
  twilioFromNumber: string | null;
}

/** A named agent: a profile file merged over the main config (see `refineAgentConfig`). */
export interface AgentProfile {
  /** its `name` key, else the file's base name without `.json`; how an outbound call selects it */
  name: string;
  /** the profile file, absolute */
  file: string;
  agent: AgentConfig;
}

export interface AgentProfiles {
  /** the default profile's name: the main config's `name` key, else "default" */
  defaultName: string;
  /** every profile file by name (the default profile is AppConfig.agent, not listed here) */
  byName: ReadonlyMap<string, AgentProfile>;
  /** the service's own number (E.164) → the name of the profile that answers it */
  numbers: ReadonlyMap<string, string>;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_CONFIG_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'config', 'default.json');

/**
 * Calls per process by default. `npm run bench:load -- --find-capacity` on the 2-core development
 * machine (load generator on the same cores) put the point where barge-in reaction p99, measured
 * from outside, passes 5 ms anywhere from 32 to 113 calls depending on the run, and 100 calls at
 * 5.1 ms: 50 keeps a full process inside the bound on an ordinary run (README, Sizing).
 */
export const DEFAULT_MAX_CALLS = 50;

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

/** Top-level keys of the agent config file (plus `$comment`, a free-form string). */
export const AGENT_CONFIG_KEYS: readonly string[] = [
  'model',
  'instructions',
  'voice',
  'transcription',
  'noiseReduction',
  'turnDetection',
  'interruption',
  'playout',
  'limits',
  'greeting',
  'tools',
  'dtmf',
  'idle',
  'voicemail',
];

/** Keys of the nested objects of the agent config file. */
const NESTED_KEYS: Readonly<Record<string, readonly string[]>> = {
  transcription: ['model'],
  turnDetection: ['threshold', 'prefixPaddingMs', 'silenceDurationMs'],
  interruption: ['suppressDeltasMs'],
  playout: ['markIntervalMs'],
  limits: ['maxBufferedInboundMs'],
};

export const DEFAULT_GREETING: { text: string } = { text: 'Hello! How can I help you today?' };
export const DEFAULT_DTMF: DtmfConfig = { timeoutMs: 2000, terminator: '#', maxDigits: 20 };
export const DEFAULT_IDLE: IdleConfig = { reminderAfterMs: 8000, maxReminders: 2 };
export const DEFAULT_HTTP_TOOL_TIMEOUT_MS = 5000;
/** Function names the model sees for the built-in tools; an http tool may not take them. */
export const RESERVED_TOOL_NAMES: readonly string[] = ['end_call', 'transfer_call'];
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const E164 = /^\+[0-9]{2,15}$/;
const SIP_URI = /^sip:[^\s]+$/;

/** The function name under which a tool is offered to the model. */
export function toolName(tool: ToolConfig): string {
  return tool.type === 'http' ? tool.name : tool.type;
}

/**
 * Validates an agent config (a config file, a profile file merged over it, a webhook's answer
 * merged over a profile) and returns it typed, or throws a ConfigError naming every offending key.
 * `extraKeys`: top-level keys the caller reads itself (the main file's `numbers`, say); their
 * names pass the unknown-key check here, their values are the caller's to check.
 */
export function parseAgentConfig(raw: unknown, extraKeys: readonly string[] = []): AgentConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(['config file must hold a JSON object']);
  const root = raw as Json;
  const r = new Reader(root);
  const transcription = root['transcription'];
  const noise = root['noiseReduction'];
  const problems: string[] = [];
  checkKeys(root, '', [...AGENT_CONFIG_KEYS, ...extraKeys], problems);
  for (const [key, known] of Object.entries(NESTED_KEYS)) {
    const v = root[key];
    if (isObject(v)) checkKeys(v, key, known, problems);
  }
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
    greeting: parseGreeting(root, problems),
    tools: parseTools(root, problems),
    dtmf: parseDtmf(root, problems),
    idle: parseIdle(root, problems),
    voicemail: parseVoicemail(root, problems),
  };
  checkPlaceholders(agent, problems);
  const all = [...r.problems, ...problems];
  if (all.length > 0) throw new ConfigError(all);
  return agent;
}

/** The texts that take caller context placeholders (src/agent/template.ts), by key. */
export function templatedTexts(agent: AgentConfig): Array<[key: string, text: string]> {
  const texts: Array<[string, string]> = [['instructions', agent.instructions]];
  if (agent.greeting !== null) {
    texts.push('text' in agent.greeting ? ['greeting.text', agent.greeting.text] : ['greeting.instructions', agent.greeting.instructions]);
  }
  if (agent.voicemail !== null) texts.push(['voicemail', agent.voicemail]);
  return texts;
}

/**
 * A placeholder no call could fill is a typo, caught at start like an unknown key. Context
 * parameters (`{{context.x}}`) pass: which ones a call brings is only known on the call.
 */
function checkPlaceholders(agent: AgentConfig, problems: string[]): void {
  const known = [...BUILTIN_PLACEHOLDERS, `${CONTEXT_PREFIX}<parameter>`];
  for (const [key, text] of templatedTexts(agent)) {
    for (const name of unknownPlaceholders(text)) {
      const guess = closest(name, BUILTIN_PLACEHOLDERS);
      problems.push(
        `${key} has an unknown placeholder {{${name}}}` +
          (guess === null ? ` (known: ${known.map((k) => `{{${k}}}`).join(', ')})` : ` (did you mean {{${guess}}}?)`),
      );
    }
  }
}

/** An agent config as its file would say it: parseAgentConfig(agentConfigToJson(a)) equals a. */
export function agentConfigToJson(agent: AgentConfig): Json {
  return {
    model: agent.model,
    instructions: agent.instructions,
    voice: agent.voice,
    transcription: agent.transcriptionModel === null ? null : { model: agent.transcriptionModel },
    noiseReduction: agent.noiseReduction,
    turnDetection: { ...agent.turnDetection },
    interruption: { suppressDeltasMs: agent.suppressDeltasMs },
    playout: { markIntervalMs: agent.markIntervalMs },
    limits: { maxBufferedInboundMs: agent.maxBufferedInboundMs },
    greeting: agent.greeting === null ? null : { ...agent.greeting },
    tools: agent.tools.map((tool) => ({ ...tool })),
    dtmf: agent.dtmf === null ? null : { ...agent.dtmf },
    idle: agent.idle === null ? null : { ...agent.idle },
    voicemail: agent.voicemail,
  };
}

/**
 * `overlay` (a profile file, a webhook's answer: any keys of the config file's schema) over
 * `base`: objects merged key by key, arrays such as `tools` and every other value replaced
 * (src/agent/merge.ts); the result validated like a config file. Throws a ConfigError naming each
 * offending key.
 */
export function refineAgentConfig(base: AgentConfig, overlay: Json): AgentConfig {
  const agent = parseAgentConfig(mergeAgentJson(agentConfigToJson(base), overlay));
  // The model names the Realtime URL, which is the service's, chosen once at start-up.
  if (agent.model !== base.model) {
    throw new ConfigError([`model ${JSON.stringify(agent.model)} differs from the service's ${JSON.stringify(base.model)}: the model is chosen once, for every call`]);
  }
  return agent;
}

/**
 * The tools that can work with these credentials: `transfer_call` needs the Twilio REST API.
 * `dropped` names what was taken out, for a warning.
 */
export function offerableTools(agent: AgentConfig, restCredentials: boolean): { agent: AgentConfig; dropped: string[] } {
  if (restCredentials || !agent.tools.some((t) => t.type === 'transfer_call')) return { agent, dropped: [] };
  return { agent: { ...agent, tools: agent.tools.filter((t) => t.type !== 'transfer_call') }, dropped: ['transfer_call'] };
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function has(obj: Json, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key) && obj[key] !== undefined;
}

function keyPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Every key of `obj` must be known; `$comment` (a string) is allowed anywhere. */
function checkKeys(obj: Json, path: string, known: readonly string[], problems: string[], what = ''): void {
  for (const key of Object.keys(obj)) {
    if (key === '$comment') {
      if (typeof obj[key] !== 'string') problems.push(`${keyPath(path, key)} must be a string`);
      continue;
    }
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    problems.push(
      `${keyPath(path, key)} is not a known key${what === '' ? '' : ` of ${what}`}` +
        (guess === null ? ` (known: ${known.join(', ')})` : ` (did you mean "${guess}"?)`),
    );
  }
}

function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

function nonEmptyString(v: unknown, path: string, problems: string[]): string {
  if (typeof v !== 'string' || v.trim() === '') {
    problems.push(`${path} must be a non-empty string, got ${JSON.stringify(v)}`);
    return '';
  }
  return v;
}

function integer(v: unknown, path: string, min: number, max: number, problems: string[]): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    problems.push(`${path} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return min;
  }
  return v;
}

function parseGreeting(root: Json, problems: string[]): GreetingConfig {
  if (!has(root, 'greeting')) return { ...DEFAULT_GREETING };
  const v = root['greeting'];
  if (v === null) return null;
  const shape = 'greeting must be null, {"text": "…"} or {"instructions": "…"}';
  if (!isObject(v)) {
    problems.push(`${shape}, got ${JSON.stringify(v)}`);
    return null;
  }
  checkKeys(v, 'greeting', ['text', 'instructions'], problems);
  const hasText = has(v, 'text');
  const hasInstructions = has(v, 'instructions');
  if (hasText === hasInstructions) {
    problems.push(`${shape}: exactly one of greeting.text and greeting.instructions`);
    return null;
  }
  if (hasText) return { text: nonEmptyString(v['text'], 'greeting.text', problems) };
  return { instructions: nonEmptyString(v['instructions'], 'greeting.instructions', problems) };
}

/**
 * Outbound calls' voicemail. Bounded: Twilio's `<Say>` (the REST fallback, README "Outbound
 * calls") takes 4096 characters, and a message longer than a minute or so is cut by most machines.
 */
export const MAX_VOICEMAIL_CHARS = 1000;

function parseVoicemail(root: Json, problems: string[]): string | null {
  if (!has(root, 'voicemail') || root['voicemail'] === null) return null;
  const text = nonEmptyString(root['voicemail'], 'voicemail', problems);
  if (text.length > MAX_VOICEMAIL_CHARS) problems.push(`voicemail must be at most ${MAX_VOICEMAIL_CHARS} characters, got ${text.length}`);
  return text;
}

function parseTools(root: Json, problems: string[]): ToolConfig[] {
  if (!has(root, 'tools')) return [];
  const v = root['tools'];
  if (!Array.isArray(v)) {
    problems.push(`tools must be an array, got ${JSON.stringify(v)}`);
    return [];
  }
  const tools: ToolConfig[] = [];
  const seen = new Map<string, string>();
  v.forEach((item: unknown, i) => {
    const path = `tools[${i}]`;
    const tool = parseTool(item, path, problems);
    if (tool === null) return;
    const name = toolName(tool);
    const first = seen.get(name);
    if (first !== undefined) {
      problems.push(
        tool.type === 'http'
          ? `${path}.name "${name}" is already used by ${first}: tool names must be unique`
          : `${path}: a second ${name} tool (the first is ${first}); at most one is allowed`,
      );
      return;
    }
    seen.set(name, path);
    tools.push(tool);
  });
  return tools;
}

function parseTool(item: unknown, path: string, problems: string[]): ToolConfig | null {
  if (!isObject(item)) {
    problems.push(`${path} must be an object, got ${JSON.stringify(item)}`);
    return null;
  }
  const type = item['type'];
  const before = problems.length;
  const description = (): { description?: string } =>
    has(item, 'description') ? { description: nonEmptyString(item['description'], `${path}.description`, problems) } : {};
  switch (type) {
    case 'end_call': {
      checkKeys(item, path, ['type', 'description'], problems, 'an end_call tool');
      const tool: EndCallTool = { type, ...description() };
      return problems.length === before ? tool : null;
    }
    case 'transfer_call': {
      checkKeys(item, path, ['type', 'to', 'description'], problems, 'a transfer_call tool');
      const to = item['to'];
      if (typeof to !== 'string' || !(E164.test(to) || SIP_URI.test(to))) {
        problems.push(`${path}.to must be an E.164 number ("+" and 2-15 digits) or a "sip:" URI, got ${JSON.stringify(to)}`);
      }
      const tool: TransferCallTool = { type, to: typeof to === 'string' ? to : '', ...description() };
      return problems.length === before ? tool : null;
    }
    case 'http': {
      checkKeys(item, path, ['type', 'name', 'description', 'parameters', 'url', 'timeoutMs'], problems, 'an http tool');
      const name = item['name'];
      if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
        problems.push(`${path}.name must be 1-64 letters, digits, "_" or "-", got ${JSON.stringify(name)}`);
      } else if (RESERVED_TOOL_NAMES.includes(name)) {
        problems.push(`${path}.name "${name}" is reserved for the built-in tool of that type`);
      }
      const desc = nonEmptyString(item['description'], `${path}.description`, problems);
      const parameters = item['parameters'];
      if (!isObject(parameters) || parameters['type'] !== 'object') {
        problems.push(`${path}.parameters must be a JSON Schema object with "type": "object", got ${JSON.stringify(parameters)}`);
      } else if (has(parameters, 'properties') && !isObject(parameters['properties'])) {
        problems.push(`${path}.parameters.properties must be an object`);
      }
      const url = item['url'];
      if (typeof url !== 'string' || !isUrl(url, ['http:', 'https:'])) {
        problems.push(`${path}.url must be an http(s) URL, got ${JSON.stringify(url)}`);
      }
      const timeoutMs = has(item, 'timeoutMs')
        ? integer(item['timeoutMs'], `${path}.timeoutMs`, 100, 60_000, problems)
        : DEFAULT_HTTP_TOOL_TIMEOUT_MS;
      if (problems.length !== before) return null;
      return {
        type,
        name: name as string,
        description: desc,
        parameters: parameters as Record<string, unknown>,
        url: url as string,
        timeoutMs,
      };
    }
    default:
      problems.push(
        type === undefined
          ? `${path}.type is missing (one of "end_call", "transfer_call", "http")`
          : `${path}.type ${JSON.stringify(type)} is not a known tool type (one of "end_call", "transfer_call", "http")`,
      );
      return null;
  }
}

function parseDtmf(root: Json, problems: string[]): DtmfConfig | null {
  if (!has(root, 'dtmf')) return { ...DEFAULT_DTMF };
  const v = root['dtmf'];
  if (v === null) return null;
  if (!isObject(v)) {
    problems.push(`dtmf must be null or an object {timeoutMs, terminator, maxDigits}, got ${JSON.stringify(v)}`);
    return null;
  }
  checkKeys(v, 'dtmf', ['timeoutMs', 'terminator', 'maxDigits'], problems);
  const terminator = v['terminator'];
  if (terminator !== '#' && terminator !== '*' && terminator !== '') {
    problems.push(`dtmf.terminator must be "#", "*" or "" (none), got ${JSON.stringify(terminator)}`);
  }
  return {
    timeoutMs: integer(v['timeoutMs'], 'dtmf.timeoutMs', 200, 30_000, problems),
    terminator: typeof terminator === 'string' ? terminator : '#',
    maxDigits: integer(v['maxDigits'], 'dtmf.maxDigits', 1, 64, problems),
  };
}

function parseIdle(root: Json, problems: string[]): IdleConfig | null {
  if (!has(root, 'idle')) return { ...DEFAULT_IDLE };
  const v = root['idle'];
  if (v === null) return null;
  if (!isObject(v)) {
    problems.push(`idle must be null or an object {reminderAfterMs, maxReminders}, got ${JSON.stringify(v)}`);
    return null;
  }
  checkKeys(v, 'idle', ['reminderAfterMs', 'maxReminders'], problems);
  return {
    reminderAfterMs: integer(v['reminderAfterMs'], 'idle.reminderAfterMs', 1000, 600_000, problems),
    maxReminders: integer(v['maxReminders'], 'idle.maxReminders', 0, 10, problems),
  };
}

const LOG_LEVELS: ReadonlySet<string> = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const DEFAULT_TWILIO_API_BASE_URL = 'https://api.twilio.com';

/** Upper bound of WORKERS: past it, more processes only add context switches and memory. */
export const MAX_WORKERS = 64;

/** WORKERS: unset or '' → 1; `auto` → the cores Node may use (capped); else an integer 1..MAX_WORKERS. */
export function parseWorkers(raw: string | undefined, problems: string[], cores: () => number = availableParallelism): number {
  const v = nonEmpty(raw);
  if (v === null) return 1;
  if (v.toLowerCase() === 'auto') return Math.max(1, Math.min(MAX_WORKERS, cores()));
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    problems.push(`WORKERS must be an integer 1-${MAX_WORKERS} or "auto", got "${v}"`);
    return 1;
  }
  return n;
}

export const DEFAULT_METRICS_PORT = 9464;

/**
 * METRICS_PORT: unset or '' → 9464 (the port Prometheus exporters customarily take); else an
 * integer 1-65535, or 0 for an ephemeral port (tests). It must differ from PORT, else the
 * metrics would be on the public port after all; two ephemeral ports (both 0) do differ.
 */
export function parseMetricsPort(raw: string | undefined, port: number | null, problems: string[]): number {
  const v = nonEmpty(raw);
  if (v === null) {
    if (port === DEFAULT_METRICS_PORT) problems.push(`PORT is ${port}, the default METRICS_PORT: set METRICS_PORT to another port`);
    return DEFAULT_METRICS_PORT;
  }
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n > 65535) {
    problems.push(`METRICS_PORT must be an integer 1-65535 (or 0 for an ephemeral port), got "${v}"`);
    return DEFAULT_METRICS_PORT;
  }
  if (port !== null && n !== 0 && n === port) problems.push(`METRICS_PORT must differ from PORT (both are ${n}): metrics are not served on the public port`);
  return n;
}

/**
 * `configPath`, when given, wins over CONFIG_FILE, which wins over config/default.json.
 * Problems in the file are reported prefixed with its path.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, configPath?: string): AppConfig {
  const fromEnv = nonEmpty(env['CONFIG_FILE']);
  const configFile = configPath ?? (fromEnv === null ? DEFAULT_CONFIG_PATH : resolve(fromEnv));
  const source = configPath === undefined && fromEnv !== null ? `CONFIG_FILE ${configFile}` : configFile;
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read ${source}: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${source} is not valid JSON: ${(err as Error).message}`]);
  }
  let parsed: AgentConfig;
  try {
    parsed = parseAgentConfig(raw, PROFILE_SET_KEYS);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems.map((p) => `${configFile}: ${p}`));
    throw err;
  }
  const problems: string[] = [];

  const port = env['PORT'] === undefined || env['PORT'] === '' ? 5050 : Number(env['PORT']);
  const portOk = Number.isInteger(port) && port >= 0 && port <= 65535;
  if (!portOk) problems.push(`PORT must be an integer 0-65535, got "${env['PORT']}"`);
  const metricsPort = parseMetricsPort(env['METRICS_PORT'], portOk ? port : null, problems);

  const realtimeUrl = nonEmpty(env['OPENAI_REALTIME_URL']) ?? `wss://api.openai.com/v1/realtime?model=${encodeURIComponent(parsed.model)}`;
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
  const maxCalls = intEnv('MAX_CALLS', DEFAULT_MAX_CALLS, 1, 100_000);
  const maxCallDurationS = intEnv('MAX_CALL_DURATION_S', 4 * 3600, 10, 24 * 3600);
  const drainTimeoutS = intEnv('DRAIN_TIMEOUT_S', 300, 0, 24 * 3600);
  const workers = parseWorkers(env['WORKERS'], problems);
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
  const allowUnsignedRaw = (nonEmpty(env['ALLOW_UNSIGNED_TWILIO']) ?? 'false').toLowerCase();
  if (allowUnsignedRaw !== 'true' && allowUnsignedRaw !== 'false') {
    problems.push(`ALLOW_UNSIGNED_TWILIO must be "true" or "false", got "${allowUnsignedRaw}"`);
  }
  // Secure by default: an unsigned service spends a real key on whoever finds its URL. The
  // embedded model costs nothing, so it runs unsigned without being asked.
  if (backendRaw === 'openai' && openaiApiKey !== null && twilioAuthToken === null && allowUnsignedRaw !== 'true') {
    problems.push(
      'OPENAI_API_KEY is set but TWILIO_AUTH_TOKEN is not: anyone who finds this URL could place calls on your API key. ' +
        'Set TWILIO_AUTH_TOKEN and PUBLIC_URL, or ALLOW_UNSIGNED_TWILIO=true to run unauthenticated on purpose (a local test through a tunnel)',
    );
  }

  const twilioApiBaseUrlRaw = nonEmpty(env['TWILIO_API_BASE_URL']) ?? DEFAULT_TWILIO_API_BASE_URL;
  if (!isSafeApiBase(twilioApiBaseUrlRaw)) {
    problems.push(`TWILIO_API_BASE_URL must be an https:// URL (http:// only on localhost, 127.x or [::1]), got "${twilioApiBaseUrlRaw}"`);
  }
  const twilioAccountSid = nonEmpty(env['TWILIO_ACCOUNT_SID']);
  const toolsSecret = nonEmpty(env['TOOLS_SECRET']);
  const reports = parseReportSettings(env, toolsSecret, problems);
  const agentConfigUrl = nonEmpty(env['AGENT_CONFIG_URL']);
  if (agentConfigUrl !== null && !isUrl(agentConfigUrl, ['http:', 'https:'])) problems.push(`AGENT_CONFIG_URL must be an http(s) URL, got "${agentConfigUrl}"`);
  const agentConfigTimeoutMs = intEnv('AGENT_CONFIG_TIMEOUT_MS', DEFAULT_AGENT_CONFIG_TIMEOUT_MS, 100, MAX_AGENT_CONFIG_TIMEOUT_MS);
  // Outbound calls (POST /calls): the bearer token, and the number they are placed from.
  const apiToken = nonEmpty(env['API_TOKEN']);
  if (apiToken !== null && apiToken.length < MIN_API_TOKEN_CHARS) problems.push(`API_TOKEN must be at least ${MIN_API_TOKEN_CHARS} characters (it lets its holder place calls), got ${apiToken.length}`);
  const twilioFromNumber = nonEmpty(env['TWILIO_FROM_NUMBER']);
  if (twilioFromNumber !== null && !/^\+[1-9]\d{1,14}$/.test(twilioFromNumber)) problems.push(`TWILIO_FROM_NUMBER must be an E.164 number (e.g. +15551234567), got "${twilioFromNumber}"`);

  if (problems.length > 0) throw new ConfigError(problems);

  const startupWarnings: string[] = [...reports.warnings];
  const restCredentials = twilioAccountSid !== null && twilioAuthToken !== null;
  const offered = offerableTools(parsed, restCredentials);
  if (offered.dropped.length > 0) startupWarnings.push(transferDroppedWarning(null));
  const agent = offered.agent;
  const profileProblems: string[] = [];
  const profiles = loadProfiles(configFile, raw as Json, agent, restCredentials, profileProblems, startupWarnings);
  if (profileProblems.length > 0) throw new ConfigError(profileProblems);

  const everyAgent = [agent, ...[...profiles.byName.values()].map((p) => p.agent)];
  const httpTools = [...new Set(everyAgent.flatMap((a) => a.tools.flatMap((t) => (t.type === 'http' ? [t.name] : []))))];
  if (httpTools.length > 0 && toolsSecret === null) {
    startupWarnings.push(
      `TOOLS_SECRET is not set: requests to the http tools (${httpTools.join(', ')}) are unsigned, so their endpoints cannot tell them from anyone else's`,
    );
  }
  if (agentConfigUrl !== null && toolsSecret === null) {
    startupWarnings.push('TOOLS_SECRET is not set: the requests to AGENT_CONFIG_URL are unsigned, so it cannot tell them from anyone else\'s');
  }
  if (!restCredentials && everyAgent.some((a) => a.tools.some((t) => t.type === 'end_call'))) {
    startupWarnings.push(
      'end_call without TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: the call is ended by closing the media stream only (Twilio then ends the call, since nothing follows <Connect>)',
    );
  }
  const outboundMissing = missingForOutbound({ twilioAccountSid, twilioAuthToken, publicUrl, twilioFromNumber });
  if (apiToken !== null && outboundMissing.length > 0) {
    startupWarnings.push(`API_TOKEN is set but ${outboundMissing.join(', ')} ${outboundMissing.length === 1 ? 'is' : 'are'} not: POST /calls answers 503 until ${outboundMissing.length === 1 ? 'it is' : 'they are'} set`);
  }
  if (workers > maxCalls) {
    startupWarnings.push(
      `WORKERS=${workers} is more than MAX_CALLS=${maxCalls}: each worker admits at least one call, so the service may take up to ${workers} calls at once`,
    );
  }

  return {
    port,
    metricsPort,
    realtimeBackend: backendRaw === 'local' ? 'local' : 'openai',
    host: nonEmpty(env['HOST']) ?? '0.0.0.0',
    openaiApiKey,
    realtimeUrl,
    publicUrl,
    logLevel: logLevel as LogLevel,
    recordCallsDir: nonEmpty(env['RECORD_CALLS']),
    twilioAuthToken,
    twilioAccountSid,
    maxCalls,
    workers,
    maxCallDurationMs: maxCallDurationS * 1000,
    drainTimeoutMs: drainTimeoutS * 1000,
    configFile,
    toolsSecret,
    reports: reports.settings,
    twilioApiBaseUrl: twilioApiBaseUrlRaw.replace(/\/+$/, ''),
    startupWarnings,
    agent,
    profiles,
    agentConfigUrl,
    agentConfigTimeoutMs,
    apiToken,
    twilioFromNumber,
  };
}

/** A bearer token shorter than this is guessable. */
export const MIN_API_TOKEN_CHARS = 16;

/** What an outbound call needs besides API_TOKEN, by env name: empty when it can be placed. */
export function missingForOutbound(config: Pick<AppConfig, 'twilioAccountSid' | 'twilioAuthToken' | 'publicUrl' | 'twilioFromNumber'>): string[] {
  const missing: string[] = [];
  if (config.twilioAccountSid === null) missing.push('TWILIO_ACCOUNT_SID');
  if (config.twilioAuthToken === null) missing.push('TWILIO_AUTH_TOKEN');
  if (config.publicUrl === null) missing.push('PUBLIC_URL');
  if (config.twilioFromNumber === null) missing.push('TWILIO_FROM_NUMBER');
  return missing;
}

export const DEFAULT_AGENT_CONFIG_TIMEOUT_MS = 3000;
/**
 * A call whose agent is not known does not start talking, and a call not talking after 5 s is
 * given up on (FIRST_CONNECT_GIVE_UP_MS): the wait must end well before that.
 */
export const MAX_AGENT_CONFIG_TIMEOUT_MS = 4000;

/** Keys of the main config file besides the agent's own: the other profiles and how calls reach them. */
const PROFILE_SET_KEYS: readonly string[] = ['name', 'numbers', 'profiles'];
/** A profile's name: what an outbound call says to select it, and what the logs show. */
export const PROFILE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const DEFAULT_PROFILE_NAME = 'default';

function transferDroppedWarning(file: string | null): string {
  return `${file === null ? '' : `${file}: `}transfer_call is configured but TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not both set: it is not offered to the model (a transfer needs the Twilio REST API)`;
}

/**
 * The profiles the main config file names: `numbers` (the service's number → profile file) and
 * `profiles` (files reachable by name only). Paths are relative to the config file; a file named
 * several times is read once. Problems name the file and the key; they stop the start.
 */
function loadProfiles(configFile: string, root: Json, main: AgentConfig, restCredentials: boolean, problems: string[], warnings: string[]): AgentProfiles {
  const defaultName = has(root, 'name') ? profileNameOf(root['name'], `${configFile}: name`, problems) : DEFAULT_PROFILE_NAME;
  const byFile = new Map<string, AgentProfile | null>();
  const byName = new Map<string, AgentProfile>();
  const load = (ref: unknown, key: string): AgentProfile | null => {
    if (typeof ref !== 'string' || ref.trim() === '') {
      problems.push(`${configFile}: ${key} must be the path of a profile file (relative to the config file), got ${JSON.stringify(ref)}`);
      return null;
    }
    const file = resolve(dirname(configFile), ref);
    const seen = byFile.get(file);
    if (seen !== undefined) return seen;
    const profile = readProfile(file, `${configFile}: ${key}`, main, restCredentials, problems, warnings);
    byFile.set(file, profile);
    if (profile === null) return null;
    const taken = profile.name === defaultName ? configFile : byName.get(profile.name)?.file;
    if (taken !== undefined) {
      problems.push(`${file}: the profile name "${profile.name}" is taken by ${taken}: give one of them another "name"`);
      return null;
    }
    byName.set(profile.name, profile);
    return profile;
  };

  const numbers = new Map<string, string>();
  if (has(root, 'numbers')) {
    const v = root['numbers'];
    if (!isObject(v)) {
      problems.push(`${configFile}: numbers must be an object {"+15551234567": "profiles/sales.json", …}, got ${JSON.stringify(v)}`);
    } else {
      for (const [number, ref] of Object.entries(v)) {
        if (number === '$comment') continue;
        const key = `numbers[${JSON.stringify(number)}]`;
        if (!E164.test(number)) {
          problems.push(`${configFile}: ${key}: ${JSON.stringify(number)} is not an E.164 number ("+" and 2-15 digits, e.g. "+15551234567")`);
          continue;
        }
        const profile = load(ref, key);
        if (profile !== null) numbers.set(number, profile.name);
      }
    }
  }
  if (has(root, 'profiles')) {
    const v = root['profiles'];
    if (!Array.isArray(v)) problems.push(`${configFile}: profiles must be an array of profile file paths, got ${JSON.stringify(v)}`);
    else v.forEach((ref: unknown, i) => load(ref, `profiles[${i}]`));
  }
  return { defaultName, byName, numbers };
}

/** One profile file: the config schema plus `name`, merged over the main config's agent. */
function readProfile(file: string, referredBy: string, main: AgentConfig, restCredentials: boolean, problems: string[], warnings: string[]): AgentProfile | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`${referredBy}: cannot read ${file}: ${(err as Error).message}`);
    return null;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    problems.push(`${referredBy}: ${file} is not valid JSON: ${(err as Error).message}`);
    return null;
  }
  if (!isObject(raw)) {
    problems.push(`${file}: a profile file must hold a JSON object`);
    return null;
  }
  const before = problems.length;
  for (const key of ['numbers', 'profiles']) {
    if (has(raw, key)) problems.push(`${file}: ${key} belongs in the main config file, not in a profile`);
  }
  const name = has(raw, 'name')
    ? profileNameOf(raw['name'], `${file}: name`, problems)
    : profileNameOf(basename(file, extname(file)), `${file}: the file name (used as the profile's name when it has no "name")`, problems);
  const overlay = Object.fromEntries(Object.entries(raw).filter(([key]) => !PROFILE_SET_KEYS.includes(key)));
  let agent: AgentConfig;
  try {
    agent = refineAgentConfig(main, overlay);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems.map((p) => `${file}: ${p}`));
    return null;
  }
  if (problems.length > before) return null;
  const offered = offerableTools(agent, restCredentials);
  if (offered.dropped.length > 0) warnings.push(transferDroppedWarning(file));
  return { name, file, agent: offered.agent };
}

function profileNameOf(v: unknown, what: string, problems: string[]): string {
  if (typeof v === 'string' && PROFILE_NAME.test(v)) return v;
  problems.push(`${what} must be 1-64 letters, digits, "_" or "-", got ${JSON.stringify(v)}`);
  return DEFAULT_PROFILE_NAME;
}

// ---------------------------------------------------------------- post-call reports and recordings

export interface ReportSettings {
  /** REPORTS_DIR: one `callbridge.report/1` JSON file per call (docs/report.md); checked writable at start */
  reportsDir: string | null;
  /** CALL_REPORT_URL: each report is POSTed here, signed with TOOLS_SECRET; https, or http on loopback only */
  callReportUrl: string | null;
  /** RECORD_AUDIO: one stereo WAV per call (caller left, what the caller heard right); checked writable at start */
  recordAudioDir: string | null;
}

/**
 * The environment of src/report/ and src/recording/. Folders are only named here; whether they
 * can be written is checked when the service starts (src/main.ts), before any call.
 */
export function parseReportSettings(env: NodeJS.ProcessEnv, toolsSecret: string | null, problems: string[]): { settings: ReportSettings; warnings: string[] } {
  const callReportUrl = nonEmpty(env['CALL_REPORT_URL']);
  // Reports carry transcripts and phone numbers: never in clear text over the network.
  if (callReportUrl !== null && !isSafeApiBase(callReportUrl)) {
    problems.push(`CALL_REPORT_URL must be an https:// URL (http:// only on localhost, 127.x or [::1]), got "${callReportUrl}"`);
  }
  const warnings: string[] = [];
  if (callReportUrl !== null && toolsSecret === null) {
    warnings.push('CALL_REPORT_URL is set but TOOLS_SECRET is not: reports are POSTed unsigned, so the receiver cannot tell them from anyone else\'s');
  }
  return {
    settings: { reportsDir: nonEmpty(env['REPORTS_DIR']), callReportUrl, recordAudioDir: nonEmpty(env['RECORD_AUDIO']) },
    warnings,
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

/** https anywhere; plain http only to this machine (a fake API in tests, a local proxy). */
function isSafeApiBase(s: string): boolean {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
