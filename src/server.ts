/**
 * The Fastify app of the public port: routes, plugins and admission (signatures, call tokens,
 * the one-stream memory, limits, draining). Call behaviour lives in src/call/. Metrics are not
 * served here but on METRICS_PORT (src/observability/metrics-server.ts, started by main.ts).
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import formbody from '@fastify/formbody';
import websocket from '@fastify/websocket';
import type { AppConfig } from './config.js';
import { loadFallbackAudio } from './call/fallback-audio.js';
import { CallBridge } from './call/bridge.js';
import type { CallObserver } from './call/bridge.js';
import type { RecorderFactory } from './call/recorder.js';
import type { EndReason, ResumeContext, StartAuthorization, TranscriptEntry } from './call/session.js';
import type { Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import type { CallOutcome, RejectReason } from './observability/metrics.js';
import { CALL_TOKEN_PARAMETER, CALL_TOKEN_TTL_MS, callTokenSecretFrom, createCallToken, verifyCallToken } from './twilio/call-token.js';
import { createTwilioClient, hangUpCall, transferCall } from './twilio/rest.js';
import type { TwilioClient } from './twilio/rest.js';
import { StreamClaims, streamClaimsCapacity, streamClaimsWindowMs } from './twilio/stream-claims.js';
import { START_VERIFICATION_TIMEOUT_MS, callStatusCheck, clusterClaimCheck, createStartVerifier } from './twilio/start-verification.js';
import type { SharedStreamClaims, StartCheck, StartVerifier } from './twilio/start-verification.js';
import type { FormParams } from './twilio/signature.js';
import { formParamsFrom, verifyStreamSignature, verifyWebhookSignature, webhookUrl } from './twilio/signature.js';
import { busyTwiml, connectStreamTwiml, dialTwiml, hangupTwiml, streamUrlFrom } from './twilio/twiml.js';

/** A media frame is < 1 KiB; anything near this bound is not Twilio. */
export const MAX_WS_MESSAGE_BYTES = 64 * 1024;
/** How long an answered call counts against MAX_CALLS (and holds a drain) until its stream starts. */
export const ANSWERED_STREAM_WAIT_MS = 15_000;
/** How long ending all calls waits for the peers' close handshakes before cutting sockets. */
const END_CALLS_GRACE_MS = 3000;
/**
 * Sockets that have not sent `start` yet cost a bridge each and are not calls: Twilio sends
 * `start` within a second, so a crowd of them is someone holding sockets open. A floor of 10 keeps
 * a small MAX_CALLS from refusing honest streams that merely arrive together.
 */
export const MIN_PENDING_STREAMS = 10;
/** How often a drain re-checks for streams of answered calls; they arrive within a second or two. */
const DRAIN_POLL_MS = 100;
/** Route Twilio posts the `<Dial>` outcome of a transfer to. */
export const TRANSFER_STATUS_PATH = '/transfer-status';
/** `<Stream>` parameters: who is calling, and why a stream is a caller coming back from a transfer. */
export const FROM_PARAMETER = 'from';
export const TO_PARAMETER = 'to';
export const RESUME_PARAMETER = 'resume';
export const DIAL_STATUS_PARAMETER = 'dialStatus';
/** Conversations of transferred calls kept for their return if the target does not answer. */
const MAX_HANDOFFS = 1000;
const HANDOFF_TTL_MS = 60 * 60 * 1000;

export interface ServerOptions {
  config: AppConfig;
  logger: Logger;
  /** Where calls go upstream; defaults to config.realtimeUrl (the local model's URL when it runs). */
  realtimeUrl?: string;
  /** Capture every call (RECORD_CALLS, in-process replay). */
  recorderFactory?: RecorderFactory;
  /** Register Node's default process metrics (event-loop lag, memory); off in tests. */
  processMetrics?: boolean;
  /** Clock for call tokens and the one-stream memory (ms since the epoch); tests move it to expire them. */
  wallClock?: () => number;
  /**
   * WORKERS > 1: the primary's cluster-wide one-stream memory. Asked after this process's own
   * memory accepted a start, alongside the upstream connect (no added latency).
   */
  sharedStreamClaims?: SharedStreamClaims;
}

export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

