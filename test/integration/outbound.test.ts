/**
 * Outbound calls on real sockets and real HTTP: POST /calls → the Twilio REST double (through
 * TWILIO_API_BASE_URL) → the signed /outbound-answer callback at the URL the double was given →
 * a simulated Twilio stream → callbridge → the strict local Realtime server; and the
 * answering-machine branch through the signed /amd-status callback.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import twilio from 'twilio';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_PATH } from '../../src/config.js';
import type { AnswerSource } from '../../src/tooling/local-model/conversation.js';
import type { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { eventually, sleep, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';
import { createdCallSid, twilioRestDouble } from '../support/peers.js';
import type { TwilioRestDouble } from '../support/peers.js';

const AUTH_TOKEN = 'test-auth-token-0123456789abcdef';
const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const PUBLIC = 'https://cb.example.test';
const STREAM_URL = 'wss://cb.example.test/media-stream';
const API_TOKEN = 'api-token-for-tests-0123456789';
const FROM_NUMBER = '+15551110000';
const CALLEE = '+15553334444';
const SALES_INSTRUCTIONS = 'You call {{context.name}} about plan {{context.plan}} ({{direction}}).';
const VOICEMAIL = 'Hi {{context.name}}, this is Acme. Please call us back.';
const SPEECH = loadAgentPcm24k('agent-answer');

/** Answers by purpose, so each test reads what the model was asked for. */
const model: AnswerSource = (ctx) => {
  const purpose = ctx.metadata?.['purpose'];
  if (purpose === 'voicemail') return { audio: SPEECH.subarray(0, 800 * 24), transcript: 'Hi Ann, this is Acme.' };
  return { audio: SPEECH.subarray(0, 600 * 24), transcript: purpose === 'greeting' ? 'Hello from Acme.' : 'Sure.' };
};

/** A config with a `sales` profile reachable by name, which leaves a voicemail; `quiet` has none. */
function configFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cb-outbound-'));
  const main = { ...(JSON.parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as Record<string, unknown>), profiles: ['sales.json', 'quiet.json'] };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(main));
  writeFileSync(join(dir, 'sales.json'), JSON.stringify({ instructions: SALES_INSTRUCTIONS, greeting: { text: 'Hello {{context.name}}, Acme here.' }, voicemail: VOICEMAIL, idle: null }));
  writeFileSync(join(dir, 'quiet.json'), JSON.stringify({ greeting: { text: 'Hello.' }, idle: null }));
  return join(dir, 'config.json');
}

let rig: Rig | null = null;
let rest: TwilioRestDouble | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
  await rest?.stop();
  rest = null;
});

async function outboundRig(env: NodeJS.ProcessEnv = {}): Promise<{ r: Rig; double: TwilioRestDouble }> {
  const double = await twilioRestDouble().start();
  rest = double;
  const r = await startRig({
    env: {
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      PUBLIC_URL: PUBLIC,
      TWILIO_API_BASE_URL: double.baseUrl,
      API_TOKEN,
      TWILIO_FROM_NUMBER: FROM_NUMBER,
      CONFIG_FILE: configFile(),
      ...env,
    },
    upstream: { answer: model, speed: 4 },
  });
  rig = r;
  return { r, double };
}

async function postCalls(r: Rig, body: unknown, authorization: string | null = `Bearer ${API_TOKEN}`): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${r.baseUrl}/calls`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization === null ? {} : { authorization }) },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** POSTs a Twilio callback to `url` (absolute, under PUBLIC), signed over it unless told otherwise. */
async function twilioCallback(r: Rig, url: string, form: Record<string, string>, signedUrl = url): Promise<Response> {
  const { pathname, search } = new URL(url);
  return fetch(`${r.baseUrl}${pathname}${search}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilio.getExpectedTwilioSignature(AUTH_TOKEN, signedUrl, form) },
    body: new URLSearchParams(form).toString(),
  });
}

const answerForm = (callSid: string): Record<string, string> => ({ CallSid: callSid, AccountSid: ACCOUNT_SID, From: FROM_NUMBER, To: CALLEE, Direction: 'outbound-api', CallStatus: 'in-progress' });

/** Places a call, answers it as Twilio would and returns the stream's `<Parameter>`s. */
async function placeAndAnswer(r: Rig, double: TwilioRestDouble, body: Record<string, unknown>): Promise<{ callSid: string; parameters: Record<string, string>; form: URLSearchParams }> {
  const placed = await postCalls(r, { to: CALLEE, ...body });
  expect(placed.status).toBe(201);
  const created = double.createdCalls.at(-1);
  if (created === undefined) throw new Error('no call created');
  const res = await twilioCallback(r, created.form.get('Url') ?? '', answerForm(created.callSid));
  expect(res.status).toBe(200);
  const parameters: Record<string, string> = {};
  for (const m of (await res.text()).matchAll(/<Parameter name="([^"]+)" value="([^"]*)"\/>/g)) parameters[m[1] ?? ''] = m[2] ?? '';
  return { callSid: created.callSid, parameters, form: created.form };
}

