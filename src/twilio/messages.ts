/**
 * Twilio Media Streams wire messages (bidirectional `<Connect><Stream>`), typed at the boundary.
 * Each inbound message has one schema; its type is derived from it, and a frame is parsed into
 * a typed value or a typed error naming the field. Nothing past this module sees untyped JSON.
 *
 * This runs on every 20 ms media frame of every call: a media frame in Twilio's own spelling is
 * read by one pattern that checks every field the schema checks; any other frame is JSON.parse'd
 * once, checked by the compiled validator of its event, and returned as that same object
 * (defaults filled in place), with no copy.
 */
import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';
import { compile } from '../validation/validator.js';
import type { Problem, Validator } from '../validation/validator.js';

/**
 * Strict base64 alphabet with padding; Twilio never sends URL-safe or unpadded payloads. A
 * length in fours (the lookahead), the alphabet, then at most two `=`: the same strings as
 * `(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?`, matched in about half the
 * time, which counts on the path of every media frame.
 */
const BASE64_PATTERN = '^(?=(?:....)*$)[A-Za-z0-9+/]*={0,2}$';
const BASE64_RE = new RegExp(BASE64_PATTERN);

export function isStrictBase64(s: string): boolean {
  return s.length % 4 === 0 && BASE64_RE.test(s);
}

export const MediaFormatSchema = Type.Object({
  encoding: Type.String({ default: 'audio/x-mulaw' }),
  sampleRate: Type.Number({ default: 8000 }),
  channels: Type.Number({ default: 1 }),
});
export type MediaFormat = Static<typeof MediaFormatSchema>;

export const TwilioConnectedSchema = Type.Object({
  event: Type.Literal('connected'),
  protocol: Type.String({ default: 'Call' }),
  version: Type.String({ default: '' }),
});
export type TwilioConnected = Static<typeof TwilioConnectedSchema>;

export const TwilioStartSchema = Type.Object({
  event: Type.Literal('start'),
  sequenceNumber: Type.String({ default: '0' }),
  /** absent: the stream's own `start.streamSid` (filled in by the parser) */
  streamSid: Type.Optional(Type.String()),
  start: Type.Object({
    streamSid: Type.String(),
    accountSid: Type.String(),
    callSid: Type.String(),
    tracks: Type.Array(Type.String(), { default: ['inbound'] }),
    customParameters: Type.Record(Type.String(), Type.String(), { default: {} }),
    mediaFormat: Type.Object(MediaFormatSchema.properties, { default: {} }),
  }),
});
export type TwilioStart = Omit<Static<typeof TwilioStartSchema>, 'streamSid'> & { streamSid: string };

export const TwilioMediaSchema = Type.Object({
  event: Type.Literal('media'),
  sequenceNumber: Type.String({ default: '0' }),
  streamSid: Type.String(),
  media: Type.Object({
    track: Type.String({ default: 'inbound' }),
    chunk: Type.String({ default: '0' }),
    /** ms since the stream started; Twilio may skip silent frames, leaving gaps. */
    timestamp: Type.String({ default: '0' }),
    /** base64 mu-law 8 kHz */
    payload: Type.String({ pattern: BASE64_PATTERN, expected: 'valid base64 (padded, of A-Z a-z 0-9 + /)' }),
  }),
});
export type TwilioMedia = Static<typeof TwilioMediaSchema>;

export const TwilioMarkEchoSchema = Type.Object({
  event: Type.Literal('mark'),
  sequenceNumber: Type.String({ default: '0' }),
  streamSid: Type.String(),
  mark: Type.Object({ name: Type.String() }),
});
export type TwilioMarkEcho = Static<typeof TwilioMarkEchoSchema>;

export const TwilioDtmfSchema = Type.Object({
  event: Type.Literal('dtmf'),
  sequenceNumber: Type.String({ default: '0' }),
  streamSid: Type.String(),
  dtmf: Type.Object({ track: Type.String({ default: 'inbound_track' }), digit: Type.String() }),
});
export type TwilioDtmf = Static<typeof TwilioDtmfSchema>;