export interface CallbridgeServer {
  app: App;
  metrics: Metrics;
  /** every open media-stream connection (started or not), for shutdown and tests */
  readonly calls: ReadonlySet<CallBridge>;
  /** calls whose `start` was accepted and that have not ended: what MAX_CALLS counts */
  readonly startedCalls: number;
  readonly draining: boolean;
  /** stop taking calls: readiness fails and the webhook answers busy */
  startDraining(): void;
  /** end every live call; sockets still open after `graceMs` are cut */
  endAllCalls(graceMs?: number): Promise<void>;
  /**
   * Resolves true once no connection is open and no call answered by the webhook is still due to
   * start its stream; false after `timeoutMs`.
   */
  waitForCallsToFinish(timeoutMs: number): Promise<boolean>;
}

const OUTCOME_BY_REASON: Record<EndReason | 'error', CallOutcome> = {
  'twilio-stop': 'completed',
  'twilio-closed': 'caller-hung-up',
  'upstream-failed': 'upstream-failed',
  'protocol-violation': 'rejected',
  unauthorized: 'rejected',
  'max-duration': 'max-duration',
  shutdown: 'drained',
  'agent-ended': 'agent-ended',
  transferred: 'transferred',
  idle: 'idle',
  error: 'error',
};

export async function buildServer(options: ServerOptions): Promise<CallbridgeServer> {
  const { config, logger } = options;
  const realtimeUrl = options.realtimeUrl ?? config.realtimeUrl;
  const wallClock = options.wallClock ?? Date.now;
  // Per-request access lines would double every webhook; calls log their own meaningful events.
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: false,
  });
  const metrics = new Metrics({ collectDefault: options.processMetrics ?? false });
  const calls = new Set<CallBridge>();
  // Clock-independent: one live stream per CallSid whatever the wall clock does. The one-stream
  // memory below says the same for the whole window, but a clock stepped forward could expire it.
  const liveCallSids = new Set<string>();
  // Every CallSid that opened a stream here, for a call token's lifetime plus the longest call:
  // a replayed signed webhook gets a fresh token, so only this (and the REST check) stops its
  // stream. Per process; with WORKERS > 1 the primary keeps the cluster's (sharedStreamClaims).
  const claimsWindowMs = streamClaimsWindowMs(CALL_TOKEN_TTL_MS, config.maxCallDurationMs);
  const streamClaims = new StreamClaims({ windowMs: claimsWindowMs, maxEntries: streamClaimsCapacity(config.maxCalls, claimsWindowMs) });
  // Calls the webhook handed a <Stream> whose stream has not started here yet (callSid → wall-clock
  // ms). They count against MAX_CALLS and hold a drain open: the caller is already connected and
  // the stream is on its way. Twilio opens the stream within a second or two; one that has not
  // started here after ANSWERED_STREAM_WAIT_MS went to another replica (or the caller hung up),
  // and holding its slot for the token's whole lifetime would make a fleet busy at a fraction of
  // its load.
  const answeredNotStarted = new Map<string, number>();
  let startedCalls = 0;
  let pendingStreams = 0;
  const maxPendingStreams = Math.max(MIN_PENDING_STREAMS, config.maxCalls);
  const freshAnsweredCount = (): number => {
    const now = wallClock();
    for (const [callSid, answeredAtMs] of answeredNotStarted) {
      if (!(now - answeredAtMs < ANSWERED_STREAM_WAIT_MS)) answeredNotStarted.delete(callSid);
    }
    return answeredNotStarted.size;
  };
  let nextConnectionId = 1;
  let draining = false;

  const security = securityFrom(config);
  const rest = restControlFrom(config, security);
  const verifyStart = startVerifierFrom(config, options.sharedStreamClaims, metrics);
  const handoffs = new Map<string, Handoff>();
  const keepHandoff = (callSid: string, handoff: Handoff): void => {
    const now = wallClock();
    for (const [sid, h] of handoffs) if (now - h.atMs > HANDOFF_TTL_MS) handoffs.delete(sid);
    handoffs.set(callSid, handoff);
    while (handoffs.size > MAX_HANDOFFS) {
      const oldest = handoffs.keys().next().value;
      if (oldest === undefined) break;
      handoffs.delete(oldest);
    }
  };

  await app.register(formbody);
  await app.register(websocket, { options: { maxPayload: MAX_WS_MESSAGE_BYTES, perMessageDeflate: false } });

  app.addHook('onClose', async () => metrics.stop());

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) =>
    draining ? reply.code(503).send({ status: 'draining', calls: startedCalls }) : { status: 'ready', calls: startedCalls },
  );

  /**
   * The form of a Twilio callback, or null after answering 403: with a token, only a body signed
   * over `url` (from PUBLIC_URL, never the Host header) is taken.
   */
  const signedForm = async (request: FastifyRequest, reply: FastifyReply, url: string | undefined, what: string): Promise<FormParams | null> => {
    const params = formParamsFrom(request.body);
    if (security === null || url === undefined) return params ?? {};
    const signature = request.headers['x-twilio-signature'];
    if (params !== null && verifyWebhookSignature({ authToken: security.authToken, signature, url, params })) return params;
    metrics.rejectedConnection('bad-signature');
    logger.warn({ ip: request.ip }, `${what} rejected: invalid or missing X-Twilio-Signature`);
    await reply.code(403).send({ error: 'invalid Twilio signature' });
    return null;
  };

  app.post('/incoming-call', async (request, reply) => {
    const params = await signedForm(request, reply, security?.webhookUrl, 'webhook');
    if (params === null) return reply;
    const callSid = formString(params, 'CallSid');
    // Sockets that never sent `start` are not calls: counting them would let anyone fill the line.
    // A retried webhook for a call already answered is that same call, not one more.
    const committed = startedCalls + freshAnsweredCount() - (callSid !== null && answeredNotStarted.has(callSid) ? 1 : 0);
    if (draining || committed >= config.maxCalls) {
      metrics.rejectedConnection(draining ? 'draining' : 'busy');
      logger.warn({ callSid, liveCalls: startedCalls, answeredNotStarted: answeredNotStarted.size, maxCalls: config.maxCalls, draining }, 'incoming call refused: line busy');
      return reply.type('text/xml').send(busyTwiml());
    }
    // Its stream would be refused (the memory refuses rather than forgets): a busy signal is kinder.
    if (!streamClaims.hasRoom(wallClock())) {
      metrics.rejectedConnection('busy');
      logger.error({ callSid, remembered: streamClaims.size, windowMs: claimsWindowMs }, 'incoming call refused: the one-stream memory is full');
      return reply.type('text/xml').send(busyTwiml());
    }
    const streamUrl = security?.streamUrl ?? streamUrlFromHost(request, config, logger);
    const parameters: Record<string, string> = {};
    if (security !== null && callSid !== null) parameters[CALL_TOKEN_PARAMETER] = createCallToken(security.tokenSecret, callSid, wallClock());
    // Who is calling and which number they dialled: tools and the agent's context need them.
    const from = formString(params, 'From');
    const to = formString(params, 'To');
    if (from !== null) parameters[FROM_PARAMETER] = from.slice(0, 64);
    if (to !== null) parameters[TO_PARAMETER] = to.slice(0, 64);
    if (callSid !== null) answeredNotStarted.set(callSid, wallClock());
    logger.info({ callSid, streamUrl }, 'incoming call: answering with <Connect><Stream>');
    return reply.type('text/xml').send(connectStreamTwiml(streamUrl, parameters));
  });

  // A transfer's <Dial> ended. Answered and finished: the call is over. Busy, no answer, failed:
  // the caller is not dropped but comes back to the agent on a new stream, which is told.
  app.post(TRANSFER_STATUS_PATH, async (request, reply) => {
    const params = await signedForm(request, reply, security?.transferStatusUrl, 'transfer status');
    if (params === null) return reply;
    const callSid = formString(params, 'CallSid');
    const status = formString(params, 'DialCallStatus') ?? 'unknown';
    if (callSid === null || status === 'completed' || status === 'answered') {
      handoffs.delete(callSid ?? '');
      logger.info({ callSid, dialCallStatus: status }, 'transfer finished: call over');
      return reply.type('text/xml').send(hangupTwiml());
    }
    const handoff = handoffs.get(callSid);
    const parameters: Record<string, string> = { [RESUME_PARAMETER]: 'transfer-failed', [DIAL_STATUS_PARAMETER]: status.slice(0, 32) };
    if (security !== null) parameters[CALL_TOKEN_PARAMETER] = createCallToken(security.tokenSecret, callSid, wallClock());
    if (handoff?.from != null) parameters[FROM_PARAMETER] = handoff.from;
    if (handoff?.to != null) parameters[TO_PARAMETER] = handoff.to;
    answeredNotStarted.set(callSid, wallClock());
    logger.info({ callSid, dialCallStatus: status, target: handoff?.target ?? null }, 'transfer not answered: caller back to the agent');
    const streamUrl = security?.streamUrl ?? streamUrlFromHost(request, config, logger);
    return reply.type('text/xml').send(connectStreamTwiml(streamUrl, parameters));
  });

  const refuseUpgrade = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (security !== null && !verifyStreamSignature({ authToken: security.authToken, signature: request.headers['x-twilio-signature'], streamUrl: security.streamUrl })) {
      metrics.rejectedConnection('bad-signature');
      logger.warn({ ip: request.ip }, 'media stream refused: invalid or missing x-twilio-signature');
      await reply.code(403).send({ error: 'invalid Twilio signature' });
      return;
    }
    if (pendingStreams >= maxPendingStreams) {
      metrics.rejectedConnection('busy');
      logger.warn({ ip: request.ip, pendingStreams, maxPendingStreams }, 'media stream refused: too many connections waiting for start');
      await reply.code(503).send({ error: 'too many streams waiting for start' });
      return;
    }
    // Not refused while draining: a stream exists because some replica already answered the
    // call, so turning it away would fail a call in progress. The webhook is the only gate.
  };

  const recordMetric: CallObserver['metric'] = (event, handlingMs) => {
    switch (event.name) {
      case 'interruption':
        // The truncate's audio_end_ms, what the model now holds as heard of the item that was cut,
        // rather than the played position of the whole response.
        metrics.interruption({ heardMs: event.truncatedMs, reactionMs: handlingMs, cancelSent: event.cancelSent });
        return;
      case 'first-audio':
        metrics.firstAudioLatency(event.latencyMs);
        return;
      case 'upstream-error':
        metrics.upstreamError(event.code);
        return;
      case 'reconnect':
        metrics.reconnect(event.outcome);
        return;
      case 'tool-call':
        metrics.toolCall(event.kind, event.ok, event.durationMs);
        return;
    }
  };

  // One per connection, so the admission counts follow each connection from pending to started
  // to ended without counting any step twice. `refusal`: why its start was refused, when the
  // one-stream memory said so (a bad token is the default).
  const observerFor = (refusal: () => RejectReason | null): CallObserver => {
    let state: 'pending' | 'started' | 'ended' = 'pending';
    pendingStreams += 1;
    return {
      callStarted: () => {
        if (state !== 'pending') return;
        state = 'started';
        pendingStreams -= 1;
        startedCalls += 1;
        metrics.callStarted();
      },
      callEnded: (reason, started) => {
        if (state === 'ended') return;
        if (state === 'started') startedCalls -= 1;
        else pendingStreams -= 1;
        state = 'ended';
        if (started) metrics.callEnded(OUTCOME_BY_REASON[reason]);
        else metrics.rejectedConnection(reason === 'unauthorized' ? (refusal() ?? 'bad-token') : 'protocol');
      },
      metric: recordMetric,
    };
  };

  // Read once: every call without a model plays the same hold tone and apology.
  const fallbackAudio = loadFallbackAudio();
  const resumeFor = (start: { callSid: string; customParameters: Record<string, string> }): ResumeContext | null => {
    if (start.customParameters[RESUME_PARAMETER] !== 'transfer-failed') return null;
    const handoff = handoffs.get(start.callSid);
    handoffs.delete(start.callSid);
    return {
      transcript: handoff?.transcript ?? [],
      transferFailed: { to: handoff?.target ?? 'the transfer target', status: start.customParameters[DIAL_STATUS_PARAMETER] ?? 'unknown' },
    };
  };

  app.get('/media-stream', { websocket: true, preValidation: refuseUpgrade }, (socket, request) => {
    let claimed: string | null = null;
    let refusal: RejectReason | null = null;
    // Synchronous, in the session's `start`: a refusal here means nothing went upstream.
    const authorizeStart = (start: { callSid: string; customParameters: Record<string, string> }, _nowMs: number): StartAuthorization => {
      const now = wallClock();
      if (security !== null) {
        const token = verifyCallToken(security.tokenSecret, start.customParameters[CALL_TOKEN_PARAMETER], start.callSid, now);
        if (!token.ok) return { ok: false, reason: `call token ${token.reason}` };
      }
      // Twilio allows one stream per call: a second one for a live CallSid is a replay.
      if (liveCallSids.has(start.callSid)) {
        refusal = 'replayed';
        return { ok: false, reason: 'a stream for this CallSid is already live' };
      }
      // ...and one per call ever (but for a caller back from a failed transfer): a CallSid whose
      // stream has ended is a replay too, with a fresh token from a replayed webhook.
      const claim = streamClaims.claim(start.callSid, isResume(start.customParameters), now);
      if (!claim.ok) {
        refusal = claim.refusal === 'full' ? 'busy' : 'replayed';
        return { ok: false, reason: claim.reason };
      }
      liveCallSids.add(start.callSid);
      answeredNotStarted.delete(start.callSid);
      claimed = start.callSid;
      return { ok: true };
    };
    const bridge = new CallBridge(socket, {
      twilioTransport: request.raw.socket,
      agent: config.agent,
      realtimeUrl,
      apiKey: config.openaiApiKey,
      logger,
      connectionId: nextConnectionId++,
      authorizeStart,
      maxCallDurationMs: config.maxCallDurationMs,
      observer: observerFor(() => refusal),
      toolsSecret: config.toolsSecret,
      resumeFor,
      fallbackAudio,
      ...(verifyStart === null
        ? {}
        : { verifyStart: (start: { callSid: string; customParameters: Record<string, string> }, log: Logger) => verifyStart({ callSid: start.callSid, resume: isResume(start.customParameters) }, log) }),
      ...(rest === null ? {} : { hangUpCall: rest.hangUp, transferCall: rest.transfer }),
      ...(options.recorderFactory === undefined ? {} : { recorderFactory: options.recorderFactory }),
    });
    calls.add(bridge);
    void bridge.closed.then(() => {
      calls.delete(bridge);
      if (claimed !== null) liveCallSids.delete(claimed);
      // A transferred call may come back (target busy, no answer): keep what was said for it.
      const session = bridge.session;
      const target = session.transferTarget;
      if (claimed !== null && session.endReason === 'transferred') {
        // The caller comes back on one new stream if the target does not answer.
        streamClaims.allowResume(claimed, wallClock());
        options.sharedStreamClaims?.allowResume(claimed);
        if (target !== null) keepHandoff(claimed, { target, transcript: [...session.transcript], from: bridge.parties.from, to: bridge.parties.to, atMs: wallClock() });
      }
    });
  });

  return {
    app,
    metrics,
    calls,
    get startedCalls() {
      return startedCalls;
    },
    get draining() {
      return draining;
    },
    startDraining() {
      if (draining) return;
      draining = true;
      logger.info({ liveCalls: startedCalls, answeredNotStarted: freshAnsweredCount() }, 'draining: no new calls; live calls may finish');
    },
    async endAllCalls(graceMs = END_CALLS_GRACE_MS) {
      const live = [...calls];
      for (const call of live) call.shutdown();
      const closedInTime = await within(Promise.all(live.map((c) => c.closed)), graceMs);
      if (!closedInTime) {
        const stuck = live.filter((c) => calls.has(c));
        logger.warn({ stuck: stuck.length, graceMs }, 'peers did not finish the close handshake; cutting their sockets');
        for (const call of stuck) call.terminate();
        await Promise.all(stuck.map((c) => c.closed));
      }
    },
    async waitForCallsToFinish(timeoutMs) {
      // Polled rather than a snapshot of `calls`: streams of calls answered before the drain keep
      // arriving after it began, and they must be waited for too.
      const finished = (): boolean => calls.size === 0 && freshAnsweredCount() === 0;
      if (finished()) return true;
      return new Promise<boolean>((resolve) => {
        const poll = setInterval(() => {
          if (!finished()) return;
          clearInterval(poll);
          clearTimeout(deadline);
          resolve(true);
        }, DRAIN_POLL_MS);
        const deadline = setTimeout(() => {
          clearInterval(poll);
          resolve(finished());
        }, timeoutMs);
      });
    },
  };
}

