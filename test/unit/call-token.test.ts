import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CALL_TOKEN_PARAMETER,
  CALL_TOKEN_TTL_MS,
  boundParametersDigest,
  callTokenSecretFrom,
  createCallToken,
  verifyCallToken,
} from '../../src/twilio/call-token.js';

const AUTH_TOKEN = '12345678901234567890123456789012';
const SECRET = callTokenSecretFrom(AUTH_TOKEN);
const CALL = 'CA0123456789abcdef0123456789abcdef';
const OTHER_CALL = 'CAfedcba9876543210fedcba9876543210';
const NOW = 1_790_000_000_000;

const token = (over: Partial<{ secret: Buffer; callSid: string; now: number; ttl: number }> = {}): string =>
  createCallToken(over.secret ?? SECRET, over.callSid ?? CALL, over.now ?? NOW, over.ttl ?? CALL_TOKEN_TTL_MS);

/** Flip one bit of the decoded token and re-encode, so the damage is to content, not encoding. */
function flipBit(t: string, bit: number): string {
  const bytes = Buffer.from(t, 'base64url');
  bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return bytes.toString('base64url');
}

describe('call token', () => {
  it('exports the documented parameter name and a TTL of one minute', () => {
    expect(CALL_TOKEN_PARAMETER).toBe('callToken');
    expect(CALL_TOKEN_TTL_MS).toBe(60_000);
  });

  it('round-trips for its own CallSid while fresh', () => {
    const t = token();
    expect(verifyCallToken(SECRET, t, CALL, NOW)).toEqual({ ok: true });
    expect(verifyCallToken(SECRET, t, CALL, NOW + CALL_TOKEN_TTL_MS - 1)).toEqual({ ok: true });
  });

  it('is compact and safe in a URL and in an XML attribute', () => {
    const t = token();
    expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(t.length).toBeLessThan(200);
    expect(CALL_TOKEN_PARAMETER.length + t.length).toBeLessThan(500);
  });

  it('does not verify for another CallSid', () => {
    expect(verifyCallToken(SECRET, token(), OTHER_CALL, NOW)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(verifyCallToken(SECRET, token(), '', NOW)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('expires at nowMs + ttl (and a NaN clock fails closed)', () => {
    const t = token({ ttl: 5_000 });
    expect(verifyCallToken(SECRET, t, CALL, NOW + 4_999)).toEqual({ ok: true });
    expect(verifyCallToken(SECRET, t, CALL, NOW + 5_000)).toEqual({ ok: false, reason: 'expired' });
    expect(verifyCallToken(SECRET, t, CALL, NOW + 3_600_000)).toEqual({ ok: false, reason: 'expired' });
    expect(verifyCallToken(SECRET, t, CALL, Number.NaN)).toEqual({ ok: false, reason: 'expired' });
  });

  it('rejects a token made with another secret', () => {
    const other = callTokenSecretFrom('another-auth-token');
    expect(verifyCallToken(SECRET, token({ secret: other }), CALL, NOW)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(verifyCallToken(other, token(), CALL, NOW)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(verifyCallToken(Buffer.alloc(0), token(), CALL, NOW)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('rejects every single flipped bit: in the version as malformed, elsewhere as a bad signature', () => {
    const t = token();
    const bits = Buffer.from(t, 'base64url').length * 8;
    for (let bit = 0; bit < bits; bit++) {
      const result = verifyCallToken(SECRET, flipBit(t, bit), CALL, NOW);
      expect(result.ok, `bit ${bit}`).toBe(false);
      if (bit < 8) expect(result).toEqual({ ok: false, reason: 'malformed' });
      else if (bit >= 8 + 8 * 8) expect(result).toEqual({ ok: false, reason: 'bad-signature' });
    }
  });

  it('rejects every substituted character, including a non-canonical last character', () => {
    const t = token();
    for (let i = 0; i < t.length; i++) {
      const c = t[i] === 'A' ? 'B' : 'A';
      const changed = t.slice(0, i) + c + t.slice(i + 1);
      expect(verifyCallToken(SECRET, changed, CALL, NOW).ok, `char ${i}`).toBe(false);
    }
    // The last character holds two spare bits: spelling the same bytes differently is malformed.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sameBytes = [...alphabet].map((c) => t.slice(0, -1) + c).filter((s) => s !== t && Buffer.from(s, 'base64url').equals(Buffer.from(t, 'base64url')));
    expect(sameBytes.length).toBeGreaterThan(0);
    for (const s of sameBytes) expect(verifyCallToken(SECRET, s, CALL, NOW)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('cannot be extended by moving the expiry: the MAC covers it', () => {
    const bytes = Buffer.from(token(), 'base64url');
    bytes.writeBigUInt64BE(BigInt(NOW + 24 * 3_600_000), 1);
    expect(verifyCallToken(SECRET, bytes.toString('base64url'), CALL, NOW)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('binds the MAC to v2.<CallSid>.<expiry>.<parameters digest> under the derived key', () => {
    const bytes = Buffer.from(token(), 'base64url');
    const expiry = NOW + CALL_TOKEN_TTL_MS;
    expect(bytes[0]).toBe(2);
    expect(Number(bytes.readBigUInt64BE(1))).toBe(expiry);
    const noParameters = createHash('sha256').update('[]').digest('hex');
    expect(boundParametersDigest({})).toBe(noParameters);
    const expected = createHmac('sha256', SECRET).update(`v2.${CALL}.${expiry}.${noParameters}`).digest();
    expect(bytes.subarray(9).equals(expected)).toBe(true);
  });

  it('refuses a version-1 token (it bound the CallSid only) as malformed', () => {
    const bytes = Buffer.from(token(), 'base64url');
    bytes[0] = 1;
    expect(verifyCallToken(SECRET, bytes.toString('base64url'), CALL, NOW)).toEqual({ ok: false, reason: 'malformed' });
  });

  describe('binds the stream\'s other parameters', () => {
    const PARAMS = { from: '+15550001111', to: '+15552223333', direction: 'inbound', plan: 'gold' };
    const bound = (): string => createCallToken(SECRET, CALL, NOW, CALL_TOKEN_TTL_MS, PARAMS);

    it('verifies with exactly those parameters, in any order, its own parameter ignored', () => {
      const reordered = { plan: 'gold', direction: 'inbound', to: '+15552223333', from: '+15550001111' };
      expect(verifyCallToken(SECRET, bound(), CALL, NOW, PARAMS)).toEqual({ ok: true });
      expect(verifyCallToken(SECRET, bound(), CALL, NOW, reordered)).toEqual({ ok: true });
      expect(verifyCallToken(SECRET, bound(), CALL, NOW, { ...PARAMS, [CALL_TOKEN_PARAMETER]: bound() })).toEqual({ ok: true });
      // Compact whatever it binds: the parameters travel beside it, not in it.
      expect(bound().length).toBe(token().length);
    });

    it.each([
      ['a changed caller', { ...PARAMS, from: '+15559999999' }],
      ['a changed dialled number', { ...PARAMS, to: '+15558888888' }],
      ['a changed direction', { ...PARAMS, direction: 'outbound-api' }],
      ['a changed context value', { ...PARAMS, plan: 'platinum' }],
      ['a dropped parameter', { from: PARAMS.from, to: PARAMS.to, direction: PARAMS.direction }],
      ['an added parameter', { ...PARAMS, profile: 'sales' }],
      ['a value moved to another name', { ...PARAMS, plan: undefined, tier: 'gold' }],
      ['none at all', {}],
    ])('refuses %s as a bad signature', (_what, presented) => {
      const clean = Object.fromEntries(Object.entries(presented).filter((e): e is [string, string] => e[1] !== undefined));
      expect(verifyCallToken(SECRET, bound(), CALL, NOW, clean)).toEqual({ ok: false, reason: 'bad-signature' });
    });

    it('keeps names and values apart in the digest', () => {
      expect(boundParametersDigest({ a: 'b,c' })).not.toBe(boundParametersDigest({ 'a,b': 'c' }));
      expect(boundParametersDigest({ a: '', b: '' })).not.toBe(boundParametersDigest({ 'a"': '"b' }));
    });
  });

  it('calls an absent token missing', () => {
    for (const absent of [undefined, null, '']) {
      expect(verifyCallToken(SECRET, absent, CALL, NOW)).toEqual({ ok: false, reason: 'missing' });
    }
  });

  it('calls truncated, padded, extended, garbage and non-string tokens malformed, without throwing', () => {
    const t = token();
    const garbage: unknown[] = [
      t.slice(0, -1),
      t.slice(0, 20),
      `${t}A`,
      `${t}=`,
      `${t.slice(0, -1)}+`,
      `/${t.slice(1)}`,
      ' '.repeat(t.length),
      '!'.repeat(t.length),
      'A'.repeat(t.length),
      'x',
      '\u0000',
      'é'.repeat(t.length),
      42,
      {},
      [t],
      Buffer.from(t, 'base64url'),
    ];
    for (const g of garbage) {
      expect(() => verifyCallToken(SECRET, g, CALL, NOW)).not.toThrow();
      expect(verifyCallToken(SECRET, g, CALL, NOW), JSON.stringify(g)).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('calls a token with an out-of-range expiry malformed', () => {
    const bytes = Buffer.from(token(), 'base64url');
    bytes.writeBigUInt64BE(2n ** 64n - 1n, 1);
    expect(verifyCallToken(SECRET, bytes.toString('base64url'), CALL, NOW)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('derives the secret from the auth token without using it raw', () => {
    expect(SECRET.length).toBe(32);
    expect(callTokenSecretFrom(AUTH_TOKEN).equals(SECRET)).toBe(true);
    expect(callTokenSecretFrom('another-auth-token').equals(SECRET)).toBe(false);
    expect(SECRET.equals(Buffer.from(AUTH_TOKEN))).toBe(false);
    // A token keyed with the raw auth token must not verify.
    const raw = createCallToken(Buffer.from(AUTH_TOKEN), CALL, NOW, CALL_TOKEN_TTL_MS);
    expect(verifyCallToken(SECRET, raw, CALL, NOW)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(() => callTokenSecretFrom('')).toThrow(/empty/);
  });

  it('throws on caller bugs when minting', () => {
    expect(() => createCallToken(Buffer.alloc(0), CALL, NOW, 1000)).toThrow();
    expect(() => createCallToken(SECRET, '', NOW, 1000)).toThrow();
    expect(() => createCallToken(SECRET, CALL, Number.NaN, 1000)).toThrow();
    expect(() => createCallToken(SECRET, CALL, NOW, 0)).toThrow();
    expect(() => createCallToken(SECRET, CALL, NOW, Number.POSITIVE_INFINITY)).toThrow();
  });
});
