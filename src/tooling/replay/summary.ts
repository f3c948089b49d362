/**
 * summary.json of a replayed call, built from the two logs of the call:
 *   - the Twilio side, as the simulated caller lived it (what it sent, what it received, when its
 *     playback echoed each mark), on the stream clock: ms since `start` was sent;
 *   - the bridge's own recording (in-process replays only): both sockets as the bridge saw them,
 *     on its performance.now() clock, moved onto the stream clock via the `start` message's
 *     arrival (on loopback the two differ by well under a millisecond).
 * Pure: no clock, no I/O. Every field that needs the upstream events is null without them.
 *
 * What happened upstream (turns, responses, tool calls, keypad entries, errors, each clear's
 * cause, the end reason) is the shared account of src/report/facts.ts, the same the post-call
 * report reads; this file adds the caller's side (what played, when, and what it sounded like).
 */
import { MULAW_BYTES_PER_MS, base64ByteLength } from '../../audio/wire-format.js';
import { factsOfRecording } from '../../report/facts.js';
import type { ApiErrorFact, CallerTurnFact, CallFactsSnapshot, ClearFact, KeypadEntryFact, ResponseFact, ToolCallFact } from '../../report/facts.js';
import { isObj, obj, round1, str } from '../../report/fields.js';
import type { MarkEcho, ProtocolError } from '../simulated-caller.js';
import type { TwilioInbound, TwilioOutbound } from '../../twilio/messages.js';
import { TwilioPlayback } from '../twilio-playback.js';
import { audibleStretches, firstAudibleMs } from './activity.js';

export const SUMMARY_FORMAT = 'callbridge.replay-summary/1';

/** Without upstream events, a new answer starts after this long without agent audio arriving. */
const ANSWER_GAP_MS = 500;
export { TOOL_TEXT_MAX_CHARS } from '../../report/facts.js';

// ---------------------------------------------------------------- inputs

/** The Twilio side as the simulated caller saw it; every atMs is ms since the stream started. */
export interface CallerLog {
  callSid: string;
  streamSid: string;
  sent: ReadonlyArray<{ atMs: number; message: TwilioInbound }>;
  /**
   * `message` is set only for frames Twilio would have accepted (and played by): replayed at their
   * atMs through the shared playback model, they give where everything sat in the played stream.
   */
  received: ReadonlyArray<{ atMs: number; message?: TwilioOutbound }>;
  /** The caller's own record of its echoes (the summary re-derives playback from `received`). */
  marksEchoed: readonly MarkEcho[];
  protocolErrors: readonly ProtocolError[];
  /** Outbound bytes the caller had heard when the call ended. */
  playedBytesAtEnd: number;
}

export interface RecordedLine {
  atMs: number;
  dir: 'in' | 'out';
  msg: unknown;
}

/** The bridge's recording of the call (a MemoryRecording): atMs on the bridge's performance.now() clock. */
export interface BridgeLog {
  twilioLines: readonly RecordedLine[];
  realtimeLines: readonly RecordedLine[];
}

export interface SummaryInput {
  /** Name of the recording replayed. */
  input: string;
  /** Where the call went, for people: "in-process, local model" or a URL. */
  target: string;
  caller: CallerLog;
  bridge: BridgeLog | null;
  /** What the caller sent, 8 kHz mu-law, index 0 = stream start. */
  callerAudio: Uint8Array;
  /** What the caller heard, 8 kHz mu-law, index 0 = stream start. */
  heardAudio: Uint8Array;
  /** Stream time the call ended (`stop` sent or the socket closed). */
  endMs: number;
}

// ---------------------------------------------------------------- output