interface Security {
  authToken: string;
  tokenSecret: Buffer;
  webhookUrl: string;
  transferStatusUrl: string;
  streamUrl: string;
}

interface Handoff {
  target: string;
  transcript: TranscriptEntry[];
  from: string | null;
  to: string | null;
  atMs: number;
}

/** Signed requests only, when there is a token; URLs from PUBLIC_URL, never from the Host header. */
function securityFrom(config: AppConfig): Security | null {
  if (config.twilioAuthToken === null) return null;
  if (config.publicUrl === null) throw new Error('TWILIO_AUTH_TOKEN requires PUBLIC_URL');
  return {
    authToken: config.twilioAuthToken,
    tokenSecret: callTokenSecretFrom(config.twilioAuthToken),
    webhookUrl: webhookUrl(config.publicUrl, '/incoming-call'),
    transferStatusUrl: webhookUrl(config.publicUrl, TRANSFER_STATUS_PATH),
    streamUrl: streamUrlFrom(config.publicUrl),
  };
}

/** A stream that says it brings the caller back from a transfer (set by POST /transfer-status). */
function isResume(customParameters: Record<string, string>): boolean {
  return customParameters[RESUME_PARAMETER] === 'transfer-failed';
}

/**
 * The round-trip checks of a started call, run alongside the upstream connect: the call's status
 * over Twilio REST (with credentials), the cluster's one-stream memory (WORKERS > 1). Null when
 * there is neither.
 */
