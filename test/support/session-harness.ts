/**
 * Drives a CallSession with a fake clock. Twilio's side plays by the shared playback model
 * (src/tooling/twilio-playback.ts): media plays in real time from when it arrives, marks are
 * echoed when playback reaches them, and `clear` drops the buffer and echoes every pending mark at
 * once. Echoes Twilio sends without playing anything (idle marks, marks flushed by clear) reach
 * the session on the next `advance`.
 */
import { parseAgentConfig, DEFAULT_CONFIG_PATH } from '../../src/config.js';
import type { AgentConfig, HttpTool } from '../../src/config.js';
import { CallSession } from '../../src/call/session.js';
import type { SessionAction, SessionDeps, SessionInput, TimerName } from '../../src/call/session.js';
import type { ConversationItem, RealtimeClientEvent, RealtimeServerEvent } from '../../src/realtime/events.js';
import type { TwilioOutbound, TwilioStart } from '../../src/twilio/messages.js';
import { TwilioPlayback, type PlaybackEcho } from '../../src/tooling/twilio-playback.js';
import { readFileSync } from 'node:fs';

export const STREAM_SID = 'MZ00000000000000000000000000000001';
export const CALL_SID = 'CA00000000000000000000000000000001';

export function defaultAgentConfig(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return { ...parseAgentConfig(JSON.parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8'))), ...overrides };
}

/** Omit distributed over the union, so each event keeps its own fields. */
export type ServerEventInput = RealtimeServerEvent extends infer E ? (E extends RealtimeServerEvent ? Omit<E, 'event_id'> : never) : never;

/** Granularity at which timers set during playback are noticed; timers themselves fire on time. */
const TIMER_STEP_MS = 5;

let eventSeq = 0;
function eid(): string {
  eventSeq += 1;
  return `event_${eventSeq}`;
}

/** 24 kHz PCM16 of `ms` milliseconds of a quiet tone, base64. */
export function pcm24kBase64(ms: number, amplitude = 3000): string {
  const samples = Math.round(ms * 24);
  const buf = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) buf.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * 440 * i) / 24000)), i * 2);
  return buf.toString('base64');
}

/** An http tool for the session tests: the session never calls it (the shell does), so the URL is never reached. */
export const LOOKUP_TOOL: HttpTool = {
  type: 'http',
  name: 'lookup_order',
  description: 'Look up an order',
  parameters: { type: 'object', properties: { order: { type: 'string' } } },
  url: 'http://127.0.0.1:1/lookup',
  timeoutMs: 5000,
};

export class SessionHarness {
  now = 0;
  readonly session: CallSession;
  readonly actions: Array<{ atMs: number; action: SessionAction }> = [];
  /** echoes Twilio sent back, with the time */
  readonly markEchoes: Array<{ atMs: number; name: string }> = [];
  /** Twilio's playback buffer, on the fake clock */
  private readonly playback = new TwilioPlayback();
  /** total agent audio the simulated caller has heard, ms */
  get heardMs(): number {
    return this.playback.heardMs(this.now);
  }
  /** set to false to model a Twilio that never acknowledges (e.g. network stall) */
  twilioEchoesMarks = true;
  /** timers the session asked for, run on the fake clock by `advance` */
  readonly timers = new Map<TimerName, number>();

  constructor(config: AgentConfig = defaultAgentConfig(), deps: SessionDeps = {}) {
    this.session = new CallSession(config, deps);
  }

  feed(input: SessionInput): SessionAction[] {
    const out = this.session.handle(input, this.now);
    for (const action of out) {
      this.actions.push({ atMs: this.now, action });
      if (action.kind === 'send-twilio') this.onTwilioReceives(action.message);
      if (action.kind === 'set-timer') this.timers.set(action.timer, this.now + action.delayMs);
      if (action.kind === 'clear-timer') this.timers.delete(action.timer);
    }
    return out;
  }

  realtime(event: ServerEventInput): SessionAction[] {
    return this.feed({ kind: 'realtime', event: { ...event, event_id: eid() } as RealtimeServerEvent });
  }

  /** A call whose caller just finished a turn and whose answer (resp_1, item item_a) has begun. */
  static answering(config?: AgentConfig): SessionHarness {
    const h = new SessionHarness(config);
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    return h;
  }

