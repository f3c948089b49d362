import { describe, expect, it } from 'vitest';
import type { ItemTruncateEvent, RealtimeClientEvent, SessionUpdateEvent } from '../../src/realtime/events.js';
import { SessionHarness, STREAM_SID, defaultAgentConfig } from '../support/session-harness.js';
import type { TwilioOutbound } from '../../src/twilio/messages.js';
import { DOWNSAMPLER_DELAY_SAMPLES_8K } from '../../src/audio/resampler.js';
import { InboundTranscoder } from '../../src/audio/transcoder.js';

const SILENCE_20MS_MULAW = Buffer.alloc(160, 0xff).toString('base64');

function truncates(events: RealtimeClientEvent[]): ItemTruncateEvent[] {
  return events.filter((e): e is ItemTruncateEvent => e.type === 'conversation.item.truncate');
}

function types(events: Array<{ type?: string; event?: string }>): string[] {
  return events.map((e) => e.type ?? e.event ?? '?');
}

describe('session setup', () => {
  it('opens the upstream on start and sends a GA session.update first, with manual turn-taking', () => {
    const h = new SessionHarness();
    h.feed({
      kind: 'twilio',
      message: { event: 'connected', protocol: 'Call', version: '1.0.0' },
    });
    expect(h.actions).toHaveLength(0);
    h.startCall();
    const connect = h.actions.find((a) => a.action.kind === 'connect-upstream');
    expect(connect?.action).toEqual({ kind: 'connect-upstream', attempt: 1, delayMs: 0 });
    const first = h.toRealtime()[0] as SessionUpdateEvent;
    expect(first.type).toBe('session.update');
    expect(first.session.type).toBe('realtime');
    expect(first.session.audio.input.format).toEqual({ type: 'audio/pcm', rate: 24000 });
    expect(first.session.audio.output.format).toEqual({ type: 'audio/pcm', rate: 24000 });
    expect(first.session.audio.output.voice).toBe('marin');
    expect(first.session.audio.input.transcription).toEqual({ model: 'gpt-4o-transcribe' });
    expect(first.session.audio.input.noise_reduction).toEqual({ type: 'near_field' });
    expect(first.session.instructions).toBe(defaultAgentConfig().instructions);
    expect(first.session.output_modalities).toEqual(['audio']);
    expect(first.session.audio.input.turn_detection).toEqual({
      type: 'server_vad',
      threshold: 0.6,
      prefix_padding_ms: 300,
      silence_duration_ms: 500,
      create_response: false,
      interrupt_response: false,
    });
  });

  it('buffers caller audio that arrives before the upstream opens and sends it, in order, after session.update', () => {
    const h = new SessionHarness();
    h.sendStart();
    for (let i = 0; i < 10; i++) h.callerMedia(SILENCE_20MS_MULAW);
    expect(h.actions.filter((a) => a.action.kind === 'send-realtime')).toHaveLength(0);
    h.feed({ kind: 'upstream-open' });
    const sent = h.actions.flatMap(({ action }) => (action.kind === 'send-realtime' ? [action.event] : []));
    expect(sent[0]?.type).toBe('session.update');
    expect(sent.slice(1).map((e) => e.type)).toEqual(Array(10).fill('input_audio_buffer.append'));
    for (const e of sent.slice(1)) {
      // 20 ms at 24 kHz PCM16 = 960 bytes
      if (e.type === 'input_audio_buffer.append') expect(Buffer.from(e.audio, 'base64')).toHaveLength(960);
    }
  });

  it('bounds the pre-open buffer by dropping the oldest audio, and says so once', () => {
    const h = new SessionHarness(defaultAgentConfig({ maxBufferedInboundMs: 200 }));
    h.sendStart();
    // Distinct frames (each its own level), so which ones were kept can be told apart.
    const frames = Array.from({ length: 30 }, (_, i) => Buffer.alloc(160, 0x80 + i).toString('base64'));
    for (const f of frames) h.callerMedia(f);
    h.feed({ kind: 'upstream-open' });
    const appends = h.actions.flatMap(({ action }) => (action.kind === 'send-realtime' && action.event.type === 'input_audio_buffer.append' ? [action.event.audio] : []));
    expect(appends).toHaveLength(10);
    // The newest 200 ms are kept: what the same transcoder makes of frames 20..29, in order.
    const reference = new InboundTranscoder();
    const expected = frames.map((f) => reference.transcode(f)).slice(20);
    expect(appends).toEqual(expected);
    const warnings = h.actions.filter(({ action }) => action.kind === 'log' && action.level === 'warn');
    expect(warnings).toHaveLength(1);
  });

  it('sends nothing to Twilio before start, and ignores media before start', () => {
    const h = new SessionHarness();
    const out = h.callerMedia(SILENCE_20MS_MULAW);
    expect(out.filter((a) => a.kind !== 'log')).toEqual([]);
  });
});

