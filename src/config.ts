/**
 * Typed configuration: agent behaviour from config/default.json, secrets and endpoints from the
 * environment. Validated once; every problem is reported with the key that caused it.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { mergeAgentJson } from './agent/merge.js';
import { FRAME_MS } from './audio/wire-format.js';
import { BUILTIN_PLACEHOLDERS, CONTEXT_PREFIX, unknownPlaceholders } from './agent/template.js';
import { compile, Nullable } from './validation/validator.js';
import type { Problem } from './validation/validator.js';

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
  /** caller audio goes upstream in messages of this many ms (whole Twilio frames, at least one) */
  inputAppendMs: number;
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

// ---------------------------------------------------------------- the agent config file's schema

/** A free-form note, allowed in every object of the file. */
const Comment = Type.Optional(Type.String());
/** Say "must be a non-empty string" without the value (texts can be long prompts). */
const Text = () => Type.String({ pattern: '\\S', problem: 'must be a non-empty string' });
/** Say "must be a non-empty string, got …". */
const TextGot = () => Type.String({ pattern: '\\S', expected: 'a non-empty string' });
const Int = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max, expected: `an integer in [${min}, ${max}]` });
const Num = (min: number, max: number) => Type.Number({ minimum: min, maximum: max, expected: `a number in [${min}, ${max}]` });
const Closed = { additionalProperties: false } as const;

const GREETING_SHAPE = 'null, {"text": "…"} or {"instructions": "…"}';

const EndCallToolSchema = Type.Object({ $comment: Comment, type: Type.Literal('end_call'), description: Type.Optional(TextGot()) }, Closed);
const TransferCallToolSchema = Type.Object(
  {
    $comment: Comment,
    type: Type.Literal('transfer_call'),
    to: Type.String({ pattern: '^(?:\\+[0-9]{2,15}|sip:\\S+)$', expected: 'an E.164 number ("+" and 2-15 digits) or a "sip:" URI' }),
    description: Type.Optional(TextGot()),
  },
  Closed,
);
const HttpToolSchema = Type.Object(
  {
    $comment: Comment,
    type: Type.Literal('http'),
    name: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$', expected: '1-64 letters, digits, "_" or "-"' }),
    description: TextGot(),
    /** JSON Schema of the arguments object: only its outline is checked here */
    parameters: Type.Object(
      { type: Type.Literal('object'), properties: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { problem: 'must be an object' })) },
      { expected: 'a JSON Schema object with "type": "object"' },
    ),
    /** whether it is an http(s) URL is checked in code (the URL parser decides) */
    url: Type.String({ expected: 'an http(s) URL' }),
    timeoutMs: Type.Optional(Int(100, 60_000)),
  },
  Closed,
);
const TOOL_SCHEMAS = { end_call: EndCallToolSchema, transfer_call: TransferCallToolSchema, http: HttpToolSchema } as const;
const TOOL_TYPES = Object.keys(TOOL_SCHEMAS);

/**
 * A tool: its `type` picks its schema (if/then rather than a union, so a bad field of a known tool
 * is reported as itself, not as "matches none of the tool shapes").
 */
const ToolSchema = Type.Unsafe<Static<typeof EndCallToolSchema> | Static<typeof TransferCallToolSchema> | Static<typeof HttpToolSchema>>({
  type: 'object',
  expected: 'an object',
  required: ['type'],
  properties: { type: { enum: TOOL_TYPES } },
  allOf: Object.entries(TOOL_SCHEMAS).map(([type, schema]) => ({ if: { properties: { type: { const: type } } }, then: schema })),
});

/**
 * Caller audio per upstream message. Twilio sends a 20 ms frame 50 times a second per call, and
 * each became a message, a write and a wake-up of the upstream: the most frequent work of the
 * service. Sending frames in pairs halves that, and delays what the model hears by 20 ms at most
 * (10 ms on average). 20 sends every frame at once; LiveKit's Realtime plugin sends 100 ms.
 */
