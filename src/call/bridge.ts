/**
 * The shell around CallSession: moves bytes between the Twilio media socket and the upstream
 * Realtime connection. It parses frames, feeds the session with the current time, and executes
 * the actions it returns. It decides nothing about the call itself.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { AgentConfig } from '../config.js';
import type { Logger } from '../observability/logger.js';
import { callLogger } from '../observability/logger.js';
import { RealtimeConnection, rawToString } from '../realtime/connection.js';
import { parseTwilioMessage } from '../twilio/messages.js';
import type { CallRecorder, RecorderFactory } from './recorder.js';
import { CallSession } from './session.js';
import type { SessionAction, SessionInput } from './session.js';

/** frames kept before `start` for the capture; Twilio sends one (`connected`) */
const MAX_PRE_START_FRAMES = 16;

export interface BridgeOptions {
  agent: AgentConfig;
  realtimeUrl: string;
  apiKey: string | null;
  logger: Logger;
  connectionId: number;
  now?: () => number;
  /** capture this call's traffic (RECORD_CALLS, in-process replay) */
  recorderFactory?: RecorderFactory;
}

export class CallBridge {
  readonly session: CallSession;
  /** resolves once both sockets of the call are closed */
  readonly closed: Promise<void>;
  private upstream: RealtimeConnection | null = null;
  private log: Logger;
  private readonly now: () => number;
  private twilioClosed = false;
  /** the session threw: it is not fed again, the call is being torn down */
  private failed = false;
  private upstreamClosed = true;
  private resolveClosed: () => void = () => undefined;
  private readonly openedAtMs: number;
  private recorder: CallRecorder | null = null;
  /** inbound frames before `start`, kept until the recorder can be named after the call */
  private preStartFrames: Array<{ msg: unknown; atMs: number }> | null = null;

  constructor(
    private readonly socket: WebSocket,
    private readonly options: BridgeOptions,
  ) {
    this.session = new CallSession(options.agent);
    this.now = options.now ?? (() => performance.now());
    this.openedAtMs = this.now();
    if (options.recorderFactory !== undefined) this.preStartFrames = [];
    this.log = callLogger(options.logger, { callSid: null, streamSid: null, connectionId: options.connectionId });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });

    socket.on('message', (data, isBinary) => this.onTwilioFrame(data, isBinary));
    socket.on('error', (err) => this.log.warn({ err: err.message }, 'twilio socket error'));
    socket.on('close', (code) => {
      this.twilioClosed = true;
      this.feed({ kind: 'twilio-closed', code });
      this.maybeResolveClosed();
    });
  }

  /** End the call from outside (shutdown): behaves like a hang-up. */
  hangUp(): void {
    this.feed({ kind: 'twilio-closed', code: 1001 });
  }

  /** Cut both sockets without a closing handshake: for a peer that does not answer ours. */
  terminate(): void {
    this.upstream?.close(1001);
    this.socket.terminate();
  }

  private onTwilioFrame(data: WebSocket.RawData, isBinary: boolean): void {
    if (isBinary) {
      this.log.warn({ reason: 'binary-frame' }, 'ignored binary frame from twilio');
      return;
    }
    const text = rawToString(data);
    if (this.preStartFrames !== null || this.recorder !== null) this.recordTwilioIn(text);
    const parsed = parseTwilioMessage(text);
    if (!parsed.ok) {
      this.log.warn({ reason: parsed.error.reason, detail: parsed.error.detail }, 'ignored malformed twilio frame');
      return;
    }
    this.feed({ kind: 'twilio', message: parsed.message });
  }

  private feed(input: SessionInput): void {
    if (this.failed) return;
    let actions: SessionAction[];
    try {
      actions = this.session.handle(input, this.now());
    } catch (err) {
      // A bug in the session must end this call, never the process or another call.
      this.log.error({ err: (err as Error).stack ?? String(err), input: input.kind }, 'call session failed; ending call');
      this.failed = true;
      this.closeAll(1011);
      return;
    }
    for (const action of actions) this.execute(action);
  }

  private execute(action: SessionAction): void {
    switch (action.kind) {
      case 'send-twilio':
        if (this.socket.readyState === WebSocket.OPEN) {
          this.socket.send(JSON.stringify(action.message));
          this.recorder?.twilio('out', action.message, this.now());
        }
        return;
      case 'send-realtime':
        if (this.upstream === null || !this.upstream.send(action.event)) {
          this.log.debug({ type: action.event.type }, 'upstream not open; event not sent');
          return;
        }
        this.recorder?.realtime('out', action.event, this.now());
        return;
      case 'connect-upstream':
        this.log = callLogger(this.options.logger, {
          callSid: action.callSid,
          streamSid: action.streamSid,
          connectionId: this.options.connectionId,
        });
        this.openRecorder(action.callSid, action.streamSid);
        this.connectUpstream();
        return;
      case 'end-call':
        this.closeAll(1000);
        return;
      case 'log':
        this.log[action.level](action.fields, action.msg);
        return;
      default: {
        const never: never = action;
        throw new Error(`unhandled action ${JSON.stringify(never)}`);
      }
    }
  }

  private connectUpstream(): void {
    this.upstreamClosed = false;
    this.upstream = new RealtimeConnection(this.options.realtimeUrl, this.options.apiKey, {
      onOpen: () => this.feed({ kind: 'upstream-open' }),
      onEvent: (event) => {
        this.recorder?.realtime('in', event, this.now());
        this.feed({ kind: 'realtime', event });
      },
      onInvalidFrame: (reason) => this.log.warn({ reason }, 'ignored malformed realtime frame'),
      onClose: (code, reason) => {
        this.upstreamClosed = true;
        this.feed({ kind: 'upstream-closed', code, reason });
        this.maybeResolveClosed();
      },
    });
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

  private closeAll(code: number): void {
    this.upstream?.close(code === 1011 ? 1011 : 1000);
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.close(code === 1011 ? 1011 : 1000);
    }
    this.maybeResolveClosed();
  }

  private maybeResolveClosed(): void {
    if (this.twilioClosed && this.upstreamClosed) {
      this.recorder?.end();
      this.recorder = null;
      this.resolveClosed();
    }
  }
}
