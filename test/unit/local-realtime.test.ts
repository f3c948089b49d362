import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ErrorEvent } from '../../src/realtime/events.js';
import {
  Conversation,
  IdSource,
  type AnswerSource,
  type LocalServerEvent,
  type Outcome,
} from '../../src/tooling/local-model/conversation.js';
import { startLocalRealtimeServer, type LocalRealtimeServer } from '../../src/tooling/local-model/server.js';
import { EnergyVad, thresholdToDbfs, type VadEvent } from '../../src/tooling/local-model/vad.js';

// ---------------------------------------------------------------- synthetic audio

const RATE = 24_000;
const SAMPLES_PER_MS = 24;

function tone(ms: number, dbfs = -20, hz = 440): Int16Array {
  const amplitude = 32767 * 10 ** (dbfs / 20);
  const out = new Int16Array(ms * SAMPLES_PER_MS);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / RATE));
  return out;
}

function silence(ms: number): Int16Array {
  return new Int16Array(ms * SAMPLES_PER_MS);
}

function noise(ms: number, dbfs: number, seed = 1): Int16Array {
  let x = seed;
  const amplitude = 32767 * 10 ** (dbfs / 20);
  const out = new Int16Array(ms * SAMPLES_PER_MS);
  for (let i = 0; i < out.length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out[i] = Math.round(amplitude * ((x / 2147483648) * 2 - 1));
  }
  return out;
}

function concat(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function toBase64(samples: Int16Array): string {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => b.writeInt16LE(s, i * 2));
  return b.toString('base64');
}

