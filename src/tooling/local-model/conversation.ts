/**
 * The protocol rules of the local Realtime server (GA interface), with no sockets and no timers.
 *
 * One `Conversation` is one Realtime session: the session configuration, the conversation items
 * (user turns with their audio, assistant answers with the audio produced so far), the input
 * audio buffer with its VAD, and at most one active response. Each client event turns into the
 * server events (or the exact error) the real API would send. Streaming is driven from outside:
 * the shell calls {@link Conversation.pump} whenever its pacing says the next chunk is due, so a
 * unit test can run a whole call without waiting.
 *
 * Where the real API's behaviour is not documented, the choice made here is marked "Local rule".
 */

import type {
  AudioFormat,
  ContentPart,
  ConversationItem,
  ErrorEvent,
  MessageItem,
  RealtimeClientEvent,
  RealtimeFunctionTool,
  RealtimeServerEvent,
  RealtimeSessionConfig,
  ResponseObject,
  SemanticVad,
  ServerVad,
  ToolChoice,
  TurnDetection,
} from '../../realtime/events.js';
import { alawDecode, alawEncode, mulawDecode, mulawEncode } from '../../audio/g711.js';
import { Downsampler3x, Upsampler3x } from '../../audio/resampler.js';
import { parseEventEnvelope } from '../../realtime/events.js';
import { EnergyVad, type VadConfig, type VadEvent } from './vad.js';
import { isJsonObject } from '../../util/json.js';
import type { JsonObject } from '../../util/json.js';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { compile, problemText } from '../../validation/validator.js';

// ---------------------------------------------------------------- units and limits

export const PCM16_24K_SAMPLES_PER_MS = 24;
export const G711_SAMPLES_PER_MS = 8;
const G711_UPSAMPLE_FACTOR = PCM16_24K_SAMPLES_PER_MS / G711_SAMPLES_PER_MS;
/** A commit of less audio than this is `input_audio_buffer_commit_empty`. */
export const MIN_COMMIT_MS = 100;
/** Largest `input_audio_buffer.append` the real API accepts (decoded bytes). */
export const MAX_APPEND_BYTES = 15 * 1024 * 1024;
export const SESSION_MAX_DURATION_MS = 60 * 60 * 1000;
/**
 * While nobody speaks, only this much input is kept: enough for the prefix padding of a turn that
 * has not been detected yet (the detector needs VAD_MIN_SPEECH_MS) plus slack.
 */
const IDLE_INPUT_KEEP_EXTRA_MS = 500;

const DEFAULT_SERVER_VAD: ServerVad = {
  type: 'server_vad',
  threshold: 0.5,
  prefix_padding_ms: 300,
  silence_duration_ms: 200,
  create_response: true,
  interrupt_response: true,
};

/**
 * Local rule: `semantic_vad` has no energy equivalent, so eagerness picks how long a pause ends
 * the turn ('low' waits longest, as the real one lets the caller finish).
 */
const SEMANTIC_SILENCE_MS: Record<NonNullable<SemanticVad['eagerness']>, number> = {
  low: 1200,
  medium: 600,
  auto: 600,
  high: 250,
};

// ---------------------------------------------------------------- ids

/**
 * Ids unique per server instance: `<prefix>_<instance tag><counter>`, the same length as the
 * real API's (21 characters after the prefix).
 */
export class IdSource {
  private counter = 0;
  private readonly tag: string;

  constructor(tag?: string) {
    this.tag = (tag ?? Math.random().toString(36).slice(2, 10)).padEnd(8, '0').slice(0, 8);
  }

  next(prefix: 'event' | 'item' | 'resp' | 'sess' | 'conv' | 'call'): string {
    this.counter++;
    return `${prefix}_LOC${this.tag}${this.counter.toString(36).padStart(10, '0')}`;
  }
}

// ---------------------------------------------------------------- hooks

export interface AnswerContext {
  /** PCM16 24 kHz audio of the latest user message, if it was spoken (null for text). */
  lastUserAudio: Int16Array | null;
  /** Transcript of the latest user message (its text, or its transcription when configured). */
  lastUserTranscript: string | null;
  /** 0 for the first response of the session. */
  responseIndex: number;
  /** The instructions in force for this response (response override, else session). */
  instructions: string;
  // The fields below are always set by the Conversation; they are optional only so that contexts
  // built by hand (tests, scripts written before function calling) still compile.
  /** Names of the function tools in force for this response (response override, else session). */
  tools?: string[];
  /** The tool choice in force for this response (response override, else session). */
  toolChoice?: ToolChoice;
  /** The `metadata` of the `response.create` that started this response (null: none, or a VAD turn). */
  metadata?: Record<string, string> | null;
  /** Text of the newest user message when it is a text message (e.g. "Keypad entry: 1234"), else null. */
  lastUserText?: string | null;
  /** Set when the newest conversation item is a function_call_output; `name` comes from its call. */
  lastFunctionOutput?: FunctionOutputContext | null;
}

export interface FunctionOutputContext {
  callId: string;
  name: string;
  output: string;
}

/** A function call the answer source asks for: emitted as a `function_call` output item. */
/** The answer source's function call: a function name and its arguments. */
const AnswerFunctionCallSchema = Type.Object({
  name: Type.String(),
  /** JSON text, passed through as the model would write it */
  arguments: Type.String(),
});
export type AnswerFunctionCall = Static<typeof AnswerFunctionCallSchema>;
/** Not a client event: no API error text to reproduce, so the shared validator checks it. */
const answerFunctionCall = compile(AnswerFunctionCallSchema, { root: "the answer source's functionCall" });

export interface Answer {
  /** PCM16 24 kHz mono; may be empty when the answer only calls a function. */
  audio: Int16Array;
  transcript: string;
  /**
   * Emitted after the audio message (output index 1), or alone (output index 0) when `audio` is
   * empty. The name must be one of `tools` and allowed by `toolChoice`, else the response fails
   * with a server_error.
   */
  functionCall?: AnswerFunctionCall;
}

export type AnswerSource = (ctx: AnswerContext) => Answer;

export interface TranscribeContext {
  /** PCM16 24 kHz audio of the committed user turn */
  audio: Int16Array;
  durationMs: number;
  itemId: string;
}

export type TranscribeSource = (ctx: TranscribeContext) => string;

const DEFAULT_ANSWER_TONE_MS = 1000;
const DEFAULT_ANSWER_TONE_HZ = 440;
/** -20 dBFS peak */
const DEFAULT_ANSWER_TONE_AMPLITUDE = Math.round(32767 * 0.1);

/** Speaks the caller's last turn back, or a one-second tone when there is none. */
export const defaultAnswer: AnswerSource = (ctx) => {
  if (ctx.lastUserAudio && ctx.lastUserAudio.length > 0) {
    const ms = Math.floor(ctx.lastUserAudio.length / PCM16_24K_SAMPLES_PER_MS);
    return { audio: ctx.lastUserAudio.slice(), transcript: `(echo of ${ms} ms)` };
  }
  const samples = DEFAULT_ANSWER_TONE_MS * PCM16_24K_SAMPLES_PER_MS;
  const audio = new Int16Array(samples);
  for (let i = 0; i < samples; i++) {
    audio[i] = Math.round(DEFAULT_ANSWER_TONE_AMPLITUDE * Math.sin((2 * Math.PI * DEFAULT_ANSWER_TONE_HZ * i) / 24_000));
  }
  return { audio, transcript: `(answer ${ctx.responseIndex + 1}: tone of ${DEFAULT_ANSWER_TONE_MS} ms)` };
};

export const defaultTranscribe: TranscribeSource = (ctx) => `(speech ${ctx.durationMs} ms)`;

// ---------------------------------------------------------------- events and outcomes

/** Answer to `conversation.item.retrieve`; the bridge never asks, so it is not in its union. */
export interface ItemRetrievedEvent {
  type: 'conversation.item.retrieved';
  event_id: string;
  item: ConversationItem;
}

export type LocalServerEvent = RealtimeServerEvent | ItemRetrievedEvent;

export interface CloseRequest {
  code: number;
  reason: string;
}

export interface Outcome {
  events: LocalServerEvent[];
  /** Set when the connection must be closed after sending `events`. */
  close: CloseRequest | null;
}

export const BETA_CLOSE_CODE = 4000;
/** Local rule: the real close code after `session_expired` is not documented. */
export const SESSION_EXPIRED_CLOSE_CODE = 1000;

const BETA_MESSAGE =
  "The Realtime API beta interface is no longer available. Use the GA interface: no 'OpenAI-Beta: realtime=v1' header, " +
  "'session.type' set, and the GA session and event shapes.";

export const SUPPORTED_CLIENT_EVENTS = [
  'session.update',
  'input_audio_buffer.append',
  'input_audio_buffer.commit',
  'input_audio_buffer.clear',
  'conversation.item.create',
  'conversation.item.retrieve',
  'conversation.item.truncate',
  'conversation.item.delete',
  'response.create',
  'response.cancel',
] as const;
type SupportedClientEvent = (typeof SUPPORTED_CLIENT_EVENTS)[number];

/** Client event types and session keys of the retired beta interface. */
const BETA_EVENT_TYPES = new Set(['transcription_session.update']);
const BETA_SESSION_KEYS = [
  'input_audio_format',
  'output_audio_format',
  'turn_detection',
  'input_audio_transcription',
  'input_audio_noise_reduction',
  'modalities',
  'voice',
  'max_response_output_tokens',
] as const;
const BETA_RESPONSE_KEYS = ['modalities', 'voice', 'output_audio_format', 'max_response_output_tokens'] as const;

