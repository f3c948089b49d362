/**
 * Everything that decides what happens on a call, as a pure state machine:
 *
 *   const actions = session.handle(input, nowMs);
 *
 * No sockets, no timers, no clock: time comes in as an argument, so a recorded call replays
 * deterministically in a unit test. The shell (bridge.ts) parses frames, feeds them here, and
 * executes the returned actions.
 */
import { toolName } from '../config.js';
import type { AgentConfig, HttpTool } from '../config.js';
import { InboundTranscoder, OutboundTranscoder } from '../audio/transcoder.js';
import { MULAW_BYTES_PER_MS, PCM24K_BYTES_PER_MS, base64ByteLength } from '../audio/wire-format.js';
import type {
  OtherServerEvent,
  MessageItem,
  RealtimeClientEvent,
  RealtimeServerEvent,
  RealtimeSessionConfig,
  ResponseDoneEvent,
  OutputAudioDeltaEvent,
} from '../realtime/events.js';
import { clearMessage, markMessage, mediaMessage } from '../twilio/messages.js';
import type { TwilioInbound, TwilioOutbound, TwilioStart } from '../twilio/messages.js';
import { PlayoutTracker } from './playout.js';
import type { HeardItem } from './playout.js';
import { CallControl } from './call-control.js';
import type { ControlRequest, ControlTimer } from './call-control.js';
import { IdleMonitor } from './idle.js';
import { KeypadCollector } from './keypad.js';
import { ToolCalls } from './tool-calls.js';
import { dispatchToolCall, outputText } from './tool-dispatch.js';
import type { ToolCallRecord, ToolOutcome } from './tool-calls.js';
import { TurnArbiter } from './turn-arbiter.js';
import { FAREWELL_GRACE_MS, FAREWELL_MARK, FIRST_CONNECT_GIVE_UP_MS, HOLD_TONE_AFTER_MS, HOLD_TONE_EVERY_MS, UpstreamFallback } from './upstream-fallback.js';
import type { FallbackAudio } from './fallback-audio.js';
import type { ResponseRequest } from './turn-arbiter.js';
import { greetingRequest, idleGoodbyeRequest, notes, reminderRequest, realtimeTools, voicemailRequest } from './agent-script.js';
import { AMD_WAIT_MAX_MS, AnsweringMachineGate, amdVerdict } from './amd.js';
import type { AmdVerdict } from './amd.js';


/**
 * Backoff before each upstream (re)connection attempt. The first is immediate, so a call whose
 * upstream dropped resumes well within a second; the whole list bounds how long a caller waits.
 */
export const UPSTREAM_RETRY_DELAYS_MS: readonly number[] = [0, 250, 500, 1000, 2000, 4000];
/** Transcript entries re-seeded into a new upstream session: the recent conversation is enough. */
export const MAX_RESEED_ENTRIES = 40;
/**
 * An upstream session that lived this long was healthy: losing it starts the retries afresh.
 * One that dies sooner keeps climbing the backoff, so a service that accepts and then drops
 * every connection is given up on instead of being hammered in a loop.
 */
export const HEALTHY_SESSION_MS = 5000;
/** Kept per call: enough for logs and re-seeding, bounded for calls that last hours. */
const MAX_TRANSCRIPT_ENTRIES = 200;
const MAX_INTERRUPTION_RECORDS = 100;
const MAX_KEYPAD_ENTRIES = 100;
/** System notes kept for the next upstream session while none is open. */
const MAX_OWED_NOTES = 10;
/** Twilio sends 20 ms (160 B) per message; a full second in one message is already suspicious. */
export const MAX_MEDIA_PAYLOAD_BYTES = 8000;
/** Malformed frames of one kind logged at warn before further ones drop to debug. */
const WARN_LOGS_PER_REASON = 5;
/** Keys held while the call's agent is being resolved (a second or two): more is not a caller. */
const MAX_KEYS_BEFORE_AGENT = 32;

export type SessionInput =
  | { kind: 'twilio'; message: TwilioInbound }
  /** a frame that failed validation in the shell; `fatal` for protocol violations (binary frames) */
  | { kind: 'twilio-invalid'; reason: string; detail: string; fatal: boolean }
  | { kind: 'realtime'; event: RealtimeServerEvent | OtherServerEvent }
  | { kind: 'upstream-open' }
  | { kind: 'upstream-closed'; code: number; reason: string }
  | { kind: 'twilio-closed'; code: number }
  /** the call reached its maximum duration */
  | { kind: 'deadline' }
  /** the service is stopping and the drain time is over */
  | { kind: 'shutdown' }
  /** a timer the session asked for (set-timer) expired */
  | { kind: 'timer'; timer: TimerName }
  /** an http tool the session asked to run (run-tool) finished */
  | { kind: 'tool-result'; callId: string; outcome: ToolOutcome }
  /** the REST redirect of a transfer (transfer-call) was accepted or failed */
  | { kind: 'transfer-result'; ok: boolean; detail: string }
  /**
   * A check of the accepted `start` that the shell ran alongside the upstream connect (the call's
   * Twilio status, the cluster's one-stream memory) says no: the call ends as unauthorised.
   */
  | { kind: 'start-refused'; reason: string }
  /**
   * The call's own agent config (its profile, AGENT_CONFIG_URL's override, the caller context
   * filled in), resolved by the shell after `start` (SessionDeps.awaitAgent).
   */
  | { kind: 'agent-resolved'; agent: AgentConfig; profile: string | null }
  /** Twilio's answering-machine verdict (`AnsweredBy`, as POST /amd-status received it) */
  | { kind: 'amd-result'; answeredBy: string };

/** The session's timers, run by the shell: one of each at most. */
export type TimerName = 'keypad' | 'idle' | 'control' | 'hold' | 'connect-deadline' | 'farewell' | 'amd';

export type EndReason =
  | 'twilio-stop'
  | 'twilio-closed'
  | 'upstream-failed'
  | 'protocol-violation'
  | 'unauthorized'
  | 'max-duration'
  | 'shutdown'
  /** the model called end_call and the caller heard the goodbye */
  | 'agent-ended'
  /** the call was redirected to a transfer target */
  | 'transferred'
  /** the caller stayed silent through every reminder */
  | 'idle'
  /** an answering machine (or a fax) took an outbound call: the voicemail was heard, or there was none to leave */
  | 'voicemail';

/** WebSocket close code for the stream socket: policy violations are told apart from normal ends. */
export const CLOSE_CODE_BY_REASON: Record<EndReason, number> = {
  'twilio-stop': 1000,
  'twilio-closed': 1000,
  'upstream-failed': 1011,
  'protocol-violation': 1008,
  unauthorized: 1008,
  'max-duration': 1000,
  shutdown: 1001,
  'agent-ended': 1000,
  transferred: 1000,
  idle: 1000,
  voicemail: 1000,
};

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type SessionAction =
  | { kind: 'send-twilio'; message: TwilioOutbound }
  | { kind: 'send-realtime'; event: RealtimeClientEvent }
  /** the stream is authorised: the call has its ids */
  | { kind: 'call-started'; callSid: string; streamSid: string; customParameters: Record<string, string> }
  /** open a new upstream connection after `delayMs` (closing any previous one) */
  | { kind: 'connect-upstream'; attempt: number; delayMs: number }
  /** the call is giving up on the upstream: close it and cancel any pending attempt */
  | { kind: 'close-upstream' }
  | { kind: 'end-call'; reason: EndReason; closeCode: number }
  /** end the phone call itself through Twilio's REST API (when credentials exist) */
  | { kind: 'hangup-call'; callSid: string }
  /** redirect the live call to `to` (a number or SIP URI) through Twilio's REST API */
  | { kind: 'transfer-call'; callSid: string; to: string }
  /** run an http tool; its result comes back as a `tool-result` input */
  | { kind: 'run-tool'; callId: string; tool: HttpTool; arguments: unknown }
  | { kind: 'set-timer'; timer: TimerName; delayMs: number }
  | { kind: 'clear-timer'; timer: TimerName }
  | { kind: 'log'; level: LogLevel; msg: string; fields: Record<string, unknown> }
  | { kind: 'metric'; event: MetricEvent };

/** Facts for metrics; the shell adds wall-clock measures (e.g. reaction time) and records them. */
export type MetricEvent =
  /** `truncatedMs`: the audio_end_ms sent upstream, null when nothing was truncated */
  | { name: 'interruption'; truncatedMs: number | null; cancelSent: boolean }
  /** caller's turn ended → first agent audio frame sent to Twilio */
  | { name: 'first-audio'; latencyMs: number }
  | { name: 'upstream-error'; code: string | null }
  | { name: 'reconnect'; outcome: 'ok' | 'failed' }
  | { name: 'tool-call'; kind: 'end_call' | 'transfer_call' | 'http' | 'unknown'; ok: boolean; durationMs: number };

export type StartAuthorization = { ok: true } | { ok: false; reason: string };

/** A caller back from a transfer the target did not take: the conversation so far, and why. */
export interface ResumeContext {
  transcript: TranscriptEntry[];
  transferFailed: { to: string; status: string };
}

export interface SessionDeps {
  /** Decides whether a `start` may open an upstream session (the per-call token). */
  authorizeStart?: (start: TwilioStart['start'], nowMs: number) => StartAuthorization;
  /** An authorised stream that brings a caller back from a failed transfer: what to resume. */
  resumeFor?: (start: TwilioStart['start']) => ResumeContext | null;
  /** hold tone and apology for a call without a model; without it such a call just ends */
  fallbackAudio?: FallbackAudio;
  /**
   * The agent config given to the constructor is only a stand-in: the call's own arrives after
   * `start` as an `agent-resolved` input. Until then nothing is configured upstream (no
   * session.update, no greeting) and keypad keys wait; the first words follow both the upstream
   * and the agent.
   */
  awaitAgent?: boolean;
  /**
   * An authorised stream of an outbound call whose answering-machine detection runs: the greeting
   * waits for the verdict (an `amd-result` input) or for the callee to speak (src/call/amd.ts).
   */
  amdPending?: (start: TwilioStart['start']) => boolean;
}

export interface KeypadEntry {
  atMs: number;
  digits: string;
}

