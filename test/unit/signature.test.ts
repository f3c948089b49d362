import twilio from 'twilio';
import { describe, expect, it } from 'vitest';
import { voiceWebhookUrlFrom } from '../../src/twilio/rest.js';
import { formParamsFrom, verifyStreamSignature, verifyWebhookSignature, webhookUrl } from '../../src/twilio/signature.js';
import { streamUrlFrom } from '../../src/twilio/twiml.js';

const AUTH_TOKEN = '12345678901234567890123456789012';
const PUBLIC_URL = 'https://abc.ngrok.app';
const URL_SIGNED = `${PUBLIC_URL}/incoming-call`;
const PARAMS = {
  CallSid: 'CA0123456789abcdef0123456789abcdef',
  AccountSid: 'AC0123456789abcdef0123456789abcdef',
  From: '+15551234567',
  To: '+15557654321',
  CallStatus: 'ringing',
};

// Computed the way Twilio does, by the library's own exported helper (no signing code in src).
const sign = (url: string, params: Record<string, string | string[]>, token = AUTH_TOKEN): string =>
  twilio.getExpectedTwilioSignature(token, url, params);

describe('webhookUrl', () => {
  it('joins PUBLIC_URL and the path, keeping a base path and dropping trailing slashes', () => {
    expect(webhookUrl('https://abc.ngrok.app', '/incoming-call')).toBe('https://abc.ngrok.app/incoming-call');
    expect(webhookUrl('https://abc.ngrok.app/', '/incoming-call')).toBe('https://abc.ngrok.app/incoming-call');
    expect(webhookUrl('https://example.com/voice/bridge//', '/incoming-call')).toBe('https://example.com/voice/bridge/incoming-call');
    expect(webhookUrl('https://example.com:8443/x', 'incoming-call')).toBe('https://example.com:8443/x/incoming-call');
  });

  it('is the same string twilio:configure registers as the voice URL', () => {
    for (const base of ['https://abc.ngrok.app', 'https://Example.COM:443/base/', 'https://example.com:8443/a/b']) {
      expect(webhookUrl(base, '/incoming-call')).toBe(voiceWebhookUrlFrom(base));
    }
  });

  it('refuses a base with a query or fragment', () => {
    expect(() => webhookUrl('https://example.com/?a=1', '/incoming-call')).toThrow(/query string or fragment/);
    expect(() => webhookUrl('https://example.com/#x', '/incoming-call')).toThrow(/query string or fragment/);
  });
});