const SESSION_KEYS = new Set([
  'type',
  'model',
  'output_modalities',
  'instructions',
  'audio',
  'tools',
  'tool_choice',
  'max_output_tokens',
  'tracing',
  'truncation',
  'prompt',
  'include',
]);
/** Accepted and echoed back, but they change nothing in a local model. */
const OPAQUE_SESSION_KEYS = ['max_output_tokens', 'tracing', 'truncation', 'prompt', 'include'] as const;
const ITEM_KEYS: Record<ConversationItem['type'], ReadonlySet<string>> = {
  message: new Set(['id', 'object', 'type', 'role', 'status', 'content']),
  function_call: new Set(['id', 'object', 'type', 'status', 'call_id', 'name', 'arguments']),
  function_call_output: new Set(['id', 'object', 'type', 'status', 'call_id', 'output']),
};
const ITEM_KEYS_ANY: ReadonlySet<string> = new Set(Object.values(ITEM_KEYS).flatMap((keys) => [...keys]));
const RESPONSE_KEYS = new Set([
  'conversation',
  'output_modalities',
  'instructions',
  'audio',
  'tools',
  'tool_choice',
  'max_output_tokens',
  'metadata',
  'input',
  'prompt',
]);

// ---------------------------------------------------------------- errors

type Json = JsonObject;

/** A client mistake, thrown inside a handler and turned into one `error` event at `handle`. */
class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** The client broke the GA-only rule: answered with an error and close code 4000. */
class BetaShapeError extends Error {
  constructor(readonly param: string | null) {
    super(BETA_MESSAGE);
  }
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a decimal number';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

function listValues(values: readonly (string | number)[]): string {
  const quoted = values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v)));
  if (quoted.length <= 1) return quoted.join('');
  if (quoted.length === 2) return `${quoted[0]} and ${quoted[1]}`;
  return `${quoted.slice(0, -1).join(', ')}, and ${quoted[quoted.length - 1]}`;
}

function invalidType(param: string, expected: string, got: unknown): ClientError {
  return new ClientError('invalid_type', `Invalid type for '${param}': expected ${expected}, but got ${describeType(got)} instead.`, param);
}

function invalidEnum(param: string, got: unknown, supported: readonly (string | number)[]): ClientError {
  const shown = typeof got === 'string' ? `'${got}'` : JSON.stringify(got);
  return new ClientError('invalid_value', `Invalid value: ${shown}. Supported values are: ${listValues(supported)}.`, param);
}

function missing(param: string): ClientError {
  return new ClientError('missing_required_parameter', `Missing required parameter: '${param}'.`, param);
}

function unknownParameter(param: string): ClientError {
  return new ClientError('unknown_parameter', `Unknown parameter: '${param}'.`, param);
}

function readObject(v: unknown, param: string): Json {
  if (!isJsonObject(v)) throw invalidType(param, 'an object', v);
  return v;
}

function readString(v: unknown, param: string): string {
  if (typeof v !== 'string') throw invalidType(param, 'a string', v);
  return v;
}

function readBoolean(v: unknown, param: string): boolean {
  if (typeof v !== 'boolean') throw invalidType(param, 'a boolean', v);
  return v;
}

function readInteger(v: unknown, param: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidType(param, 'an integer', v);
  if (v < min) {
    throw new ClientError(
      'integer_below_min_value',
      `Invalid '${param}': integer below minimum value. Expected a value >= ${min}, but got ${v} instead.`,
      param,
    );
  }
  return v;
}

function readDecimal(v: unknown, param: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidType(param, 'a number', v);
  if (v < min) {
    throw new ClientError(
      'decimal_below_min_value',
      `Invalid '${param}': decimal below minimum value. Expected a value >= ${min}, but got ${v} instead.`,
      param,
    );
  }
  if (v > max) {
    throw new ClientError(
      'decimal_above_max_value',
      `Invalid '${param}': decimal above maximum value. Expected a value <= ${max}, but got ${v} instead.`,
      param,
    );
  }
  return v;
}

function readEnum<T extends string>(v: unknown, param: string, values: readonly T[]): T {
  if (typeof v !== 'string') throw invalidType(param, 'a string', v);
  if (!(values as readonly string[]).includes(v)) throw invalidEnum(param, v, values);
  return v as T;
}

function rejectUnknownKeys(obj: Json, allowed: ReadonlySet<string>, prefix: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) throw unknownParameter(`${prefix}.${key}`);
  }
}

// ---------------------------------------------------------------- tools and metadata

/** A declared function tool, normalized: optional fields only when the client gave them. */
export interface DeclaredTool {
  type: 'function';
  name: string;
  description?: string;
  parameters?: Json;
}

/** The function-name rule of OpenAI's APIs. */
const TOOL_NAME_RE = /^[a-zA-Z0-9_-]{1,64}$/;
const TOOL_KEYS = new Set(['type', 'name', 'description', 'parameters']);
export const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY_LENGTH = 64;
const MAX_METADATA_VALUE_LENGTH = 512;

/**
 * GA `tools`: function tools only. Local rule: MCP tools are not offered by the local server,
 * and two tools with the same name are refused (the model could not tell them apart).
 */
function readTools(v: unknown, param: string): DeclaredTool[] {
  if (!Array.isArray(v)) throw invalidType(param, 'an array', v);
  const values: unknown[] = v;
  const seen = new Set<string>();
  return values.map((raw, i) => {
    const p = `${param}[${i}]`;
    const obj = readObject(raw, p);
    if (obj['type'] === undefined) throw missing(`${p}.type`);
    const type = readEnum(obj['type'], `${p}.type`, ['function'] as const);
    rejectUnknownKeys(obj, TOOL_KEYS, p);
    if (obj['name'] === undefined) throw missing(`${p}.name`);
    const name = readString(obj['name'], `${p}.name`);
    if (!TOOL_NAME_RE.test(name)) {
      throw new ClientError(
        'invalid_value',
        `Invalid '${p}.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.`,
        `${p}.name`,
      );
    }
    if (seen.has(name)) throw new ClientError('invalid_value', `Invalid '${p}.name': duplicate tool name '${name}'.`, `${p}.name`);
    seen.add(name);
    const tool: DeclaredTool = { type, name };
    if (obj['description'] !== undefined) tool.description = readString(obj['description'], `${p}.description`);
    if (obj['parameters'] !== undefined) tool.parameters = structuredClone(readObject(obj['parameters'], `${p}.parameters`));
    return tool;
  });
}

function readToolChoice(v: unknown, param: string): ToolChoice {
  if (typeof v === 'string') return readEnum(v, param, ['auto', 'none', 'required'] as const);
  if (!isJsonObject(v)) throw invalidType(param, "a string or an object", v);
  if (v['type'] === undefined) throw missing(`${param}.type`);
  // Local rule: MCP tool choices are not offered, like MCP tools.
  const type = readEnum(v['type'], `${param}.type`, ['function'] as const);
  rejectUnknownKeys(v, new Set(['type', 'name']), param);
  if (v['name'] === undefined) throw missing(`${param}.name`);
  return { type, name: readString(v['name'], `${param}.name`) };
}

/** Local rule: forcing a function the tools in force do not declare is refused up front. */
function checkToolChoice(choice: ToolChoice, tools: readonly DeclaredTool[], param: string): void {
  if (typeof choice === 'string' || tools.some((t) => t.name === choice.name)) return;
  throw new ClientError(
    'invalid_value',
    `Invalid '${param}.name': no function tool named '${choice.name}' is declared${tools.length > 0 ? ` (declared: ${listValues(tools.map((t) => t.name))})` : ''}.`,
    `${param}.name`,
  );
}

/** `metadata`: at most 16 string pairs, keys up to 64 characters, values up to 512, or null. */
function readMetadata(v: unknown, param: string): Record<string, string> | null {
  if (v === null) return null;
  const obj = readObject(v, param);
  const entries = Object.entries(obj);
  if (entries.length > MAX_METADATA_KEYS) {
    throw new ClientError(
      'object_above_max_properties',
      `Invalid '${param}': too many properties. Expected an object with at most ${MAX_METADATA_KEYS} properties, but got an object with ${entries.length} properties instead.`,
      param,
    );
  }
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (key.length > MAX_METADATA_KEY_LENGTH) {
      throw new ClientError(
        'string_above_max_length',
        `Invalid '${param}': key too long. Expected a key with maximum length ${MAX_METADATA_KEY_LENGTH}, but got a key with length ${key.length} instead.`,
        param,
      );
    }
    const text = readString(value, `${param}.${key}`);
    if (text.length > MAX_METADATA_VALUE_LENGTH) {
      throw new ClientError(
        'string_above_max_length',
        `Invalid '${param}.${key}': string too long. Expected a string with maximum length ${MAX_METADATA_VALUE_LENGTH}, but got a string with length ${text.length} instead.`,
        `${param}.${key}`,
      );
    }
    out[key] = text;
  }
  return out;
}

// ---------------------------------------------------------------- audio formats

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64 with padding: Node's decoder silently skips garbage, the real API does not. */
function decodeBase64(text: string): Buffer | null {
  if (text.length % 4 !== 0 || !BASE64_RE.test(text)) return null;
  return Buffer.from(text, 'base64');
}

// G.711 and the 8 kHz <-> 24 kHz resampling come from the shared audio layer (src/audio/), the
// one codec in the project. That layer is tested on its own against ideal references (G.711
// bit-exact against `alawmulaw`, the filters against their design), so the local server sharing
// it with the bridge does not hide audio bugs from the tests that use the local server.

function isG711(format: AudioFormat): boolean {
  return format.type !== 'audio/pcm';
}

/**
 * Turns appended bytes into PCM16 24 kHz, stateful across appends: a PCM16 sample split between
 * two appends is rejoined, and G.711 8 kHz is upsampled by one polyphase filter whose history
 * spans appends, so the result does not depend on how the audio was chunked.
 */
class InputDecoder {
  private oddByte: number | null = null;
  private readonly upsampler = new Upsampler3x();

  constructor(readonly format: AudioFormat) {}