  /** A started call whose upstream session is configured. */
  static configured(config: AgentConfig): SessionHarness {
    const h = new SessionHarness(config);
    h.startCall();
    h.sessionUpdated();
    return h;
  }

  /** Response `id` speaks item `itemId` of `ms` in `chunkMs` deltas, to its audio.done; the response stays open. */
  speak(responseId: string, itemId: string, ms: number, chunkMs = 100): void {
    this.responseCreated(responseId);
    this.itemAdded(responseId, itemId);
    for (let sent = 0; sent < ms; sent += chunkMs) this.delta(responseId, itemId, Math.min(chunkMs, ms - sent));
    this.audioDone(responseId, itemId);
  }

  /** Twilio's `start` message; fields can be overridden to build broken ones. */
  static startMessage(start: Partial<TwilioStart['start']> = {}): TwilioStart {
    const full: TwilioStart['start'] = {
      streamSid: STREAM_SID,
      accountSid: 'AC00000000000000000000000000000001',
      callSid: CALL_SID,
      tracks: ['inbound'],
      customParameters: {},
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      ...start,
    };
    return { event: 'start', sequenceNumber: '1', streamSid: full.streamSid, start: full };
  }

  /** Twilio `start` only: the upstream has not opened yet. */
  sendStart(start: Partial<TwilioStart['start']> = {}): SessionAction[] {
    return this.feed({ kind: 'twilio', message: SessionHarness.startMessage(start) });
  }

  /** Twilio `start`, then the upstream opens. */
  startCall(): void {
    this.sendStart();
    this.feed({ kind: 'upstream-open' });
  }

  callerMedia(payload: string): SessionAction[] {
    return this.feed({
      kind: 'twilio',
      message: { event: 'media', sequenceNumber: '2', streamSid: STREAM_SID, media: { track: 'inbound', chunk: '1', timestamp: '0', payload } },
    });
  }

  sessionUpdated(): SessionAction[] {
    return this.realtime({ type: 'session.updated', session: {} });
  }

  dtmf(digit: string): SessionAction[] {
    return this.feed({ kind: 'twilio', message: { event: 'dtmf', sequenceNumber: '5', streamSid: STREAM_SID, dtmf: { track: 'inbound_track', digit } } });
  }

  /** A function call item of `responseId`: added, then done with `status`. */
  functionCall(responseId: string, itemId: string, callId: string, name: string, args: string, status: 'completed' | 'incomplete' = 'completed'): SessionAction[] {
    const item = { id: itemId, type: 'function_call' as const, call_id: callId, name, arguments: '' };
    this.realtime({ type: 'response.output_item.added', response_id: responseId, output_index: 1, item: { ...item, status: 'in_progress' } });
    return this.realtime({ type: 'response.output_item.done', response_id: responseId, output_index: 1, item: { ...item, arguments: args, status } });
  }

  toolResult(callId: string, outcome: { ok: true; output: string } | { ok: false; error: string }): SessionAction[] {
    return this.feed({ kind: 'tool-result', callId, outcome });
  }

  /** Actions of one kind since `sinceIndex`. */
  actionsOf<K extends SessionAction['kind']>(kind: K, sinceIndex = 0): Array<Extract<SessionAction, { kind: K }>> {
    return this.actions.slice(sinceIndex).flatMap(({ action }) => (action.kind === kind ? [action as Extract<SessionAction, { kind: K }>] : []));
  }

  /** response.create events sent since `sinceIndex`, with their purpose. */
  creates(sinceIndex = 0): Array<{ purpose: string | undefined; instructions: string | undefined }> {
    return this.toRealtime(sinceIndex).flatMap((e) =>
      e.type === 'response.create' ? [{ purpose: e.response?.metadata?.['purpose'], instructions: e.response?.instructions }] : [],
    );
  }

  speechStarted(): SessionAction[] {
    return this.realtime({ type: 'input_audio_buffer.speech_started', audio_start_ms: 0, item_id: 'item_user' });
  }

  speechStopped(): SessionAction[] {
    return this.realtime({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: 0, item_id: 'item_user' });
  }

  responseCreated(id: string): SessionAction[] {
    return this.realtime({ type: 'response.created', response: { id, object: 'realtime.response', status: 'in_progress', output: [] } });
  }

