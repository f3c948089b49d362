/** TwiML answers for the voice webhook. */
import twilio from 'twilio';

const { VoiceResponse } = twilio.twiml;

/**
 * `<Connect><Stream>` to our media endpoint. Per-call values travel as `<Parameter>`: Twilio
 * strips (or fails on) a query string in the stream URL.
 */
export function connectStreamTwiml(streamUrl: string, parameters: Record<string, string> = {}): string {
  const response = new VoiceResponse();
  const stream = response.connect().stream({ url: streamUrl });
  for (const [name, value] of Object.entries(parameters)) stream.parameter({ name, value });
  return response.toString();
}

/** The public base URL (https) turned into the stream's wss:// URL. */
export function streamUrlFrom(publicBase: string): string {
  const url = new URL(publicBase);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/media-stream`;
  url.search = '';
  url.hash = '';
  return url.toString();
}

/** Every line is taken (or the service is draining): say so and end the call. */
export function busyTwiml(): string {
  const response = new VoiceResponse();
  response.say('All our lines are busy right now. Please call again in a few minutes.');
  response.hangup();
  return response.toString();
}

const E164 = /^\+[1-9]\d{1,14}$/;
// A SIP URI as <Sip> takes it: the scheme, then user@host or host, with optional ;params.
const SIP_URI = /^sip:[^\s<>"]+$/i;

export interface DialOptions {
  /** Caller ID presented to the transfer target; null: Twilio's default (the caller's number). */
  callerId: string | null;
  /** Where Twilio POSTs the `<Dial>` outcome once the transferred leg ends or fails. */
  actionUrl: string;
  /** Seconds to let the target ring before giving up (Twilio's default is 30). */
  timeoutS?: number;
}

/**
 * Cold transfer: `<Dial>` the target, an E.164 number (`<Number>`) or a SIP URI (`<Sip>`).
 * Throws on any other target: it comes from configuration and would otherwise fail on the call.
 */
export function dialTwiml(target: string, { callerId, actionUrl, timeoutS = 20 }: DialOptions): string {
  const isNumber = E164.test(target);
  if (!isNumber && !SIP_URI.test(target)) {
    throw new Error(`transfer target must be an E.164 number (e.g. +15551234567) or a SIP URI (sip:user@host), got "${target}"`);
  }
  if (!Number.isInteger(timeoutS) || timeoutS < 5 || timeoutS > 600) {
    throw new Error(`dial timeout must be a whole number of seconds between 5 and 600, got ${timeoutS}`);
  }
  const response = new VoiceResponse();
  const dial = response.dial({
    action: actionUrl,
    method: 'POST',
    ...(callerId === null ? {} : { callerId }),
    timeout: timeoutS,
  });
  if (isNumber) dial.number(target);
  else dial.sip(target);
  return response.toString();
}

/**
 * An answering machine's message in Twilio's own voice, then the end of the call: what the REST
 * fallback leaves when the process holding the call's stream is not the one told of the machine.
 */
export function sayThenHangupTwiml(text: string): string {
  const response = new VoiceResponse();
  response.say(text);
  response.hangup();
  return response.toString();
}

/** Ends the call. */
export function hangupTwiml(): string {
  const response = new VoiceResponse();
  response.hangup();
  return response.toString();
}
