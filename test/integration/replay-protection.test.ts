/**
 * Replays must not open sessions, on real sockets. Twilio's signatures carry no time: a captured
 * signed webhook replayed later is answered with a fresh call token, and the stream handshake is
 * signed over the fixed stream URL. What stops the replay of a finished call:
 *
 * - the one-stream memory (any set-up): a CallSid that already had its stream is refused in the
 *   synchronous `start` check, before anything goes upstream, for a call token's lifetime plus
 *   MAX_CALL_DURATION_S;
 * - with REST credentials, the call's status from Twilio, read while the upstream connects: a call
 *   that is not `in-progress` is ended (1008) and its upstream closed; a Twilio that does not
 *   answer in time lets the call go on, with a warning and a metric.
 */
import twilio from 'twilio';
import { afterEach, describe, expect, it } from 'vitest';
import { CALL_TOKEN_TTL_MS } from '../../src/twilio/call-token.js';
import { START_VERIFICATION_TIMEOUT_MS } from '../../src/twilio/start-verification.js';
import type { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { eventually, sentOfType, startRig } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadCallerMulaw } from '../support/fixtures.js';
import { NO_ANSWER_EVER, NOT_FOUND, SERVER_ERROR, twilioRestDouble } from '../support/peers.js';
import type { TwilioRestDouble } from '../support/peers.js';

const AUTH_TOKEN = 'test-auth-token-0123456789abcdef';
const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const PUBLIC = 'https://cb.example.test';
const WEBHOOK_URL = `${PUBLIC}/incoming-call`;
const STREAM_URL = 'wss://cb.example.test/media-stream';
const CALL_SID = 'CA0123456789abcdef0123456789abcdef';
const SECURE_ENV = { TWILIO_AUTH_TOKEN: AUTH_TOKEN, PUBLIC_URL: PUBLIC };
const FORM = { CallSid: CALL_SID, AccountSid: ACCOUNT_SID, From: '+15550001111', To: '+15552223333' };
/** What an eavesdropper kept of the real call: the webhook's signature header and the handshake's. */
const WEBHOOK_HEADERS = { 'x-twilio-signature': twilio.getExpectedTwilioSignature(AUTH_TOKEN, WEBHOOK_URL, FORM) };
const STREAM_HEADERS = { 'x-twilio-signature': twilio.getExpectedTwilioSignature(AUTH_TOKEN, STREAM_URL, {}) };

const rigs: Rig[] = [];
const peers: TwilioRestDouble[] = [];
afterEach(async () => {
  await Promise.all(rigs.splice(0).map((r) => r.close()));
  await Promise.all(peers.splice(0).map((p) => p.stop()));
});

async function rigWith(options: Parameters<typeof startRig>[0]): Promise<Rig> {
  const r = await startRig({ upstream: { speed: Number.POSITIVE_INFINITY }, ...options });
  rigs.push(r);
  return r;
}

async function restDouble(): Promise<TwilioRestDouble> {
  const rest = await twilioRestDouble().start();
  peers.push(rest);
  return rest;
}

const restEnv = (rest: TwilioRestDouble): Record<string, string> => ({ ...SECURE_ENV, TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_API_BASE_URL: rest.baseUrl });

/** POST /incoming-call with exactly these headers and form: the TwiML's call token. */
async function webhook(r: Rig, form: Record<string, string> = FORM, headers: Record<string, string> = WEBHOOK_HEADERS): Promise<{ status: number; xml: string; token: string | null }> {
  const res = await fetch(`${r.baseUrl}/incoming-call`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const xml = await res.text();
  return { status: res.status, xml, token: /<Parameter name="callToken" value="([^"]+)"\/>/.exec(xml)?.[1] ?? null };
}

/** What the TwiML carries beside the token for FORM's call, which the token binds: Twilio brings them all back. */
const CALL_PARAMETERS = { from: FORM.From, to: FORM.To };

/** The media stream Twilio opens for that TwiML: the signed handshake and `start` with the token. */
function stream(r: Rig, token: string | null, callSid = CALL_SID): SimulatedCaller {
  return r.caller({
    callSid,
    headers: STREAM_HEADERS,
    customParameters: token === null ? {} : { ...CALL_PARAMETERS, callToken: token },
    audio: loadCallerMulaw('caller-yes'),
  });
}

/** A signed webhook and its stream, answered once by the model, then hung up and released. */
async function realCall(r: Rig, connectionId: number): Promise<void> {
  const answered = await webhook(r);
  expect(answered.token).not.toBeNull();
  const caller = stream(r, answered.token);
  await caller.start();
  await eventually(() => sentOfType(r.fake, connectionId, 'response.done').length === 1, 'the real call answered');
  await caller.hangUp();
  await eventually(() => r.server.calls.size === 0, 'the real call released');
}