  decode(bytes: Buffer): Int16Array {
    if (this.format.type === 'audio/pcm') return this.decodePcm16(bytes);
    const narrow = new Int16Array(bytes.length);
    if (this.format.type === 'audio/pcmu') mulawDecode(bytes, narrow);
    else alawDecode(bytes, narrow);
    const out = new Int16Array(bytes.length * G711_UPSAMPLE_FACTOR);
    this.upsampler.process(narrow, narrow.length, out);
    return out;
  }

  private decodePcm16(bytes: Buffer): Int16Array {
    let start = 0;
    const total = bytes.length + (this.oddByte === null ? 0 : 1);
    const out = new Int16Array(total >> 1);
    let o = 0;
    if (this.oddByte !== null && bytes.length > 0) {
      out[o++] = ((this.oddByte | ((bytes[0] ?? 0) << 8)) << 16) >> 16;
      this.oddByte = null;
      start = 1;
    }
    for (let i = start; i + 1 < bytes.length; i += 2) {
      out[o++] = (((bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8)) << 16) >> 16;
    }
    if ((bytes.length - start) % 2 === 1) this.oddByte = bytes[bytes.length - 1] ?? 0;
    return out;
  }
}

/**
 * PCM16 24 kHz → wire bytes of `format`. For G.711 the response's `downsampler` carries the
 * filter history and the 3:1 phase across chunks, so a chunk of 3n samples yields n bytes.
 */
function encodeOutput(samples: Int16Array, format: AudioFormat, downsampler: Downsampler3x): Buffer {
  if (format.type === 'audio/pcm') {
    const out = Buffer.allocUnsafe(samples.length * 2);
    for (let i = 0; i < samples.length; i++) out.writeInt16LE(samples[i] ?? 0, i * 2);
    return out;
  }
  const narrow = new Int16Array(downsampler.outputLengthFor(samples.length));
  const length = downsampler.process(samples, samples.length, narrow);
  const out = Buffer.allocUnsafe(length);
  if (format.type === 'audio/pcmu') mulawEncode(narrow, out, length);
  else alawEncode(narrow, out, length);
  return out;
}

/** The first `total` samples of the chunks, joined (zero-padded when they hold fewer). */
export function concatSamples(chunks: readonly Int16Array[], total: number): Int16Array {
  const out = new Int16Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c.subarray(0, Math.min(c.length, total - o)), o);
    o += c.length;
    if (o >= total) break;
  }
  return out;
}

/** Whole ms, as the real API counts produced audio: floor(PCM16 bytes / 48) = floor(samples / 24). */
function samplesToMs(samples: number): number {
  return Math.floor(samples / PCM16_24K_SAMPLES_PER_MS);
}

// ---------------------------------------------------------------- input audio buffer

/**
 * Appended, not yet committed input audio, addressed in input-buffer samples since the session
 * started. Only a tail is stored while nobody speaks; `pendingSamples` still counts all of it,
 * because the 100 ms commit rule is about what was appended.
 */
class InputBuffer {
  private chunks: Int16Array[] = [];
  private storedSamples = 0;
  /** Input-buffer position of the first stored sample. */
  private startSample = 0;
  /** Samples appended since the session started. */
  endSample = 0;
  /** Samples appended since the last commit or clear. */
  pendingSamples = 0;

  append(samples: Int16Array): void {
    if (samples.length === 0) return;
    this.chunks.push(samples);
    this.storedSamples += samples.length;
    this.endSample += samples.length;
    this.pendingSamples += samples.length;
  }

  /** Removes everything up to `toSample` and returns the stored part of [fromSample, toSample). */
  take(fromSample: number, toSample: number): Int16Array {
    const from = Math.max(fromSample, this.startSample);
    const to = Math.min(Math.max(toSample, from), this.endSample);
    const all = concatSamples(this.chunks, this.storedSamples);
    const taken = all.slice(from - this.startSample, to - this.startSample);
    const rest = all.subarray(to - this.startSample);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.storedSamples = rest.length;
    this.startSample = to;
    this.pendingSamples = this.endSample - to;
    return taken;
  }

  takeAll(): Int16Array {
    return this.take(this.startSample, this.endSample);
  }

  clear(): void {
    this.chunks = [];
    this.storedSamples = 0;
    this.startSample = this.endSample;
    this.pendingSamples = 0;
  }

  /** Drops stored audio older than `keepSamples` before the end; never changes `pendingSamples`. */
  keepTail(keepSamples: number): void {
    // Trim only when well over the limit, so a steady stream of small appends costs no copying.
    if (this.storedSamples <= keepSamples * 2) return;
    const all = concatSamples(this.chunks, this.storedSamples);
    const tail = all.slice(all.length - keepSamples);
    this.chunks = [tail];
    this.storedSamples = tail.length;
    this.startSample = this.endSample - tail.length;
  }
}

// ---------------------------------------------------------------- conversation items

type ItemStatus = NonNullable<MessageItem['status']>;

interface StoredItem {
  id: string;
  type: ConversationItem['type'];
  /** null for function_call / function_call_output items */
  role: MessageItem['role'] | null;
  status: ItemStatus;
  /** Content as sent on the wire, without audio bytes (the real API omits them too). */
  content: ContentPart[];
  /** PCM16 24 kHz of a spoken user turn. */
  userAudio: Int16Array | null;
  output: OutputAudio | null;
  /** function_call: the call; function_call_output: `call_id` and `output` (name and arguments unused). */
  call: StoredCall | null;
}

interface StoredCall {
  callId: string;
  name: string;
  arguments: string;
  /** function_call_output only */
  output: string;
}

/** The audio an assistant item has actually produced, and the transcript that goes with it. */
interface OutputAudio {
  chunks: Int16Array[];
  samples: number;
  /** The whole planned answer, so a cut can be placed proportionally however often it is cut. */
  plannedTranscript: string;
  plannedSamples: number;
}

/** A read-only view of one item, for tests and for the answer source. */
export interface ConversationEntry {
  id: string;
  type: ConversationItem['type'];
  /** null for function_call / function_call_output items */
  role: MessageItem['role'] | null;
  status: ItemStatus;
  /** PCM16 24 kHz: the user's spoken turn, or the assistant audio produced (after truncation). */
  audio: Int16Array | null;
  audioMs: number;
  /** For assistant audio: the part of the transcript the caller heard (cut with the audio). */
  transcript: string | null;
  /** Text content (input_text / output_text), joined. */
  text: string | null;
  /** function_call and function_call_output items */
  callId: string | null;
  /** function_call items */
  name: string | null;
  arguments: string | null;
  /** function_call_output items */
  output: string | null;
}

function transcriptUpTo(output: OutputAudio, samples: number): string {
  if (output.plannedSamples <= 0) return output.plannedTranscript;
  const chars = Math.floor((output.plannedTranscript.length * Math.min(samples, output.plannedSamples)) / output.plannedSamples);
  return output.plannedTranscript.slice(0, chars);
}

function wireItem(item: StoredItem): ConversationItem & { id: string } {
  const call = item.call;
  if (item.type === 'function_call' && call) {
    return { id: item.id, object: 'realtime.item', type: 'function_call', status: item.status, call_id: call.callId, name: call.name, arguments: call.arguments };
  }
  if (item.type === 'function_call_output' && call) {
    return { id: item.id, object: 'realtime.item', type: 'function_call_output', status: item.status, call_id: call.callId, output: call.output };
  }
  return {
    id: item.id,
    object: 'realtime.item',
    type: 'message',
    status: item.status,
    role: item.role ?? 'user',
    content: item.content.map((part) => ({ ...part })),
  };
}

// ---------------------------------------------------------------- responses

type WireResponse = ResponseObject & {
  conversation_id: string;
  output_modalities: Array<'audio' | 'text'>;
  audio: { output: { format: AudioFormat; voice: string } };
  metadata: Record<string, string> | null;
  /** null while in progress, as the service sends it; counted once the response is done */
  usage: ResponseUsage | null;
};

/** The schema's usage object. The counts are estimates (the real ones are the model's tokenizer's). */
interface ResponseUsage {
  total_tokens: number;
  input_tokens: number;
  output_tokens: number;
  input_token_details: { cached_tokens: number; text_tokens: number; audio_tokens: number };
  output_token_details: { text_tokens: number; audio_tokens: number };
}

/** Roughly what the service bills: ~4 characters per text token, ~50 ms of audio per audio token. */
const CHARS_PER_TEXT_TOKEN = 4;
const AUDIO_MS_PER_TOKEN = 50;

/** The function call a response will emit once its audio is done (or at cancel, as incomplete). */
interface PlannedCall {
  itemId: string;
  callId: string;
  name: string;
  arguments: string;
}

/** What `response.create` set for one response; the rest comes from the session. */
interface ResponseParams {
  instructions?: string;
  tools?: DeclaredTool[];
  toolChoice?: ToolChoice;
  metadata: Record<string, string> | null;
}

/** Characters per `response.function_call_arguments.delta` (at least two deltas are sent). */
const ARGUMENT_DELTA_CHARS = 16;

interface ActiveResponse {
  id: string;
  /** The assistant audio message; null when the response only calls a function. */
  item: StoredItem | null;
  call: PlannedCall | null;
  audio: Int16Array;
  transcript: string;
  sentSamples: number;
  sentChars: number;
  format: AudioFormat;
  /** 24 kHz → 8 kHz state for G.711 output, carried across this response's chunks. */
  downsampler: Downsampler3x;
  voice: string;
  metadata: Record<string, string> | null;
}

export interface StreamingState {
  responseId: string;
  /** The audio message's item, or the function call's when the response only calls a function. */
  itemId: string;
  /** ms of audio sent so far for this response */
  producedMs: number;
  remainingMs: number;
}

// ---------------------------------------------------------------- session

