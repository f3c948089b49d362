/**
 * End-to-end on real sockets: simulated Twilio caller → callbridge (Fastify) → strict local
 * Realtime server. Audio plays in real time, so these tests take seconds each; they assert on the
 * exact messages each peer received, not on timing.
 */
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { eventually, sentOfType, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';
import type { AnswerSource } from '../../src/tooling/local-model/conversation.js';
import { RESAMPLER_DELAY_MS } from '../../src/audio/resampler.js';

const QUESTION = loadCallerMulaw('caller-question');
const INTERRUPT = loadCallerMulaw('caller-interrupt');
const YES = loadCallerMulaw('caller-yes');
const LONG_ANSWER = loadAgentPcm24k('agent-answer'); // 7.85 s
const SHORT_ANSWER_MS = 1000;
const SHORT_ANSWER = LONG_ANSWER.subarray(0, SHORT_ANSWER_MS * 24);
/** what the caller hears of the short answer: all of it, plus the anti-aliasing filter's drained tail */
const SHORT_ANSWER_SENT_MS = SHORT_ANSWER_MS + RESAMPLER_DELAY_MS;

/** The first `longCount` responses are long (to be interrupted); later ones are short. */
function answers(longCount: number): AnswerSource {
  return ({ responseIndex }) =>
    responseIndex < longCount
      ? { audio: LONG_ANSWER, transcript: 'Of course. I can book a table for two people tonight. We have openings at seven, seven thirty and eight fifteen. Which time would you like?' }
      : { audio: SHORT_ANSWER, transcript: 'Of course.' };
}

function mediaMsAfter(caller: SimulatedCaller, fromMs: number): number {
  let bytes = 0;
  for (const r of caller.received) {
    if (r.atMs > fromMs && r.message?.event === 'media') bytes += Buffer.from(r.message.media.payload, 'base64').length;
  }
  return bytes / 8;
}

/** Agent audio the caller had heard when each clear arrived (exact, from the playback model). */
function heardAtClearsMs(caller: SimulatedCaller): number[] {
  return caller.clears.map((clearAt) => {
    const echo = caller.marksEchoed.find((m) => m.cause === 'cleared' && m.atMs >= clearAt);
    if (echo === undefined) throw new Error('clear echoed no pending mark');
    return echo.playedBytes / 8;
  });
}

function truncatesOf(rig: Rig, connectionId: number): Array<{ item_id: string; content_index: number; audio_end_ms: number }> {
  return upstreamEvents(rig.fake, connectionId)
    .filter((e) => e.type === 'conversation.item.truncate')
    .map((e) => ({ item_id: e['item_id'] as string, content_index: e['content_index'] as number, audio_end_ms: e['audio_end_ms'] as number }));
}

function assistantItemIds(rig: Rig, connectionId: number): string[] {
  return sentOfType(rig.fake, connectionId, 'response.output_item.added').map((e) => (e['item'] as { id: string }).id);
}

function expectHeardMatchesTruncate(truncateMs: number, heardMs: number): void {
  // The bridge decides on speech_started; the clear reaches the caller a few ms later, so the
  // caller heard slightly more. It must never be claimed the caller heard more than they did.
  expect(truncateMs).toBeLessThanOrEqual(heardMs + 2);
  expect(truncateMs).toBeGreaterThanOrEqual(heardMs - 60);
}

/** One sample of the Prometheus text exposition, by its full series name (labels included). */
function sample(exposition: string, series: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no sample ${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

/** An upstream closed "at once" on a hang-up: far below any timeout the bridge has (the shortest is 1 s). */
const HANG_UP_CLOSE_MS = 500;

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

describe('call flow on real sockets', () => {
  it('barge-in after the answer finished generating: clear + truncate at the heard position, no cancel', async () => {
    rig = await startRig({ upstream: { answer: answers(1), speed: Number.POSITIVE_INFINITY } });
    const caller = rig.caller({ audio: QUESTION, segments: [{ audio: INTERRUPT, start: { afterHeardMs: 1500 }, label: 'barge-in' }] });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length >= 2 && caller.bufferedBytes() === 0 && mediaMsAfter(caller, caller.clears[0] ?? Infinity) >= SHORT_ANSWER_MS, 'second answer played', 30_000);
    await caller.hangUp();

    const events = upstreamEvents(rig.fake, 1);
    const [firstItem, secondItem] = assistantItemIds(rig, 1);
    // The exact conversation: setup, turn, (answer fully generated), barge-in, turn.
    expect(events.map((e) => e.type)).toEqual(['session.update', 'response.create', 'conversation.item.truncate', 'response.create']);
    const [truncate] = truncatesOf(rig, 1);
    expect(truncate?.item_id).toBe(firstItem);
    expect(truncate?.content_index).toBe(0);
    expect(Number.isInteger(truncate?.audio_end_ms)).toBe(true);
    expect(caller.clears).toHaveLength(1);
    const [heard] = heardAtClearsMs(caller);
    expectHeardMatchesTruncate(truncate?.audio_end_ms ?? -1, heard ?? -1);
    expect(heard).toBeGreaterThan(1400);
    expect(heard).toBeLessThan(2500);
    // After the clear the caller hears exactly the second answer, none of the first.
    expect(mediaMsAfter(caller, caller.clears[0] ?? 0)).toBe(SHORT_ANSWER_SENT_MS);
    // The second answer is a new item, never the truncated one played again.
    expect(secondItem).toMatch(/^item_/);
    expect(secondItem).not.toBe(firstItem);
    expect(rig.fake.errors).toEqual([]);
    expect(caller.protocolErrors).toEqual([]);

    // What /metrics says of this call once it is over (the caller hung up with stop).
    await eventually(() => rig!.server.calls.size === 0, 'call released');
    const m = await rig.server.metrics.render();
    expect(sample(m, 'callbridge_interruptions_total{cancel_sent="false"}')).toBe(1);
    expect(sample(m, 'callbridge_interruptions_total{cancel_sent="true"}')).toBe(0);
    expect(sample(m, 'callbridge_barge_in_reaction_ms_count')).toBe(1);
    expect(sample(m, 'callbridge_first_audio_latency_ms_count')).toBe(2);
    expect(sample(m, 'callbridge_interruption_heard_ms_count')).toBe(1);
    // what the model was told the caller heard, not how much of the generation had played
    expect(Math.abs(sample(m, 'callbridge_interruption_heard_ms_sum') - (truncate?.audio_end_ms ?? -1))).toBeLessThanOrEqual(1);
    expect(sample(m, 'callbridge_calls_total{outcome="completed"}')).toBe(1);
    expect(sample(m, 'callbridge_active_calls')).toBe(0);
  });

  it('barge-in during generation: cancel with the response id, and no late audio reaches the caller', async () => {
    // 1.25× real time: generation is still running when the caller cuts in.
    rig = await startRig({ upstream: { answer: answers(1), speed: 1.25 } });
    const caller = rig.caller({ audio: QUESTION, segments: [{ audio: YES, start: { afterHeardMs: 1200 } }] });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length >= 2 && caller.bufferedBytes() === 0 && mediaMsAfter(caller, caller.clears[0] ?? Infinity) >= SHORT_ANSWER_MS, 'second answer played', 30_000);
    await caller.hangUp();

    const events = upstreamEvents(rig.fake, 1);
    const [firstResponse] = sentOfType(rig.fake, 1, 'response.created').map((e) => (e['response'] as { id: string }).id);
    const [firstItem] = assistantItemIds(rig, 1);
    expect(events.map((e) => e.type)).toEqual(['session.update', 'response.create', 'response.cancel', 'conversation.item.truncate', 'response.create']);
    expect(events[2]).toMatchObject({ type: 'response.cancel', response_id: firstResponse });
    const [truncate] = truncatesOf(rig, 1);
    expect(truncate?.item_id).toBe(firstItem);
    const [heard] = heardAtClearsMs(caller);
    expectHeardMatchesTruncate(truncate?.audio_end_ms ?? -1, heard ?? -1);
    const [firstDone] = sentOfType(rig.fake, 1, 'response.done');
    expect((firstDone?.['response'] as { status: string }).status).toBe('cancelled');
    // Late deltas of the cancelled response were generated but never played.
    expect(mediaMsAfter(caller, caller.clears[0] ?? 0)).toBe(SHORT_ANSWER_SENT_MS);
    expect(rig.fake.errors).toEqual([]);
    expect(caller.protocolErrors).toEqual([]);
  });

  it('generation stall before the barge-in: the truncate counts audio played, not time elapsed', async () => {
    // 800 ms of answer arrive at once, then nothing for 1.5 s (Twilio's buffer runs dry), then the rest.
    rig = await startRig({ upstream: { answer: answers(1), speed: Number.POSITIVE_INFINITY, stall: { afterMs: 800, forMs: 1500 } } });
    const caller = rig.caller({ audio: QUESTION, segments: [{ audio: YES, start: { afterHeardMs: 1300 } }] });
    await caller.start();
    await eventually(() => caller.clears.length === 1 && sentOfType(rig!.fake, 1, 'conversation.item.truncated').length === 1, 'barge-in handled', 30_000);
    await caller.hangUp();

    const [truncate] = truncatesOf(rig, 1);
    const [heard] = heardAtClearsMs(caller);
    expectHeardMatchesTruncate(truncate?.audio_end_ms ?? -1, heard ?? -1);
    // A wall-clock position would include the 1.5 s of dead air.
    expect(truncate?.audio_end_ms).toBeLessThan(2000);
    expect(rig.fake.errors).toEqual([]);
  });

  it('three interruptions in a row: each item truncated at its own heard position, cancelled exactly when still generating', async () => {
    rig = await startRig({ upstream: { answer: answers(3), speed: 3 } });
    const caller = rig.caller({
      audio: QUESTION,
      segments: [
        { audio: YES, start: { afterHeardMs: 900 } },
        { audio: YES, start: { afterHeardMs: 1300 } },
        { audio: YES, start: { afterHeardMs: 1700 } },
      ],
    });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length >= 4 && caller.clears.length === 3 && mediaMsAfter(caller, caller.clears[2] ?? Infinity) >= SHORT_ANSWER_MS, 'fourth answer played', 45_000);
    await caller.hangUp();

    const items = assistantItemIds(rig, 1);
    const truncates = truncatesOf(rig, 1);
    const heard = heardAtClearsMs(caller);
    // heard counts all agent audio of the call; per answer it is the difference between clears
    const heardPerAnswer = heard.map((h, i) => h - (i === 0 ? 0 : (heard[i - 1] ?? 0)));
    expect(truncates.map((t) => t.item_id)).toEqual(items.slice(0, 3));
    truncates.forEach((t, i) => expectHeardMatchesTruncate(t.audio_end_ms, heardPerAnswer[i] ?? -1));
    const types = upstreamEvents(rig.fake, 1).map((e) => e.type);
    expect(types.filter((t) => t === 'response.create')).toHaveLength(4);
    // A cancel is owed exactly for the barge-ins that found their answer still generating (the
    // model had not sent its response.done when it sent speech_started), and names that answer.
    const modelSent = rig.fake.sent.filter((r) => r.connectionId === 1).map((r) => r.event);
    const owed: string[] = [];
    let generating: string | null = null;
    for (const e of modelSent) {
      if (e.type === 'response.created') generating = e.response.id;
      if (e.type === 'response.done' && e.response.id === generating) generating = null;
      if (e.type === 'input_audio_buffer.speech_started' && generating !== null && !owed.includes(generating)) owed.push(generating);
    }
    const cancels = upstreamEvents(rig.fake, 1).filter((e) => e.type === 'response.cancel').map((e) => e['response_id']);
    expect(cancels).toEqual(owed);
    expect(mediaMsAfter(caller, caller.clears[2] ?? 0)).toBe(SHORT_ANSWER_SENT_MS);
    expect(rig.fake.errors).toEqual([]);
    expect(caller.protocolErrors).toEqual([]);
  });

  it('hang-up mid-answer closes the upstream at once and leaves nothing behind', async () => {
    rig = await startRig({ upstream: { answer: answers(1), speed: 1.5 } });
    const caller = rig.caller({ audio: QUESTION });
    await caller.start();
    await eventually(() => caller.playedBytesTotal() >= 500 * 8, 'answer playing');
    const hungUpAt = performance.now();
    await caller.hangUp();
    const closed = await rig.fake.waitForClose(1, 2000);
    const closedAfterMs = performance.now() - hungUpAt;
    expect(closed.code).toBe(1000);
    // At once: not after a close handshake or any timeout (those are seconds); the margin is for a loaded machine.
    expect(closedAfterMs).toBeLessThan(HANG_UP_CLOSE_MS);
    await eventually(() => rig!.server.calls.size === 0, 'call removed');
    expect(rig.fake.connectionsOpen).toBe(0);
    const ended = rig.logs.find((l) => l.msg === 'call ended');
    expect(ended).toMatchObject({ callSid: caller.callSid, reason: 'twilio-stop' });
  });

  it('two calls at once are isolated: own upstream each, a barge-in on one leaves the other untouched', async () => {
    rig = await startRig({ upstream: { answer: answers(1), speed: Number.POSITIVE_INFINITY } });
    const polite = rig.caller({ audio: QUESTION });
    const rude = rig.caller({ audio: QUESTION, segments: [{ audio: YES, start: { afterHeardMs: 1000 } }] });
    await Promise.all([polite.start(), rude.start()]);
    await rig.fake.waitForConnections(2);
    await eventually(() => rude.clears.length === 1 && polite.playedBytesTotal() >= 3000 * 8, 'rude caller barged in, polite caller still listening', 30_000);

    expect(polite.clears).toEqual([]);
    expect(rig.fake.connectionsOpened).toBe(2);
    const byConnection = [1, 2].map((id) => truncatesOf(rig!, id).length);
    expect(byConnection.sort()).toEqual([0, 1]);
    const rudeLines = rig.logs.filter((l) => l.msg === 'interruption');
    expect(rudeLines).toHaveLength(1);
    expect(rudeLines[0]?.callSid).toBe(rude.callSid);
    await Promise.all([polite.hangUp(), rude.hangUp()]);
    await eventually(() => rig!.server.calls.size === 0 && rig!.fake.connectionsOpen === 0, 'both calls closed');
    expect(rig.fake.errors).toEqual([]);
  });

  it('every log line of a call carries its callSid and streamSid', async () => {
    rig = await startRig({ upstream: { answer: answers(0), speed: Number.POSITIVE_INFINITY } });
    const caller = rig.caller({ audio: QUESTION });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length === 1, 'answered');
    await caller.hangUp();
    await eventually(() => rig!.server.calls.size === 0, 'call removed');
    const callLines = rig.logs.filter((l) => 'connectionId' in l && l.msg !== 'call failed; ending call');
    expect(callLines.length).toBeGreaterThan(3);
    const afterStart = callLines.slice(callLines.findIndex((l) => l.msg === 'call started'));
    for (const line of afterStart) expect(line).toMatchObject({ callSid: caller.callSid, streamSid: caller.streamSid });
    expect(afterStart.map((l) => l.msg)).toEqual(expect.arrayContaining(['call started', 'upstream open', 'caller turn ended', 'response done', 'call ended']));
  });
});