function fromBase64(text: string): Int16Array {
  const b = Buffer.from(text, 'base64');
  const out = new Int16Array(b.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readInt16LE(i * 2);
  return out;
}

/** Splits audio into appends of uneven sizes, as a bridge with a resampler would send. */
function* unevenChunks(samples: Int16Array): Generator<Int16Array> {
  const sizes = [480, 37, 1200, 5, 960, 2401];
  let i = 0;
  let k = 0;
  while (i < samples.length) {
    const n = sizes[k++ % sizes.length] ?? 480;
    yield samples.subarray(i, i + n);
    i += n;
  }
}

/** 1 s silence, 600 ms tone at -20 dBFS, 1 s silence. */
const UTTERANCE = concat(silence(1000), tone(600), silence(1000));

// ---------------------------------------------------------------- conversation helpers

function newConversation(answer?: AnswerSource): Conversation {
  const conv = new Conversation({ ids: new IdSource('test'), ...(answer ? { answer: () => answer } : {}) });
  conv.open(Date.UTC(2026, 0, 1));
  return conv;
}

function send(conv: Conversation, event: Record<string, unknown> & { type: string }): Outcome {
  return conv.handle(event);
}

function events(conv: Conversation, event: Record<string, unknown> & { type: string }): LocalServerEvent[] {
  return send(conv, event).events;
}

/** The event interface(s) whose `type` admits T (some interfaces share several types). */
type EventOf<T extends string, E = LocalServerEvent> = E extends { type: infer U } ? (T extends U ? E : never) : never;

function only<T extends LocalServerEvent['type']>(list: LocalServerEvent[], type: T): EventOf<T> {
  const found = list.filter((e) => e.type === type);
  expect(found, `exactly one ${type} in ${list.map((e) => e.type).join(', ')}`).toHaveLength(1);
  return found[0] as EventOf<T>;
}

function errorOf(list: LocalServerEvent[]): ErrorEvent['error'] {
  return only(list, 'error').error;
}

function appendAudio(conv: Conversation, samples: Int16Array): LocalServerEvent[] {
  const out: LocalServerEvent[] = [];
  for (const chunk of unevenChunks(samples)) out.push(...events(conv, { type: 'input_audio_buffer.append', audio: toBase64(chunk) }));
  return out;
}

function manualTurns(conv: Conversation): void {
  const e = events(conv, {
    type: 'session.update',
    session: { type: 'realtime', audio: { input: { turn_detection: null } } },
  });
  expect(e.map((x) => x.type)).toEqual(['session.updated']);
}

function pumpAll(conv: Conversation, chunkMs = 100): LocalServerEvent[] {
  const out: LocalServerEvent[] = [];
  for (let guard = 0; conv.streaming && guard < 10_000; guard++) out.push(...conv.pump(chunkMs));
  return out;
}

const fixedAnswer = (ms: number, transcript = 'Hello there, how can I help you today?'): AnswerSource => () => ({
  audio: tone(ms, -20, 330),
  transcript,
});

function startResponse(conv: Conversation): { responseId: string; itemId: string } {
  const e = events(conv, { type: 'response.create' });
  const created = only(e, 'response.created');
  const added = only(e, 'response.output_item.added');
  return { responseId: created.response.id, itemId: added.item.id };
}

// ---------------------------------------------------------------- VAD

describe('EnergyVad', () => {
  function run(vad: EnergyVad, samples: Int16Array): VadEvent[] {
    const out: VadEvent[] = [];
    for (const chunk of unevenChunks(samples)) out.push(...vad.push(chunk));
    return out;
  }

  it('reports speech_started with prefix padding subtracted, in input-buffer time', () => {
    const vad = new EnergyVad({ threshold: 0.5, prefixPaddingMs: 300, silenceDurationMs: 500 });
    const ev = run(vad, UTTERANCE);
    expect(ev).toEqual([
      { type: 'speech_started', audioStartMs: 700, onsetMs: 1000 },
      { type: 'speech_stopped', audioEndMs: 2100, lastSpeechMs: 1600 },
    ]);
  });

  it('reports speech_stopped only after silence_duration_ms, with audio_end_ms including that silence', () => {
    const vad = new EnergyVad({ threshold: 0.5, prefixPaddingMs: 0, silenceDurationMs: 200 });
    expect(vad.push(concat(silence(500), tone(400), silence(190)))).toEqual([{ type: 'speech_started', audioStartMs: 500, onsetMs: 500 }]);
    expect(vad.speaking).toBe(true);
    expect(vad.push(silence(10))).toEqual([{ type: 'speech_stopped', audioEndMs: 1100, lastSpeechMs: 900 }]);
  });

  it('gives the same answer for one large append and for appends of one sample', () => {
    const config = { threshold: 0.5, prefixPaddingMs: 300, silenceDurationMs: 500 };
    const whole = new EnergyVad(config).push(UTTERANCE);
    const tiny = new EnergyVad(config);
    const bySample: VadEvent[] = [];
    for (let i = 0; i < UTTERANCE.length; i++) bySample.push(...tiny.push(UTTERANCE.subarray(i, i + 1)));
    expect(bySample).toEqual(whole);
  });

  it('clamps audio_start_ms at 0 when speech begins inside the prefix padding', () => {
    const vad = new EnergyVad({ threshold: 0.5, prefixPaddingMs: 300, silenceDurationMs: 200 });
    expect(vad.push(concat(silence(100), tone(300)))[0]).toEqual({ type: 'speech_started', audioStartMs: 0, onsetMs: 100 });
  });

  it('ignores clicks shorter than the minimum speech duration', () => {
    const vad = new EnergyVad({ threshold: 0.5, prefixPaddingMs: 300, silenceDurationMs: 200 });
    expect(vad.push(concat(silence(500), noise(30, 0), silence(500), noise(50, -6, 7), silence(500)))).toEqual([]);
  });

  it('needs louder speech for a higher threshold (monotonic mapping, 0.5 is -45 dBFS)', () => {
    expect(thresholdToDbfs(0.5)).toBe(-45);
    for (let t = 0; t < 1; t += 0.1) expect(thresholdToDbfs(t + 0.1)).toBeGreaterThan(thresholdToDbfs(t));
    // A -40 dBFS peak tone has an RMS of about -43 dBFS.
    const quiet = concat(silence(200), tone(500, -40), silence(500));
    expect(new EnergyVad({ threshold: 0.5, prefixPaddingMs: 0, silenceDurationMs: 200 }).push(quiet).map((e) => e.type)).toEqual([
      'speech_started',
      'speech_stopped',
    ]);
    expect(new EnergyVad({ threshold: 0.7, prefixPaddingMs: 0, silenceDurationMs: 200 }).push(quiet)).toEqual([]);
  });

  it('keeps a turn going through a dip smaller than the hysteresis', () => {
    const vad = new EnergyVad({ threshold: 0.5, prefixPaddingMs: 0, silenceDurationMs: 200 });
    // -43 dBFS RMS starts; a 400 ms dip to about -47 dBFS RMS is below the start level but within 6 dB.
    const ev = vad.push(concat(silence(200), tone(300, -40), tone(400, -44), tone(300, -40), silence(400)));
    expect(ev.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped']);
    expect(ev[1]).toMatchObject({ lastSpeechMs: 1200 });
  });
});

// ---------------------------------------------------------------- session

describe('Conversation: session', () => {
  it('opens with session.created in the GA shape and its defaults', () => {
    const conv = new Conversation({ ids: new IdSource('test') });
    const [created] = conv.open(Date.UTC(2026, 0, 1)).events;
    expect(created?.type).toBe('session.created');
    expect(created).toMatchObject({
      session: {
        type: 'realtime',
        object: 'realtime.session',
        audio: {
          input: {
            format: { type: 'audio/pcm', rate: 24000 },
            turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 200, create_response: true, interrupt_response: true },
          },
          output: { format: { type: 'audio/pcm', rate: 24000 } },
        },
      },
    });
  });

  it('rejects session.update without session.type with the real error', () => {
    const conv = newConversation();
    const out = send(conv, { type: 'session.update', event_id: 'evt_1', session: { instructions: 'x' } });
    expect(out.close).toBeNull();
    expect(out.events[0]).toMatchObject({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        code: 'missing_required_parameter',
        message: "Missing required parameter: 'session.type'.",
        param: 'session.type',
        event_id: 'evt_1',
      },
    });
  });

  it('answers a beta-shaped session.update with beta_api_shape_disabled and close code 4000', () => {
    const conv = newConversation();
    const out = send(conv, { type: 'session.update', session: { input_audio_format: 'pcm16', turn_detection: { type: 'server_vad' } } });
    expect(errorOf(out.events).code).toBe('beta_api_shape_disabled');
    expect(out.close).toEqual({ code: 4000, reason: 'beta_api_shape_disabled' });
  });

  it('validates formats and turn detection fields', () => {
    const conv = newConversation();
    const upd = (input: Record<string, unknown>) => errorOf(events(conv, { type: 'session.update', session: { type: 'realtime', audio: { input } } }));
    expect(upd({ format: { type: 'audio/pcm', rate: 16000 } })).toMatchObject({ code: 'invalid_value', param: 'session.audio.input.format.rate' });
    expect(upd({ format: { type: 'audio/wav' } })).toMatchObject({
      code: 'invalid_value',
      message: "Invalid value: 'audio/wav'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'.",
    });
    expect(upd({ turn_detection: { type: 'server_vad', threshold: 1.5 } })).toMatchObject({ code: 'decimal_above_max_value' });
    expect(upd({ turn_detection: { type: 'server_vad', silence_duration_ms: 2.5 } })).toMatchObject({ code: 'invalid_type' });
    expect(upd({ turn_detection: { type: 'server_vad', prefix_padding_ms: -1 } })).toMatchObject({ code: 'integer_below_min_value' });
    expect(upd({ turn_detection: { type: 'semantic_vad', threshold: 0.5 } })).toMatchObject({
      code: 'unknown_parameter',
      param: 'session.audio.input.turn_detection.threshold',
    });
  });

  it('merges session.update into the session and answers with session.updated', () => {
    const conv = newConversation();
    const e = events(conv, {
      type: 'session.update',
      session: {
        type: 'realtime',
        instructions: 'Be brief.',
        audio: {
          input: { format: { type: 'audio/pcmu' }, turn_detection: { type: 'server_vad', threshold: 0.6, create_response: false } },
          output: { voice: 'marin' },
        },
      },
    });
    const updated = only(e, 'session.updated');
    expect(updated.session).toMatchObject({
      instructions: 'Be brief.',
      audio: {
        input: {
          format: { type: 'audio/pcmu' },
          turn_detection: { type: 'server_vad', threshold: 0.6, prefix_padding_ms: 300, silence_duration_ms: 200, create_response: false, interrupt_response: true },
        },
        output: { voice: 'marin', format: { type: 'audio/pcm', rate: 24000 } },
      },
    });
    expect(conv.session.audio.output.voice).toBe('marin');
  });
});

