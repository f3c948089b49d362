/**
 * What an outbound call is asked to be (the body of POST /calls), checked, and how it travels to
 * the callbacks of that call. Pure.
 *
 * Profile, context and detection ride in the query of the callback URLs handed to Twilio
 * (`/outbound-answer?…`, `/amd-status?…`) rather than in this process's memory: Twilio signs each
 * callback over its full URL, query included, so the values come back authenticated, and any
 * replica or worker can answer the call.
 */
import { CONTEXT_NAME } from '../agent/template.js';
import { RESERVED_PARAMETERS, parameterValue } from './twiml-contract.js';

/** E.164 as Twilio dials it: +, a country code not starting with 0, at most 15 digits. */
const E164 = /^\+[1-9]\d{1,14}$/;
/** Keys of a call's context, each a `<Stream>` parameter and a `{{context.<key>}}`. */
export const MAX_CONTEXT_KEYS = 10;
/** Short enough that the whole context fits Twilio's callback URL several times over. */
export const MAX_CONTEXT_KEY_CHARS = 40;
export const MAX_CONTEXT_VALUE_CHARS = 200;
/** POST /calls bodies beyond this are refused before parsing (413). */
export const MAX_OUTBOUND_BODY_BYTES = 8 * 1024;

const BODY_KEYS: readonly string[] = ['to', 'profile', 'context', 'amd'];
const QUERY_PROFILE = 'profile';
const QUERY_CONTEXT = 'context';
const QUERY_AMD = 'amd';

/** How an outbound call goes out and whom its agent believes it is talking to. */
export interface OutboundCall {
  to: string;
  /** a profile by name; null: the caller id's number (TWILIO_FROM_NUMBER) decides, as `numbers` says */
  profile: string | null;
  /** caller context for the agent: `{{context.<key>}}` */
  context: Record<string, string>;
  /** answering-machine detection */
  amd: boolean;
}

/** What the callbacks of the call need: the request without its number. */
export type OutboundCallbackState = Omit<OutboundCall, 'to'>;

export type OutboundParse = { ok: true; call: OutboundCall } | { ok: false; problems: string[] };

/**
 * The body of POST /calls, or every problem with it, each naming its field. `profiles`: the
 * profile names that exist (the default one included).
 */
export function parseOutboundRequest(body: unknown, profiles: readonly string[]): OutboundParse {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, problems: ['body must be a JSON object {"to": "+15551234567", "profile"?: "…", "context"?: {…}, "amd"?: true}'] };
  }
  const raw = body as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!BODY_KEYS.includes(key)) problems.push(`${key} is not a known field (known: ${BODY_KEYS.join(', ')})`);
  }
  const to = raw['to'];
  if (typeof to !== 'string' || !E164.test(to)) problems.push(`to must be an E.164 phone number (+ then country code and number, e.g. +15551234567), got ${describe(to)}`);

  let profile: string | null = null;
  if (raw['profile'] !== undefined && raw['profile'] !== null) {
    const p = raw['profile'];
    if (typeof p !== 'string') problems.push(`profile must be a string, got ${describe(p)}`);
    else if (!profiles.includes(p)) problems.push(`profile "${p.slice(0, 64)}" does not exist (known: ${profiles.join(', ')})`);
    else profile = p;
  }

  const context = parseContext(raw['context'], problems);

  const amdRaw = raw['amd'];
  if (amdRaw !== undefined && typeof amdRaw !== 'boolean') problems.push(`amd must be true or false, got ${describe(amdRaw)}`);

  if (problems.length > 0 || typeof to !== 'string') return { ok: false, problems };
  return { ok: true, call: { to, profile, context, amd: amdRaw === true } };
}

function parseContext(v: unknown, problems: string[]): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`context must be an object of strings {"name": "Ann", …}, got ${describe(v)}`);
    return {};
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_CONTEXT_KEYS) problems.push(`context has ${entries.length} keys, at most ${MAX_CONTEXT_KEYS} are allowed`);
  const context: Record<string, string> = {};
  for (const [key, value] of entries.slice(0, MAX_CONTEXT_KEYS + 1)) {
    const field = `context.${key.slice(0, MAX_CONTEXT_KEY_CHARS + 1)}`;
    if (key.length > MAX_CONTEXT_KEY_CHARS || !CONTEXT_NAME.test(key)) {
      problems.push(`${field} is not a valid key: 1-${MAX_CONTEXT_KEY_CHARS} of A-Z a-z 0-9 _ -`);
      continue;
    }
    // These names say who calls or steer the stream: context under them would forge those.
    if (RESERVED_PARAMETERS.has(key)) {
      problems.push(`${field} is a reserved name (${[...RESERVED_PARAMETERS].join(', ')})`);
      continue;
    }
    if (typeof value !== 'string') {
      problems.push(`${field} must be a string (context is a flat map of strings), got ${describe(value)}`);
      continue;
    }
    if (Array.from(value).length > MAX_CONTEXT_VALUE_CHARS) {
      problems.push(`${field} must be at most ${MAX_CONTEXT_VALUE_CHARS} characters`);
      continue;
    }
    // As the `<Parameter>` will carry it (control characters become spaces), so the call token
    // binds exactly what Twilio delivers.
    context[key] = parameterValue(value, MAX_CONTEXT_VALUE_CHARS);
  }
  return context;
}

/** The query of the call's callback URLs. Only present values: a bare URL for a bare call. */
export function callbackQuery(state: OutboundCallbackState): string {
  const q = new URLSearchParams();
  if (state.profile !== null) q.set(QUERY_PROFILE, state.profile);
  if (Object.keys(state.context).length > 0) q.set(QUERY_CONTEXT, JSON.stringify(state.context));
  if (state.amd) q.set(QUERY_AMD, '1');
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

/**
 * The state a signed callback's query carries, checked again with the same bounds (it was
 * signed, so a failure means a bug or a changed limit across a deploy, not an attacker): null
 * when it does not parse.
 */
export function callbackStateFrom(query: URLSearchParams, profiles: readonly string[]): OutboundCallbackState | null {
  const profile = query.get(QUERY_PROFILE);
  let context: unknown = undefined;
  const contextRaw = query.get(QUERY_CONTEXT);
  if (contextRaw !== null) {
    try {
      context = JSON.parse(contextRaw);
    } catch {
      return null;
    }
  }
  const amd = query.get(QUERY_AMD);
  if (amd !== null && amd !== '1') return null;
  if (profile !== null && !profiles.includes(profile)) return null;
  const problems: string[] = [];
  const parsedContext = parseContext(context, problems);
  if (problems.length > 0) return null;
  return { profile, context: parsedContext, amd: amd === '1' };
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const json = JSON.stringify(v);
  return json === undefined ? typeof v : json.slice(0, 80);
}