interface SessionPatch {
  model?: string;
  output_modalities?: Array<'audio' | 'text'>;
  instructions?: string;
  input?: Partial<RealtimeSessionConfig['audio']['input']>;
  output?: Partial<RealtimeSessionConfig['audio']['output']>;
  tools?: DeclaredTool[];
  toolChoice?: ToolChoice;
  opaque: Json;
}

function defaultSession(model: string): RealtimeSessionConfig {
  return {
    type: 'realtime',
    model,
    output_modalities: ['audio'],
    instructions: '',
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: 24000 },
        transcription: null,
        noise_reduction: null,
        turn_detection: { ...DEFAULT_SERVER_VAD },
      },
      output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'alloy', speed: 1 },
    },
  };
}

function readAudioFormat(v: unknown, param: string): AudioFormat {
  const obj = readObject(v, param);
  rejectUnknownKeys(obj, new Set(['type', 'rate']), param);
  if (obj['type'] === undefined) throw missing(`${param}.type`);
  const type = readEnum(obj['type'], `${param}.type`, ['audio/pcm', 'audio/pcmu', 'audio/pcma'] as const);
  if (type !== 'audio/pcm') {
    if (obj['rate'] !== undefined) throw unknownParameter(`${param}.rate`);
    return { type };
  }
  // The real API defaults an omitted rate to the only one it supports.
  if (obj['rate'] !== undefined) {
    if (typeof obj['rate'] !== 'number') throw invalidType(`${param}.rate`, 'an integer', obj['rate']);
    if (obj['rate'] !== 24000) throw invalidEnum(`${param}.rate`, obj['rate'], [24000]);
  }
  return { type, rate: 24000 };
}

function readTurnDetection(v: unknown, param: string): TurnDetection | null {
  if (v === null) return null;
  const obj = readObject(v, param);
  if (obj['type'] === undefined) throw missing(`${param}.type`);
  const type = readEnum(obj['type'], `${param}.type`, ['server_vad', 'semantic_vad'] as const);
  if (type === 'semantic_vad') {
    rejectUnknownKeys(obj, new Set(['type', 'eagerness', 'create_response', 'interrupt_response']), param);
    const vad: SemanticVad = { type, eagerness: 'auto', create_response: true, interrupt_response: true };
    if (obj['eagerness'] !== undefined) vad.eagerness = readEnum(obj['eagerness'], `${param}.eagerness`, ['low', 'medium', 'high', 'auto'] as const);
    if (obj['create_response'] !== undefined) vad.create_response = readBoolean(obj['create_response'], `${param}.create_response`);
    if (obj['interrupt_response'] !== undefined) vad.interrupt_response = readBoolean(obj['interrupt_response'], `${param}.interrupt_response`);
    return vad;
  }
  rejectUnknownKeys(
    obj,
    new Set(['type', 'threshold', 'prefix_padding_ms', 'silence_duration_ms', 'create_response', 'interrupt_response', 'idle_timeout_ms']),
    param,
  );
  const vad: ServerVad = { ...DEFAULT_SERVER_VAD };
  if (obj['threshold'] !== undefined) vad.threshold = readDecimal(obj['threshold'], `${param}.threshold`, 0, 1);
  if (obj['prefix_padding_ms'] !== undefined) vad.prefix_padding_ms = readInteger(obj['prefix_padding_ms'], `${param}.prefix_padding_ms`, 0);
  if (obj['silence_duration_ms'] !== undefined) vad.silence_duration_ms = readInteger(obj['silence_duration_ms'], `${param}.silence_duration_ms`, 0);
  if (obj['create_response'] !== undefined) vad.create_response = readBoolean(obj['create_response'], `${param}.create_response`);
  if (obj['interrupt_response'] !== undefined) vad.interrupt_response = readBoolean(obj['interrupt_response'], `${param}.interrupt_response`);
  // Local rule: idle_timeout_ms is validated but no idle timeout is ever triggered.
  if (obj['idle_timeout_ms'] !== undefined && obj['idle_timeout_ms'] !== null) readInteger(obj['idle_timeout_ms'], `${param}.idle_timeout_ms`, 0);
  return vad;
}

function readSessionPatch(raw: Json): SessionPatch {
  if (raw['session'] === undefined) throw missing('session');
  const session = readObject(raw['session'], 'session');
  for (const key of BETA_SESSION_KEYS) if (key in session) throw new BetaShapeError(`session.${key}`);
  if (session['type'] === undefined) throw missing('session.type');
  if (session['type'] !== 'realtime') {
    // Local rule: transcription-only sessions are not offered by the local server.
    throw invalidEnum('session.type', session['type'], ['realtime']);
  }
  rejectUnknownKeys(session, SESSION_KEYS, 'session');

  const patch: SessionPatch = { opaque: {} };
  if (session['model'] !== undefined) patch.model = readString(session['model'], 'session.model');
  if (session['instructions'] !== undefined) patch.instructions = readString(session['instructions'], 'session.instructions');
  if (session['output_modalities'] !== undefined) patch.output_modalities = readModalities(session['output_modalities'], 'session.output_modalities');
  if (session['tools'] !== undefined) patch.tools = readTools(session['tools'], 'session.tools');
  if (session['tool_choice'] !== undefined) patch.toolChoice = readToolChoice(session['tool_choice'], 'session.tool_choice');
  for (const key of OPAQUE_SESSION_KEYS) if (session[key] !== undefined) patch.opaque[key] = session[key];

  if (session['audio'] !== undefined) {
    const audio = readObject(session['audio'], 'session.audio');
    rejectUnknownKeys(audio, new Set(['input', 'output']), 'session.audio');
    if (audio['input'] !== undefined) {
      const p = 'session.audio.input';
      const input = readObject(audio['input'], p);
      rejectUnknownKeys(input, new Set(['format', 'transcription', 'noise_reduction', 'turn_detection']), p);
      patch.input = {};
      if (input['format'] !== undefined) patch.input.format = readAudioFormat(input['format'], `${p}.format`);
      if (input['transcription'] !== undefined) patch.input.transcription = readTranscription(input['transcription'], `${p}.transcription`);
      if (input['noise_reduction'] !== undefined) {
        const nr = input['noise_reduction'];
        if (nr === null) patch.input.noise_reduction = null;
        else {
          const obj = readObject(nr, `${p}.noise_reduction`);
          rejectUnknownKeys(obj, new Set(['type']), `${p}.noise_reduction`);
          patch.input.noise_reduction = { type: readEnum(obj['type'], `${p}.noise_reduction.type`, ['near_field', 'far_field'] as const) };
        }
      }
      if (input['turn_detection'] !== undefined) patch.input.turn_detection = readTurnDetection(input['turn_detection'], `${p}.turn_detection`);
    }
    if (audio['output'] !== undefined) {
      const p = 'session.audio.output';
      const output = readObject(audio['output'], p);
      rejectUnknownKeys(output, new Set(['format', 'voice', 'speed']), p);
      patch.output = {};
      if (output['format'] !== undefined) patch.output.format = readAudioFormat(output['format'], `${p}.format`);
      if (output['voice'] !== undefined) patch.output.voice = readString(output['voice'], `${p}.voice`);
      if (output['speed'] !== undefined) patch.output.speed = readDecimal(output['speed'], `${p}.speed`, 0.25, 1.5);
    }
  }
  return patch;
}

function readModalities(v: unknown, param: string): Array<'audio' | 'text'> {
  if (!Array.isArray(v)) throw invalidType(param, 'an array', v);
  const values: unknown[] = v;
  // The GA API produces one modality per response: audio (with its transcript) or text.
  if (values.length !== 1) {
    throw new ClientError('invalid_value', `Invalid '${param}': expected exactly one of 'audio' or 'text', but got ${values.length} values.`, param);
  }
  return [readEnum(values[0], `${param}[0]`, ['audio', 'text'] as const)];
}

function readTranscription(v: unknown, param: string): { model: string; language?: string } | null {
  if (v === null) return null;
  const obj = readObject(v, param);
  rejectUnknownKeys(obj, new Set(['model', 'language', 'prompt']), param);
  if (obj['model'] === undefined) throw missing(`${param}.model`);
  const out: { model: string; language?: string } = { model: readString(obj['model'], `${param}.model`) };
  if (obj['language'] !== undefined) out.language = readString(obj['language'], `${param}.language`);
  if (obj['prompt'] !== undefined) readString(obj['prompt'], `${param}.prompt`);
  return out;
}

function vadConfigOf(td: TurnDetection): VadConfig {
  if (td.type === 'server_vad') {
    return { threshold: td.threshold, prefixPaddingMs: td.prefix_padding_ms, silenceDurationMs: td.silence_duration_ms };
  }
  return {
    threshold: DEFAULT_SERVER_VAD.threshold,
    prefixPaddingMs: DEFAULT_SERVER_VAD.prefix_padding_ms,
    silenceDurationMs: SEMANTIC_SILENCE_MS[td.eagerness ?? 'auto'],
  };
}

// ---------------------------------------------------------------- the conversation

export interface ConversationOptions {
  /** Shared by all connections of one server, so ids are unique per server instance. */
  ids: IdSource;
  /** The model named in the connection URL. */
  model?: string;
  /** Read on every response, so a caller may swap it between responses. */
  answer?: () => AnswerSource;
  transcribe?: () => TranscribeSource;
}

export class Conversation {
  private readonly ids: IdSource;
  private readonly sessionId: string;
  private readonly conversationId: string;
  private readonly answerSource: () => AnswerSource;
  private readonly transcribeSource: () => TranscribeSource;
  private config: RealtimeSessionConfig;
  private tools: DeclaredTool[] = [];
  private toolChoice: ToolChoice = 'auto';
  private opaqueSession: Json = {
    max_output_tokens: 'inf',
    tracing: null,
    truncation: 'auto',
    prompt: null,
    include: null,
  };
  private expiresAtS = 0;
  private readonly itemList: StoredItem[] = [];
  private input: InputBuffer = new InputBuffer();
  private decoder: InputDecoder;
  private readonly vad: EnergyVad;
  /** Item id announced by speech_started, used by the commit that ends the turn. */
  private speechItemId: string | null = null;
  private active: ActiveResponse | null = null;
  private responseCount = 0;