// ---------------------------------------------------------------- input audio

describe('Conversation: input audio buffer', () => {
  it('rejects invalid base64 audio and keeps going', () => {
    const conv = newConversation();
    expect(errorOf(events(conv, { type: 'input_audio_buffer.append', audio: 'not base64!' }))).toMatchObject({ code: 'invalid_value', param: 'audio' });
    expect(events(conv, { type: 'input_audio_buffer.append', audio: toBase64(silence(20)) })).toEqual([]);
  });

  it('rejects a commit of less than 100 ms with the real message', () => {
    const conv = newConversation();
    manualTurns(conv);
    events(conv, { type: 'input_audio_buffer.append', audio: toBase64(silence(50)) });
    expect(errorOf(events(conv, { type: 'input_audio_buffer.commit', event_id: 'c1' }))).toEqual({
      type: 'invalid_request_error',
      code: 'input_audio_buffer_commit_empty',
      message: 'Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has 50.00ms of audio.',
      param: null,
      event_id: 'c1',
    });
  });

  it('commits a manual turn and clears the buffer', () => {
    const conv = newConversation();
    manualTurns(conv);
    events(conv, { type: 'input_audio_buffer.append', audio: toBase64(tone(300)) });
    const committed = events(conv, { type: 'input_audio_buffer.commit' });
    expect(committed.map((e) => e.type)).toEqual(['input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done']);
    expect(conv.items[0]).toMatchObject({ role: 'user', audioMs: 300 });
    events(conv, { type: 'input_audio_buffer.append', audio: toBase64(tone(300)) });
    expect(events(conv, { type: 'input_audio_buffer.clear' }).map((e) => e.type)).toEqual(['input_audio_buffer.cleared']);
    expect(errorOf(events(conv, { type: 'input_audio_buffer.commit' })).code).toBe('input_audio_buffer_commit_empty');
  });

  it('runs a server_vad turn: speech events, commit, transcription and an automatic response', () => {
    let heard: Int16Array | null = null;
    const conv = newConversation((ctx) => {
      heard = ctx.lastUserAudio;
      return { audio: tone(200), transcript: `you said ${ctx.lastUserTranscript ?? 'nothing'}` };
    });
    events(conv, { type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } });
    const out = appendAudio(conv, UTTERANCE);
    expect(out.map((e) => e.type)).toEqual([
      'input_audio_buffer.speech_started',
      'input_audio_buffer.speech_stopped',
      'input_audio_buffer.committed',
      'conversation.item.added',
      'conversation.item.input_audio_transcription.completed',
      'conversation.item.done',
      'response.created',
      'response.output_item.added',
      'conversation.item.added',
      'response.content_part.added',
    ]);
    const started = only(out, 'input_audio_buffer.speech_started');
    const stopped = only(out, 'input_audio_buffer.speech_stopped');
    expect(started.audio_start_ms).toBe(700);
    expect(stopped.audio_end_ms).toBe(1800);
    expect(stopped.item_id).toBe(started.item_id);
    expect(only(out, 'input_audio_buffer.committed')).toMatchObject({ item_id: started.item_id, previous_item_id: null });
    const transcript = only(out, 'conversation.item.input_audio_transcription.completed');
    expect(transcript.transcript).toBe('(speech 1100 ms)');
    // The turn's audio, prefix padding included, is what the answer source gets.
    expect(heard).not.toBeNull();
    expect((heard as Int16Array | null)?.length).toBe((1800 - 700) * SAMPLES_PER_MS);
    expect(conv.streaming).not.toBeNull();
    const done = pumpAll(conv);
    expect(only(done, 'response.output_audio_transcript.done').transcript).toBe('you said (speech 1100 ms)');
  });

  it('creates no response after a turn when create_response is false', () => {
    const conv = newConversation();
    events(conv, { type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } } });
    const out = appendAudio(conv, UTTERANCE);
    expect(out.some((e) => e.type === 'input_audio_buffer.committed')).toBe(true);
    expect(out.some((e) => e.type === 'response.created')).toBe(false);
    expect(out.some((e) => e.type === 'conversation.item.input_audio_transcription.completed')).toBe(false);
  });

  it('cancels the active response itself on speech start when interrupt_response is on', () => {
    const conv = newConversation(fixedAnswer(3000));
    const { responseId } = startResponse(conv);
    conv.pump(100);
    const out = appendAudio(conv, concat(silence(500), tone(200)));
    const types = out.map((e) => e.type);
    expect(types[0]).toBe('input_audio_buffer.speech_started');
    const done = only(out, 'response.done');
    expect(done.response).toMatchObject({ id: responseId, status: 'cancelled', status_details: { type: 'cancelled', reason: 'turn_detected' } });
    expect(conv.streaming).toBeNull();
  });

  it("lets a client cancel that races the server's own turn_detected cancel fail with response_cancel_not_active", () => {
    const conv = newConversation(fixedAnswer(3000));
    startResponse(conv);
    conv.pump(100);
    const cancelledByServer = appendAudio(conv, concat(silence(300), tone(200)));
    expect(only(cancelledByServer, 'response.done').response.status).toBe('cancelled');
    expect(errorOf(events(conv, { type: 'response.cancel' })).code).toBe('response_cancel_not_active');
  });

  it('ends a semantic_vad turn after the pause its eagerness allows', () => {
    const conv = newConversation();
    events(conv, {
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: 'high', create_response: false } } } },
    });
    const out = appendAudio(conv, concat(silence(500), tone(400), silence(300)));
    expect(only(out, 'input_audio_buffer.speech_stopped').audio_end_ms).toBe(900 + 250);
  });

  it('keeps the committed turn when the answer source throws, and reports a server_error', () => {
    const conv = newConversation(() => {
      throw new Error('no voice today');
    });
    const out = appendAudio(conv, UTTERANCE);
    expect(out.map((e) => e.type)).toEqual([
      'input_audio_buffer.speech_started',
      'input_audio_buffer.speech_stopped',
      'input_audio_buffer.committed',
      'conversation.item.added',
      'conversation.item.done',
      'error',
    ]);
    expect(errorOf(out)).toMatchObject({ type: 'server_error', message: 'The local server failed: no voice today' });
    expect(conv.items).toHaveLength(1);
    expect(conv.streaming).toBeNull();
  });

  it('decodes G.711 mu-law input and still detects speech in input-buffer time', () => {
    const conv = newConversation();
    events(conv, {
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' }, turn_detection: { type: 'server_vad', create_response: false } } } },
    });
    // 8 kHz mu-law: 0xFF is zero; a square wave of ±~8000 stands in for speech.
    const mulaw = Buffer.alloc(2600 * 8, 0xff);
    for (let i = 1000 * 8; i < 1600 * 8; i++) mulaw[i] = Math.floor(i / 10) % 2 === 0 ? 0x9f : 0x1f;
    const out = events(conv, { type: 'input_audio_buffer.append', audio: mulaw.toString('base64') });
    expect(only(out, 'input_audio_buffer.speech_started').audio_start_ms).toBe(700);
    expect(conv.inputMs).toBe(2600);
  });
});

