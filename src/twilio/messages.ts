/**
 * Twilio Media Streams wire messages (bidirectional `<Connect><Stream>`), typed at the boundary.
 * Inbound frames are parsed into a typed value or a typed error; nothing past this module
 * sees untyped JSON.
 */
import { isJsonObject } from '../util/json.js';
import type { JsonObject } from '../util/json.js';

export interface MediaFormat {
  encoding: string;
  sampleRate: number;
  channels: number;
}

export interface TwilioConnected {
  event: 'connected';
  protocol: string;
  version: string;
}

export interface TwilioStart {
  event: 'start';
  sequenceNumber: string;
  streamSid: string;
  start: {
    streamSid: string;
    accountSid: string;
    callSid: string;
    tracks: string[];
    customParameters: Record<string, string>;
    mediaFormat: MediaFormat;
  };
}

export interface TwilioMedia {
  event: 'media';
  sequenceNumber: string;
  streamSid: string;
  media: {
    track: string;
    chunk: string;
    /** ms since the stream started; Twilio may skip silent frames, leaving gaps. */
    timestamp: string;
    /** base64 mu-law 8 kHz */
    payload: string;
  };
}

export interface TwilioMarkEcho {
  event: 'mark';
  sequenceNumber: string;
  streamSid: string;
  mark: { name: string };
}

export interface TwilioDtmf {
  event: 'dtmf';
  sequenceNumber: string;
  streamSid: string;
  dtmf: { track: string; digit: string };
}

export interface TwilioStop {
  event: 'stop';
  sequenceNumber: string;
  streamSid: string;
  stop: { accountSid: string; callSid: string };
}

export type TwilioInbound =
  | TwilioConnected
  | TwilioStart
  | TwilioMedia
  | TwilioMarkEcho
  | TwilioDtmf
  | TwilioStop;

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

type Json = JsonObject;

class FieldError extends Error {
  constructor(
    readonly reason: TwilioParseErrorReason,
    detail: string,
  ) {
    super(detail);
  }
}

function obj(parent: Json, key: string, path: string): Json {
  const v = parent[key];
  if (v === undefined) throw new FieldError('missing-field', `${path}.${key} is missing`);
  if (!isJsonObject(v)) throw new FieldError('wrong-type', `${path}.${key} must be an object`);
  return v;
}

function str(parent: Json, key: string, path: string): string {
  const v = parent[key];
  if (v === undefined) throw new FieldError('missing-field', `${path}.${key} is missing`);
  // Twilio sends numbers as strings; tolerate a number but normalise to string.
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw new FieldError('wrong-type', `${path}.${key} must be a string`);
  return v;
}

function optStr(parent: Json, key: string, path: string, fallback: string): string {
  return parent[key] === undefined ? fallback : str(parent, key, path);
}

/** Strict base64 alphabet with padding; Twilio never sends URL-safe or unpadded payloads. */
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isStrictBase64(s: string): boolean {
  return s.length % 4 === 0 && BASE64_RE.test(s);
}

function parseStart(m: Json): TwilioStart {
  const start = obj(m, 'start', 'start');
  const mf = start['mediaFormat'];
  const mediaFormat: MediaFormat = isJsonObject(mf)
    ? {
        encoding: optStr(mf, 'encoding', 'start.mediaFormat', 'audio/x-mulaw'),
        sampleRate: Number(mf['sampleRate'] ?? 8000),
        channels: Number(mf['channels'] ?? 1),
      }
    : { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 };
  const cp = start['customParameters'];
  const customParameters: Record<string, string> = {};
  if (cp !== undefined) {
    if (!isJsonObject(cp)) throw new FieldError('wrong-type', 'start.customParameters must be an object');
    for (const [k, v] of Object.entries(cp)) {
      if (typeof v !== 'string') throw new FieldError('wrong-type', `start.customParameters.${k} must be a string`);
      customParameters[k] = v;
    }
  }
  const tracksRaw = start['tracks'];
  const tracks = Array.isArray(tracksRaw) ? tracksRaw.filter((t): t is string => typeof t === 'string') : ['inbound'];
  const streamSid = str(start, 'streamSid', 'start');
  return {
    event: 'start',
    sequenceNumber: optStr(m, 'sequenceNumber', 'start', '0'),
    streamSid: optStr(m, 'streamSid', 'start', streamSid),
    start: {
      streamSid,
      accountSid: str(start, 'accountSid', 'start'),
      callSid: str(start, 'callSid', 'start'),
      tracks,
      customParameters,
      mediaFormat,
    },
  };
}

function parseMedia(m: Json): TwilioMedia {
  const media = obj(m, 'media', 'media');
  if (typeof media['payload'] === 'number') throw new FieldError('wrong-type', 'media.payload must be a string');
  const payload = str(media, 'payload', 'media');
  if (!isStrictBase64(payload)) throw new FieldError('bad-payload', 'media.payload is not valid base64');
  return {
    event: 'media',
    sequenceNumber: optStr(m, 'sequenceNumber', 'media', '0'),
    streamSid: str(m, 'streamSid', 'media'),
    media: {
      track: optStr(media, 'track', 'media', 'inbound'),
      chunk: optStr(media, 'chunk', 'media', '0'),
      timestamp: optStr(media, 'timestamp', 'media', '0'),
      payload,
    },
  };
}

function parseObject(m: Json): TwilioInbound {
  const event = m['event'];
  if (typeof event !== 'string') throw new FieldError('missing-field', 'event is missing or not a string');
  switch (event) {
    case 'connected':
      return {
        event,
        protocol: optStr(m, 'protocol', 'connected', 'Call'),
        version: optStr(m, 'version', 'connected', ''),
      };
    case 'start':
      return parseStart(m);
    case 'media':
      return parseMedia(m);
    case 'mark': {
      const mark = obj(m, 'mark', 'mark');
      return {
        event,
        sequenceNumber: optStr(m, 'sequenceNumber', 'mark', '0'),
        streamSid: str(m, 'streamSid', 'mark'),
        mark: { name: str(mark, 'name', 'mark') },
      };
    }
    case 'dtmf': {
      const dtmf = obj(m, 'dtmf', 'dtmf');
      return {
        event,
        sequenceNumber: optStr(m, 'sequenceNumber', 'dtmf', '0'),
        streamSid: str(m, 'streamSid', 'dtmf'),
        dtmf: { track: optStr(dtmf, 'track', 'dtmf', 'inbound_track'), digit: str(dtmf, 'digit', 'dtmf') },
      };
    }
    case 'stop': {
      const stop = isJsonObject(m['stop']) ? (m['stop'] as Json) : {};
      return {
        event,
        sequenceNumber: optStr(m, 'sequenceNumber', 'stop', '0'),
        streamSid: str(m, 'streamSid', 'stop'),
        stop: {
          accountSid: optStr(stop, 'accountSid', 'stop', ''),
          callSid: optStr(stop, 'callSid', 'stop', ''),
        },
      };
    }
    default:
      throw new FieldError('unknown-event', `unknown event "${event.slice(0, 40)}"`);
  }
}

/** Parse one text frame from Twilio. Never throws. */
export function parseTwilioMessage(text: string): TwilioParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: { reason: 'not-json', detail: 'frame is not valid JSON' } };
  }
  if (!isJsonObject(raw)) return { ok: false, error: { reason: 'not-object', detail: 'frame is not a JSON object' } };
  try {
    return { ok: true, message: parseObject(raw) };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, error: { reason: err.reason, detail: err.message } };
    throw err;
  }
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