export interface ReplaySummary {
  /** Schema id of this file. */
  format: typeof SUMMARY_FORMAT;
  /** The recording replayed (its file name without extension). */
  input: string;
  /** Where the call went: "in-process, local model", "in-process, <Realtime URL>" or the --url given. */
  target: string;
  /** True when the upstream Realtime events were visible (in-process); false with --url, and then every field marked "upstream" is null. */
  upstreamVisible: boolean;
  /** The replay's own call and stream ids (fresh for each replay). */
  callSid: string;
  streamSid: string;
  /** Every time below is ms since the stream started (`start` sent). This one is when the call ended. */
  durationMs: number;
  /** At-a-glance totals of the lists below (null where the list is). */
  counts: SummaryCounts;
  /** Stretches of caller speech as sent, by an energy gate on the caller's own audio (pauses under 500 ms bridged). */
  callerSpeech: CallerSpeech[];
  /** upstream: the server VAD's turns (speech_started/speech_stopped). */
  turns: Turn[] | null;
  /** upstream: every response the model started. */
  responses: ResponseSummary[] | null;
  /** upstream: the agent's greeting, the first response asked for with purpose `greeting`; null if there was none (or no upstream). */
  greeting: GreetingSummary | null;
  /** upstream: every function call the model made, in the order they appeared. */
  toolCalls: ToolCallSummary[] | null;
  /** upstream: each keypad entry the bridge handed to the model (a `Keypad entry: …` user message). */
  keypadEntries: KeypadEntry[] | null;
  /** How and when the call ended. */
  ended: CallEnded;
  /** Every `clear` the caller received: the agent cut off by the caller. */
  interruptions: Interruption[];
  /** DTMF keys the caller pressed. */
  dtmf: Array<{ atMs: number; digit: string }>;
  /** Summary statistics of the per-turn latencies below. */
  latency: LatencySummary;
  /** upstream: Realtime API `error` events. */
  errors: ApiError[] | null;
  /** Messages to Twilio that Twilio would have rejected (31950 binary frame, 31951 bad message): a bridge bug if any. */
  twilioProtocolErrors: Array<{ atMs: number; code: number; detail: string }>;
}

export interface SummaryCounts {
  callerSpeech: number;
  turns: number | null;
  responses: number | null;
  /** Responses whose response.done said `completed`. */
  completedResponses: number | null;
  /** Responses whose response.done said `cancelled`. */
  cancelledResponses: number | null;
  interruptions: number;
  errors: number | null;
}

export interface CallerSpeech {
  startMs: number;
  endMs: number;
  /** First audible agent audio in what the caller heard after this speech ended (before the caller spoke again); null if none. */
  firstAgentAudioHeardMs: number | null;
  /** firstAgentAudioHeardMs − endMs: the silence the caller sat through. Includes the VAD's end-of-speech wait. */
  perceivedLatencyMs: number | null;
}

/** upstream: one turn of the caller's as the server VAD saw it (src/report/facts.ts, without its text). */
export type Turn = Omit<CallerTurnFact, 'text'>;

export interface ResponseSummary extends ResponseFact {
  /** ms of it the caller actually heard (the rest was cleared or still buffered when the call ended). */
  audioHeardMs: number;
}

export interface GreetingSummary {
  responseId: string;
  /** Arrival of its `response.created`. */
  startMs: number;
  /** When the caller received the first of its audio (playback starts then: nothing plays before the greeting); null if none arrived. */
  firstAudioMs: number | null;
  /** What the model said, from its output transcripts (all of it, heard or not); null if none came. */
  transcript: string | null;
  /** The caller barged into it (an interruption cut it), or it ended `cancelled`. */
  interrupted: boolean;
}

/** Every function call the model made (src/report/facts.ts). */
export type ToolCallSummary = ToolCallFact;

/** A keypad entry the bridge handed to the model. */
export type KeypadEntry = KeypadEntryFact;

export type EndedBy = 'agent' | 'caller' | 'transfer' | 'idle' | 'other';

export interface CallEnded {
  /** Stream time the call ended: `stop` sent by the caller, or the bridge closing the socket. */
  atMs: number;
  /**
   * Who ended it: from `reason` when recorded (agent-ended → agent, transferred → transfer, idle →
   * idle, twilio-stop / twilio-closed → caller, anything else → other); otherwise inferred: the
   * caller when it hung up first (sent `stop`), else from the last end_call / transfer_call run
   * or a goodbye response, else other.
   */
  by: EndedBy;
  /** The bridge's end reason as recorded in its capture (session `endReason`); null when not recorded. */
  reason: string | null;
}

