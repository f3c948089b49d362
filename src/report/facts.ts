/**
 * What happened on a call, folded message by message from the traffic the bridge reports to its
 * recorders (both directions of both sockets, with times). This is the one account of a call:
 * the post-call report reads it live (src/report/recorder.ts) and the replay summary reads it
 * from a recording (src/tooling/replay/summary.ts), so the two can never disagree on a turn, a tool call
 * or an interruption.
 *
 * What the caller heard of each agent item comes from the bridge's own mark accounting: a
 * PlayoutTracker (src/call/playout.ts, the session's) is driven with the media and marks the
 * bridge sent and the echoes Twilio sent back, so the figures are the ones the session truncates
 * the model's memory at; a truncate the session sent wins for its item.
 *
 * Bounded: audio payloads are measured, never kept; every list stops growing at FACTS_LIMITS
 * (what was left out is counted in `omitted`); texts are clipped; the maps that follow messages
 * in flight are pruned. A four-hour call costs what its capped lists cost, not its length.
 *
 * Times are ms since the `start` message arrived (the stream clock), whatever clock `atMs` is on.
 * Messages before `start` are ignored; messages are expected in the order the bridge handled them.
 */
import { KEYPAD_ENTRY_PREFIX } from '../call/agent-script.js';
import { PlayoutTracker } from '../call/playout.js';
import { CAPTURE_END_TYPE } from '../call/recorder.js';
import { MULAW_BYTES_PER_MS, PCM24K_BYTES_PER_MS, base64ByteLength } from '../audio/wire-format.js';
import { isObj, num, obj, round1, str, type Obj } from './fields.js';

const PCM24K_SAMPLES_PER_MS = PCM24K_BYTES_PER_MS / 2;
/**
 * An item heard to within this of its end was heard whole: the outbound path may hold back a few
 * ms of an item's tail (resampler delay, a partial frame), which is no word.
 */
const WHOLE_ITEM_SLACK_MS = 20;

export type FactsLimits = Readonly<Record<'callerTurns' | 'responses' | 'agentItems' | 'clears' | 'toolCalls' | 'keypadEntries' | 'errors' | 'errorCodes' | 'textChars' | 'pendingMarks', number>>;

/** Caps on what one call's account keeps; see docs/report.md (Limits). */
export const FACTS_LIMITS: FactsLimits = {
  callerTurns: 2000,
  responses: 4000,
  agentItems: 2000,
  clears: 2000,
  toolCalls: 500,
  keypadEntries: 500,
  /** API error events kept in full; all of them are counted. */
  errors: 200,
  /** Distinct error codes counted by name; later new ones count as `other`. */
  errorCodes: 32,
  /** Characters kept of one agent item's or caller turn's text. */
  textChars: 8000,
  /** Marks awaiting their echo; past it the oldest names are forgotten (their echoes then move nothing). */
  pendingMarks: 20_000,
};

/** Tool outputs and errors are cut to this many characters (the last one then being …). */
export const TOOL_TEXT_MAX_CHARS = 500;
const OTHER_ERROR_CODE = 'other';

// ---------------------------------------------------------------- the account

export interface StartFact {
  callSid: string;
  streamSid: string;
  customParameters: Record<string, string>;
  /** The `start` arrival on the recorder's clock: stream time 0. */
  atMs: number;
}

/** One turn of the caller's, as the server VAD saw it. */
export interface CallerTurnFact {
  /** The user item the server opened for the turn. */
  itemId: string | null;
  /** Arrival of `input_audio_buffer.speech_started`. */
  startedMs: number;
  /** Arrival of the matching `speech_stopped`; null if the call ended mid-speech. */
  stoppedMs: number | null;
  /** First media frame the bridge sent to Twilio after speech_stopped (and before the next turn); null if none. */
  firstAudioSentMs: number | null;
  /** firstAudioSentMs − stoppedMs. */
  firstAudioLatencyMs: number | null;
  /** The server's transcription of the turn; null without a transcription model (or none came). */
  text: string | null;
}