  constructor(options: ConversationOptions) {
    this.ids = options.ids;
    this.sessionId = this.ids.next('sess');
    this.conversationId = this.ids.next('conv');
    const answer = options.answer;
    const transcribe = options.transcribe;
    this.answerSource = answer ?? (() => defaultAnswer);
    this.transcribeSource = transcribe ?? (() => defaultTranscribe);
    this.config = defaultSession(options.model ?? 'gpt-realtime');
    this.decoder = new InputDecoder(this.config.audio.input.format);
    this.vad = new EnergyVad(vadConfigOf(DEFAULT_SERVER_VAD));
  }

  // ------------------------------------------------------------ queries

  /** The session id (`sess_...`), as in `session.created`. */
  get id(): string {
    return this.sessionId;
  }

  /** A copy of the session configuration in force. */
  get session(): RealtimeSessionConfig {
    return { ...structuredClone(this.config), tools: this.tools.map(asFunctionTool), tool_choice: structuredClone(this.toolChoice) };
  }

  get items(): ConversationEntry[] {
    return this.itemList.map((item) => {
      const call = item.call;
      const fn = {
        callId: call?.callId ?? null,
        name: item.type === 'function_call' ? (call?.name ?? null) : null,
        arguments: item.type === 'function_call' ? (call?.arguments ?? null) : null,
        output: item.type === 'function_call_output' ? (call?.output ?? null) : null,
      };
      const output = item.output;
      const audio = output ? concatSamples(output.chunks, output.samples) : (item.userAudio?.slice() ?? null);
      const part = item.content[0];
      const transcript = part && (part.type === 'output_audio' || part.type === 'input_audio') ? (part.transcript ?? null) : null;
      const texts = item.content.flatMap((p) => (p.type === 'input_text' || p.type === 'output_text' ? [p.text] : []));
      return {
        id: item.id,
        type: item.type,
        role: item.role,
        status: item.status,
        audio,
        audioMs: audio ? samplesToMs(audio.length) : 0,
        transcript,
        text: texts.length > 0 ? texts.join('\n') : null,
        ...fn,
      };
    });
  }

  /** The response being streamed, if any: what the shell paces. */
  get streaming(): StreamingState | null {
    const a = this.active;
    if (!a) return null;
    return {
      responseId: a.id,
      itemId: a.item?.id ?? a.call?.itemId ?? '',
      producedMs: samplesToMs(a.sentSamples),
      remainingMs: (a.audio.length - a.sentSamples) / PCM16_24K_SAMPLES_PER_MS,
    };
  }

  /** Input-buffer time: ms of audio appended since the session started. */
  get inputMs(): number {
    return samplesToMs(this.input.endSample);
  }

  // ------------------------------------------------------------ connection lifecycle

  /** The first event of every connection. `nowMs` is wall-clock epoch ms (for `expires_at`). */
  open(nowMs: number): Outcome {
    this.expiresAtS = Math.floor((nowMs + SESSION_MAX_DURATION_MS) / 1000);
    return { events: [this.ev({ type: 'session.created', session: this.wireSession() })], close: null };
  }

  /** The handshake carried `OpenAI-Beta: realtime=v1`. */
  rejectBetaHandshake(): Outcome {
    return {
      events: [this.errorEvent('beta_api_shape_disabled', BETA_MESSAGE, null, null)],
      close: { code: BETA_CLOSE_CODE, reason: 'beta_api_shape_disabled' },
    };
  }

  /** The session reached its maximum duration. */
  expire(): Outcome {
    this.active = null;
    return {
      events: [this.errorEvent('session_expired', 'Your session hit the maximum duration of 60 minutes.', null, null)],
      close: { code: SESSION_EXPIRED_CLOSE_CODE, reason: 'session_expired' },
    };
  }

  /** Local rule: the Realtime API speaks JSON text frames only. */
  handleBinary(): Outcome {
    return this.fail(new ClientError('invalid_json', 'Binary frames are not supported; send each client event as a JSON text frame.'), null);
  }

  handleText(text: string): Outcome {
    const parsed = parseEventEnvelope(text);
    if (!parsed.ok) {
      if (parsed.error === 'missing "type"') return this.fail(missing('type'), null);
      return this.fail(new ClientError('invalid_json', `The client event could not be parsed: ${parsed.error}.`), null);
    }
    return this.handle(parsed.event);
  }

  /** One parsed client event, typed or straight off the wire. Never throws: every problem is an `error` event. */
  handle(clientEvent: RealtimeClientEvent | (Json & { type: string })): Outcome {
    // Typed events get the same checks as wire ones: a typed caller can still send nonsense values.
    const event = clientEvent as Json & { type: string };
    const clientEventId = typeof event['event_id'] === 'string' ? event['event_id'] : null;
    try {
      return { events: this.dispatch(event), close: null };
    } catch (err) {
      if (err instanceof BetaShapeError) {
        return {
          events: [this.errorEvent('beta_api_shape_disabled', BETA_MESSAGE, err.param, clientEventId)],
          close: { code: BETA_CLOSE_CODE, reason: 'beta_api_shape_disabled' },
        };
      }
      if (err instanceof ClientError) return this.fail(err, clientEventId);
      return { events: [this.serverError(err, clientEventId)], close: null };
    }
  }

  /** A hook (answer, transcription) failed: reported like the real API's server errors. */
  private serverError(err: unknown, clientEventId: string | null): ErrorEvent {
    const detail = err instanceof Error ? err.message : String(err);
    return this.ev<ErrorEvent>({
      type: 'error',
      error: { type: 'server_error', code: 'server_error', message: `The local server failed: ${detail}`, param: null, event_id: clientEventId },
    });
  }

  private dispatch(event: Json & { type: string }): LocalServerEvent[] {
    if (BETA_EVENT_TYPES.has(event.type)) throw new BetaShapeError('type');
    if (!(SUPPORTED_CLIENT_EVENTS as readonly string[]).includes(event.type)) throw invalidEnum('type', event.type, SUPPORTED_CLIENT_EVENTS);
    const type = event.type as SupportedClientEvent;
    switch (type) {
      case 'session.update':
        return this.onSessionUpdate(event);
      case 'input_audio_buffer.append':
        return this.onAppend(event);
      case 'input_audio_buffer.commit':
        return this.onCommit();
      case 'input_audio_buffer.clear':
        return this.onClear();
      case 'conversation.item.create':
        return this.onItemCreate(event);
      case 'conversation.item.retrieve':
        return this.onItemRetrieve(event);
      case 'conversation.item.truncate':
        return this.onTruncate(event);
      case 'conversation.item.delete':
        return this.onItemDelete(event);
      case 'response.create':
        return this.onResponseCreate(event);
      case 'response.cancel':
        return this.onResponseCancel(event);
    }
  }

  // ------------------------------------------------------------ session.update

  private onSessionUpdate(event: Json): LocalServerEvent[] {
    const patch = readSessionPatch(event);
    const next = structuredClone(this.config);
    if (patch.model !== undefined) next.model = patch.model;
    if (patch.instructions !== undefined) next.instructions = patch.instructions;
    if (patch.output_modalities !== undefined) next.output_modalities = patch.output_modalities;
    if (patch.input) Object.assign(next.audio.input, patch.input);
    if (patch.output) Object.assign(next.audio.output, patch.output);
    if (next.audio.output.voice !== this.config.audio.output.voice && this.hasAssistantAudio()) {
      throw new ClientError('cannot_update_voice', "Cannot update a conversation's voice if assistant audio is present.", 'session.audio.output.voice');
    }
    const tools = patch.tools ?? this.tools;
    const toolChoice = patch.toolChoice ?? this.toolChoice;
    checkToolChoice(toolChoice, tools, 'session.tool_choice');
    this.tools = tools;
    this.toolChoice = toolChoice;

    const inputFormatChanged = JSON.stringify(next.audio.input.format) !== JSON.stringify(this.config.audio.input.format);
    this.config = next;
    Object.assign(this.opaqueSession, patch.opaque);
    if (inputFormatChanged) this.decoder = new InputDecoder(next.audio.input.format);
    const td = next.audio.input.turn_detection;
    if (td) this.vad.configure(vadConfigOf(td));
    else {
      this.vad.reset();
      this.speechItemId = null;
    }
    return [this.ev({ type: 'session.updated', session: this.wireSession() })];
  }

  private hasAssistantAudio(): boolean {
    return this.itemList.some((item) => item.output !== null && item.output.samples > 0);
  }

  private wireSession(): Record<string, unknown> {
    return {
      object: 'realtime.session',
      id: this.sessionId,
      ...structuredClone(this.config),
      tools: structuredClone(this.tools),
      tool_choice: structuredClone(this.toolChoice),
      ...structuredClone(this.opaqueSession),
      expires_at: this.expiresAtS,
    };
  }

  // ------------------------------------------------------------ input audio buffer

  private onAppend(event: Json): LocalServerEvent[] {
    if (event['audio'] === undefined) throw missing('audio');
    const audio = readString(event['audio'], 'audio');
    const bytes = decodeBase64(audio);
    if (!bytes) throw new ClientError('invalid_value', "Invalid 'audio': expected base64-encoded audio bytes.", 'audio');
    if (bytes.length > MAX_APPEND_BYTES) {
      throw new ClientError(
        'invalid_value',
        `Invalid 'audio': ${bytes.length} bytes exceed the maximum of ${MAX_APPEND_BYTES} bytes per append.`,
        'audio',
      );
    }
    const samples = this.decoder.decode(bytes);
    this.input.append(samples);
    // The detector always runs, so its clock stays in input-buffer time across mode switches.
    const vadEvents = this.vad.push(samples);
    const td = this.config.audio.input.turn_detection;
    if (!td) {
      this.vad.reset();
      return [];
    }
    const out: LocalServerEvent[] = [];
    for (const v of vadEvents) out.push(...this.onVadEvent(v, td));
    if (!this.vad.speaking) {
      const keepMs = vadConfigOf(td).prefixPaddingMs + IDLE_INPUT_KEEP_EXTRA_MS;
      this.input.keepTail(keepMs * PCM16_24K_SAMPLES_PER_MS);
    }
    return out;
  }