describe('turn-taking', () => {
  it('asks for a response when the caller stops speaking', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStarted();
    expect(h.toRealtime().filter((e) => e.type !== 'session.update')).toEqual([]);
    h.speechStopped();
    expect(types(h.toRealtime())).toEqual(['session.update', 'response.create']);
  });

  it('waits for the active response to finish before creating the next, never two at once', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStarted();
    h.speechStopped();
    h.responseCreated('resp_1');
    // The caller barges in and finishes a new turn while resp_1 is still being cancelled.
    h.speechStarted();
    h.speechStopped();
    expect(types(h.toRealtime()).filter((t) => t === 'response.create')).toHaveLength(1);
    h.responseDone('resp_1', 'cancelled');
    expect(types(h.toRealtime()).filter((t) => t === 'response.create')).toHaveLength(2);
  });

  it('never sends response.create while the caller is talking again', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStarted();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.speechStopped(); // a second turn ended while resp_1 is active: deferred
    h.speechStarted(); // ...but the caller resumed before resp_1 finished
    h.responseDone('resp_1', 'cancelled');
    expect(types(h.toRealtime()).filter((t) => t === 'response.create')).toHaveLength(1);
    h.speechStopped();
    expect(types(h.toRealtime()).filter((t) => t === 'response.create')).toHaveLength(2);
  });
});

describe('outbound audio', () => {
  it('sends each delta to Twilio at once, one media message per stretch between marks, a mark every 100 ms and at the end', () => {
    const h = SessionHarness.answering();
    const before = h.mark();
    h.delta('resp_1', 'item_a', 250);
    const first = h.toTwilio(before);
    const mediaBytes = (ms: readonly TwilioOutbound[]): number[] =>
      ms.flatMap((m) => (m.event === 'media' ? [Buffer.from(m.media.payload, 'base64').length] : []));
    // all 250 ms at once: nothing waits for a frame to fill
    expect(types(first)).toEqual([
      'media', 'mark',
      'media', 'mark',
      'media', 'mark', // every delta ends on a mark, so a stall is always visible
    ]);
    expect(mediaBytes(first)).toEqual([800, 800, 400]);
    const beforeDone = h.mark();
    h.audioDone('resp_1', 'item_a');
    const tail = h.toTwilio(beforeDone);
    expect(types(tail)).toEqual(['media', 'mark']);
    // the samples still inside the anti-aliasing filter
    expect(mediaBytes(tail)).toEqual([DOWNSAMPLER_DELAY_SAMPLES_8K]);
    for (const m of h.toTwilio()) expect(m.streamSid).toBe(STREAM_SID);
  });

  it('places a mark after each 100 ms of unmarked audio and at the end of every delta', () => {
    const h = SessionHarness.answering();
    const before = h.mark();
    for (const ms of [30, 30, 30, 30, 130]) h.delta('resp_1', 'item_a', ms);
    const sent = h.toTwilio(before);
    // The stream position of every mark, in bytes.
    const marksAt: number[] = [];
    let position = 0;
    for (const m of sent) {
      if (m.event === 'media') position += Buffer.from(m.media.payload, 'base64').length;
      if (m.event === 'mark') marksAt.push(position);
    }
    // A mark closes every delta; within the 130 ms delta one falls after its first 100 ms.
    expect(marksAt).toEqual([240, 480, 720, 960, 1760, 2000]);
  });
});