export interface Interruption {
  /** When the caller received `clear`: the agent went silent for the caller. */
  atMs: number;
  /** upstream: the response cut off (response.cancel's id, else the owner of the item playing); null if unknown. */
  responseId: string | null;
  /** upstream: the assistant item that was playing; null if unknown. */
  itemId: string | null;
  /** ms of the cut answer the caller had heard, from the caller's own playback. */
  heardMs: number;
  /**
   * How heardMs is known; the position itself comes from Twilio's playback model
   * (src/tooling/twilio-playback.ts) replayed over the arrival times of what the caller received.
   * `cleared-marks`: confirmed by marks, the clear echoed pending marks (at that position).
   * `all-played`: nothing was left to play, everything sent had been heard. `estimate`: no mark was
   * pending and audio was still buffered: the model's real-time position, unconfirmed by any mark.
   */
  heardSource: 'cleared-marks' | 'all-played' | 'estimate';
  /** ms of agent audio already sent to the caller that the clear dropped unheard. */
  droppedMs: number;
  /** upstream: audio_end_ms of the conversation.item.truncate sent; null if none was sent. Should sit just below heardMs. */
  truncateMs: number | null;
  /** upstream: the item truncated. */
  truncatedItemId: string | null;
  /** upstream: items deleted because the caller heard none of them. */
  deletedItemIds: string[] | null;
  /** upstream: whether response.cancel was sent (only while a response is active). */
  cancelSent: boolean | null;
  /** upstream: arrival of the speech_started that triggered the interruption. */
  speechStartedMs: number | null;
  /** upstream: when the bridge sent `clear`. */
  clearSentMs: number | null;
  /** upstream: clearSentMs − speechStartedMs, the bridge's barge-in reaction time. */
  reactionMs: number | null;
  /** Start of the caller speech stretch that barged in; null if none was found. */
  callerSpeechStartMs: number | null;
  /** atMs − callerSpeechStartMs: from the caller starting to talk to the agent going quiet, as the caller lives it (includes the VAD's onset delay). */
  sinceCallerSpeechMs: number | null;
}

export interface LatencyStats {
  count: number;
  min: number;
  median: number;
  max: number;
}

export interface LatencySummary {
  /** upstream: over turns' firstAudioLatencyMs. */
  firstAudioMs: LatencyStats | null;
  /** Over callerSpeech's perceivedLatencyMs. */
  perceivedMs: LatencyStats | null;
  /** upstream: over interruptions' reactionMs. */
  reactionMs: LatencyStats | null;
}

export type ApiError = ApiErrorFact;

// ---------------------------------------------------------------- helpers

function stats(values: Array<number | null>): LatencyStats | null {
  const xs = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = Math.floor(xs.length / 2);
  const median = xs.length % 2 === 1 ? (xs[mid] ?? 0) : ((xs[mid - 1] ?? 0) + (xs[mid] ?? 0)) / 2;
  return { count: xs.length, min: round1(xs[0] ?? 0), median: round1(median), max: round1(xs[xs.length - 1] ?? 0) };
}

/** A frame the bridge sent to Twilio, on the stream clock. */
interface BridgeTwilioOut {
  atMs: number;
  event: string;
  bytes: number;
}

/** The bridge's side of the call: the shared account, plus its frames and deltas to line up with the caller's. */
interface BridgeView {
  facts: CallFactsSnapshot;
  twilioOut: BridgeTwilioOut[];
  /** The audio deltas, for the owner of each frame. */
  deltas: Array<{ atMs: number; responseId: string | null; itemId: string | null }>;
}

/** Bridge clock reading at the stream start: the arrival of `start`; null if it is not in the log. */
export function bridgeStreamStart(bridge: BridgeLog): number | null {
  const start = bridge.twilioLines.find((l) => l.dir === 'in' && isObj(l.msg) && l.msg['event'] === 'start');
  return start === undefined ? null : start.atMs;
}

/** The bridge's logs on the stream clock, or null when the `start` arrival is not in them. */
function bridgeView(bridge: BridgeLog): BridgeView | null {
  const t0 = bridgeStreamStart(bridge);
  if (t0 === null) return null;
  const deltas: BridgeView['deltas'] = [];
  for (const l of bridge.realtimeLines) {
    if (l.dir !== 'in' || !isObj(l.msg) || str(l.msg, 'type') !== 'response.output_audio.delta') continue;
    deltas.push({ atMs: l.atMs - t0, responseId: str(l.msg, 'response_id'), itemId: str(l.msg, 'item_id') });
  }
  const twilioOut: BridgeTwilioOut[] = [];
  for (const l of bridge.twilioLines) {
    if (l.dir !== 'out' || !isObj(l.msg)) continue;
    const event = str(l.msg, 'event') ?? '';
    const payload = str(obj(l.msg, 'media'), 'payload');
    twilioOut.push({ atMs: l.atMs - t0, event, bytes: payload === null ? 0 : base64ByteLength(payload) });
  }
  return { facts: factsOfRecording(bridge), twilioOut, deltas };
}

