import { describe, expect, it } from 'vitest';
import { CAPTURE_END_TYPE } from '../../src/call/recorder.js';
import { buildSummary, TOOL_TEXT_MAX_CHARS, type BridgeLog, type CallerLog, type RecordedLine, type SummaryInput } from '../../src/tooling/replay/summary.js';
import { endLabel, renderTimelineSvg } from '../../src/tooling/replay/timeline-svg.js';
import type { TwilioInbound, TwilioOutbound } from '../../src/twilio/messages.js';
import { mulawToneSpans } from '../support/signals.js';

/**
 * One synthetic agent call, every time in stream ms:
 *   greeting resp_g (created 20, 1 s of audio sent at 40, received 41, done 80, transcript known);
 *   the caller speaks 1200–2000; resp_t calls lookup_order (done/completed 2300, output sent 2550);
 *   resp_o (tool-output) speaks 500 ms from 2600; resp_c is cancelled with a call_2 it never ran;
 *   keys 4 2 # at 4000/4200/4400, entry "42" sent 4400.5 (re-seeded again at 4800 after a reconnect);
 *   resp_k calls check_stock, which fails (output 4580); resp_e calls end_call (4750, output 4750.5);
 *   the bridge closes the socket at 5400 and records `agent-ended`.
 */
const BRIDGE_CLOCK_AT_START = 2000.25;
const b = (streamMs: number): number => streamMs + BRIDGE_CLOCK_AT_START;
const SID = 'MZ9';
const FRAME = Buffer.alloc(160, 0x10).toString('base64');

const tone = (lengthMs: number, spans: Array<[number, number]>): Uint8Array => mulawToneSpans(lengthMs, spans);

const ENDING_OUTPUT = JSON.stringify({ status: 'ending', note: 'The call ends as soon as the caller has heard your goodbye.' });

