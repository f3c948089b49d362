import { spawn } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  TwilioApiError,
  TwilioInputError,
  callStatus,
  configureVoiceWebhook,
  createTwilioClient,
  hangUpCall,
  transferCall,
  voiceWebhookUrlFrom,
} from '../../src/twilio/rest.js';
import { dialTwiml, hangupTwiml } from '../../src/twilio/twiml.js';
import { HttpPeer, type ReceivedRequest } from '../support/peers.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const AUTH_TOKEN = 'test-auth-token-0123456789abcdef';
const NUMBER = '+15551234567';
const NUMBER_SID = 'PN11111111111111111111111111111111';
const OLD_VOICE_URL = 'https://demo.twilio.com/welcome/voice/';
const APP_NUMBER = '+15557654321';
const LIVE_CALL = 'CA22222222222222222222222222222222';
const UNKNOWN_CALL = 'CA33333333333333333333333333333333';

interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  contentType: string | undefined;
  body: string;
}

interface FakeNumber {
  sid: string;
  phoneNumber: string;
  voiceUrl: string | null;
  voiceMethod: string;
  voiceApplicationSid: string | null;
}

/**
 * The slice of Twilio's 2010-04-01 REST API the code under test calls, answering with Twilio's
 * JSON shapes (snake_case, pagination envelope, error bodies) and checking Basic auth.
 */
class FakeTwilio {
  readonly requests: RecordedRequest[] = [];
  numbers: FakeNumber[] = [];
  calls = new Map<string, string>();
  /** When set, every call update answers this instead (Twilio's JSON error shape). */
  callUpdateFailure: { status: number; code: number; message: string } | null = null;
  /** When set, every call fetch answers this instead. */
  callFetchFailure: { status: number; code: number; message: string } | null = null;
  /** When set, call fetches are never answered (a timeout). */
  callFetchHangs = false;
  private readonly peer = new HttpPeer((req, res) => this.answer(req, res));

  get baseUrl(): string {
    return this.peer.baseUrl;
  }

  reset(): void {
    this.requests.length = 0;
    this.numbers = [
      { sid: NUMBER_SID, phoneNumber: NUMBER, voiceUrl: OLD_VOICE_URL, voiceMethod: 'POST', voiceApplicationSid: null },
      // Contains NUMBER as a prefix: Twilio's PhoneNumber filter matches it too.
      { sid: 'PN44444444444444444444444444444444', phoneNumber: '+155512345670', voiceUrl: null, voiceMethod: 'POST', voiceApplicationSid: null },
      { sid: 'PN55555555555555555555555555555555', phoneNumber: APP_NUMBER, voiceUrl: '', voiceMethod: 'POST', voiceApplicationSid: 'AP66666666666666666666666666666666' },
    ];
    this.calls = new Map([[LIVE_CALL, 'in-progress']]);
    this.callUpdateFailure = null;
    this.callFetchFailure = null;
    this.callFetchHangs = false;
  }

  async start(): Promise<void> {
    await this.peer.start();
  }

  async stop(): Promise<void> {
    await this.peer.stop();
  }

  private answer(req: ReceivedRequest, res: ServerResponse): void {
    const url = new URL(req.path, 'http://fake');
    const recorded: RecordedRequest = {
      method: req.method,
      path: url.pathname,
      query: url.searchParams,
      authorization: req.headers.authorization,
      contentType: req.headers['content-type'],
      body: req.body,
    };
    this.requests.push(recorded);

    const send = (status: number, payload: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(payload));
    };
    const notFound = (): void =>
      send(404, {
        code: 20404,
        message: `The requested resource ${url.pathname} was not found`,
        more_info: 'https://www.twilio.com/docs/errors/20404',
        status: 404,
      });