describe('interruption routine (one test per mistake public bridges make)', () => {
  it('truncates at the played position when the answer already finished generating but still plays from Twilio’s buffer', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 3000);
    h.advance(1200);
    const before = h.mark();
    h.speechStarted();
    const sent = h.toRealtime(before);
    // No response is active any more: no cancel, but the caller still hears audio: clear + truncate.
    expect(types(sent)).toEqual(['conversation.item.truncate']);
    const [t] = truncates(sent);
    expect(t).toEqual({ type: 'conversation.item.truncate', item_id: 'item_a', content_index: 0, audio_end_ms: 1200 });
    expect(types(h.toTwilio(before))).toEqual(['clear']);
  });

  it('counts the played position per response, not from the first delta of the call', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 2000);
    h.advance(2000 + 8000); // first answer fully heard, then 8 s of caller talk / silence
    h.speechStarted();
    h.speechStopped();
    h.fullResponse('resp_2', 'item_b', 3000);
    h.advance(700);
    const before = h.mark();
    h.speechStarted();
    expect(truncates(h.toRealtime(before))).toEqual([
      { type: 'conversation.item.truncate', item_id: 'item_b', content_index: 0, audio_end_ms: 700 },
    ]);
  });

  it('counts audio played, not time elapsed, when generation stalls and Twilio’s buffer runs dry', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 600);
    h.advance(2000); // 600 ms played, then 1.4 s of dead air: the generation stalled
    h.delta('resp_1', 'item_a', 600);
    h.advance(300);
    const before = h.mark();
    h.speechStarted();
    const sent = h.toRealtime(before);
    expect(types(sent)).toEqual(['response.cancel', 'conversation.item.truncate']);
    expect(sent[0]).toEqual({ type: 'response.cancel', response_id: 'resp_1' });
    expect(truncates(sent)[0]?.audio_end_ms).toBe(900);
  });

  it('never truncates beyond what was sent when Twilio is slow to acknowledge', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 500);
    h.twilioEchoesMarks = false; // acknowledgements lost in transit
    h.advance(5000);
    const before = h.mark();
    h.speechStarted();
    const t = truncates(h.toRealtime(before))[0];
    // capped at the first unacknowledged mark: at most 100 ms are claimed without proof
    expect(t?.audio_end_ms).toBeLessThanOrEqual(100);
    expect(t?.audio_end_ms).toBeGreaterThan(0);
  });

  it('uses the assistant item id, never the response id, and the content_index from the deltas', () => {
    const h = SessionHarness.answering();
    h.realtime({ type: 'response.output_audio.delta', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 2, delta: Buffer.alloc(48 * 400).toString('base64') });
    h.advance(250);
    const before = h.mark();
    h.speechStarted();
    const t = truncates(h.toRealtime(before))[0];
    expect(t?.item_id).toBe('item_a');
    expect(t?.content_index).toBe(2);
    expect(t?.audio_end_ms).toBe(250);
    expect(Number.isInteger(t?.audio_end_ms)).toBe(true);
  });

  it('deletes the item instead of truncating at 0 when the caller heard none of it', () => {
    const h = SessionHarness.answering();
    const before = h.mark();
    h.speechStarted(); // before any audio arrived
    // deleting an item its response is still generating would race the generation
    expect(h.toRealtime(before)).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
    h.delta('resp_1', 'item_a', 200); // generated before the server saw the cancel: never played
    h.responseDone('resp_1', 'cancelled');
    expect(h.toRealtime(before)).toEqual([
      { type: 'response.cancel', response_id: 'resp_1' },
      { type: 'conversation.item.delete', item_id: 'item_a' },
    ]);
    expect(h.toTwilio(before)).toEqual([{ event: 'clear', streamSid: STREAM_SID }]);
  });

  it('deletes items the server added after the barge-in, once the cancelled response is done', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    const before = h.mark();
    h.speechStarted(); // response.create still in flight
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    h.delta('resp_1', 'item_a', 200);
    h.realtime({
      type: 'response.done',
      response: {
        id: 'resp_1',
        status: 'cancelled',
        output: [
          { id: 'item_a', type: 'message', role: 'assistant', content: [] },
          { id: 'item_b', type: 'message', role: 'assistant', content: [] },
        ],
      },
    });
    expect(h.toRealtime(before)).toEqual([
      { type: 'response.cancel', response_id: 'resp_1' },
      { type: 'conversation.item.delete', item_id: 'item_a' },
      { type: 'conversation.item.delete', item_id: 'item_b' },
    ]);
  });

  it('sends nothing at all on speech_started when nothing is audible and no response is active', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 1000);
    h.advance(1500); // fully played, every mark acknowledged
    const before = h.mark();
    h.speechStarted();
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.toTwilio(before)).toEqual([]);
  });

  it('cancels an active response exactly once, with its response_id', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 300);
    h.advance(200);
    h.speechStarted();
    h.speechStopped();
    h.speechStarted(); // a second barge-in before resp_1's done arrives
    const cancels = h.toRealtime().filter((e) => e.type === 'response.cancel');
    expect(cancels).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
  });

  it('cancels a response whose creation was still in flight as soon as its id is known', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped(); // response.create sent
    const before = h.mark();
    h.speechStarted(); // caller resumes before response.created
    expect(h.toRealtime(before)).toEqual([]);
    h.responseCreated('resp_1');
    expect(h.toRealtime(before)).toEqual([{ type: 'response.cancel', response_id: 'resp_1' }]);
    // and its audio never reaches the caller
    h.itemAdded('resp_1', 'item_a');
    const beforeDelta = h.mark();
    h.delta('resp_1', 'item_a', 500);
    expect(h.toTwilio(beforeDelta)).toEqual([]);
  });

  it('drops every late delta of the interrupted response after clear, and all deltas for the suppression window', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 400);
    h.advance(200);
    h.speechStarted();
    const afterClear = h.mark();
    h.delta('resp_1', 'item_a', 400); // generated before the server saw our cancel
    h.advance(2000);
    h.delta('resp_1', 'item_a', 400); // whatever the time
    expect(h.toTwilio(afterClear)).toEqual([]);
    h.responseDone('resp_1', 'cancelled');

    // In the window, audio of a response not seen created since the barge-in is dropped too...
    const h2 = new SessionHarness();
    h2.startCall();
    h2.speechStopped();
    h2.fullResponse('resp_1', 'item_a', 1000);
    h2.advance(300);
    h2.speechStarted();
    const early = h2.mark();
    h2.advance(100);
    h2.delta('resp_unknown', 'item_x', 100);
    expect(h2.toTwilio(early)).toEqual([]);
    h2.advance(500);
    h2.delta('resp_unknown', 'item_x', 100); // ...and plays once the window has passed
    const played = h2.toTwilio(early).flatMap((m) => (m.event === 'media' ? [Buffer.from(m.media.payload, 'base64').length] : []));
    expect(played.reduce((a, b) => a + b, 0)).toBe(100 * 8);
  });

  it('plays an answer to the new turn from its first delta, even inside the suppression window', () => {
    const h = new SessionHarness(defaultAgentConfig({ suppressDeltasMs: 3000 }));
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 2000);
    h.advance(300);
    h.speechStarted();
    h.advance(600);
    h.speechStopped();
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_b');
    const before = h.mark();
    h.delta('resp_2', 'item_b', 400);
    const played = h.toTwilio(before).flatMap((m) => (m.event === 'media' ? [Buffer.from(m.media.payload, 'base64').length] : []));
    expect(played.reduce((a, b) => a + b, 0)).toBe(400 * 8);
    h.advance(250);
    const beforeBargeIn = h.mark();
    h.speechStarted();
    // the heard position counts from the answer's first sample: nothing of it was skipped
    expect(truncates(h.toRealtime(beforeBargeIn))).toEqual([
      { type: 'conversation.item.truncate', item_id: 'item_b', content_index: 0, audio_end_ms: 250 },
    ]);
  });

  it('ignores marks echoed by clear, so they cannot advance the next response’s position', () => {
    // No suppression window here: the next answer's audio must reach Twilio before the stale echoes return.
    const h = new SessionHarness(defaultAgentConfig({ suppressDeltasMs: 0 }));
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 3000);
    h.advance(500);
    h.speechStarted(); // clear: Twilio echoes the ~25 pending marks at once
    h.speechStopped();
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_b');
    h.delta('resp_2', 'item_b', 2000); // arrives before the stale echoes are delivered
    h.advance(600); // stale echoes delivered first, then 600 ms of resp_2 play
    const before = h.mark();
    h.speechStarted();
    expect(truncates(h.toRealtime(before))).toEqual([
      { type: 'conversation.item.truncate', item_id: 'item_b', content_index: 0, audio_end_ms: 600 },
    ]);
    expect(h.markEchoes.length).toBeGreaterThan(20);
  });

  it('handles three interruptions in a row, each truncating its own item at its own heard position', () => {
    const h = new SessionHarness();
    h.startCall();
    const heard = [400, 900, 1300];
    heard.forEach((ms, i) => {
      h.speechStopped();
      h.fullResponse(`resp_${i}`, `item_${i}`, 3000);
      h.advance(ms);
      h.speechStarted();
      h.advance(700);
    });
    expect(truncates(h.toRealtime())).toEqual(
      heard.map((ms, i) => ({ type: 'conversation.item.truncate', item_id: `item_${i}`, content_index: 0, audio_end_ms: ms })),
    );
    expect(h.toTwilio().filter((m) => m.event === 'clear')).toHaveLength(3);
    expect(h.session.interruptions).toHaveLength(3);
  });

  it('truncates the item being heard and deletes a later one not yet reached', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 1000);
    h.audioDone('resp_1', 'item_a');
    h.itemAdded('resp_1', 'item_b');
    h.delta('resp_1', 'item_b', 1000);
    h.advance(600);
    const before = h.mark();
    h.speechStarted();
    expect(h.toRealtime(before)).toEqual([
      { type: 'response.cancel', response_id: 'resp_1' },
      { type: 'conversation.item.truncate', item_id: 'item_a', content_index: 0, audio_end_ms: 600 },
    ]);
    h.responseDone('resp_1', 'cancelled');
    expect(h.toRealtime(before).slice(2)).toEqual([{ type: 'conversation.item.delete', item_id: 'item_b' }]);
  });

  it('keeps the heard share of the agent’s words in the transcript', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 2000);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'one two three four five six seven eight nine ten' });
    h.advance(1000);
    h.speechStarted();
    expect(h.session.transcript).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'one two three four five' }]);
  });
});

