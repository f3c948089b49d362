/**
 * The WebSocket shell around {@link Conversation}: a Realtime-API-compatible (GA) server on
 * 127.0.0.1. The integration tests use it as a strict fake of the real API; the product runs it
 * as the embedded local model when no API key is configured.
 *
 * The shell only moves frames, checks the handshake and paces audio; every protocol decision
 * is the conversation's. All state is per server instance and per connection, and every timer
 * belongs to a connection (cleared when it closes) or to a pending wait (cleared when it ends).
 */

import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { ErrorEvent } from '../../realtime/events.js';
import { parseEventEnvelope } from '../../realtime/events.js';
import {
  Conversation,
  IdSource,
  defaultTranscribe,
  SESSION_MAX_DURATION_MS,
  type AnswerSource,
  type LocalServerEvent,
  type Outcome,
  type TranscribeSource,
} from './conversation.js';
import { echoAnswer } from './echo-agent.js';

// ---------------------------------------------------------------- options

export interface StallOptions {
  /** ms of response audio after which the stream stops (0 = before the first delta) */
  afterMs: number;
  /** wall-clock ms the stream then stays silent */
  forMs: number;
}

export interface LocalRealtimeServerSettings {
  /**
   * Produces each response's audio, transcript and optional function call. Default: the echo agent
   * (earcon, then the last user turn; a tone when there is none; greeting, keypad read-back and
   * end_call by `metadata.purpose`, see echo-agent.ts).
   */
  answer?: AnswerSource;
  /** Transcript of a committed user turn, when the session enables transcription. Default "(speech N ms)". */
  transcribe?: TranscribeSource;
  /** ms of audio per `response.output_audio.delta`. Default 100. */
  chunkMs?: number;
  /** Real-time factor of generation: 10 = ten times faster than real time, Infinity = no pacing. Default 4. */
  speed?: number;
  /** Wall-clock ms between `response.created` and the first delta. Default 50. */
  firstDeltaDelayMs?: number;
  /** Simulates a generation stall once per response; null for none (the default). */
  stall?: StallOptions | null;
}

export interface LocalRealtimeServerOptions extends LocalRealtimeServerSettings {
  /** Default 127.0.0.1 */
  host?: string;
  /** Default 0 (an ephemeral port) */
  port?: number;
  /** When set, the handshake must carry `Authorization: Bearer <key>` or `api-key: <key>`, else 401. */
  apiKey?: string;
  /** Model named in {@link LocalRealtimeServer.url} and used when the client names none. Default gpt-realtime. */
  model?: string;
  /** A session is expired (error `session_expired`, then close) after this long. Default 60 minutes. */
  maxSessionMs?: number;
  /**
   * Keep every event in `received` / `sent` / `errors` and every closed connection's conversation.
   * Default true (tests); the embedded product model turns it off so memory stays flat.
   */
  record?: boolean;
  logger?: Logger;
  /**
   * Told about every session, event and close as it happens, with a CLOCK_MONOTONIC timestamp
   * (process.hrtime.bigint(), comparable across processes on one machine). For benchmarks that
   * time the model's events against other components. Default none: no timestamps are taken.
   */
  observer?: LocalRealtimeObserver;
}

/**
 * Observation hooks of a local Realtime server. Each is called synchronously where the thing
 * happens and must not throw or block; all are optional.
 */
export interface LocalRealtimeObserver {
  /** A connection was accepted and its `session.created` went out. */
  onSession?(connectionId: number, sessionId: string, hrtime: bigint): void;
  /** A server event left: `hrtime` is taken just before its (already serialized) frame is handed to the socket. */
  onEventSent?(connectionId: number, event: LocalServerEvent, hrtime: bigint): void;
  /** A client frame arrived: `hrtime` is taken before it is parsed; the event as recorded in `received`. */
  onEventReceived?(connectionId: number, event: ReceivedEvent, hrtime: bigint): void;
  onClose?(connectionId: number, close: ConnectionClose, hrtime: bigint): void;
}

interface Pacing {
  chunkMs: number;
  speed: number;
  firstDeltaDelayMs: number;
  stall: StallOptions | null;
}

