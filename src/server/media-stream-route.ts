/**
 * GET /media-stream: the WebSocket Twilio opens for a `<Stream>`. The upgrade is refused when it
 * is not signed or too many sockets wait for `start`; each accepted socket gets a CallBridge, whose
 * `start` is authorised here (call token, then admission) before anything goes upstream. When the
 * connection closes, its CallSid is released, and a transferred call's conversation is kept for
 * its return.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config.js';
import { CallBridge } from '../call/bridge.js';
import type { CallObserver } from '../call/bridge.js';
import { loadFallbackAudio } from '../call/fallback-audio.js';
import type { RecorderFactory } from '../call/recorder.js';
import type { ResumeContext, StartAuthorization } from '../call/session.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SharedStreamClaims } from '../twilio/start-verification.js';
import type { Admission, StreamTicket } from './admission.js';
import type { App } from './app.js';
import type { Handoffs } from './handoffs.js';
import type { StreamStart, TwilioAccess } from './twilio-access.js';
import { DIAL_STATUS_PARAMETER, describedCall, isAmdPending, isResume } from './twiml-contract.js';
import type { CallAgents } from './call-agents.js';

export interface MediaStreamRouteDeps {
  config: AppConfig;
  logger: Logger;
  /** where calls go upstream */
  realtimeUrl: string;
  access: TwilioAccess;
  /** the agent of each call (profile, AGENT_CONFIG_URL, caller context) */
  agents: CallAgents;
  admission: Admission;
  handoffs: Handoffs;
  metrics: Metrics;
  /** the observer of each connection (src/server/call-observer.ts) */
  observerFor: (stream: StreamTicket) => CallObserver;
  recorderFactory?: RecorderFactory;
  /** WORKERS > 1: told when a transferred call may come back, on whichever worker */
  sharedStreamClaims?: SharedStreamClaims;
}

/** Adds the route; returns every open media-stream connection (started or not), kept up to date. */
export function registerMediaStreamRoute(app: App, deps: MediaStreamRouteDeps): ReadonlySet<CallBridge> {
  const { config, logger, access, admission, handoffs, metrics } = deps;
  const calls = new Set<CallBridge>();
  let nextConnectionId = 1;
  // Read once: every call without a model plays the same hold tone and apology.
  const fallbackAudio = loadFallbackAudio();

  const refuseUpgrade = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (await access.refusedUnsignedUpgrade(request, reply)) return;
    const room = admission.mayUpgrade();
    if (!room.ok) {
      metrics.rejectedConnection('busy');
      logger.warn({ ip: request.ip, pendingStreams: room.pendingStreams, maxPendingStreams: room.maxPendingStreams }, 'media stream refused: too many connections waiting for start');
      await reply.code(503).send({ error: 'too many streams waiting for start' });
      return;
    }
    // Not refused while draining: a stream exists because some replica already answered the
    // call, so turning it away would fail a call in progress. The webhook is the only gate.
  };

  const resumeFor = (start: StreamStart): ResumeContext | null => {
    if (!isResume(start.customParameters)) return null;
    const handoff = handoffs.take(start.callSid);
    return {
      transcript: handoff?.transcript ?? [],
      transferFailed: { to: handoff?.target ?? 'the transfer target', status: start.customParameters[DIAL_STATUS_PARAMETER] ?? 'unknown' },
    };
  };

  const verifyStart = access.verifyStart;
  app.get('/media-stream', { websocket: true, preValidation: refuseUpgrade }, (socket, request) => {
    const stream = admission.openStream();
    // Synchronous, in the session's `start`: a refusal here means nothing went upstream. The
    // token first, so that a stream without a valid one is counted as a bad token.
    const authorizeStart = (start: StreamStart): StartAuthorization => {
      const token = access.checkCallToken(start);
      if (!token.ok) return token;
      const claim = stream.claim(start.callSid, isResume(start.customParameters));
      return claim.ok ? claim : { ok: false, reason: claim.reason };
    };
    const bridge = new CallBridge(socket, {
      twilioTransport: request.raw.socket,
      agent: config.agent,
      realtimeUrl: deps.realtimeUrl,
      apiKey: config.openaiApiKey,
      logger,
      connectionId: nextConnectionId++,
      authorizeStart,
      maxCallDurationMs: config.maxCallDurationMs,
      observer: deps.observerFor(stream),
      toolsSecret: config.toolsSecret,
      resumeFor,
      // Outbound calls with answering-machine detection: the greeting waits for the verdict.
      amdPending: (start) => isAmdPending(start.customParameters),
      resolveAgent: (start, log) => deps.agents.resolve(start, log),
      fallbackAudio,
      ...(verifyStart === null ? {} : { verifyStart: (start: StreamStart, log: Logger) => verifyStart({ callSid: start.callSid, resume: isResume(start.customParameters) }, log) }),
      ...(access.rest === null ? {} : { hangUpCall: access.rest.hangUp, transferCall: access.rest.transfer }),
      ...(deps.recorderFactory === undefined ? {} : { recorderFactory: deps.recorderFactory }),
    });
    calls.add(bridge);
    void bridge.closed.then(() => {
      calls.delete(bridge);
      const session = bridge.session;
      const transferred = session.endReason === 'transferred';
      const callSid = stream.release(transferred);
      // A transferred call may come back (target busy, no answer): keep what was said for it.
      if (callSid === null || !transferred) return;
      deps.sharedStreamClaims?.allowResume(callSid);
      const target = session.transferTarget;
      if (target !== null) handoffs.keep(callSid, { target, transcript: [...session.transcript], parameters: describedCall(bridge.startParameters) });
    });
  });
  return calls;
}