describe('verifyWebhookSignature', () => {
  const url = webhookUrl(PUBLIC_URL, '/incoming-call');
  const check = (signature: string | string[] | undefined, over: Partial<{ url: string; params: Record<string, string | string[]>; authToken: string }> = {}) =>
    verifyWebhookSignature({ authToken: over.authToken ?? AUTH_TOKEN, signature, url: over.url ?? url, params: over.params ?? PARAMS });

  it('accepts the signature Twilio computes over PUBLIC_URL + path and the form params', () => {
    expect(url).toBe(URL_SIGNED);
    expect(check(sign(URL_SIGNED, PARAMS))).toBe(true);
  });

  it('accepts an empty form signed over the URL alone', () => {
    expect(check(sign(URL_SIGNED, {}), { params: {} })).toBe(true);
  });

  it('accepts repeated form keys (arrays), as @fastify/formbody parses them', () => {
    const params = { ...PARAMS, Tag: ['b', 'a'] };
    expect(check(sign(URL_SIGNED, params), { params })).toBe(true);
  });

  it('rejects a missing, empty, repeated or garbage header', () => {
    expect(check(undefined)).toBe(false);
    expect(check('')).toBe(false);
    expect(check('not-a-signature')).toBe(false);
    expect(check('\u0000\uffff')).toBe(false);
    const good = sign(URL_SIGNED, PARAMS);
    expect(check([good])).toBe(false);
    expect(check([good, good])).toBe(false);
  });

  it('rejects a signature over a different URL', () => {
    const sig = sign(URL_SIGNED, PARAMS);
    expect(check(sig, { url: `${PUBLIC_URL}/incoming-cal` })).toBe(false);
    expect(check(sig, { url: 'http://abc.ngrok.app/incoming-call' })).toBe(false);
    expect(check(sig, { url: `${URL_SIGNED}?x=1` })).toBe(false);
    expect(check(sign(`${PUBLIC_URL}/other`, PARAMS))).toBe(false);
  });

  it('rejects a request signed for an attacker-chosen Host (URL rebuilt from the Host header)', () => {
    // The attacker points the request at our server with Host: evil.example and signs that URL
    // with some token; only the configured URL counts, so it can never match.
    const hostDerived = 'https://evil.example/incoming-call';
    expect(check(sign(hostDerived, PARAMS))).toBe(false);
    expect(check(sign(hostDerived, PARAMS, 'attacker-token'))).toBe(false);
  });

  it('rejects tampered params: changed, added, removed', () => {
    const sig = sign(URL_SIGNED, PARAMS);
    expect(check(sig, { params: { ...PARAMS, From: '+15550000000' } })).toBe(false);
    expect(check(sig, { params: { ...PARAMS, Extra: '1' } })).toBe(false);
    const { CallStatus: _dropped, ...fewer } = PARAMS;
    expect(check(sig, { params: fewer })).toBe(false);
    expect(check(sig, { params: {} })).toBe(false);
  });

  it('rejects a signature made with another auth token, and any check with an empty token', () => {
    expect(check(sign(URL_SIGNED, PARAMS, 'other-token'))).toBe(false);
    expect(check(sign(URL_SIGNED, PARAMS, ''), { authToken: '' })).toBe(false);
  });

  it('lets validateRequest handle the port: with or without :443 both verify', () => {
    // Twilio may sign with the default port kept or stripped; the library tries both.
    expect(check(sign('https://abc.ngrok.app:443/incoming-call', PARAMS))).toBe(true);
    expect(check(sign(URL_SIGNED, PARAMS), { url: 'https://abc.ngrok.app:443/incoming-call' })).toBe(true);
    // A different, non-default port is a different URL.
    expect(check(sign('https://abc.ngrok.app:8443/incoming-call', PARAMS))).toBe(false);
  });

  it('returns false instead of throwing on a URL that cannot be parsed', () => {
    expect(check('AAAA', { url: 'not a url' })).toBe(false);
  });
});

describe('verifyStreamSignature', () => {
  const streamUrl = streamUrlFrom(PUBLIC_URL);

  it('accepts the signature over the wss:// stream URL with no params', () => {
    expect(streamUrl).toBe('wss://abc.ngrok.app/media-stream');
    expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature: sign(streamUrl, {}), streamUrl })).toBe(true);
  });

  it('rejects a missing or garbage header', () => {
    expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature: undefined, streamUrl })).toBe(false);
    expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature: '', streamUrl })).toBe(false);
    expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature: 'garbage==', streamUrl })).toBe(false);
  });

  it('rejects signatures over another URL: https webhook, another host, another path, with params', () => {
    const bad = [
      sign('https://abc.ngrok.app/media-stream', {}),
      sign('wss://evil.example/media-stream', {}),
      sign('wss://abc.ngrok.app/media-stream2', {}),
      sign(streamUrl, { CallSid: 'CA1' }),
      sign(streamUrl, {}, 'other-token'),
    ];
    for (const signature of bad) expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature, streamUrl })).toBe(false);
  });

  it('keeps a base path of PUBLIC_URL in the signed stream URL', () => {
    const based = streamUrlFrom('https://example.com/bridge/');
    expect(based).toBe('wss://example.com/bridge/media-stream');
    expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature: sign(based, {}), streamUrl: based })).toBe(true);
    expect(verifyStreamSignature({ authToken: AUTH_TOKEN, signature: sign('wss://example.com/media-stream', {}), streamUrl: based })).toBe(false);
  });
});

describe('formParamsFrom', () => {
  it('passes string and string-array fields through; an absent body is an empty form', () => {
    const parsed = Object.assign(Object.create(null) as Record<string, unknown>, { a: '1', b: ['x', 'y'] });
    expect(formParamsFrom(parsed)).toEqual({ a: '1', b: ['x', 'y'] });
    expect(formParamsFrom(undefined)).toEqual({});
    expect(formParamsFrom(null)).toEqual({});
  });

  it('returns null for anything a form encoder could not have produced', () => {
    expect(formParamsFrom('CallSid=CA1')).toBeNull();
    expect(formParamsFrom(['a'])).toBeNull();
    expect(formParamsFrom({ a: 1 })).toBeNull();
    expect(formParamsFrom({ a: { nested: 'x' } })).toBeNull();
    expect(formParamsFrom({ a: ['x', 2] })).toBeNull();
  });
});