export interface ResponseFact {
  id: string;
  /** Why the bridge asked for it: its `metadata.purpose` (greeting, answer, tool-output, reminder, goodbye, transfer-failed); null if absent (e.g. a VAD-created response). */
  purpose: string | null;
  /** response.done's status (completed / cancelled / failed / incomplete); null if it never came. */
  status: string | null;
  /** response.done's status_details.reason (e.g. client_cancelled). */
  reason: string | null;
  /** Arrival of `response.created`. */
  createdMs: number;
  /** Arrival of `response.done`; null if it never came. */
  doneMs: number | null;
  /** ms of its audio the bridge sent to Twilio. */
  audioSentMs: number;
}

/** One assistant output item: what the agent said, and what of it the caller heard. */
export interface AgentItemFact {
  itemId: string;
  responseId: string | null;
  purpose: string | null;
  /** First event of the item (its first audio delta, or its output_item.added). */
  startedMs: number;
  /** First of its audio sent to Twilio; null if none was. */
  firstAudioSentMs: number | null;
  /** What the model said: its transcript's done event, else its deltas, else response.done's content. */
  text: string;
  /** ms of audio the model produced for it. */
  audioMs: number;
  /** ms of it sent to Twilio (suppressed deltas of a cancelled response are produced, never sent). */
  sentMs: number;
  /** ms of it the caller heard: the truncation point when it was truncated, 0 when deleted, else the mark accounting. */
  heardMs: number;
  /** The words of `text` the caller heard: see heardShare(). */
  heardText: string;
  /** The caller barged in on it: the bridge truncated or deleted it. */
  interrupted: boolean;
}

export interface ClearFact {
  /** When the bridge sent `clear`. */
  atMs: number;
  /** What the clear answered: the caller's speech or key (a barge-in), or something else (hold tone ended, apology, re-seed). */
  trigger: 'speech' | 'keypad' | 'other';
  /** Arrival of the speech_started or key it answered; null for `other`. */
  triggerAtMs: number | null;
  /** atMs − triggerAtMs: the bridge's barge-in reaction. */
  reactionMs: number | null;
  /** response.cancel sent with the clear. */
  cancelledResponseId: string | null;
  /** conversation.item.truncate sent with the clear, in order. */
  truncated: Array<{ itemId: string; audioEndMs: number }>;
  /** conversation.item.delete sent with the clear. */
  deleted: string[];
  /** The agent item being heard when the clear went out (the truncated one, else the last one sent); null if none. */
  itemId: string | null;
  responseId: string | null;
  /** ms of that item the caller had heard: its truncation point, else the mark accounting; 0 when none. */
  heardMs: number;
}

export interface ToolCallFact {
  callId: string;
  name: string;
  /** The arguments as the model wrote them (JSON text, possibly invalid). */
  arguments: string;
  /** The response that made the call. */
  responseId: string | null;
  /** Arrival of its `response.output_item.done` with status `completed` (when it ran); else of its first item event. */
  startMs: number;
  /** From startMs to the bridge sending its `function_call_output`; null if no output was sent. */
  durationMs: number | null;
  /** False when the output was an error (`{"error":"…"}`); null if no output was sent. */
  ok: boolean | null;
  /** The output sent (ok only), cut to TOOL_TEXT_MAX_CHARS. */
  output?: string;
  /** The error text of an error output, cut to TOOL_TEXT_MAX_CHARS. */
  error?: string;
  /** The bridge ran it: its item was done with status `completed` (or it was answered). False for calls of cancelled / incomplete responses, which get no output. */
  ran: boolean;
}

export interface KeypadEntryFact {
  /** When the bridge sent the entry to the model. */
  atMs: number;
  digits: string;
}

export interface ApiErrorFact {
  atMs: number;
  code: string | null;
  message: string;
  type: string | null;
}

export interface CallEndFact {
  atMs: number;
  /** The session's end reason as the bridge reported it; null when not known. */
  reason: string | null;
}