// ---------------------------------------------------------------- responses

describe('Conversation: responses', () => {
  it('streams a response in the GA event order and completes it', () => {
    const answer = tone(250, -20, 330);
    const conv = newConversation(() => ({ audio: answer, transcript: 'abcdefghij' }));
    manualTurns(conv);
    const head = events(conv, { type: 'response.create' });
    expect(head.map((e) => e.type)).toEqual(['response.created', 'response.output_item.added', 'conversation.item.added', 'response.content_part.added']);
    const created = only(head, 'response.created');
    expect(created.response).toMatchObject({ object: 'realtime.response', status: 'in_progress', output: [] });
    expect(created.response.id).toMatch(/^resp_/);
    const item = only(head, 'response.output_item.added').item;
    expect(item).toMatchObject({ type: 'message', role: 'assistant', status: 'in_progress', content: [] });
    // OpenAI's schema names the part 'audio' in these events (the item's content says 'output_audio').
    expect(only(head, 'response.content_part.added').part.type).toBe('audio');

    const rest = pumpAll(conv, 100);
    expect(rest.map((e) => e.type)).toEqual([
      'response.output_audio.delta',
      'response.output_audio_transcript.delta',
      'response.output_audio.delta',
      'response.output_audio_transcript.delta',
      'response.output_audio.delta',
      'response.output_audio_transcript.delta',
      'response.output_audio.done',
      'response.output_audio_transcript.done',
      'response.content_part.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done',
    ]);
    const deltas = rest.flatMap((e) => (e.type === 'response.output_audio.delta' ? [e] : []));
    for (const d of deltas) expect(d).toMatchObject({ response_id: created.response.id, item_id: item.id, output_index: 0, content_index: 0 });
    expect(concat(...deltas.map((d) => fromBase64(d.delta)))).toEqual(answer);
    const text = rest.flatMap((e) => (e.type === 'response.output_audio_transcript.delta' ? [e.delta] : [])).join('');
    expect(text).toBe('abcdefghij');
    const done = only(rest, 'response.done');
    expect(done.response).toMatchObject({ id: created.response.id, status: 'completed', output: [{ id: item.id, status: 'completed' }] });
    expect(conv.items.at(-1)).toMatchObject({ role: 'assistant', audioMs: 250, transcript: 'abcdefghij' });
  });

  it('answers a second response.create with conversation_already_has_active_response', () => {
    const conv = newConversation(fixedAnswer(1000));
    const { responseId } = startResponse(conv);
    expect(errorOf(events(conv, { type: 'response.create', event_id: 'evt_2' }))).toEqual({
      type: 'invalid_request_error',
      code: 'conversation_already_has_active_response',
      message: `Conversation already has an active response in progress: ${responseId}. Wait until the response is finished before creating a new one.`,
      param: null,
      event_id: 'evt_2',
    });
    pumpAll(conv);
    expect(events(conv, { type: 'response.create' })[0]?.type).toBe('response.created');
  });

  it('cancel ends the response with status cancelled and no further deltas', () => {
    const conv = newConversation(fixedAnswer(1000, '0123456789'));
    const { responseId, itemId } = startResponse(conv);
    conv.pump(100);
    conv.pump(100);
    const out = events(conv, { type: 'response.cancel' });
    expect(out.map((e) => e.type)).toEqual([
      'response.output_audio.done',
      'response.output_audio_transcript.done',
      'response.content_part.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done',
    ]);
    expect(only(out, 'response.done').response).toMatchObject({
      id: responseId,
      status: 'cancelled',
      status_details: { type: 'cancelled', reason: 'client_cancelled' },
      output: [{ id: itemId, status: 'incomplete', content: [{ type: 'output_audio', transcript: '01' }] }],
    });
    expect(conv.pump(100)).toEqual([]);
    expect(conv.items.find((i) => i.id === itemId)).toMatchObject({ audioMs: 200, transcript: '01' });
  });

  it('rejects a cancel with nothing active, or naming another response, with the real message', () => {
    const conv = newConversation(fixedAnswer(500));
    const expected = { code: 'response_cancel_not_active', message: 'Cancellation failed: no active response found' };
    expect(errorOf(events(conv, { type: 'response.cancel' }))).toMatchObject(expected);
    startResponse(conv);
    expect(errorOf(events(conv, { type: 'response.cancel', response_id: 'resp_other' }))).toMatchObject(expected);
    expect(conv.streaming).not.toBeNull();
  });

  it('encodes output audio as G.711 when the session asks for audio/pcmu', () => {
    const conv = newConversation(fixedAnswer(300));
    events(conv, { type: 'session.update', session: { type: 'realtime', audio: { output: { format: { type: 'audio/pcmu' } } } } });
    startResponse(conv);
    const deltas = pumpAll(conv, 100).flatMap((e) => (e.type === 'response.output_audio.delta' ? [e] : []));
    expect(deltas.map((d) => Buffer.from(d.delta, 'base64').length)).toEqual([800, 800, 800]);
  });
});