    const expectedAuth = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`;
    if (recorded.authorization !== expectedAuth) {
      send(401, { code: 20003, detail: 'Your AccountSid or AuthToken was incorrect.', message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
      return;
    }

    const base = `/2010-04-01/Accounts/${ACCOUNT_SID}`;
    if (recorded.method === 'GET' && url.pathname === `${base}/IncomingPhoneNumbers.json`) {
      const filter = url.searchParams.get('PhoneNumber') ?? '';
      const uri = `${url.pathname}${url.search}`;
      send(200, {
        first_page_uri: uri,
        end: 0,
        previous_page_uri: null,
        incoming_phone_numbers: this.numbers.filter((n) => n.phoneNumber.includes(filter)).map((n) => numberJson(n)),
        uri,
        page_size: 50,
        start: 0,
        next_page_uri: null,
        page: 0,
      });
      return;
    }

    const numberPath = new RegExp(`^${base}/IncomingPhoneNumbers/(PN[0-9a-f]{32})\\.json$`).exec(url.pathname);
    if (recorded.method === 'POST' && numberPath !== null) {
      const number = this.numbers.find((n) => n.sid === numberPath[1]);
      if (number === undefined) return notFound();
      const form = new URLSearchParams(recorded.body);
      number.voiceUrl = form.get('VoiceUrl') ?? number.voiceUrl;
      number.voiceMethod = form.get('VoiceMethod') ?? number.voiceMethod;
      send(200, numberJson(number));
      return;
    }

    const callPath = new RegExp(`^${base}/Calls/(CA[0-9a-f]{32})\\.json$`).exec(url.pathname);
    if (recorded.method === 'GET' && callPath?.[1] !== undefined) {
      if (this.callFetchHangs) return;
      if (this.callFetchFailure !== null) {
        const { status, code, message } = this.callFetchFailure;
        send(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
        return;
      }
      const status = this.calls.get(callPath[1]);
      if (status === undefined) return notFound();
      send(200, callJson(callPath[1], status));
      return;
    }
    if (recorded.method === 'POST' && callPath?.[1] !== undefined) {
      const sid = callPath[1];
      if (this.callUpdateFailure !== null) {
        const { status, code, message } = this.callUpdateFailure;
        send(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
        return;
      }
      if (!this.calls.has(sid)) return notFound();
      const status = new URLSearchParams(recorded.body).get('Status') ?? this.calls.get(sid) ?? 'in-progress';
      this.calls.set(sid, status);
      send(200, callJson(sid, status));
      return;
    }

    notFound();
  }
}

function numberJson(n: FakeNumber): Record<string, unknown> {
  return {
    account_sid: ACCOUNT_SID,
    address_requirements: 'none',
    address_sid: null,
    api_version: '2010-04-01',
    beta: false,
    capabilities: { voice: true, sms: true, mms: true, fax: false },
    date_created: 'Thu, 30 Jul 2015 23:19:04 +0000',
    date_updated: 'Thu, 30 Jul 2015 23:19:04 +0000',
    emergency_status: 'Inactive',
    friendly_name: n.phoneNumber,
    identity_sid: null,
    origin: 'twilio',
    phone_number: n.phoneNumber,
    sid: n.sid,
    sms_application_sid: null,
    sms_method: 'POST',
    sms_url: '',
    status: 'in-use',
    status_callback: '',
    status_callback_method: 'POST',
    trunk_sid: null,
    uri: `/2010-04-01/Accounts/${ACCOUNT_SID}/IncomingPhoneNumbers/${n.sid}.json`,
    voice_application_sid: n.voiceApplicationSid,
    voice_caller_id_lookup: false,
    voice_fallback_method: 'POST',
    voice_fallback_url: null,
    voice_method: n.voiceMethod,
    voice_receive_mode: 'voice',
    voice_url: n.voiceUrl,
    bundle_sid: null,
  };
}

function callJson(sid: string, status: string): Record<string, unknown> {
  return {
    account_sid: ACCOUNT_SID,
    api_version: '2010-04-01',
    date_created: 'Tue, 31 Aug 2010 20:36:28 +0000',
    date_updated: 'Tue, 31 Aug 2010 20:36:44 +0000',
    direction: 'inbound',
    duration: '15',
    from: '+15550001111',
    sid,
    status,
    to: NUMBER,
    uri: `/2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${sid}.json`,
  };
}

const fake = new FakeTwilio();
beforeAll(() => fake.start());
afterAll(() => fake.stop());
beforeEach(() => fake.reset());

function client(authToken = AUTH_TOKEN): ReturnType<typeof createTwilioClient> {
  return createTwilioClient({ accountSid: ACCOUNT_SID, authToken, apiBaseUrl: fake.baseUrl });
}

describe('configureVoiceWebhook', () => {
  it('finds the number and sets its voice URL and method, authenticating as the account', async () => {
    const result = await configureVoiceWebhook(client(), { phoneNumber: NUMBER, voiceUrl: 'https://abc.ngrok.app/incoming-call' });

    expect(result).toEqual({ sid: NUMBER_SID, phoneNumber: NUMBER, previousVoiceUrl: OLD_VOICE_URL, voiceUrl: 'https://abc.ngrok.app/incoming-call' });
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /2010-04-01/Accounts/${ACCOUNT_SID}/IncomingPhoneNumbers.json`,
      `POST /2010-04-01/Accounts/${ACCOUNT_SID}/IncomingPhoneNumbers/${NUMBER_SID}.json`,
    ]);
    const [list, update] = fake.requests;
    expect(list?.query.get('PhoneNumber')).toBe(NUMBER);
    expect(update?.contentType).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(update?.body))).toStrictEqual({
      VoiceUrl: 'https://abc.ngrok.app/incoming-call',
      VoiceMethod: 'POST',
    });
    const basic = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`;
    expect(fake.requests.every((r) => r.authorization === basic)).toBe(true);
  });

  it('reports no previous URL for a number that had none', async () => {
    const result = await configureVoiceWebhook(client(), { phoneNumber: '+155512345670', voiceUrl: 'https://abc.ngrok.app/incoming-call' });
    expect(result.sid).toBe('PN44444444444444444444444444444444');
    expect(result.previousVoiceUrl).toBeNull();
  });

  it('fails clearly, naming account and number, when the account does not own the number', async () => {
    const err = await configureVoiceWebhook(client(), { phoneNumber: '+15559990000', voiceUrl: 'https://abc.ngrok.app/incoming-call' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect((err as Error).message).toContain('+15559990000');
    expect((err as Error).message).toContain(ACCOUNT_SID);
    expect(fake.requests.filter((r) => r.method === 'POST')).toEqual([]);
  });

  it('does not match a number by prefix only', async () => {
    fake.numbers = fake.numbers.filter((n) => n.sid !== NUMBER_SID);
    await expect(configureVoiceWebhook(client(), { phoneNumber: NUMBER, voiceUrl: 'https://abc.ngrok.app/incoming-call' })).rejects.toThrow(
      /\+15551234567 is not on Twilio account/,
    );
    expect(fake.requests.filter((r) => r.method === 'POST')).toEqual([]);
  });

  it('refuses a number whose calls a TwiML app handles, where the voice URL would be ignored', async () => {
    await expect(configureVoiceWebhook(client(), { phoneNumber: APP_NUMBER, voiceUrl: 'https://abc.ngrok.app/incoming-call' })).rejects.toThrow(
      /TwiML app AP6{32}/,
    );
    expect(fake.requests.filter((r) => r.method === 'POST')).toEqual([]);
  });

  it('surfaces a rejected credential with its HTTP status and Twilio code', async () => {
    const err = await configureVoiceWebhook(client('wrong-token'), { phoneNumber: NUMBER, voiceUrl: 'https://abc.ngrok.app/incoming-call' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: 401, code: 20003 });
    expect((err as Error).message).toMatch(/look up \+15551234567 on Twilio account AC\w+: HTTP 401, Twilio error 20003: Authenticate/);
  });

  it('rejects malformed numbers and non-https URLs before calling Twilio', async () => {
    const c = client();
    for (const phoneNumber of ['5551234567', '+1 555 123 4567', '+0551234567', '']) {
      await expect(configureVoiceWebhook(c, { phoneNumber, voiceUrl: 'https://abc.ngrok.app/incoming-call' })).rejects.toThrow(TwilioInputError);
    }
    for (const voiceUrl of ['http://abc.ngrok.app/incoming-call', 'ftp://abc.ngrok.app/x', 'abc.ngrok.app/incoming-call']) {
      await expect(configureVoiceWebhook(c, { phoneNumber: NUMBER, voiceUrl })).rejects.toThrow(TwilioInputError);
    }
    expect(fake.requests).toEqual([]);
    await expect(configureVoiceWebhook(c, { phoneNumber: NUMBER, voiceUrl: 'http://localhost:5050/incoming-call' })).resolves.toMatchObject({
      voiceUrl: 'http://localhost:5050/incoming-call',
    });
  });

  it('reports an unreachable API as a TwilioApiError without a status', async () => {
    const dead = new FakeTwilio();
    await dead.start();
    const deadUrl = dead.baseUrl;
    await dead.stop();
    const c = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBaseUrl: deadUrl });
    const err = await configureVoiceWebhook(c, { phoneNumber: NUMBER, voiceUrl: 'https://abc.ngrok.app/incoming-call' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: null, code: null });
    expect((err as Error).message).toMatch(/could not reach the Twilio API: \S+/);
  });
});

describe('voiceWebhookUrlFrom', () => {
  it('appends /incoming-call to the public base', () => {
    expect(voiceWebhookUrlFrom('https://abc.ngrok.app')).toBe('https://abc.ngrok.app/incoming-call');
    expect(voiceWebhookUrlFrom('https://abc.ngrok.app//')).toBe('https://abc.ngrok.app/incoming-call');
    expect(voiceWebhookUrlFrom('https://lb.example.com/bridge/')).toBe('https://lb.example.com/bridge/incoming-call');
    expect(() => voiceWebhookUrlFrom('https://abc.ngrok.app/?x=1')).toThrow(TwilioInputError);
    expect(() => voiceWebhookUrlFrom('http://abc.ngrok.app')).toThrow(TwilioInputError);
  });
});

describe('hangUpCall', () => {
  it('completes a live call', async () => {
    await expect(hangUpCall(client(), LIVE_CALL)).resolves.toBe('completed');
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.path).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${LIVE_CALL}.json`);
    expect(Object.fromEntries(new URLSearchParams(fake.requests[0]?.body))).toStrictEqual({ Status: 'completed' });
    expect(fake.calls.get(LIVE_CALL)).toBe('completed');
  });

  it('treats 404 / 20404 as a call that already ended', async () => {
    await expect(hangUpCall(client(), UNKNOWN_CALL)).resolves.toBe('already-ended');
  });

  it('throws anything else with the call and the account in the message', async () => {
    const err = await hangUpCall(client('wrong-token'), LIVE_CALL).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: 401, code: 20003 });
    expect((err as Error).message).toContain(`hang up call ${LIVE_CALL} on Twilio account ${ACCOUNT_SID}`);
  });

  it('rejects something that is not a call SID without a request', async () => {
    await expect(hangUpCall(client(), '../Accounts')).rejects.toThrow(TwilioInputError);
    expect(fake.requests).toEqual([]);
  });
});