export const DEFAULT_INPUT_APPEND_MS = 40;
const MIN_INPUT_APPEND_MS = 20;
const MAX_INPUT_APPEND_MS = 100;
const INPUT_APPEND_MS_CHOICES = '20, 40, 60, 80 or 100';
/** The agent config file: config/default.json, a profile file, an AGENT_CONFIG_URL answer merged over a profile. */
export const AgentConfigFileSchema = Type.Object(
  {
    $comment: Comment,
    model: Text(),
    instructions: Text(),
    voice: Text(),
    transcription: Nullable(Type.Object({ $comment: Comment, model: Text() }, Closed), { expected: 'null or an object {model}' }),
    noiseReduction: Type.Union([Type.Literal('near_field'), Type.Literal('far_field'), Type.Null()], { expected: '"near_field", "far_field" or null' }),
    turnDetection: Type.Object(
      { $comment: Comment, threshold: Num(0, 1), prefixPaddingMs: Int(0, 2000), silenceDurationMs: Int(MIN_SILENCE_DURATION_MS, 5000) },
      Closed,
    ),
    interruption: Type.Object({ $comment: Comment, suppressDeltasMs: Int(0, 5000) }, Closed),
    playout: Type.Object({ $comment: Comment, markIntervalMs: Int(10, 100) }, Closed),
    input: Type.Optional(
      Type.Object(
        {
          $comment: Comment,
          appendMs: Type.Integer({
            minimum: MIN_INPUT_APPEND_MS,
            maximum: MAX_INPUT_APPEND_MS,
            // appends are whole Twilio frames: a size between two multiples would only mislead
            multipleOf: FRAME_MS,
            expected: `one of ${INPUT_APPEND_MS_CHOICES}`,
          }),
        },
        Closed,
      ),
    ),
    limits: Type.Object({ $comment: Comment, maxBufferedInboundMs: Int(100, 60_000) }, Closed),
    greeting: Type.Optional(
      Nullable(Type.Object({ $comment: Comment, text: Type.Optional(TextGot()), instructions: Type.Optional(TextGot()) }, Closed), { expected: GREETING_SHAPE }),
    ),
    tools: Type.Optional(Type.Array(ToolSchema, { expected: 'an array' })),
    dtmf: Type.Optional(
      Nullable(
        Type.Object(
          {
            $comment: Comment,
            timeoutMs: Int(200, 30_000),
            terminator: Type.Union([Type.Literal('#'), Type.Literal('*'), Type.Literal('')], { expected: '"#", "*" or "" (none)' }),
            maxDigits: Int(1, 64),
          },
          Closed,
        ),
        { expected: 'null or an object {timeoutMs, terminator, maxDigits}' },
      ),
    ),
    idle: Type.Optional(
      Nullable(Type.Object({ $comment: Comment, reminderAfterMs: Int(1000, 600_000), maxReminders: Int(0, 10) }, Closed), { expected: 'null or an object {reminderAfterMs, maxReminders}' }),
    ),
    // null: no voicemail; one type keyword, so a bad text reads "must be a non-empty string"
    voicemail: Type.Optional(Type.Unsafe<string | null>({ type: ['string', 'null'], pattern: '\\S', expected: 'a non-empty string' })),
  },
  Closed,
);
export type AgentConfigFile = Static<typeof AgentConfigFileSchema>;
const agentConfigFile = compile(AgentConfigFileSchema, { root: 'config file' });

/** Top-level keys of the agent config file (plus `$comment`, a free-form string). */
export const AGENT_CONFIG_KEYS: readonly string[] = Object.keys(AgentConfigFileSchema.properties).filter((k) => k !== '$comment');

/** The problems are listed as the sections of the file are read: these first, in this order. */
const LEADING_KEYS: readonly string[] = ['model', 'instructions', 'voice', 'transcription', 'turnDetection', 'interruption', 'playout', 'input', 'limits'];
/** Then unknown keys (top level, then nested), then these sections, then placeholders. */
const TRAILING_KEYS: readonly string[] = ['noiseReduction', 'greeting', 'tools', 'dtmf', 'idle', 'voicemail'];

export const DEFAULT_GREETING: { text: string } = { text: 'Hello! How can I help you today?' };
export const DEFAULT_DTMF: DtmfConfig = { timeoutMs: 2000, terminator: '#', maxDigits: 20 };
export const DEFAULT_IDLE: IdleConfig = { reminderAfterMs: 8000, maxReminders: 2 };
export const DEFAULT_HTTP_TOOL_TIMEOUT_MS = 5000;
/** Function names the model sees for the built-in tools; an http tool may not take them. */
export const RESERVED_TOOL_NAMES: readonly string[] = ['end_call', 'transfer_call'];
const E164 = /^\+[0-9]{2,15}$/;

