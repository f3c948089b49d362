import { describe, expect, it } from 'vitest';
import { CallFacts, FACTS_LIMITS, heardShare } from '../../src/report/facts.js';
import { buildReport, figures, reportEndReason } from '../../src/report/build.js';

/**
 * Synthetic calls fed message by message, as the bridge reports them; the bridge's clock reads
 * T0 at `start`, so stream ms = atMs − T0.
 */
const T0 = 5000;
const at = (streamMs: number): number => T0 + streamMs;
const SID = 'MZ1';
/** base64 of `bytes` zero bytes: audio whose size is all that matters here */
const b64 = (bytes: number): string => Buffer.alloc(bytes).toString('base64');
/** `ms` of 24 kHz PCM16, as a Realtime delta carries it */
const pcm = (ms: number): string => b64(ms * 48);
/** `ms` of 8 kHz mu-law, as a Twilio media frame carries it */
const mulaw = (ms: number): string => b64(ms * 8);

function started(params: Record<string, string> = {}): CallFacts {
  const f = new CallFacts();
  f.twilio('in', { event: 'connected', protocol: 'Call', version: '1.0.0' }, at(-1));
  f.twilio('in', { event: 'start', streamSid: SID, start: { callSid: 'CA1', streamSid: SID, customParameters: params } }, at(0));
  f.realtime('out', { type: 'session.update', session: {} }, at(2));
  return f;
}

/** The answer `item` of `response`: `ms` of audio in one delta, sent as 100 ms frames each followed by a mark. */
function answer(f: CallFacts, startMs: number, response: string, item: string, ms: number, text: string, purpose = 'answer'): string[] {
  f.realtime('in', { type: 'response.created', response: { id: response, metadata: { purpose } } }, at(startMs));
  f.realtime('in', { type: 'response.output_audio.delta', response_id: response, item_id: item, delta: pcm(ms) }, at(startMs + 1));
  const marks: string[] = [];
  for (let i = 0; i < ms / 100; i++) {
    f.twilio('out', { event: 'media', streamSid: SID, media: { payload: mulaw(100) } }, at(startMs + 1.1));
    const name = `cb:${item}:${i}`;
    f.twilio('out', { event: 'mark', streamSid: SID, mark: { name } }, at(startMs + 1.1));
    marks.push(name);
  }
  f.realtime('in', { type: 'response.output_audio_transcript.done', response_id: response, item_id: item, transcript: text }, at(startMs + 2));
  f.realtime('in', { type: 'response.done', response: { id: response, status: 'completed', metadata: { purpose } } }, at(startMs + 3));
  return marks;
}

const echo = (f: CallFacts, name: string, streamMs: number): void => f.twilio('in', { event: 'mark', streamSid: SID, mark: { name } }, at(streamMs));

describe('heardShare', () => {
  it('cuts the text at the heard share of the audio, by characters, in samples as the model counts them', () => {
    const text = 'abcdefghij klmnopqrst';
    expect(heardShare(text, 0, 24_000)).toBe('');
    expect(heardShare(text, 1000, 24_000)).toBe(text);
    expect(heardShare(text, 985, 24_000)).toBe(text); // within the item's tail: heard whole
    expect(heardShare(text, 500, 24_000)).toBe('abcdefghij'); // 10.5 chars → 10, and no trailing space
    expect(heardShare(text, 250, 24_000)).toBe('abcde'); // mid-word: that word was cut off
    expect(heardShare('', 500, 24_000)).toBe('');
    expect(heardShare(text, 500, 0)).toBe('');
  });
});