function startVerifierFrom(config: AppConfig, shared: SharedStreamClaims | undefined, metrics: Metrics): StartVerifier | null {
  const checks: StartCheck[] = [];
  const client = statusClientFrom(config);
  if (client !== null) checks.push(callStatusCheck(client));
  if (shared !== undefined) checks.push(clusterClaimCheck(shared));
  if (checks.length === 0) return null;
  return createStartVerifier(checks, { timeoutMs: START_VERIFICATION_TIMEOUT_MS, record: (check, outcome) => metrics.startVerification(check, outcome) });
}

/** Its own client, whose requests give up at the verification's deadline instead of the SDK's 30 s. */
function statusClientFrom(config: AppConfig): TwilioClient | null {
  if (config.twilioAuthToken === null || config.twilioAccountSid === null) return null;
  return createTwilioClient({
    accountSid: config.twilioAccountSid,
    authToken: config.twilioAuthToken,
    apiBaseUrl: config.twilioApiBaseUrl,
    requestTimeoutMs: START_VERIFICATION_TIMEOUT_MS,
  });
}

interface RestControl {
  hangUp: (callSid: string) => Promise<unknown>;
  transfer: (callSid: string, to: string, callerId: string | null) => Promise<unknown>;
}

/** Hang-up and transfer over Twilio REST (via TWILIO_API_BASE_URL), when credentials exist. */
function restControlFrom(config: AppConfig, security: Security | null): RestControl | null {
  if (config.twilioAuthToken === null || config.twilioAccountSid === null) return null;
  const client = createTwilioClient({ accountSid: config.twilioAccountSid, authToken: config.twilioAuthToken, apiBaseUrl: config.twilioApiBaseUrl });
  // Twilio posts the <Dial> outcome here; without PUBLIC_URL there is no address it could reach.
  const actionUrl = security?.transferStatusUrl ?? (config.publicUrl === null ? null : webhookUrl(config.publicUrl, TRANSFER_STATUS_PATH));
  return {
    hangUp: (callSid) => hangUpCall(client, callSid),
    transfer: async (callSid, to, callerId) => {
      if (actionUrl === null) throw new Error('PUBLIC_URL is not set, so Twilio could not report back a transfer the target does not answer');
      return transferCall(client, callSid, dialTwiml(to, { callerId, actionUrl }));
    },
  };
}

function formString(params: FormParams | null, key: string): string | null {
  const v = params?.[key];
  return typeof v === 'string' && v !== '' ? v : null;
}

/** Without PUBLIC_URL (local development only: no signatures are checked then). */
function streamUrlFromHost(request: FastifyRequest, config: AppConfig, logger: Logger): string {
  if (config.publicUrl !== null) return streamUrlFrom(config.publicUrl);
  const host = request.headers.host ?? `localhost:${config.port}`;
  logger.warn({ host }, 'PUBLIC_URL is not set: building the stream URL from the Host header; set PUBLIC_URL in production');
  return streamUrlFrom(`https://${host}`);
}

async function within(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