/** The function name under which a tool is offered to the model. */
export function toolName(tool: ToolConfig): string {
  return tool.type === 'http' ? tool.name : tool.type;
}

/** One problem of a config, with where it sorts among the others. */
interface Ranked {
  rank: number;
  /** the tool's index, for problems of `tools` */
  item: number;
  message: string;
}

/**
 * Validates an agent config (a config file, a profile file merged over it, a webhook's answer
 * merged over a profile) and returns it typed, or throws a ConfigError naming every offending key.
 * `extraKeys`: top-level keys the caller reads itself (the main file's `numbers`, say); their
 * names pass the unknown-key check here, their values are the caller's to check.
 *
 * The shape and types are the schema's (AgentConfigFileSchema); what a schema cannot say (a
 * greeting has exactly one of its texts, tool names are unique, a URL parses, placeholders
 * exist) is checked here, on the parts whose shape is right.
 */
export function parseAgentConfig(raw: unknown, extraKeys: readonly string[] = []): AgentConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(['config file must hold a JSON object']);
  const problems: Ranked[] = [];
  if (!agentConfigFile.is(raw)) {
    for (const p of agentConfigFile.problems()) {
      const ranked = configProblem(p, raw as Json, extraKeys);
      if (ranked !== null) problems.push(ranked);
    }
  }
  // The caller's own keys (extraKeys) are the only schema problems not kept.
  const shaped = problems.length === 0;
  const file = raw as Partial<AgentConfigFile>;
  const greeting = checkGreeting(file.greeting, problems);
  const tools = checkTools(file.tools, problems);
  const voicemail = file.voicemail;
  if (typeof voicemail === 'string' && voicemail.length > MAX_VOICEMAIL_CHARS) {
    problems.push({ rank: rankOf('voicemail'), item: 0, message: `voicemail must be at most ${MAX_VOICEMAIL_CHARS} characters, got ${voicemail.length}` });
  }
  // Placeholders are checked in every text that is one, whatever else is wrong: a typo there is
  // reported with the rest.
  const placeholders: string[] = [];
  checkPlaceholders(fileTexts(raw as Json), placeholders);
  for (const message of placeholders) problems.push({ rank: 30, item: 0, message });
  if (shaped && problems.length === 0 && greeting !== undefined) return agentFrom(raw as AgentConfigFile, greeting, tools);
  throw new ConfigError(ordered(problems));
}

/** The templated texts of a file not yet known to be valid: those that are text. */
function fileTexts(root: Json): Array<[key: string, text: string]> {
  const texts: Array<[string, string]> = [];
  if (typeof root['instructions'] === 'string') texts.push(['instructions', root['instructions']]);
  const greeting = root['greeting'];
  if (typeof greeting === 'object' && greeting !== null) {
    const { text, instructions } = greeting as Json;
    if (typeof text === 'string' && instructions === undefined) texts.push(['greeting.text', text]);
    if (typeof instructions === 'string' && text === undefined) texts.push(['greeting.instructions', instructions]);
  }
  if (typeof root['voicemail'] === 'string') texts.push(['voicemail', root['voicemail']]);
  return texts;
}

/** A file that passed the schema and the checks above, as the typed config. */
function agentFrom(file: AgentConfigFile, greeting: GreetingConfig, tools: ToolConfig[]): AgentConfig {
  return {
    model: file.model,
    instructions: file.instructions,
    voice: file.voice,
    transcriptionModel: file.transcription === null ? null : file.transcription.model,
    noiseReduction: file.noiseReduction,
    turnDetection: {
      threshold: file.turnDetection.threshold,
      prefixPaddingMs: file.turnDetection.prefixPaddingMs,
      silenceDurationMs: file.turnDetection.silenceDurationMs,
    },
    suppressDeltasMs: file.interruption.suppressDeltasMs,
    markIntervalMs: file.playout.markIntervalMs,
    inputAppendMs: file.input?.appendMs ?? DEFAULT_INPUT_APPEND_MS,
    maxBufferedInboundMs: file.limits.maxBufferedInboundMs,
    greeting,
    tools,
    dtmf: file.dtmf === undefined ? { ...DEFAULT_DTMF } : file.dtmf === null ? null : { timeoutMs: file.dtmf.timeoutMs, terminator: file.dtmf.terminator, maxDigits: file.dtmf.maxDigits },
    idle: file.idle === undefined ? { ...DEFAULT_IDLE } : file.idle === null ? null : { reminderAfterMs: file.idle.reminderAfterMs, maxReminders: file.idle.maxReminders },
    voicemail: file.voicemail ?? null,
  };
}