describe('interruption details', () => {
  it('counts played audio after a stall that ends between two marks', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 650); // not a multiple of the mark interval
    h.advance(2650); // all of it played, then 2 s of dead air
    h.delta('resp_1', 'item_a', 600);
    h.advance(40);
    const before = h.mark();
    h.speechStarted();
    // all 650 ms were sent and played before the stall, then 40 ms more were heard
    expect(truncates(h.toRealtime(before))[0]?.audio_end_ms).toBe(690);
    expect(h.heardMs).toBe(690);
  });

  it('never truncates past the audio the model produced', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 100);
    h.audioDone('resp_1', 'item_a'); // 100 ms and the filter's drained tail were sent
    // Heard into the tail but short of its end (by more than the 1 ms an item counts as heard by).
    const tailMs = DOWNSAMPLER_DELAY_SAMPLES_8K / 8;
    expect(tailMs).toBeGreaterThan(4 / 3);
    h.advance(100 + tailMs / 4);
    const before = h.mark();
    h.speechStarted();
    expect(truncates(h.toRealtime(before))).toEqual([
      { type: 'conversation.item.truncate', item_id: 'item_a', content_index: 0, audio_end_ms: 100 },
    ]);
  });

  it('drops the filter history of the interrupted answer', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 250);
    h.advance(100);
    h.speechStarted();
    h.responseDone('resp_1', 'cancelled');
    h.advance(700);
    h.speechStopped();
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_b');
    const before = h.mark();
    h.delta('resp_2', 'item_b', 100);
    h.audioDone('resp_2', 'item_b');
    const bytes = h
      .toTwilio(before)
      .flatMap((m) => (m.event === 'media' ? [Buffer.from(m.media.payload, 'base64').length] : []))
      .reduce((a, b) => a + b, 0);
    expect(bytes).toBe(100 * 8 + DOWNSAMPLER_DELAY_SAMPLES_8K); // the new answer and its drained filter tail, nothing older
  });

  it('flushes an item’s tail when its response ends without output_audio.done', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 110);
    const before = h.mark();
    h.realtime({ type: 'response.done', response: { id: 'resp_1', status: 'incomplete', output: [] } });
    expect(types(h.toTwilio(before))).toEqual(['media', 'mark']);
  });

  it('does not interrupt again while the interrupted response is still being cancelled', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 300);
    h.advance(100);
    h.speechStarted();
    h.speechStopped();
    const before = h.mark();
    h.speechStarted(); // nothing audible, cancel already sent
    expect(h.toRealtime(before)).toEqual([]);
    expect(h.toTwilio(before)).toEqual([]);
    expect(h.session.interruptions).toHaveLength(1);
  });

  it('logs each interruption with heard ms, sent ms and whether cancel was sent', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 2000);
    h.advance(450);
    const out = h.speechStarted();
    // the answer and the filter's drained tail, in whole ms
    const SENT_MS = Math.floor(2000 + DOWNSAMPLER_DELAY_SAMPLES_8K / 8);
    expect(out.find((a) => a.kind === 'metric')).toEqual({ kind: 'metric', event: { name: 'interruption', truncatedMs: 450, cancelSent: false } });
    const line = out.find((a) => a.kind === 'log' && a.msg === 'interruption');
    expect(line).toMatchObject({
      level: 'info',
      fields: { responseId: null, cancelSent: false, heardMs: 450, sentMs: SENT_MS, truncated: [{ itemId: 'item_a', audioEndMs: 450, sentMs: SENT_MS }], deleted: [] },
    });
  });
});