describe('the call facts', () => {
  it('hang-up mid-answer: the heard position is the last mark echoed plus the time since, capped at the next mark', () => {
    const f = started({ from: '+15550001111', to: '+15552223333', profile: 'sales' });
    f.realtime('in', { type: 'input_audio_buffer.speech_started', item_id: 'u1' }, at(100));
    f.realtime('in', { type: 'input_audio_buffer.speech_stopped', item_id: 'u1' }, at(900));
    f.realtime('in', { type: 'conversation.item.input_audio_transcription.completed', item_id: 'u1', transcript: 'Where is my order?' }, at(950));
    const marks = answer(f, 1000, 'r1', 'a1', 1000, 'It shipped this morning and arrives tomorrow.');
    // Played from 1001.1: marks at 100, 200, 300, 400 ms echoed; the caller hangs up at 1451.1.
    for (let i = 0; i < 4; i++) echo(f, marks[i] ?? '', 1001.1 + (i + 1) * 100);
    f.twilio('in', { event: 'stop', streamSid: SID }, at(1451.1));
    f.end('twilio-stop', at(1452));
    const s = f.snapshot();
    expect(s.start).toMatchObject({ callSid: 'CA1', streamSid: SID, atMs: T0 });
    expect(s.callerTurns).toEqual([{ itemId: 'u1', startedMs: 100, stoppedMs: 900, firstAudioSentMs: 1001.1, firstAudioLatencyMs: 101.1, text: 'Where is my order?' }]);
    const item = s.agentItems[0];
    // 400 ms acknowledged at 1401.1, then 50.9 ms more by the end (1452), under the next mark (500).
    expect(item).toMatchObject({ itemId: 'a1', responseId: 'r1', purpose: 'answer', audioMs: 1000, sentMs: 1000, heardMs: 450.9, interrupted: false });
    expect(item?.heardText).toBe(heardShare('It shipped this morning and arrives tomorrow.', 450.9, 24_000));
    expect(s.ended).toEqual({ atMs: 1452, reason: 'twilio-stop' });

    const report = buildReport(s, { startedAtEpochMs: Date.UTC(2025, 0, 1), nowEpochMs: Date.UTC(2025, 0, 1, 0, 0, 2) });
    expect(report).toMatchObject({
      from: '+15550001111',
      to: '+15552223333',
      profile: 'sales',
      direction: 'inbound',
      startedAt: '2025-01-01T00:00:00.000Z',
      endedAt: '2025-01-01T00:00:01.452Z',
      durationMs: 1452,
      endReason: 'caller-hung-up',
      sessionEndReason: 'twilio-stop',
      upstreamReconnects: 0,
    });
    expect(report?.transcript.map((t) => `${t.role}:${t.text ?? ''}`)).toEqual(['caller:Where is my order?', 'agent:It shipped this morning and arrives tomorrow.']);
    expect(report?.latency.firstAudioMs).toEqual({ count: 1, p50: 101.1, p95: 101.1, max: 101.1 });
  });

  it('barge-in: the truncation point is what was heard, unheard items are deleted, and the reaction is timed', () => {
    const f = started();
    const marks = answer(f, 100, 'r1', 'a1', 2000, 'One two three four five six seven eight nine ten.');
    for (let i = 0; i < 7; i++) echo(f, marks[i] ?? '', 101.1 + (i + 1) * 100);
    // The caller speaks at 850: a second item of the response (never sent) is deleted, the first truncated.
    f.realtime('in', { type: 'response.output_audio.delta', response_id: 'r1', item_id: 'a2', delta: pcm(300) }, at(840));
    f.realtime('in', { type: 'input_audio_buffer.speech_started', item_id: 'u2' }, at(850));
    f.realtime('out', { type: 'response.cancel', response_id: 'r1' }, at(850.1));
    f.realtime('out', { type: 'conversation.item.truncate', item_id: 'a1', content_index: 0, audio_end_ms: 748 }, at(850.2));
    f.realtime('out', { type: 'conversation.item.delete', item_id: 'a2' }, at(850.3));
    f.twilio('out', { event: 'clear', streamSid: SID }, at(850.5));
    // Echoes of the cleared marks come back afterwards and move nothing.
    for (let i = 7; i < marks.length; i++) echo(f, marks[i] ?? '', 852);
    f.end('twilio-stop', at(2000));
    const s = f.snapshot();
    expect(s.clears).toEqual([
      {
        atMs: 850.5,
        trigger: 'speech',
        triggerAtMs: 850,
        reactionMs: 0.5,
        cancelledResponseId: 'r1',
        truncated: [{ itemId: 'a1', audioEndMs: 748 }],
        deleted: ['a2'],
        itemId: 'a1',
        responseId: 'r1',
        heardMs: 748,
      },
    ]);
    expect(s.agentItems.map((i) => [i.itemId, i.heardMs, i.interrupted, i.heardText])).toEqual([
      ['a1', 748, true, heardShare('One two three four five six seven eight nine ten.', 748, 48_000)],
      ['a2', 0, true, ''],
    ]);
    const report = buildReport(s, { startedAtEpochMs: 0, nowEpochMs: 0 });
    expect(report?.interruptions).toEqual([{ atMs: 850.5, by: 'speech', responseId: 'r1', itemId: 'a1', heardMs: 748, reactionMs: 0.5, cancelled: true }]);
    expect(report?.latency.bargeInReactionMs).toEqual({ count: 1, p50: 0.5, p95: 0.5, max: 0.5 });
  });

  it('a clear that is no barge-in (the hold tone ending, the apology) is no interruption', () => {
    const f = started();
    f.twilio('out', { event: 'media', streamSid: SID, media: { payload: mulaw(500) } }, at(1500));
    f.twilio('in', { event: 'media', streamSid: SID, media: { payload: mulaw(20), timestamp: '1600' } }, at(1600));
    f.twilio('out', { event: 'clear', streamSid: SID }, at(1700));
    f.end('upstream-failed', at(3000));
    const s = f.snapshot();
    expect(s.clears[0]).toMatchObject({ trigger: 'other', triggerAtMs: null, reactionMs: null, itemId: null });
    const report = buildReport(s, { startedAtEpochMs: 0, nowEpochMs: 0 });
    expect(report?.interruptions).toEqual([]);
    expect(report?.endReason).toBe('upstream-failed');
    // The hold tone is nobody's answer.
    expect(report?.transcript).toEqual([]);
  });

  it('keypad entries count once: a re-seeded copy after a reconnect, with no new key, is not an entry', () => {
    const f = started();
    const entry = { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Keypad entry: 42' }] } };
    f.twilio('in', { event: 'dtmf', streamSid: SID, dtmf: { digit: '4' } }, at(100));
    f.twilio('in', { event: 'dtmf', streamSid: SID, dtmf: { digit: '2' } }, at(200));
    f.realtime('out', entry, at(700));
    f.realtime('out', { type: 'session.update', session: {} }, at(900));
    f.realtime('out', entry, at(901));
    const s = f.snapshot();
    expect(s.keypadEntries).toEqual([{ atMs: 700, digits: '42' }]);
    expect(s.upstreamSessions).toBe(2);
    expect(buildReport(s, { startedAtEpochMs: 0, nowEpochMs: 0 })?.upstreamReconnects).toBe(1);
  });

  it('tool calls: run, answered, failed, or never run in a cancelled response', () => {
    const f = started();
    const call = (type: string, id: string, args: string, status: string) => ({
      type: `response.output_item.${type}`,
      response_id: 'r1',
      item: { id: `item_${id}`, type: 'function_call', status, call_id: id, name: 'lookup_order', arguments: args },
    });
    f.realtime('in', call('added', 'c1', '', 'in_progress'), at(100));
    f.realtime('in', call('done', 'c1', '{"order":"42"}', 'completed'), at(110));
    f.realtime('out', { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'c1', output: '{"error":"HTTP 503"}' } }, at(400));
    f.realtime('in', call('added', 'c2', '', 'in_progress'), at(500));
    f.realtime('in', call('done', 'c2', '{"ord', 'incomplete'), at(510));
    const report = buildReport(f.snapshot(), { startedAtEpochMs: 0, nowEpochMs: 0 });
    expect(report?.toolCalls).toEqual([
      { atMs: 110, callId: 'c1', name: 'lookup_order', arguments: '{"order":"42"}', ran: true, ok: false, error: 'HTTP 503', durationMs: 290 },
      { atMs: 500, callId: 'c2', name: 'lookup_order', arguments: '{"ord', ran: false, ok: null, durationMs: null },
    ]);
  });

  it('API errors are counted by code, a bounded number of codes and of kept errors', () => {
    const f = started();
    for (let i = 0; i < FACTS_LIMITS.errors + 5; i++) f.realtime('in', { type: 'error', error: { type: 'invalid_request_error', code: 'a_code', message: 'nope' } }, at(10 + i));
    for (let i = 0; i < FACTS_LIMITS.errorCodes + 3; i++) f.realtime('in', { type: 'error', error: { code: `code_${i}`, message: 'x' } }, at(500));
    f.realtime('in', { type: 'error', error: { message: 'no code' } }, at(600));
    const report = buildReport(f.snapshot(), { startedAtEpochMs: 0, nowEpochMs: 0 });
    expect(report?.apiErrors.count).toBe(FACTS_LIMITS.errors + 5 + FACTS_LIMITS.errorCodes + 3 + 1);
    expect(report?.apiErrors.errors).toHaveLength(FACTS_LIMITS.errors);
    expect(report?.apiErrors.byCode['a_code']).toBe(FACTS_LIMITS.errors + 5);
    expect(Object.keys(report?.apiErrors.byCode ?? {})).toHaveLength(FACTS_LIMITS.errorCodes + 1);
    expect(report?.apiErrors.byCode['other']).toBe(5); // 4 codes past the cap, and the one without a code
    expect(report?.omitted['errors']).toBe(FACTS_LIMITS.errors + 5 + FACTS_LIMITS.errorCodes + 3 + 1 - FACTS_LIMITS.errors);
  });

  it('keeps bounded lists on an endless call, and counts what it left out', () => {
    const f = new CallFacts({ ...FACTS_LIMITS, callerTurns: 3, agentItems: 2, textChars: 10 });
    f.twilio('in', { event: 'start', streamSid: SID, start: { callSid: 'CA1', streamSid: SID } }, at(0));
    for (let i = 0; i < 5; i++) {
      f.realtime('in', { type: 'input_audio_buffer.speech_started', item_id: `u${i}` }, at(i * 1000));
      f.realtime('in', { type: 'response.output_audio_transcript.delta', response_id: `r${i}`, item_id: `a${i}`, delta: 'a rather long sentence' }, at(i * 1000 + 500));
    }
    const s = f.snapshot();
    expect(s.callerTurns).toHaveLength(3);
    expect(s.agentItems).toHaveLength(2);
    expect(s.agentItems[0]?.text).toBe('a rather …');
    expect(s.omitted).toMatchObject({ callerTurns: 2, agentItems: 3 });
  });

  it('ignores everything before start, and malformed messages', () => {
    const f = new CallFacts();
    f.realtime('in', { type: 'input_audio_buffer.speech_started' }, 1);
    f.twilio('in', 'not json at all', 2);
    f.twilio('in', null, 3);
    f.realtime('in', { type: 42 }, 4);
    expect(f.snapshot().start).toBeNull();
    expect(buildReport(f.snapshot(), { startedAtEpochMs: 0, nowEpochMs: 0 })).toBeNull();
  });
});