export interface CallFactsSnapshot {
  /** null until `start` was seen: then nothing else is known either. */
  start: StartFact | null;
  callerTurns: CallerTurnFact[];
  responses: ResponseFact[];
  agentItems: AgentItemFact[];
  clears: ClearFact[];
  toolCalls: ToolCallFact[];
  keypadEntries: KeypadEntryFact[];
  /** The first FACTS_LIMITS.errors API error events. */
  errors: ApiErrorFact[];
  /** Every API error event, counted by code (`unknown` without one, `other` past the distinct-code cap). */
  errorCounts: Record<string, number>;
  /** Upstream sessions configured (session.update sent): 1 plus the reconnects. */
  upstreamSessions: number;
  ended: CallEndFact | null;
  /** Entries left out of each list by FACTS_LIMITS. */
  omitted: Record<'callerTurns' | 'responses' | 'agentItems' | 'clears' | 'toolCalls' | 'keypadEntries' | 'errors', number>;
}

// ---------------------------------------------------------------- the fold

interface ItemState extends AgentItemFact {
  /** heardMs is final: set by a truncate, a delete or the clear that ended its playback. */
  settled: boolean;
  /** text came from a transcript's done event: later deltas change nothing. */
  textDone: boolean;
  producedBytes: number;
  sentBytes: number;
}

interface Batch {
  trigger: ClearFact['trigger'];
  triggerAtMs: number | null;
  cancelledResponseId: string | null;
  truncated: Array<{ itemId: string; audioEndMs: number }>;
  deleted: string[];
}

const newBatch = (trigger: ClearFact['trigger'], atMs: number | null): Batch => ({ trigger, triggerAtMs: atMs, cancelledResponseId: null, truncated: [], deleted: [] });

export class CallFacts {
  private startFact: StartFact | null = null;
  private readonly callerTurns: CallerTurnFact[] = [];
  private readonly turnsByItem = new Map<string, CallerTurnFact>();
  private readonly responses = new Map<string, ResponseFact>();
  private readonly items = new Map<string, ItemState>();
  private readonly clears: ClearFact[] = [];
  private readonly toolCalls = new Map<string, ToolCallFact>();
  private readonly keypadEntries: KeypadEntryFact[] = [];
  private readonly errors: ApiErrorFact[] = [];
  private readonly errorCounts = new Map<string, number>();
  private upstreamSessions = 0;
  private endFact: CallEndFact | null = null;
  private readonly omitted: CallFactsSnapshot['omitted'] = { callerTurns: 0, responses: 0, agentItems: 0, clears: 0, toolCalls: 0, keypadEntries: 0, errors: 0 };
  /** Keys arrived, and keys arrived up to the last keypad entry that counted (re-seeded entries repeat old ones). */
  private keysSeen = 0;
  private keysCounted = 0;
  /** The outputs of one input leave together after it: the actions since the last inbound message. */
  private batch: Batch = newBatch('other', null);
  /** The item whose delta came last since the last clear: the owner of the frames the bridge sends now. */
  private playing: { itemId: string; responseId: string | null } | null = null;
  private readonly playout = new PlayoutTracker();
  /** Twilio mark names as the bridge sent them → the same mark in our playout (a new generation at each clear). */
  private readonly markNames = new Map<string, string>();
  private lastAtMs = 0;

  constructor(private readonly limits: FactsLimits = FACTS_LIMITS) {}

  /** A Twilio message: `in` from Twilio, `out` sent by the bridge. */
  twilio(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    if (!isObj(msg)) return;
    const event = str(msg, 'event');
    if (this.startFact === null) {
      if (dir === 'in' && event === 'start') this.onStart(msg, atMs);
      return;
    }
    const t = this.at(atMs);
    if (dir === 'in') {
      this.batch = newBatch(event === 'dtmf' ? 'keypad' : 'other', t);
      if (event === 'dtmf') this.keysSeen += 1;
      else if (event === 'mark') this.onMarkEcho(str(obj(msg, 'mark'), 'name'), atMs);
      return;
    }
    if (event === 'media') this.onMediaSent(msg, t, atMs);
    else if (event === 'mark') this.onMarkSent(str(obj(msg, 'mark'), 'name'));
    else if (event === 'clear') this.onClear(t, atMs);
  }