  itemAdded(responseId: string, itemId: string): SessionAction[] {
    return this.realtime({
      type: 'response.output_item.added',
      response_id: responseId,
      output_index: 0,
      item: { id: itemId, type: 'message', role: 'assistant', status: 'in_progress', content: [] },
    });
  }

  delta(responseId: string, itemId: string, ms: number): SessionAction[] {
    return this.realtime({
      type: 'response.output_audio.delta',
      response_id: responseId,
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      delta: pcm24kBase64(ms),
    });
  }

  audioDone(responseId: string, itemId: string): SessionAction[] {
    return this.realtime({ type: 'response.output_audio.done', response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 });
  }

  /** `response.done` of `id`, listing `output` (the items the server says the response made). */
  responseDone(id: string, status: 'completed' | 'cancelled' = 'completed', output: ConversationItem[] = []): SessionAction[] {
    return this.realtime({ type: 'response.done', response: { id, object: 'realtime.response', status, output } });
  }

  /** A whole response: created, item, `ms` of audio in `chunkMs` deltas, done. */
  fullResponse(responseId: string, itemId: string, ms: number, chunkMs = 100): void {
    this.speak(responseId, itemId, ms, chunkMs);
    this.responseDone(responseId);
  }

  /** Let time pass: Twilio plays its buffer and echoes marks, and the session's timers fire, each at its instant. */
  advance(ms: number): void {
    const target = this.now + ms;
    // Small steps: a timer may be set by an input that playback itself causes (a mark echo).
    for (;;) {
      let next: [TimerName, number] | null = null;
      for (const entry of this.timers) if (next === null || entry[1] < next[1]) next = entry;
      if (next !== null && next[1] <= this.now) {
        this.timers.delete(next[0]);
        this.feed({ kind: 'timer', timer: next[0] });
        continue;
      }
      if (this.now >= target) break;
      this.advancePlayback(Math.min(target, next?.[1] ?? Infinity, this.now + TIMER_STEP_MS) - this.now);
    }
  }

  private advancePlayback(ms: number): void {
    const target = this.now + ms;
    this.flushImmediateEchoes();
    // Each mark at the instant playback reaches it: the session's answer to one echo (more media,
    // a clear) lands in the buffer at that instant, before playback goes on.
    for (let at = this.playback.nextEchoAtMs(); at !== null && at <= target; at = this.playback.nextEchoAtMs()) {
      this.now = Math.max(this.now, at);
      for (const e of this.playback.advance(this.now)) this.echo(e.name);
    }
    this.now = target;
  }

  private echo(name: string): void {
    if (!this.twilioEchoesMarks) return;
    this.markEchoes.push({ atMs: this.now, name });
    this.feed({ kind: 'twilio', message: { event: 'mark', sequenceNumber: '9', streamSid: STREAM_SID, mark: { name } } });
  }

  private onTwilioReceives(msg: TwilioOutbound): void {
    let echoes: PlaybackEcho[];
    switch (msg.event) {
      case 'media':
        echoes = this.playback.append(Buffer.from(msg.media.payload, 'base64').length, this.now).echoes;
        break;
      case 'mark':
        echoes = this.playback.mark(msg.mark.name, this.now);
        break;
      case 'clear':
        echoes = this.playback.clear(this.now).echoes;
        break;
    }
    // Echoed at once (nothing buffered, or flushed by clear): delivered on the next advance.
    this.pendingImmediateEchoes.push(...echoes.map((e) => e.name));
  }

  private pendingImmediateEchoes: string[] = [];

  /** Deliver echoes Twilio sends without playing anything (idle marks, marks flushed by clear). */
  flushImmediateEchoes(): void {
    while (this.pendingImmediateEchoes.length > 0) {
      const name = this.pendingImmediateEchoes.shift();
      if (name !== undefined) this.echo(name);
    }
  }

  // ---------------------------------------------------------------- views

  toTwilio(sinceIndex = 0): TwilioOutbound[] {
    return this.actions
      .slice(sinceIndex)
      .flatMap(({ action }) => (action.kind === 'send-twilio' ? [action.message] : []));
  }

  toRealtime(sinceIndex = 0): RealtimeClientEvent[] {
    return this.actions
      .slice(sinceIndex)
      .flatMap(({ action }) => (action.kind === 'send-realtime' ? [action.event] : []))
      .filter((e) => e.type !== 'input_audio_buffer.append');
  }

  mark(): number {
    return this.actions.length;
  }
}