// ---------------------------------------------------------------- items

describe('Conversation: items and truncation', () => {
  function conversationWithAnswer(producedMs: number): { conv: Conversation; itemId: string } {
    const conv = newConversation(fixedAnswer(1000, 'abcdefghijklmnopqrst'));
    const { itemId } = startResponse(conv);
    for (let ms = 0; ms < producedMs; ms += 50) conv.pump(50);
    return { conv, itemId };
  }

  it('validates truncate in the real order: type, minimum, item, kind, length', () => {
    const { conv, itemId } = conversationWithAnswer(200);
    const truncate = (item_id: string, audio_end_ms: unknown) => errorOf(events(conv, { type: 'conversation.item.truncate', item_id, content_index: 0, audio_end_ms }));
    expect(truncate('item_nope', 12.5)).toMatchObject({
      code: 'invalid_type',
      message: "Invalid type for 'audio_end_ms': expected an integer, but got a decimal number instead.",
    });
    expect(truncate('item_nope', -5)).toMatchObject({
      code: 'integer_below_min_value',
      message: "Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, but got -5 instead.",
    });
    expect(truncate('item_nope', 10)).toMatchObject({ code: 'item_truncate_invalid_item_id', message: 'Item with item_id not found: item_nope' });
    expect(truncate(itemId, 250)).toMatchObject({ code: 'invalid_value', message: 'Audio content of 200ms is already shorter than 250ms' });
  });

  it('rejects truncate beyond the produced audio with the real message', () => {
    const { conv, itemId } = conversationWithAnswer(450);
    events(conv, { type: 'response.cancel' });
    expect(errorOf(events(conv, { type: 'conversation.item.truncate', item_id: itemId, content_index: 0, audio_end_ms: 2535 })).message).toBe(
      'Audio content of 450ms is already shorter than 2535ms',
    );
  });

  it('rejects truncating a user item or an answer with no audio yet', () => {
    const conv = newConversation(fixedAnswer(1000));
    const user = only(
      events(conv, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } }),
      'conversation.item.added',
    ).item.id;
    const { itemId } = startResponse(conv);
    const expected = { code: 'unsupported_content_type', message: 'Only model output audio messages can be truncated' };
    for (const id of [user ?? '', itemId]) {
      expect(errorOf(events(conv, { type: 'conversation.item.truncate', item_id: id, content_index: 0, audio_end_ms: 0 }))).toMatchObject(expected);
    }
  });

  it('truncates to the heard audio and cuts the transcript proportionally', () => {
    const { conv, itemId } = conversationWithAnswer(600);
    events(conv, { type: 'response.cancel' });
    const out = events(conv, { type: 'conversation.item.truncate', item_id: itemId, content_index: 0, audio_end_ms: 250 });
    expect(out).toEqual([expect.objectContaining({ type: 'conversation.item.truncated', item_id: itemId, content_index: 0, audio_end_ms: 250 })]);
    // 250 of 1000 ms → 5 of 20 characters.
    expect(conv.items.find((i) => i.id === itemId)).toMatchObject({ audioMs: 250, transcript: 'abcde' });
    expect(errorOf(events(conv, { type: 'conversation.item.truncate', item_id: itemId, content_index: 0, audio_end_ms: 300 })).message).toBe(
      'Audio content of 250ms is already shorter than 300ms',
    );
  });

  it('creates, retrieves and deletes items, assigning ids and honouring previous_item_id', () => {
    const conv = newConversation();
    const a = only(events(conv, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'one' }] } }), 'conversation.item.added');
    expect(a.item.id).toMatch(/^item_/);
    expect(a.previous_item_id).toBeNull();
    const b = events(conv, {
      type: 'conversation.item.create',
      previous_item_id: 'root',
      item: { id: 'item_mine', type: 'message', role: 'system', content: [{ type: 'input_text', text: 'zero' }] },
    });
    expect(b.map((e) => e.type)).toEqual(['conversation.item.added', 'conversation.item.done']);
    expect(conv.items.map((i) => i.text)).toEqual(['zero', 'one']);
    expect(only(events(conv, { type: 'conversation.item.retrieve', item_id: 'item_mine' }), 'conversation.item.retrieved').item).toMatchObject({ role: 'system' });
    expect(events(conv, { type: 'conversation.item.delete', item_id: 'item_mine' })).toEqual([
      expect.objectContaining({ type: 'conversation.item.deleted', item_id: 'item_mine' }),
    ]);
    expect(errorOf(events(conv, { type: 'conversation.item.delete', item_id: 'item_mine' }))).toMatchObject({
      code: 'item_delete_invalid_item_id',
      message: "Error deleting item: the item with id 'item_mine' does not exist.",
    });
  });

  it('answers unknown event types and non-JSON frames with errors and never closes', () => {
    const conv = newConversation();
    const unknown = send(conv, { type: 'response.audio.delta_please' });
    expect(unknown.close).toBeNull();
    expect(errorOf(unknown.events)).toMatchObject({ code: 'invalid_value', param: 'type' });
    expect(errorOf(unknown.events).message).toMatch(/^Invalid value: 'response.audio.delta_please'\. Supported values are: 'session.update', /);
    const garbage = conv.handleText('{not json');
    expect(garbage.close).toBeNull();
    expect(errorOf(garbage.events).code).toBe('invalid_json');
    expect(errorOf(conv.handleText('{"no":"type"}').events).code).toBe('missing_required_parameter');
  });

  it('gives every server event a unique event id', () => {
    const conv = newConversation(fixedAnswer(500));
    startResponse(conv);
    const all = pumpAll(conv, 20);
    expect(new Set(all.map((e) => e.event_id)).size).toBe(all.length);
  });
});