const DEFAULT_PACING: Pacing = { chunkMs: 100, speed: 4, firstDeltaDelayMs: 50, stall: null };
const DEFAULT_MODEL = 'gpt-realtime';
const DEFAULT_WAIT_MS = 5000;
/** Time the clients get to answer our close frame on shutdown before their sockets are cut. */
const SHUTDOWN_GRACE_MS = 1000;
/** A 15 MiB append is about 20 MiB of base64 inside its JSON frame. */
const MAX_FRAME_BYTES = 24 * 1024 * 1024;
const SHUTDOWN_CLOSE_CODE = 1001;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** OpenAI's path, and Azure OpenAI's GA path. */
const REALTIME_PATHS = new Set(['/v1/realtime', '/openai/v1/realtime']);

// ---------------------------------------------------------------- records

export interface RecordedEvent<E> {
  /** ms since the server started (monotonic clock) */
  atMs: number;
  connectionId: number;
  event: E;
}

/** A client frame as parsed; a frame that is not a JSON object is kept as `{ type: '<unparsable>', raw }`. */
export type ReceivedEvent = Record<string, unknown> & { type: string };

export interface ConnectionClose {
  code: number;
  reason: string;
}

export interface LocalRealtimeServer {
  /** `ws://127.0.0.1:PORT/v1/realtime?model=...` */
  readonly url: string;
  readonly port: number;
  readonly received: Array<RecordedEvent<ReceivedEvent>>;
  readonly sent: Array<RecordedEvent<LocalServerEvent>>;
  /** The `error` events among `sent`. */
  readonly errors: Array<RecordedEvent<ErrorEvent>>;
  /** Connections accepted so far; connection ids run from 1 to this number. */
  readonly connectionsOpened: number;
  readonly connectionsOpen: number;
  readonly connectionsClosed: number;
  /** Changes answer source and pacing for responses that start from now on. */
  configure(settings: LocalRealtimeServerSettings): void;
  /** The protocol state of a connection (kept after it closes when recording). */
  conversation(connectionId: number): Conversation | undefined;
  /** The first sent event (already recorded, or future) that matches. */
  waitForSent(predicate: (r: RecordedEvent<LocalServerEvent>) => boolean, timeoutMs?: number): Promise<RecordedEvent<LocalServerEvent>>;
  waitForReceived(predicate: (r: RecordedEvent<ReceivedEvent>) => boolean, timeoutMs?: number): Promise<RecordedEvent<ReceivedEvent>>;
  /** Resolves once `count` connections have been accepted in total. */
  waitForConnections(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves with the close code and reason once the connection has closed. */
  waitForClose(connectionId: number, timeoutMs?: number): Promise<ConnectionClose>;
  /** Cuts every connection without a close frame (the client sees 1006). */
  dropAll(): void;
  /** Sends `session_expired` and closes: one connection, or all open ones. */
  expireSession(connectionId?: number): void;
  /** Closes every connection and the listener; no timer is left running. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------- implementation

type TimerHandle = { kind: 'timeout'; handle: NodeJS.Timeout } | { kind: 'immediate'; handle: NodeJS.Immediate };

function clearTimer(t: TimerHandle | null): void {
  if (!t) return;
  if (t.kind === 'timeout') clearTimeout(t.handle);
  else clearImmediate(t.handle);
}

/** Zero delay yields to the event loop without the 1 ms clamp of setTimeout. */
function startTimer(delayMs: number, fn: () => void): TimerHandle {
  if (delayMs <= 0) return { kind: 'immediate', handle: setImmediate(fn) };
  return { kind: 'timeout', handle: setTimeout(fn, delayMs) };
}

function validatePacing(p: Pacing): void {
  if (!(p.chunkMs > 0) || !Number.isFinite(p.chunkMs)) throw new RangeError(`chunkMs must be a positive number of ms, got ${p.chunkMs}`);
  if (!(p.speed > 0)) throw new RangeError(`speed must be > 0 (Infinity for no pacing), got ${p.speed}`);
  if (!(p.firstDeltaDelayMs >= 0) || !Number.isFinite(p.firstDeltaDelayMs)) {
    throw new RangeError(`firstDeltaDelayMs must be a finite number >= 0, got ${p.firstDeltaDelayMs}`);
  }
  if (p.stall && (!(p.stall.afterMs >= 0) || !(p.stall.forMs >= 0) || !Number.isFinite(p.stall.forMs))) {
    throw new RangeError('stall.afterMs and stall.forMs must be finite numbers >= 0');
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function rejectUpgrade(socket: Duplex, status: 401 | 404, statusText: string, body: object): void {
  const text = JSON.stringify(body);
  // Destroy only once the response is flushed, or the client sees a reset instead of the status.
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

interface PumpState {
  responseId: string;
  pacing: Pacing;
  started: boolean;
  stalled: boolean;
  /** Pacing origin: audio beyond `baseProducedMs` is due `1/speed` ms per ms after `baseWallMs`. */
  baseWallMs: number;
  baseProducedMs: number;
}

interface EventWaiter<E> {
  predicate: (r: RecordedEvent<E>) => boolean;
  resolve: (r: RecordedEvent<E>) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface ConditionWaiter {
  /** Returns true once the waiter has been settled. */
  probe: () => boolean;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

class Connection {
  readonly conversation: Conversation;
  closeInfo: ConnectionClose | null = null;
  readonly closed: Promise<ConnectionClose>;
  private resolveClosed: (info: ConnectionClose) => void = () => undefined;
  private pump: PumpState | null = null;
  private pumpTimer: TimerHandle | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly id: number,
    private readonly ws: WebSocket,
    private readonly server: LocalRealtimeServerImpl,
    model: string,
  ) {
    this.conversation = server.newConversation(model);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  start(betaHandshake: boolean, maxSessionMs: number): void {
    this.ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    this.ws.on('error', (err) => this.server.logger?.warn({ connectionId: this.id, err }, 'local realtime socket error'));
    this.ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString()));
    if (betaHandshake) {
      this.deliver(this.conversation.rejectBetaHandshake());
      return;
    }
    this.deliver(this.conversation.open(Date.now()));
    this.expiryTimer = setTimeout(() => this.expire(), maxSessionMs);
  }

  get open(): boolean {
    return this.closeInfo === null;
  }

  expire(): void {
    if (!this.open) return;
    this.deliver(this.conversation.expire());
  }

  terminate(): void {
    this.stopTimers();
    this.ws.terminate();
  }

  shutdown(): void {
    this.stopTimers();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(SHUTDOWN_CLOSE_CODE, 'server shutting down');
    }
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const observer = this.server.observer;
    const hrtime = observer?.onEventReceived ? process.hrtime.bigint() : 0n;
    try {
      if (isBinary) {
        this.received({ type: '<unparsable>', raw: '<binary frame>' }, hrtime);
        this.deliver(this.conversation.handleBinary());
        return;
      }
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.isBuffer(data)
          ? data.toString('utf8')
          : Buffer.from(data).toString('utf8');
      const parsed = parseEventEnvelope(text);
      if (parsed.ok) {
        this.received(parsed.event, hrtime);
        this.deliver(this.conversation.handle(parsed.event));
      } else {
        this.received({ type: '<unparsable>', raw: text }, hrtime);
        this.deliver(this.conversation.handleText(text));
      }
    } catch (err) {
      // The conversation never throws; this guards the shell's own code so a bug cannot kill the server.
      this.server.logger?.error({ connectionId: this.id, err }, 'local realtime server failed on a client frame');
    }
  }

  private received(event: ReceivedEvent, hrtime: bigint): void {
    this.server.recordReceived(this.id, event);
    this.server.observer?.onEventReceived?.(this.id, event, hrtime);
  }

  private onClose(code: number, reason: string): void {
    this.stopTimers();
    this.closeInfo = { code, reason };
    this.server.observer?.onClose?.(this.id, this.closeInfo, process.hrtime.bigint());
    this.resolveClosed(this.closeInfo);
    this.server.onConnectionClosed(this);
  }

  private stopTimers(): void {
    this.stopPump();
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }

  private deliver(outcome: Outcome): void {
    const observer = this.server.observer;
    for (const event of outcome.events) {
      // Recorded only when it really goes out, so `sent` is what a client could have seen.
      if (this.ws.readyState !== WebSocket.OPEN) continue;
      const frame = JSON.stringify(event);
      const hrtime = observer ? process.hrtime.bigint() : 0n;
      this.ws.send(frame);
      if (observer) this.observeSent(observer, event, hrtime);
      this.server.recordSent(this.id, event);
    }
    if (outcome.close) {
      this.stopTimers();
      if (this.ws.readyState === WebSocket.OPEN) this.ws.close(outcome.close.code, outcome.close.reason);
      return;
    }
    this.syncPump();
  }

  private observeSent(observer: LocalRealtimeObserver, event: LocalServerEvent, hrtime: bigint): void {
    if (event.type === 'session.created') observer.onSession?.(this.id, this.conversation.id, hrtime);
    observer.onEventSent?.(this.id, event, hrtime);
  }

  // ------------------------------------------------------------ pacing

  /** Starts pacing a response that became active, stops pacing one that ended. */
  private syncPump(): void {
    if (!this.open) return;
    const s = this.conversation.streaming;
    if (!s) {
      this.stopPump();
      return;
    }
    if (this.pump?.responseId === s.responseId) return;
    this.stopPump();
    const pacing = this.server.pacingSnapshot();
    this.pump = { responseId: s.responseId, pacing, started: false, stalled: false, baseWallMs: 0, baseProducedMs: 0 };
    this.pumpTimer = startTimer(pacing.firstDeltaDelayMs, () => this.tick());
  }

  private stopPump(): void {
    clearTimer(this.pumpTimer);
    this.pumpTimer = null;
    this.pump = null;
  }

  private tick(): void {
    this.pumpTimer = null;
    const p = this.pump;
    const s = this.conversation.streaming;
    if (!p || !s || s.responseId !== p.responseId || !this.open) {
      this.syncPump();
      return;
    }
    const now = performance.now();
    if (!p.started) {
      p.started = true;
      p.baseWallMs = now;
      p.baseProducedMs = s.producedMs;
    }
    if (this.beginStallIfDue(p, s.producedMs, now)) return;
    const stall = p.pacing.stall;
    const chunkMs = stall && !p.stalled ? Math.min(p.pacing.chunkMs, stall.afterMs - s.producedMs) : p.pacing.chunkMs;
    this.deliver({ events: this.conversation.pump(chunkMs), close: null });
    const after = this.conversation.streaming;
    // deliver() already re-synced when the response finished or the socket closed.
    if (!after || after.responseId !== p.responseId || this.pump !== p || !this.open) return;
    if (this.beginStallIfDue(p, after.producedMs, performance.now())) return;
    const dueMs = p.baseWallMs + (after.producedMs - p.baseProducedMs) / p.pacing.speed;
    this.pumpTimer = startTimer(dueMs - performance.now(), () => this.tick());
  }

  private beginStallIfDue(p: PumpState, producedMs: number, now: number): boolean {
    const stall = p.pacing.stall;
    if (!stall || p.stalled || producedMs < stall.afterMs) return false;
    p.stalled = true;
    p.baseWallMs = now + stall.forMs;
    p.baseProducedMs = producedMs;
    this.pumpTimer = startTimer(stall.forMs, () => this.tick());
    return true;
  }
}

class LocalRealtimeServerImpl implements LocalRealtimeServer {
  readonly received: Array<RecordedEvent<ReceivedEvent>> = [];
  readonly sent: Array<RecordedEvent<LocalServerEvent>> = [];
  readonly errors: Array<RecordedEvent<ErrorEvent>> = [];
  readonly logger: Logger | undefined;
  readonly observer: LocalRealtimeObserver | undefined;
  private readonly ids = new IdSource();
  private readonly startedAt = performance.now();
  private readonly connections = new Map<number, Connection>();
  private readonly record: boolean;
  private readonly model: string;
  private readonly apiKey: string | undefined;
  private readonly maxSessionMs: number;
  private answer: AnswerSource;
  private transcribe: TranscribeSource;
  private pacing: Pacing;
  private opened = 0;
  private closedCount = 0;
  private listeningPort = 0;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private sentWaiters: Array<EventWaiter<LocalServerEvent>> = [];
  private receivedWaiters: Array<EventWaiter<ReceivedEvent>> = [];
  private conditionWaiters: ConditionWaiter[] = [];
  private closing: Promise<void> | null = null;

  constructor(private readonly options: LocalRealtimeServerOptions) {
    this.logger = options.logger;
    this.observer = options.observer;
    this.record = options.record ?? true;
    this.model = options.model ?? DEFAULT_MODEL;
    this.apiKey = options.apiKey;
    this.maxSessionMs = options.maxSessionMs ?? SESSION_MAX_DURATION_MS;
    // Node fires longer timeouts after 1 ms instead.
    if (!(this.maxSessionMs > 0) || this.maxSessionMs > MAX_TIMER_MS) {
      throw new RangeError(`maxSessionMs must be in 1..${MAX_TIMER_MS}, got ${this.maxSessionMs}`);
    }
    this.answer = options.answer ?? echoAnswer;
    this.transcribe = options.transcribe ?? defaultTranscribe;
    this.pacing = { ...DEFAULT_PACING };
    this.configure(options);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('WebSocket upgrade required\n');
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  async listen(): Promise<void> {
    const host = this.options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.http.once('error', onError);
      this.http.listen(this.options.port ?? 0, host, () => {
        this.http.off('error', onError);
        resolve();
      });
    });
    this.listeningPort = (this.http.address() as AddressInfo).port;
  }

  get port(): number {
    return this.listeningPort;
  }

  get url(): string {
    const host = this.options.host ?? '127.0.0.1';
    return `ws://${host}:${this.listeningPort}/v1/realtime?model=${encodeURIComponent(this.model)}`;
  }

  get connectionsOpened(): number {
    return this.opened;
  }

  get connectionsOpen(): number {
    return this.opened - this.closedCount;
  }

  get connectionsClosed(): number {
    return this.closedCount;
  }

  configure(settings: LocalRealtimeServerSettings): void {
    const next: Pacing = {
      chunkMs: settings.chunkMs ?? this.pacing.chunkMs,
      speed: settings.speed ?? this.pacing.speed,
      firstDeltaDelayMs: settings.firstDeltaDelayMs ?? this.pacing.firstDeltaDelayMs,
      stall: settings.stall === undefined ? this.pacing.stall : settings.stall,
    };
    validatePacing(next);
    this.pacing = next;
    if (settings.answer) this.answer = settings.answer;
    if (settings.transcribe) this.transcribe = settings.transcribe;
  }

  conversation(connectionId: number): Conversation | undefined {
    return this.connections.get(connectionId)?.conversation;
  }

  // ------------------------------------------------------------ used by connections

  newConversation(model: string): Conversation {
    return new Conversation({ ids: this.ids, model, answer: () => this.answer, transcribe: () => this.transcribe });
  }

  pacingSnapshot(): Pacing {
    return { ...this.pacing, stall: this.pacing.stall ? { ...this.pacing.stall } : null };
  }

  recordReceived(connectionId: number, event: ReceivedEvent): void {
    const r: RecordedEvent<ReceivedEvent> = { atMs: performance.now() - this.startedAt, connectionId, event };
    if (this.record) this.received.push(r);
    this.receivedWaiters = this.notify(this.receivedWaiters, r);
  }

  recordSent(connectionId: number, event: LocalServerEvent): void {
    const r: RecordedEvent<LocalServerEvent> = { atMs: performance.now() - this.startedAt, connectionId, event };
    if (event.type === 'error') {
      this.logger?.debug({ connectionId, error: event.error }, 'local realtime server answered with an error');
    }
    if (this.record) {
      this.sent.push(r);
      if (event.type === 'error') this.errors.push({ atMs: r.atMs, connectionId, event });
    }
    this.sentWaiters = this.notify(this.sentWaiters, r);
  }

  onConnectionClosed(conn: Connection): void {
    this.closedCount++;
    if (!this.record) this.connections.delete(conn.id);
    this.logger?.info({ connectionId: conn.id, code: conn.closeInfo?.code }, 'local realtime connection closed');
    this.wake();
  }

  // ------------------------------------------------------------ handshake

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.logger?.debug({ err }, 'local realtime handshake socket error'));
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (!REALTIME_PATHS.has(url.pathname)) {
      rejectUpgrade(socket, 404, 'Not Found', { error: { type: 'invalid_request_error', code: 'not_found', message: `No route for ${url.pathname}`, param: null } });
      return;
    }
    if (this.apiKey !== undefined && !this.authorized(req, this.apiKey)) {
      rejectUpgrade(socket, 401, 'Unauthorized', {
        error: { type: 'invalid_request_error', code: 'invalid_api_key', message: 'Incorrect API key provided.', param: null },
      });
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const id = ++this.opened;
      const conn = new Connection(id, ws, this, url.searchParams.get('model') ?? url.searchParams.get('deployment') ?? this.model);
      this.connections.set(id, conn);
      const beta = /realtime\s*=\s*v1/i.test(headerValue(req, 'openai-beta') ?? '');
      this.logger?.info({ connectionId: id, beta }, 'local realtime connection opened');
      conn.start(beta, this.maxSessionMs);
      this.wake();
    });
  }

