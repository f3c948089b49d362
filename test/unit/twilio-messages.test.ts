import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalMedia, parseTwilioMessage, twilioMessageFrom } from '../../src/twilio/messages.js';
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

describe('the media frame fast path', () => {
  // 159 bytes: 212 characters without padding, so a change inside it is the only fault.
  const PAYLOAD = Buffer.alloc(159, 0x7f).toString('base64');
  const TWILIO_DOCS_ORDER = `{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"${PAYLOAD}"},"streamSid":"MZ0123456789abcdef0123456789abcdef"}`;
  const SID_FIRST = `{"event":"media","sequenceNumber":"3","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"${PAYLOAD}"}}`;

  it('reads Twilio\'s own spelling, streamSid before or after media, into the message the general parser gives', () => {
    for (const text of [TWILIO_DOCS_ORDER, SID_FIRST]) {
      const fast = canonicalMedia(text);
      expect(fast).not.toBeNull();
      expect({ ok: true, message: fast }).toEqual(twilioMessageFrom(JSON.parse(text)));
      expect(parseTwilioMessage(text)).toEqual({ ok: true, message: fast });
    }
  });

  it.each([
    ['a space after a colon', SID_FIRST.replace('"chunk":"1"', '"chunk": "1"')],
    ['fields in another order', SID_FIRST.replace('"track":"inbound","chunk":"1"', '"chunk":"1","track":"inbound"')],
    ['a numeric sequenceNumber', SID_FIRST.replace('"sequenceNumber":"3"', '"sequenceNumber":3')],
    ['an escaped character', SID_FIRST.replace('"chunk":"1"', '"chunk":"\\u0031"')],
    ['a payload not in whole quads', SID_FIRST.replace(PAYLOAD, `${PAYLOAD}A`)],
    ['a payload outside the alphabet', SID_FIRST.replace(PAYLOAD, `${PAYLOAD.slice(4)}a-b_`)],
    ['a payload with padding inside', SID_FIRST.replace(PAYLOAD, `${PAYLOAD.slice(4)}AA==`.replace(/^..../, 'A==A'))],
    ['two streamSids', TWILIO_DOCS_ORDER.replace('"sequenceNumber":"3",', '"sequenceNumber":"3","streamSid":"MZ1",')],
    ['no streamSid', TWILIO_DOCS_ORDER.replace(',"streamSid":"MZ0123456789abcdef0123456789abcdef"', '')],
    ['an extra field', SID_FIRST.replace('"track":"inbound",', '"track":"inbound","x":"1",')],
    ['a mark', '{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"cb:0:1"}}'],
  ])('leaves %s to the general parser', (_name, text) => {
    expect(canonicalMedia(text)).toBeNull();
  });

  // Whatever a frame looks like, the fast path may only ever agree with the general parser.
  it('gives the general parser\'s result for any media-like frame (property)', () => {
    const digits = fc.stringMatching(/^\d{1,16}$/);
    const text = fc.oneof(digits, fc.string({ maxLength: 6 }), fc.constantFrom('inbound', 'outbound', 'both_tracks', ''));
    const base64 = fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('base64')), fc.stringMatching(/^[A-Za-z0-9+/=_-]{0,12}$/));
    const frame = fc
      .record({
        seq: fc.oneof(digits, text),
        track: text,
        chunk: fc.oneof(digits, text),
        timestamp: fc.oneof(digits, fc.integer().map(String), text),
        payload: base64,
        sid: fc.oneof(fc.stringMatching(/^[A-Za-z0-9]{1,70}$/), text),
        sidFirst: fc.boolean(),
        spaced: fc.boolean(),
      })
      .map((f) => {
        const media = `"media":{"track":${JSON.stringify(f.track)},"chunk":${JSON.stringify(f.chunk)},"timestamp":${JSON.stringify(f.timestamp)},"payload":${JSON.stringify(f.payload)}}`;
        const sid = `"streamSid":${JSON.stringify(f.sid)}`;
        const body = f.sidFirst ? `${sid},${media}` : `${media},${sid}`;
        const s = `{"event":"media","sequenceNumber":${JSON.stringify(f.seq)},${body}}`;
        return f.spaced ? s.replace(/,"/g, ', "') : s;
      });
    fc.assert(
      fc.property(frame, (s) => {
        expect(parseTwilioMessage(s)).toEqual(twilioMessageFrom(JSON.parse(s)));
      }),
      { numRuns: 2000 },
    );
  });
});