describe('transferCall', () => {
  const twiml = dialTwiml('+15557770000', { callerId: NUMBER, actionUrl: 'https://abc.ngrok.app/transfer-status?callSid=x&y=1' });

  it('replaces the live call\'s TwiML with the Dial document, authenticating as the account', async () => {
    await expect(transferCall(client(), LIVE_CALL, twiml)).resolves.toBe('redirected');
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`POST /2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${LIVE_CALL}.json`]);
    const [update] = fake.requests;
    expect(update?.contentType).toBe('application/x-www-form-urlencoded');
    expect(update?.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    // Exactly one field, carrying the document byte for byte (& and quotes survive form encoding).
    expect(Object.fromEntries(new URLSearchParams(update?.body))).toStrictEqual({ Twiml: twiml });
    expect(fake.calls.get(LIVE_CALL)).toBe('in-progress');
  });

  it('treats 404 / 20404 as a call that already ended', async () => {
    await expect(transferCall(client(), UNKNOWN_CALL, twiml)).resolves.toBe('already-ended');
    expect(fake.requests).toHaveLength(1);
  });

  it('throws a TwilioApiError with status and code on a server error', async () => {
    fake.callUpdateFailure = { status: 500, code: 20500, message: 'Internal Server Error' };
    const err = await transferCall(client(), LIVE_CALL, twiml).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: 500, code: 20500 });
    expect((err as Error).message).toContain(`transfer call ${LIVE_CALL} on Twilio account ${ACCOUNT_SID}: HTTP 500, Twilio error 20500`);
    expect(fake.requests).toHaveLength(1);
  });

  it('throws a TwilioApiError on rejected credentials', async () => {
    const err = await transferCall(client('wrong-token'), LIVE_CALL, twiml).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: 401, code: 20003 });
  });

  it('rejects something that is not a call SID, or empty TwiML, without a request', async () => {
    await expect(transferCall(client(), '../Accounts', twiml)).rejects.toThrow(TwilioInputError);
    await expect(transferCall(client(), `${LIVE_CALL}/x`, twiml)).rejects.toThrow(TwilioInputError);
    await expect(transferCall(client(), LIVE_CALL, '  ')).rejects.toThrow(TwilioInputError);
    expect(fake.requests).toEqual([]);
  });
});