/** The same signed webhook body and the same stream handshake again. */
async function replay(r: Rig): Promise<SimulatedCaller> {
  const again = await webhook(r);
  // The webhook cannot tell: it is signed, and the signature has no time in it.
  expect(again.status).toBe(200);
  expect(again.token).not.toBeNull();
  const caller = stream(r, again.token);
  await caller.start();
  return caller;
}

function sample(exposition: string, series: string): number {
  const escaped = series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(exposition);
  if (m?.[1] === undefined) throw new Error(`no sample ${series}`);
  return Number(m[1]);
}

describe('one stream per CallSid, ever', () => {
  it('the exact replay of a finished call (the same signed webhook, then the same stream handshake) opens no upstream session and is closed with 1008', async () => {
    const r = await rigWith({ env: SECURE_ENV });
    await realCall(r, 1);
    expect(r.fake.connectionsOpened).toBe(1);

    const replayed = await replay(r);
    await replayed.done;
    expect(replayed.closeCode).toBe(1008);
    expect(r.fake.connectionsOpened).toBe(1);
    expect(r.logs.find((l) => l.msg === 'stream rejected: start not authorised' && l.callSid === CALL_SID)).toMatchObject({
      level: 'warn',
      reason: 'this CallSid already had its stream (a replay)',
    });
    const metrics = await r.server.metrics.render();
    expect(sample(metrics, 'callbridge_rejected_connections_total{reason="replayed"}')).toBe(1);
    expect(sample(metrics, 'callbridge_rejected_connections_total{reason="bad-token"}')).toBe(0);
  });

  it('a second stream while the call is live is refused, and the live call goes on', async () => {
    const r = await rigWith({ env: SECURE_ENV });
    const { token } = await webhook(r);
    const live = stream(r, token);
    await live.start();
    await eventually(() => sentOfType(r.fake, 1, 'response.done').length === 1, 'the live call answered');
    const second = await replay(r);
    await second.done;
    expect(second.closeCode).toBe(1008);
    expect(r.fake.connectionsOpened).toBe(1);
    expect(live.closeCode).toBeUndefined();
    expect(r.server.startedCalls).toBe(1);
    await live.hangUp();
  });

  it('remembers the CallSid for a call token\'s lifetime plus MAX_CALL_DURATION_S, and then forgets it', async () => {
    let now = Date.now();
    const maxCallDurationS = 10;
    const windowMs = CALL_TOKEN_TTL_MS + maxCallDurationS * 1000;
    const r = await rigWith({ env: { ...SECURE_ENV, MAX_CALL_DURATION_S: String(maxCallDurationS) }, wallClock: () => now });
    await realCall(r, 1);

    // The window starts when the stream started; the last millisecond of it still refuses.
    now += windowMs - 1;
    const late = await replay(r);
    await late.done;
    expect(late.closeCode).toBe(1008);
    expect(r.fake.connectionsOpened).toBe(1);

    // Past it the memory has let go (bounded memory): only the REST check, with credentials,
    // stands between a replay and a session from here on.
    now += 1;
    const forgotten = await replay(r);
    await r.fake.waitForConnections(2);
    expect(forgotten.closeCode).toBeUndefined();
    await forgotten.hangUp();
  });

  it('a retried webhook for the same CallSid is the same call: not counted twice against MAX_CALLS, and only one stream is served', async () => {
    const r = await rigWith({ env: { ...SECURE_ENV, MAX_CALLS: '1' } });
    // Twilio retries a webhook whose answer it did not get: same CallSid, same signed body.
    const first = await webhook(r);
    const retried = await webhook(r);
    expect(first.xml).toContain('<Stream');
    expect(retried.xml).toContain('<Stream');
    expect(retried.xml).not.toContain('<Hangup/>');
    // The one line is promised to that call: another call is busy.
    const otherForm = { ...FORM, CallSid: 'CA11111111111111111111111111111111' };
    const other = await webhook(r, otherForm, { 'x-twilio-signature': twilio.getExpectedTwilioSignature(AUTH_TOKEN, WEBHOOK_URL, otherForm) });
    expect(other.xml).toContain('<Hangup/>');

    // Twilio opens one stream, with the token of the answer it got; it is served.
    const served = stream(r, retried.token);
    await served.start();
    await eventually(() => sentOfType(r.fake, 1, 'response.done').length === 1, 'the call answered');
    // The token of the other answer is as valid, but the CallSid has its stream.
    const duplicate = stream(r, first.token);
    await duplicate.start();
    await duplicate.done;
    expect(duplicate.closeCode).toBe(1008);
    expect(r.fake.connectionsOpened).toBe(1);
    await served.hangUp();
  });
});