/** Which response and item each media frame the bridge sent belongs to: the last audio delta before it. */
function attributeFrames(view: BridgeView): Array<{ responseId: string | null; itemId: string | null }> {
  const { deltas } = view;
  const out: Array<{ responseId: string | null; itemId: string | null }> = [];
  let d = 0;
  let current: { responseId: string | null; itemId: string | null } = { responseId: null, itemId: null };
  for (const f of view.twilioOut) {
    if (f.event !== 'media') continue;
    // A frame goes out while its delta is handled, so the delta is recorded at or before it.
    while (d < deltas.length && (deltas[d]?.atMs ?? Infinity) <= f.atMs) {
      const delta = deltas[d];
      current = { responseId: delta?.responseId ?? null, itemId: delta?.itemId ?? null };
      d++;
    }
    out.push(current);
  }
  return out;
}

// ---------------------------------------------------------------- the caller's playback

/** One answer as the caller's playback saw it, positions in played bytes since the call began. */
interface Answer {
  key: string;
  responseId: string | null;
  itemId: string | null;
  firstAtMs: number;
  startPos: number;
  endPos: number;
  /** Played position where a clear or the end of the call stopped it. */
  cutPos: number | null;
}

interface ClearSeen {
  atMs: number;
  /** Played position at the clear. */
  playedPos: number;
  source: Interruption['heardSource'];
  /** Queued position just before the clear. */
  queuedPos: number;
  /** The answer whose audio arrived last before the clear. */
  lastAnswer: Answer | null;
}

/**
 * Replays the caller's received messages through Twilio's playback model, at the times they
 * arrived: where each answer's audio sits in the played stream, and the played position at each
 * clear. The simulated caller plays by the same model at the same times, so this is its playback.
 */
function followPlayback(
  caller: CallerLog,
  frameOwners: Array<{ responseId: string | null; itemId: string | null }> | null,
): { answers: Answer[]; clears: ClearSeen[] } {
  const playback = new TwilioPlayback();
  const answers = new Map<string, Answer>();
  const clears: ClearSeen[] = [];
  let frameIndex = 0;
  let lastAnswer: Answer | null = null;
  let lastMediaAtMs = Number.NEGATIVE_INFINITY;
  let heuristicIndex = 0;
  let newAnswerDue = true;

  for (const r of caller.received) {
    const m = r.message;
    if (m === undefined) continue;
    if (m.event === 'media') {
      const bytes = base64ByteLength(m.media.payload);
      const owner = frameOwners?.[frameIndex];
      frameIndex++;
      let key: string;
      if (owner !== undefined && (owner.itemId !== null || owner.responseId !== null)) {
        key = owner.itemId ?? owner.responseId ?? '';
      } else {
        if (newAnswerDue || r.atMs - lastMediaAtMs > ANSWER_GAP_MS) heuristicIndex++;
        key = `answer-${heuristicIndex}`;
      }
      newAnswerDue = false;
      lastMediaAtMs = r.atMs;
      const { startsAtPlayedByte } = playback.append(bytes, r.atMs);
      let a = answers.get(key);
      if (a === undefined) {
        a = { key, responseId: owner?.responseId ?? null, itemId: owner?.itemId ?? null, firstAtMs: r.atMs, startPos: startsAtPlayedByte, endPos: startsAtPlayedByte, cutPos: null };
        answers.set(key, a);
      }
      a.endPos = startsAtPlayedByte + bytes;
      lastAnswer = a;
    } else if (m.event === 'mark') {
      playback.mark(m.mark.name, r.atMs);
    } else {
      const cleared = playback.clear(r.atMs);
      const playedPos = cleared.playedBytes;
      const source = cleared.echoes.some((e) => e.cause === 'cleared') ? 'cleared-marks' : cleared.droppedBytes === 0 ? 'all-played' : 'estimate';
      clears.push({ atMs: r.atMs, playedPos, source, queuedPos: playedPos + cleared.droppedBytes, lastAnswer });
      for (const a of answers.values()) if (a.cutPos === null && a.endPos > playedPos) a.cutPos = playedPos;
      newAnswerDue = true;
    }
  }
  for (const a of answers.values()) if (a.cutPos === null) a.cutPos = caller.playedBytesAtEnd;
  return { answers: [...answers.values()], clears };
}

