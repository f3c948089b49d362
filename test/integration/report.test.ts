/**
 * The post-call report of real calls on real sockets: simulated Twilio caller → callbridge →
 * strict local Realtime server, with an http tool server. The report is the live recorder's
 * (src/report/recorder.ts), exactly as REPORTS_DIR and CALL_REPORT_URL receive it; its heard
 * figures are checked against what the model was told (the truncate) and what the model itself
 * kept of its words, and against the caller's own playback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import type { AnswerSource } from '../../src/tooling/local-model/conversation.js';
import { reportRecorderFactory } from '../../src/report/recorder.js';
import type { AgentTurn, CallReport, CallerTurn } from '../../src/report/schema.js';
import { REPORT_FORMAT } from '../../src/report/schema.js';
import { eventually, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';
import { HttpPeer, orderLookupTool } from '../support/peers.js';

const QUESTION = loadCallerMulaw('caller-question');
const INTERRUPT = loadCallerMulaw('caller-interrupt');
const SPEECH = loadAgentPcm24k('agent-answer');
const speech = (ms: number): Int16Array => SPEECH.subarray(0, ms * 24);
const ANSWER_MS = 4000;
const ANSWER = 'Your order forty-two has shipped. It left our warehouse this morning and will arrive tomorrow before noon.';
const FOLLOW_UP = 'Anything else I can help with?';

/** What each test started, stopped after it in reverse order: the rig, then the tool server. */
const running: Array<{ close(): Promise<void> } | { stop(): Promise<void> }> = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await ('close' in r ? r.close() : r.stop());
});

/** Looks the order up on the caller's first turn; speaks the result; answers later turns briefly. */
function orderModel(): AnswerSource {
  let turns = 0;
  return (ctx) => {
    if (ctx.lastFunctionOutput?.name === 'lookup_order') return { audio: speech(ANSWER_MS), transcript: ANSWER };
    turns += 1;
    if (turns === 1) return { audio: new Int16Array(0), transcript: '', functionCall: { name: 'lookup_order', arguments: '{"order":"42"}' } };
    return { audio: speech(900), transcript: FOLLOW_UP };
  };
}

async function reportRig(): Promise<{ rig: Rig; reports: CallReport[] }> {
  const tools = await new HttpPeer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"shipped"}');
  }).start();
  running.push(tools);
  const reports: CallReport[] = [];
  const r = await startRig({
    upstream: { answer: orderModel(), speed: 4 },
    agent: {
      transcriptionModel: 'gpt-4o-mini-transcribe',
      tools: [orderLookupTool(tools.baseUrl)],
    },
    recorderFactory: reportRecorderFactory({ sinks: [(report) => reports.push(report)], logger: createLogger('silent') }),
  });
  running.push(r);
  return { rig: r, reports };
}