describe('turn-taking recovery', () => {
  it('asks again on the next turn when the server rejects a response.create', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    const create = h.toRealtime().find((e) => e.type === 'response.create');
    expect(create?.event_id).toMatch(/^cb_create_/);
    h.realtime({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'bad', event_id: create?.event_id ?? null } });
    h.speechStarted();
    h.speechStopped();
    expect(types(h.toRealtime()).filter((t) => t === 'response.create')).toHaveLength(2);
  });

  it('retries after the active response is done when the server says one is still active', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    h.realtime({ type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'Conversation already has an active response in progress: resp_0. Wait until the response is finished before creating a new one.' } });
    h.responseDone('resp_0');
    expect(types(h.toRealtime()).filter((t) => t === 'response.create')).toHaveLength(2);
  });
});

describe('errors and hang-up', () => {
  it('logs API errors with code and message and keeps the call going', () => {
    const h = new SessionHarness();
    h.startCall();
    const out = h.realtime({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'Audio content of 2450ms is already shorter than 2535ms' } });
    expect(out).toEqual([
      { kind: 'metric', event: { name: 'upstream-error', code: 'invalid_value' } },
      { kind: 'log', level: 'warn', msg: 'realtime error', fields: { code: 'invalid_value', message: 'Audio content of 2450ms is already shorter than 2535ms', type: 'invalid_request_error' } },
    ]);
    expect(h.session.isEnded).toBe(false);
  });

  it('ends the call on Twilio stop, and ignores everything after', () => {
    const a = new SessionHarness();
    a.startCall();
    const out = a.feed({ kind: 'twilio', message: { event: 'stop', sequenceNumber: '5', streamSid: STREAM_SID, stop: { accountSid: 'AC1', callSid: 'CA1' } } });
    expect(out.filter((x) => x.kind === 'end-call')).toEqual([{ kind: 'end-call', reason: 'twilio-stop', closeCode: 1000 }]);
    expect(a.feed({ kind: 'upstream-closed', code: 1000, reason: '' })).toEqual([]);
  });

  it('ends the call when the Twilio socket closes without a stop', () => {
    const h = new SessionHarness();
    h.startCall();
    const out = h.feed({ kind: 'twilio-closed', code: 1006 });
    expect(out.filter((x) => x.kind === 'end-call')).toEqual([{ kind: 'end-call', reason: 'twilio-closed', closeCode: 1000 }]);
  });

  it('ends the call at its maximum duration', () => {
    const h = new SessionHarness();
    h.startCall();
    expect(h.feed({ kind: 'deadline' }).filter((x) => x.kind === 'end-call')).toEqual([{ kind: 'end-call', reason: 'max-duration', closeCode: 1000 }]);
  });
});