function scenario(options: { endLine?: boolean; callOutput?: string } = {}): SummaryInput & { bridge: BridgeLog } {
  const received: Array<{ atMs: number; message: TwilioOutbound }> = [];
  const bridgeTwilio: RecordedLine[] = [
    { atMs: b(-0.2), dir: 'in', msg: { event: 'connected', protocol: 'Call', version: '1.0.0' } },
    { atMs: b(0), dir: 'in', msg: { event: 'start', streamSid: SID, start: { streamSid: SID, callSid: 'CA9' } } },
  ];
  const sendFrames = (atMs: number, frames: number): void => {
    for (let i = 0; i < frames; i++) {
      const media: TwilioOutbound = { event: 'media', streamSid: SID, media: { payload: FRAME } };
      bridgeTwilio.push({ atMs: b(atMs), dir: 'out', msg: media });
      received.push({ atMs: atMs + 1, message: media });
    }
  };
  sendFrames(40, 50); // the greeting, 1000 ms
  sendFrames(2600, 25); // the answer after the tool, 500 ms

  const sent: Array<{ atMs: number; message: TwilioInbound }> = [{ atMs: 0, message: { event: 'connected', protocol: 'Call', version: '1.0.0' } }];
  ['4', '2', '#'].forEach((digit, i) => {
    const atMs = 4000 + i * 200;
    const message: TwilioInbound = { event: 'dtmf', sequenceNumber: String(100 + i), streamSid: SID, dtmf: { track: 'inbound_track', digit } };
    sent.push({ atMs, message });
    bridgeTwilio.push({ atMs: b(atMs + 0.3), dir: 'in', msg: message });
  });
  bridgeTwilio.sort((x, y) => x.atMs - y.atMs);

  const rt = (streamMs: number, dir: 'in' | 'out', msg: Record<string, unknown>): RecordedLine => ({ atMs: b(streamMs), dir, msg });
  const create = (purpose: string) => ({ type: 'response.create', response: { metadata: { purpose } } });
  const created = (id: string, purpose: string | null) => ({ type: 'response.created', response: { id, status: 'in_progress', metadata: purpose === null ? null : { purpose } } });
  const done = (id: string, purpose: string, status = 'completed', reason?: string) => ({
    type: 'response.done',
    response: { id, status, metadata: { purpose }, ...(reason === undefined ? {} : { status_details: { type: status, reason } }) },
  });
  const callItem = (type: 'added' | 'done', responseId: string, callId: string, name: string, args: string, status: string) => ({
    type: `response.output_item.${type}`,
    response_id: responseId,
    output_index: 0,
    item: { id: `item_${callId}`, type: 'function_call', status, call_id: callId, name, arguments: args },
  });
  const output = (callId: string, out: string) => ({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: callId, output: out } });
  const userText = (text: string) => ({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  const delta = (response: string, item: string) => ({ type: 'response.output_audio.delta', response_id: response, item_id: item, content_index: 0, delta: 'AAAA' });

  const realtimeLines: RecordedLine[] = [
    rt(5, 'out', { type: 'session.update', session: {} }),
    rt(10, 'out', create('greeting')),
    rt(20, 'in', created('resp_g', 'greeting')),
    rt(39.9, 'in', delta('resp_g', 'item_g')),
    rt(60, 'in', { type: 'response.output_audio_transcript.done', response_id: 'resp_g', item_id: 'item_g', output_index: 0, content_index: 0, transcript: 'Hello, how can I help?' }),
    rt(80, 'in', done('resp_g', 'greeting')),
    rt(1300, 'in', { type: 'input_audio_buffer.speech_started', audio_start_ms: 1200, item_id: 'item_u1' }),
    rt(2100, 'in', { type: 'input_audio_buffer.speech_stopped', audio_end_ms: 2000, item_id: 'item_u1' }),
    rt(2100, 'out', create('answer')),
    rt(2110, 'in', created('resp_t', 'answer')),
    rt(2200, 'in', callItem('added', 'resp_t', 'call_1', 'lookup_order', '', 'in_progress')),
    rt(2300, 'in', callItem('done', 'resp_t', 'call_1', 'lookup_order', '{"order":"42"}', 'completed')),
    rt(2310, 'in', done('resp_t', 'answer')),
    rt(2550, 'out', output('call_1', options.callOutput ?? '{"status":"shipped"}')),
    rt(2560, 'out', create('tool-output')),
    rt(2570, 'in', created('resp_o', 'tool-output')),
    rt(2599.9, 'in', delta('resp_o', 'item_o')),
    rt(2650, 'in', done('resp_o', 'tool-output')),
    rt(3490, 'out', create('answer')),
    rt(3500, 'in', created('resp_c', 'answer')),
    rt(3550, 'in', callItem('added', 'resp_c', 'call_2', 'lookup_order', '', 'in_progress')),
    rt(3600, 'out', { type: 'response.cancel', response_id: 'resp_c' }),
    rt(3620, 'in', callItem('done', 'resp_c', 'call_2', 'lookup_order', '{"order"', 'incomplete')),
    rt(3630, 'in', done('resp_c', 'answer', 'cancelled', 'client_cancelled')),
    rt(4400.5, 'out', userText('Keypad entry: 42')),
    rt(4401, 'out', create('answer')),
    rt(4410, 'in', created('resp_k', 'answer')),
    rt(4450, 'in', callItem('added', 'resp_k', 'call_3', 'check_stock', '', 'in_progress')),
    rt(4460, 'in', callItem('done', 'resp_k', 'call_3', 'check_stock', '{"sku":"42"}', 'completed')),
    rt(4470, 'in', done('resp_k', 'answer')),
    rt(4580, 'out', output('call_3', JSON.stringify({ error: 'HTTP 503 from stock service' }))),
    rt(4590, 'out', create('tool-output')),
    rt(4700, 'in', created('resp_e', 'tool-output')),
    rt(4740, 'in', callItem('added', 'resp_e', 'call_4', 'end_call', '', 'in_progress')),
    rt(4750, 'in', callItem('done', 'resp_e', 'call_4', 'end_call', '{}', 'completed')),
    rt(4750.5, 'out', output('call_4', ENDING_OUTPUT)),
    rt(4760, 'in', done('resp_e', 'tool-output')),
    // An upstream reconnect re-seeds the conversation, the keypad entry included: not a new entry.
    rt(4800, 'out', userText('Keypad entry: 42')),
  ];
  if (options.endLine !== false) realtimeLines.push(rt(5402, 'out', { type: CAPTURE_END_TYPE, reason: 'agent-ended' }));

  const caller: CallerLog = { callSid: 'CA9', streamSid: SID, sent, received, marksEchoed: [], protocolErrors: [], playedBytesAtEnd: 75 * 160 };
  return {
    input: 'agent-call',
    target: 'in-process, local model',
    caller,
    bridge: { twilioLines: bridgeTwilio, realtimeLines },
    callerAudio: tone(5400, [[1200, 2000]]),
    heardAudio: tone(5400, [
      [41, 1041],
      [2601, 3101],
    ]),
    endMs: 5400,
  };
}

describe('replay summary of an agent call', () => {
  const s = buildSummary(scenario());

  it('reports the greeting: its response, when the caller got its audio, what it said', () => {
    expect(s.greeting).toEqual({ responseId: 'resp_g', startMs: 20, firstAudioMs: 41, transcript: 'Hello, how can I help?', interrupted: false });
  });

  it("gives every response the bridge's purpose", () => {
    expect(s.responses?.map((r) => [r.id, r.purpose, r.status])).toEqual([
      ['resp_g', 'greeting', 'completed'],
      ['resp_t', 'answer', 'completed'],
      ['resp_o', 'tool-output', 'completed'],
      ['resp_c', 'answer', 'cancelled'],
      ['resp_k', 'answer', 'completed'],
      ['resp_e', 'tool-output', 'completed'],
    ]);
    expect(s.responses?.[0]).toEqual({ id: 'resp_g', purpose: 'greeting', status: 'completed', reason: null, createdMs: 20, doneMs: 80, audioSentMs: 1000, audioHeardMs: 1000 });
  });

  it('lists every function call: run and answered, failed, and never run in a cancelled response', () => {
    expect(s.toolCalls).toEqual([
      { callId: 'call_1', name: 'lookup_order', arguments: '{"order":"42"}', responseId: 'resp_t', startMs: 2300, durationMs: 250, ok: true, output: '{"status":"shipped"}', ran: true },
      { callId: 'call_2', name: 'lookup_order', arguments: '{"order"', responseId: 'resp_c', startMs: 3550, durationMs: null, ok: null, ran: false },
      { callId: 'call_3', name: 'check_stock', arguments: '{"sku":"42"}', responseId: 'resp_k', startMs: 4460, durationMs: 120, ok: false, error: 'HTTP 503 from stock service', ran: true },
      { callId: 'call_4', name: 'end_call', arguments: '{}', responseId: 'resp_e', startMs: 4750, durationMs: 0.5, ok: true, output: ENDING_OUTPUT, ran: true },
    ]);
    // JSON has no undefined: a call never run has neither output nor error.
    const notRun = JSON.parse(JSON.stringify(s.toolCalls?.[1])) as Record<string, unknown>;
    expect(Object.keys(notRun)).not.toContain('output');
    expect(Object.keys(notRun)).not.toContain('error');
  });

  it('cuts long outputs to 500 characters', () => {
    const long = buildSummary(scenario({ callOutput: 'x'.repeat(800) }));
    const out = long.toolCalls?.[0]?.output ?? '';
    expect(TOOL_TEXT_MAX_CHARS).toBe(500);
    expect(out).toHaveLength(500);
    expect(out.endsWith('x…')).toBe(true);
  });

  it('lists keypad entries once, ignoring their re-seeded copies', () => {
    expect(s.keypadEntries).toEqual([{ atMs: 4400.5, digits: '42' }]);
    expect(s.dtmf.map((d) => d.digit).join('')).toBe('42#');
  });

  it('reports the recorded end: by the agent', () => {
    expect(s.ended).toEqual({ atMs: 5400, by: 'agent', reason: 'agent-ended' });
    expect(endLabel(s)).toBe('ended by agent (end_call)');
  });

  it('infers the end without a recorded reason: the agent when end_call ran and the caller did not hang up', () => {
    const inferred = buildSummary(scenario({ endLine: false }));
    expect(inferred.ended).toEqual({ atMs: 5400, by: 'agent', reason: null });
  });

  it('infers a caller hang-up when the replay caller sent stop first', () => {
    const input = scenario({ endLine: false });
    const stop: TwilioInbound = { event: 'stop', sequenceNumber: '300', streamSid: SID, stop: { accountSid: 'AC9', callSid: 'CA9' } };
    const s2 = buildSummary({ ...input, caller: { ...input.caller, sent: [...input.caller.sent, { atMs: 5400, message: stop }] } });
    expect(s2.ended).toEqual({ atMs: 5400, by: 'caller', reason: null });
  });

  it('maps recorded reasons to who ended the call', () => {
    const withReason = (reason: string) => {
      const input = scenario({ endLine: false });
      const lines = [...input.bridge.realtimeLines, { atMs: b(5402), dir: 'out' as const, msg: { type: CAPTURE_END_TYPE, reason } }];
      return buildSummary({ ...input, bridge: { ...input.bridge, realtimeLines: lines } }).ended.by;
    };
    expect(withReason('transferred')).toBe('transfer');
    expect(withReason('idle')).toBe('idle');
    expect(withReason('twilio-stop')).toBe('caller');
    expect(withReason('max-duration')).toBe('other');
  });

  it('is null-safe without the bridge log', () => {
    const remote = buildSummary({ ...scenario(), bridge: null });
    expect(remote).toMatchObject({ greeting: null, toolCalls: null, keypadEntries: null, responses: null });
    expect(remote.ended).toEqual({ atMs: 5400, by: 'other', reason: null });
  });

  it('marks a greeting interrupted when it was cancelled', () => {
    const input = scenario();
    const lines = input.bridge.realtimeLines.map((l) =>
      (l.msg as { type: string; response?: { id: string } }).type === 'response.done' && (l.msg as { response: { id: string } }).response.id === 'resp_g'
        ? { ...l, msg: { type: 'response.done', response: { id: 'resp_g', status: 'cancelled', metadata: { purpose: 'greeting' }, status_details: { reason: 'turn_detected' } } } }
        : l,
    );
    const cut = buildSummary({ ...input, bridge: { ...input.bridge, realtimeLines: lines } });
    expect(cut.greeting).toMatchObject({ responseId: 'resp_g', interrupted: true });
  });

  it('draws the greeting, the tool calls, the keypad entry and the end on timeline.svg', () => {
    const svg = renderTimelineSvg({ summary: s, callerAudio: scenario().callerAudio, heardAudio: scenario().heardAudio });
    const labels = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => (m[1] ?? '').replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
    expect(labels).toEqual(
      expect.arrayContaining([
        'greeting',
        'R3 tool-output',
        'R5',
        'R4 cancelled',
        'tool calls',
        'lookup_order 250 ms ✓',
        'lookup_order not run',
        'check_stock 120 ms ✗',
        'end_call 0.5 ms ✓',
        'keypad',
        '42',
        'ended by agent (end_call)',
        'call ended',
      ]),
    );
    // The error is in the failed call's tooltip.
    expect(svg).toMatch(/<title>check_stock\(\{&quot;sku&quot;:&quot;42&quot;\}\) at 4460 ms: error after 120 ms: HTTP 503 from stock service<\/title>/);
  });
});
