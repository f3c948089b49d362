/**
 * OpenAI Realtime API, GA interface: the client and server events this service speaks.
 * The beta shapes (`response.audio.delta`, flat `input_audio_format`) are gone and must not
 * appear here.
 */
import { isJsonObject } from '../util/json.js';
import type { JsonObject } from '../util/json.js';

// ---------------------------------------------------------------- session configuration

export type AudioFormat = { type: 'audio/pcm'; rate: 24000 } | { type: 'audio/pcmu' } | { type: 'audio/pcma' };

export interface ServerVad {
  type: 'server_vad';
  threshold: number;
  prefix_padding_ms: number;
  silence_duration_ms: number;
  create_response: boolean;
  interrupt_response: boolean;
}

export interface SemanticVad {
  type: 'semantic_vad';
  eagerness?: 'low' | 'medium' | 'high' | 'auto';
  create_response?: boolean;
  interrupt_response?: boolean;
}

export type TurnDetection = ServerVad | SemanticVad;

/** A function the model may call (GA: declared in the session, answered with function_call_output). */
export interface RealtimeFunctionTool {
  type: 'function';
  name: string;
  description: string;
  /** JSON Schema of the arguments object */
  parameters: Record<string, unknown>;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; name: string };

export interface RealtimeSessionConfig {
  type: 'realtime';
  tools?: RealtimeFunctionTool[];
  tool_choice?: ToolChoice;
  model?: string;
  output_modalities: Array<'audio' | 'text'>;
  instructions: string;
  audio: {
    input: {
      format: AudioFormat;
      transcription?: { model: string; language?: string } | null;
      noise_reduction?: { type: 'near_field' | 'far_field' } | null;
      turn_detection: TurnDetection | null;
    };
    output: {
      format: AudioFormat;
      voice: string;
      speed?: number;
    };
  };
}

// ---------------------------------------------------------------- conversation items

export type ContentPart =
  | { type: 'input_text'; text: string }
  | { type: 'input_audio'; audio?: string; transcript?: string | null }
  | { type: 'output_text'; text: string }
  | { type: 'output_audio'; audio?: string; transcript?: string | null };

export interface MessageItem {
  id?: string;
  type: 'message';
  object?: 'realtime.item';
  role: 'user' | 'assistant' | 'system';
  status?: 'completed' | 'incomplete' | 'in_progress';
  content: ContentPart[];
}

export interface FunctionCallItem {
  id?: string;
  type: 'function_call';
  object?: 'realtime.item';
  status?: 'completed' | 'incomplete' | 'in_progress';
  call_id: string;
  name: string;
  /** JSON text, possibly invalid: the model writes it */
  arguments: string;
}

export interface FunctionCallOutputItem {
  id?: string;
  type: 'function_call_output';
  object?: 'realtime.item';
  status?: 'completed' | 'incomplete' | 'in_progress';
  call_id: string;
  output: string;
}

export type ConversationItem = MessageItem | FunctionCallItem | FunctionCallOutputItem;

// ---------------------------------------------------------------- client events

export interface SessionUpdateEvent {
  type: 'session.update';
  event_id?: string;
  session: RealtimeSessionConfig;
}
export interface InputAudioAppendEvent {
  type: 'input_audio_buffer.append';
  event_id?: string;
  audio: string;
}
export interface InputAudioClearEvent {
  type: 'input_audio_buffer.clear';
  event_id?: string;
}
export interface InputAudioCommitEvent {
  type: 'input_audio_buffer.commit';
  event_id?: string;
}
/** Per-response overrides (GA `RealtimeResponseCreateParams`, the subset the bridge uses). */
export interface ResponseCreateParams {
  instructions?: string;
  tool_choice?: ToolChoice;
  /** up to 16 string pairs; echoed in response.created/done, so a response's purpose is known */
  metadata?: Record<string, string>;
}
export interface ResponseCreateEvent {
  type: 'response.create';
  event_id?: string;
  response?: ResponseCreateParams;
}
export interface ResponseCancelEvent {
  type: 'response.cancel';
  event_id?: string;
  response_id?: string;
}
export interface ItemTruncateEvent {
  type: 'conversation.item.truncate';
  event_id?: string;
  item_id: string;
  content_index: number;
  audio_end_ms: number;
}
export interface ItemDeleteEvent {
  type: 'conversation.item.delete';
  event_id?: string;
  item_id: string;
}
export interface ItemCreateEvent {
  type: 'conversation.item.create';
  event_id?: string;
  previous_item_id?: string | null;
  item: ConversationItem;
}

export type RealtimeClientEvent =
  | SessionUpdateEvent
  | InputAudioAppendEvent
  | InputAudioClearEvent
  | InputAudioCommitEvent
  | ResponseCreateEvent
  | ResponseCancelEvent
  | ItemTruncateEvent
  | ItemDeleteEvent
  | ItemCreateEvent;

// ---------------------------------------------------------------- server events

export interface RealtimeErrorBody {
  type: string;
  code: string | null;
  message: string;
  param?: string | null;
  event_id?: string | null;
}

