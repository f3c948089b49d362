/**
 * Everything this service holds of Twilio's side, built once from the config: which requests are
 * Twilio's (signed callbacks, the signed stream upgrade, the per-call token a stream's `start`
 * must carry), where Twilio is told to open the stream, and what the service may ask of Twilio
 * (REST hang-up and transfer, the start verification's status read).
 *
 * Without TWILIO_AUTH_TOKEN nothing is signed or checked: local development only (main.ts warns).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config.js';
import type { StartAuthorization } from '../call/session.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CALL_TOKEN_PARAMETER, CALL_TOKEN_TTL_MS, callTokenSecretFrom, createCallToken, verifyCallToken } from '../twilio/call-token.js';
import { createTwilioClient, hangUpCall, placeCall, replaceCallTwiml, transferCall } from '../twilio/rest.js';
import type { PlaceCallRequest } from '../twilio/rest.js';
import type { TwilioClient } from '../twilio/rest.js';
import { START_VERIFICATION_TIMEOUT_MS, callStatusCheck, clusterClaimCheck, createStartVerifier } from '../twilio/start-verification.js';
import type { SharedStreamClaims, StartCheck, StartVerifier } from '../twilio/start-verification.js';
import type { FormParams } from '../twilio/signature.js';
import { formParamsFrom, verifyStreamSignature, verifyWebhookSignature, webhookUrl } from '../twilio/signature.js';
import { dialTwiml, sayThenHangupTwiml, streamUrlFrom } from '../twilio/twiml.js';
import { AMD_STATUS_PATH, INCOMING_CALL_PATH, OUTBOUND_ANSWER_PATH, TRANSFER_STATUS_PATH } from './twiml-contract.js';
import type { SignedCallbackPath } from './twiml-contract.js';

interface Security {
  authToken: string;
  tokenSecret: Buffer;
  /** what Twilio signs each callback over, from PUBLIC_URL */
  callbackUrls: Record<SignedCallbackPath, string>;
  streamUrl: string;
}

export interface RestControl {
  hangUp: (callSid: string) => Promise<unknown>;
  transfer: (callSid: string, to: string, callerId: string | null) => Promise<unknown>;
  /** an outbound call (POST /calls) */
  placeCall: (request: PlaceCallRequest) => Promise<{ callSid: string; status: string }>;
  /** a machine's message in Twilio's voice, then the end of the call (the AMD fallback) */
  sayThenHangUp: (callSid: string, text: string) => Promise<unknown>;
}

/** A stream's `start`, as far as its checks read it. */
export interface StreamStart {
  callSid: string;
  customParameters: Record<string, string>;
}

export interface TwilioAccessOptions {
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  /** ms since the epoch: call tokens are issued and checked against it */
  wallClock: () => number;
  /** WORKERS > 1: the primary's cluster-wide one-stream memory, asked by the start verification */
  sharedStreamClaims?: SharedStreamClaims;
}

export class TwilioAccess {
  /** Hang-up and transfer over Twilio REST; null without credentials. */
  readonly rest: RestControl | null;
  /** The round-trip checks of a started call; null when there are none to make. */
  readonly verifyStart: StartVerifier | null;
  private readonly security: Security | null;
  private readonly config: AppConfig;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly wallClock: () => number;

  constructor({ config, logger, metrics, wallClock, sharedStreamClaims }: TwilioAccessOptions) {
    this.config = config;
    this.logger = logger;
    this.metrics = metrics;
    this.wallClock = wallClock;
    this.security = securityFrom(config);
    this.rest = restControlFrom(config);
    this.verifyStart = startVerifierFrom(config, sharedStreamClaims, metrics);
  }

  /**
   * The form of a Twilio callback, or null after answering 403: with a token, only a body signed
   * over the callback's URL (from PUBLIC_URL, never the Host header) is taken. `what` names the
   * callback in the log.
   */
  async signedForm(request: FastifyRequest, reply: FastifyReply, path: SignedCallbackPath, what: string, options: { signedQuery?: boolean } = {}): Promise<FormParams | null> {
    const params = formParamsFrom(request.body);
    const security = this.security;
    if (security === null) return params ?? {};
    const signature = request.headers['x-twilio-signature'];
    // `signedQuery`: the callback's URL carries state in its query (an outbound call's), which
    // Twilio signed with the rest of the URL; the query is taken as the request brings it, and
    // any change to it breaks the signature.
    const url = options.signedQuery === true ? `${security.callbackUrls[path]}${rawQuery(request.url)}` : security.callbackUrls[path];
    if (params !== null && verifyWebhookSignature({ authToken: security.authToken, signature, url, params })) return params;
    this.metrics.rejectedConnection('bad-signature');
    this.logger.warn({ ip: request.ip }, `${what} rejected: invalid or missing X-Twilio-Signature`);
    await reply.code(403).send({ error: 'invalid Twilio signature' });
    return null;
  }