  /** A Realtime event: `in` from the model, `out` sent by the bridge (or a capture's end line). */
  realtime(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    if (!isObj(msg)) return;
    const type = str(msg, 'type');
    if (type === CAPTURE_END_TYPE) {
      this.end(str(msg, 'reason'), atMs);
      return;
    }
    if (this.startFact === null || type === null) return;
    const t = this.at(atMs);
    if (dir === 'in') {
      this.batch = newBatch(type === 'input_audio_buffer.speech_started' ? 'speech' : 'other', t);
      this.onServerEvent(type, msg, t);
    } else {
      this.onClientEvent(type, msg, t);
    }
  }

  /** The call is over (the recorder's end, or a capture's end line). The first call counts. */
  end(reason: string | null, atMs: number): void {
    if (this.endFact !== null) return;
    this.endFact = { atMs: round1(this.startFact === null ? 0 : this.at(atMs)), reason };
    this.lastAtMs = Math.max(this.lastAtMs, atMs);
  }

  get start(): StartFact | null {
    return this.startFact;
  }

  /** The account so far (or of the whole call, once ended). Heard figures are taken at the end, or at the last message. */
  snapshot(): CallFactsSnapshot {
    const heardNow = new Map(this.playout.heardItems(this.lastAtMs).map((h) => [h.itemId, h.heardMs]));
    const agentItems = [...this.items.values()].map((s): AgentItemFact => {
      const sentMs = s.sentBytes / MULAW_BYTES_PER_MS;
      const producedMs = s.producedBytes / PCM24K_BYTES_PER_MS;
      // Not settled: still in the playout (its share by the marks), or gone from it (played in
      // full). Never more than the model made: the resampler's tail adds a ms or two to what is sent.
      const heardMs = Math.min(producedMs, s.settled ? s.heardMs : Math.min(sentMs, heardNow.get(s.itemId) ?? sentMs));
      return {
        itemId: s.itemId,
        responseId: s.responseId,
        purpose: s.purpose,
        startedMs: s.startedMs,
        firstAudioSentMs: s.firstAudioSentMs,
        text: s.text,
        audioMs: round1(producedMs),
        sentMs: round1(sentMs),
        heardMs: round1(heardMs),
        heardText: heardShare(s.text, heardMs, s.producedBytes / 2),
        interrupted: s.interrupted,
      };
    });
    return {
      start: this.startFact,
      callerTurns: this.callerTurns.map((t) => ({ ...t })),
      responses: [...this.responses.values()].map((r) => ({ ...r, audioSentMs: round1(r.audioSentMs) })),
      agentItems,
      clears: this.clears.map((c) => ({ ...c })),
      toolCalls: [...this.toolCalls.values()].map((c) => ({ ...c })),
      keypadEntries: [...this.keypadEntries],
      errors: [...this.errors],
      errorCounts: Object.fromEntries(this.errorCounts),
      upstreamSessions: this.upstreamSessions,
      ended: this.endFact,
      omitted: { ...this.omitted },
    };
  }

  // ---------------------------------------------------------------- Twilio

  private at(atMs: number): number {
    this.lastAtMs = Math.max(this.lastAtMs, atMs);
    return atMs - (this.startFact?.atMs ?? atMs);
  }

  private onStart(msg: Obj, atMs: number): void {
    const start = obj(msg, 'start');
    const params = obj(start, 'customParameters');
    const customParameters: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (typeof v === 'string') customParameters[k] = v;
    this.startFact = {
      callSid: str(start, 'callSid') ?? '',
      streamSid: str(msg, 'streamSid') ?? str(start, 'streamSid') ?? '',
      customParameters,
      atMs,
    };
    this.lastAtMs = atMs;
  }

