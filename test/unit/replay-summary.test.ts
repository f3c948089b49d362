import { describe, expect, it } from 'vitest';
import { buildSummary, SUMMARY_FORMAT, type BridgeLog, type CallerLog, type RecordedLine, type SummaryInput } from '../../src/tooling/replay/summary.js';
import type { MarkEcho } from '../../src/tooling/simulated-caller.js';
import type { TwilioInbound, TwilioOutbound } from '../../src/twilio/messages.js';
import { mulawToneSpans } from '../support/signals.js';

/**
 * One synthetic barge-in call, every time in stream ms (ms since `start` was sent):
 *   caller speaks 0–1400; VAD turn 100–1500; resp_1 created 1510, its 2 s of audio (item_a1) sent
 *   at 1560 and playing from 1561; done 1700. The caller barges in at 3000; speech_started 3080;
 *   truncate item_a1 at 1515 ms; clear sent 3080.4, received 3081 = 1520 ms heard, 480 ms dropped.
 *   Turn 2 ends 4100; resp_2 (item_a2, 500 ms) sent at 4150, plays 4151–4651. An API error at 4300.
 */
const BRIDGE_CLOCK_AT_START = 1000.5;
const b = (streamMs: number): number => streamMs + BRIDGE_CLOCK_AT_START;
const SID = 'MZ1';
const FRAME = Buffer.alloc(160, 0x10).toString('base64');
const FRAME_BYTES = 160;

const tone = (lengthMs: number, spans: Array<[number, number]>): Uint8Array => mulawToneSpans(lengthMs, spans);

interface Scenario {
  received: Array<{ atMs: number; message: TwilioOutbound }>;
  marksEchoed: MarkEcho[];
  bridgeTwilio: RecordedLine[];
}

/** n media frames with a mark after every 5, as the bridge sends them; the caller gets them 1 ms later. */
function sendAnswer(s: Scenario, atMs: number, frames: number, markPrefix: string): Array<{ name: string; endByte: number }> {
  const marks: Array<{ name: string; endByte: number }> = [];
  for (let i = 1; i <= frames; i++) {
    const media: TwilioOutbound = { event: 'media', streamSid: SID, media: { payload: FRAME } };
    s.bridgeTwilio.push({ atMs: b(atMs), dir: 'out', msg: media });
    s.received.push({ atMs: atMs + 1, message: media });
    if (i % 5 === 0) {
      const mark: TwilioOutbound = { event: 'mark', streamSid: SID, mark: { name: `${markPrefix}:${i}` } };
      s.bridgeTwilio.push({ atMs: b(atMs), dir: 'out', msg: mark });
      s.received.push({ atMs: atMs + 1, message: mark });
      marks.push({ name: `${markPrefix}:${i}`, endByte: i * FRAME_BYTES });
    }
  }
  return marks;
}