function kinds(actions: ReturnType<SessionHarness['feed']>): string[] {
  return actions.filter((a) => a.kind !== 'log').map((a) => (a.kind === 'send-realtime' ? a.event.type : a.kind === 'send-twilio' ? a.message.event : a.kind));
}

describe('upstream faults', () => {
  it('reconnects at once when the upstream drops, re-sends the session and re-seeds the conversation', () => {
    const h = new SessionHarness();
    h.startCall();
    h.realtime({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_u1', content_index: 0, transcript: 'book a table' });
    h.speechStopped();
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    h.delta('resp_1', 'item_a', 2000);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'one two three four' });
    h.advance(500);
    const lost = h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    // the first session lived under HEALTHY_SESSION_MS, so this is the second attempt: 250 ms
    expect(lost.filter((a) => a.kind === 'connect-upstream')).toEqual([{ kind: 'connect-upstream', attempt: 2, delayMs: 250 }]);
    expect(lost.some((a) => a.kind === 'end-call')).toBe(false);
    // the answer stops where the caller is: Twilio's buffer is cleared
    expect(types(lost.flatMap((a) => (a.kind === 'send-twilio' ? [a.message] : [])))).toEqual(['clear']);
    h.callerMedia(SILENCE_20MS_MULAW); // buffered while reconnecting
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const sent = h.toRealtime(before);
    expect(sent.map((e) => e.type)).toEqual(['session.update', 'conversation.item.create', 'conversation.item.create', 'response.create']);
    expect(sent[1]).toEqual({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'book a table' }] } });
    // 500 of 2000 ms were heard: the agent's turn is cut to its first quarter
    expect(sent[2]).toEqual({ type: 'conversation.item.create', item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'one' }] } });
    const appends = h.actions.slice(before).filter(({ action }) => action.kind === 'send-realtime' && action.event.type === 'input_audio_buffer.append');
    expect(appends).toHaveLength(1);
  });

  it('keeps a fully heard earlier answer in the re-seed when the upstream drops during the next one', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    h.delta('resp_1', 'item_a', 1000);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'first answer words' });
    h.audioDone('resp_1', 'item_a');
    h.responseDone('resp_1'); // generated long before it finished playing
    h.advance(5200); // heard in full, then the caller thinks: the session is now > 5 s old
    h.speechStarted();
    h.speechStopped();
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_b');
    h.delta('resp_2', 'item_b', 2000);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_2', item_id: 'item_b', output_index: 0, content_index: 0, transcript: 'one two three four' });
    h.advance(500); // 500 ms into the second answer
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const seeded = h.toRealtime(before).flatMap((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' ? [e.item.content[0]] : []));
    expect(seeded).toEqual([
      { type: 'output_text', text: 'first answer words' },
      { type: 'output_text', text: 'one' },
    ]);
  });

  it('does not ask the new session again for an answer the caller had interrupted', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 1000);
    h.advance(300);
    h.speechStarted(); // cancel sent; response.done not back yet when the upstream drops
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    expect(types(h.toRealtime(before)).filter((t) => t === 'response.create')).toEqual([]);
  });

  it('re-seeds the caller’s words before the answer even when their transcription arrived late', () => {
    const h = new SessionHarness();
    h.startCall();
    h.realtime({ type: 'input_audio_buffer.committed', item_id: 'item_u1', previous_item_id: null });
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 200);
    h.realtime({ type: 'response.output_audio_transcript.done', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, transcript: 'sure thing' });
    h.realtime({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_u1', content_index: 0, transcript: 'hello' });
    h.advance(6000);
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const before = h.mark();
    h.feed({ kind: 'upstream-open' });
    const seeded = h.toRealtime(before).filter((e) => e.type === 'conversation.item.create');
    expect(seeded.map((e) => (e.type === 'conversation.item.create' && e.item.type === 'message' ? e.item.role : ''))).toEqual(['user', 'assistant']);
  });

  it('gives up on an upstream that accepts every connection and drops it at once', () => {
    const h = new SessionHarness();
    h.startCall();
    let attempts = 0;
    for (let i = 0; i < 50 && !h.session.isEnded; i++) {
      h.advance(100);
      const out = h.feed({ kind: 'upstream-closed', code: 1011, reason: 'overloaded' });
      if (out.some((a) => a.kind === 'connect-upstream')) {
        attempts += 1;
        h.feed({ kind: 'upstream-open' });
      }
    }
    expect(h.session.isEnded).toBe(true);
    expect(attempts).toBe(5); // plus the first connection: six sessions in all, then no more
    expect(h.actions.find((a) => a.action.kind === 'end-call')?.action).toMatchObject({ reason: 'upstream-failed' });
  });

  it('retries a failing connection with backoff, then gives up: REST hang-up and a clean end', () => {
    const h = new SessionHarness();
    h.sendStart();
    const delays: number[] = [];
    let last: ReturnType<SessionHarness['feed']> = [];
    for (let i = 0; i < 10 && !h.session.isEnded; i++) {
      last = h.feed({ kind: 'upstream-closed', code: 1006, reason: 'refused' });
      for (const a of last) if (a.kind === 'connect-upstream') delays.push(a.delayMs);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000]);
    expect(kinds(last).filter((k) => k !== 'clear-timer')).toEqual(['close-upstream', 'hangup-call', 'end-call']);
    expect(last.find((a) => a.kind === 'end-call')).toEqual({ kind: 'end-call', reason: 'upstream-failed', closeCode: 1011 });
  });

  it('starts counting retries afresh after a reconnected session proved healthy', () => {
    const h = new SessionHarness();
    h.startCall();
    for (let i = 0; i < 10; i++) {
      h.advance(5000);
      const out = h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
      expect(out.find((a) => a.kind === 'connect-upstream')).toMatchObject({ delayMs: 0 });
      h.feed({ kind: 'upstream-open' });
    }
    expect(h.session.isEnded).toBe(false);
  });
});