describe('the call status from Twilio REST, read while the upstream connects', () => {
  it('in progress: the call goes on, after one status read of exactly that call', async () => {
    const rest = await restDouble();
    const r = await rigWith({ env: restEnv(rest) });
    const { token } = await webhook(r);
    const caller = stream(r, token);
    await caller.start();
    await eventually(() => sentOfType(r.fake, 1, 'response.done').length === 1, 'answered');
    await eventually(() => r.logs.some((l) => l.msg === 'start verified'), 'verified');
    expect(rest.statusReads.map((q) => `${q.method} ${q.path}`)).toEqual([`GET /2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${CALL_SID}.json`]);
    expect(rest.statusReads[0]?.headers.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    expect(rest.requests).toEqual([]);
    expect(caller.closeCode).toBeUndefined();
    expect(sample(await r.server.metrics.render(), 'callbridge_start_verifications_total{check="call-status",outcome="in-progress"}')).toBe(1);
    await caller.hangUp();
  });

  it.each([
    ['completed', 'Twilio reports the call as completed'],
    ['canceled', 'Twilio reports the call as canceled'],
    [NOT_FOUND, 'Twilio has no such call (404)'],
  ])('%s: the call is ended as unauthorised (1008) and the upstream opened meanwhile is closed', async (status, reason) => {
    const rest = await restDouble();
    rest.setCallStatus(CALL_SID, status);
    const r = await rigWith({ env: restEnv(rest) });
    const { token } = await webhook(r);
    const caller = stream(r, token);
    await caller.start();
    await caller.done;
    expect(caller.closeCode).toBe(1008);
    // The check ran alongside the connect: the session was opened, and is closed again.
    await r.fake.waitForClose(1, 5000);
    await eventually(() => r.server.calls.size === 0, 'the call released');
    expect(r.logs.find((l) => l.msg === 'call ended')).toMatchObject({ callSid: CALL_SID, reason: 'unauthorized', authReason: `call-status: ${reason}` });
    expect(r.logs.find((l) => l.msg === 'start refused: closing the call')).toMatchObject({ level: 'warn', callSid: CALL_SID, check: 'call-status', reason });
    // Not hung up: a refused start says nothing about whether some real call is live.
    expect(rest.requests).toEqual([]);
    const metrics = await r.server.metrics.render();
    expect(sample(metrics, 'callbridge_start_verifications_total{check="call-status",outcome="refused"}')).toBe(1);
    expect(sample(metrics, 'callbridge_calls_total{outcome="rejected"}')).toBe(1);
  });

  it('the exact replay on another replica, whose memory never saw the call: Twilio says completed, so it is closed with 1008', async () => {
    const rest = await restDouble();
    const [a, b] = [await rigWith({ env: restEnv(rest) }), await rigWith({ env: restEnv(rest) })];
    await realCall(a, 1);
    // The caller hung up: Twilio's call is over.
    rest.setCallStatus(CALL_SID, 'completed');

    const replayed = await replay(b);
    await replayed.done;
    expect(replayed.closeCode).toBe(1008);
    await b.fake.waitForClose(1, 5000);
    expect(b.logs.find((l) => l.msg === 'call ended')).toMatchObject({ reason: 'unauthorized', authReason: 'call-status: Twilio reports the call as completed' });
  });

  it.each([
    ['a Twilio API that never answers', NO_ANSWER_EVER, /no answer within 2000 ms|timeout of 2000ms exceeded/],
    ['a Twilio API error (HTTP 500)', SERVER_ERROR, /HTTP 500, Twilio error 20500/],
  ])('%s: the call goes on, with a warning naming the call and a metric', async (_name, answer, error) => {
    const rest = await restDouble();
    rest.setCallStatus(CALL_SID, answer);
    const r = await rigWith({ env: restEnv(rest) });
    const { token } = await webhook(r);
    const caller = stream(r, token);
    const startedAt = Date.now();
    await caller.start();
    // No latency added: the model is reached while the status read is still out.
    await r.fake.waitForReceived((q) => q.connectionId === 1 && q.event.type === 'session.update');
    if (answer === NO_ANSWER_EVER) {
      expect(Date.now() - startedAt).toBeLessThan(START_VERIFICATION_TIMEOUT_MS);
      expect(r.logs.some((l) => l.msg.startsWith('start could not be verified'))).toBe(false);
    }
    await eventually(() => r.logs.some((l) => l.msg.startsWith('start could not be verified')), 'the warning', 10_000);
    const warning = r.logs.find((l) => l.msg.startsWith('start could not be verified'));
    expect(warning).toMatchObject({ level: 'warn', callSid: CALL_SID, check: 'call-status' });
    expect(String(warning?.['err'])).toMatch(error);
    await eventually(() => sentOfType(r.fake, 1, 'response.done').length === 1, 'answered');
    expect(caller.closeCode).toBeUndefined();
    expect(r.server.startedCalls).toBe(1);
    expect(sample(await r.server.metrics.render(), 'callbridge_start_verifications_total{check="call-status",outcome="unverified"}')).toBe(1);
    await caller.hangUp();
  });
});
