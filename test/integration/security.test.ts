/**
 * Admission on real sockets: only Twilio-signed webhooks and streams, a per-call token on `start`,
 * the concurrent-call limit, and draining. A refused stream must never open an upstream session.
 */
import twilio from 'twilio';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ANSWERED_STREAM_WAIT_MS } from '../../src/server.js';
import { MIN_PENDING_STREAMS } from '../../src/server.js';
import { eventually, sentOfType, sleep, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadCallerMulaw } from '../support/fixtures.js';
import type { SimulatedCaller } from '../../src/tooling/simulated-caller.js';

const AUTH_TOKEN = 'test-auth-token-0123456789abcdef';
const PUBLIC = 'https://cb.example.test';
const STREAM_URL = 'wss://cb.example.test/media-stream';
const CALL_SID = 'CA0123456789abcdef0123456789abcdef';
const SECURE_ENV = { TWILIO_AUTH_TOKEN: AUTH_TOKEN, PUBLIC_URL: PUBLIC };
const FORM = { CallSid: CALL_SID, AccountSid: 'AC0123456789abcdef0123456789abcdef', From: '+15550001111', To: '+15552223333' };

let rig: Rig | null = null;
const idleSockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of idleSockets.splice(0)) ws.terminate();
  await rig?.close();
  rig = null;
});