  private onMediaSent(msg: Obj, t: number, atMs: number): void {
    const payload = str(obj(msg, 'media'), 'payload');
    const bytes = payload === null ? 0 : base64ByteLength(payload);
    if (bytes === 0) return;
    const turn = this.callerTurns[this.callerTurns.length - 1];
    if (turn !== undefined && turn.stoppedMs !== null && turn.firstAudioSentMs === null) {
      turn.firstAudioSentMs = round1(t);
      turn.firstAudioLatencyMs = round1(t - turn.stoppedMs);
    }
    // Frames with no delta behind them since the last clear (hold tone, apology) are nobody's
    // answer; the session's playout leaves them out too, so the marks stay aligned.
    const owner = this.playing;
    if (owner === null) return;
    const item = this.items.get(owner.itemId);
    if (item !== undefined) {
      item.sentBytes += bytes;
      item.firstAudioSentMs ??= round1(t);
    }
    const response = owner.responseId === null ? undefined : this.responses.get(owner.responseId);
    if (response !== undefined) response.audioSentMs += bytes / MULAW_BYTES_PER_MS;
    this.playout.recordSent({ itemId: owner.itemId, responseId: owner.responseId ?? '', contentIndex: 0 }, bytes / MULAW_BYTES_PER_MS, atMs);
  }

  private onMarkSent(name: string | null): void {
    if (name === null) return;
    if (this.markNames.size >= this.limits.pendingMarks) {
      const oldest = this.markNames.keys().next();
      if (oldest.done !== true) this.markNames.delete(oldest.value);
    }
    this.markNames.set(name, this.playout.createMark().name);
  }

  private onMarkEcho(name: string | null, atMs: number): void {
    const ours = name === null ? undefined : this.markNames.get(name);
    if (name === null || ours === undefined) return;
    this.markNames.delete(name);
    this.playout.onMarkEcho(ours, atMs);
  }

  private onClear(t: number, atMs: number): void {
    const b = this.batch;
    // What each item still playing had been heard of: the truncation point the session sent
    // wins; otherwise the marks' account at this instant. Nothing of them plays after this.
    const heard = new Map(this.playout.heardItems(atMs).map((h) => [h.itemId, h.heardMs]));
    for (const [itemId, heardMs] of heard) {
      const item = this.items.get(itemId);
      if (item !== undefined && !item.settled) this.settle(item, heardMs, false);
    }
    const barge = b.trigger !== 'other';
    const cut = b.truncated[0];
    const itemId = cut?.itemId ?? this.playing?.itemId ?? null;
    const item = itemId === null ? undefined : this.items.get(itemId);
    // Cut off mid-item by the caller, even where the session needed no truncate (nothing of it left
    // in the model to cut): the caller stopped hearing it before its end.
    if (barge && item !== undefined && item.settled && item.heardMs < item.sentBytes / MULAW_BYTES_PER_MS - 1) item.interrupted = true;
    const fact: ClearFact = {
      atMs: round1(t),
      trigger: b.trigger,
      triggerAtMs: b.triggerAtMs === null || !barge ? null : round1(b.triggerAtMs),
      reactionMs: b.triggerAtMs === null || !barge ? null : round1(t - b.triggerAtMs),
      cancelledResponseId: b.cancelledResponseId,
      truncated: [...b.truncated],
      deleted: [...b.deleted],
      itemId,
      responseId: b.cancelledResponseId ?? item?.responseId ?? this.playing?.responseId ?? null,
      heardMs: round1(cut?.audioEndMs ?? (item === undefined ? 0 : (heard.get(item.itemId) ?? (item.settled ? item.heardMs : 0)))),
    };
    this.push(this.clears, fact, 'clears', this.limits.clears);
    this.playout.newGeneration();
    this.markNames.clear();
    this.playing = null;
  }

  private settle(item: ItemState, heardMs: number, interrupted: boolean): void {
    item.settled = true;
    item.heardMs = Math.max(0, heardMs);
    if (interrupted) item.interrupted = true;
  }

  // ---------------------------------------------------------------- Realtime