export const TwilioStopSchema = Type.Object({
  event: Type.Literal('stop'),
  sequenceNumber: Type.String({ default: '0' }),
  streamSid: Type.String(),
  stop: Type.Object({ accountSid: Type.String({ default: '' }), callSid: Type.String({ default: '' }) }, { default: {} }),
});
export type TwilioStop = Static<typeof TwilioStopSchema>;

export type TwilioInbound = TwilioConnected | TwilioStart | TwilioMedia | TwilioMarkEcho | TwilioDtmf | TwilioStop;

/** Messages we send to Twilio. Twilio rejects unknown fields (31951): keep these exact. */
export interface TwilioOutboundMedia {
  event: 'media';
  streamSid: string;
  media: { payload: string };
}

export interface TwilioOutboundMark {
  event: 'mark';
  streamSid: string;
  mark: { name: string };
}

export interface TwilioOutboundClear {
  event: 'clear';
  streamSid: string;
}

export type TwilioOutbound = TwilioOutboundMedia | TwilioOutboundMark | TwilioOutboundClear;

export type TwilioParseErrorReason =
  | 'not-json'
  | 'not-object'
  | 'unknown-event'
  | 'missing-field'
  | 'wrong-type'
  | 'bad-payload';

export interface TwilioParseError {
  reason: TwilioParseErrorReason;
  detail: string;
}

export type TwilioParseResult =
  | { ok: true; message: TwilioInbound }
  | { ok: false; error: TwilioParseError };

/** Just enough to dispatch: an object with a string `event`. */
const Envelope = compile(Type.Object({ event: Type.String() }));

/**
 * One inbound event: its validator, and the text fields Twilio might send as numbers (the parser
 * has always read a number there as its string, so the schema sees text).
 */
interface EventRule {
  validator: Validator<TSchema>;
  /** such fields of the message itself */
  text: readonly string[];
  /** the event's own object (`media` of a media message), if it has one */
  body: string | null;
  /** such fields of that object */
  bodyText: readonly string[];
}

const ENVELOPE_TEXT = ['sequenceNumber', 'streamSid'] as const;

const RULES = new Map<string, EventRule>([
  ['connected', { validator: compile(TwilioConnectedSchema), body: null, text: ['protocol', 'version'], bodyText: [] }],
  ['start', { validator: compile(TwilioStartSchema), body: 'start', text: ENVELOPE_TEXT, bodyText: ['streamSid', 'accountSid', 'callSid'] }],
  // The payload is not in bodyText: a numeric payload is a wrong type, not a tolerated spelling.
  ['media', { validator: compile(TwilioMediaSchema), body: 'media', text: ENVELOPE_TEXT, bodyText: ['track', 'chunk', 'timestamp'] }],
  ['mark', { validator: compile(TwilioMarkEchoSchema), body: 'mark', text: ENVELOPE_TEXT, bodyText: ['name'] }],
  ['dtmf', { validator: compile(TwilioDtmfSchema), body: 'dtmf', text: ENVELOPE_TEXT, bodyText: ['track', 'digit'] }],
  ['stop', { validator: compile(TwilioStopSchema), body: 'stop', text: ENVELOPE_TEXT, bodyText: ['accountSid', 'callSid'] }],
]);

/**
 * A media frame exactly as Twilio writes it (fields in Twilio's order, streamSid before or after
 * `media`, no spaces, digits in the numeric fields, a plain base64 payload): the frame every call
 * sends 50 times a second. JSON.parse interns every string value of up to 10 characters, and
 * sequenceNumber, chunk and timestamp change on every frame: a string-table lookup each, and a
 * new old-space string for each value not seen yet (up to two per frame), kept until a full GC.
 * On the media path that was ~5 % of the bridge's CPU. The pattern checks what the schema checks
 * but the payload's whole quads, tested apart. Any other spelling goes the general way.
 */
