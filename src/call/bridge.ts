/**
 * The shell around CallSession: moves bytes between the Twilio media socket and the upstream
 * Realtime connection. It parses frames, feeds the session with the current time, executes the
 * actions it returns, and owns the call's timers. It decides nothing about the call itself.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { AgentConfig, HttpTool } from '../config.js';
import type { Logger } from '../observability/logger.js';
import { callLogger } from '../observability/logger.js';
import { RealtimeConnection, rawToString } from '../realtime/connection.js';
import { parseTwilioMessage } from '../twilio/messages.js';
import type { CallRecorder, RecorderFactory } from './recorder.js';
import { runHttpTool } from './http-tool.js';
import { WriteBatch } from './write-batch.js';
import type { Corkable } from './write-batch.js';
import { CallSession } from './session.js';
import type { EndReason, MetricEvent, SessionAction, SessionDeps, SessionInput, TimerName } from './session.js';

/** frames kept before `start` for the capture; Twilio sends one (`connected`) */
const MAX_PRE_START_FRAMES = 16;
/**
 * Twilio sends `start` right after connecting; a socket that stays silent is not Twilio. Short,
 * because each silent socket holds one of the server's few pending-stream slots until then.
 */
export const DEFAULT_START_TIMEOUT_MS = 5000;
/**
 * ws's errors for a frame over maxPayload. ws answers such a frame with close 1009 but stops
 * reading the socket, so the peer's echo is never seen and the close event says 1006; the error
 * is the only place the 1009 can be recovered from.
 */