const heardBytes = (a: Answer): number => Math.max(0, Math.min(a.endPos, a.cutPos ?? a.endPos) - a.startPos);

// ---------------------------------------------------------------- the summary

export function buildSummary(input: SummaryInput): ReplaySummary {
  const { caller } = input;
  const view = input.bridge === null ? null : bridgeView(input.bridge);
  const owners = view === null ? null : attributeFrames(view);
  const { answers, clears } = followPlayback(caller, owners);

  const callerSpeech = buildCallerSpeech(input.callerAudio, input.heardAudio);
  const turns = view === null ? null : buildTurns(view);
  const responses = view === null ? null : buildResponses(view, answers);
  const interruptions = clears.map((c, i) => buildInterruption(c, view?.facts.clears[i], answers, callerSpeech));
  const errors = view === null ? null : [...view.facts.errors];
  const toolCalls = view === null ? null : view.facts.toolCalls;
  const greeting = view === null || responses === null ? null : buildGreeting(view, responses, answers, interruptions);
  const keypadEntries = view === null ? null : view.facts.keypadEntries;
  const ended = buildEnded(input, view, toolCalls, responses);

  return {
    format: SUMMARY_FORMAT,
    input: input.input,
    target: input.target,
    upstreamVisible: view !== null,
    callSid: caller.callSid,
    streamSid: caller.streamSid,
    durationMs: round1(input.endMs),
    counts: {
      callerSpeech: callerSpeech.length,
      turns: turns?.length ?? null,
      responses: responses?.length ?? null,
      completedResponses: responses === null ? null : responses.filter((r) => r.status === 'completed').length,
      cancelledResponses: responses === null ? null : responses.filter((r) => r.status === 'cancelled').length,
      interruptions: interruptions.length,
      errors: errors?.length ?? null,
    },
    callerSpeech,
    turns,
    responses,
    greeting,
    toolCalls,
    keypadEntries,
    ended,
    interruptions,
    dtmf: caller.sent.flatMap((m) => (m.message.event === 'dtmf' ? [{ atMs: round1(m.atMs), digit: m.message.dtmf.digit }] : [])),
    latency: {
      firstAudioMs: turns === null ? null : stats(turns.map((t) => t.firstAudioLatencyMs)),
      perceivedMs: stats(callerSpeech.map((s) => s.perceivedLatencyMs)),
      reactionMs: view === null ? null : stats(interruptions.map((i) => i.reactionMs)),
    },
    errors,
    twilioProtocolErrors: caller.protocolErrors.map((e) => ({ atMs: round1(e.atMs), code: e.code, detail: e.detail })),
  };
}

function buildCallerSpeech(callerAudio: Uint8Array, heardAudio: Uint8Array): CallerSpeech[] {
  const stretches = audibleStretches(callerAudio);
  return stretches.map((s, i) => {
    const until = stretches[i + 1]?.startMs ?? heardAudio.length / MULAW_BYTES_PER_MS;
    const heardAt = firstAudibleMs(heardAudio, s.endMs, until);
    return {
      startMs: s.startMs,
      endMs: s.endMs,
      firstAgentAudioHeardMs: heardAt,
      perceivedLatencyMs: heardAt === null ? null : heardAt - s.endMs,
    };
  });
}

function buildTurns(view: BridgeView): Turn[] {
  return view.facts.callerTurns.map(({ text: _text, ...turn }) => turn);
}

function buildResponses(view: BridgeView, answers: Answer[]): ResponseSummary[] {
  const responses = view.facts.responses.map((r): ResponseSummary => ({ ...r, audioHeardMs: 0 }));
  const byId = new Map(responses.map((r) => [r.id, r]));
  for (const a of answers) {
    const r = a.responseId === null ? undefined : byId.get(a.responseId);
    if (r !== undefined) r.audioHeardMs += heardBytes(a) / MULAW_BYTES_PER_MS;
  }
  for (const r of responses) r.audioHeardMs = round1(r.audioHeardMs);
  return responses;
}