/** An assistant audio item as produced by the model. */
interface OutputItem {
  readonly itemId: string;
  readonly responseId: string;
  contentIndex: number;
  producedBytes: number;
  audioDone: boolean;
  transcript: string;
  /**
   * cut (truncated or deleted) or heard in full when playback stopped: the conversation already
   * matches what was heard, and the transcript keeps the heard share of the words (all of them
   * when `full`)
   */
  settled: null | { audioEndMs: number; full: boolean };
  /** heard none of it while its response was still generating: delete once the response is done */
  deleteWhenDone: boolean;
  /** ms of it handed to Twilio: an item sent but no longer tracked by playout was heard in full */
  sentMs: number;
}

/** A barge-in decision, for logs and (later) metrics. */
export interface InterruptionRecord {
  atMs: number;
  responseId: string | null;
  cancelSent: boolean;
  truncated: Array<{ itemId: string; audioEndMs: number; sentMs: number }>;
  deleted: string[];
  heardMs: number;
  sentMs: number;
}

export interface TranscriptEntry {
  role: 'user' | 'assistant';
  itemId: string;
  text: string;
}

export class CallSession {
  private streamSid: string | null = null;
  private callSid: string | null = null;
  private ended = false;
  private upstream: 'idle' | 'connecting' | 'open' = 'idle';
  private upstreamAttempt = 0;
  /** the conversation must be re-seeded into the next upstream session */
  // Stryker disable next-line BooleanLiteral: the first open has nothing to re-seed: the transcript is empty until a session is open, and every path that fills it earlier (resume, keypad) sets the flag itself
  private reseedPending = false;
  private reconnects = 0;
  /** set while the upstream is being re-established after a loss */
  private recovering = false;
  private upstreamOpenedAtMs = Number.NEGATIVE_INFINITY;
  /** a response was owed when the upstream died: ask the new session */
  private responseOwed: ResponseRequest | null = null;
  /**
   * The upstream died while a hang-up or transfer only waited for the caller to hear the last
   * words already sent: no reconnect was started (see onUpstreamClosed), the playback goes on,
   * and the dead session's items stay only to account for what the caller hears of them.
   */
  private upstreamParked = false;
  /** system notes decided while no session was open: told to the next one, after the re-seed */
  private readonly notesOwed: string[] = [];
  /** when the caller's last turn ended, until the answer's first audio goes out */
  private turnEndedAtMs: number | null = null;
  private readonly malformedCounts = new Map<string, number>();
  private readonly pendingAppends: string[] = [];
  private pendingAppendMs = 0;
  private droppedInboundMs = 0;

  /** when responses may be created: one at a time, never over the caller */
  private readonly arbiter = new TurnArbiter();
  private readonly tools = new ToolCalls();
  private readonly control = new CallControl();
  /** the call's agent: a stand-in until `agent-resolved` when the deps say it is awaited */
  private config: AgentConfig;
  private keypad: KeypadCollector | null;
  private idle: IdleMonitor | null;
  /** the call's agent config has not arrived yet (SessionDeps.awaitAgent) */
  private awaitingAgent: boolean;
  /** the upstream opened while the agent was awaited: configured once it arrives */
  private upstreamOpenBeforeAgent = false;
  /** keys pressed before the agent arrived: its keypad settings decide what they make */
  private readonly keysBeforeAgent: string[] = [];
  private profileValue: string | null = null;
  /** the caller came back from a transfer: no greeting, whatever the agent */
  private resumed = false;
  /** the greeting is still to be heard: asked for once the session is configured, or at the caller's turn end */
  private greetingOwed: boolean;
  private transferFailedOwed: ResumeContext['transferFailed'] | null = null;
  private keypadCount = 0;
  private endReasonValue: EndReason | null = null;
  private readonly interruptedResponses = new Set<string>();
  private suppressUntilMs = Number.NEGATIVE_INFINITY;
  /** responses created after the last interruption: their audio is an answer to the new turn */
  private readonly freshResponses = new Set<string>();
  private droppedDeltas = 0;

  private readonly outputItems = new Map<string, OutputItem>();
  /** the item whose audio is in the outbound transcoder right now */
  private streamingItem: OutputItem | null = null;
  private readonly playout = new PlayoutTracker();
  private readonly inbound = new InboundTranscoder();
  private readonly outbound = new OutboundTranscoder();
  private readonly fallback = new UpstreamFallback();
  /** an outbound call's answering-machine detection: holds the greeting until the verdict */
  private readonly amd = new AnsweringMachineGate();
  /** a verdict that came before the call's agent, whose voicemail it needs */
  private amdVerdictBeforeAgent: { verdict: AmdVerdict; answeredBy: string } | null = null;

  private turns = 0;
  readonly interruptions: InterruptionRecord[] = [];
  readonly transcript: TranscriptEntry[] = [];
  readonly keypadEntries: KeypadEntry[] = [];

  constructor(
    config: AgentConfig,
    private readonly deps: SessionDeps = {},
  ) {
    this.config = config;
    this.keypad = config.dtmf === null ? null : new KeypadCollector(config.dtmf);
    this.idle = config.idle === null ? null : new IdleMonitor(config.idle);
    this.greetingOwed = config.greeting !== null;
    this.awaitingAgent = deps.awaitAgent === true;
  }

  /** Back from a transfer the target did not take: the conversation goes on where it was. */
  private resume(resume: ResumeContext): void {
    for (const entry of resume.transcript.slice(-MAX_RESEED_ENTRIES)) this.appendTranscript(entry);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: re-seeding an empty transcript sends no item, only a log line
    this.reseedPending = this.transcript.length > 0;
    this.transferFailedOwed = resume.transferFailed;
    this.greetingOwed = false;
    this.resumed = true;
  }

  /**
   * The call's agent is known: it replaces the stand-in before anything was configured with it.
   * If the upstream is already open, the session is configured now.
   */
  private onAgentResolved(agent: AgentConfig, profile: string | null, nowMs: number, out: SessionAction[]): void {
    if (!this.awaitingAgent) {
      log(out, 'warn', 'agent config arrived when none was awaited: ignored', { profile });
      return;
    }
    this.awaitingAgent = false;
    this.config = agent;
    this.profileValue = profile;
    this.keypad = agent.dtmf === null ? null : new KeypadCollector(agent.dtmf);
    this.idle = agent.idle === null ? null : new IdleMonitor(agent.idle);
    this.greetingOwed = !this.resumed && agent.greeting !== null;
    for (const key of this.keysBeforeAgent.splice(0)) this.onKey(key, nowMs, out);
    if (this.upstreamOpenBeforeAgent) {
      // Stryker disable next-line BooleanLiteral: the flag is read only by onAgentResolved, which runs once (awaitingAgent is false afterwards)
      this.upstreamOpenBeforeAgent = false;
      this.onUpstreamOpen(nowMs, out);
    }
    const early = this.amdVerdictBeforeAgent;
    this.amdVerdictBeforeAgent = null;
    if (early !== null) this.applyAmdVerdict(early.verdict, early.answeredBy, nowMs, out);
  }

  /** The profile the call's agent came from, once resolved (null without per-call agents). */
  get profile(): string | null {
    return this.profileValue;
  }

  /** Tool calls of this call, for logs and reports. */
  get toolCalls(): readonly ToolCallRecord[] {
    return this.tools.records;
  }

  /** Where the call is being transferred, once the handoff is under way. */
  get transferTarget(): string | null {
    const r = this.control.inProgress;
    return r?.kind === 'transfer' ? r.to : null;
  }