function stream(r: Rig, callSid: string, parameters: Record<string, string>, options: { audio?: Uint8Array; leadingSilenceMs?: number } = {}): SimulatedCaller {
  return r.caller({ callSid, headers: { 'x-twilio-signature': twilio.getExpectedTwilioSignature(AUTH_TOKEN, STREAM_URL, {}) }, customParameters: parameters, ...options });
}

function creates(r: Rig): Array<{ purpose: string; instructions: string }> {
  return upstreamEvents(r.fake, 1)
    .filter((e) => e.type === 'response.create')
    .map((e) => {
      const response = e['response'] as { metadata?: Record<string, string>; instructions?: string };
      return { purpose: response.metadata?.['purpose'] ?? '', instructions: response.instructions ?? '' };
    });
}

const configured = (r: Rig): boolean => upstreamEvents(r.fake, 1).some((e) => e.type === 'session.update');

describe('POST /calls', () => {
  it('is absent without API_TOKEN', async () => {
    const { r } = await outboundRig({ API_TOKEN: '' });
    expect((await postCalls(r, { to: CALLEE })).status).toBe(404);
  });

  it('refuses a missing or wrong bearer token with 401, and places nothing', async () => {
    const { r, double } = await outboundRig();
    for (const authorization of [null, 'Bearer not-the-token-at-all-000000', `Basic ${API_TOKEN}`]) {
      const res = await postCalls(r, { to: CALLEE }, authorization);
      expect(res.status).toBe(401);
      expect(res.json['error']).toMatch(/Authorization: Bearer/);
    }
    expect(double.createdCalls).toEqual([]);
  });

  it('places the call through Twilio REST, pointing Twilio at the signed answer callback', async () => {
    const { r, double } = await outboundRig();
    const res = await postCalls(r, { to: CALLEE, profile: 'sales', context: { name: 'Ann' } });
    expect(res).toEqual({ status: 201, json: { callSid: createdCallSid(1), status: 'queued' } });
    const form = double.createdCalls[0]?.form;
    expect(form?.get('To')).toBe(CALLEE);
    expect(form?.get('From')).toBe(FROM_NUMBER);
    expect(form?.get('Method')).toBe('POST');
    const url = new URL(form?.get('Url') ?? '');
    expect(`${url.origin}${url.pathname}`).toBe(`${PUBLIC}/outbound-answer`);
    expect(url.searchParams.get('profile')).toBe('sales');
    expect(JSON.parse(url.searchParams.get('context') ?? '{}')).toEqual({ name: 'Ann' });
    // No detection asked for: none requested.
    expect(form?.get('MachineDetection')).toBeNull();
    expect(form?.get('AsyncAmdStatusCallback')).toBeNull();
    expect(r.logs.find((l) => l.msg === 'outbound call placed')).toMatchObject({ callSid: createdCallSid(1), to: CALLEE, profile: 'sales', amd: false });
    expect(await r.server.metrics.render()).toMatch(/callbridge_outbound_calls_total\{outcome="placed"\} 1/);
  });

  it('with amd, asks for asynchronous DetectMessageEnd with the verdict posted to /amd-status', async () => {
    const { r, double } = await outboundRig();
    expect((await postCalls(r, { to: CALLEE, profile: 'sales', amd: true })).status).toBe(201);
    const form = double.createdCalls[0]?.form;
    expect(form?.get('MachineDetection')).toBe('DetectMessageEnd');
    expect(form?.get('AsyncAmd')).toBe('true');
    expect(form?.get('AsyncAmdStatusCallbackMethod')).toBe('POST');
    const callback = new URL(form?.get('AsyncAmdStatusCallback') ?? '');
    expect(`${callback.origin}${callback.pathname}`).toBe(`${PUBLIC}/amd-status`);
    expect(callback.searchParams.get('profile')).toBe('sales');
  });

  it.each([
    [{}, 'to'],
    [{ to: '5553334444' }, 'to'],
    [{ to: CALLEE, profile: 'nobody' }, 'profile'],
    [{ to: CALLEE, context: ['a'] }, 'context'],
    [{ to: CALLEE, context: { name: 3 } }, 'context.name'],
    [{ to: CALLEE, context: { from: '+15550000000' } }, 'context.from'],
    [{ to: CALLEE, context: { 'bad key': 'x' } }, 'context.bad key'],
    [{ to: CALLEE, context: { name: 'x'.repeat(201) } }, 'context.name'],
    [{ to: CALLEE, context: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v'])) }, 'context'],
    [{ to: CALLEE, amd: 'yes' }, 'amd'],
    [{ to: CALLEE, pofile: 'sales' }, 'pofile'],
  ])('refuses %j with 400 naming %s', async (body, field) => {
    const { r, double } = await outboundRig();
    const res = await postCalls(r, body);
    expect(res.status).toBe(400);
    expect((res.json['problems'] as string[]).some((p) => p.startsWith(`${field} `))).toBe(true);
    expect(double.createdCalls).toEqual([]);
  });

  it('answers 503 naming what is missing without a caller id, and refuses oversized bodies', async () => {
    const { r } = await outboundRig({ TWILIO_FROM_NUMBER: '' });
    const res = await postCalls(r, { to: CALLEE });
    expect(res).toEqual({ status: 503, json: { error: 'outbound calls are not configured: set TWILIO_FROM_NUMBER', missing: ['TWILIO_FROM_NUMBER'] } });
    const big = await postCalls(r, { to: CALLEE, context: { name: 'x'.repeat(10_000) } });
    expect(big.status).toBe(413);
  });
});

/** `npm run call` against the rig, as a user runs it. */
function runCallScript(args: string[], apiToken: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/call.ts', ...args], { cwd: process.cwd(), env: { ...process.env, API_TOKEN: apiToken } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('npm run call', () => {
  it('places the call and prints its CallSid; prints the error and exits 1 when refused', async () => {
    const { r, double } = await outboundRig();
    const ok = await runCallScript(['--to', CALLEE, '--profile', 'sales', '--context', 'name=Ann', '--context', 'plan=a=b', '--amd', '--url', r.baseUrl], API_TOKEN);
    expect(ok).toMatchObject({ code: 0, stdout: `${createdCallSid(1)} (queued)\n` });
    const url = new URL(double.createdCalls[0]?.form.get('Url') ?? '');
    expect(JSON.parse(url.searchParams.get('context') ?? '{}')).toEqual({ name: 'Ann', plan: 'a=b' });
    expect(double.createdCalls[0]?.form.get('MachineDetection')).toBe('DetectMessageEnd');

    const refused = await runCallScript(['--to', CALLEE, '--url', r.baseUrl], 'wrong-token-0123456789abcdef');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('HTTP 401');
    const usage = await runCallScript(['--url', r.baseUrl], API_TOKEN);
    expect(usage.code).toBe(2);
    expect(double.createdCalls).toHaveLength(1);
  });
});

describe('the answered outbound call', () => {
  it('gets <Connect><Stream> with direction, profile and context bound by the token, and the profile\'s agent', async () => {
    const { r, double } = await outboundRig();
    const { callSid, parameters } = await placeAndAnswer(r, double, { profile: 'sales', context: { name: 'Ann', plan: 'gold' } });
    expect(parameters).toEqual({ from: FROM_NUMBER, to: CALLEE, direction: 'outbound-api', profile: 'sales', name: 'Ann', plan: 'gold', callToken: expect.any(String) as string });

    // The token binds them: a stream claiming another profile is refused.
    const forged = stream(r, callSid, { ...parameters, profile: 'quiet' });
    await forged.start();
    await eventually(() => r.logs.some((l) => l.msg === 'stream rejected: start not authorised'), 'the forged stream refused');
    expect(configured(r)).toBe(false);

    const caller = stream(r, callSid, parameters);
    await caller.start();
    await eventually(() => upstreamEvents(r.fake, 1).some((e) => e.type === 'session.update'), 'the session configured');
    const update = upstreamEvents(r.fake, 1).find((e) => e.type === 'session.update') as { session: { instructions: string } } | undefined;
    expect(update?.session.instructions).toBe('You call Ann about plan gold (outbound-api).');
    // No detection: the greeting goes at once.
    await eventually(() => creates(r).some((c) => c.purpose === 'greeting'), 'the greeting');
    await caller.hangUp();
  });

  it('refuses a callback whose query was changed after Twilio signed it', async () => {
    const { r, double } = await outboundRig();
    expect((await postCalls(r, { to: CALLEE, profile: 'quiet' })).status).toBe(201);
    const created = double.createdCalls[0];
    const signed = created?.form.get('Url') ?? '';
    const res = await twilioCallback(r, signed.replace('profile=quiet', 'profile=sales'), answerForm(created?.callSid ?? ''), signed);
    expect(res.status).toBe(403);
  });
});

describe('answering-machine detection', () => {
  it('a machine: no greeting, the voicemail after the verdict, and the call hung up once it was heard', async () => {
    const { r, double } = await outboundRig();
    const { callSid, parameters, form } = await placeAndAnswer(r, double, { profile: 'sales', context: { name: 'Ann' }, amd: true });
    expect(parameters['amd']).toBe('pending');
    const caller = stream(r, callSid, parameters);
    await caller.start();
    await eventually(() => configured(r), 'the session configured');
    // Detection runs: the greeting is held.
    await sleep(400);
    expect(creates(r)).toEqual([]);

    const verdict = await twilioCallback(r, form.get('AsyncAmdStatusCallback') ?? '', { CallSid: callSid, AccountSid: ACCOUNT_SID, AnsweredBy: 'machine_end_beep' });
    expect(verdict.status).toBe(204);
    await eventually(() => r.logs.some((l) => l.msg === 'call ended' && l['reason'] === 'voicemail'), 'the call ended on the voicemail');
    expect(creates(r)).toEqual([{ purpose: 'voicemail', instructions: 'Say exactly this, word for word, and nothing else: "Hi Ann, this is Acme. Please call us back."' }]);
    // Hung up through REST, after the message was heard.
    const hungUp = (): boolean => double.requests.some((q) => q.path.endsWith(`/Calls/${callSid}.json`) && new URLSearchParams(q.body).get('Status') === 'completed');
    await eventually(hungUp, 'the REST hang-up');
    const heard = r.logs.findIndex((l) => l.msg === 'goodbye heard: ending the call');
    expect(heard).toBeGreaterThan(r.logs.findIndex((l) => l.msg === 'answered by a machine: leaving the voicemail after the beep'));
    expect(await r.server.metrics.render()).toMatch(/callbridge_amd_results_total\{answered_by="machine_end_beep"\} 1/);
    expect(await r.server.metrics.render()).toMatch(/callbridge_calls_total\{outcome="voicemail"\} 1/);
  });

  it('a person: the normal greeting once the verdict comes', async () => {
    const { r, double } = await outboundRig();
    const { callSid, parameters, form } = await placeAndAnswer(r, double, { profile: 'sales', context: { name: 'Ann' }, amd: true });
    const caller = stream(r, callSid, parameters);
    await caller.start();
    await eventually(() => configured(r), 'the session configured');
    await sleep(300);
    expect(creates(r)).toEqual([]);
    await twilioCallback(r, form.get('AsyncAmdStatusCallback') ?? '', { CallSid: callSid, AccountSid: ACCOUNT_SID, AnsweredBy: 'human' });
    await eventually(() => creates(r).length > 0, 'the greeting');
    expect(creates(r)[0]).toEqual({ purpose: 'greeting', instructions: 'Say exactly this, word for word, and nothing else: "Hello Ann, Acme here."' });
    await caller.hangUp();
  });

  it('a callee who speaks first during detection is answered without waiting for the verdict', async () => {
    const { r, double } = await outboundRig();
    const { callSid, parameters } = await placeAndAnswer(r, double, { profile: 'sales', context: { name: 'Ann' }, amd: true });
    const caller = stream(r, callSid, parameters, { audio: loadCallerMulaw('caller-yes'), leadingSilenceMs: 500 });
    await caller.start();
    await eventually(() => creates(r).length > 0, 'the answer to the callee');
    expect(creates(r)[0]?.purpose).toBe('greeting');
    expect(r.logs.some((l) => l.msg === 'callee spoke during answering-machine detection: answering them' && l.callSid === callSid)).toBe(true);
    await caller.hangUp();
  });

  it('a verdict for a call whose stream this process does not hold falls back to Twilio REST', async () => {
    const { r, double } = await outboundRig();
    expect((await postCalls(r, { to: CALLEE, profile: 'sales', context: { name: 'Ann' }, amd: true })).status).toBe(201);
    const created = double.createdCalls[0];
    const callSid = created?.callSid ?? '';
    const res = await twilioCallback(r, created?.form.get('AsyncAmdStatusCallback') ?? '', { CallSid: callSid, AccountSid: ACCOUNT_SID, From: FROM_NUMBER, To: CALLEE, AnsweredBy: 'machine_end_silence' });
    expect(res.status).toBe(204);
    await eventually(() => double.requests.some((q) => q.path.endsWith(`/Calls/${callSid}.json`)), 'the REST update');
    const update = double.requests.find((q) => q.path.endsWith(`/Calls/${callSid}.json`));
    expect(new URLSearchParams(update?.body).get('Twiml')).toBe('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi Ann, this is Acme. Please call us back.</Say><Hangup/></Response>');
    await eventually(() => r.logs.some((l) => l.msg === 'answering-machine verdict for a call whose stream is not here: applied through Twilio REST'), 'the log line');
    expect(r.logs.find((l) => l.msg === 'answering-machine verdict for a call whose stream is not here: applied through Twilio REST')).toMatchObject({ callSid, voicemail: true });
  });
});