export type ResponseStatus = 'completed' | 'cancelled' | 'failed' | 'incomplete' | 'in_progress';

export interface ResponseObject {
  id: string;
  object?: 'realtime.response';
  status: ResponseStatus;
  status_details?: { type?: string; reason?: string; error?: unknown } | null;
  output?: ConversationItem[];
  metadata?: Record<string, string> | null;
}

interface Base {
  event_id: string;
}

export interface ErrorEvent extends Base {
  type: 'error';
  error: RealtimeErrorBody;
}
export interface SessionCreatedEvent extends Base {
  type: 'session.created';
  session: Record<string, unknown>;
}
export interface SessionUpdatedEvent extends Base {
  type: 'session.updated';
  session: Record<string, unknown>;
}
export interface SpeechStartedEvent extends Base {
  type: 'input_audio_buffer.speech_started';
  audio_start_ms: number;
  item_id: string;
}
export interface SpeechStoppedEvent extends Base {
  type: 'input_audio_buffer.speech_stopped';
  audio_end_ms: number;
  item_id: string;
}
export interface InputCommittedEvent extends Base {
  type: 'input_audio_buffer.committed';
  item_id: string;
  previous_item_id: string | null;
}
export interface InputClearedEvent extends Base {
  type: 'input_audio_buffer.cleared';
}
export interface ItemAddedEvent extends Base {
  type: 'conversation.item.added' | 'conversation.item.done' | 'conversation.item.created';
  previous_item_id?: string | null;
  item: ConversationItem;
}
export interface ItemDeletedEvent extends Base {
  type: 'conversation.item.deleted';
  item_id: string;
}
export interface ItemTruncatedEvent extends Base {
  type: 'conversation.item.truncated';
  item_id: string;
  content_index: number;
  audio_end_ms: number;
}
export interface InputTranscriptionCompletedEvent extends Base {
  type: 'conversation.item.input_audio_transcription.completed';
  item_id: string;
  content_index: number;
  transcript: string;
  /** the transcription model's billing: by audio duration or by tokens (the bridge does not read it) */
  usage?: { type: 'duration'; seconds: number } | { type: 'tokens'; total_tokens: number; input_tokens: number; output_tokens: number };
}
export interface ResponseCreatedEvent extends Base {
  type: 'response.created';
  response: ResponseObject;
}
export interface ResponseDoneEvent extends Base {
  type: 'response.done';
  response: ResponseObject;
}
export interface OutputItemAddedEvent extends Base {
  type: 'response.output_item.added' | 'response.output_item.done';
  response_id: string;
  output_index: number;
  item: ConversationItem & { id: string };
}
export interface FunctionCallArgumentsDeltaEvent extends Base {
  type: 'response.function_call_arguments.delta';
  response_id: string;
  item_id: string;
  output_index: number;
  call_id: string;
  delta: string;
}
export interface FunctionCallArgumentsDoneEvent extends Base {
  type: 'response.function_call_arguments.done';
  response_id: string;
  item_id: string;
  output_index: number;
  call_id: string;
  name: string;
  arguments: string;
}
export interface ContentPartEvent extends Base {
  type: 'response.content_part.added' | 'response.content_part.done';
  response_id: string;
  item_id: string;
  output_index: number;
  content_index: number;
  /** named 'audio' / 'text' in these events, where the item's content says 'output_audio' / 'output_text' */
  part: { type: 'audio'; transcript?: string } | { type: 'text'; text?: string };
}
export interface OutputAudioDeltaEvent extends Base {
  type: 'response.output_audio.delta';
  response_id: string;
  item_id: string;
  output_index: number;
  content_index: number;
  /** base64 PCM16 LE mono 24 kHz, any size */
  delta: string;
}
export interface OutputAudioDoneEvent extends Base {
  type: 'response.output_audio.done';
  response_id: string;
  item_id: string;
  output_index: number;
  content_index: number;
}
export interface OutputTranscriptDeltaEvent extends Base {
  type: 'response.output_audio_transcript.delta';
  response_id: string;
  item_id: string;
  output_index: number;
  content_index: number;
  delta: string;
}
export interface OutputTranscriptDoneEvent extends Base {
  type: 'response.output_audio_transcript.done';
  response_id: string;
  item_id: string;
  output_index: number;
  content_index: number;
  transcript: string;
}
export interface RateLimitsUpdatedEvent extends Base {
  type: 'rate_limits.updated';
  rate_limits: unknown[];
}

export type RealtimeServerEvent =
  | ErrorEvent
  | SessionCreatedEvent
  | SessionUpdatedEvent
  | SpeechStartedEvent
  | SpeechStoppedEvent
  | InputCommittedEvent
  | InputClearedEvent
  | ItemAddedEvent
  | ItemDeletedEvent
  | ItemTruncatedEvent
  | InputTranscriptionCompletedEvent
  | ResponseCreatedEvent
  | ResponseDoneEvent
  | OutputItemAddedEvent
  | FunctionCallArgumentsDeltaEvent
  | FunctionCallArgumentsDoneEvent
  | ContentPartEvent
  | OutputAudioDeltaEvent
  | OutputAudioDoneEvent
  | OutputTranscriptDeltaEvent
  | OutputTranscriptDoneEvent
  | RateLimitsUpdatedEvent;

