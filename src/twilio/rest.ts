/**
 * The few Twilio REST operations callbridge performs, over the official `twilio` client:
 * pointing a number's voice webhook at us (`npm run twilio:configure`), ending a call,
 * transferring one (new TwiML for the live call), reading a call's status (is a stream's call
 * really in progress?) and placing an outbound call.
 *
 * Failures come back as one of two error classes so callers can tell "you asked for something
 * malformed" (TwilioInputError, raised before any request is made) from "Twilio said no or could
 * not be reached" (TwilioApiError, carrying Twilio's HTTP status and error code when there is one).
 */
import twilio from 'twilio';
// Type-only: RequestOptions is reachable from the package's deep path, not from its entry point.
import type RequestClient from 'twilio/lib/base/RequestClient.js';

export type TwilioClient = twilio.Twilio;

export class TwilioInputError extends Error {
  override name = 'TwilioInputError';
}

export class TwilioApiError extends Error {
  override name = 'TwilioApiError';

  constructor(
    message: string,
    /** HTTP status of Twilio's answer; null when there was none (network) or none applies */
    readonly status: number | null,
    /** Twilio error code (https://www.twilio.com/docs/errors/CODE), when Twilio sent one */
    readonly code: number | null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const E164 = /^\+[1-9]\d{1,14}$/;
const CALL_SID = /^CA[0-9a-fA-F]{32}$/;
const ACCOUNT_SID = /^AC[0-9a-fA-F]{32}$/;

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * https everywhere; plain http only on loopback, where nothing crosses a network. Twilio fetches
 * the webhook over the internet, and the API base receives our credentials in clear.
 */
function parseHttpsUrl(raw: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TwilioInputError(`${what} must be an absolute https:// URL, got "${raw}"`);
  }
  const ok = url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
  if (!ok) throw new TwilioInputError(`${what} must be an https:// URL (http:// only for localhost), got "${raw}"`);
  return url;
}

function assertE164(phoneNumber: string): void {
  if (!E164.test(phoneNumber)) {
    throw new TwilioInputError(`phone number must be in E.164 form (+ then country code and number, digits only, e.g. +15551234567), got "${phoneNumber}"`);
  }
}

/**
 * `<public base>/incoming-call`, the route server.ts answers with TwiML. The base is joined the
 * way config.ts normalises PUBLIC_URL (trailing slashes dropped), so the URL Twilio signs is the
 * one the server will check the signature against.
 */
export function voiceWebhookUrlFrom(publicBase: string): string {
  const url = parseHttpsUrl(publicBase, 'public URL');
  // A query or fragment on the base would land in the middle of the joined URL.
  if (url.search !== '' || url.hash !== '') {
    throw new TwilioInputError(`public URL must not carry a query string or fragment, got "${publicBase}"`);
  }
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/incoming-call`;
  return url.toString();
}

/** The fields callers need from the error classes the SDK throws for non-2xx answers. */
interface RestFailure {
  status: number;
  code: number | null;
  message: string;
  moreInfo: string | null;
}

/**
 * Matched by shape rather than `instanceof`: the SDK throws RestException or, for RFC 9457 bodies,
 * TwilioServiceException, and only the former is exported. Both carry a numeric `status`; network
 * errors (axios/Node) never do, their `code` is a string such as ECONNREFUSED.
 */
function restFailure(err: unknown): RestFailure | null {
  if (!(err instanceof Error)) return null;
  const { status, code, moreInfo } = err as Error & { status?: unknown; code?: unknown; moreInfo?: unknown };
  if (typeof status !== 'number') return null;
  return {
    status,
    code: typeof code === 'number' ? code : null,
    message: err.message,
    moreInfo: typeof moreInfo === 'string' ? moreInfo : null,
  };
}

function describeTransportError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Node 20 reports a refused dual-stack connect as an AggregateError with an empty message.
  const { code } = err as Error & { code?: unknown };
  return err.message !== '' ? err.message : typeof code === 'string' ? code : err.name;
}

function apiError(operation: string, err: unknown): TwilioApiError {
  const failure = restFailure(err);
  if (failure === null) {
    return new TwilioApiError(`${operation}: could not reach the Twilio API: ${describeTransportError(err)}`, null, null, { cause: err });
  }
  const code = failure.code === null ? '' : `, Twilio error ${failure.code}`;
  const info = failure.moreInfo === null ? '' : ` (${failure.moreInfo})`;
  return new TwilioApiError(`${operation}: HTTP ${failure.status}${code}: ${failure.message}${info}`, failure.status, failure.code, { cause: err });
}

async function attempt<T>(operation: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw apiError(operation, err);
  }
}

export interface ConfigureVoiceWebhookResult {
  sid: string;
  phoneNumber: string;
  previousVoiceUrl: string | null;
  voiceUrl: string;
}

/** The number cannot be pointed at the service as it stands: no Twilio error code, the owner has to act. */
function numberNotConfigurable(message: string): TwilioApiError {
  return new TwilioApiError(message, null, null);
}

/** Points the account's number `phoneNumber` (E.164) at `voiceUrl`, fetched with POST. */
export async function configureVoiceWebhook(
  client: TwilioClient,
  { phoneNumber, voiceUrl }: { phoneNumber: string; voiceUrl: string },
): Promise<ConfigureVoiceWebhookResult> {
  assertE164(phoneNumber);
  parseHttpsUrl(voiceUrl, 'voice URL');
  const account = client.accountSid;

  const candidates = await attempt(`look up ${phoneNumber} on Twilio account ${account}`, () =>
    client.incomingPhoneNumbers.list({ phoneNumber }),
  );
  // The PhoneNumber filter matches partial numbers too (+1555123456 finds +15551234567).
  const number = candidates.find((n) => n.phoneNumber === phoneNumber);
  if (number === undefined) {
    throw numberNotConfigurable(
      `phone number ${phoneNumber} is not on Twilio account ${account} (no IncomingPhoneNumber matches it exactly); ` +
        'check the number and that TWILIO_ACCOUNT_SID is the account (or subaccount) that owns it',
    );
  }
  // Twilio ignores voice_url while a trunk or a TwiML app handles the number: updating the URL
  // would "succeed" and calls would still not reach us. Detaching them is the owner's decision.
  if (number.trunkSid) {
    throw numberNotConfigurable(
      `phone number ${phoneNumber} (${number.sid}) is routed through SIP trunk ${number.trunkSid}, so Twilio ignores its voice URL; ` +
        'remove it from the trunk first',
    );
  }
  if (number.voiceApplicationSid) {
    throw numberNotConfigurable(
      `phone number ${phoneNumber} (${number.sid}) is handled by TwiML app ${number.voiceApplicationSid}, so Twilio ignores its voice URL; ` +
        "set the app's voice URL instead, or detach the app from the number first",
    );
  }

  const updated = await attempt(`update the voice webhook of ${phoneNumber} (${number.sid}) on Twilio account ${account}`, () =>
    client.incomingPhoneNumbers(number.sid).update({ voiceUrl, voiceMethod: 'POST' }),
  );
  return {
    sid: updated.sid,
    phoneNumber: updated.phoneNumber,
    // An unconfigured number reports "" or null depending on its history.
    previousVoiceUrl: number.voiceUrl ? number.voiceUrl : null,
    voiceUrl: updated.voiceUrl,
  };
}

/**
 * Ends a call through the REST API, which (unlike closing the media stream) does not depend on
 * what TwiML follows `<Connect>`. A call that is already over answers 404 / 20404.
 */
export async function hangUpCall(client: TwilioClient, callSid: string): Promise<'completed' | 'already-ended'> {
  // The SID becomes a URL path segment; anything but a call SID is a caller bug.
  if (!CALL_SID.test(callSid)) throw new TwilioInputError(`not a Twilio call SID (CA + 32 hex digits): "${callSid}"`);
  try {
    await client.calls(callSid).update({ status: 'completed' });
    return 'completed';
  } catch (err) {
    const failure = restFailure(err);
    if (failure !== null && (failure.status === 404 || failure.code === 20404)) return 'already-ended';
    throw apiError(`hang up call ${callSid} on Twilio account ${client.accountSid}`, err);
  }
}

/**
 * Cold transfer: replaces the TwiML the call is executing (our `<Connect><Stream>`) with `twiml`,
 * typically `dialTwiml(...)`. Twilio ends the media stream and runs the new document. A call that
 * is already over answers 404 / 20404.
 */
export async function transferCall(client: TwilioClient, callSid: string, twiml: string): Promise<'redirected' | 'already-ended'> {
  return replaceCallTwiml(client, callSid, twiml, 'transfer');
}

/**
 * Replaces the TwiML a live call executes with `twiml` (`what` names the purpose in errors): the
 * transfer's `<Dial>`, or an answering machine's `<Say>` and `<Hangup/>` when the process holding
 * the call's stream is not this one. A call that is already over answers 404 / 20404.
 */
export async function replaceCallTwiml(client: TwilioClient, callSid: string, twiml: string, what: string): Promise<'redirected' | 'already-ended'> {
  if (!CALL_SID.test(callSid)) throw new TwilioInputError(`not a Twilio call SID (CA + 32 hex digits): "${callSid}"`);
  if (twiml.trim() === '') throw new TwilioInputError(`empty TwiML for the ${what} of call ${callSid}`);
  try {
    await client.calls(callSid).update({ twiml });
    return 'redirected';
  } catch (err) {
    const failure = restFailure(err);
    if (failure !== null && (failure.status === 404 || failure.code === 20404)) return 'already-ended';
    throw apiError(`${what} call ${callSid} on Twilio account ${client.accountSid}`, err);
  }
}

export interface PlaceCallRequest {
  /** the callee, E.164 */
  to: string;
  /** the caller id, E.164: a number of the account (TWILIO_FROM_NUMBER) */
  from: string;
  /** where Twilio fetches the call's TwiML (POST) once it is answered */
  url: string;
  /** answering-machine detection's verdict goes here (POST); null: no detection */
  amdStatusCallback: string | null;
}

/**
 * Places a call (`calls.create`). With a status callback, Twilio detects an answering machine
 * asynchronously (DetectMessageEnd: the verdict comes once a machine's message has ended, so
 * a voicemail lands after the beep) while `url`'s TwiML already runs.
 */
export async function placeCall(client: TwilioClient, request: PlaceCallRequest): Promise<{ callSid: string; status: string }> {
  assertE164(request.to);
  assertE164(request.from);
  parseHttpsUrl(request.url, 'answer URL');
  if (request.amdStatusCallback !== null) parseHttpsUrl(request.amdStatusCallback, 'AMD status callback URL');
  const amd =
    request.amdStatusCallback === null
      ? {}
      : { machineDetection: 'DetectMessageEnd', asyncAmd: 'true', asyncAmdStatusCallback: request.amdStatusCallback, asyncAmdStatusCallbackMethod: 'POST' };
  const call = await attempt(`place a call to ${request.to} from ${request.from} on Twilio account ${client.accountSid}`, () =>
    client.calls.create({ to: request.to, from: request.from, url: request.url, method: 'POST', ...amd }),
  );
  return { callSid: call.sid, status: String(call.status) };
}

/**
 * What Twilio says of a call: its status (`queued`, `ringing`, `in-progress`, `canceled`,
 * `completed`, `busy`, `failed`, `no-answer`), or that the account has no such call (404 / 20404).
 * The status is passed on as Twilio wrote it: an undocumented value is still a definite answer,
 * and deciding what it means is the caller's business.
 */
export type CallStatusResult = { kind: 'found'; status: string } | { kind: 'not-found' };

/**
 * Reads a call's status. Same conventions as hangUpCall: a malformed SID is a TwilioInputError
 * (no request), 404 / 20404 is an answer (`not-found`), anything else that goes wrong (other HTTP
 * errors, network, timeout) is a TwilioApiError.
 */
export async function callStatus(client: TwilioClient, callSid: string): Promise<CallStatusResult> {
  if (!CALL_SID.test(callSid)) throw new TwilioInputError(`not a Twilio call SID (CA + 32 hex digits): "${callSid}"`);
  const operation = `read the status of call ${callSid} on Twilio account ${client.accountSid}`;
  let status: unknown;
  try {
    // The SDK types `status` as its enum; at run time it is whatever Twilio sent.
    ({ status } = await client.calls(callSid).fetch());
  } catch (err) {
    const failure = restFailure(err);
    if (failure !== null && (failure.status === 404 || failure.code === 20404)) return { kind: 'not-found' };
    throw apiError(operation, err);
  }
  // A 2xx without a status says nothing about the call: not an answer to act on.
  if (typeof status !== 'string' || status === '') throw new TwilioApiError(`${operation}: the answer carries no call status`, null, null);
  return { kind: 'found', status };
}

/**
 * Sends every request to `base` instead of Twilio, keeping path and query.
 *
 * Why a custom httpClient rather than overwriting `client.api.baseUrl`: `httpClient` is the
 * SDK's documented extension point (ClientOpts.httpClient, a RequestClient), it sits below every
 * domain and below pagination (whose next-page URLs may be absolute), and it runs after the SDK
 * has applied TWILIO_EDGE / TWILIO_REGION to the hostname — which would mangle an IP base set as
 * a domain's baseUrl. Rewriting every host, not only api.twilio.com, means a test client can
 * never reach the real Twilio with test credentials.
 */
class RebasedRequestClient extends twilio.RequestClient {
  private readonly prefix: string;

  constructor(base: URL, timeoutMs: number | undefined) {
    super(timeoutMs === undefined ? {} : { timeout: timeoutMs });
    this.prefix = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
  }

  override request<TData>(opts: RequestClient.RequestOptions<TData>) {
    const target = new URL(opts.uri);
    return super.request({ ...opts, uri: `${this.prefix}${target.pathname}${target.search}` });
  }
}

export interface TwilioCredentials {
  accountSid: string;
  authToken: string;
  /** Tests only: a local fake of the REST API (e.g. `http://127.0.0.1:PORT`) that gets every request. */
  apiBaseUrl?: string;
  /**
   * Per-request timeout (the SDK's default is 30 s). A lookup on a call's critical path sets it to
   * its own deadline, so that a request given up on does not linger for half a minute.
   */
  requestTimeoutMs?: number;
}

export function createTwilioClient({ accountSid, authToken, apiBaseUrl, requestTimeoutMs }: TwilioCredentials): TwilioClient {
  // Checked here because the SDK's own message ("accountSid must start with AC") omits the value.
  if (!ACCOUNT_SID.test(accountSid)) throw new TwilioInputError(`TWILIO_ACCOUNT_SID must be an account SID (AC + 32 hex digits), got "${accountSid}"`);
  if (authToken === '') throw new TwilioInputError('TWILIO_AUTH_TOKEN is empty');
  if (requestTimeoutMs !== undefined && !(Number.isInteger(requestTimeoutMs) && requestTimeoutMs > 0)) {
    throw new TwilioInputError(`request timeout must be a positive number of ms, got ${requestTimeoutMs}`);
  }
  if (apiBaseUrl === undefined) return twilio(accountSid, authToken, requestTimeoutMs === undefined ? {} : { timeout: requestTimeoutMs });
  return twilio(accountSid, authToken, { httpClient: new RebasedRequestClient(parseHttpsUrl(apiBaseUrl, 'Twilio API base URL'), requestTimeoutMs) });
}