describe('post-call report of a real call', () => {
  it('a tool call, a barge-in and a hang-up: heardText cut exactly at the truncation point', async () => {
    const { rig: r, reports } = await reportRig();
    const caller = r.caller({ audio: QUESTION, segments: [{ audio: INTERRUPT, start: { afterHeardMs: 1500 }, label: 'barge-in' }] });
    await caller.start();
    // The answer to the barge-in, heard in full; then the caller hangs up.
    await eventually(() => upstreamEvents(r.fake, 1).filter((e) => e.type === 'response.create').length === 3, 'the answer to the barge-in asked for', 30_000);
    await eventually(() => r.fake.sent.filter((e) => e.event.type === 'response.done').length === 3 && caller.bufferedBytes() === 0, 'the follow-up played', 30_000);
    await caller.hangUp();
    await eventually(() => reports.length === 1, 'the report', 10_000);
    const report = reports[0]!;

    expect(report).toMatchObject({
      format: REPORT_FORMAT,
      callSid: caller.callSid,
      streamSid: caller.streamSid,
      direction: 'inbound',
      endReason: 'caller-hung-up',
      sessionEndReason: 'twilio-stop',
      resumed: false,
      upstreamReconnects: 0,
      apiErrors: { count: 0, byCode: {}, errors: [] },
    });
    expect(Date.parse(report.endedAt) - Date.parse(report.startedAt)).toBeCloseTo(report.durationMs, -1);
    expect(Math.abs(report.timestamp - Date.now())).toBeLessThan(10_000);

    // The tool call: what the model asked, what the tool answered, how long it took.
    expect(report.toolCalls).toHaveLength(1);
    expect(report.toolCalls[0]).toMatchObject({ name: 'lookup_order', arguments: '{"order":"42"}', ran: true, ok: true, output: '{"status":"shipped"}' });
    expect(report.toolCalls[0]!.durationMs).toBeGreaterThan(0);
    expect(report.toolCalls[0]!.durationMs).toBeLessThan(3000);

    // The barge-in: the truncation point the bridge sent is what the report says was heard.
    const truncates = upstreamEvents(r.fake, 1).filter((e) => e.type === 'conversation.item.truncate');
    expect(truncates).toHaveLength(1);
    const audioEndMs = truncates[0]!['audio_end_ms'] as number;
    const cutItem = truncates[0]!['item_id'] as string;
    expect(report.interruptions).toHaveLength(1);
    expect(report.interruptions[0]).toMatchObject({ by: 'speech', itemId: cutItem, heardMs: audioEndMs, cancelled: false });
    expect(report.interruptions[0]!.reactionMs).toBeLessThan(50);
    // And what the caller's own playback had played at the clear: the bridge decides on
    // speech_started, the clear reaches the caller a moment later; never more than was played.
    const playedAtClear = (caller.marksEchoed.find((m) => m.cause === 'cleared')?.playedBytes ?? 0) / 8;
    expect(audioEndMs).toBeLessThanOrEqual(playedAtClear + 2);
    expect(audioEndMs).toBeGreaterThanOrEqual(playedAtClear - 60);

    // The transcript, in order: caller, agent (the answer, cut), caller, agent (heard in full).
    expect(report.transcript.map((t) => t.role)).toEqual(['caller', 'agent', 'caller', 'agent']);
    const [ask, answer, interrupt, followUp] = report.transcript as [CallerTurn, AgentTurn, CallerTurn, AgentTurn];
    expect(ask.text).toMatch(/^\(speech \d+ ms\)$/);
    expect(interrupt.text).toMatch(/^\(speech \d+ ms\)$/);
    expect(interrupt.atMs).toBeGreaterThan(answer.atMs);
    expect(answer).toMatchObject({ itemId: cutItem, purpose: 'tool-output', text: ANSWER, interrupted: true, heardMs: audioEndMs, audioMs: ANSWER_MS });
    // heardText: the answer's words up to the truncation point, exactly as the model itself cut
    // its transcript when it was truncated there (the local model spreads words evenly by length).
    const expected = ANSWER.slice(0, Math.floor((ANSWER.length * audioEndMs) / ANSWER_MS)).trimEnd();
    expect(answer.heardText).toBe(expected);
    const modelItem = r.fake.conversation(1)?.items.find((i) => i.id === cutItem);
    expect(modelItem?.transcript?.trimEnd()).toBe(answer.heardText);
    expect(answer.heardText.length).toBeGreaterThan(0);
    expect(answer.heardText.length).toBeLessThan(ANSWER.length);
    expect(followUp).toMatchObject({ purpose: 'answer', text: FOLLOW_UP, heardText: FOLLOW_UP, interrupted: false });
    expect(followUp.heardMs).toBeCloseTo(900, -1);

    expect(report.latency.firstAudioMs?.count).toBe(2);
    expect(report.latency.bargeInReactionMs).toMatchObject({ count: 1 });
    expect(report.keypad).toEqual([]);
    expect(Object.values(report.omitted).every((n) => n === 0)).toBe(true);
  });

  it('a hang-up mid-answer: heardText is what the marks say was played, not interrupted', async () => {
    const { rig: r, reports } = await reportRig();
    const caller = r.caller({ audio: QUESTION });
    await caller.start();
    await eventually(() => caller.playedBytesTotal() >= 1500 * 8, 'half of the answer heard', 30_000);
    await caller.hangUp();
    await eventually(() => reports.length === 1, 'the report', 10_000);
    const report = reports[0]!;
    const answer = report.transcript.find((t): t is AgentTurn => t.role === 'agent' && t.purpose === 'tool-output');
    expect(answer).toBeDefined();
    expect(answer!.interrupted).toBe(false);
    // The caller's playback had played this much when it hung up; the marks tell the bridge within
    // one mark interval (100 ms) plus the time since the last echo.
    const played = caller.playedBytesTotal() / 8;
    expect(Math.abs(answer!.heardMs - played)).toBeLessThan(150);
    // The heard share of the words: a prefix, as long as the heard share of the audio (to a character).
    expect(ANSWER.startsWith(answer!.heardText)).toBe(true);
    expect(Math.abs(answer!.heardText.length - (ANSWER.length * answer!.heardMs) / ANSWER_MS)).toBeLessThanOrEqual(2);
    expect(answer!.heardText.length).toBeLessThan(ANSWER.length);
    expect(report.interruptions).toEqual([]);
    expect(report.endReason).toBe('caller-hung-up');
  });
});