export type RealtimeServerEventType = RealtimeServerEvent['type'];

/** Events the bridge does not act on still arrive; they parse to this. */
export interface OtherServerEvent {
  type: 'other';
  originalType: string;
}

export type RealtimeParseResult =
  | { ok: true; event: RealtimeServerEvent | OtherServerEvent }
  | { ok: false; error: string };

type Json = JsonObject;

/** Fields that must be present (with the given JS type) for each event the bridge acts on. */
const REQUIRED: Partial<Record<RealtimeServerEventType, ReadonlyArray<readonly [string, 'string' | 'number' | 'object']>>> = {
  error: [['error', 'object']],
  'input_audio_buffer.speech_started': [['audio_start_ms', 'number'], ['item_id', 'string']],
  'input_audio_buffer.speech_stopped': [['audio_end_ms', 'number'], ['item_id', 'string']],
  'response.created': [['response', 'object']],
  'response.done': [['response', 'object']],
  'response.output_item.added': [['response_id', 'string'], ['item', 'object']],
  'response.output_item.done': [['response_id', 'string'], ['item', 'object']],
  'response.function_call_arguments.delta': [['response_id', 'string'], ['item_id', 'string'], ['call_id', 'string'], ['delta', 'string']],
  'response.function_call_arguments.done': [['response_id', 'string'], ['item_id', 'string'], ['call_id', 'string'], ['arguments', 'string']],
  'response.output_audio.delta': [['response_id', 'string'], ['item_id', 'string'], ['content_index', 'number'], ['delta', 'string']],
  'response.output_audio.done': [['response_id', 'string'], ['item_id', 'string'], ['content_index', 'number']],
  'response.output_audio_transcript.done': [['item_id', 'string'], ['transcript', 'string']],
  'conversation.item.input_audio_transcription.completed': [['item_id', 'string'], ['transcript', 'string']],
  'conversation.item.truncated': [['item_id', 'string'], ['audio_end_ms', 'number']],
};

const KNOWN = new Set<string>([
  'error',
  'session.created',
  'session.updated',
  'input_audio_buffer.speech_started',
  'input_audio_buffer.speech_stopped',
  'input_audio_buffer.committed',
  'input_audio_buffer.cleared',
  'conversation.item.added',
  'conversation.item.done',
  'conversation.item.created',
  'conversation.item.deleted',
  'conversation.item.truncated',
  'conversation.item.input_audio_transcription.completed',
  'response.created',
  'response.done',
  'response.output_item.added',
  'response.output_item.done',
  'response.function_call_arguments.delta',
  'response.function_call_arguments.done',
  'response.content_part.added',
  'response.content_part.done',
  'response.output_audio.delta',
  'response.output_audio.done',
  'response.output_audio_transcript.delta',
  'response.output_audio_transcript.done',
  'rate_limits.updated',
]);

/** Parse one text frame from the Realtime server. Never throws. */
export function parseServerEvent(text: string): RealtimeParseResult {
  const envelope = parseEventEnvelope(text);
  if (!envelope.ok) return envelope;
  const raw = envelope.event;
  const type = raw.type;
  if (!KNOWN.has(type)) return { ok: true, event: { type: 'other', originalType: type } };
  const required = REQUIRED[type as RealtimeServerEventType] ?? [];
  for (const [field, kind] of required) {
    const v = raw[field];
    if (kind === 'object' ? !isJsonObject(v) : typeof v !== kind) {
      return { ok: false, error: `${type}: field "${field}" must be a ${kind}` };
    }
  }
  if (type === 'response.created' || type === 'response.done') {
    const response = raw['response'] as Json;
    if (typeof response['id'] !== 'string') return { ok: false, error: `${type}: response.id must be a string` };
  }
  if (type === 'response.output_item.added' || type === 'response.output_item.done') {
    const item = raw['item'] as Json;
    if (typeof item['id'] !== 'string') return { ok: false, error: `${type}: item.id must be a string` };
    if (item['type'] === 'function_call') {
      for (const field of ['call_id', 'name', 'arguments'] as const) {
        if (typeof item[field] !== 'string') return { ok: false, error: `${type}: function_call item.${field} must be a string` };
      }
    }
  }
  // The checks above cover every field the bridge reads for this type.
  return { ok: true, event: raw as unknown as RealtimeServerEvent };
}

/** Parse one text frame into a JSON object with a string `type`, either direction. Never throws. */
export function parseEventEnvelope(text: string): { ok: true; event: Json & { type: string } } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not valid JSON' };
  }
  if (!isJsonObject(raw)) return { ok: false, error: 'not a JSON object' };
  if (typeof raw['type'] !== 'string') return { ok: false, error: 'missing "type"' };
  return { ok: true, event: raw as Json & { type: string } };
}