  private onServerEvent(type: string, msg: Obj, t: number): void {
    switch (type) {
      case 'input_audio_buffer.speech_started': {
        const turn: CallerTurnFact = { itemId: str(msg, 'item_id'), startedMs: round1(t), stoppedMs: null, firstAudioSentMs: null, firstAudioLatencyMs: null, text: null };
        if (this.push(this.callerTurns, turn, 'callerTurns', this.limits.callerTurns) && turn.itemId !== null) this.turnsByItem.set(turn.itemId, turn);
        return;
      }
      case 'input_audio_buffer.speech_stopped': {
        const open = [...this.callerTurns].reverse().find((x) => x.stoppedMs === null);
        if (open !== undefined) open.stoppedMs = round1(t);
        return;
      }
      case 'conversation.item.input_audio_transcription.completed': {
        const itemId = str(msg, 'item_id');
        const turn = itemId === null ? undefined : this.turnsByItem.get(itemId);
        if (turn !== undefined) turn.text = this.clip(str(msg, 'transcript') ?? '');
        return;
      }
      case 'response.created':
        this.onResponseCreated(obj(msg, 'response'), t);
        return;
      case 'response.done':
        this.onResponseDone(obj(msg, 'response'), t);
        return;
      case 'response.output_audio.delta': {
        const item = this.item(str(msg, 'item_id'), str(msg, 'response_id'), t);
        const delta = str(msg, 'delta');
        if (item === undefined) return;
        if (delta !== null) item.producedBytes += base64ByteLength(delta);
        this.playing = { itemId: item.itemId, responseId: item.responseId };
        return;
      }
      case 'response.output_audio_transcript.delta':
      case 'response.output_text.delta': {
        const item = this.item(str(msg, 'item_id'), str(msg, 'response_id'), t);
        if (item !== undefined && !item.textDone) item.text = this.clip(item.text + (str(msg, 'delta') ?? ''));
        return;
      }
      case 'response.output_audio_transcript.done':
      case 'response.output_text.done': {
        const item = this.item(str(msg, 'item_id'), str(msg, 'response_id'), t);
        const text = str(msg, 'transcript') ?? str(msg, 'text');
        if (item === undefined || text === null) return;
        item.text = this.clip(text);
        item.textDone = true;
        return;
      }
      case 'response.output_item.added':
      case 'response.output_item.done': {
        const item = obj(msg, 'item');
        if (str(item, 'type') === 'function_call') this.onFunctionCallItem(type, item, str(msg, 'response_id'), t);
        else if (str(item, 'type') === 'message' && str(item, 'role') === 'assistant') this.item(str(item, 'id'), str(msg, 'response_id'), t);
        return;
      }
      case 'error': {
        const err = obj(msg, 'error');
        const code = str(err, 'code');
        const key = code ?? 'unknown';
        const counted = this.errorCounts.has(key) || this.errorCounts.size < this.limits.errorCodes ? key : OTHER_ERROR_CODE;
        this.errorCounts.set(counted, (this.errorCounts.get(counted) ?? 0) + 1);
        this.push(this.errors, { atMs: round1(t), code, message: str(err, 'message') ?? '', type: str(err, 'type') }, 'errors', this.limits.errors);
        return;
      }
      default:
        return;
    }
  }

  private onClientEvent(type: string, msg: Obj, t: number): void {
    switch (type) {
      case 'session.update':
        this.upstreamSessions += 1;
        return;
      case 'response.cancel':
        this.batch.cancelledResponseId = str(msg, 'response_id');
        return;
      case 'conversation.item.truncate': {
        const itemId = str(msg, 'item_id');
        const audioEndMs = num(msg, 'audio_end_ms');
        if (itemId === null || audioEndMs === null) return;
        this.batch.truncated.push({ itemId, audioEndMs });
        const item = this.items.get(itemId);
        if (item !== undefined) this.settle(item, audioEndMs, true);
        return;
      }
      case 'conversation.item.delete': {
        const itemId = str(msg, 'item_id');
        if (itemId === null) return;
        this.batch.deleted.push(itemId);
        const item = this.items.get(itemId);
        // Only assistant audio is ever deleted for a barge-in; a delete of anything else is not one.
        if (item !== undefined) this.settle(item, 0, true);
        return;
      }
      case 'conversation.item.create':
        this.onItemCreate(obj(msg, 'item'), t);
        return;
      default:
        return;
    }
  }