describe('callStatus', () => {
  it('reads the status of a call, authenticating as the account', async () => {
    await expect(callStatus(client(), LIVE_CALL)).resolves.toEqual({ kind: 'found', status: 'in-progress' });
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${LIVE_CALL}.json`]);
    expect(fake.requests[0]?.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    fake.calls.set(LIVE_CALL, 'completed');
    await expect(callStatus(client(), LIVE_CALL)).resolves.toEqual({ kind: 'found', status: 'completed' });
  });

  it('treats 404 / 20404 as a call Twilio does not have', async () => {
    await expect(callStatus(client(), UNKNOWN_CALL)).resolves.toEqual({ kind: 'not-found' });
  });

  it('throws a TwilioApiError with status and code on any other answer, naming call and account', async () => {
    fake.callFetchFailure = { status: 500, code: 20500, message: 'Internal Server Error' };
    const err = await callStatus(client(), LIVE_CALL).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: 500, code: 20500 });
    expect((err as Error).message).toContain(`read the status of call ${LIVE_CALL} on Twilio account ${ACCOUNT_SID}: HTTP 500, Twilio error 20500`);
    fake.callFetchFailure = null;
    await expect(callStatus(client('wrong-token'), LIVE_CALL)).rejects.toMatchObject({ status: 401, code: 20003 });
  });

  it('gives up after the client\'s request timeout with a TwilioApiError without a status', async () => {
    fake.callFetchHangs = true;
    const started = Date.now();
    const err = await callStatus(createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBaseUrl: fake.baseUrl, requestTimeoutMs: 200 }), LIVE_CALL).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toBeInstanceOf(TwilioApiError);
    expect(err).toMatchObject({ status: null, code: null });
    expect((err as Error).message).toMatch(/could not reach the Twilio API: timeout of 200ms exceeded/);
  });

  it('rejects something that is not a call SID without a request', async () => {
    await expect(callStatus(client(), '../Accounts')).rejects.toThrow(TwilioInputError);
    expect(fake.requests).toEqual([]);
  });
});

describe('dialTwiml', () => {
  const XML = '<?xml version="1.0" encoding="UTF-8"?>';

  it('dials an E.164 target as <Number> with action, method, callerId and a 20 s timeout', () => {
    expect(dialTwiml('+15557770000', { callerId: '+15551234567', actionUrl: 'https://abc.ngrok.app/transfer-status' })).toBe(
      `${XML}<Response><Dial action="https://abc.ngrok.app/transfer-status" method="POST" callerId="+15551234567" timeout="20">` +
        '<Number>+15557770000</Number></Dial></Response>',
    );
  });

  it('dials a SIP URI as <Sip>, omits callerId when null and takes another timeout', () => {
    expect(dialTwiml('sip:agent@pbx.example.com;transport=tls', { callerId: null, actionUrl: 'https://abc.ngrok.app/t', timeoutS: 45 })).toBe(
      `${XML}<Response><Dial action="https://abc.ngrok.app/t" method="POST" timeout="45">` +
        '<Sip>sip:agent@pbx.example.com;transport=tls</Sip></Dial></Response>',
    );
  });

  it('escapes the action URL as an XML attribute', () => {
    expect(dialTwiml('+15557770000', { callerId: null, actionUrl: 'https://abc.ngrok.app/t?a=1&b="2"' })).toContain(
      'action="https://abc.ngrok.app/t?a=1&amp;b=&quot;2&quot;"',
    );
  });

  it('refuses a target that is neither E.164 nor a SIP URI, and an out-of-range timeout', () => {
    for (const target of ['5557770000', '+1 555 777 0000', 'agent@pbx.example.com', 'sip:', 'tel:+15557770000', '']) {
      expect(() => dialTwiml(target, { callerId: null, actionUrl: 'https://abc.ngrok.app/t' })).toThrow(/E\.164 number .* or a SIP URI/);
    }
    for (const timeoutS of [0, 4, 601, 2.5]) {
      expect(() => dialTwiml('+15557770000', { callerId: null, actionUrl: 'https://abc.ngrok.app/t', timeoutS })).toThrow(/dial timeout/);
    }
  });
});

describe('hangupTwiml', () => {
  it('is a bare <Hangup/>', () => {
    expect(hangupTwiml()).toBe('<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>');
  });
});

describe('createTwilioClient', () => {
  it('rejects a malformed account SID or an http API base off loopback', () => {
    expect(() => createTwilioClient({ accountSid: 'SK0123456789abcdef0123456789abcdef', authToken: AUTH_TOKEN })).toThrow(TwilioInputError);
    expect(() => createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBaseUrl: 'http://example.com' })).toThrow(TwilioInputError);
  });
});

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Asynchronous on purpose: the fake answers from this process's event loop. */
function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('TWILIO_') && name !== 'PUBLIC_URL'),
  );
  return new Promise((ok, fail) => {
    const child = spawn('npx', ['tsx', 'scripts/twilio-configure.ts', ...args], {
      cwd: REPO_ROOT,
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => ok({ code, stdout, stderr }));
  });
}

describe('npm run twilio:configure', () => {
  const credentials = (): Record<string, string> => ({ TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_AUTH_TOKEN: AUTH_TOKEN, TWILIO_API_BASE_URL: fake.baseUrl });

  it('configures the number and prints the old and new URL', async () => {
    const run = await runCli(['--number', NUMBER, '--url', 'https://abc.ngrok.app/'], credentials());
    expect(run.stderr).toContain('TWILIO_API_BASE_URL is set');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`${NUMBER} (${NUMBER_SID}) on account ${ACCOUNT_SID}`);
    expect(run.stdout).toContain(`${OLD_VOICE_URL} → https://abc.ngrok.app/incoming-call`);
    expect(fake.numbers.find((n) => n.sid === NUMBER_SID)?.voiceUrl).toBe('https://abc.ngrok.app/incoming-call');
  });

  it('takes the URL from PUBLIC_URL by default', async () => {
    const run = await runCli(['--number', NUMBER], { ...credentials(), PUBLIC_URL: 'https://tunnel.example.com' });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('→ https://tunnel.example.com/incoming-call');
  });

  it('exits 2 naming the missing variable when TWILIO_AUTH_TOKEN is not set, without calling Twilio', async () => {
    const { TWILIO_AUTH_TOKEN: _omitted, ...env } = credentials();
    const run = await runCli(['--number', NUMBER, '--url', 'https://abc.ngrok.app'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('TWILIO_AUTH_TOKEN is not set');
    expect(fake.requests).toEqual([]);
  });

  it('exits 2 on usage errors and 1 when the API refuses', async () => {
    const noNumber = await runCli(['--url', 'https://abc.ngrok.app'], credentials());
    expect(noNumber.code).toBe(2);
    expect(noNumber.stderr).toContain('--number is required');

    const unknown = await runCli(['--number', '+15559990000', '--url', 'https://abc.ngrok.app'], credentials());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`phone number +15559990000 is not on Twilio account ${ACCOUNT_SID}`);
  });

  it('prints help and exits 0 on --help', async () => {
    const run = await runCli(['--help'], {});
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: npm run twilio:configure -- --number');
  });
});
