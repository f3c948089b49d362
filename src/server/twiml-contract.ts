/**
 * What the TwiML this service answers and the requests Twilio then makes back agree on: the
 * paths Twilio calls, and the `<Parameter>`s a `<Stream>` carries to the stream's `start`. Written
 * by the webhook routes, read by the media-stream route; kept here so neither imports the other.
 */
import type { CallContext } from '../agent/template.js';
import { CALL_TOKEN_PARAMETER } from '../twilio/call-token.js';

/** Route of the voice webhook: Twilio posts every incoming call here. */
export const INCOMING_CALL_PATH = '/incoming-call';
/** Route Twilio posts the `<Dial>` outcome of a transfer to. */
export const TRANSFER_STATUS_PATH = '/transfer-status';
/**
 * An outbound call (POST /calls) is answered: Twilio fetches its TwiML here. Its query carries
 * the call's profile, context and whether detection runs (src/server/outbound-request.ts), and
 * Twilio signs the URL with the query, so those values are as authentic as the form.
 */
export const OUTBOUND_ANSWER_PATH = '/outbound-answer';
/** Twilio posts an outbound call's answering-machine verdict here (AsyncAmdStatusCallback). */
export const AMD_STATUS_PATH = '/amd-status';
/** The Twilio callbacks whose form is signed over their URL under PUBLIC_URL. */
export type SignedCallbackPath = typeof INCOMING_CALL_PATH | typeof TRANSFER_STATUS_PATH | typeof OUTBOUND_ANSWER_PATH | typeof AMD_STATUS_PATH;

/**
 * `<Stream>` parameters: who is calling and which number they dialled, the call's direction, the
 * profile it asks for by name, and why a stream is a caller coming back from a transfer. Every
 * other parameter is caller context (`{{context.<name>}}`). With TWILIO_AUTH_TOKEN the call token
 * binds them all (src/twilio/call-token.ts).
 */
export const FROM_PARAMETER = 'from';
export const TO_PARAMETER = 'to';
export const DIRECTION_PARAMETER = 'direction';
/** Selects a profile by its name (an outbound call's `profile`); else the number decides. */
export const PROFILE_PARAMETER = 'profile';
export const RESUME_PARAMETER = 'resume';
export const DIAL_STATUS_PARAMETER = 'dialStatus';
/** Set (to AMD_PENDING) on an outbound call's stream while Twilio's answering-machine detection runs. */
export const AMD_PARAMETER = 'amd';
export const AMD_PENDING = 'pending';
/** The RESUME_PARAMETER value of a caller whose transfer target did not answer. */
export const TRANSFER_FAILED = 'transfer-failed';

/** Parameters that are not caller context: they say how the call came to the agent, or steer the stream. */
const NOT_CONTEXT: ReadonlySet<string> = new Set([
  CALL_TOKEN_PARAMETER,
  FROM_PARAMETER,
  TO_PARAMETER,
  DIRECTION_PARAMETER,
  PROFILE_PARAMETER,
  RESUME_PARAMETER,
  DIAL_STATUS_PARAMETER,
  AMD_PARAMETER,
]);
/** Parameters of a stream that describe its call, kept for the caller's return from a transfer. */
const CALL_DESCRIPTION: ReadonlySet<string> = new Set([FROM_PARAMETER, TO_PARAMETER, DIRECTION_PARAMETER, PROFILE_PARAMETER]);

/** Longest value of a parameter that names a party or the direction: a number, a SIP URI. */
const MAX_PARTY_CHARS = 64;
/** Twilio limits a `<Parameter>` to 500 characters, name and value together. */
export const MAX_PARAMETER_CHARS = 400;

/** Names a context key may not take: they steer the stream, or say who is calling. */
export const RESERVED_PARAMETERS: ReadonlySet<string> = NOT_CONTEXT;

/** A stream whose call awaits its answering-machine verdict (set by POST /outbound-answer). */
export function isAmdPending(customParameters: Readonly<Record<string, string>>): boolean {
  return customParameters[AMD_PARAMETER] === AMD_PENDING;
}

/** A stream that says it brings the caller back from a transfer (set by POST /transfer-status). */
export function isResume(customParameters: Readonly<Record<string, string>>): boolean {
  return customParameters[RESUME_PARAMETER] === TRANSFER_FAILED;
}

/**
 * A value as a `<Parameter>` may carry it so that `start` brings back exactly what the token was
 * signed over: XML drops or rewrites control characters in an attribute (Twilio would deliver
 * another value than the one signed), so they become spaces; and it is bounded.
 */
export function parameterValue(raw: string, maxChars: number = MAX_PARAMETER_CHARS): string {
  return Array.from(raw.replace(/\p{Cc}/gu, ' ').trim()).slice(0, maxChars).join('');
}

/** The parameters of a new call's `<Stream>` that describe it; absent facts are left out. */
export function callParameters(call: { from: string | null; to: string | null; direction: string | null }): Record<string, string> {
  const parameters: Record<string, string> = {};
  const set = (name: string, v: string | null): void => {
    const value = v === null ? '' : parameterValue(v, MAX_PARTY_CHARS);
    if (value !== '') parameters[name] = value;
  };
  set(FROM_PARAMETER, call.from);
  set(TO_PARAMETER, call.to);
  set(DIRECTION_PARAMETER, call.direction);
  return parameters;
}

/** What a stream's parameters say of its call: the parties, the direction, a profile, the context. */
export function describedCall(customParameters: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(customParameters).filter(([name]) => CALL_DESCRIPTION.has(name) || !NOT_CONTEXT.has(name)));
}

/** The caller context of a stream (every parameter that is not one of the above), for the templates. */
export function callContextFrom(callSid: string, customParameters: Readonly<Record<string, string>>, nowIso: string): CallContext {
  return {
    callSid,
    from: customParameters[FROM_PARAMETER] ?? null,
    to: customParameters[TO_PARAMETER] ?? null,
    direction: customParameters[DIRECTION_PARAMETER] ?? null,
    now: nowIso,
    custom: Object.fromEntries(Object.entries(customParameters).filter(([name]) => !NOT_CONTEXT.has(name))),
  };
}