function scenario(options: { marks: boolean } = { marks: true }): SummaryInput & { bridge: BridgeLog } {
  const s: Scenario = { received: [], marksEchoed: [], bridgeTwilio: [] };
  s.bridgeTwilio.push({ atMs: b(-0.3), dir: 'in', msg: { event: 'connected', protocol: 'Call', version: '1.0.0' } });
  s.bridgeTwilio.push({ atMs: b(0), dir: 'in', msg: { event: 'start', streamSid: SID, start: { streamSid: SID, callSid: 'CA1' } } });

  // Answer 1: 100 frames = 16000 bytes, playing from 1561; the clear at 3081 finds 12160 bytes played.
  const marks1 = sendAnswer(s, 1560, 100, 'm:1');
  const playedAtClear = (3081 - 1561) * 8;
  for (const m of marks1) {
    if (m.endByte <= playedAtClear) s.marksEchoed.push({ atMs: 1561 + m.endByte / 8, name: m.name, cause: 'played', playedBytes: m.endByte });
  }
  const clear: TwilioOutbound = { event: 'clear', streamSid: SID };
  s.bridgeTwilio.push({ atMs: b(3080.4), dir: 'out', msg: clear });
  s.received.push({ atMs: 3081, message: clear });
  for (const m of marks1) {
    if (m.endByte > playedAtClear) s.marksEchoed.push({ atMs: 3081, name: m.name, cause: 'cleared', playedBytes: playedAtClear });
  }
  // Answer 2: 25 frames = 4000 bytes from the cleared position, fully played by 4651.
  const marks2 = sendAnswer(s, 4150, 25, 'm:2');
  for (const m of marks2) s.marksEchoed.push({ atMs: 4151 + m.endByte / 8, name: m.name, cause: 'played', playedBytes: playedAtClear + m.endByte });

  if (!options.marks) {
    s.received = s.received.filter((r) => r.message.event !== 'mark');
    s.marksEchoed = [];
  }

  const rt = (streamMs: number, dir: 'in' | 'out', msg: Record<string, unknown>): RecordedLine => ({ atMs: b(streamMs), dir, msg });
  const delta = (response: string, item: string) => ({ type: 'response.output_audio.delta', response_id: response, item_id: item, content_index: 0, delta: 'AAAA' });
  const realtimeLines: RecordedLine[] = [
    rt(5, 'out', { type: 'session.update', session: {} }),
    rt(100, 'in', { type: 'input_audio_buffer.speech_started', audio_start_ms: 0, item_id: 'item_u1' }),
    rt(1500, 'in', { type: 'input_audio_buffer.speech_stopped', audio_end_ms: 1400, item_id: 'item_u1' }),
    rt(1500, 'out', { type: 'response.create' }),
    rt(1510, 'in', { type: 'response.created', response: { id: 'resp_1', status: 'in_progress' } }),
    rt(1559.9, 'in', delta('resp_1', 'item_a1')),
    rt(1700, 'in', { type: 'response.done', response: { id: 'resp_1', status: 'completed' } }),
    rt(3080, 'in', { type: 'input_audio_buffer.speech_started', audio_start_ms: 2900, item_id: 'item_u2' }),
    rt(3080.2, 'out', { type: 'conversation.item.truncate', item_id: 'item_a1', content_index: 0, audio_end_ms: 1515 }),
    rt(4100, 'in', { type: 'input_audio_buffer.speech_stopped', audio_end_ms: 3500, item_id: 'item_u2' }),
    rt(4100, 'out', { type: 'response.create' }),
    rt(4110, 'in', { type: 'response.created', response: { id: 'resp_2', status: 'in_progress' } }),
    rt(4149.9, 'in', delta('resp_2', 'item_a2')),
    rt(4200, 'in', { type: 'response.done', response: { id: 'resp_2', status: 'completed' } }),
    rt(4300, 'in', { type: 'error', error: { type: 'invalid_request_error', code: 'some_code', message: 'something went wrong' } }),
  ];

  const sent: Array<{ atMs: number; message: TwilioInbound }> = [
    { atMs: 0, message: { event: 'connected', protocol: 'Call', version: '1.0.0' } },
    { atMs: 500, message: { event: 'dtmf', sequenceNumber: '30', streamSid: SID, dtmf: { track: 'inbound_track', digit: '7' } } },
    { atMs: 6000, message: { event: 'stop', sequenceNumber: '400', streamSid: SID, stop: { accountSid: 'AC1', callSid: 'CA1' } } },
  ];
  const caller: CallerLog = {
    callSid: 'CA1',
    streamSid: SID,
    sent,
    received: s.received,
    marksEchoed: s.marksEchoed,
    protocolErrors: [],
    playedBytesAtEnd: playedAtClear + 4000,
  };
  return {
    input: 'synthetic',
    target: 'in-process, local model',
    caller,
    bridge: { twilioLines: s.bridgeTwilio, realtimeLines },
    callerAudio: tone(6000, [
      [0, 1400],
      [3000, 3600],
    ]),
    heardAudio: tone(6000, [
      [1561, 3081],
      [4151, 4651],
    ]),
    endMs: 6000,
  };
}