/** A schema problem in the config's words: unknown keys get a "did you mean"; null: not a problem here. */
function configProblem(p: Problem, root: Json, extraKeys: readonly string[]): Ranked | null {
  const top = p.field.split(/[.[]/)[0] ?? '';
  const item = /^tools\[(\d+)\]/.exec(p.field);
  const index = item === null ? 0 : Number(item[1]);
  if (p.keyword === 'additionalProperties') {
    const dot = p.field.lastIndexOf('.');
    const parent = dot < 0 ? '' : p.field.slice(0, dot);
    if (parent === '' && extraKeys.includes(p.field)) return null;
    const known = parent === '' ? [...AGENT_CONFIG_KEYS, ...extraKeys] : knownKeysAt(parent, root);
    const key = p.field.slice(dot + 1);
    const guess = closest(key, known);
    const tool = item === null ? '' : ` of ${article(String((valueAt(root, parent) as Json | undefined)?.['type']))} tool`;
    const message = `${p.field} is not a known key${tool}` + (guess === null ? ` (known: ${known.join(', ')})` : ` (did you mean "${guess}"?)`);
    const rank = parent === '' ? 10 : LEADING_KEYS.includes(top) ? 11 + LEADING_KEYS.indexOf(top) : rankOf(top);
    return { rank, item: index, message };
  }
  if (item !== null && p.field === `${item[0]}.type`) {
    const type = (valueAt(root, item[0]) as Json | undefined)?.['type'];
    return { rank: rankOf('tools'), item: index, message: `${p.field} ${JSON.stringify(type)} is not a known tool type (one of "end_call", "transfer_call", "http")` };
  }
  if (item !== null && p.keyword === 'required' && p.field === `${item[0]}.type`) {
    return { rank: rankOf('tools'), item: index, message: `${p.field} is missing (one of "end_call", "transfer_call", "http")` };
  }
  // A wrong `type` inside an http tool's parameters is the parameters' problem, said as such.
  const params = item === null ? null : /^tools\[\d+\]\.parameters(?:\.type)?$/.exec(p.field);
  if (params !== null && item !== null && p.keyword !== 'required') {
    const at = `${item[0]}.parameters`;
    return { rank: rankOf('tools'), item: index, message: `${at} must be a JSON Schema object with "type": "object", got ${JSON.stringify(valueAt(root, at))}` };
  }
  return { rank: rankOf(top), item: index, message: p.message };
}

function rankOf(top: string): number {
  const leading = LEADING_KEYS.indexOf(top);
  if (leading >= 0) return leading;
  const trailing = TRAILING_KEYS.indexOf(top);
  return trailing >= 0 ? 20 + trailing : 10;
}

/** Problems in the order the file is read; a tool's problems together, tool by tool. */
function ordered(problems: readonly Ranked[]): string[] {
  const out = problems.map((p, i) => ({ ...p, i }));
  out.sort((a, b) => a.rank - b.rank || a.item - b.item || a.i - b.i);
  return [...new Set(out.map((p) => p.message))];
}

function knownKeysAt(parent: string, root: Json): string[] {
  const tool = /^tools\[\d+\]$/.test(parent) ? (valueAt(root, parent) as Json | undefined)?.['type'] : undefined;
  if (typeof tool === 'string' && tool in TOOL_SCHEMAS) return Object.keys(TOOL_SCHEMAS[tool as keyof typeof TOOL_SCHEMAS].properties).filter((k) => k !== '$comment');
  const section = AgentConfigFileSchema.properties[parent as keyof typeof AgentConfigFileSchema.properties] as { properties?: object } | undefined;
  return Object.keys(section?.properties ?? {}).filter((k) => k !== '$comment');
}

function valueAt(root: Json, field: string): unknown {
  let v: unknown = root;
  for (const part of field.split(/\.|\[|\]/).filter((x) => x !== '')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Json)[part];
  }
  return v;
}