  private onVadEvent(v: VadEvent, td: TurnDetection): LocalServerEvent[] {
    const out: LocalServerEvent[] = [];
    const interrupt = td.interrupt_response ?? true;
    const createResponse = td.create_response ?? true;
    if (v.type === 'speech_started') {
      const itemId = this.ids.next('item');
      this.speechItemId = itemId;
      out.push(this.ev({ type: 'input_audio_buffer.speech_started', audio_start_ms: v.audioStartMs, item_id: itemId }));
      // Drop what came before the padded start; it belongs to no turn.
      this.input.take(0, v.audioStartMs * PCM16_24K_SAMPLES_PER_MS);
      // The real server cancels by itself here, racing any response.cancel the client sends.
      if (interrupt && this.active) out.push(...this.finishResponse('cancelled', 'turn_detected'));
      return out;
    }
    const itemId = this.speechItemId ?? this.ids.next('item');
    this.speechItemId = null;
    out.push(this.ev({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: v.audioEndMs, item_id: itemId }));
    const audio = this.input.take(0, v.audioEndMs * PCM16_24K_SAMPLES_PER_MS);
    out.push(...this.commitUserAudio(itemId, audio));
    // Local rule: a turn that ends while a response still runs (interrupt_response false) starts
    // no second response; the real API documents no error for this case.
    if (createResponse && !this.active) out.push(...this.startResponseOrReport(null));
    return out;
  }

  private onCommit(): LocalServerEvent[] {
    const pendingMs = this.input.pendingSamples / PCM16_24K_SAMPLES_PER_MS;
    if (pendingMs < MIN_COMMIT_MS) {
      throw new ClientError(
        'input_audio_buffer_commit_empty',
        `Error committing input audio buffer: buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio, but buffer only has ${pendingMs.toFixed(2)}ms of audio.`,
      );
    }
    const itemId = this.speechItemId ?? this.ids.next('item');
    this.speechItemId = null;
    this.vad.reset();
    return this.commitUserAudio(itemId, this.input.takeAll());
  }

  private onClear(): LocalServerEvent[] {
    this.input.clear();
    this.vad.reset();
    this.speechItemId = null;
    return [this.ev({ type: 'input_audio_buffer.cleared' })];
  }

  private commitUserAudio(itemId: string, audio: Int16Array): LocalServerEvent[] {
    const previous = this.itemList[this.itemList.length - 1]?.id ?? null;
    const item: StoredItem = {
      id: itemId,
      type: 'message',
      role: 'user',
      status: 'completed',
      content: [{ type: 'input_audio', transcript: null }],
      userAudio: audio,
      output: null,
      call: null,
    };
    this.itemList.push(item);
    const out: LocalServerEvent[] = [
      this.ev({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: previous }),
      this.ev({ type: 'conversation.item.added', previous_item_id: previous, item: wireItem(item) }),
    ];
    if (this.config.audio.input.transcription) {
      // A failing hook must not undo the commit the events above already announced.
      try {
        const transcript = this.transcribeSource()({ audio: audio.slice(), durationMs: samplesToMs(audio.length), itemId });
        item.content = [{ type: 'input_audio', transcript }];
        out.push(
          this.ev({
            type: 'conversation.item.input_audio_transcription.completed',
            item_id: itemId,
            content_index: 0,
            transcript,
            // Transcription models bill by audio duration.
            usage: { type: 'duration', seconds: samplesToMs(audio.length) / 1000 },
          }),
        );
      } catch (err) {
        out.push(this.serverError(err, null));
      }
    }
    out.push(this.ev({ type: 'conversation.item.done', previous_item_id: previous, item: wireItem(item) }));
    return out;
  }

  // ------------------------------------------------------------ conversation items

  private onItemCreate(event: Json): LocalServerEvent[] {
    if (event['item'] === undefined) throw missing('item');
    const raw = readObject(event['item'], 'item');
    rejectUnknownKeys(raw, ITEM_KEYS_ANY, 'item');
    if (raw['type'] === undefined) throw missing('item.type');
    const type = readEnum(raw['type'], 'item.type', ['message', 'function_call', 'function_call_output'] as const);
    rejectUnknownKeys(raw, ITEM_KEYS[type], 'item');
    let id: string;
    if (raw['id'] !== undefined) {
      id = readString(raw['id'], 'item.id');
      if (this.findItem(id)) throw new ClientError('invalid_value', `Item with id '${id}' already exists.`, 'item.id');
    } else id = this.ids.next('item');
    if (raw['status'] !== undefined) readEnum(raw['status'], 'item.status', ['completed', 'incomplete', 'in_progress'] as const);
    const item =
      type === 'message' ? this.readMessageItem(raw, id) : type === 'function_call' ? this.readFunctionCallItem(raw, id) : this.readFunctionOutputItem(raw, id);

    const previousParam = event['previous_item_id'];
    let index = this.itemList.length;
    if (previousParam !== undefined && previousParam !== null) {
      const previousId = readString(previousParam, 'previous_item_id');
      if (previousId === 'root') index = 0;
      else {
        const at = this.itemList.findIndex((stored) => stored.id === previousId);
        // Local rule: code and wording are not documented for this case.
        if (at < 0) throw new ClientError('invalid_value', `Previous item with item_id not found: ${previousId}`, 'previous_item_id');
        index = at + 1;
      }
    }
    this.itemList.splice(index, 0, item);
    const previous = index > 0 ? (this.itemList[index - 1]?.id ?? null) : null;
    return [
      this.ev({ type: 'conversation.item.added', previous_item_id: previous, item: wireItem(item) }),
      this.ev({ type: 'conversation.item.done', previous_item_id: previous, item: wireItem(item) }),
    ];
  }

  private readMessageItem(raw: Json, id: string): StoredItem {
    if (raw['role'] === undefined) throw missing('item.role');
    const role = readEnum(raw['role'], 'item.role', ['user', 'assistant', 'system'] as const);
    if (raw['content'] === undefined) throw missing('item.content');
    if (!Array.isArray(raw['content'])) throw invalidType('item.content', 'an array', raw['content']);
    const parts: unknown[] = raw['content'];
    const allowed: ContentPart['type'][] =
      role === 'assistant' ? ['output_text', 'output_audio'] : role === 'system' ? ['input_text'] : ['input_text', 'input_audio'];
    const content: ContentPart[] = [];
    let userAudio: Int16Array | null = null;
    parts.forEach((v, i) => {
      const p = `item.content[${i}]`;
      const part = readObject(v, p);
      const type = readEnum(part['type'], `${p}.type`, allowed);
      if (type === 'input_text' || type === 'output_text') {
        content.push({ type, text: readString(part['text'], `${p}.text`) });
        return;
      }
      const transcript = part['transcript'] === undefined || part['transcript'] === null ? null : readString(part['transcript'], `${p}.transcript`);
      if (type === 'input_audio' && part['audio'] !== undefined) {
        const bytes = decodeBase64(readString(part['audio'], `${p}.audio`));
        if (!bytes) throw new ClientError('invalid_value', `Invalid '${p}.audio': expected base64-encoded audio bytes.`, `${p}.audio`);
        userAudio = new InputDecoder(this.config.audio.input.format).decode(bytes);
      }
      content.push({ type, transcript });
    });
    return { id, type: 'message', role, status: 'completed', content, userAudio, output: null, call: null };
  }

  /** A call the client adds itself (e.g. to re-seed a conversation): `call_id` is generated when absent. */
  private readFunctionCallItem(raw: Json, id: string): StoredItem {
    if (raw['name'] === undefined) throw missing('item.name');
    const name = readString(raw['name'], 'item.name');
    if (raw['arguments'] === undefined) throw missing('item.arguments');
    const args = readString(raw['arguments'], 'item.arguments');
    let callId: string;
    if (raw['call_id'] !== undefined) {
      callId = readString(raw['call_id'], 'item.call_id');
      // Local rule: a call_id names one call; outputs could not tell two calls apart.
      if (this.findCall(callId)) {
        throw new ClientError('invalid_value', `Invalid 'item.call_id': a function_call item with call_id '${callId}' already exists.`, 'item.call_id');
      }
    } else callId = this.ids.next('call');
    return { id, type: 'function_call', role: null, status: 'completed', content: [], userAudio: null, output: null, call: { callId, name, arguments: args, output: '' } };
  }

  /**
   * Local rule, strict: an output must answer a function_call item present in the conversation,
   * once; the real API does not document what it does with an output for an unknown call.
   */
  private readFunctionOutputItem(raw: Json, id: string): StoredItem {
    if (raw['call_id'] === undefined) throw missing('item.call_id');
    const callId = readString(raw['call_id'], 'item.call_id');
    if (raw['output'] === undefined) throw missing('item.output');
    const output = readString(raw['output'], 'item.output');
    const call = this.findCall(callId);
    if (!call) {
      throw new ClientError(
        'invalid_value',
        `Invalid 'item.call_id': no function_call item with call_id '${callId}' exists in the conversation; a function_call_output must answer a call the model made.`,
        'item.call_id',
      );
    }
    if (this.itemList.some((stored) => stored.type === 'function_call_output' && stored.call?.callId === callId)) {
      throw new ClientError(
        'invalid_value',
        `Invalid 'item.call_id': the function call '${callId}' already has a function_call_output; answer each call once.`,
        'item.call_id',
      );
    }
    return {
      id,
      type: 'function_call_output',
      role: null,
      status: 'completed',
      content: [],
      userAudio: null,
      output: null,
      call: { callId, name: call.call?.name ?? '', arguments: '', output },
    };
  }