/** One clear the caller received; `sent` is the bridge's account of the same clear (the index-th it sent), when visible. */
function buildInterruption(c: ClearSeen, sent: ClearFact | undefined, answers: Answer[], speech: CallerSpeech[]): Interruption {
  const stretch = [...speech].reverse().find((s) => s.startMs <= c.atMs) ?? null;
  const base: Interruption = {
    atMs: round1(c.atMs),
    responseId: null,
    itemId: null,
    heardMs: 0,
    heardSource: c.source,
    droppedMs: round1((c.queuedPos - c.playedPos) / MULAW_BYTES_PER_MS),
    truncateMs: null,
    truncatedItemId: null,
    deletedItemIds: null,
    cancelSent: null,
    speechStartedMs: null,
    clearSentMs: null,
    reactionMs: null,
    callerSpeechStartMs: stretch?.startMs ?? null,
    sinceCallerSpeechMs: stretch === null ? null : round1(c.atMs - stretch.startMs),
  };

  let answer = c.lastAnswer;
  if (sent !== undefined) {
    const truncate = sent.truncated[0];
    base.cancelSent = sent.cancelledResponseId !== null;
    base.deletedItemIds = [...sent.deleted];
    base.clearSentMs = sent.atMs;
    if (sent.trigger === 'speech') base.speechStartedMs = sent.triggerAtMs;
    base.reactionMs = sent.reactionMs;
    if (truncate !== undefined) {
      base.truncateMs = truncate.audioEndMs;
      base.truncatedItemId = truncate.itemId;
      answer = answers.find((a) => a.itemId === truncate.itemId) ?? answer;
    }
    const cancelledId = sent.cancelledResponseId;
    if (truncate === undefined && cancelledId !== null) answer = answers.find((a) => a.responseId === cancelledId) ?? answer;
    base.responseId = cancelledId ?? answer?.responseId ?? null;
  }
  // Audio that had finished playing was not cut: what the clear stopped had not been heard yet.
  if (answer !== null && base.truncatedItemId === null && c.playedPos >= answer.endPos) answer = null;
  if (answer !== null) {
    base.itemId = answer.itemId;
    base.heardMs = round1(Math.max(0, Math.min(c.playedPos, answer.endPos) - answer.startPos) / MULAW_BYTES_PER_MS);
  }
  return base;
}

/** The text the model produced for a response: its items' texts, joined. */
function responseTranscript(view: BridgeView, responseId: string): string | null {
  const text = view.facts.agentItems
    .filter((i) => i.responseId === responseId && i.text !== '')
    .map((i) => i.text)
    .join(' ');
  return text === '' ? null : text;
}

function buildGreeting(view: BridgeView, responses: ResponseSummary[], answers: Answer[], interruptions: Interruption[]): GreetingSummary | null {
  const r = responses.find((x) => x.purpose === 'greeting');
  if (r === undefined) return null;
  const firsts = answers.filter((a) => a.responseId === r.id).map((a) => a.firstAtMs);
  return {
    responseId: r.id,
    startMs: r.createdMs,
    firstAudioMs: firsts.length === 0 ? null : round1(Math.min(...firsts)),
    transcript: responseTranscript(view, r.id),
    interrupted: r.status === 'cancelled' || interruptions.some((i) => i.responseId === r.id),
  };
}

const BY_REASON: Record<string, EndedBy> = {
  'agent-ended': 'agent',
  transferred: 'transfer',
  idle: 'idle',
  'twilio-stop': 'caller',
  'twilio-closed': 'caller',
};

function buildEnded(input: SummaryInput, view: BridgeView | null, toolCalls: ToolCallSummary[] | null, responses: ResponseSummary[] | null): CallEnded {
  const atMs = round1(input.endMs);
  const reason = view?.facts.ended?.reason ?? null;
  if (reason !== null) return { atMs, by: BY_REASON[reason] ?? 'other', reason };
  if (input.caller.sent.some((m) => m.message.event === 'stop')) return { atMs, by: 'caller', reason: null };
  const control = [...(toolCalls ?? [])].reverse().find((c) => c.ran && c.ok !== false && (c.name === 'end_call' || c.name === 'transfer_call'));
  if (control !== undefined) return { atMs, by: control.name === 'end_call' ? 'agent' : 'transfer', reason: null };
  if (responses?.some((r) => r.purpose === 'goodbye') === true) return { atMs, by: 'idle', reason: null };
  return { atMs, by: 'other', reason: null };
}