describe('hostile input', () => {
  it('closes the stream with 1008 on a second start, a wrong streamSid or a binary frame', () => {
    const second = new SessionHarness();
    second.startCall();
    const out = second.sendStart({ streamSid: 'MZx', callSid: 'CA9' });
    expect(out.find((a) => a.kind === 'end-call')).toEqual({ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 });

    const wrong = new SessionHarness();
    wrong.startCall();
    const out2 = wrong.feed({ kind: 'twilio', message: { event: 'media', sequenceNumber: '3', streamSid: 'MZother', media: { track: 'inbound', chunk: '1', timestamp: '0', payload: SILENCE_20MS_MULAW } } });
    expect(out2.find((a) => a.kind === 'end-call')).toMatchObject({ reason: 'protocol-violation', closeCode: 1008 });

    const binary = new SessionHarness();
    binary.startCall();
    const out3 = binary.feed({ kind: 'twilio-invalid', reason: 'binary-frame', detail: 'binary', fatal: true });
    expect(out3.find((a) => a.kind === 'end-call')).toMatchObject({ reason: 'protocol-violation', closeCode: 1008 });
  });

  it('ignores malformed frames, warning for the first few of each kind only', () => {
    const h = new SessionHarness();
    h.startCall();
    const levels: string[] = [];
    for (let i = 0; i < 50; i++) {
      for (const a of h.feed({ kind: 'twilio-invalid', reason: 'not-json', detail: 'frame is not valid JSON', fatal: false })) if (a.kind === 'log') levels.push(a.level);
    }
    expect(levels.filter((l) => l === 'warn')).toHaveLength(5);
    expect(levels.filter((l) => l === 'debug')).toHaveLength(45);
    expect(h.session.isEnded).toBe(false);
  });

  it('closes a stream whose media format is not 8 kHz mu-law', () => {
    const h = new SessionHarness();
    const out = h.sendStart({ mediaFormat: { encoding: 'audio/x-alaw', sampleRate: 8000, channels: 1 } });
    expect(kinds(out)).toEqual(['end-call']);
    expect(out.find((a) => a.kind === 'end-call')).toMatchObject({ reason: 'protocol-violation', closeCode: 1008 });
  });

  it('counts a socket closed for an oversized frame as a violation, not a hang-up', () => {
    const h = new SessionHarness();
    h.startCall();
    expect(h.feed({ kind: 'twilio-closed', code: 1009 }).find((a) => a.kind === 'end-call')).toMatchObject({ reason: 'protocol-violation' });
  });

  it('ignores oversized media payloads and media before start', () => {
    // one frame per append, so each frame's fate shows on its own
    const h = new SessionHarness(defaultAgentConfig({ inputAppendMs: 20 }));
    expect(kinds(h.callerMedia(SILENCE_20MS_MULAW))).toEqual([]);
    h.startCall();
    const big = Buffer.alloc(16_000, 0xff).toString('base64');
    expect(kinds(h.callerMedia(big))).toEqual([]);
    expect(kinds(h.callerMedia(SILENCE_20MS_MULAW))).toEqual(['input_audio_buffer.append']);
  });

  it('refuses a start that is not authorised: nothing goes upstream', () => {
    const h = new SessionHarness(defaultAgentConfig(), { authorizeStart: () => ({ ok: false, reason: 'expired' }) });
    h.sendStart({ customParameters: { callToken: 'x' } });
    expect(kinds(h.actions.map((a) => a.action))).toEqual(['end-call']);
    expect(h.actions.find((a) => a.action.kind === 'end-call')?.action).toEqual({ kind: 'end-call', reason: 'unauthorized', closeCode: 1008 });
  });

  it('ends a started call whose start a later check refused (start-refused) as unauthorised: 1008, no REST hang-up', () => {
    const h = new SessionHarness();
    h.startCall();
    h.speechStopped();
    const before = h.mark();
    const out = h.feed({ kind: 'start-refused', reason: 'call-status: Twilio reports the call as completed' });
    expect(out.filter((a) => a.kind !== 'log')).toEqual([{ kind: 'end-call', reason: 'unauthorized', closeCode: 1008 }]);
    expect(h.actionsOf('hangup-call', before)).toEqual([]);
    expect(h.session.endReason).toBe('unauthorized');
    expect(out.find((a) => a.kind === 'log')).toMatchObject({ msg: 'call ended', fields: { reason: 'unauthorized', authReason: 'call-status: Twilio reports the call as completed' } });
    // Ended: nothing more goes anywhere.
    expect(h.speechStopped()).toEqual([]);
  });

  it('is isolated: two sessions share no state', () => {
    const a = new SessionHarness();
    const b = new SessionHarness();
    a.startCall();
    b.startCall();
    for (const h of [a, b]) {
      h.speechStopped();
      h.fullResponse('resp_1', 'item_a', 1000);
    }
    a.advance(300);
    b.advance(700);
    const beforeA = a.mark();
    const beforeB = b.mark();
    a.speechStarted();
    b.speechStarted();
    expect(truncates(a.toRealtime(beforeA))[0]?.audio_end_ms).toBe(300);
    expect(truncates(b.toRealtime(beforeB))[0]?.audio_end_ms).toBe(700);
  });
});