function article(type: string): string {
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

/** The greeting, its default when absent; undefined when it is not one (the schema said why). */
function checkGreeting(v: AgentConfigFile['greeting'] | undefined, problems: Ranked[]): GreetingConfig | undefined {
  if (v === undefined) return { ...DEFAULT_GREETING };
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) return undefined;
  const hasText = v.text !== undefined;
  if (hasText === (v.instructions !== undefined)) {
    problems.push({ rank: rankOf('greeting'), item: 0, message: `greeting must be ${GREETING_SHAPE}: exactly one of greeting.text and greeting.instructions` });
    return undefined;
  }
  return v.text !== undefined ? { text: v.text } : { instructions: v.instructions ?? '' };
}

/**
 * The tools whose shape is right, with their defaults; the others were named by the schema. A
 * name used twice, a second built-in tool, a reserved name and a URL that does not parse are
 * refused here.
 */
function checkTools(v: unknown, problems: Ranked[]): ToolConfig[] {
  if (!Array.isArray(v)) return [];
  const items: unknown[] = v;
  const tools: ToolConfig[] = [];
  const seen = new Map<string, string>();
  const rank = rankOf('tools');
  items.forEach((item, i) => {
    const path = `tools[${i}]`;
    // A tool the schema refused is named in its problems already.
    if (!toolShape.is(item)) return;
    const tool = toolOf(item);
    const before = problems.length;
    if (tool.type === 'http') {
      if (RESERVED_TOOL_NAMES.includes(tool.name)) problems.push({ rank, item: i, message: `${path}.name "${tool.name}" is reserved for the built-in tool of that type` });
      if (!isUrl(tool.url, ['http:', 'https:'])) problems.push({ rank, item: i, message: `${path}.url must be an http(s) URL, got ${JSON.stringify(tool.url)}` });
    }
    // A refused tool takes no name: a later tool is not told its name is taken.
    if (problems.length > before) return;
    const name = toolName(tool);
    const first = seen.get(name);
    if (first !== undefined) {
      problems.push({
        rank,
        item: i,
        message: tool.type === 'http' ? `${path}.name "${name}" is already used by ${first}: tool names must be unique` : `${path}: a second ${name} tool (the first is ${first}); at most one is allowed`,
      });
      return;
    }
    seen.set(name, path);
    tools.push(tool);
  });
  return tools;
}

const toolShape = compile(ToolSchema);

function toolOf(item: Static<typeof ToolSchema>): ToolConfig {
  const description = item.description === undefined ? {} : { description: item.description };
  switch (item.type) {
    case 'end_call':
      return { type: 'end_call', ...description };
    case 'transfer_call':
      return { type: 'transfer_call', to: item.to, ...description };
    case 'http':
      return { type: 'http', name: item.name, description: item.description, parameters: item.parameters, url: item.url, timeoutMs: item.timeoutMs ?? DEFAULT_HTTP_TOOL_TIMEOUT_MS };
  }
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
function checkPlaceholders(texts: ReadonlyArray<[key: string, text: string]>, problems: string[]): void {
  const known = [...BUILTIN_PLACEHOLDERS, `${CONTEXT_PREFIX}<parameter>`];
  for (const [key, text] of texts) {
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
    input: { appendMs: agent.inputAppendMs },
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

function has(obj: Json, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key) && obj[key] !== undefined;
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

/**
 * Outbound calls' voicemail. Bounded: Twilio's `<Say>` (the REST fallback, README "Outbound
 * calls") takes 4096 characters, and a message longer than a minute or so is cut by most machines.
 */
export const MAX_VOICEMAIL_CHARS = 1000;

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

/**
 * The main file's keys of the profile set (`name` is checked as a profile name). Each profile
 * reference is checked as it is read: its path, then the file it names.
 */
const numbersShape = compile(Type.Record(Type.String(), Type.Unknown(), { expected: 'an object {"+15551234567": "profiles/sales.json", …}' }), { root: 'numbers' });
const profilesShape = compile(Type.Array(Type.Unknown(), { expected: 'an array of profile file paths' }), { root: 'profiles' });
/** A profile file: an object of config keys (AgentConfigFileSchema checks them once merged). */
const profileShape = compile(Type.Record(Type.String(), Type.Unknown()));

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
    if (!numbersShape.is(v)) {
      problems.push(...numbersShape.problems().map((p) => `${configFile}: ${p.message}`));
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
    if (!profilesShape.is(v)) problems.push(...profilesShape.problems().map((p) => `${configFile}: ${p.message}`));
    else v.forEach((ref, i) => load(ref, `profiles[${i}]`));
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
  if (!profileShape.is(raw)) {
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