  private findCall(callId: string): StoredItem | undefined {
    return this.itemList.find((stored) => stored.type === 'function_call' && stored.call?.callId === callId);
  }

  private onItemRetrieve(event: Json): LocalServerEvent[] {
    if (event['item_id'] === undefined) throw missing('item_id');
    const itemId = readString(event['item_id'], 'item_id');
    const item = this.findItem(itemId);
    if (!item) {
      throw new ClientError('item_retrieve_invalid_item_id', `Error retrieving item: the item with id '${itemId}' does not exist.`, 'item_id');
    }
    return [this.ev<ItemRetrievedEvent>({ type: 'conversation.item.retrieved', item: wireItem(item) })];
  }

  private onItemDelete(event: Json): LocalServerEvent[] {
    if (event['item_id'] === undefined) throw missing('item_id');
    const itemId = readString(event['item_id'], 'item_id');
    const at = this.itemList.findIndex((item) => item.id === itemId);
    if (at < 0) {
      throw new ClientError('item_delete_invalid_item_id', `Error deleting item: the item with id '${itemId}' does not exist.`, 'item_id');
    }
    this.itemList.splice(at, 1);
    return [this.ev({ type: 'conversation.item.deleted', item_id: itemId })];
  }

  /**
   * Validation order follows the real server: the value's type, its minimum, the item, the
   * item's kind, then the length of the audio actually produced.
   */
  private onTruncate(event: Json): LocalServerEvent[] {
    if (event['item_id'] === undefined) throw missing('item_id');
    const itemId = readString(event['item_id'], 'item_id');
    if (event['content_index'] === undefined) throw missing('content_index');
    if (event['audio_end_ms'] === undefined) throw missing('audio_end_ms');
    const audioEndMs = readInteger(event['audio_end_ms'], 'audio_end_ms', 0);
    const contentIndex = readInteger(event['content_index'], 'content_index', 0);
    const item = this.findItem(itemId);
    if (!item) throw new ClientError('item_truncate_invalid_item_id', `Item with item_id not found: ${itemId}`, 'item_id');
    const part = item.content[contentIndex];
    const output = item.output;
    if (item.role !== 'assistant' || !output || part?.type !== 'output_audio' || output.samples === 0) {
      throw new ClientError('unsupported_content_type', 'Only model output audio messages can be truncated', 'item_id');
    }
    const producedMs = samplesToMs(output.samples);
    if (audioEndMs > producedMs) {
      throw new ClientError('invalid_value', `Audio content of ${producedMs}ms is already shorter than ${audioEndMs}ms`, 'audio_end_ms');
    }
    const keep = audioEndMs * PCM16_24K_SAMPLES_PER_MS;
    const kept = concatSamples(output.chunks, keep);
    output.chunks = [kept];
    output.samples = kept.length;
    item.content[contentIndex] = { type: 'output_audio', transcript: transcriptUpTo(output, keep) };
    return [this.ev({ type: 'conversation.item.truncated', item_id: itemId, content_index: contentIndex, audio_end_ms: audioEndMs })];
  }

  private findItem(id: string): StoredItem | undefined {
    return this.itemList.find((item) => item.id === id);
  }

  // ------------------------------------------------------------ responses

  private onResponseCreate(event: Json): LocalServerEvent[] {
    const params: ResponseParams = { metadata: null };
    if (event['response'] !== undefined) {
      const overrides = readObject(event['response'], 'response');
      for (const key of BETA_RESPONSE_KEYS) if (key in overrides) throw new BetaShapeError(`response.${key}`);
      rejectUnknownKeys(overrides, RESPONSE_KEYS, 'response');
      if (overrides['conversation'] !== undefined) readString(overrides['conversation'], 'response.conversation');
      if (overrides['output_modalities'] !== undefined) readModalities(overrides['output_modalities'], 'response.output_modalities');
      if (overrides['instructions'] !== undefined) params.instructions = readString(overrides['instructions'], 'response.instructions');
      if (overrides['tools'] !== undefined) params.tools = readTools(overrides['tools'], 'response.tools');
      if (overrides['tool_choice'] !== undefined) params.toolChoice = readToolChoice(overrides['tool_choice'], 'response.tool_choice');
      if (params.tools !== undefined || params.toolChoice !== undefined) {
        checkToolChoice(params.toolChoice ?? this.toolChoice, params.tools ?? this.tools, 'response.tool_choice');
      }
      if (overrides['metadata'] !== undefined) params.metadata = readMetadata(overrides['metadata'], 'response.metadata');
    }
    if (this.active) {
      throw new ClientError(
        'conversation_already_has_active_response',
        `Conversation already has an active response in progress: ${this.active.id}. Wait until the response is finished before creating a new one.`,
      );
    }
    return this.startResponse(params);
  }

  private onResponseCancel(event: Json): LocalServerEvent[] {
    const responseId = event['response_id'] === undefined ? null : readString(event['response_id'], 'response_id');
    // Local rule: naming a response that is not the active one fails like having none active.
    if (!this.active || (responseId !== null && responseId !== this.active.id)) {
      throw new ClientError('response_cancel_not_active', 'Cancellation failed: no active response found');
    }
    return this.finishResponse('cancelled', 'client_cancelled');
  }

  /**
   * Local rule: every response (even `conversation: 'none'` or text modality) is one audio answer
   * added to the conversation, optionally followed by one function call; an answer with no audio
   * and a function call is that call alone.
   */
  private startResponseOrReport(params: ResponseParams | null): LocalServerEvent[] {
    // The turn events already emitted stand even when the answer source fails.
    try {
      return this.startResponse(params);
    } catch (err) {
      return [this.serverError(err, null)];
    }
  }

  private answerContext(params: ResponseParams | null): Required<AnswerContext> {
    const instructions = params?.instructions ?? this.config.instructions;
    const tools = params?.tools ?? this.tools;
    const lastUser = [...this.itemList].reverse().find((item) => item.type === 'message' && item.role === 'user');
    const texts = lastUser ? lastUser.content.flatMap((p) => (p.type === 'input_text' ? [p.text] : [])) : [];
    const newest = this.itemList[this.itemList.length - 1];
    const lastFunctionOutput =
      newest?.type === 'function_call_output' && newest.call
        ? { callId: newest.call.callId, name: this.findCall(newest.call.callId)?.call?.name ?? newest.call.name, output: newest.call.output }
        : null;
    return {
      lastUserAudio: lastUser?.userAudio ? lastUser.userAudio.slice() : null,
      lastUserTranscript: lastUser ? this.transcriptOf(lastUser) : null,
      responseIndex: this.responseCount,
      instructions,
      tools: tools.map((t) => t.name),
      toolChoice: structuredClone(params?.toolChoice ?? this.toolChoice),
      metadata: params?.metadata ? { ...params.metadata } : null,
      lastUserText: texts.length > 0 ? texts.join('\n') : null,
      lastFunctionOutput,
    };
  }

  private startResponse(params: ResponseParams | null): LocalServerEvent[] {
    const ctx = this.answerContext(params);
    const answer = this.answerSource()(ctx);
    if (!(answer.audio instanceof Int16Array) || typeof answer.transcript !== 'string') {
      throw new Error('the answer source must return { audio: Int16Array, transcript: string }');
    }
    const functionCall = checkAnswerCall(answer.functionCall, ctx);
    this.responseCount++;
    const format = this.config.audio.output.format;
    let audio = answer.audio;
    if (isG711(format) && audio.length % PCM16_24K_SAMPLES_PER_MS !== 0) {
      // Whole ms, so every ms of the answer is exactly 8 G.711 bytes.
      const padded = new Int16Array(Math.ceil(audio.length / PCM16_24K_SAMPLES_PER_MS) * PCM16_24K_SAMPLES_PER_MS);
      padded.set(audio);
      audio = padded;
    }
    const item: StoredItem | null =
      audio.length > 0 || !functionCall
        ? {
            id: this.ids.next('item'),
            type: 'message',
            role: 'assistant',
            status: 'in_progress',
            content: [],
            userAudio: null,
            output: { chunks: [], samples: 0, plannedTranscript: answer.transcript, plannedSamples: audio.length },
            call: null,
          }
        : null;
    const id = this.ids.next('resp');
    const call: PlannedCall | null = functionCall
      ? { itemId: this.ids.next('item'), callId: this.ids.next('call'), name: functionCall.name, arguments: functionCall.arguments }
      : null;
    const active: ActiveResponse = {
      id,
      item,
      call,
      audio,
      transcript: item ? answer.transcript : '',
      sentSamples: 0,
      sentChars: 0,
      format,
      downsampler: new Downsampler3x(),
      voice: this.config.audio.output.voice,
      metadata: ctx.metadata,
    };
    this.active = active;
    const events: LocalServerEvent[] = [this.ev({ type: 'response.created', response: this.wireResponse(active, 'in_progress', null, []) })];
    // A call alone is emitted by the first pump, so a cancel can still come first.
    if (!item) return events;
    const previous = this.itemList[this.itemList.length - 1]?.id ?? null;
    this.itemList.push(item);
    const ids = { response_id: active.id, item_id: item.id, output_index: 0, content_index: 0 };
    events.push(
      this.ev({ type: 'response.output_item.added', response_id: active.id, output_index: 0, item: wireItem(item) }),
      this.ev({ type: 'conversation.item.added', previous_item_id: previous, item: wireItem(item) }),
    );
    item.content = [{ type: 'output_audio', transcript: '' }];
    // The events name the part 'audio' where the item holds 'output_audio': the schema (and the service) say so.
    events.push(this.ev({ type: 'response.content_part.added', ...ids, part: { type: 'audio', transcript: '' } }));
    return events;
  }