// ---------------------------------------------------------------- over a socket

interface ClientFrame extends Record<string, unknown> {
  type: string;
}

class TestClient {
  readonly frames: ClientFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private listeners: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ClientFrame);
      for (const l of this.listeners) l();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  send(event: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(event));
  }

  next(type: string, timeoutMs = 3000): Promise<ClientFrame> {
    return this.until(() => this.frames.find((f) => f.type === type), timeoutMs, type);
  }

  until<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const v = probe();
        if (v === undefined) return false;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve(v);
        return true;
      };
      const listener = (): void => void check();
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      if (!check()) this.listeners.push(listener);
    });
  }
}

function connect(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const client = new TestClient(ws);
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('local Realtime server over WebSocket', () => {
  let server: LocalRealtimeServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('streams a response to a real ws client and records both directions', async () => {
    server = await startLocalRealtimeServer({ speed: Infinity, firstDeltaDelayMs: 0, answer: fixedAnswer(500, 'hello') });
    expect(server.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/realtime\?model=gpt-realtime$/);
    const client = await connect(server.url);
    expect((await client.next('session.created')).type).toBe('session.created');
    client.send({ type: 'response.create', event_id: 'evt_a' });
    const done = await client.next('response.done');
    expect(done['response']).toMatchObject({ status: 'completed' });
    expect(client.frames.filter((f) => f.type === 'response.output_audio.delta')).toHaveLength(5);
    expect(server.received.map((r) => r.event.type)).toEqual(['response.create']);
    expect(server.received[0]?.connectionId).toBe(1);
    expect(server.sent.map((r) => r.event.type)).toEqual(client.frames.map((f) => f.type));
    client.ws.close();
    expect(await server.waitForClose(1)).toMatchObject({ code: 1005 });
    expect(server.connectionsClosed).toBe(1);
  });

  it('requires the API key when one is configured (Bearer or api-key header), else 401', async () => {
    server = await startLocalRealtimeServer({ apiKey: 'sk-local' });
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(server?.url ?? '');
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('error', () => undefined);
    });
    expect(status).toBe(401);
    const bearer = await connect(server.url, { Authorization: 'Bearer sk-local' });
    await bearer.next('session.created');
    const azure = await connect(server.url, { 'api-key': 'sk-local' });
    await azure.next('session.created');
    expect(server.connectionsOpen).toBe(2);
  });

  it('rejects the beta handshake with beta_api_shape_disabled and close code 4000', async () => {
    server = await startLocalRealtimeServer();
    const client = await connect(server.url, { 'OpenAI-Beta': 'realtime=v1' });
    expect((await client.next('error'))['error']).toMatchObject({ code: 'beta_api_shape_disabled' });
    expect((await client.closed).code).toBe(4000);
    expect(client.frames.some((f) => f.type === 'session.created')).toBe(false);
  });

  it('paces deltas and sends none after a cancel', async () => {
    server = await startLocalRealtimeServer({ speed: 1, chunkMs: 100, firstDeltaDelayMs: 0, answer: fixedAnswer(3000) });
    const client = await connect(server.url);
    await client.next('session.created');
    client.send({ type: 'response.create' });
    await client.until(() => (client.frames.filter((f) => f.type === 'response.output_audio.delta').length >= 2 ? true : undefined), 3000, '2 deltas');
    client.send({ type: 'response.cancel' });
    const done = await client.next('response.done');
    expect(done['response']).toMatchObject({ status: 'cancelled', status_details: { reason: 'client_cancelled' } });
    const deltasAtDone = client.frames.filter((f) => f.type === 'response.output_audio.delta').length;
    expect(deltasAtDone).toBeLessThan(6);
    await sleep(300);
    expect(client.frames.filter((f) => f.type === 'response.output_audio.delta')).toHaveLength(deltasAtDone);
  });

  it('paces generation at the configured real-time factor', async () => {
    server = await startLocalRealtimeServer({ speed: 10, chunkMs: 100, firstDeltaDelayMs: 0, answer: fixedAnswer(2000) });
    const client = await connect(server.url);
    await client.next('session.created');
    client.send({ type: 'response.create' });
    const first = await server.waitForSent((r) => r.event.type === 'response.output_audio.delta');
    const done = await server.waitForSent((r) => r.event.type === 'response.done', 3000);
    // 2000 ms of audio at ten times real time: the last of 20 deltas is due 190 ms after the first.
    expect(done.atMs - first.atMs).toBeGreaterThanOrEqual(180);
    expect(done.atMs - first.atMs).toBeLessThan(600);
  });

  it('stalls the stream for forMs after afterMs of audio', async () => {
    server = await startLocalRealtimeServer({ speed: Infinity, chunkMs: 100, firstDeltaDelayMs: 0, answer: fixedAnswer(500) });
    server.configure({ stall: { afterMs: 200, forMs: 300 } });
    const client = await connect(server.url);
    await client.next('session.created');
    client.send({ type: 'response.create' });
    await client.next('response.done');
    const deltas = server.sent.filter((r) => r.event.type === 'response.output_audio.delta');
    expect(deltas).toHaveLength(5);
    const gap = (deltas[2]?.atMs ?? 0) - (deltas[1]?.atMs ?? 0);
    expect(gap).toBeGreaterThanOrEqual(290);
    expect((deltas[1]?.atMs ?? 0) - (deltas[0]?.atMs ?? 0)).toBeLessThan(100);
  });

  it('serves 50 connections at once with separate state', async () => {
    server = await startLocalRealtimeServer({ speed: Infinity, firstDeltaDelayMs: 0, answer: fixedAnswer(300) });
    const url = server.url;
    const clients = await Promise.all(Array.from({ length: 50 }, () => connect(url)));
    await Promise.all(clients.map((c) => c.next('session.created')));
    for (const c of clients) c.send({ type: 'response.create' });
    const dones = await Promise.all(clients.map((c) => c.next('response.done')));
    expect(new Set(dones.map((d) => (d['response'] as { id: string }).id)).size).toBe(50);
    expect(server.connectionsOpen).toBe(50);
    expect(server.errors).toHaveLength(0);
  });

  it('expires a session with session_expired, and dropAll cuts connections abruptly', async () => {
    server = await startLocalRealtimeServer();
    const a = await connect(server.url);
    const b = await connect(server.url);
    await server.waitForConnections(2);
    server.expireSession(1);
    expect((await a.next('error'))['error']).toMatchObject({
      code: 'session_expired',
      message: 'Your session hit the maximum duration of 60 minutes.',
    });
    expect((await a.closed).code).toBe(1000);
    server.dropAll();
    expect((await b.closed).code).toBe(1006);
    expect((await server.waitForClose(2)).code).toBe(1006);
  });

  it('close() ends streaming connections and leaves no timers running', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;
    const before = timers();
    server = await startLocalRealtimeServer({ speed: 1, firstDeltaDelayMs: 0, answer: fixedAnswer(10_000) });
    const client = await connect(server.url);
    await client.next('session.created');
    client.send({ type: 'response.create' });
    await client.next('response.output_audio.delta');
    await server.close();
    expect((await client.closed).code).toBe(1001);
    await sleep(20);
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