const CANONICAL_MEDIA =
  /^\{"event":"media","sequenceNumber":"(\d{1,15})",(?:"streamSid":"([A-Za-z0-9]{1,64})",)?"media":\{"track":"(inbound|outbound)","chunk":"(\d{1,15})","timestamp":"(\d{1,15})","payload":"([A-Za-z0-9+/]*={0,2})"\}(?:,"streamSid":"([A-Za-z0-9]{1,64})")?\}$/;
const MEDIA_PREFIX = '{"event":"media",';

/** The frame as a media message if it is written the canonical way; null: parse it in general. */
export function canonicalMedia(text: string): TwilioMedia | null {
  if (!text.startsWith(MEDIA_PREFIX)) return null;
  const m = CANONICAL_MEDIA.exec(text);
  if (m === null) return null;
  const [, sequenceNumber, sidBefore, track, chunk, timestamp, payload, sidAfter] = m;
  // Exactly one streamSid, and a payload in whole base64 quads (the schema's rule).
  const streamSid = sidBefore ?? sidAfter;
  if (streamSid === undefined || (sidBefore !== undefined && sidAfter !== undefined)) return null;
  if (sequenceNumber === undefined || track === undefined || chunk === undefined || timestamp === undefined || payload === undefined) return null;
  if (payload.length % 4 !== 0) return null;
  return { event: 'media', sequenceNumber, streamSid, media: { track, chunk, timestamp, payload } };
}

/** Parse one text frame from Twilio. Never throws. */
export function parseTwilioMessage(text: string): TwilioParseResult {
  const media = canonicalMedia(text);
  if (media !== null) return { ok: true, message: media };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return failure('not-json', 'frame is not valid JSON');
  }
  return twilioMessageFrom(raw);
}

/**
 * An already parsed frame as a typed message, or why not. The value is checked and completed in
 * place (defaults, numbers as text) and returned as the message: pass a value you own.
 */
export function twilioMessageFrom(raw: unknown): TwilioParseResult {
  if (!Envelope.is(raw)) {
    const first = Envelope.problems()[0];
    return first?.field === '' ? failure('not-object', 'frame is not a JSON object') : failure('missing-field', 'event is missing or not a string');
  }
  const rule = RULES.get(raw.event);
  if (rule === undefined) return failure('unknown-event', `unknown event "${raw.event.slice(0, 40)}"`);
  const message: Record<string, unknown> = raw;
  numbersAsText(message, rule.text);
  const body = rule.body === null ? undefined : message[rule.body];
  if (typeof body === 'object' && body !== null) numbersAsText(body as Record<string, unknown>, rule.bodyText);
  if (!rule.validator.is(message)) return fieldFailure(rule.validator.problems()[0]);
  // A start without its own streamSid names the stream by the one inside it.
  if (message['event'] === 'start' && message['streamSid'] === undefined) message['streamSid'] = (message['start'] as { streamSid: string }).streamSid;
  // The event's validator has checked the value against the schema of exactly this event.
  return { ok: true, message: message as unknown as TwilioInbound };
}

/** Twilio sends these fields as strings; a number is tolerated and read as its string. */
function numbersAsText(o: Record<string, unknown>, keys: readonly string[]): void {
  for (const key of keys) {
    const v = o[key];
    if (typeof v === 'number') o[key] = String(v);
  }
}

function failure(reason: TwilioParseErrorReason, detail: string): TwilioParseResult {
  return { ok: false, error: { reason, detail } };
}

function fieldFailure(problem: Problem | undefined): TwilioParseResult {
  if (problem === undefined) return failure('wrong-type', 'frame does not match its event');
  const reason: TwilioParseErrorReason = problem.keyword === 'required' ? 'missing-field' : problem.field === 'media.payload' && problem.keyword === 'pattern' ? 'bad-payload' : 'wrong-type';
  return failure(reason, problem.message);
}

export function mediaMessage(streamSid: string, payload: string): TwilioOutboundMedia {
  return { event: 'media', streamSid, media: { payload } };
}

export function markMessage(streamSid: string, name: string): TwilioOutboundMark {
  return { event: 'mark', streamSid, mark: { name } };
}

export function clearMessage(streamSid: string): TwilioOutboundClear {
  return { event: 'clear', streamSid };
}