  /**
   * Streams the next `maxMs` (or less, at the end) of the active response's audio. When the
   * audio is exhausted the response is completed in the same call (its function call, if any,
   * emitted first).
   */
  pump(maxMs: number): LocalServerEvent[] {
    const a = this.active;
    if (!a) return [];
    const out: LocalServerEvent[] = [];
    const item = a.item;
    const count = Math.min(a.audio.length - a.sentSamples, Math.max(0, Math.round(maxMs * PCM16_24K_SAMPLES_PER_MS)));
    if (item && count > 0) {
      const ids = { response_id: a.id, item_id: item.id, output_index: 0, content_index: 0 };
      const chunk = a.audio.slice(a.sentSamples, a.sentSamples + count);
      a.sentSamples += count;
      const output = item.output;
      if (output) {
        output.chunks.push(chunk);
        output.samples += chunk.length;
      }
      out.push(this.ev({ type: 'response.output_audio.delta', ...ids, delta: encodeOutput(chunk, a.format, a.downsampler).toString('base64') }));
      out.push(...this.transcriptDelta(a));
    }
    if (a.sentSamples >= a.audio.length) out.push(...this.finishResponse('completed', null));
    return out;
  }

  private transcriptDelta(a: ActiveResponse): LocalServerEvent[] {
    const item = a.item;
    if (!item) return [];
    const chars = a.audio.length === 0 ? a.transcript.length : Math.floor((a.transcript.length * a.sentSamples) / a.audio.length);
    if (chars <= a.sentChars) return [];
    const delta = a.transcript.slice(a.sentChars, chars);
    a.sentChars = chars;
    item.content = [{ type: 'output_audio', transcript: a.transcript.slice(0, chars) }];
    return [this.ev({ type: 'response.output_audio_transcript.delta', response_id: a.id, item_id: item.id, output_index: 0, content_index: 0, delta })];
  }

  private finishResponse(status: 'completed' | 'cancelled', reason: 'client_cancelled' | 'turn_detected' | null): LocalServerEvent[] {
    const a = this.active;
    if (!a) return [];
    this.active = null;
    const out: LocalServerEvent[] = [];
    const output: ConversationItem[] = [];
    const item = a.item;
    if (item) {
      if (status === 'completed') out.push(...this.transcriptDelta(a));
      const transcript = a.transcript.slice(0, a.sentChars);
      item.status = status === 'completed' ? 'completed' : 'incomplete';
      item.content = [{ type: 'output_audio', transcript }];
      const ids = { response_id: a.id, item_id: item.id, output_index: 0, content_index: 0 };
      out.push(
        this.ev({ type: 'response.output_audio.done', ...ids }),
        this.ev({ type: 'response.output_audio_transcript.done', ...ids, transcript }),
        this.ev({ type: 'response.content_part.done', ...ids, part: { type: 'audio', transcript } }),
        this.ev({ type: 'response.output_item.done', response_id: a.id, output_index: 0, item: wireItem(item) }),
        this.ev({ type: 'conversation.item.done', item: wireItem(item) }),
      );
      output.push(wireItem(item));
    }
    if (a.call) {
      // A cancelled response still emits its call, as the real API does, marked incomplete:
      // a client must run only calls whose item is completed.
      const emitted = this.emitCall(a, a.call, item ? 1 : 0, status === 'completed' ? 'completed' : 'incomplete');
      out.push(...emitted.events);
      output.push(emitted.item);
    }
    const details = reason ? { type: 'cancelled', reason } : null;
    out.push(this.ev({ type: 'response.done', response: this.wireResponse(a, status, details, output) }));
    return out;
  }

  /** The whole life of a function call item, from output_item.added to conversation.item.done. */
  private emitCall(
    a: ActiveResponse,
    call: PlannedCall,
    outputIndex: number,
    status: 'completed' | 'incomplete',
  ): { events: LocalServerEvent[]; item: ConversationItem } {
    const stored: StoredItem = {
      id: call.itemId,
      type: 'function_call',
      role: null,
      status: 'in_progress',
      content: [],
      userAudio: null,
      output: null,
      call: { callId: call.callId, name: call.name, arguments: '', output: '' },
    };
    const previous = this.itemList[this.itemList.length - 1]?.id ?? null;
    this.itemList.push(stored);
    const ids = { response_id: a.id, item_id: stored.id, output_index: outputIndex, call_id: call.callId };
    const events: LocalServerEvent[] = [
      this.ev({ type: 'response.output_item.added', response_id: a.id, output_index: outputIndex, item: wireItem(stored) }),
      this.ev({ type: 'conversation.item.added', previous_item_id: previous, item: wireItem(stored) }),
    ];
    for (const delta of splitArguments(call.arguments)) events.push(this.ev({ type: 'response.function_call_arguments.delta', ...ids, delta }));
    events.push(this.ev({ type: 'response.function_call_arguments.done', ...ids, name: call.name, arguments: call.arguments }));
    stored.status = status;
    stored.call = { callId: call.callId, name: call.name, arguments: call.arguments, output: '' };
    events.push(
      this.ev({ type: 'response.output_item.done', response_id: a.id, output_index: outputIndex, item: wireItem(stored) }),
      this.ev({ type: 'conversation.item.done', previous_item_id: previous, item: wireItem(stored) }),
    );
    return { events, item: wireItem(stored) };
  }

  private wireResponse(
    a: ActiveResponse,
    status: 'in_progress' | 'completed' | 'cancelled',
    details: ResponseObject['status_details'],
    output: ConversationItem[],
  ): WireResponse {
    return {
      id: a.id,
      object: 'realtime.response',
      status,
      status_details: details,
      output,
      conversation_id: this.conversationId,
      output_modalities: ['audio'],
      audio: { output: { format: a.format, voice: a.voice } },
      metadata: a.metadata,
      usage: status === 'in_progress' ? null : this.usageOf(a),
    };
  }

  private usageOf(a: ActiveResponse): ResponseUsage {
    const outputAudio = Math.ceil(samplesToMs(a.sentSamples) / AUDIO_MS_PER_TOKEN);
    const outputText = Math.ceil(a.sentChars / CHARS_PER_TEXT_TOKEN);
    let inputText = Math.ceil(this.config.instructions.length / CHARS_PER_TEXT_TOKEN);
    let inputAudio = 0;
    for (const item of this.itemList) {
      for (const part of item.content) {
        if (part.type === 'input_text' || part.type === 'output_text') inputText += Math.ceil(part.text.length / CHARS_PER_TEXT_TOKEN);
        else if (part.transcript) inputAudio += Math.ceil(part.transcript.length / CHARS_PER_TEXT_TOKEN);
      }
    }
    const input = inputText + inputAudio;
    const output = outputText + outputAudio;
    return {
      total_tokens: input + output,
      input_tokens: input,
      output_tokens: output,
      input_token_details: { cached_tokens: 0, text_tokens: inputText, audio_tokens: inputAudio },
      output_token_details: { text_tokens: outputText, audio_tokens: outputAudio },
    };
  }

  private transcriptOf(item: StoredItem): string | null {
    const parts = item.content.flatMap((p) => {
      if (p.type === 'input_text' || p.type === 'output_text') return [p.text];
      if ((p.type === 'input_audio' || p.type === 'output_audio') && p.transcript) return [p.transcript];
      return [];
    });
    return parts.length > 0 ? parts.join('\n') : null;
  }

  // ------------------------------------------------------------ event construction

  private ev<E extends LocalServerEvent>(body: DistributiveOmit<E, 'event_id'>): E {
    return { event_id: this.ids.next('event'), ...body } as E;
  }

  private errorEvent(code: string, message: string, param: string | null, clientEventId: string | null): ErrorEvent {
    return this.ev<ErrorEvent>({ type: 'error', error: { type: 'invalid_request_error', code, message, param, event_id: clientEventId } });
  }

  private fail(err: ClientError, clientEventId: string | null): Outcome {
    return { events: [this.errorEvent(err.code, err.message, err.param, clientEventId)], close: null };
  }
}

/**
 * The answer source's function call, checked against what the model may call for this response:
 * a real model never calls a tool that is not in force, nor any tool under tool_choice 'none'.
 */
function checkAnswerCall(call: AnswerFunctionCall | undefined | null, ctx: Required<AnswerContext>): AnswerFunctionCall | null {
  if (call === undefined || call === null) return null;
  if (!answerFunctionCall.is(call)) {
    throw new Error(`the answer source's functionCall must be { name: string, arguments: string }: ${problemText(answerFunctionCall.problems())}`);
  }
  if (ctx.toolChoice === 'none') throw new Error(`the answer source called '${call.name}' although tool_choice is 'none'`);
  if (!ctx.tools.includes(call.name)) {
    const declared = ctx.tools.length > 0 ? listValues(ctx.tools) : 'none';
    throw new Error(`the answer source called '${call.name}', which is not a declared tool (declared: ${declared})`);
  }
  if (typeof ctx.toolChoice === 'object' && ctx.toolChoice.name !== call.name) {
    throw new Error(`the answer source called '${call.name}' although tool_choice forces '${ctx.toolChoice.name}'`);
  }
  return { name: call.name, arguments: call.arguments };
}

/** Arguments in at least two deltas (when longer than one character), split on code points. */
function splitArguments(text: string): string[] {
  const chars = Array.from(text);
  if (chars.length <= 1) return [text];
  const count = Math.max(2, Math.ceil(chars.length / ARGUMENT_DELTA_CHARS));
  const size = Math.ceil(chars.length / count);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

/** The typed view of a declared tool (description and parameters default to empty). */
function asFunctionTool(tool: DeclaredTool): RealtimeFunctionTool {
  return { type: 'function', name: tool.name, description: tool.description ?? '', parameters: structuredClone(tool.parameters ?? {}) };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