  private authorized(req: IncomingMessage, key: string): boolean {
    const auth = headerValue(req, 'authorization');
    const bearer = auth && /^bearer\s+(.+)$/i.exec(auth.trim());
    if (bearer?.[1] !== undefined && sameSecret(bearer[1], key)) return true;
    const apiKeyHeader = headerValue(req, 'api-key');
    return apiKeyHeader !== undefined && sameSecret(apiKeyHeader, key);
  }

  // ------------------------------------------------------------ faults

  dropAll(): void {
    for (const conn of this.connections.values()) if (conn.open) conn.terminate();
  }

  expireSession(connectionId?: number): void {
    for (const conn of this.connections.values()) {
      if (connectionId === undefined || conn.id === connectionId) conn.expire();
    }
  }

  // ------------------------------------------------------------ waiting

  waitForSent(predicate: (r: RecordedEvent<LocalServerEvent>) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<RecordedEvent<LocalServerEvent>> {
    return this.waitForEvent(this.sent, this.sentWaiters, predicate, timeoutMs, 'sent');
  }

  waitForReceived(predicate: (r: RecordedEvent<ReceivedEvent>) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<RecordedEvent<ReceivedEvent>> {
    return this.waitForEvent(this.received, this.receivedWaiters, predicate, timeoutMs, 'received');
  }

  waitForConnections(count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return this.waitUntil(() => (this.opened >= count ? true : undefined), timeoutMs, `${count} connection(s)`).then(() => undefined);
  }

  waitForClose(connectionId: number, timeoutMs = DEFAULT_WAIT_MS): Promise<ConnectionClose> {
    return this.waitUntil(() => this.connections.get(connectionId)?.closeInfo ?? undefined, timeoutMs, `close of connection ${connectionId}`);
  }

  private waitForEvent<E>(
    history: ReadonlyArray<RecordedEvent<E>>,
    waiters: Array<EventWaiter<E>>,
    predicate: (r: RecordedEvent<E>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<RecordedEvent<E>> {
    const found = history.find(predicate);
    if (found) return Promise.resolve(found);
    if (this.closing) return Promise.reject(new Error('local realtime server is closed'));
    return new Promise((resolve, reject) => {
      const waiter: EventWaiter<E> = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          const at = waiters.indexOf(waiter);
          if (at >= 0) waiters.splice(at, 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for a ${what} event`));
        }, timeoutMs),
      };
      waiters.push(waiter);
    });
  }

  private notify<E>(waiters: Array<EventWaiter<E>>, r: RecordedEvent<E>): Array<EventWaiter<E>> {
    if (waiters.length === 0) return waiters;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (!w) continue;
      let hit = false;
      try {
        hit = w.predicate(r);
      } catch (err) {
        waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.reject(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      if (hit) {
        waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(r);
      }
    }
    return waiters;
  }

  private waitUntil<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const now = probe();
    if (now !== undefined) return Promise.resolve(now);
    if (this.closing) return Promise.reject(new Error('local realtime server is closed'));
    return new Promise((resolve, reject) => {
      const waiter: ConditionWaiter = {
        probe: () => {
          const v = probe();
          if (v === undefined) return false;
          clearTimeout(waiter.timer);
          resolve(v);
          return true;
        },
        reject,
        timer: setTimeout(() => {
          this.conditionWaiters = this.conditionWaiters.filter((w) => w !== waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs),
      };
      this.conditionWaiters.push(waiter);
    });
  }

  private wake(): void {
    this.conditionWaiters = this.conditionWaiters.filter((w) => !w.probe());
  }

  // ------------------------------------------------------------ shutdown

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const httpClosed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    const open = [...this.connections.values()].filter((c) => c.open);
    const allClosed = Promise.all(open.map((c) => c.closed));
    for (const conn of open) conn.shutdown();
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([allClosed, new Promise<void>((resolve) => (grace = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
    clearTimeout(grace);
    for (const conn of open) if (conn.open) conn.terminate();
    await allClosed;
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await httpClosed;
    const closedError = new Error('local realtime server closed');
    for (const w of [...this.sentWaiters, ...this.receivedWaiters]) {
      clearTimeout(w.timer);
      w.reject(closedError);
    }
    this.sentWaiters = [];
    this.receivedWaiters = [];
    for (const w of this.conditionWaiters) {
      clearTimeout(w.timer);
      w.reject(closedError);
    }
    this.conditionWaiters = [];
  }
}

/** Starts a local Realtime server (GA protocol) and resolves once it listens. */
export async function startLocalRealtimeServer(options: LocalRealtimeServerOptions = {}): Promise<LocalRealtimeServer> {
  const server = new LocalRealtimeServerImpl(options);
  await server.listen();
  return server;
}