describe('guarantees a one-line change would break', () => {
  it('truncates (never deletes, never skips) an item whose audio stalled mid-generation and ran dry in Twilio', () => {
    // 600 ms sent and heard in full, then the generation stalls: Twilio's buffer is empty, but the
    // item is not done, so the caller heard 600 ms of an unfinished item, which must be truncated there.
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 600);
    h.advance(2000);
    const before = h.mark();
    h.speechStarted();
    const sent = h.toRealtime(before);
    expect(sent).toContainEqual({ type: 'conversation.item.truncate', item_id: 'item_a', content_index: 0, audio_end_ms: 600 });
    expect(sent.filter((e) => e.type === 'conversation.item.delete')).toEqual([]);
  });

  it('refuses mark echoes for another stream, or before start, as protocol violations', () => {
    const other = new SessionHarness();
    other.startCall();
    const out = other.feed({ kind: 'twilio', message: { event: 'mark', sequenceNumber: '3', streamSid: 'MZ0000000000000000000000000000ffff', mark: { name: 'cb:0:1' } } });
    expect(out.find((a) => a.kind === 'end-call')).toEqual({ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 });

    const early = new SessionHarness();
    const outEarly = early.feed({ kind: 'twilio', message: { event: 'mark', sequenceNumber: '1', streamSid: STREAM_SID, mark: { name: 'cb:0:1' } } });
    expect(outEarly.find((a) => a.kind === 'end-call')).toEqual({ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 });
  });

  it('after an upstream loss, keeps exactly the words the caller heard, cut at the played position', () => {
    const h = SessionHarness.answering();
    // Ten words over 2000 ms of audio; the caller hears 700 ms of it before the upstream dies.
    h.realtime({ type: 'response.output_audio_transcript.delta', response_id: 'resp_1', item_id: 'item_a', output_index: 0, content_index: 0, delta: 'one two three four five six seven eight nine ten' });
    for (let i = 0; i < 20; i++) h.delta('resp_1', 'item_a', 100);
    h.advance(700);
    h.feed({ kind: 'upstream-closed', code: 1006, reason: 'dropped' });
    // 700 / 2000 of ten words: three whole words were heard.
    expect(h.session.transcript.filter((t) => t.role === 'assistant')).toEqual([{ role: 'assistant', itemId: 'item_a', text: 'one two three' }]);
    h.feed({ kind: 'upstream-open' });
    expect(h.toRealtime()).toContainEqual({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'one two three' }] },
    });
  });
});