  /** The stream upgrade's signature, over the stream URL. True after answering 403. */
  async refusedUnsignedUpgrade(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const security = this.security;
    if (security === null || verifyStreamSignature({ authToken: security.authToken, signature: request.headers['x-twilio-signature'], streamUrl: security.streamUrl })) return false;
    this.metrics.rejectedConnection('bad-signature');
    this.logger.warn({ ip: request.ip }, 'media stream refused: invalid or missing x-twilio-signature');
    await reply.code(403).send({ error: 'invalid Twilio signature' });
    return true;
  }

  /**
   * A `<Stream>`'s parameters: `parameters` (who calls, the caller context, …) and the call token
   * that lets this call's stream start with exactly these (none without TWILIO_AUTH_TOKEN: the
   * stream's parameters are then taken as given). Values must already be as Twilio will deliver
   * them (twiml-contract.ts, `parameterValue`), or the genuine stream would be refused.
   */
  streamParameters(callSid: string, parameters: Readonly<Record<string, string>>): Record<string, string> {
    if (this.security === null) return { ...parameters };
    return { ...parameters, [CALL_TOKEN_PARAMETER]: createCallToken(this.security.tokenSecret, callSid, this.wallClock(), CALL_TOKEN_TTL_MS, parameters) };
  }

  /**
   * Whether a stream's `start` carries a valid call token for its CallSid and for every other
   * parameter it brings, unchanged (always, without TWILIO_AUTH_TOKEN).
   */
  checkCallToken(start: StreamStart): StartAuthorization {
    if (this.security === null) return { ok: true };
    const token = verifyCallToken(this.security.tokenSecret, start.customParameters[CALL_TOKEN_PARAMETER], start.callSid, this.wallClock(), start.customParameters);
    return token.ok ? { ok: true } : { ok: false, reason: `call token ${token.reason}` };
  }

  /** Where Twilio is told to open the stream: from PUBLIC_URL, or (development) the Host header. */
  streamUrl(request: FastifyRequest): string {
    return this.security?.streamUrl ?? streamUrlFromHost(request, this.config, this.logger);
  }
}

/** Signed requests only, when there is a token; URLs from PUBLIC_URL, never from the Host header. */
function securityFrom(config: AppConfig): Security | null {
  if (config.twilioAuthToken === null) return null;
  if (config.publicUrl === null) throw new Error('TWILIO_AUTH_TOKEN requires PUBLIC_URL');
  return {
    authToken: config.twilioAuthToken,
    tokenSecret: callTokenSecretFrom(config.twilioAuthToken),
    callbackUrls: {
      [INCOMING_CALL_PATH]: webhookUrl(config.publicUrl, INCOMING_CALL_PATH),
      [TRANSFER_STATUS_PATH]: webhookUrl(config.publicUrl, TRANSFER_STATUS_PATH),
      [OUTBOUND_ANSWER_PATH]: webhookUrl(config.publicUrl, OUTBOUND_ANSWER_PATH),
      [AMD_STATUS_PATH]: webhookUrl(config.publicUrl, AMD_STATUS_PATH),
    },
    streamUrl: streamUrlFrom(config.publicUrl),
  };
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

/** Hang-up and transfer over Twilio REST (via TWILIO_API_BASE_URL), when credentials exist. */
function restControlFrom(config: AppConfig): RestControl | null {
  if (config.twilioAuthToken === null || config.twilioAccountSid === null) return null;
  const client = createTwilioClient({ accountSid: config.twilioAccountSid, authToken: config.twilioAuthToken, apiBaseUrl: config.twilioApiBaseUrl });
  // Twilio posts the <Dial> outcome here; without PUBLIC_URL there is no address it could reach.
  const actionUrl = config.publicUrl === null ? null : webhookUrl(config.publicUrl, TRANSFER_STATUS_PATH);
  return {
    hangUp: (callSid) => hangUpCall(client, callSid),
    placeCall: (request) => placeCall(client, request),
    sayThenHangUp: (callSid, text) => replaceCallTwiml(client, callSid, sayThenHangupTwiml(text), 'leave a voicemail on'),
    transfer: async (callSid, to, callerId) => {
      if (actionUrl === null) throw new Error('PUBLIC_URL is not set, so Twilio could not report back a transfer the target does not answer');
      return transferCall(client, callSid, dialTwiml(to, { callerId, actionUrl }));
    },
  };
}

/** `?…` of a request's URL as it arrived (undecoded), or '' without one. */
function rawQuery(url: string): string {
  const at = url.indexOf('?');
  return at < 0 ? '' : url.slice(at);
}

/** Without PUBLIC_URL (local development only: no signatures are checked then). */
function streamUrlFromHost(request: FastifyRequest, config: AppConfig, logger: Logger): string {
  if (config.publicUrl !== null) return streamUrlFrom(config.publicUrl);
  const host = request.headers.host ?? `localhost:${config.port}`;
  logger.warn({ host }, 'PUBLIC_URL is not set: building the stream URL from the Host header; set PUBLIC_URL in production');
  return streamUrlFrom(`https://${host}`);
}
