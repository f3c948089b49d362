import { describe, expect, it } from 'vitest';
import { parseTwilioMessage } from '../../src/twilio/messages.js';
import { connectStreamTwiml, streamUrlFrom } from '../../src/twilio/twiml.js';
import { authHeaders } from '../../src/realtime/connection.js';
import { startFrame } from '../support/twilio-frames.js';

const START = startFrame();

describe('Twilio message parsing', () => {
  it('parses the real message shapes', () => {
    const start = parseTwilioMessage(JSON.stringify(START));
    expect(start).toEqual({ ok: true, message: START });
    const media = parseTwilioMessage(
      '{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"160","payload":"//8="}}',
    );
    expect(media.ok && media.message.event === 'media' && media.message.media.timestamp).toBe('160');
    const mark = parseTwilioMessage('{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"cb:0:1"}}');
    expect(mark.ok && mark.message.event === 'mark' && mark.message.mark.name).toBe('cb:0:1');
    const stop = parseTwilioMessage('{"event":"stop","sequenceNumber":"6","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}');
    expect(stop.ok && stop.message.event).toBe('stop');
  });

  it.each([
    ['not json', '{', 'not-json'],
    ['an array', '[1]', 'not-object'],
    ['an unknown event', '{"event":"party"}', 'unknown-event'],
    ['media without a payload', '{"event":"media","streamSid":"MZ1","media":{}}', 'missing-field'],
    ['media with a numeric payload', '{"event":"media","streamSid":"MZ1","media":{"payload":5}}', 'wrong-type'],
    ['media with bad base64', '{"event":"media","streamSid":"MZ1","media":{"payload":"!!!="}}', 'bad-payload'],
    ['start without callSid', '{"event":"start","start":{"streamSid":"MZ1","accountSid":"AC1"}}', 'missing-field'],
  ])('rejects %s with a typed reason', (_name, text, reason) => {
    const r = parseTwilioMessage(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.reason).toBe(reason);
  });
});

describe('TwiML', () => {
  it('connects the call to the media stream without a query string, passing values as parameters', () => {
    const xml = connectStreamTwiml('wss://abc.ngrok.app/media-stream', { callToken: 'a&b' });
    expect(xml).toContain('<Connect><Stream url="wss://abc.ngrok.app/media-stream">');
    expect(xml).toContain('<Parameter name="callToken" value="a&amp;b"/>');
  });

  it('builds the wss stream URL from the public base', () => {
    expect(streamUrlFrom('https://abc.ngrok.app')).toBe('wss://abc.ngrok.app/media-stream');
    expect(streamUrlFrom('https://example.com/voice/?x=1')).toBe('wss://example.com/voice/media-stream');
    expect(streamUrlFrom('http://localhost:5050')).toBe('ws://localhost:5050/media-stream');
  });
});

describe('upstream authentication', () => {
  it('uses api-key for Azure OpenAI and a Bearer token elsewhere', () => {
    expect(authHeaders('wss://res.openai.azure.com/openai/v1/realtime?model=d', 'k')).toEqual({ 'api-key': 'k' });
    expect(authHeaders('wss://api.openai.com/v1/realtime?model=gpt-realtime', 'k')).toEqual({ Authorization: 'Bearer k' });
    expect(authHeaders('ws://127.0.0.1:1234/v1/realtime', null)).toEqual({});
  });
});