const OVERSIZED_FRAME_ERRORS: ReadonlySet<string> = new Set(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH']);
const CLOSE_MESSAGE_TOO_BIG = 1009;
/** Malformed upstream frames logged at warn before further ones drop to debug, as for Twilio's. */
const UPSTREAM_INVALID_WARN_LOGS = 5;

/** What the service counts about calls (metrics); the bridge reports, the observer records. */
export interface CallObserver {
  callStarted(): void;
  /** `started`: false for a stream refused before its call began (bad token, no start, violation) */
  callEnded(reason: EndReason | 'error', started: boolean): void;
  /** `handlingMs`: from the input's arrival to now, when the action's effects were sent */
  metric(event: MetricEvent, handlingMs: number): void;
}

export interface BridgeOptions {
  agent: AgentConfig;
  realtimeUrl: string;
  apiKey: string | null;
  logger: Logger;
  connectionId: number;
  now?: () => number;
  /** capture this call's traffic (RECORD_CALLS, in-process replay) */
  recorderFactory?: RecorderFactory;
  authorizeStart?: SessionDeps['authorizeStart'];
  /**
   * Checks of an accepted `start` that need a round trip (the call's Twilio status, the cluster's
   * one-stream memory). Started when the call starts and run while the upstream connects, so they
   * add no latency; a refusal ends the call as unauthorised (`start-refused`). `log` carries callSid.
   */
  verifyStart?: (start: { callSid: string; customParameters: Record<string, string> }, log: Logger) => Promise<{ ok: true } | { ok: false; reason: string }>;
  /** ends the phone call through Twilio's REST API; absent without Twilio credentials */
  hangUpCall?: (callSid: string) => Promise<unknown>;
  /** redirects the live call to a transfer target (REST `<Dial>`); absent without Twilio credentials */
  transferCall?: (callSid: string, to: string, callerId: string | null) => Promise<unknown>;
  /** TOOLS_SECRET: signs http tool requests */
  toolsSecret?: string | null;
  resumeFor?: SessionDeps['resumeFor'];
  /** an outbound call's stream whose answering-machine detection runs (SessionDeps.amdPending) */
  amdPending?: SessionDeps['amdPending'];
  /**
   * The call's own agent (profile, AGENT_CONFIG_URL's override, caller context), resolved from
   * its `start` while the upstream connects; `agent` is then only a stand-in, and the session
   * configures nothing upstream before this settles. It must not reject, and must settle in
   * bounded time (the resolver's own timeout). `log` carries callSid.
   */
  resolveAgent?: (start: { callSid: string; customParameters: Record<string, string> }, log: Logger) => Promise<{ agent: AgentConfig; profile: string }>;
  /** hold tone and apology played when no model answers */
  fallbackAudio?: SessionDeps['fallbackAudio'];
  maxCallDurationMs?: number;
  startTimeoutMs?: number;
  observer?: CallObserver;
  /** the TCP socket under the Twilio WebSocket, so the writes of one input can leave together */
  twilioTransport?: Corkable;
}

export class CallBridge {
  readonly session: CallSession;
  /** resolves once both sockets of the call are closed and no timer is left */
  readonly closed: Promise<void>;
  private upstream: RealtimeConnection | null = null;
  private log: Logger;
  private readonly now: () => number;
  private twilioClosed = false;
  /** the session threw: it is not fed again, the call is being torn down */
  private failed = false;
  private ending = false;
  private endReason: EndReason | null = null;
  private resolveClosed: () => void = () => undefined;
  private readonly openedAtMs: number;
  private started = false;
  private recorder: CallRecorder | null = null;
  /** inbound frames before `start`, kept until the recorder can be named after the call */
  private preStartFrames: Array<{ msg: unknown; atMs: number }> | null = null;
  private startTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private upstreamInvalidFrames = 0;
  private oversizedFrame = false;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private readonly writes = new WriteBatch();
  /** http tools in flight: aborted when the call ends, so no request outlives its call */
  private readonly toolRuns = new Set<AbortController>();
  /** the caller's and the dialled number, from the stream's parameters */
  private partiesValue: { from: string | null; to: string | null } = { from: null, to: null };
  private startParametersValue: Readonly<Record<string, string>> = {};

  constructor(
    private readonly socket: WebSocket,
    private readonly options: BridgeOptions,
  ) {
    const deps: SessionDeps = {};
    if (options.authorizeStart !== undefined) deps.authorizeStart = options.authorizeStart;
    if (options.resumeFor !== undefined) deps.resumeFor = options.resumeFor;
    if (options.amdPending !== undefined) deps.amdPending = options.amdPending;
    if (options.fallbackAudio !== undefined) deps.fallbackAudio = options.fallbackAudio;
    if (options.resolveAgent !== undefined) deps.awaitAgent = true;
    this.session = new CallSession(options.agent, deps);
    this.now = options.now ?? (() => performance.now());
    this.openedAtMs = this.now();
    this.log = callLogger(options.logger, { callSid: null, streamSid: null, connectionId: options.connectionId });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    if (options.recorderFactory !== undefined) this.preStartFrames = [];
    this.startTimer = setTimeout(() => {
      this.startTimer = null;
      this.feed({ kind: 'twilio-invalid', reason: 'no-start', detail: `no start within ${this.startTimeoutMs} ms`, fatal: true });
    }, this.startTimeoutMs);

    socket.on('message', (data, isBinary) => this.guard('twilio frame', () => this.onTwilioFrame(data, isBinary)));
    socket.on('error', (err) => {
      const code: unknown = (err as Error & { code?: unknown }).code;
      if (typeof code === 'string' && OVERSIZED_FRAME_ERRORS.has(code)) this.oversizedFrame = true;
      this.guard('twilio socket error', () => this.log.warn({ err: err.message }, 'twilio socket error'));
    });
    socket.on('close', (code) => {
      this.twilioClosed = true;
      // An oversized frame is the peer's violation, not a hang-up: the session tells them apart by 1009.
      this.feed({ kind: 'twilio-closed', code: this.oversizedFrame ? CLOSE_MESSAGE_TOO_BIG : code });
      // A socket that closed after a session failure must still release the call.
      this.closeAll(1000);
    });
  }

  /** the caller's and the dialled number, as the webhook passed them to the stream */
  get parties(): { from: string | null; to: string | null } {
    return this.partiesValue;
  }

  /** every custom parameter of the accepted `start` (empty before it) */
  get startParameters(): Readonly<Record<string, string>> {
    return this.startParametersValue;
  }

  private get startTimeoutMs(): number {
    return this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  }

  /** Twilio's answering-machine verdict for this call (POST /amd-status reached this process). */
  amdResult(answeredBy: string): void {
    this.feed({ kind: 'amd-result', answeredBy });
  }

  /** End the call from outside (drain timeout, shutdown). */
  shutdown(): void {
    this.feed({ kind: 'shutdown' });
  }

  /** Cut both sockets without a closing handshake: for a peer that does not answer ours. */
  terminate(): void {
    this.clearTimers();
    this.upstream?.close(1001);
    this.socket.terminate();
  }

  private onTwilioFrame(data: WebSocket.RawData, isBinary: boolean): void {
    if (isBinary) {
      // Twilio only ever sends text frames.
      this.feed({ kind: 'twilio-invalid', reason: 'binary-frame', detail: 'binary frame on the media stream', fatal: true });
      return;
    }
    const text = rawToString(data);
    if (this.preStartFrames !== null || this.recorder !== null) this.recordTwilioIn(text);
    const parsed = parseTwilioMessage(text);
    if (!parsed.ok) {
      this.feed({ kind: 'twilio-invalid', reason: parsed.error.reason, detail: parsed.error.detail, fatal: false });
      return;
    }
    this.feed({ kind: 'twilio', message: parsed.message });
  }

  private feed(input: SessionInput): void {
    if (this.failed) return;
    const arrivedAtMs = this.now();
    let stage: 'session' | 'action' = 'session';
    try {
      const actions = this.session.handle(input, arrivedAtMs);
      stage = 'action';
      // Metrics are taken once the batch has left, so a barge-in's reaction includes the write.
      const metrics: SessionAction[] = [];
      try {
        for (const action of actions) {
          if (action.kind === 'metric') metrics.push(action);
          else this.execute(action, arrivedAtMs);
        }
      } finally {
        this.writes.release();
      }
      for (const action of metrics) this.execute(action, arrivedAtMs);
    } catch (err) {
      // A bug in the session, or in what runs its actions (logger, recorder, observer), must end
      // this call, never the process or another call.
      this.fail(err, `${stage} (${input.kind})`);
    }
  }

  /** For socket callbacks: a throw there would be an uncaught exception, so it ends this call instead. */
  private guard(context: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err, context);
    }
  }

  private fail(err: unknown, context: string): void {
    this.failed = true;
    try {
      this.log.error({ err: (err as Error).stack ?? String(err), context }, 'call failed; ending call');
    } catch {
      // The logger may be what threw; ending the call matters more than the line.
    }
    try {
      this.closeAll(1011);
    } catch {
      // closeAll guards its own callbacks; anything left is the socket library's, and the close
      // event still releases the call.
    }
  }

  private execute(action: SessionAction, arrivedAtMs: number): void {
    switch (action.kind) {
      case 'send-twilio':
        if (this.socket.readyState === WebSocket.OPEN) {
          this.writes.hold(this.options.twilioTransport ?? null);
          this.socket.send(JSON.stringify(action.message));
          this.recorder?.twilio('out', action.message, this.now());
        }
        return;
      case 'send-realtime':
        if (this.upstream?.isOpen === true) this.writes.hold(this.upstream.transport);
        if (this.upstream === null || !this.upstream.send(action.event)) {
          this.log.debug({ type: action.event.type }, 'upstream not open; event not sent');
          return;
        }
        this.recorder?.realtime('out', action.event, this.now());
        return;
      case 'call-started':
        this.partiesValue = { from: action.customParameters['from'] ?? null, to: action.customParameters['to'] ?? null };
        this.startParametersValue = { ...action.customParameters };
        this.onCallStarted(action.callSid, action.streamSid);
        this.verifyStart(action.callSid, action.customParameters);
        this.resolveAgent(action.callSid, action.customParameters);
        return;
      case 'connect-upstream':
        this.scheduleUpstream(action.attempt, action.delayMs);
        return;
      case 'close-upstream': {
        if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        // Forgotten first, so its close event is old news when it comes.
        const upstream = this.upstream;
        this.upstream = null;
        upstream?.close();
        return;
      }
      case 'end-call':
        this.endReason = action.reason;
        this.closeAll(action.closeCode);
        return;
      case 'hangup-call': {
        const hangUp = this.options.hangUpCall;
        if (hangUp === undefined) return;
        hangUp(action.callSid).then(
          (result) => this.log.info({ result }, 'call hung up through the REST API'),
          (err: unknown) => this.log.warn({ err: (err as Error).message }, 'REST hang-up failed'),
        );
        return;
      }
      case 'transfer-call':
        this.transfer(action.callSid, action.to);
        return;
      case 'run-tool':
        this.runTool(action.callId, action.tool, action.arguments);
        return;
      case 'set-timer':
        this.setTimer(action.timer, action.delayMs);
        return;
      case 'clear-timer': {
        const t = this.timers.get(action.timer);
        if (t !== undefined) clearTimeout(t);
        this.timers.delete(action.timer);
        return;
      }
      case 'log':
        this.log[action.level](action.fields, action.msg);
        return;
      case 'metric':
        this.options.observer?.metric(action.event, this.now() - arrivedAtMs);
        return;
      default: {
        const never: never = action;
        throw new Error(`unhandled action ${JSON.stringify(never)}`);
      }
    }
  }

  private setTimer(timer: TimerName, delayMs: number): void {
    const previous = this.timers.get(timer);
    if (previous !== undefined) clearTimeout(previous);
    this.timers.set(
      timer,
      setTimeout(() => {
        this.timers.delete(timer);
        this.feed({ kind: 'timer', timer });
      }, Math.max(0, delayMs)),
    );
  }

  private runTool(callId: string, tool: HttpTool, args: unknown): void {
    const controller = new AbortController();
    this.toolRuns.add(controller);
    const callSid = this.session.ids.callSid ?? '';
    runHttpTool(tool, { name: tool.name, arguments: args, callSid, ...this.parties }, { secret: this.options.toolsSecret ?? null, signal: controller.signal })
      .catch((err: unknown) => ({ ok: false as const, error: `tool ${tool.name} failed: ${(err as Error).message}` }))
      .then((outcome) => {
        this.toolRuns.delete(controller);
        if (this.ending) return;
        this.feed({ kind: 'tool-result', callId, outcome });
      });
  }

  private transfer(callSid: string, to: string): void {
    const transferCall = this.options.transferCall;
    if (transferCall === undefined) {
      // Reported on the next tick: feeding the session from inside its own actions would interleave them.
      queueMicrotask(() => {
        if (!this.ending) this.feed({ kind: 'transfer-result', ok: false, detail: 'no Twilio REST credentials' });
      });
      return;
    }
    transferCall(callSid, to, this.parties.to).then(
      (result) => {
        if (!this.ending) this.feed({ kind: 'transfer-result', ok: true, detail: String(result) });
      },
      (err: unknown) => {
        if (!this.ending) this.feed({ kind: 'transfer-result', ok: false, detail: (err as Error).message });
      },
    );
  }

  private onCallStarted(callSid: string, streamSid: string): void {
    this.log = callLogger(this.options.logger, { callSid, streamSid, connectionId: this.options.connectionId });
    if (this.startTimer !== null) clearTimeout(this.startTimer);
    this.startTimer = null;
    this.openRecorder(callSid, streamSid);
    this.started = true;
    this.options.observer?.callStarted();
    const maxMs = this.options.maxCallDurationMs;
    if (maxMs !== undefined && Number.isFinite(maxMs)) {
      this.deadlineTimer = setTimeout(() => {
        this.deadlineTimer = null;
        this.feed({ kind: 'deadline' });
      }, maxMs);
    }
  }

  /** The session goes on meanwhile: the connect-upstream action follows in this same batch. */
  private verifyStart(callSid: string, customParameters: Record<string, string>): void {
    const verify = this.options.verifyStart;
    if (verify === undefined) return;
    verify({ callSid, customParameters }, this.log).then(
      (verdict) => {
        if (!verdict.ok && !this.ending) this.feed({ kind: 'start-refused', reason: verdict.reason });
      },
      (err: unknown) => this.guard('start verification', () => this.log.warn({ err: (err as Error).message }, 'start verification failed; the call goes on')),
    );
  }

  /** Runs alongside the upstream connect (the connect-upstream action follows in this batch). */
  private resolveAgent(callSid: string, customParameters: Record<string, string>): void {
    const resolve = this.options.resolveAgent;
    if (resolve === undefined) return;
    resolve({ callSid, customParameters }, this.log)
      .catch((err: unknown) => {
        // The resolver does not reject; should it, the session must still get an agent or it never speaks.
        this.guard('agent resolution', () => this.log.error({ err: (err as Error).message }, 'agent resolution failed: the stand-in agent answers'));
        return { agent: this.options.agent, profile: null };
      })
      .then((resolved) => {
        if (!this.ending) this.feed({ kind: 'agent-resolved', agent: resolved.agent, profile: resolved.profile });
      });
  }

  private scheduleUpstream(attempt: number, delayMs: number): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (delayMs <= 0) {
      this.connectUpstream(attempt);
      return;
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connectUpstream(attempt);
    }, delayMs);
  }

  private connectUpstream(attempt: number): void {
    if (this.ending) return;
    this.upstream?.close();
    this.log.debug({ attempt }, 'connecting upstream');
    const connection = new RealtimeConnection(this.options.realtimeUrl, this.options.apiKey, {
      onOpen: () => {
        if (connection !== this.upstream) return;
        this.feed({ kind: 'upstream-open' });
      },
      onEvent: (event) => {
        if (connection !== this.upstream) return;
        this.guard('realtime event', () => this.recorder?.realtime('in', event, this.now()));
        this.feed({ kind: 'realtime', event });
      },
      onInvalidFrame: (reason) => this.guard('malformed realtime frame', () => this.onUpstreamInvalidFrame(reason)),
      onClose: (code, reason) => {
        // A superseded connection's close is old news.
        if (connection !== this.upstream) return;
        this.upstream = null;
        this.feed({ kind: 'upstream-closed', code, reason });
        this.maybeResolveClosed();
      },
    });
    this.upstream = connection;
  }

  /** Loud for the first few only: a server sending garbage would otherwise flood the log per frame. */
  private onUpstreamInvalidFrame(reason: string): void {
    this.upstreamInvalidFrames += 1;
    const count = this.upstreamInvalidFrames;
    this.log[count <= UPSTREAM_INVALID_WARN_LOGS ? 'warn' : 'debug']({ reason, count }, 'ignored malformed realtime frame');
  }

  private openRecorder(callSid: string, streamSid: string): void {
    const factory = this.options.recorderFactory;
    const early = this.preStartFrames;
    this.preStartFrames = null;
    if (factory === undefined || early === null) return;
    try {
      this.recorder = factory({ callSid, streamSid }, this.openedAtMs);
      for (const f of early) this.recorder.twilio('in', f.msg, f.atMs);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'call capture could not start; call continues unrecorded');
      this.recorder = null;
    }
  }

  private recordTwilioIn(text: string): void {
    let msg: unknown = text;
    try {
      msg = JSON.parse(text);
    } catch {
      // kept as raw text: a malformed frame is part of what happened on the call
    }
    const atMs = this.now();
    if (this.preStartFrames === null) this.recorder?.twilio('in', msg, atMs);
    else if (this.preStartFrames.length < MAX_PRE_START_FRAMES) this.preStartFrames.push({ msg, atMs });
  }

  private clearTimers(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const run of this.toolRuns) run.abort();
    this.toolRuns.clear();
    for (const t of [this.startTimer, this.deadlineTimer, this.reconnectTimer]) if (t !== null) clearTimeout(t);
    this.startTimer = null;
    this.deadlineTimer = null;
    this.reconnectTimer = null;
  }

  private closeAll(code: number): void {
    const first = !this.ending;
    this.ending = true;
    this.clearTimers();
    const upstream = this.upstream;
    if (upstream !== null) upstream.close(code === 1011 ? 1011 : 1000);
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(code);
    if (first) {
      const reason = this.endReason ?? (this.failed ? 'error' : 'twilio-closed');
      // The call must still be released below, whatever the observer does.
      this.bestEffort('observer', () => this.options.observer?.callEnded(reason, this.started));
    }
    this.maybeResolveClosed();
  }

  private maybeResolveClosed(): void {
    if (!this.twilioClosed || !this.ending) return;
    // The upstream's close event is still to come (closing, or a handshake being torn down).
    if (this.upstream !== null) return;
    const recorder = this.recorder;
    this.recorder = null;
    if (recorder !== null) this.bestEffort('recorder', () => recorder.end({ reason: this.endReason ?? this.session.endReason, atMs: this.now(), profile: this.session.profile }));
    this.resolveClosed();
  }

  /** For teardown steps that must not stop the rest of the teardown. */
  private bestEffort(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      try {
        this.log.error({ err: (err as Error).stack ?? String(err), what }, 'call teardown step failed');
      } catch {
        // nothing left to tell it to
      }
    }
  }
}
