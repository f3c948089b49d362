/**
 * The phone agent on real sockets and real HTTP: signed webhook → TwiML → simulated Twilio caller
 * → callbridge → strict local Realtime server, with an http tool server and a Twilio REST double
 * reached through TWILIO_API_BASE_URL. Asserts what each peer received, exactly.
 */
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import twilio from 'twilio';
import { afterEach, describe, expect, it } from 'vitest';
import type { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import type { AnswerSource } from '../../src/tooling/local-model/conversation.js';
import { eventually, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';
import { HttpPeer, orderLookupTool, twilioRestDouble } from '../support/peers.js';

const AUTH_TOKEN = 'test-auth-token-0123456789abcdef';
const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const PUBLIC = 'https://cb.example.test';
const STREAM_URL = 'wss://cb.example.test/media-stream';
const CALL_SID = 'CA0123456789abcdef0123456789abcdef';
const FROM = '+15550001111';
const TO = '+15552223333';
const AGENT_DESK = '+15557778888';
const TOOLS_SECRET = 'tools-secret-for-tests';

const QUESTION = loadCallerMulaw('caller-question');
const YES = loadCallerMulaw('caller-yes');
const SPEECH = loadAgentPcm24k('agent-answer');
const speech = (ms: number): Int16Array => SPEECH.subarray(0, ms * 24);
const NONE = new Int16Array(0);

let rig: Rig | null = null;
const peers: HttpPeer[] = [];
afterEach(async () => {
  await rig?.close();
  rig = null;
  for (const p of peers.splice(0)) await p.stop();
});

function sign(url: string, params: Record<string, string>): string {
  return twilio.getExpectedTwilioSignature(AUTH_TOKEN, url, params);
}

/** POSTs a signed Twilio callback and returns the `<Parameter>`s of the TwiML's stream. */
async function signedCallback(r: Rig, path: string, form: Record<string, string>): Promise<{ xml: string; parameters: Record<string, string> }> {
  const res = await fetch(`${r.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': sign(`${PUBLIC}${path}`, form) },
    body: new URLSearchParams(form).toString(),
  });
  expect(res.status).toBe(200);
  const xml = await res.text();
  const parameters: Record<string, string> = {};
  for (const m of xml.matchAll(/<Parameter name="([^"]+)" value="([^"]*)"\/>/g)) parameters[m[1] ?? ''] = m[2] ?? '';
  return { xml, parameters };
}

/**
 * The model of these calls: it greets, looks the order up when asked, then calls `finalTool`
 * on the caller's next turn, and speaks after each tool output.
 */
function scriptedModel(finalTool: 'end_call' | 'transfer_call'): AnswerSource {
  let callerTurns = 0;
  return (ctx) => {
    const purpose = ctx.metadata?.['purpose'];
    if (purpose === 'greeting') return { audio: speech(1000), transcript: 'Thanks for calling Acme.' };
    if (purpose === 'transfer-failed') return { audio: speech(600), transcript: 'Sorry, nobody picked up. How else can I help?' };
    const output = ctx.lastFunctionOutput;
    if (output?.name === 'lookup_order') return { audio: speech(1200), transcript: 'Your order has shipped.' };
    if (output?.name === 'end_call') return { audio: speech(900), transcript: 'Goodbye!' };
    if (output?.name === 'transfer_call') return { audio: speech(700), transcript: 'Transferring you now.' };
    callerTurns += 1;
    if (callerTurns === 1) return { audio: NONE, transcript: '', functionCall: { name: 'lookup_order', arguments: '{"order":"42"}' } };
    return { audio: NONE, transcript: '', functionCall: { name: finalTool, arguments: '{}' } };
  };
}

async function agentRig(finalTool: 'end_call' | 'transfer_call'): Promise<{ rig: Rig; rest: HttpPeer; tools: HttpPeer }> {
  const rest = await twilioRestDouble().start();
  const tools = await new HttpPeer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"shipped","eta":"tomorrow"}');
  }).start();
  peers.push(rest, tools);
  const r = await startRig({
    env: { TWILIO_AUTH_TOKEN: AUTH_TOKEN, TWILIO_ACCOUNT_SID: ACCOUNT_SID, PUBLIC_URL: PUBLIC, TWILIO_API_BASE_URL: rest.baseUrl, TOOLS_SECRET },
    upstream: { answer: scriptedModel(finalTool), speed: 4 },
    agent: {
      greeting: { text: 'Thanks for calling Acme.' },
      tools: [
        { type: 'end_call' },
        { type: 'transfer_call', to: AGENT_DESK },
        orderLookupTool(tools.baseUrl),
      ],
    },
  });
  rig = r;
  return { rig: r, rest, tools };
}

function callerFor(r: Rig, parameters: Record<string, string>, segments: Uint8Array[]): SimulatedCaller {
  return r.caller({
    callSid: CALL_SID,
    headers: { 'x-twilio-signature': sign(STREAM_URL, {}) },
    customParameters: parameters,
    segments: segments.map((audio) => ({ audio, start: { afterAgentQuietMs: 400 } })),
  });
}

/** Client events the model received, as `type` or `type:purpose` / `type:item type`. */
function upstreamSummary(r: Rig, connectionId: number): string[] {
  return upstreamEvents(r.fake, connectionId).map((e) => {
    if (e.type === 'response.create') return `response.create:${((e['response'] as { metadata?: Record<string, string> } | undefined)?.metadata ?? {})['purpose']}`;
    if (e.type === 'conversation.item.create') {
      const item = e['item'] as { type: string; role?: string };
      return `conversation.item.create:${item.role ?? item.type}`;
    }
    return e.type;
  });
}

describe('phone agent on real sockets', () => {
  it('greeting → question → tool → answer → end_call: exact messages at every peer, hang-up after the goodbye was heard', async () => {
    const { rig: r, rest, tools } = await agentRig('end_call');
    const { xml, parameters } = await signedCallback(r, '/incoming-call', { CallSid: CALL_SID, AccountSid: ACCOUNT_SID, From: FROM, To: TO });
    expect(xml).not.toContain('<Say');
    expect(parameters).toMatchObject({ from: FROM, to: TO });
    const caller = callerFor(r, parameters, [QUESTION, YES]);
    await caller.start();
    await caller.done;

    // The model: configured with the tools, greeted, answered two turns, got each output once.
    expect(upstreamSummary(r, 1)).toEqual([
      'session.update',
      'response.create:greeting',
      'response.create:answer',
      'conversation.item.create:function_call_output',
      'response.create:tool-output',
      'response.create:answer',
      'conversation.item.create:function_call_output',
      'response.create:tool-output',
    ]);
    const update = upstreamEvents(r.fake, 1)[0] as unknown as { session: { tools: Array<{ name: string }>; tool_choice: string } };
    expect(update.session.tools.map((t) => t.name)).toEqual(['end_call', 'transfer_call', 'lookup_order']);
    expect(update.session.tool_choice).toBe('auto');
    const outputs = upstreamEvents(r.fake, 1)
      .filter((e) => e.type === 'conversation.item.create')
      .map((e) => e['item'] as { call_id: string; output: string });
    expect(JSON.parse(outputs[0]?.output ?? '')).toEqual({ status: 'shipped', eta: 'tomorrow' });
    expect(JSON.parse(outputs[1]?.output ?? '')).toMatchObject({ status: 'ending' });
    expect(r.fake.errors).toEqual([]);

    // The tool server: one signed POST with the call's context.
    expect(tools.requests).toHaveLength(1);
    const toolRequest = tools.requests[0];
    expect(JSON.parse(toolRequest?.body ?? '')).toEqual({ name: 'lookup_order', arguments: { order: '42' }, callSid: CALL_SID, from: FROM, to: TO });
    const expectedSignature = `sha256=${createHmac('sha256', TOOLS_SECRET).update(toolRequest?.body ?? '').digest('hex')}`;
    expect(toolRequest?.headers['x-callbridge-signature']).toBe(expectedSignature);

    // Twilio: media and marks only (no clear: nobody barged in), every mark played, the goodbye
    // heard in full, then the REST hang-up and the stream closed.
    expect(new Set(caller.received.flatMap((m) => (m.message === undefined ? [] : [m.message.event])))).toEqual(new Set(['media', 'mark']));
    expect(caller.clears).toEqual([]);
    expect(caller.protocolErrors).toEqual([]);
    expect(caller.playedBytesTotal()).toBe(caller.received.reduce((n, m) => n + (m.message?.event === 'media' ? Buffer.from(m.message.media.payload, 'base64').length : 0), 0));
    expect(caller.endReason).toBe('server-closed');
    expect(caller.closeCode).toBe(1000);
    expect(rest.requests.map((q) => `${q.method} ${q.path} ${q.body}`)).toEqual([
      `POST /2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${CALL_SID}.json Status=completed`,
    ]);
    const lastMark = caller.marksEchoed[caller.marksEchoed.length - 1];
    expect(lastMark?.cause).toBe('played');
    // Same clock for both: the caller's stream time plus its start.
    const callerStart = performance.now() - caller.nowMs();
    const hangUpAfterLastMarkMs = (rest.requests[0]?.atMs ?? 0) - (callerStart + (lastMark?.atMs ?? 0));
    expect(hangUpAfterLastMarkMs).toBeGreaterThanOrEqual(0);
    expect(hangUpAfterLastMarkMs).toBeLessThan(300);

    await eventually(() => r.server.calls.size === 0, 'call released');
    const metrics = await r.server.metrics.render();
    expect(metrics).toContain('callbridge_calls_total{outcome="agent-ended"} 1');
    expect(metrics).toContain('callbridge_tool_calls_total{kind="http",outcome="ok"} 1');
    expect(metrics).toContain('callbridge_tool_calls_total{kind="end_call",outcome="ok"} 1');
  });

  it('the upstream lost while the goodbye plays: the goodbye is heard to its end, then the hang-up, and no new session is opened', async () => {
    const { rig: r, rest } = await agentRig('end_call');
    const { parameters } = await signedCallback(r, '/incoming-call', { CallSid: CALL_SID, AccountSid: ACCOUNT_SID, From: FROM, To: TO });
    const caller = callerFor(r, parameters, [QUESTION, YES]);
    await caller.start();
    // The goodbye is generated (4x real time) and its response done, but most of it is still in
    // Twilio's buffer: the model's connection dies now.
    const goodbyeDone = (): boolean => {
      const sent = r.fake.sent.filter((e) => e.connectionId === 1).map((e) => e.event as unknown as Record<string, unknown>);
      const said = sent.findIndex((e) => e['type'] === 'response.output_audio_transcript.done' && e['transcript'] === 'Goodbye!');
      return said >= 0 && sent.slice(said).some((e) => e['type'] === 'response.done');
    };
    await eventually(() => goodbyeDone() && caller.bufferedBytes() >= 300 * 8, 'the goodbye generated and still playing', 30_000);
    const heardBeforeDrop = caller.playedBytesTotal();
    r.fake.dropAll();
    await caller.done;

    // Nothing was cleared: the rest of the goodbye played out, every byte sent was heard.
    expect(caller.clears).toEqual([]);
    expect(caller.playedBytesTotal()).toBeGreaterThanOrEqual(heardBeforeDrop + 300 * 8);
    expect(caller.playedBytesTotal()).toBe(caller.received.reduce((n, m) => n + (m.message?.event === 'media' ? Buffer.from(m.message.media.payload, 'base64').length : 0), 0));
    expect(caller.marksEchoed[caller.marksEchoed.length - 1]?.cause).toBe('played');
    // Then the hang-up, once, and the stream closed normally.
    expect(rest.requests.map((q) => `${q.method} ${q.path} ${q.body}`)).toEqual([
      `POST /2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${CALL_SID}.json Status=completed`,
    ]);
    expect(caller.endReason).toBe('server-closed');
    expect(caller.closeCode).toBe(1000);
    expect(caller.protocolErrors).toEqual([]);
    // Ending the call needs no model: no second connection was opened.
    expect(r.fake.connectionsOpened).toBe(1);
    expect(r.logs.find((l) => l.msg.startsWith('upstream lost while the last words play'))).toMatchObject({ callSid: CALL_SID });
    expect(r.fake.errors).toEqual([]);
    await eventually(() => r.server.calls.size === 0, 'call released');
    expect(await r.server.metrics.render()).toContain('callbridge_calls_total{outcome="agent-ended"} 1');
  });

  it('transfer the target does not answer: redirected with <Dial> after the handoff was heard, then back to the agent, which is told', async () => {
    const { rig: r, rest } = await agentRig('transfer_call');
    const { parameters } = await signedCallback(r, '/incoming-call', { CallSid: CALL_SID, AccountSid: ACCOUNT_SID, From: FROM, To: TO });
    const caller = callerFor(r, parameters, [QUESTION, YES]);
    await caller.start();
    await eventually(() => rest.requests.length === 1, 'the REST redirect', 30_000);
    const twiml = new URLSearchParams(rest.requests[0]?.body ?? '').get('Twiml') ?? '';
    expect(twiml).toContain(`<Dial action="${PUBLIC}/transfer-status" method="POST" callerId="${TO}"`);
    expect(twiml).toContain(`<Number>${AGENT_DESK}</Number>`);
    // The handoff sentence was heard in full before the redirect.
    expect(caller.clears).toEqual([]);
    expect(caller.bufferedBytes()).toBe(0);
    // Twilio now runs the <Dial>: the stream stops.
    await caller.hangUp();
    await eventually(() => r.server.calls.size === 0, 'first stream released');

    // The desk is busy: Twilio posts the outcome; the caller comes back to the agent.
    const back = await signedCallback(r, '/transfer-status', { CallSid: CALL_SID, AccountSid: ACCOUNT_SID, DialCallStatus: 'busy' });
    expect(back.xml).toContain('<Connect><Stream');
    expect(back.parameters).toMatchObject({ resume: 'transfer-failed', dialStatus: 'busy', from: FROM, to: TO });
    const returning = callerFor(r, back.parameters, []);
    await returning.start();
    await eventually(() => upstreamEvents(r.fake, 2).some((e) => e.type === 'response.create'), 'the agent speaks again', 15_000);
    const events = upstreamSummary(r, 2);
    expect(events[0]).toBe('session.update');
    expect(events).toContain('response.create:transfer-failed');
    expect(events).not.toContain('response.create:greeting');
    const notes = upstreamEvents(r.fake, 2)
      .filter((e) => e.type === 'conversation.item.create')
      .map((e) => JSON.stringify(e['item']));
    expect(notes.some((n) => n.includes('Transferring you now.'))).toBe(true); // the conversation goes on
    expect(notes.some((n) => n.includes('the transfer failed (busy)'))).toBe(true);
    expect(r.fake.errors).toEqual([]);
    const metrics = await r.server.metrics.render();
    expect(metrics).toContain('callbridge_calls_total{outcome="transferred"} 1');

    // An answered transfer that ends: the call is over.
    const done = await signedCallback(r, '/transfer-status', { CallSid: CALL_SID, AccountSid: ACCOUNT_SID, DialCallStatus: 'completed' });
    expect(done.xml).toContain('<Hangup/>');
  });

  it('a caller who hangs up while a tool runs: the tool request is aborted, the call released, nothing written upstream after', async () => {
    let toolSocketClosed = false;
    const slow = await new HttpPeer((req, res) => {
      // Never answers: only the bridge ending the call can end this request.
      res.socket?.on('close', () => {
        toolSocketClosed = true;
      });
      void req;
    }).start();
    peers.push(slow);
    rig = await startRig({
      upstream: { answer: () => ({ audio: NONE, transcript: '', functionCall: { name: 'lookup_order', arguments: '{}' } }), speed: 4 },
      agent: {
        greeting: null,
        tools: [{ type: 'http', name: 'lookup_order', description: 'Look up', parameters: { type: 'object', properties: {} }, url: `${slow.baseUrl}/orders`, timeoutMs: 30_000 }],
      },
    });
    const caller = rig.caller({ audio: QUESTION });
    await caller.start();
    await eventually(() => slow.requests.length === 1, 'the tool request', 15_000);
    const sentBefore = upstreamEvents(rig.fake, 1).length;
    await caller.hangUp();
    await eventually(() => rig!.server.calls.size === 0, 'call released');
    await eventually(() => toolSocketClosed, 'tool request aborted', 5000);
    expect(upstreamEvents(rig.fake, 1)).toHaveLength(sentBefore);
    expect(rig.fake.errors).toEqual([]);
  });

  it('offline demo: the embedded echo agent greets, and pressing 9 ends the call after its goodbye', async () => {
    rig = await startRig({
      upstream: { speed: 4 },
      agent: { greeting: { text: 'Hello.' }, tools: [{ type: 'end_call' }], dtmf: { timeoutMs: 500, terminator: '#', maxDigits: 4 } },
    });
    const caller = rig.caller({});
    await caller.start();
    await eventually(() => rig!.fake.sent.some((s) => s.event.type === 'response.done'), 'greeting generated', 15_000);
    const greeting = rig.fake.sent.find((s) => s.event.type === 'response.output_audio_transcript.done');
    expect((greeting?.event as unknown as { transcript: string }).transcript).toBe('Hello. Press 9 to hang up.');
    // Heard to its end, as the bridge sees it: every mark it sent came back and nothing arrived
    // for a while. An empty buffer alone is not enough: under load it can run dry mid-greeting,
    // and a key pressed then is a barge-in on audio still in flight (a clear).
    await eventually(() => {
      const marksReceived = caller.received.filter((m) => (m.parsed as { event?: string } | undefined)?.event === 'mark').length;
      const lastAt = caller.received[caller.received.length - 1]?.atMs ?? 0;
      return marksReceived > 0 && caller.marksEchoed.length === marksReceived && caller.bufferedBytes() === 0 && caller.nowMs() - lastAt > 150;
    }, 'greeting heard', 15_000);
    caller.sendDtmf('9');
    await caller.done;
    expect(caller.endReason).toBe('server-closed');
    expect(upstreamSummary(rig, 1)).toEqual([
      'session.update',
      'response.create:greeting',
      'conversation.item.create:user',
      'response.create:answer',
      'conversation.item.create:function_call_output',
      'response.create:tool-output',
    ]);
    const transcripts = rig.fake.sent.filter((s) => s.event.type === 'response.output_audio_transcript.done').map((s) => (s.event as unknown as { transcript: string }).transcript);
    expect(transcripts[transcripts.length - 1]).toBe('Goodbye!');
    expect(caller.clears).toEqual([]);
    expect(rig.fake.errors).toEqual([]);
  });
});
