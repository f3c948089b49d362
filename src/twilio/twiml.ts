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