/** A media-stream connection that never sends anything. */
async function openIdle(r: Rig): Promise<WebSocket> {
  const ws = new WebSocket(r.mediaUrl);
  idleSockets.push(ws);
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with HTTP ${res.statusCode ?? '?'}`)));
  });
  return ws;
}

/** Settles to 'pending' if `promise` has not settled by the next macrotask. */
async function settled<T>(promise: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

function sign(url: string, params: Record<string, string>): string {
  return twilio.getExpectedTwilioSignature(AUTH_TOKEN, url, params);
}

async function postWebhook(r: Rig, headers: Record<string, string>, form = FORM): Promise<Response> {
  return fetch(`${r.baseUrl}/incoming-call`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

/** What the TwiML carries beside the token for FORM's call, which the token binds: Twilio brings them all back. */
const CALL_PARAMETERS = { from: FORM.From, to: FORM.To };

/** The token the webhook put into the TwiML for a call. */
/** A refused stream is closed at `start`; a broken check would let it run on: fail in seconds, not at the test timeout. */
const CLOSE_WAIT_MS = 5000;
async function closedWithin(caller: SimulatedCaller, ms: number): Promise<void> {
  const closed = await Promise.race([caller.done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), ms))]);
  if (!closed) throw new Error(`the stream was not closed within ${ms} ms: the start was not refused`);
}

async function tokenFor(r: Rig, callSid: string): Promise<string> {
  const form = { ...FORM, CallSid: callSid };
  const res = await postWebhook(r, { 'x-twilio-signature': sign(`${PUBLIC}/incoming-call`, form) }, form);
  const xml = await res.text();
  const m = /<Parameter name="callToken" value="([^"]+)"\/>/.exec(xml);
  if (m?.[1] === undefined) throw new Error(`no token in ${xml}`);
  return m[1];
}

describe('signed requests only', () => {
  it('answers a correctly signed webhook with the stream URL from PUBLIC_URL and a call token', async () => {
    rig = await startRig({ env: SECURE_ENV });
    const res = await postWebhook(rig, { 'x-twilio-signature': sign(`${PUBLIC}/incoming-call`, FORM) });
    expect(res.status).toBe(200);
    const xml = await res.text();
    expect(xml).toContain(`<Stream url="${STREAM_URL}">`);
    expect(xml).toMatch(/<Parameter name="callToken" value="[A-Za-z0-9_-]{20,}"\/>/);
  });

  it.each([
    ['no signature', {}],
    ['a signature over other parameters', { 'x-twilio-signature': sign(`${PUBLIC}/incoming-call`, { ...FORM, To: '+19990000000' }) }],
    ['a signature over the spoofed Host', { host: 'evil.example', 'x-twilio-signature': sign('https://evil.example/incoming-call', FORM) }],
  ])('refuses a webhook with %s: 403 and no TwiML', async (_name, headers) => {
    rig = await startRig({ env: SECURE_ENV });
    const res = await postWebhook(rig, headers);
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain('<Response>');
  });

  it('refuses an unsigned media stream upgrade with 403 and opens no upstream session', async () => {
    rig = await startRig({ env: SECURE_ENV });
    const caller = rig.caller({ audio: loadCallerMulaw('caller-yes') });
    await expect(caller.start()).rejects.toThrow(/403/);
    expect(caller.handshakeStatus).toBe(403);
    expect(rig.fake.connectionsOpened).toBe(0);
    expect(await rig.server.metrics.render()).toMatch(/callbridge_rejected_connections_total\{reason="bad-signature"\} 1/);
  });

  it.each([
    ['no token', () => ({})],
    ['a token for another call', async (r: Rig) => ({ callToken: await tokenFor(r, 'CAffffffffffffffffffffffffffffffff') })],
    ['a forged token', () => ({ callToken: 'AQAAAZqY3G8A' + 'A'.repeat(43) })],
  ])('closes a signed stream whose start carries %s, before anything goes upstream', async (_name, params) => {
    rig = await startRig({ env: SECURE_ENV });
    const caller = rig.caller({
      audio: loadCallerMulaw('caller-yes'),
      callSid: CALL_SID,
      headers: { 'x-twilio-signature': sign(STREAM_URL, {}) },
      customParameters: await params(rig),
    });
    await caller.start();
    await closedWithin(caller, CLOSE_WAIT_MS);
    expect(caller.closeCode).toBe(1008);
    expect(rig.fake.connectionsOpened).toBe(0);
  });

  it('closes a stream whose token has expired', async () => {
    let now = Date.now();
    rig = await startRig({ env: SECURE_ENV, wallClock: () => now });
    const token = await tokenFor(rig, CALL_SID);
    now += 61_000;
    const caller = rig.caller({ callSid: CALL_SID, headers: { 'x-twilio-signature': sign(STREAM_URL, {}) }, customParameters: { ...CALL_PARAMETERS, callToken: token }, audio: loadCallerMulaw('caller-yes') });
    await caller.start();
    await closedWithin(caller, CLOSE_WAIT_MS);
    expect(caller.closeCode).toBe(1008);
    expect(rig.fake.connectionsOpened).toBe(0);
    expect(rig.logs.find((l) => l.msg === 'stream rejected: start not authorised')).toMatchObject({ reason: 'call token expired' });
  });

  it('serves a call whose webhook and stream are both signed and whose token is valid', async () => {
    rig = await startRig({ env: SECURE_ENV, upstream: { speed: Number.POSITIVE_INFINITY } });
    const token = await tokenFor(rig, CALL_SID);
    const caller = rig.caller({ callSid: CALL_SID, headers: { 'x-twilio-signature': sign(STREAM_URL, {}) }, customParameters: { ...CALL_PARAMETERS, callToken: token }, audio: loadCallerMulaw('caller-yes') });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length === 1, 'answered');
    // Admitted for real: still open, one upstream session, configured and answered, the answer heard.
    expect(caller.closeCode).toBeUndefined();
    expect(rig.fake.connectionsOpened).toBe(1);
    expect(upstreamEvents(rig.fake, 1).map((e) => e.type).slice(0, 2)).toEqual(['session.update', 'response.create']);
    await eventually(() => caller.playedBytesTotal() > 0, 'answer heard');
    expect(rig.logs.some((l) => l.msg === 'stream rejected: start not authorised')).toBe(false);
    await caller.hangUp();
  });
});

describe('limits and draining', () => {
  it('answers busy TwiML beyond MAX_CALLS', async () => {
    rig = await startRig({ env: { MAX_CALLS: '1' } });
    const caller = rig.caller({ audio: loadCallerMulaw('caller-yes') });
    await caller.start();
    await eventually(() => rig!.server.startedCalls === 1, 'first call live');
    const res = await postWebhook(rig, {});
    const xml = await res.text();
    expect(xml).toContain('<Say>');
    expect(xml).toContain('<Hangup/>');
    expect(xml).not.toContain('<Stream');
    await caller.hangUp();
  });

  it('while draining: readiness 503, busy TwiML; live calls and streams of calls already answered carry on', async () => {
    rig = await startRig({ upstream: { speed: Number.POSITIVE_INFINITY } });
    const live = rig.caller({ audio: loadCallerMulaw('caller-yes'), leadingSilenceMs: 300 });
    await live.start();
    expect((await fetch(`${rig.baseUrl}/readyz`)).status).toBe(200);
    rig.server.startDraining();
    expect((await fetch(`${rig.baseUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${rig.baseUrl}/healthz`)).status).toBe(200);
    expect(await (await postWebhook(rig, {})).text()).toContain('<Hangup/>');
    // a call another replica answered before the drain: its stream is still served
    const answeredEarlier = rig.caller({ audio: loadCallerMulaw('caller-yes') });
    await answeredEarlier.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length === 1 && sentOfType(rig!.fake, 2, 'response.done').length === 1, 'both calls answered while draining');
    expect(await rig.server.waitForCallsToFinish(50)).toBe(false);
    await Promise.all([live.hangUp(), answeredEarlier.hangUp()]);
    expect(await rig.server.waitForCallsToFinish(2000)).toBe(true);
  });

  it('counts a call answered by the webhook against MAX_CALLS until its stream starts, for a bounded wait at most', async () => {
    let now = Date.now();
    rig = await startRig({ env: { MAX_CALLS: '1' }, wallClock: () => now });
    expect(await (await postWebhook(rig, {})).text()).toContain('<Stream');
    // the line is promised to that caller: a second call is busy though no stream is open yet
    expect(await (await postWebhook(rig, {}, { ...FORM, CallSid: 'CA11111111111111111111111111111111' })).text()).toContain('<Hangup/>');
    now += ANSWERED_STREAM_WAIT_MS - 1000;
    expect(await (await postWebhook(rig, {}, { ...FORM, CallSid: 'CA33333333333333333333333333333333' })).text()).toContain('<Hangup/>');
    // a stream that never came here went to another replica (or the caller hung up): forgotten
    now += 1000;
    expect(await (await postWebhook(rig, {}, { ...FORM, CallSid: 'CA22222222222222222222222222222222' })).text()).toContain('<Stream');
  });

  it('idle sockets that never send start do not make the line busy, and beyond the pending cap the upgrade is refused with 503', async () => {
    rig = await startRig({ env: { MAX_CALLS: '2' } });
    for (let i = 0; i < MIN_PENDING_STREAMS; i++) await openIdle(rig);
    await eventually(() => rig!.server.calls.size === MIN_PENDING_STREAMS, 'every idle socket accepted');
    const xml = await (await postWebhook(rig, {})).text();
    expect(xml).toContain('<Stream');
    expect(xml).not.toContain('<Hangup/>');

    const refused = rig.caller({ audio: loadCallerMulaw('caller-yes') });
    await expect(refused.start()).rejects.toThrow(/503/);
    expect(refused.handshakeStatus).toBe(503);
    expect(rig.fake.connectionsOpened).toBe(0);
    expect(rig.logs.some((l) => l.msg === 'media stream refused: too many connections waiting for start')).toBe(true);

    // a slot frees as soon as a pending socket goes, and a real call takes it
    idleSockets.pop()?.terminate();
    await eventually(() => rig!.server.calls.size === MIN_PENDING_STREAMS - 1, 'idle socket released');
    const caller = rig.caller({ audio: loadCallerMulaw('caller-yes'), callSid: FORM.CallSid });
    await caller.start();
    await eventually(() => rig!.server.startedCalls === 1, 'the real call started');
    await caller.hangUp();
  });

  it('while draining, waits for the stream of a call answered just before the drain, and serves it', async () => {
    rig = await startRig({ env: SECURE_ENV, upstream: { speed: Number.POSITIVE_INFINITY } });
    const token = await tokenFor(rig, CALL_SID);
    rig.server.startDraining();
    const drained = rig.server.waitForCallsToFinish(20_000);
    await sleep(300);
    expect(await settled(drained)).toBe('pending');

    const caller = rig.caller({ callSid: CALL_SID, headers: { 'x-twilio-signature': sign(STREAM_URL, {}) }, customParameters: { ...CALL_PARAMETERS, callToken: token }, audio: loadCallerMulaw('caller-yes') });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length === 1, 'answered while draining');
    expect(caller.closeCode).toBeUndefined();
    expect(await settled(drained)).toBe('pending');
    await caller.hangUp();
    expect(await drained).toBe(true);
    expect(rig.server.calls.size).toBe(0);
  });

  it('a drain does not wait for an answered stream that never arrives', async () => {
    let now = Date.now();
    rig = await startRig({ env: SECURE_ENV, wallClock: () => now });
    await tokenFor(rig, CALL_SID);
    rig.server.startDraining();
    expect(await rig.server.waitForCallsToFinish(250)).toBe(false);
    now += ANSWERED_STREAM_WAIT_MS;
    expect(await rig.server.waitForCallsToFinish(1000)).toBe(true);
  });
});