  private onResponseCreated(response: Obj, t: number): void {
    const id = str(response, 'id');
    if (id === null || this.responses.has(id)) return;
    if (this.responses.size >= this.limits.responses) {
      this.omitted.responses += 1;
      return;
    }
    this.responses.set(id, { id, purpose: purposeOf(response), status: null, reason: null, createdMs: round1(t), doneMs: null, audioSentMs: 0 });
  }

  private onResponseDone(response: Obj, t: number): void {
    const id = str(response, 'id');
    const r = id === null ? undefined : this.responses.get(id);
    if (r !== undefined) {
      r.purpose ??= purposeOf(response);
      r.status = str(response, 'status');
      r.reason = str(obj(response, 'status_details'), 'reason');
      r.doneMs = round1(t);
    }
    // An item whose transcript never streamed: response.done still carries it.
    const output = response['output'];
    if (!Array.isArray(output)) return;
    for (const o of output) {
      if (!isObj(o) || o['type'] !== 'message') continue;
      const item = this.items.get(str(o, 'id') ?? '');
      const content = o['content'];
      if (item === undefined || item.text !== '' || !Array.isArray(content)) continue;
      item.text = this.clip(
        content
          .map((c) => (isObj(c) ? (str(c, 'transcript') ?? str(c, 'text') ?? '') : ''))
          .filter((p) => p !== '')
          .join(' '),
      );
    }
  }

  /** The item's state, made on its first event; undefined past the cap (or without an id). */
  private item(itemId: string | null, responseId: string | null, t: number): ItemState | undefined {
    if (itemId === null) return undefined;
    const known = this.items.get(itemId);
    if (known !== undefined) return known;
    if (this.items.size >= this.limits.agentItems) {
      this.omitted.agentItems += 1;
      return undefined;
    }
    const purpose = responseId === null ? null : (this.responses.get(responseId)?.purpose ?? null);
    const item: ItemState = {
      itemId,
      responseId,
      purpose,
      startedMs: round1(t),
      firstAudioSentMs: null,
      text: '',
      audioMs: 0,
      sentMs: 0,
      heardMs: 0,
      heardText: '',
      interrupted: false,
      settled: false,
      textDone: false,
      producedBytes: 0,
      sentBytes: 0,
    };
    this.items.set(itemId, item);
    return item;
  }

  private onFunctionCallItem(type: string, item: Obj, responseId: string | null, t: number): void {
    const callId = str(item, 'call_id');
    if (callId === null) return;
    let call = this.toolCalls.get(callId);
    if (call === undefined) {
      if (this.toolCalls.size >= this.limits.toolCalls) {
        this.omitted.toolCalls += 1;
        return;
      }
      call = { callId, name: '', arguments: '', responseId, startMs: round1(t), durationMs: null, ok: null, ran: false };
      this.toolCalls.set(callId, call);
    }
    // Once it runs, the call is what ran: a repeated item changes nothing (the bridge runs it once).
    if (call.ran) return;
    call.name = str(item, 'name') ?? call.name;
    call.arguments = str(item, 'arguments') ?? call.arguments;
    if (type === 'response.output_item.done' && str(item, 'status') === 'completed') {
      call.ran = true;
      call.startMs = round1(t);
    }
  }