describe('replay summary', () => {
  it('reports every field of a barge-in call from both logs, on the stream clock', () => {
    const s = buildSummary(scenario());
    expect(s.format).toBe(SUMMARY_FORMAT);
    expect(s).toMatchObject({ input: 'synthetic', target: 'in-process, local model', upstreamVisible: true, callSid: 'CA1', streamSid: SID, durationMs: 6000 });
    expect(s.counts).toEqual({ callerSpeech: 2, turns: 2, responses: 2, completedResponses: 2, cancelledResponses: 0, interruptions: 1, errors: 1 });
    expect(s.callerSpeech).toEqual([
      { startMs: 0, endMs: 1400, firstAgentAudioHeardMs: 1560, perceivedLatencyMs: 160 },
      { startMs: 3000, endMs: 3600, firstAgentAudioHeardMs: 4150, perceivedLatencyMs: 550 },
    ]);
    expect(s.turns).toEqual([
      { startedMs: 100, stoppedMs: 1500, itemId: 'item_u1', firstAudioSentMs: 1560, firstAudioLatencyMs: 60 },
      { startedMs: 3080, stoppedMs: 4100, itemId: 'item_u2', firstAudioSentMs: 4150, firstAudioLatencyMs: 50 },
    ]);
    expect(s.responses).toEqual([
      { id: 'resp_1', purpose: null, status: 'completed', reason: null, createdMs: 1510, doneMs: 1700, audioSentMs: 2000, audioHeardMs: 1520 },
      { id: 'resp_2', purpose: null, status: 'completed', reason: null, createdMs: 4110, doneMs: 4200, audioSentMs: 500, audioHeardMs: 500 },
    ]);
    expect(s.interruptions).toEqual([
      {
        atMs: 3081,
        responseId: 'resp_1',
        itemId: 'item_a1',
        heardMs: 1520,
        heardSource: 'cleared-marks',
        droppedMs: 480,
        truncateMs: 1515,
        truncatedItemId: 'item_a1',
        deletedItemIds: [],
        cancelSent: false,
        speechStartedMs: 3080,
        clearSentMs: 3080.4,
        reactionMs: 0.4,
        callerSpeechStartMs: 3000,
        sinceCallerSpeechMs: 81,
      },
    ]);
    expect(s.dtmf).toEqual([{ atMs: 500, digit: '7' }]);
    expect(s.latency).toEqual({
      firstAudioMs: { count: 2, min: 50, median: 55, max: 60 },
      perceivedMs: { count: 2, min: 160, median: 355, max: 550 },
      reactionMs: { count: 1, min: 0.4, median: 0.4, max: 0.4 },
    });
    expect(s.errors).toEqual([{ atMs: 4300, code: 'some_code', message: 'something went wrong', type: 'invalid_request_error' }]);
    expect(s.twilioProtocolErrors).toEqual([]);
    // No greeting, tool call or keypad entry in this call; it ended with the caller's stop (no end line recorded).
    expect(s.greeting).toBeNull();
    expect(s.toolCalls).toEqual([]);
    expect(s.keypadEntries).toEqual([]);
    expect(s.ended).toEqual({ atMs: 6000, by: 'caller', reason: null });
  });

  it('reports a cancel, the cancelled status and its reason when the barge-in comes mid-generation', () => {
    const input = scenario();
    const lines = [...input.bridge.realtimeLines];
    const done1 = lines.findIndex((l) => (l.msg as { type: string }).type === 'response.done');
    lines.splice(done1, 1);
    lines.push({ atMs: b(3080.1), dir: 'out', msg: { type: 'response.cancel', response_id: 'resp_1' } });
    lines.push({ atMs: b(3100), dir: 'in', msg: { type: 'response.done', response: { id: 'resp_1', status: 'cancelled', status_details: { reason: 'client_cancelled' } } } });
    lines.sort((x, y) => x.atMs - y.atMs);
    const s = buildSummary({ ...input, bridge: { ...input.bridge, realtimeLines: lines } });
    expect(s.interruptions[0]).toMatchObject({ cancelSent: true, responseId: 'resp_1', truncateMs: 1515 });
    expect(s.responses?.[0]).toMatchObject({ status: 'cancelled', reason: 'client_cancelled', doneMs: 3100 });
    expect(s.counts).toMatchObject({ completedResponses: 1, cancelledResponses: 1 });
  });

  it('leaves every upstream field null without the bridge log, and still measures what the caller heard', () => {
    const s = buildSummary({ ...scenario(), bridge: null, target: 'ws://example.test/media-stream' });
    expect(s.upstreamVisible).toBe(false);
    expect(s.turns).toBeNull();
    expect(s.responses).toBeNull();
    expect(s.errors).toBeNull();
    expect(s.greeting).toBeNull();
    expect(s.toolCalls).toBeNull();
    expect(s.keypadEntries).toBeNull();
    expect(s.ended).toEqual({ atMs: 6000, by: 'caller', reason: null });
    expect(s.counts).toMatchObject({ turns: null, responses: null, completedResponses: null, cancelledResponses: null, errors: null, interruptions: 1 });
    expect(s.latency.firstAudioMs).toBeNull();
    expect(s.latency.reactionMs).toBeNull();
    expect(s.latency.perceivedMs?.count).toBe(2);
    expect(s.interruptions[0]).toMatchObject({
      atMs: 3081,
      heardMs: 1520,
      heardSource: 'cleared-marks',
      droppedMs: 480,
      responseId: null,
      itemId: null,
      truncateMs: null,
      cancelSent: null,
      deletedItemIds: null,
      reactionMs: null,
      sinceCallerSpeechMs: 81,
    });
  });

  it('estimates the heard position from playback time when the clear echoed no mark', () => {
    const s = buildSummary(scenario({ marks: false }));
    expect(s.interruptions[0]).toMatchObject({ heardMs: 1520, heardSource: 'estimate', droppedMs: 480 });
  });

  it('replays the caller’s playback from arrival times: a buffer that ran dry mid-answer is silence, not heard audio', () => {
    const input = scenario({ marks: false });
    // Answer 1 arrives in two bursts: 25 frames at 1560 (play 1561–2061), the other 75 at 2560 (play 2561–4061).
    let frame = 0;
    const received = input.caller.received.map((r) => (r.message?.event === 'media' && r.atMs === 1561 && frame++ >= 25 ? { ...r, atMs: 2561 } : r));
    frame = 0;
    const twilioLines = input.bridge.twilioLines.map((l) =>
      (l.msg as { event?: string }).event === 'media' && l.atMs === b(1560) && frame++ >= 25 ? { ...l, atMs: b(2560) } : l,
    );
    const s = buildSummary({ ...input, caller: { ...input.caller, received }, bridge: { ...input.bridge, twilioLines } });
    // By the clear at 3081: the 500 ms of the first burst, then 520 ms of the second.
    expect(s.interruptions[0]).toMatchObject({ itemId: 'item_a1', heardMs: 1020, heardSource: 'estimate', droppedMs: 980 });
  });

  it('counts nothing heard of a response cut before its audio played', () => {
    const input = scenario();
    // A caller speaking again after answer 2 finished, while a third response is being created.
    const lines: RecordedLine[] = [
      ...input.bridge.realtimeLines,
      { atMs: b(5000), dir: 'in', msg: { type: 'response.created', response: { id: 'resp_3' } } },
      { atMs: b(5100), dir: 'in', msg: { type: 'input_audio_buffer.speech_started', item_id: 'item_u3' } },
      { atMs: b(5100.1), dir: 'out', msg: { type: 'response.cancel', response_id: 'resp_3' } },
    ];
    const clear: TwilioOutbound = { event: 'clear', streamSid: SID };
    const s = buildSummary({
      ...input,
      caller: { ...input.caller, received: [...input.caller.received, { atMs: 5101, message: clear }] },
      bridge: { twilioLines: [...input.bridge.twilioLines, { atMs: b(5100.2), dir: 'out', msg: clear }], realtimeLines: lines },
    });
    expect(s.interruptions[1]).toMatchObject({
      responseId: 'resp_3',
      itemId: null,
      heardMs: 0,
      heardSource: 'all-played',
      droppedMs: 0,
      cancelSent: true,
      truncateMs: null,
      reactionMs: 0.2,
    });
  });
});