describe('the report', () => {
  it('is not made for a stream refused after its start: it would stand beside the real call', () => {
    const f = started();
    f.end('unauthorized', at(100));
    expect(buildReport(f.snapshot(), { startedAtEpochMs: 0, nowEpochMs: 0 })).toBeNull();
  });

  it('names the end reason as the product does', () => {
    expect(reportEndReason('twilio-stop')).toBe('caller-hung-up');
    expect(reportEndReason('twilio-closed')).toBe('caller-hung-up');
    expect(reportEndReason('shutdown')).toBe('shutdown');
    expect(reportEndReason('agent-ended')).toBe('agent-ended');
    expect(reportEndReason(null)).toBe('error');
    expect(reportEndReason('something-new')).toBe('error');
  });

  it('gives the session profile before the stream parameter, and the stream direction', () => {
    const f = started({ profile: 'asked-for', direction: 'outbound-api' });
    f.end('agent-ended', at(10));
    expect(buildReport(f.snapshot(), { startedAtEpochMs: 0, nowEpochMs: 0, profile: 'resolved' })).toMatchObject({ profile: 'resolved', direction: 'outbound-api' });
    expect(buildReport(f.snapshot(), { startedAtEpochMs: 0, nowEpochMs: 0, profile: null })).toMatchObject({ profile: 'asked-for' });
  });

  it('latency figures are nearest-rank percentiles of what was measured', () => {
    expect(figures([])).toBeNull();
    expect(figures([null, 5])).toEqual({ count: 1, p50: 5, p95: 5, max: 5 });
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(figures(xs)).toEqual({ count: 20, p50: 10, p95: 19, max: 20 });
  });
});