  private onItemCreate(item: Obj, t: number): void {
    const type = str(item, 'type');
    if (type === 'function_call_output') {
      const callId = str(item, 'call_id');
      const call = callId === null ? undefined : this.toolCalls.get(callId);
      const output = str(item, 'output');
      if (call === undefined || output === null || call.ok !== null) return;
      call.ran = true;
      call.durationMs = round1(t - call.startMs);
      Object.assign(call, toolOutcome(output));
      return;
    }
    if (type !== 'message' || str(item, 'role') !== 'user') return;
    const content = item['content'];
    if (!Array.isArray(content)) return;
    const text = content.map((c) => (isObj(c) && c['type'] === 'input_text' ? (str(c, 'text') ?? '') : '')).join('');
    // The bridge re-seeds a new upstream session with the conversation, earlier entries included:
    // an entry is new only if a key arrived since the last one that counted.
    if (!text.startsWith(KEYPAD_ENTRY_PREFIX) || this.keysSeen <= this.keysCounted) return;
    this.keysCounted = this.keysSeen;
    this.push(this.keypadEntries, { atMs: round1(t), digits: text.slice(KEYPAD_ENTRY_PREFIX.length) }, 'keypadEntries', this.limits.keypadEntries);
  }

  private push<T>(list: T[], entry: T, what: keyof CallFactsSnapshot['omitted'], cap: number): boolean {
    if (list.length >= cap) {
      this.omitted[what] += 1;
      return false;
    }
    list.push(entry);
    return true;
  }

  private clip(text: string): string {
    return text.length <= this.limits.textChars ? text : `${text.slice(0, this.limits.textChars - 1)}…`;
  }
}

/**
 * The part of an item's text the caller heard, given the heard ms of its `producedSamples` (24 kHz)
 * of audio. The heard position is exact (the truncation point, the marks); the Realtime API gives
 * no word timings, so the text is cut at the same fraction of its characters, which spreads the
 * words evenly over the audio by length. The cut may fall inside a word: that word was cut off.
 */
export function heardShare(text: string, heardMs: number, producedSamples: number): string {
  if (text === '' || heardMs <= 0 || producedSamples <= 0) return '';
  if (heardMs >= producedSamples / PCM24K_SAMPLES_PER_MS - WHOLE_ITEM_SLACK_MS) return text;
  // In samples, as the model counts its audio: the same arithmetic as the model's own cut.
  const chars = Math.floor((text.length * heardMs * PCM24K_SAMPLES_PER_MS) / producedSamples);
  return text.slice(0, chars).trimEnd();
}

function purposeOf(response: Obj): string | null {
  return str(obj(response, 'metadata'), 'purpose');
}

export function clipToolText(text: string): string {
  return text.length <= TOOL_TEXT_MAX_CHARS ? text : `${text.slice(0, TOOL_TEXT_MAX_CHARS - 1)}…`;
}

/** An output the bridge wrote for a failed call is exactly `{"error":"…"}`; anything else is a result. */
function toolOutcome(output: string): Pick<ToolCallFact, 'ok' | 'output' | 'error'> {
  try {
    const v: unknown = JSON.parse(output);
    if (isObj(v) && Object.keys(v).length === 1 && typeof v['error'] === 'string') return { ok: false, error: clipToolText(v['error']) };
  } catch {
    // not JSON: a plain result
  }
  return { ok: true, output: clipToolText(output) };
}

/** Feeds a recording's two logs to a CallFacts in the order the bridge handled them. */
export function factsOfRecording(log: {
  twilioLines: ReadonlyArray<{ atMs: number; dir: 'in' | 'out'; msg: unknown }>;
  realtimeLines: ReadonlyArray<{ atMs: number; dir: 'in' | 'out'; msg: unknown }>;
}): CallFactsSnapshot {
  // A recording keeps each peer's lines apart; their times interleave them again. At the same
  // instant, what arrived comes before what it caused.
  const lines = [
    ...log.twilioLines.map((l) => ({ ...l, peer: 'twilio' as const })),
    ...log.realtimeLines.map((l) => ({ ...l, peer: 'realtime' as const })),
  ].sort((a, b) => a.atMs - b.atMs || (a.dir === b.dir ? 0 : a.dir === 'in' ? -1 : 1));
  const facts = new CallFacts();
  for (const l of lines) {
    if (l.peer === 'twilio') facts.twilio(l.dir, l.msg, l.atMs);
    else facts.realtime(l.dir, l.msg, l.atMs);
  }
  return facts.snapshot();
}
