/**
 * Per-call tokens that tie a Media Stream to the webhook request that created it. The signed
 * webhook hands out a token bound to its CallSid; the stream's `start` must bring it back as a
 * `<Parameter>` for that same CallSid before any audio goes upstream. Twilio's own handshake
 * signature covers only the stream URL, which is the same for every call, so without the token a
 * captured handshake could be replayed to open sessions at will.
 *
 * The token also binds the stream's other `<Parameter>`s — who is calling (`from`), the number
 * they dialled (`to`), `direction`, the caller context — so a stream cannot present a genuine
 * token with a different caller: the agent's picture of the call is the webhook's, or the start
 * is refused like a bad token.
 *
 * Wire format: base64url of [version: 1 byte][expiry, ms since epoch: uint64 BE][HMAC-SHA256].
 * The MAC covers `v2.<CallSid>.<expiry>.<parameters digest>` (see `boundParametersDigest`).
 * Neither the CallSid nor the parameters are carried (start has them), only bound: the token
 * stays 55 characters however many parameters there are.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** The `<Parameter name>` the token travels under; it arrives in `start.customParameters`. */
export const CALL_TOKEN_PARAMETER = 'callToken';

/**
 * The token only has to survive from the webhook answer to the stream's `start`, normally one
 * or two seconds. A minute absorbs a slow leg or a retried webhook without leaving a captured
 * token useful for long, and it is worthless for any other call anyway.
 */
export const CALL_TOKEN_TTL_MS = 60_000;

/** 2: the MAC binds the other stream parameters too. A version-1 token is malformed. */
const VERSION = 2;
const EXPIRY_BYTES = 8;
const MAC_BYTES = 32;
const TOKEN_BYTES = 1 + EXPIRY_BYTES + MAC_BYTES;
/** 41 bytes in unpadded base64url: 55 characters, well inside Twilio's 500 for name + value. */
const TOKEN_CHARS = Math.ceil((TOKEN_BYTES * 4) / 3);
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/* HKDF labels: fixed, so the derived key is reproducible across restarts and instances. */
const HKDF_SALT = 'callbridge';
const HKDF_INFO = 'callbridge/call-token/v1';

export type CallTokenFailure = 'missing' | 'malformed' | 'bad-signature' | 'expired';
export type CallTokenResult = { ok: true } | { ok: false; reason: CallTokenFailure };

/**
 * The MAC key, derived from TWILIO_AUTH_TOKEN with HKDF rather than used raw: the auth token
 * already keys Twilio's request signatures, and one key must not serve two MAC schemes.
 * Throws on an empty token (a public key would let anyone mint tokens); call it at startup.
 */
export function callTokenSecretFrom(authToken: string): Buffer {
  if (authToken === '') throw new TypeError('call token secret: TWILIO_AUTH_TOKEN is empty');
  return Buffer.from(hkdfSync('sha256', authToken, HKDF_SALT, HKDF_INFO, MAC_BYTES));
}

/** The `<Stream>` parameters a token binds (every one but the token itself), by name. */
export type BoundParameters = Readonly<Record<string, string>>;

/**
 * A digest of the parameters that does not depend on their order: hex SHA-256 of the JSON array
 * of [name, value] pairs sorted by name. JSON keeps names and values apart whatever they hold.
 */
export function boundParametersDigest(parameters: BoundParameters): string {
  const pairs = Object.entries(parameters)
    .filter(([name]) => name !== CALL_TOKEN_PARAMETER)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(pairs), 'utf8').digest('hex');
}

/**
 * A token for `callSid` and exactly these `parameters` (the other `<Parameter>`s of its
 * `<Stream>`), valid while `now < nowMs + ttlMs`. Throws only on caller bugs.
 */
export function createCallToken(secret: Buffer, callSid: string, nowMs: number, ttlMs: number = CALL_TOKEN_TTL_MS, parameters: BoundParameters = {}): string {
  if (secret.length === 0) throw new TypeError('call token: empty secret');
  if (callSid === '') throw new TypeError('call token: empty CallSid');
  if (!Number.isFinite(nowMs) || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`call token: bad time (nowMs=${nowMs}, ttlMs=${ttlMs})`);
  }
  const expiry = Math.floor(nowMs + ttlMs);
  if (expiry < 0 || expiry > Number.MAX_SAFE_INTEGER) throw new RangeError(`call token: expiry ${expiry} out of range`);
  const bytes = Buffer.alloc(TOKEN_BYTES);
  bytes.writeUInt8(VERSION, 0);
  bytes.writeBigUInt64BE(BigInt(expiry), 1);
  mac(secret, callSid, expiry, parameters).copy(bytes, 1 + EXPIRY_BYTES);
  return bytes.toString('base64url');
}

/**
 * Whether `token` was minted by us for `callSid` and these `parameters` (the start's other custom
 * parameters; the token's own is ignored) and is still fresh at `nowMs`. A parameter added,
 * dropped or changed is a `bad-signature`, as a forged MAC is. Takes the raw parameter value
 * (anything) and never throws. The MAC is checked before the expiry so that `expired` is only
 * ever said of a genuine token.
 */
export function verifyCallToken(secret: Buffer, token: unknown, callSid: string, nowMs: number, parameters: BoundParameters = {}): CallTokenResult {
  if (token === undefined || token === null || token === '') return fail('missing');
  if (typeof token !== 'string' || token.length !== TOKEN_CHARS || !BASE64URL.test(token)) return fail('malformed');
  const bytes = Buffer.from(token, 'base64url');
  // The last character carries two spare bits; demanding the canonical encoding keeps one token
  // from having several spellings.
  if (bytes.length !== TOKEN_BYTES || bytes.toString('base64url') !== token) return fail('malformed');
  if (bytes.readUInt8(0) !== VERSION) return fail('malformed');
  const expiryBig = bytes.readBigUInt64BE(1);
  if (expiryBig > BigInt(Number.MAX_SAFE_INTEGER)) return fail('malformed');
  const expiry = Number(expiryBig);

  // An empty secret is a public key: nothing verified with it can be trusted.
  if (secret.length === 0) return fail('bad-signature');
  const expected = mac(secret, callSid, expiry, parameters);
  const presented = bytes.subarray(1 + EXPIRY_BYTES);
  // Both are MAC_BYTES long by construction, which timingSafeEqual requires.
  if (!timingSafeEqual(presented, expected)) return fail('bad-signature');

  // Written as "not before expiry" so a NaN clock fails closed.
  if (!(nowMs < expiry)) return fail('expired');
  return { ok: true };
}

function mac(secret: Buffer, callSid: string, expiry: number, parameters: BoundParameters): Buffer {
  return createHmac('sha256', secret).update(`v${VERSION}.${callSid}.${expiry}.${boundParametersDigest(parameters)}`, 'utf8').digest();
}

function fail(reason: CallTokenFailure): CallTokenResult {
  return { ok: false, reason };
}
