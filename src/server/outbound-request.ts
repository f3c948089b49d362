/**
 * What an outbound call is asked to be (the body of POST /calls), checked, and how it travels to
 * the callbacks of that call. Pure.
 *
 * Profile, context and detection ride in the query of the callback URLs handed to Twilio
 * (`/outbound-answer?…`, `/amd-status?…`) rather than in this process's memory: Twilio signs each
 * callback over its full URL, query included, so the values come back authenticated, and any
 * replica or worker can answer the call.
 */
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { RESERVED_PARAMETERS, parameterValue } from './twiml-contract.js';
import { compile, Nullable } from '../validation/validator.js';
import type { Problem } from '../validation/validator.js';

/** E.164 as Twilio dials it: +, a country code not starting with 0, at most 15 digits. */
const E164 = '^\\+[1-9]\\d{1,14}$';
/** Keys of a call's context, each a `<Stream>` parameter and a `{{context.<key>}}`. */
export const MAX_CONTEXT_KEYS = 10;
/** Short enough that the whole context fits Twilio's callback URL several times over. */
export const MAX_CONTEXT_KEY_CHARS = 40;
export const MAX_CONTEXT_VALUE_CHARS = 200;
/** POST /calls bodies beyond this are refused before parsing (413). */
export const MAX_OUTBOUND_BODY_BYTES = 8 * 1024;

const QUERY_PROFILE = 'profile';
const QUERY_CONTEXT = 'context';
const QUERY_AMD = 'amd';

/**
 * Caller context: a flat map of strings. Its keys are template names (`{{context.<key>}}`) and
 * `<Stream>` parameters, so the names that say who calls or steer the stream are refused: context
 * under them would forge those. null reads as no context.
 */
const ContextMap = Type.Record(
  Type.String(),
  Type.String({ maxLength: MAX_CONTEXT_VALUE_CHARS, expected: `text of at most ${MAX_CONTEXT_VALUE_CHARS} characters (context is a flat map of strings)` }),
  {
    maxProperties: MAX_CONTEXT_KEYS,
    expected: `an object of at most ${MAX_CONTEXT_KEYS} strings {"name": "Ann", …}`,
    propertyNames: {
      // a template name (CONTEXT_NAME of src/agent/template.ts), shorter
      pattern: `^[A-Za-z0-9_-]{1,${MAX_CONTEXT_KEY_CHARS}}$`,
      not: { enum: [...RESERVED_PARAMETERS] },
      expected: `1-${MAX_CONTEXT_KEY_CHARS} of A-Z a-z 0-9 _ -, and not a reserved name (${[...RESERVED_PARAMETERS].join(', ')})`,
    },
  },
);
export const CallContextSchema = Nullable(ContextMap);

/** The body of POST /calls. */
export const OutboundRequestSchema = Type.Object(
  {
    to: Type.String({ pattern: E164, expected: 'an E.164 phone number (+ then country code and number, e.g. +15551234567)' }),
    /** a profile by name; absent or null: the caller id's number (TWILIO_FROM_NUMBER) decides, as `numbers` says */
    profile: Type.Optional(Type.Unsafe<string | null>({ type: ['string', 'null'], expected: 'the name of a profile' })),
    context: Type.Optional(CallContextSchema),
    /** answering-machine detection */
    amd: Type.Optional(Type.Boolean({ expected: 'true or false' })),
  },
  { additionalProperties: false, expected: 'a JSON object {"to": "+15551234567", "profile"?: "…", "context"?: {…}, "amd"?: true}' },
);
export type OutboundRequestBody = Static<typeof OutboundRequestSchema>;

const outboundBody = compile(OutboundRequestSchema, { root: 'body' });
const callContext = compile(CallContextSchema, { root: 'context' });
/** Problems are listed in this order of their top-level field, unknown fields first. */
const FIELD_ORDER: readonly string[] = Object.keys(OutboundRequestSchema.properties);

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
  const checked = outboundBody.check(body);
  return checked.ok ? acceptOutboundRequest(checked.value, profiles) : refuseOutboundRequest(checked.problems, body, profiles);
}

/** A body that passed OutboundRequestSchema (the route's schema): the call, if its profile exists. */
export function acceptOutboundRequest(body: OutboundRequestBody, profiles: readonly string[]): OutboundParse {
  const missing = missingProfile(body.profile, profiles);
  if (missing !== null) return { ok: false, problems: [missing] };
  return { ok: true, call: { to: body.to, profile: body.profile ?? null, context: asParameters(body.context), amd: body.amd === true } };
}

/**
 * A body that failed OutboundRequestSchema with `problems`: every problem, the profile's too (it
 * is only known here, not to the schema), ordered by field.
 */
export function refuseOutboundRequest(problems: readonly Problem[], body: unknown, profiles: readonly string[]): { ok: false; problems: string[] } {
  const profile = typeof body === 'object' && body !== null ? (body as { profile?: unknown }).profile : undefined;
  const missing = typeof profile === 'string' ? missingProfile(profile, profiles) : null;
  const ranked = problems.map((p) => ({ rank: FIELD_ORDER.indexOf(p.field.split(/[.[]/)[0] ?? ''), message: p.message }));
  if (missing !== null) ranked.push({ rank: FIELD_ORDER.indexOf('profile'), message: missing });
  return { ok: false, problems: ranked.sort((a, b) => a.rank - b.rank).map((p) => p.message) };
}

function missingProfile(profile: string | null | undefined, profiles: readonly string[]): string | null {
  if (typeof profile !== 'string' || profiles.includes(profile)) return null;
  return `profile "${profile.slice(0, 64)}" does not exist (known: ${profiles.join(', ')})`;
}

/**
 * Checked context as the `<Parameter>`s will carry it (control characters become spaces), so the
 * call token binds exactly what Twilio delivers.
 */
function asParameters(context: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(context ?? {})) out[key] = parameterValue(value, MAX_CONTEXT_VALUE_CHARS);
  return out;
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
  if (context !== undefined && !callContext.is(context)) return null;
  return { profile, context: asParameters(context), amd: amd === '1' };
}