  get endReason(): EndReason | null {
    return this.endReasonValue;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  get ids(): { callSid: string | null; streamSid: string | null } {
    return { callSid: this.callSid, streamSid: this.streamSid };
  }

  handle(input: SessionInput, nowMs: number): SessionAction[] {
    const out: SessionAction[] = [];
    if (this.ended) return out;
    switch (input.kind) {
      case 'twilio':
        this.onTwilio(input.message, nowMs, out);
        break;
      case 'realtime':
        this.onRealtime(input.event, nowMs, out);
        break;
      case 'twilio-invalid':
        if (input.fatal) this.violation(input.reason, input.detail, out);
        else this.malformed(input.reason, input.detail, out);
        break;
      case 'upstream-open':
        this.onUpstreamOpen(nowMs, out);
        break;
      case 'upstream-closed':
        this.onUpstreamClosed(input.code, input.reason, nowMs, out);
        break;
      case 'twilio-closed':
        // 1009: ws closed the socket for a frame over the size limit, a violation, not a hang-up.
        this.end(
          input.code === 1009 ? 'protocol-violation' : this.control.inProgress?.kind === 'transfer' ? 'transferred' : 'twilio-closed',
          out,
          // Stryker disable next-line ObjectLiteral: these end fields only reach the "call ended" log line
          { closeCode: input.code },
        );
        break;
      case 'deadline':
        this.end('max-duration', out, {});
        break;
      case 'shutdown':
        this.end('shutdown', out, {});
        break;
      case 'timer':
        this.onTimer(input.timer, nowMs, out);
        break;
      case 'tool-result':
        this.onToolResult(input.callId, input.outcome, nowMs, out);
        break;
      case 'transfer-result':
        this.onTransferResult(input.ok, input.detail, out);
        break;
      case 'start-refused':
        // Ended as an unauthorised start is: close code 1008; the shell closes the upstream that
        // was opened meanwhile. Never a REST hang-up: the real call may be live elsewhere.
        // Stryker disable next-line ObjectLiteral,BooleanLiteral: these end fields only reach the "call ended" log line
        this.end('unauthorized', out, { authReason: input.reason, refusedAfterStart: true });
        break;
      case 'agent-resolved':
        this.onAgentResolved(input.agent, input.profile, nowMs, out);
        break;
      case 'amd-result':
        this.onAmdResult(input.answeredBy, nowMs, out);
        break;
      default:
        assertNever(input);
    }
    if (!this.ended) this.afterInput(nowMs, out);
    return out;
  }

  /**
   * Decisions that depend on the whole state rather than on one input: whether a response may
   * be created now, whether a pending hang-up or transfer is due, whether the call went idle.
   */
  private afterInput(nowMs: number, out: SessionAction[]): void {
    if (this.upstream === 'open') {
      const create = this.arbiter.next();
      if (create !== null) out.push({ kind: 'send-realtime', event: create });
    }
    this.checkControl(nowMs, out);
    if (this.ended) return;
    this.resumeParkedUpstream(nowMs, out);
    this.updateIdle(out);
  }

  // ------------------------------------------------------------------ Twilio side

  private onTwilio(msg: TwilioInbound, nowMs: number, out: SessionAction[]): void {
    switch (msg.event) {
      case 'connected':
        return;
      case 'start': {
        if (this.streamSid !== null) {
          // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.violation('second-start', `a second start (streamSid ${msg.start.streamSid.slice(0, 40)})`, out);
          return;
        }
        const format = msg.start.mediaFormat;
        if (format.encoding !== 'audio/x-mulaw' || format.sampleRate !== 8000 || format.channels !== 1) {
          // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.violation('unsupported-media-format', `${format.encoding} ${format.sampleRate} Hz x${format.channels}`.slice(0, 80), out);
          return;
        }
        const auth = this.deps.authorizeStart?.(msg.start, nowMs) ?? { ok: true };
        if (!auth.ok) {
          // Nothing goes upstream: an unauthorised stream must not spend the API key.
          log(out, 'warn', 'stream rejected: start not authorised', { reason: auth.reason, callSid: msg.start.callSid });
          // Stryker disable next-line ObjectLiteral: these end fields only reach the "call ended" log line
          this.end('unauthorized', out, { authReason: auth.reason });
          return;
        }
        this.streamSid = msg.start.streamSid;
        this.callSid = msg.start.callSid;
        // call-started first: it carries the ids the bridge puts on every later log line.
        out.push({
          kind: 'call-started',
          callSid: msg.start.callSid,
          streamSid: msg.start.streamSid,
          customParameters: msg.start.customParameters,
        });
        log(out, 'info', 'call started', { customParameters: Object.keys(msg.start.customParameters) });
        const resume = this.deps.resumeFor?.(msg.start) ?? null;
        if (resume !== null) this.resume(resume);
        if (resume === null && this.deps.amdPending?.(msg.start) === true) {
          this.amd.begin();
          this.arbiter.hold('amd');
          out.push({ kind: 'set-timer', timer: 'amd', delayMs: AMD_WAIT_MAX_MS });
          log(out, 'info', 'answering-machine detection running: the greeting waits for its verdict or the callee', {});
        }
        this.connectUpstream(out);
        this.fallback.begin();
        out.push({ kind: 'set-timer', timer: 'hold', delayMs: HOLD_TONE_AFTER_MS });
        out.push({ kind: 'set-timer', timer: 'connect-deadline', delayMs: FIRST_CONNECT_GIVE_UP_MS });
        return;
      }
      case 'media': {
        if (this.streamSid === null) {
          // Stryker disable next-line StringLiteral: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.malformed('media-before-start', 'media before start', out);
          return;
        }
        if (msg.streamSid !== this.streamSid) {
          // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.violation('wrong-stream-sid', `media for stream ${msg.streamSid.slice(0, 40)}`, out);
          return;
        }
        if (msg.media.track !== 'inbound' && msg.media.track !== 'inbound_track') return;
        // Nothing will hear it: the call is ending with the apology.
        // Stryker disable next-line ConditionalExpression: after giving up the upstream never opens again (onUpstreamOpen returns), so audio buffered meanwhile is never sent: dropping it here only saves work
        if (this.fallback.givingUp) return;
        if (base64ByteLength(msg.media.payload) > MAX_MEDIA_PAYLOAD_BYTES) {
          // Stryker disable next-line StringLiteral: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.malformed('oversized-payload', `media payload over ${MAX_MEDIA_PAYLOAD_BYTES} bytes`, out);
          return;
        }
        this.forwardCallerAudio(msg.media.payload, out);
        return;
      }
      case 'mark': {
        if (this.streamSid === null || msg.streamSid !== this.streamSid) {
          // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.violation('wrong-stream-sid', `mark for stream ${msg.streamSid.slice(0, 40)}`, out);
          return;
        }
        if (msg.mark.name === FAREWELL_MARK && this.fallback.givingUp) {
          // Stryker disable next-line StringLiteral: "how" only reaches the log line
          this.finishGivingUp('apology heard', out);
          return;
        }
        const result = this.playout.onMarkEcho(msg.mark.name, nowMs);
        // Stryker disable next-line ConditionalExpression,EqualityOperator,StringLiteral: the branch only logs
        if (result.kind === 'unknown') log(out, 'debug', 'unknown mark echoed', { name: msg.mark.name });
        return;
      }
      case 'dtmf':
        if (this.streamSid === null || msg.streamSid !== this.streamSid) {
          // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.violation('wrong-stream-sid', `dtmf for stream ${msg.streamSid.slice(0, 40)}`, out);
          return;
        }
        // A key must not cut the apology short (a key barges in): the call is ending anyway.
        if (this.fallback.givingUp) return;
        if (this.awaitingAgent) {
          // Which keypad settings apply is the call's agent's to say: the key waits for it.
          if (this.keysBeforeAgent.length < MAX_KEYS_BEFORE_AGENT) this.keysBeforeAgent.push(msg.dtmf.digit);
          else this.malformed('keys-before-agent', `more than ${MAX_KEYS_BEFORE_AGENT} keys before the agent was known`, out);
          return;
        }
        this.onKey(msg.dtmf.digit, nowMs, out);
        return;
      case 'stop':
        if (this.streamSid !== null && msg.streamSid !== this.streamSid) {
          // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
          this.violation('wrong-stream-sid', `stop for stream ${msg.streamSid.slice(0, 40)}`, out);
          return;
        }
        // A redirected call stops its stream: that is the transfer going through, not a hang-up.
        this.end(this.control.inProgress?.kind === 'transfer' ? 'transferred' : 'twilio-stop', out, {});
        return;
      default:
        assertNever(msg);
    }
  }

  private forwardCallerAudio(mulawBase64: string, out: SessionAction[]): void {
    // Transcode on arrival even while buffering: the resampler's state must see every sample
    // in order, and the buffer then holds exactly what will be sent.
    this.inbound.push(mulawBase64);
    if (this.upstream === 'open') {
      // Whole frames are held until a message's worth: fewer, larger appends (inputAppendMs).
      if (this.inbound.heldMs >= this.config.inputAppendMs) {
        out.push({ kind: 'send-realtime', event: { type: 'input_audio_buffer.append', audio: this.inbound.take() } });
      }
      return;
    }
    const ms = this.inbound.heldMs;
    this.pendingAppends.push(this.inbound.take());
    this.pendingAppendMs += ms;
    while (this.pendingAppendMs > this.config.maxBufferedInboundMs && this.pendingAppends.length > 1) {
      const dropped = this.pendingAppends.shift();
      // Stryker disable next-line ConditionalExpression: the loop runs only while more than one entry is buffered, so shift() never returns undefined
      const droppedMs = dropped === undefined ? 0 : base64ByteLength(dropped) / PCM24K_BYTES_PER_MS;
      this.pendingAppendMs -= droppedMs;
      if (this.droppedInboundMs === 0) {
        log(out, 'warn', 'upstream not open yet: dropping oldest buffered caller audio', {
          maxBufferedInboundMs: this.config.maxBufferedInboundMs,
        });
      }
      // Stryker disable next-line AssignmentOperator: droppedInboundMs only decides whether the drop is logged and what the log line says
      this.droppedInboundMs += droppedMs;
    }
  }

  private onUpstreamOpen(nowMs: number, out: SessionAction[]): void {
    // Given up already: close-upstream crossed this open on the way.
    if (this.fallback.givingUp) return;
    if (this.awaitingAgent) {
      // Configuring now would give the model the stand-in's instructions and voice, which a
      // session cannot take back once it has spoken: wait for the call's agent.
      this.upstreamOpenBeforeAgent = true;
      log(out, 'debug', 'upstream open: waiting for the call\'s agent', {});
      return;
    }
    const first = this.fallback.connected();
    if (first.first) {
      out.push({ kind: 'clear-timer', timer: 'hold' }, { kind: 'clear-timer', timer: 'connect-deadline' });
      // The agent's first words must not queue behind the rest of a hold tone.
      if (first.clearTone && this.streamSid !== null) out.push({ kind: 'send-twilio', message: clearMessage(this.streamSid) });
    }
    this.upstream = 'open';
    this.upstreamOpenedAtMs = nowMs;
    if (this.recovering) out.push({ kind: 'metric', event: { name: 'reconnect', outcome: 'ok' } });
    // Stryker disable next-line BooleanLiteral: after the first open, recovering is read again only after a loss, which sets it to true anyway
    this.recovering = false;
    out.push({ kind: 'send-realtime', event: { type: 'session.update', session: this.sessionConfig() } });
    // Stryker disable next-line ConditionalExpression: re-seeding when not pending only happens on the first open, whose transcript is empty (see reseedPending): nothing is sent
    if (this.reseedPending) this.reseed(out);
    for (const text of this.notesOwed.splice(0)) this.addSystemNote(text, out);
    if (this.transferFailedOwed !== null) {
      const { to, status } = this.transferFailedOwed;
      this.transferFailedOwed = null;
      this.addSystemNote(notes.transferFailed(to, status), out);
      this.arbiter.want({ purpose: 'transfer-failed' });
      log(out, 'info', 'caller back from a failed transfer', { to, status });
    }
    if (this.responseOwed !== null) {
      this.arbiter.want(this.responseOwed);
      log(out, 'info', 'answer re-requested on the new session', { purpose: this.responseOwed.purpose });
      this.responseOwed = null;
    }
    for (const audio of this.pendingAppends) out.push({ kind: 'send-realtime', event: { type: 'input_audio_buffer.append', audio } });
    log(out, 'info', 'upstream open', {
      bufferedMs: Math.round(this.pendingAppendMs),
      droppedMs: Math.round(this.droppedInboundMs),
    });
    this.pendingAppends.length = 0;
    this.pendingAppendMs = 0;
  }

  private connectUpstream(out: SessionAction[]): void {
    const delayMs = UPSTREAM_RETRY_DELAYS_MS[this.upstreamAttempt];
    if (delayMs === undefined) {
      // Stryker disable next-line StringLiteral: "why" only reaches the log line
      this.giveUpUpstream('every attempt failed', out);
      return;
    }
    this.upstreamAttempt += 1;
    // Stryker disable next-line StringLiteral: upstream is only ever compared with "idle" and "open": any other value means connecting
    this.upstream = 'connecting';
    out.push({ kind: 'connect-upstream', attempt: this.upstreamAttempt, delayMs });
  }

  /**
   * No model will answer: the caller hears an apology (after any audio still queued is cleared),
   * then the call ends, once its mark is echoed or its length and a grace have passed.
   */
  private giveUpUpstream(why: string, out: SessionAction[]): void {
    if (!this.fallback.giveUp()) return;
    log(out, 'error', 'upstream unreachable: giving up', { attempts: this.upstreamAttempt, why });
    if (this.recovering) out.push({ kind: 'metric', event: { name: 'reconnect', outcome: 'failed' } });
    this.upstream = 'idle';
    out.push({ kind: 'close-upstream' });
    out.push({ kind: 'clear-timer', timer: 'hold' }, { kind: 'clear-timer', timer: 'connect-deadline' });
    const audio = this.deps.fallbackAudio;
    const streamSid = this.streamSid;
    // Stryker disable next-line ConditionalExpression: giving up needs a started call (the timers and the upstream exist only after start), so streamSid is never null here
    if (audio === undefined || streamSid === null) {
      // Stryker disable next-line StringLiteral: "how" only reaches the log line
      this.finishGivingUp('no apology to play', out);
      return;
    }
    // Whatever is queued (a hold tone, the rest of an answer) goes: the apology is the last word.
    out.push({ kind: 'send-twilio', message: clearMessage(streamSid) });
    this.playout.newGeneration();
    this.outbound.reset();
    this.streamingItem = null;
    out.push({ kind: 'send-twilio', message: mediaMessage(streamSid, audio.apology) });
    out.push({ kind: 'send-twilio', message: markMessage(streamSid, FAREWELL_MARK) });
    out.push({ kind: 'set-timer', timer: 'farewell', delayMs: Math.ceil(audio.apologyMs) + FAREWELL_GRACE_MS });
  }

  private finishGivingUp(how: string, out: SessionAction[]): void {
    log(out, 'info', 'ending the call without a model', { how });
    out.push({ kind: 'clear-timer', timer: 'farewell' });
    // Stryker disable next-line ConditionalExpression: giving up needs a started call, so callSid is never null here
    if (this.callSid !== null) out.push({ kind: 'hangup-call', callSid: this.callSid });
    // Stryker disable next-line ObjectLiteral: these end fields only reach the "call ended" log line
    this.end('upstream-failed', out, { attempts: this.upstreamAttempt });
  }

  private onUpstreamClosed(code: number, reason: string, nowMs: number, out: SessionAction[]): void {
    if (this.upstream === 'idle') return;
    this.upstreamOpenBeforeAgent = false;
    const wasOpen = this.upstream === 'open';
    if (wasOpen) {
      // Stryker disable next-line AssignmentOperator: the reconnect count only reaches log lines
      this.reconnects += 1;
      this.recovering = true;
      if (nowMs - this.upstreamOpenedAtMs >= HEALTHY_SESSION_MS) this.upstreamAttempt = 0;
      if (this.controlAwaitsOnlyPlayback()) {
        this.parkUpstream(out, { closeCode: code, closeReason: reason });
        return;
      }
      this.forgetUpstreamState(nowMs, out);
      log(out, 'warn', 'upstream lost: reconnecting', { closeCode: code, closeReason: reason, reconnects: this.reconnects });
    } else {
      log(out, 'warn', 'upstream connection failed', { closeCode: code, closeReason: reason, attempt: this.upstreamAttempt });
    }
    this.connectUpstream(out);
  }

  /**
   * A hang-up or transfer is decided and only waits for the caller to hear the last words, which
   * are all in Twilio's buffer already (nothing generating or owed, no tool running), or the
   * transfer is being carried out.
   */
  private controlAwaitsOnlyPlayback(): boolean {
    if (!this.arbiter.quiet || this.responseOwed !== null || this.tools.running > 0) return false;
    return this.control.pending !== null || this.control.inProgress !== null;
  }

  /**
   * The upstream died during the goodbye or the handoff sentence. That sentence is not cut: it is
   * already in Twilio's buffer, and the control is carried out when its mark comes back (or by
   * the control timer), exactly as without the loss. No reconnect is started: ending the call
   * needs no model, and a transfer that goes through needs none either. A new session would be
   * configured and re-seeded for nothing on nearly every such call, while the rare call that
   * goes on (a key calls the control off, the redirect is refused) reconnects at that moment,
   * with the first attempt immediate (resumeParkedUpstream). Nothing is sent upstream meanwhile.
   */
  private parkUpstream(out: SessionAction[], fields: Record<string, unknown>): void {
    this.upstream = 'idle';
    this.upstreamParked = true;
    // The dead session's protocol state goes; its items stay until playback stops, to account
    // for what the caller hears of them (forgetUpstreamState settles them then).
    this.responseOwed = this.arbiter.reset((id) => this.interruptedResponses.has(id)).owed;
    this.tools.onUpstreamLost();
    this.interruptedResponses.clear();
    this.freshResponses.clear();
    this.reseedPending = true;
    log(out, 'warn', 'upstream lost while the last words play: carrying out the call control without a model', { ...fields, reconnects: this.reconnects });
  }

  /** A parked upstream is needed again once the conversation goes on: the control is off or failed, or a response is wanted. */
  private resumeParkedUpstream(nowMs: number, out: SessionAction[]): void {
    if (!this.upstreamParked) return;
    const controlOpen = this.control.pending !== null || this.control.inProgress !== null;
    if (controlOpen && this.arbiter.quiet) return;
    this.forgetUpstreamState(nowMs, out);
    log(out, 'info', 'the conversation goes on: reconnecting the upstream', {});
    this.connectUpstream(out);
  }

  /**
   * The upstream session is gone with everything it knew. The answer it was giving stops here:
   * Twilio's buffer is cleared, so what the caller heard is known exactly, and the re-seeded
   * conversation holds the agent's words up to that point and no further. Its items belong to
   * the dead session; nothing may reference them upstream again.
   */
  private forgetUpstreamState(nowMs: number, out: SessionAction[]): void {
    const heard = new Map(this.playout.heardItems(nowMs).map((h) => [h.itemId, h]));
    for (const item of this.outputItems.values()) {
      // Stryker disable next-line ConditionalExpression: an item is settled only when its response was cancelled or had finished, so none of it is sent afterwards: it is either heard in full or deleted unheard, whose heard share is already nothing
      if (item.settled !== null) continue;
      const share = heardShare(item, heard.get(item.itemId));
      this.settle(item, share.full ? 'full' : share.audioEndMs);
    }
    this.outputItems.clear();
    this.upstreamParked = false;
    if (this.playout.isAudible() && this.streamSid !== null) out.push({ kind: 'send-twilio', message: clearMessage(this.streamSid) });
    this.playout.newGeneration();
    this.outbound.reset();
    this.streamingItem = null;
    // Owed: an answer the caller is waiting for. An interrupted one is not: the caller moved on.
    this.responseOwed = this.arbiter.reset((id) => this.interruptedResponses.has(id)).owed;
    this.tools.onUpstreamLost();
    this.interruptedResponses.clear();
    this.freshResponses.clear();
    this.reseedPending = true;
  }

  /** Give a new upstream session the conversation so far, as text, both sides. */
  private reseed(out: SessionAction[]): void {
    // Stryker disable next-line BooleanLiteral: the next open always follows a loss, which sets reseedPending again
    this.reseedPending = false;
    const entries = this.transcript.filter((t) => t.text !== '').slice(-MAX_RESEED_ENTRIES);
    for (const entry of entries) {
      const item: MessageItem =
        entry.role === 'user'
          ? { type: 'message', role: 'user', content: [{ type: 'input_text', text: entry.text }] }
          : { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: entry.text }] };
      out.push({ kind: 'send-realtime', event: { type: 'conversation.item.create', item } });
    }
    log(out, 'info', 'conversation re-seeded', { entries: entries.length });
  }

  /** A frame to ignore: logged with its reason, loudly only for the first few of each kind. */
  private malformed(reason: string, detail: string, out: SessionAction[]): void {
    const count = (this.malformedCounts.get(reason) ?? 0) + 1;
    this.malformedCounts.set(reason, count);
    log(out, count <= WARN_LOGS_PER_REASON ? 'warn' : 'debug', 'ignored invalid twilio frame', { reason, detail, count });
  }

  /** Something Twilio never does: the peer is not (a working) Twilio, so the stream is closed. */
  private violation(reason: string, detail: string, out: SessionAction[]): void {
    log(out, 'warn', 'protocol violation: closing stream', { reason, detail });
    // Stryker disable next-line ObjectLiteral: these end fields only reach the "call ended" log line
    this.end('protocol-violation', out, { violation: reason });
  }

  sessionConfig(): RealtimeSessionConfig {
    const c = this.config;
    return {
      type: 'realtime',
      output_modalities: ['audio'],
      instructions: c.instructions,
      tools: realtimeTools(c.tools),
      tool_choice: 'auto',
      audio: {
        input: {
          format: { type: 'audio/pcm', rate: 24000 },
          transcription: c.transcriptionModel === null ? null : { model: c.transcriptionModel },
          noise_reduction: c.noiseReduction === null ? null : { type: c.noiseReduction },
          turn_detection: {
            type: 'server_vad',
            threshold: c.turnDetection.threshold,
            prefix_padding_ms: c.turnDetection.prefixPaddingMs,
            silence_duration_ms: Math.max(500, c.turnDetection.silenceDurationMs),
            // Turn-taking is ours: the server's own create/cancel races our routine.
            create_response: false,
            interrupt_response: false,
          },
        },
        output: { format: { type: 'audio/pcm', rate: 24000 }, voice: c.voice },
      },
    };
  }

  // ------------------------------------------------------------------ Realtime side

  private onRealtime(ev: RealtimeServerEvent | OtherServerEvent, nowMs: number, out: SessionAction[]): void {
    switch (ev.type) {
      case 'input_audio_buffer.speech_started':
        this.onSpeechStarted(nowMs, out, ev.audio_start_ms);
        return;
      case 'input_audio_buffer.speech_stopped':
        this.onSpeechStopped(nowMs, out, ev.audio_end_ms);
        return;
      case 'response.created':
        this.onResponseCreated(ev.response.id, nowMs, out);
        return;
      case 'response.output_item.added':
        if (ev.item.type === 'function_call') {
          this.tools.onItemAdded(ev.item, ev.response_id);
          return;
        }
        if (ev.item.type === 'message' && ev.item.role === 'assistant' && !this.outputItems.has(ev.item.id)) {
          this.outputItems.set(ev.item.id, this.newOutputItem(ev.item.id, ev.response_id, 0));
        }
        return;
      case 'response.output_audio.delta':
        this.onAudioDelta(ev, nowMs, out);
        return;
      case 'response.output_audio.done': {
        const item = this.outputItems.get(ev.item_id);
        if (item !== undefined) item.audioDone = true;
        if (this.streamingItem !== null && this.streamingItem.itemId === ev.item_id) this.finishStreamingItem(nowMs, out);
        return;
      }
      case 'response.output_audio_transcript.done': {
        const item = this.outputItems.get(ev.item_id);
        if (item === undefined) {
          this.setTranscript('assistant', ev.item_id, ev.transcript);
          return;
        }
        item.transcript = ev.transcript;
        if (item.settled === null) this.setTranscript('assistant', item.itemId, item.transcript);
        else this.recordHeardTranscript(item);
        return;
      }
      case 'conversation.item.input_audio_transcription.completed':
        this.setTranscript('user', ev.item_id, ev.transcript);
        log(out, 'debug', 'caller transcript', { itemId: ev.item_id, transcript: ev.transcript });
        return;
      case 'response.done':
        this.onResponseDone(ev, nowMs, out);
        return;
      case 'error': {
        const { code, message } = ev.error;
        out.push({ kind: 'metric', event: { name: 'upstream-error', code } });
        if (code === 'response_cancel_not_active') {
          // A cancel raced the response's own end: expected noise, never a reason to act.
          log(out, 'info', 'realtime error (benign)', { code, message });
          return;
        }
        log(out, 'warn', 'realtime error', { code, message, type: ev.error.type });
        // The server still runs a response we thought was over: the arbiter asks again after its
        // done. Any other rejection leaves this turn unanswered; the next turn asks afresh.
        this.arbiter.onError(code, ev.error.event_id);
        return;
      }
      case 'conversation.item.truncated':
        log(out, 'debug', 'item truncated', { itemId: ev.item_id, audioEndMs: ev.audio_end_ms });
        return;
      case 'response.output_audio_transcript.delta': {
        // Kept as it grows: if the upstream dies mid-answer, the words so far are all there is.
        const item = this.outputItems.get(ev.item_id);
        if (item === undefined) return;
        if (item.settled === null) item.transcript += ev.delta;
        else if (item.settled.full) {
          // Heard in full before its words caught up: they are all heard.
          item.transcript += ev.delta;
          this.recordHeardTranscript(item);
        }
        return;
      }
      case 'input_audio_buffer.committed':
        // The caller's words take their place in the conversation now, even if the transcription
        // arrives after the answer's: a re-seeded conversation must keep question before answer.
        if (this.config.transcriptionModel !== null && !this.transcript.some((t) => t.itemId === ev.item_id)) {
          this.appendTranscript({ role: 'user', itemId: ev.item_id, text: '' });
        }
        return;
      case 'response.output_item.done':
        if (ev.item.type === 'function_call') {
          const record = this.tools.onItemDone(ev.item, ev.response_id, nowMs);
          if (record !== null) this.runToolCall(record, out);
          else if (ev.item.status !== 'completed') log(out, 'info', 'function call not run: its response did not complete it', { name: ev.item.name, callId: ev.item.call_id, status: ev.item.status ?? null });
        }
        return;
      case 'session.updated':
        // Configured: the agent may speak first. A caller already talking is not spoken over:
        // the arbiter holds the greeting until their turn ends.
        if (this.greetingOwed && this.config.greeting !== null) this.arbiter.want(greetingRequest(this.config.greeting));
        return;
      case 'session.created':
      case 'input_audio_buffer.cleared':
      case 'conversation.item.added':
      case 'conversation.item.done':
      case 'conversation.item.created':
      case 'conversation.item.deleted':
      case 'response.function_call_arguments.delta':
      case 'response.function_call_arguments.done':
      case 'response.content_part.added':
      case 'response.content_part.done':
      case 'rate_limits.updated':
      case 'other':
        return;
      default:
        assertNever(ev);
    }
  }

  private onSpeechStopped(nowMs: number, out: SessionAction[], audioEndMs: number): void {
    // A machine's recording or beep is no turn to answer: the voicemail goes on.
    if (this.amd.machine) return;
    this.arbiter.callerStopped();
    this.callerTurnEnded(nowMs);
    // Never two responses at once: the arbiter asks right after the current one's response.done.
    log(out, 'info', 'caller turn ended', { turn: this.turns, audioEndMs, waitingFor: this.arbiter.activeId() });
  }

  /** A spoken turn or a keypad entry is complete: it wants an answer (the greeting, if still owed). */
  private callerTurnEnded(nowMs: number): void {
    this.turnEndedAtMs = nowMs;
    // Stryker disable next-line AssignmentOperator: the turn count only reaches log lines
    this.turns += 1;
    const greeting = this.config.greeting;
    this.arbiter.want(this.greetingOwed && greeting !== null ? greetingRequest(greeting) : { purpose: 'answer' });
  }

  private onResponseCreated(id: string, nowMs: number, out: SessionAction[]): void {
    const { purpose, cancel: wasCancelRequested } = this.arbiter.onCreated(id, nowMs);
    // A greeting cancelled before it began is still owed (the barge-in kept it so).
    if (purpose === 'greeting' && !wasCancelRequested) this.greetingOwed = false;
    // Stryker disable next-line ConditionalExpression: a response cancelled on creation is in interruptedResponses, whose deltas are dropped whether or not it counts as fresh
    if (!wasCancelRequested) this.freshResponses.add(id);
    if (wasCancelRequested) {
      // The caller barged in before we knew this response's id.
      this.interruptedResponses.add(id);
      out.push({ kind: 'send-realtime', event: { type: 'response.cancel', response_id: id } });
      log(out, 'info', 'response cancelled on creation', { responseId: id });
    }
  }

  private onResponseDone(ev: ResponseDoneEvent, nowMs: number, out: SessionAction[]): void {
    const { id, status } = ev.response;
    const state = this.arbiter.state;
    // Stryker disable next-line ConditionalExpression,LogicalOperator: arbiter.onDone checks the phase and id itself; the branch otherwise only logs and resets a logged counter
    if (state.phase === 'active' && state.id === id) {
      log(out, 'info', 'response done', {
        responseId: id,
        purpose: state.purpose,
        status,
        reason: ev.response.status_details?.reason ?? null,
        durationMs: nowMs - state.startedAtMs,
        interrupted: this.interruptedResponses.has(id),
        droppedDeltas: this.droppedDeltas,
      });
      this.arbiter.onDone(id);
      this.droppedDeltas = 0;
    } else if (state.phase === 'requested') {
      // A done for an older response while ours is being created: nothing to change.
      log(out, 'debug', 'response done for a response not tracked', { responseId: id, status });
    }
    this.settleFunctionCalls(ev, nowMs, out);
    // A response that ended without output_audio.done (failed, incomplete) still owes its tail.
    if (this.streamingItem !== null && this.streamingItem.responseId === id) this.finishStreamingItem(nowMs, out);
    if (this.interruptedResponses.has(id)) this.deleteUnheardItems(ev, out);
    this.interruptedResponses.delete(id);
    this.freshResponses.delete(id);
    this.pruneItems(id);
  }

  /**
   * Calls listed in the response that never reached their own `output_item.done` run now if
   * completed; calls that will never run leave the conversation, so the model never sees a call
   * without an output.
   */
  private settleFunctionCalls(ev: ResponseDoneEvent, nowMs: number, out: SessionAction[]): void {
    for (const item of ev.response.output ?? []) {
      if (item.type !== 'function_call' || item.id === undefined) continue;
      const record = this.tools.onItemDone({ ...item, id: item.id }, ev.response.id, nowMs);
      if (record !== null) this.runToolCall(record, out);
    }
    const dropped = this.tools.onResponseDone(ev.response.id);
    for (const itemId of dropped) out.push({ kind: 'send-realtime', event: { type: 'conversation.item.delete', item_id: itemId } });
    // Stryker disable next-line ConditionalExpression,EqualityOperator: the branch only logs
    if (dropped.length > 0) log(out, 'info', 'function calls of an unfinished response removed', { responseId: ev.response.id, status: ev.response.status, items: dropped });
  }

  /**
   * An interrupted response is over: every item of it the caller heard nothing of leaves the
   * conversation now, including items the server added after our cancel was sent. Deleting
   * earlier would race the generation of those very items.
   */
  private deleteUnheardItems(ev: ResponseDoneEvent, out: SessionAction[]): void {
    const ids = new Set<string>();
    for (const item of this.outputItems.values()) if (item.responseId === ev.response.id) ids.add(item.itemId);
    for (const item of ev.response.output ?? []) if (item.id !== undefined && item.type === 'message' && item.role === 'assistant') ids.add(item.id);
    // Stryker disable next-line ArrayDeclaration: the list only reaches the log line
    const deleted: string[] = [];
    for (const itemId of ids) {
      const item = this.outputItems.get(itemId);
      if (item !== undefined && item.settled !== null && !item.deleteWhenDone) continue;
      out.push({ kind: 'send-realtime', event: { type: 'conversation.item.delete', item_id: itemId } });
      deleted.push(itemId);
      // The model forgets it, and so does the transcript: none of its words were heard.
      if (item !== undefined) {
        this.settle(item, 0);
        // Stryker disable next-line BooleanLiteral: pruneItems of this same response drops the item right after, so the flag is never read again
        item.deleteWhenDone = false;
      } else {
        this.setTranscript('assistant', itemId, '');
      }
    }
    // Stryker disable next-line ConditionalExpression,EqualityOperator: the branch only logs
    if (deleted.length > 0) log(out, 'info', 'unheard items deleted', { responseId: ev.response.id, deleted });
  }

  /**
   * An item the server adds to a response we cancelled is never played (its deltas are dropped):
   * it is settled as unheard from the start, keeps no words, and is deleted with its response.
   */
  private newOutputItem(itemId: string, responseId: string, contentIndex: number): OutputItem {
    const unheard = this.interruptedResponses.has(responseId);
    return {
      itemId,
      responseId,
      contentIndex,
      producedBytes: 0,
      audioDone: false,
      transcript: '',
      settled: unheard ? { audioEndMs: 0, full: false } : null,
      deleteWhenDone: unheard,
      sentMs: 0,
    };
  }

  private onAudioDelta(ev: OutputAudioDeltaEvent, nowMs: number, out: SessionAction[]): void {
    let item = this.outputItems.get(ev.item_id);
    if (item === undefined) {
      item = this.newOutputItem(ev.item_id, ev.response_id, ev.content_index);
      this.outputItems.set(ev.item_id, item);
    }
    item.contentIndex = ev.content_index;
    item.producedBytes += base64ByteLength(ev.delta);
    // Within the window after a barge-in, only an answer to the new turn may play: anything
    // else is late audio from before the interruption.
    const suppressed = nowMs < this.suppressUntilMs && !this.freshResponses.has(ev.response_id);
    if (this.interruptedResponses.has(ev.response_id) || suppressed || this.streamSid === null) {
      // Stryker disable next-line AssignmentOperator: the dropped-delta count only reaches log lines
      this.droppedDeltas += 1;
      return;
    }
    if (this.streamingItem !== null && this.streamingItem.itemId !== item.itemId) this.finishStreamingItem(nowMs, out);
    this.streamingItem = item;
    const streamSid = this.streamSid;
    const current = item;
    this.outbound.push(ev.delta);
    this.sendPending(streamSid, current, nowMs, out);
    // Close every delta with a mark: if generation stalls here and Twilio's buffer runs dry, the
    // echo proves it, and playback restarts from the next audio instead of being extrapolated.
    if (this.playout.unmarkedMs() > 0) this.sendMark(streamSid, out);
  }

  /**
   * Sends all encoded audio, one media message per stretch between marks: a mark falls every
   * `markIntervalMs` of audio, exactly, so the heard position is as precise as with 20 ms frames
   * at a fraction of the messages.
   */
  private sendPending(streamSid: string, item: OutputItem, nowMs: number, out: SessionAction[]): void {
    const markEveryBytes = this.config.markIntervalMs * MULAW_BYTES_PER_MS;
    while (this.outbound.pendingBytes > 0) {
      const room = markEveryBytes - Math.round(this.playout.unmarkedMs() * MULAW_BYTES_PER_MS);
      if (room <= 0) {
        this.sendMark(streamSid, out);
        continue;
      }
      this.sendMedia(streamSid, item, this.outbound.take(room), nowMs, out);
    }
    if (this.playout.unmarkedMs() >= this.config.markIntervalMs) this.sendMark(streamSid, out);
  }

  private sendMedia(streamSid: string, item: OutputItem, payload: string, nowMs: number, out: SessionAction[]): void {
    out.push({ kind: 'send-twilio', message: mediaMessage(streamSid, payload) });
    if (this.turnEndedAtMs !== null) {
      out.push({ kind: 'metric', event: { name: 'first-audio', latencyMs: nowMs - this.turnEndedAtMs } });
      this.turnEndedAtMs = null;
    }
    const ms = base64ByteLength(payload) / MULAW_BYTES_PER_MS;
    item.sentMs += ms;
    this.playout.recordSent(item, ms, nowMs);
  }

  private sendMark(streamSid: string, out: SessionAction[]): void {
    const mark = this.playout.createMark();
    out.push({ kind: 'send-twilio', message: markMessage(streamSid, mark.name) });
  }

  /** End of an item's audio: flush the partial frame and mark the end so we learn when it played. */
  private finishStreamingItem(nowMs: number, out: SessionAction[]): void {
    const item = this.streamingItem;
    const streamSid = this.streamSid;
    this.streamingItem = null;
    // Stryker disable next-line ConditionalExpression,LogicalOperator: every caller checks streamingItem is non-null first, and audio is streamed only after start (streamSid set)
    if (item === null || streamSid === null) return;
    this.outbound.flush();
    this.sendPending(streamSid, item, nowMs, out);
    if (this.playout.unmarkedMs() > 0) this.sendMark(streamSid, out);
  }

  // ------------------------------------------------------------------ interruption

  private onSpeechStarted(nowMs: number, out: SessionAction[], audioStartMs: number): void {
    if (this.amd.machine) {
      log(out, 'debug', 'speech on an answering machine\'s line ignored: the voicemail goes on', { audioStartMs });
      return;
    }
    // A person says "Hello?" before the detection decides: they are answered at their turn's end.
    // Stryker disable next-line ConditionalExpression: releasing the amd hold when it is not held changes nothing; the branch otherwise only logs
    if (this.amd.calleeSpoke()) {
      this.arbiter.release('amd');
      log(out, 'info', 'callee spoke during answering-machine detection: answering them', { audioStartMs });
    }
    // The caller is talking again: a reply queued for the end of their turn must wait for it.
    this.arbiter.callerStarted();
    this.idle?.callerActive();
    this.turnEndedAtMs = null;
    // Stryker disable next-line BooleanLiteral: bargeIn's result only picks a log line
    if (!this.bargeIn(nowMs, out)) log(out, 'debug', 'caller speech started', { audioStartMs });
  }

  /** The caller took the floor (speech or a key): interrupt the agent if it is heard or generating. */
  private bargeIn(nowMs: number, out: SessionAction[]): boolean {
    const { off, timer } = this.control.callOff();
    this.applyControlTimer(timer, out);
    if (off !== null) {
      this.addSystemNote(notes.controlCalledOff(off.kind), out);
      log(out, 'info', off.kind === 'end' ? 'call end called off: the caller spoke' : 'transfer called off: the caller spoke', {});
    }
    const audible = this.playout.isAudible();
    const r = this.arbiter.state;
    // A response already being cancelled needs nothing more; a second barge-in on silence is no barge-in.
    const needsCancel = (r.phase === 'active' && !this.interruptedResponses.has(r.id)) || (r.phase === 'requested' && !r.cancelOnCreated);
    if (!audible && !needsCancel) return false;
    this.interrupt(nowMs, out);
    // Stryker disable next-line BooleanLiteral: bargeIn's result only picks a log line
    return true;
  }

  private interrupt(nowMs: number, out: SessionAction[]): void {
    const streamSid = this.streamSid;
    const record: InterruptionRecord = {
      atMs: nowMs,
      responseId: null,
      cancelSent: false,
      truncated: [],
      deleted: [],
      heardMs: Math.floor(this.playout.playedMs(nowMs)),
      sentMs: Math.floor(this.playout.sentMs),
    };

    const r = this.arbiter.state;
    if (r.phase === 'active') {
      record.responseId = r.id;
      if (!this.interruptedResponses.has(r.id)) {
        this.interruptedResponses.add(r.id);
        out.push({ kind: 'send-realtime', event: { type: 'response.cancel', response_id: r.id } });
        record.cancelSent = true;
      }
    } else if (r.phase === 'requested') {
      this.arbiter.cancelWhenCreated();
    }
    // A greeting cut off before a word of it was heard is still owed: it comes at the turn's end.
    const greetingCut = (r.phase === 'active' || r.phase === 'requested') && r.purpose === 'greeting';

    // Make the conversation match what the caller heard: cut the item being heard at the heard
    // position, remove items the caller never heard anything of.
    const heard = new Map(this.playout.heardItems(nowMs).map((h) => [h.itemId, h]));
    const candidates = new Map<string, OutputItem>();
    for (const h of heard.values()) {
      const item = this.outputItems.get(h.itemId);
      // Stryker disable next-line ConditionalExpression: an item playout still tracks is never pruned from outputItems (pruneItems keeps playing items; both are reset together on upstream loss)
      if (item !== undefined) candidates.set(h.itemId, item);
    }
    // Every item of the interrupted response: those that never reached Twilio were heard not at
    // all, and those that played to their end (no longer tracked by playout) were heard in full.
    for (const item of this.outputItems.values()) if (this.interruptedResponses.has(item.responseId)) candidates.set(item.itemId, item);
    // The items of a session lost while the call was ending (parkUpstream) are gone with it:
    // nothing may reference them upstream; the next session is seeded with the words heard.
    const itemsLive = this.upstream === 'open';

    for (const item of candidates.values()) {
      if (item.settled !== null) continue;
      const share = heardShare(item, heard.get(item.itemId));
      // Heard to its end: the conversation already matches, and it must stay as it is (its
      // response's done must not take it for an item added after the cancel).
      if (share.full) {
        this.settle(item, 'full');
        continue;
      }
      const { audioEndMs } = share;
      if (!itemsLive) {
        this.settle(item, audioEndMs);
        continue;
      }
      if (audioEndMs >= 1) {
        out.push({
          kind: 'send-realtime',
          event: { type: 'conversation.item.truncate', item_id: item.itemId, content_index: item.contentIndex, audio_end_ms: audioEndMs },
        });
        record.truncated.push({ itemId: item.itemId, audioEndMs, sentMs: Math.floor(share.sentMs) });
      } else if (this.interruptedResponses.has(item.responseId)) {
        // Truncating at 0 is rejected for items without audio; deleting an item its response is
        // still generating races the generation. Delete it when the response is done.
        item.deleteWhenDone = true;
        record.deleted.push(item.itemId);
      } else {
        out.push({ kind: 'send-realtime', event: { type: 'conversation.item.delete', item_id: item.itemId } });
        record.deleted.push(item.itemId);
      }
      this.settle(item, audioEndMs);
    }

    // Stryker disable next-line ConditionalExpression: an interruption needs caller speech, a key or a verdict, all of which come only after start: streamSid is set
    if (streamSid !== null) out.push({ kind: 'send-twilio', message: clearMessage(streamSid) });
    this.playout.newGeneration();
    this.outbound.reset();
    this.streamingItem = null;
    this.suppressUntilMs = nowMs + this.config.suppressDeltasMs;
    this.freshResponses.clear();
    if (greetingCut && record.heardMs < 1) this.greetingOwed = true;
    this.interruptions.push(record);
    out.push({ kind: 'metric', event: { name: 'interruption', truncatedMs: record.truncated[0]?.audioEndMs ?? null, cancelSent: record.cancelSent } });
    if (this.interruptions.length > MAX_INTERRUPTION_RECORDS) this.interruptions.shift();
    log(out, 'info', 'interruption', {
      responseId: record.responseId,
      cancelSent: record.cancelSent,
      heardMs: record.heardMs,
      sentMs: record.sentMs,
      truncated: record.truncated,
      deleted: record.deleted,
    });
  }

  /**
   * Keep the heard share of an interrupted item's words, for logs and for re-seeding a new
   * session. Words are assumed evenly spread over the audio: an estimate, which is all the
   * transcript offers.
   */
  private recordHeardTranscript(item: OutputItem): void {
    if (item.settled === null) return;
    if (item.settled.full) {
      this.setTranscript('assistant', item.itemId, item.transcript);
      return;
    }
    const producedMs = item.producedBytes / PCM24K_BYTES_PER_MS;
    // Stryker disable next-line Regex: splitting on single whitespace and dropping the empty strings gives the same words
    const words = item.transcript.split(/\s+/).filter((w) => w !== '');
    // No audio produced: none of it was heard, so none of its words are kept.
    const heardShareOfAudio = producedMs > 0 ? item.settled.audioEndMs / producedMs : 0;
    const kept = words.slice(0, Math.floor(words.length * heardShareOfAudio)).join(' ');
    this.setTranscript('assistant', item.itemId, kept);
  }

  /**
   * Playback of an item is over as far as the conversation goes: cut at `heard` ms (0: deleted),
   * or heard in full. Its transcript keeps the heard share of its words from now on.
   */
  private settle(item: OutputItem, heard: number | 'full'): void {
    item.settled = heard === 'full' ? { audioEndMs: Math.floor(item.producedBytes / PCM24K_BYTES_PER_MS), full: true } : { audioEndMs: heard, full: false };
    this.recordHeardTranscript(item);
  }

  private setTranscript(role: TranscriptEntry['role'], itemId: string, text: string): void {
    const index = this.transcript.findIndex((t) => t.itemId === itemId);
    if (text === '') {
      if (index >= 0) this.transcript.splice(index, 1);
      return;
    }
    if (index >= 0) this.transcript[index] = { role, itemId, text };
    else this.appendTranscript({ role, itemId, text });
  }

  private appendTranscript(entry: TranscriptEntry): void {
    this.transcript.push(entry);
    if (this.transcript.length > MAX_TRANSCRIPT_ENTRIES) this.transcript.shift();
  }

  /** Forget items that can no longer be interrupted: settled, or done and no longer playing. */
  private pruneItems(doneResponseId: string): void {
    const playing = this.playout.trackedItemIds();
    for (const [itemId, item] of this.outputItems) {
      const finished = item.responseId === doneResponseId || item.audioDone;
      if (finished && (item.settled !== null || !playing.has(itemId))) this.outputItems.delete(itemId);
    }
  }


  // ------------------------------------------------------------------ keypad

  private onKey(key: string, nowMs: number, out: SessionAction[]): void {
    if (this.keypad === null) {
      log(out, 'debug', 'keypad key ignored: dtmf is off', { digit: key.slice(0, 4) });
      return;
    }
    const result = this.keypad.press(key);
    if (result.kind === 'invalid') {
      // Stryker disable next-line StringLiteral,MethodExpression: the reason and detail only reach the log line (and pick its warn/debug level); no behaviour reads them
      this.malformed('invalid-dtmf-digit', `dtmf digit ${JSON.stringify(key.slice(0, 8))}`, out);
      return;
    }
    // A key is the caller taking the floor, like speech: the agent stops and listens.
    this.idle?.callerActive();
    this.turnEndedAtMs = null;
    this.bargeIn(nowMs, out);
    if (result.kind === 'collecting') {
      this.arbiter.hold('keypad');
      out.push({ kind: 'set-timer', timer: 'keypad', delayMs: result.timeoutMs });
      return;
    }
    out.push({ kind: 'clear-timer', timer: 'keypad' });
    this.keypadEntry(result.digits, result.ended, nowMs, out);
  }

  /** The entry goes to the model as a user message and is answered under the same turn rules. */
  private keypadEntry(digits: string, ended: 'terminator' | 'max-digits' | 'pause', nowMs: number, out: SessionAction[]): void {
    this.arbiter.release('keypad');
    // Stryker disable next-line AssignmentOperator: the count only makes the keypad entry item ids unique, which counting down does as well
    this.keypadCount += 1;
    const text = notes.keypadEntry(digits);
    // Stryker disable next-line StringLiteral: keypad entry ids are never looked up: server events carry server item ids only
    this.appendTranscript({ role: 'user', itemId: `keypad_${this.keypadCount}`, text });
    if (this.upstream === 'open') {
      out.push({
        kind: 'send-realtime',
        event: { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } },
      });
    } else {
      // No session to tell now (connecting, or reconnecting after a loss): the next one is
      // seeded with the transcript, which holds the entry.
      this.reseedPending = true;
    }
    this.keypadEntries.push({ atMs: nowMs, digits });
    if (this.keypadEntries.length > MAX_KEYPAD_ENTRIES) this.keypadEntries.shift();
    log(out, 'info', 'keypad entry', { digits, ended });
    this.callerTurnEnded(nowMs);
  }

  // ------------------------------------------------------------------ tools

  private runToolCall(record: ToolCallRecord, out: SessionAction[]): void {
    log(out, 'info', 'tool call', { name: record.name, callId: record.callId, arguments: record.arguments.slice(0, 500) });
    const dispatch = dispatchToolCall(record.name, record.arguments, this.config.tools);
    if (dispatch.kind === 'run-http') {
      // The answer waits for every output of the response: the arbiter holds creates meanwhile.
      this.arbiter.hold('tools');
      out.push({ kind: 'run-tool', callId: record.callId, tool: dispatch.tool, arguments: dispatch.arguments });
      return;
    }
    if (dispatch.control !== null) this.control.ask(dispatch.control);
    this.answerToolCall(record, dispatch.outcome, record.startedAtMs ?? 0, out);
  }

  private onToolResult(callId: string, outcome: ToolOutcome, nowMs: number, out: SessionAction[]): void {
    const record = this.tools.toolCall(callId);
    // Stryker disable next-line ConditionalExpression: tools.onResult ignores a result for a call that is not running, so answerToolCall returns at once
    if (record === null || record.state !== 'running') {
      log(out, 'warn', 'tool result for a call not running: dropped', { callId });
      return;
    }
    this.answerToolCall(record, outcome, nowMs, out);
  }

  /**
   * Every call that ran is answered, exactly once, even when the caller barged in meanwhile: the
   * model must never see a call without its output. The answer itself waits for the turn rules.
   */
  private answerToolCall(record: ToolCallRecord, outcome: ToolOutcome, nowMs: number, out: SessionAction[]): void {
    if (this.tools.onResult(record.callId, outcome, nowMs) === null) return;
    const output = outputText(outcome);
    if (record.orphaned) {
      // Its call died with the old upstream session; the new one learns the result as a note.
      this.addSystemNote(notes.orphanedOutput(record.name, output), out);
    } else {
      out.push({
        kind: 'send-realtime',
        event: { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: record.callId, output } },
      });
    }
    log(out, outcome.ok ? 'info' : 'warn', 'tool call finished', {
      name: record.name,
      callId: record.callId,
      ok: outcome.ok,
      durationMs: record.startedAtMs === null ? null : Math.round(nowMs - record.startedAtMs),
      ...(outcome.ok ? { outputBytes: output.length } : { error: outcome.error }),
    });
    const kind = this.config.tools.find((t) => toolName(t) === record.name)?.type ?? 'unknown';
    out.push({ kind: 'metric', event: { name: 'tool-call', kind, ok: outcome.ok, durationMs: nowMs - (record.startedAtMs ?? nowMs) } });
    if (this.tools.running === 0) this.arbiter.release('tools');
    this.arbiter.want({ purpose: 'tool-output' });
  }

  /** A system message: keeps the model's picture of the call true when the bridge changed course. */
  private addSystemNote(text: string, out: SessionAction[]): void {
    if (this.upstream !== 'open') {
      // Nothing is sent to a dead connection; the next session is told after its re-seed.
      this.notesOwed.push(text);
      if (this.notesOwed.length > MAX_OWED_NOTES) this.notesOwed.shift();
      return;
    }
    out.push({
      kind: 'send-realtime',
      event: { type: 'conversation.item.create', item: { type: 'message', role: 'system', content: [{ type: 'input_text', text }] } },
    });
  }

  // ------------------------------------------------------------------ call control and idle

  private onTimer(timer: TimerName, nowMs: number, out: SessionAction[]): void {
    switch (timer) {
      case 'keypad': {
        // Stryker disable next-line OptionalChaining: the keypad timer is only ever set by a keypad that exists, and the keypad is replaced only before any key is processed
        const digits = this.keypad?.timeout() ?? null;
        // Stryker disable next-line StringLiteral: "ended" only reaches the log line
        if (digits !== null) this.keypadEntry(digits, 'pause', nowMs, out);
        return;
      }
      case 'idle': {
        // Stryker disable next-line OptionalChaining: the idle timer is only ever set by an idle monitor that exists, and it is replaced only before the upstream is configured
        const step = this.idle?.fire() ?? null;
        if (step === 'remind') {
          this.arbiter.want(reminderRequest());
          log(out, 'info', 'caller silent: checking in', { reminder: this.idle?.remindersSent ?? 0 });
        } else if (step === 'give-up') {
          this.arbiter.want(idleGoodbyeRequest());
          this.control.ask({ kind: 'end', reason: 'idle' });
          log(out, 'info', 'caller silent after every reminder: saying goodbye', {});
        }
        return;
      }
      case 'control':
        // The last mark never came back (a stalled stream): carry it out rather than hang forever.
        this.checkControl(nowMs, out, true);
        return;
      case 'hold': {
        const audio = this.deps.fallbackAudio;
        if (!this.fallback.holdDue() || this.streamSid === null) return;
        log(out, 'info', 'upstream slow to connect: playing the hold tone', { attempt: this.upstreamAttempt });
        if (audio !== undefined) out.push({ kind: 'send-twilio', message: mediaMessage(this.streamSid, audio.holdTone) });
        out.push({ kind: 'set-timer', timer: 'hold', delayMs: HOLD_TONE_EVERY_MS });
        return;
      }
      case 'connect-deadline':
        // Stryker disable next-line StringLiteral: "why" only reaches the log line
        if (this.fallback.deadlinePassed()) this.giveUpUpstream(`not connected within ${FIRST_CONNECT_GIVE_UP_MS} ms`, out);
        return;
      case 'farewell':
        // Stryker disable next-line StringLiteral: "how" only reaches the log line
        if (this.fallback.givingUp) this.finishGivingUp('apology played (its mark was not echoed)', out);
        return;
      case 'amd':
        // Stryker disable next-line ConditionalExpression: applying a verdict when none is pending is refused by AnsweringMachineGate.decide (no detection, or already decided), which only logs
        if (!this.amd.undecided) return;
        log(out, 'warn', 'no answering-machine verdict in time: treating the callee as a person', { waitedMs: AMD_WAIT_MAX_MS });
        // Stryker disable next-line StringLiteral: answeredBy only reaches log lines on the greet path this takes
        this.applyAmdVerdict('unknown', 'timeout', nowMs, out);
        return;
      default:
        assertNever(timer);
    }
  }

  private checkControl(nowMs: number, out: SessionAction[], force = false): void {
    // Stryker disable next-line ConditionalExpression: CallControl.check returns nothing to do without a pending request
    if (this.control.pending === null) return;
    const step = this.control.check(
      {
        // A response owed to the next session (the goodbye cut by a lost upstream) is not quiet.
        responsesQuiet: this.arbiter.quiet && this.responseOwed === null,
        toolsIdle: this.tools.running === 0,
        allHeard: !this.playout.isAudible(),
        unheardMs: this.playout.sentMs - this.playout.playedMs(nowMs),
      },
      force,
    );
    this.applyControlTimer(step.timer, out);
    if (step.due === null) return;
    // Stryker disable next-line ConditionalExpression: the branch only logs
    if (force) log(out, 'warn', 'last mark never acknowledged: carrying out the call control anyway', { kind: step.due.kind });
    this.executeControl(step.due, out);
  }

  private applyControlTimer(timer: ControlTimer, out: SessionAction[]): void {
    if (timer === null) return;
    out.push(timer.kind === 'set' ? { kind: 'set-timer', timer: 'control', delayMs: timer.delayMs } : { kind: 'clear-timer', timer: 'control' });
  }

  private executeControl(request: ControlRequest, out: SessionAction[]): void {
    if (request.kind === 'end') {
      log(out, 'info', 'goodbye heard: ending the call', { reason: request.reason });
      // Stryker disable next-line ConditionalExpression: call control is asked for only by tool calls, idle or a verdict, all after start: callSid is set
      if (this.callSid !== null) out.push({ kind: 'hangup-call', callSid: this.callSid });
      this.end(request.reason, out, {});
      return;
    }
    // Stryker disable next-line ConditionalExpression: a transfer is asked for only by a tool call, after start: callSid is set
    if (this.callSid === null) {
      this.control.failed();
      return;
    }
    log(out, 'info', 'handoff heard: transferring the call', { to: request.to });
    out.push({ kind: 'transfer-call', callSid: this.callSid, to: request.to });
  }

  private onTransferResult(ok: boolean, detail: string, out: SessionAction[]): void {
    const request = this.control.inProgress;
    if (request?.kind !== 'transfer') return;
    if (ok) {
      // Twilio now plays the <Dial>; the stream stops on its own and the call ends here as transferred.
      log(out, 'info', 'call redirected to the transfer target', { to: request.to, detail });
      return;
    }
    this.control.failed();
    log(out, 'warn', 'transfer could not be started: the agent carries on', { to: request.to, detail });
    this.addSystemNote(notes.transferNotStarted(request.to, detail), out);
    this.arbiter.want({ purpose: 'transfer-failed' });
  }

  /** Idle: the caller heard everything, nobody is talking, typing, or waiting for a tool or a response. */
  private updateIdle(out: SessionAction[]): void {
    if (this.idle === null) return;
    const isIdle =
      this.upstream === 'open' &&
      this.arbiter.quiet &&
      !this.arbiter.callerSpeaking &&
      !(this.keypad?.collecting ?? false) &&
      this.tools.running === 0 &&
      !this.playout.isAudible() &&
      // Stryker disable next-line ConditionalExpression: checkControl runs just before and carries a pending request out as soon as responses are quiet, tools idle and all heard, each of which idle requires too: a pending request never coexists with the other idle conditions
      this.control.pending === null &&
      this.control.inProgress === null &&
      !this.greetingOwed &&
      !this.amd.undecided;
    const change = this.idle.update(isIdle);
    if (change === null) return;
    out.push(change.kind === 'start' ? { kind: 'set-timer', timer: 'idle', delayMs: change.delayMs } : { kind: 'clear-timer', timer: 'idle' });
  }

  // ------------------------------------------------------------------ answering machine

  private onAmdResult(answeredBy: string, nowMs: number, out: SessionAction[]): void {
    const verdict = amdVerdict(answeredBy);
    if (verdict === null) {
      log(out, 'warn', 'answering-machine verdict not understood: ignored', { answeredBy: answeredBy.slice(0, 40) });
      return;
    }
    if (this.awaitingAgent) {
      // Which voicemail applies is the call's agent's to say: the verdict waits for it.
      this.amdVerdictBeforeAgent = { verdict, answeredBy };
      return;
    }
    this.applyAmdVerdict(verdict, answeredBy, nowMs, out);
  }

  private applyAmdVerdict(verdict: AmdVerdict, answeredBy: string, nowMs: number, out: SessionAction[]): void {
    const step = this.amd.decide(verdict, this.config.voicemail);
    if (step.kind === 'none') {
      log(out, 'info', 'answering-machine verdict ignored', { answeredBy, why: step.why });
      return;
    }
    out.push({ kind: 'clear-timer', timer: 'amd' });
    this.arbiter.release('amd');
    if (step.kind === 'greet') {
      log(out, 'info', 'answered by a person: the agent greets', { answeredBy });
      return;
    }
    // Whatever the agent began saying (it answered a "hello" that was the machine's) stops:
    // the message is the one thing to leave on the recording.
    const r = this.arbiter.state;
    if (this.playout.isAudible() || (r.phase === 'active' && !this.interruptedResponses.has(r.id)) || (r.phase === 'requested' && !r.cancelOnCreated)) {
      this.interrupt(nowMs, out);
    }
    // After the interruption, which keeps a greeting it cut as owed: no greeting for a machine.
    this.greetingOwed = false;
    // The machine's recording may have left a turn open, or an answer to it wanted: a turn
    // started (drops every want) and ended (no one speaking) leaves neither.
    this.arbiter.callerStarted();
    this.arbiter.callerStopped();
    if (step.kind === 'hang-up') {
      log(out, 'info', 'answered by a machine: hanging up without a message', { answeredBy, voicemail: this.config.voicemail !== null });
      // Stryker disable next-line ConditionalExpression: a verdict applies only to a call whose detection began at start: callSid is set
      if (this.callSid !== null) out.push({ kind: 'hangup-call', callSid: this.callSid });
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: these end fields only reach the "call ended" log line
      this.end('voicemail', out, { answeredBy, message: false });
      return;
    }
    log(out, 'info', 'answered by a machine: leaving the voicemail after the beep', { answeredBy, chars: step.text.length });
    this.arbiter.want(voicemailRequest(step.text));
    // Hung up once the caller, here the machine's recording, has heard the whole message.
    this.control.ask({ kind: 'end', reason: 'voicemail' });
  }

  // ------------------------------------------------------------------ end

  private end(reason: EndReason, out: SessionAction[], fields: Record<string, unknown>): void {
    if (this.ended) return;
    this.ended = true;
    this.endReasonValue = reason;
    log(out, 'info', 'call ended', {
      ...fields,
      reason,
      turns: this.turns,
      interruptions: this.interruptions.length,
      reconnects: this.reconnects,
    });
    out.push({ kind: 'end-call', reason, closeCode: CLOSE_CODE_BY_REASON[reason] });
  }
}

/**
 * What the caller heard of an item, and where the conversation must cut it. Playout tracks this
 * generation's items still playing; an item that was sent and is no longer tracked played to its
 * end (PlayoutTracker drops an item once all of it was acknowledged and another one followed).
 */
function heardShare(item: OutputItem, h: HeardItem | undefined): { audioEndMs: number; sentMs: number; full: boolean } {
  if (h === undefined) return { audioEndMs: 0, sentMs: 0, full: item.sentMs > 0 };
  const producedMs = Math.floor(item.producedBytes / PCM24K_BYTES_PER_MS);
  return {
    // Never past what the model produced: the API rejects that ("already shorter than").
    audioEndMs: Math.min(Math.floor(h.heardMs), producedMs),
    sentMs: h.sentMs,
    full: item.audioDone && h.heardMs >= h.sentMs - 1,
  };
}

function log(out: SessionAction[], level: LogLevel, msg: string, fields: Record<string, unknown>): void {
  out.push({ kind: 'log', level, msg, fields });
}

/** Decoded size of a base64 string without decoding it. */
function assertNever(x: never): never {
  throw new Error(`unhandled variant: ${JSON.stringify(x)}`);
}
