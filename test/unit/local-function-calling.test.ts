import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ErrorEvent } from '../../src/realtime/events.js';
import {
  Conversation,
  IdSource,
  type AnswerContext,
  type AnswerSource,
  type LocalServerEvent,
} from '../../src/tooling/local-model/conversation.js';
import { echoAnswer } from '../../src/tooling/local-model/echo-agent.js';
import { startLocalRealtimeServer, type LocalRealtimeServer } from '../../src/tooling/local-model/server.js';

const SAMPLES_PER_MS = 24;

function tone(ms: number, dbfs = -20, hz = 440): Int16Array {
  const amplitude = 32767 * 10 ** (dbfs / 20);
  const out = new Int16Array(ms * SAMPLES_PER_MS);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / 24_000));
  return out;
}

function toBase64(samples: Int16Array): string {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => b.writeInt16LE(s, i * 2));
  return b.toString('base64');
}

type Ev = Record<string, unknown> & { type: string };

/** A response that only calls a function, as emitted: the item, its arguments in two deltas, done. */
const CALL_ONLY_EVENTS = [
  'response.output_item.added',
  'conversation.item.added',
  'response.function_call_arguments.delta',
  'response.function_call_arguments.delta',
  'response.function_call_arguments.done',
  'response.output_item.done',
  'conversation.item.done',
  'response.done',
];

function newConversation(answer?: AnswerSource): Conversation {
  const conv = new Conversation({ ids: new IdSource('fcall'), ...(answer ? { answer: () => answer } : {}) });
  conv.open(Date.UTC(2026, 0, 1));
  return conv;
}

function events(conv: Conversation, event: Ev): LocalServerEvent[] {
  return conv.handle(event).events;
}

function errorOf(list: LocalServerEvent[]): ErrorEvent['error'] {
  const errors = list.filter((e): e is ErrorEvent => e.type === 'error');
  expect(errors, `one error in ${list.map((e) => e.type).join(', ')}`).toHaveLength(1);
  return (errors[0] as ErrorEvent).error;
}

function pumpAll(conv: Conversation, chunkMs = 100): LocalServerEvent[] {
  const out: LocalServerEvent[] = [];
  for (let guard = 0; conv.streaming && guard < 10_000; guard++) out.push(...conv.pump(chunkMs));
  return out;
}

/** Event types with runs of the same delta type collapsed to one entry. */
function shape(list: LocalServerEvent[]): string[] {
  const out: string[] = [];
  for (const e of list) {
    const deltas = e.type.endsWith('.delta');
    if (deltas && out[out.length - 1] === `${e.type}*`) continue;
    out.push(deltas ? `${e.type}*` : e.type);
  }
  return out;
}

const TOOLS = [
  { type: 'function', name: 'lookup', description: 'Look something up', parameters: { type: 'object', properties: { q: { type: 'string' } } } },
  { type: 'function', name: 'end_call' },
];

function declareTools(conv: Conversation, extra: Record<string, unknown> = {}): LocalServerEvent[] {
  return events(conv, { type: 'session.update', session: { type: 'realtime', tools: TOOLS, ...extra } });
}

function answering(audioMs: number, call?: { name: string; arguments: string }, seen?: AnswerContext[]): AnswerSource {
  return (ctx) => {
    seen?.push(ctx);
    return { audio: audioMs > 0 ? tone(audioMs, -20, 330) : new Int16Array(0), transcript: audioMs > 0 ? 'Let me check.' : '', ...(call ? { functionCall: call } : {}) };
  };
}

type Item = Record<string, unknown>;
function itemOf(e: LocalServerEvent): Item {
  return (e as unknown as { item: Item }).item;
}

describe('local model: tools in the session', () => {
  it('shows declared tools and tool_choice in session.updated', () => {
    const conv = newConversation();
    const [updated] = declareTools(conv, { tool_choice: { type: 'function', name: 'end_call' } });
    expect(updated?.type).toBe('session.updated');
    expect(updated).toMatchObject({
      session: {
        tools: [
          { type: 'function', name: 'lookup', description: 'Look something up', parameters: { type: 'object' } },
          { type: 'function', name: 'end_call' },
        ],
        tool_choice: { type: 'function', name: 'end_call' },
      },
    });
    expect(conv.session.tools?.map((t) => t.name)).toEqual(['lookup', 'end_call']);
    const next = events(conv, { type: 'session.update', session: { type: 'realtime', tool_choice: 'required' } });
    expect(next[0]).toMatchObject({ type: 'session.updated', session: { tool_choice: 'required', tools: [{ name: 'lookup' }, { name: 'end_call' }] } });
  });

  it('rejects wrongly shaped tools and tool choices', () => {
    const conv = newConversation();
    const upd = (session: Record<string, unknown>) => errorOf(events(conv, { type: 'session.update', session: { type: 'realtime', ...session } }));
    expect(upd({ tools: { type: 'function', name: 'x' } })).toMatchObject({ type: 'invalid_request_error', code: 'invalid_type', param: 'session.tools' });
    expect(upd({ tools: [{ name: 'x' }] })).toMatchObject({ code: 'missing_required_parameter', param: 'session.tools[0].type' });
    expect(upd({ tools: [{ type: 'mcp', name: 'x' }] })).toMatchObject({ code: 'invalid_value', param: 'session.tools[0].type' });
    expect(upd({ tools: [{ type: 'function' }] })).toMatchObject({ code: 'missing_required_parameter', param: 'session.tools[0].name' });
    expect(upd({ tools: [{ type: 'function', name: 'has space' }] })).toMatchObject({ code: 'invalid_value', param: 'session.tools[0].name' });
    expect(upd({ tools: [{ type: 'function', name: 'x', parameters: 'string' }] })).toMatchObject({ code: 'invalid_type', param: 'session.tools[0].parameters' });
    expect(upd({ tools: [{ type: 'function', name: 'x', strict: true }] })).toMatchObject({ code: 'unknown_parameter', param: 'session.tools[0].strict' });
    expect(upd({ tools: [{ type: 'function', name: 'x' }, { type: 'function', name: 'x' }] })).toMatchObject({ code: 'invalid_value', param: 'session.tools[1].name' });
    expect(upd({ tool_choice: 'sometimes' })).toMatchObject({ code: 'invalid_value', param: 'session.tool_choice' });
    expect(upd({ tool_choice: { type: 'function' } })).toMatchObject({ code: 'missing_required_parameter', param: 'session.tool_choice.name' });
    expect(upd({ tool_choice: { type: 'function', name: 'nope' } })).toMatchObject({ code: 'invalid_value', param: 'session.tool_choice.name' });
    // Nothing was applied.
    expect(conv.session.tools).toEqual([]);
  });
});

describe('local model: function call items', () => {
  it('accepts a function_call_output for a known call_id and rejects an unknown one', () => {
    const conv = newConversation(answering(0, { name: 'lookup', arguments: '{"q":"weather"}' }));
    declareTools(conv);
    events(conv, { type: 'response.create' });
    const done = pumpAll(conv).find((e) => e.type === 'response.function_call_arguments.done') as unknown as { call_id: string };
    expect(done.call_id).toMatch(/^call_/);

    const ok = events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: done.call_id, output: '{"temp":21}' } });
    expect(ok.map((e) => e.type)).toEqual(['conversation.item.added', 'conversation.item.done']);
    expect(itemOf(ok[0] as LocalServerEvent)).toMatchObject({ type: 'function_call_output', call_id: done.call_id, output: '{"temp":21}', status: 'completed' });
    expect(conv.items.at(-1)).toMatchObject({ type: 'function_call_output', role: null, callId: done.call_id, output: '{"temp":21}' });

    const unknown = errorOf(
      events(conv, { type: 'conversation.item.create', event_id: 'evt_9', item: { type: 'function_call_output', call_id: 'call_nope', output: 'x' } }),
    );
    expect(unknown).toMatchObject({ type: 'invalid_request_error', code: 'invalid_value', param: 'item.call_id', event_id: 'evt_9' });
    expect(unknown.message).toContain("'call_nope'");
    // Answering the same call twice is refused too.
    expect(errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: done.call_id, output: 'again' } }))).toMatchObject({
      code: 'invalid_value',
      param: 'item.call_id',
    });
    expect(errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: done.call_id } }))).toMatchObject({
      code: 'missing_required_parameter',
      param: 'item.output',
    });
    expect(errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: done.call_id, output: 3 } }))).toMatchObject({
      code: 'invalid_type',
      param: 'item.output',
    });
    expect(
      errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: done.call_id, output: 'x', role: 'user' } })),
    ).toMatchObject({ code: 'unknown_parameter', param: 'item.role' });
  });

  it('accepts client-created function_call items, deletes them, and then refuses outputs for them', () => {
    const conv = newConversation();
    const added = events(conv, {
      type: 'conversation.item.create',
      item: { id: 'item_fc', type: 'function_call', call_id: 'call_client1', name: 'lookup', arguments: '{}' },
    });
    expect(added.map((e) => e.type)).toEqual(['conversation.item.added', 'conversation.item.done']);
    expect(itemOf(added[0] as LocalServerEvent)).toEqual({
      id: 'item_fc',
      object: 'realtime.item',
      type: 'function_call',
      status: 'completed',
      call_id: 'call_client1',
      name: 'lookup',
      arguments: '{}',
    });
    expect(errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call', call_id: 'call_client1', name: 'x', arguments: '{}' } }))).toMatchObject({
      code: 'invalid_value',
      param: 'item.call_id',
    });
    expect(errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call', name: 'x' } }))).toMatchObject({
      code: 'missing_required_parameter',
      param: 'item.arguments',
    });
    const generated = events(conv, { type: 'conversation.item.create', item: { type: 'function_call', name: 'x', arguments: '' } });
    expect(itemOf(generated[0] as LocalServerEvent)['call_id']).toMatch(/^call_/);

    expect(events(conv, { type: 'conversation.item.delete', item_id: 'item_fc' }).map((e) => e.type)).toEqual(['conversation.item.deleted']);
    expect(errorOf(events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_client1', output: 'late' } }))).toMatchObject({
      code: 'invalid_value',
      param: 'item.call_id',
    });
  });
});

describe('local model: responses that call functions', () => {
  it('emits audio, then the function call, then response.done, in the exact order', () => {
    const args = '{"q":"opening hours of the town library"}';
    const conv = newConversation(answering(250, { name: 'lookup', arguments: args }));
    declareTools(conv);
    const all = [...events(conv, { type: 'response.create', response: { metadata: { purpose: 'answer' } } }), ...pumpAll(conv, 100)];
    expect(shape(all)).toEqual([
      'response.created',
      'response.output_item.added',
      'conversation.item.added',
      'response.content_part.added',
      'response.output_audio.delta*',
      'response.output_audio_transcript.delta*',
      'response.output_audio.delta*',
      'response.output_audio_transcript.delta*',
      'response.output_audio.delta*',
      'response.output_audio_transcript.delta*',
      'response.output_audio.done',
      'response.output_audio_transcript.done',
      'response.content_part.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.output_item.added',
      'conversation.item.added',
      'response.function_call_arguments.delta*',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done',
    ]);
    const at = all.findIndex((e) => e.type === 'response.output_item.added' && itemOf(e)['type'] === 'function_call');
    const fcAdded = all[at] as unknown as { response_id: string; output_index: number; item: Item };
    expect(fcAdded.output_index).toBe(1);
    expect(fcAdded.item).toEqual({
      id: expect.stringMatching(/^item_/),
      object: 'realtime.item',
      type: 'function_call',
      status: 'in_progress',
      call_id: expect.stringMatching(/^call_/),
      name: 'lookup',
      arguments: '',
    });
    const callId = fcAdded.item['call_id'];
    const itemId = fcAdded.item['id'];
    const deltas = all.filter((e) => e.type === 'response.function_call_arguments.delta') as unknown as Array<Record<string, unknown>>;
    expect(deltas.length).toBeGreaterThanOrEqual(2);
    expect(deltas.map((d) => d['delta']).join('')).toBe(args);
    for (const d of deltas) expect(d).toMatchObject({ response_id: fcAdded.response_id, item_id: itemId, output_index: 1, call_id: callId });
    expect(all.find((e) => e.type === 'response.function_call_arguments.done')).toMatchObject({
      response_id: fcAdded.response_id,
      item_id: itemId,
      output_index: 1,
      call_id: callId,
      name: 'lookup',
      arguments: args,
    });
    const outputDone = all.filter((e) => e.type === 'response.output_item.done');
    expect(itemOf(outputDone[1] as LocalServerEvent)).toMatchObject({ type: 'function_call', status: 'completed', arguments: args, call_id: callId });
    const done = all.at(-1) as unknown as { response: { status: string; metadata: unknown; output: Item[] } };
    expect(done.response.status).toBe('completed');
    expect(done.response.metadata).toEqual({ purpose: 'answer' });
    expect(done.response.output.map((i) => i['type'])).toEqual(['message', 'function_call']);
    expect(done.response.output[1]).toMatchObject({ status: 'completed', call_id: callId, arguments: args });
    expect(conv.items.map((i) => i.type)).toEqual(['message', 'function_call']);
    expect(conv.items[1]).toMatchObject({ callId, name: 'lookup', arguments: args, status: 'completed' });
  });

  it('emits a function-call-only response on the first pump, not inside response.create', () => {
    const conv = newConversation(answering(0, { name: 'end_call', arguments: '{}' }));
    declareTools(conv);
    const created = events(conv, { type: 'response.create' });
    expect(created.map((e) => e.type)).toEqual(['response.created']);
    expect(conv.items).toEqual([]);
    expect(conv.streaming).toMatchObject({ remainingMs: 0 });
    const pumped = conv.pump(100);
    expect(pumped.map((e) => e.type)).toEqual(CALL_ONLY_EVENTS);
    expect(pumped[0]).toMatchObject({ output_index: 0, item: { type: 'function_call', name: 'end_call', status: 'in_progress', arguments: '' } });
    expect(pumped.at(-1)).toMatchObject({ response: { status: 'completed', output: [{ type: 'function_call', status: 'completed', arguments: '{}' }] } });
    expect(conv.streaming).toBeNull();
  });

  it('emits a call cancelled before its pump with status incomplete, arguments.done included', () => {
    const conv = newConversation(answering(0, { name: 'end_call', arguments: '{}' }));
    declareTools(conv);
    events(conv, { type: 'response.create' });
    const cancelled = events(conv, { type: 'response.cancel' });
    expect(cancelled.map((e) => e.type)).toEqual(CALL_ONLY_EVENTS);
    expect(cancelled.find((e) => e.type === 'response.output_item.done')).toMatchObject({ item: { type: 'function_call', status: 'incomplete' } });
    expect(cancelled.at(-1)).toMatchObject({
      response: { status: 'cancelled', status_details: { type: 'cancelled', reason: 'client_cancelled' }, output: [{ type: 'function_call', status: 'incomplete' }] },
    });
    expect(conv.pump(100)).toEqual([]);
    expect(conv.items[0]).toMatchObject({ type: 'function_call', status: 'incomplete' });
  });

  it('marks the call incomplete after the cut message when server VAD interrupts the response', () => {
    const conv = newConversation(answering(2000, { name: 'lookup', arguments: '{"q":"x"}' }));
    declareTools(conv);
    events(conv, { type: 'response.create' });
    conv.pump(200);
    const out: LocalServerEvent[] = [];
    const speech = tone(600);
    for (let i = 0; i < speech.length; i += 480) out.push(...events(conv, { type: 'input_audio_buffer.append', audio: toBase64(speech.subarray(i, i + 480)) }));
    const started = out.findIndex((e) => e.type === 'input_audio_buffer.speech_started');
    expect(started).toBeGreaterThanOrEqual(0);
    const after = out.slice(started + 1);
    const items = after.filter((e) => e.type === 'response.output_item.done').map(itemOf);
    expect(items.map((i) => [i['type'], i['status']])).toEqual([
      ['message', 'incomplete'],
      ['function_call', 'incomplete'],
    ]);
    expect(after.some((e) => e.type === 'response.function_call_arguments.done')).toBe(true);
    expect(after.find((e) => e.type === 'response.done')).toMatchObject({
      response: { status: 'cancelled', status_details: { reason: 'turn_detected' }, output: [{ type: 'message' }, { type: 'function_call', status: 'incomplete' }] },
    });
  });

  it('validates tools, tool_choice and metadata of response.create', () => {
    const conv = newConversation(answering(100));
    declareTools(conv);
    const create = (response: Record<string, unknown>) => errorOf(events(conv, { type: 'response.create', response }));
    expect(create({ metadata: 'x' })).toMatchObject({ code: 'invalid_type', param: 'response.metadata' });
    expect(create({ metadata: { purpose: 3 } })).toMatchObject({ code: 'invalid_type', param: 'response.metadata.purpose' });
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    expect(create({ metadata: many })).toMatchObject({ code: 'object_above_max_properties', param: 'response.metadata' });
    expect(create({ metadata: { purpose: 'x'.repeat(513) } })).toMatchObject({ code: 'string_above_max_length' });
    expect(create({ tools: [{ type: 'function', name: 'a b' }] })).toMatchObject({ code: 'invalid_value', param: 'response.tools[0].name' });
    expect(create({ tool_choice: 'maybe' })).toMatchObject({ code: 'invalid_value', param: 'response.tool_choice' });
    expect(create({ tool_choice: { type: 'function', name: 'transfer_call' } })).toMatchObject({ code: 'invalid_value', param: 'response.tool_choice.name' });
    expect(create({ tools: [], tool_choice: { type: 'function', name: 'lookup' } })).toMatchObject({ code: 'invalid_value', param: 'response.tool_choice.name' });
    const forced = newConversation(answering(100));
    declareTools(forced, { tool_choice: { type: 'function', name: 'end_call' } });
    // The session's forced choice must still name a tool of the response's own tool list.
    expect(errorOf(events(forced, { type: 'response.create', response: { tools: [TOOLS[0]] } }))).toMatchObject({ code: 'invalid_value', param: 'response.tool_choice.name' });
    expect(conv.streaming).toBeNull();
    const ok = events(conv, { type: 'response.create', response: { metadata: { purpose: 'greeting', n: '1' }, tool_choice: 'none' } });
    expect(ok[0]).toMatchObject({ type: 'response.created', response: { metadata: { purpose: 'greeting', n: '1' } } });
  });

  it('gives the answer source tools, metadata, the last user text and the last function output', () => {
    const seen: AnswerContext[] = [];
    let call: { name: string; arguments: string } | undefined = { name: 'lookup', arguments: '{}' };
    const conv = newConversation((ctx) => {
      const answer = answering(0, call, seen)(ctx);
      call = undefined;
      return answer.audio.length === 0 && !answer.functionCall ? { ...answer, audio: tone(50) } : answer;
    });
    declareTools(conv);
    events(conv, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Keypad entry: 1234' }] } });
    events(conv, { type: 'response.create', response: { metadata: { purpose: 'answer' } } });
    const callId = (pumpAll(conv).find((e) => e.type === 'response.function_call_arguments.done') as unknown as { call_id: string }).call_id;
    events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: callId, output: 'found it' } });
    events(conv, { type: 'response.create', response: { tools: [TOOLS[0]], metadata: { purpose: 'tool-output' } } });
    pumpAll(conv);
    expect(seen[0]).toMatchObject({
      tools: ['lookup', 'end_call'],
      toolChoice: 'auto',
      metadata: { purpose: 'answer' },
      lastUserText: 'Keypad entry: 1234',
      lastUserTranscript: 'Keypad entry: 1234',
      lastUserAudio: null,
      lastFunctionOutput: null,
      responseIndex: 0,
    });
    expect(seen[1]).toMatchObject({
      tools: ['lookup'],
      metadata: { purpose: 'tool-output' },
      lastUserText: 'Keypad entry: 1234',
      lastFunctionOutput: { callId, name: 'lookup', output: 'found it' },
      responseIndex: 1,
    });
  });

  it('fails a response whose answer source calls a tool that is not in force', () => {
    const conv = newConversation(answering(0, { name: 'transfer_call', arguments: '{}' }));
    declareTools(conv);
    const err = errorOf(events(conv, { type: 'response.create' }));
    expect(err).toMatchObject({ type: 'server_error' });
    expect(err.message).toContain("'transfer_call'");
    expect(conv.streaming).toBeNull();
    const none = newConversation(answering(0, { name: 'end_call', arguments: '{}' }));
    declareTools(none, { tool_choice: 'none' });
    expect(errorOf(events(none, { type: 'response.create' })).message).toContain("tool_choice is 'none'");
  });
});

describe('local model with the echo agent: keypad and end_call', () => {
  it('answers "Keypad entry: 9" with an end_call function call, then says goodbye to its output', () => {
    const conv = newConversation(echoAnswer);
    declareTools(conv);
    events(conv, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Keypad entry: 9' }] } });
    expect(events(conv, { type: 'response.create', response: { metadata: { purpose: 'answer' } } }).map((e) => e.type)).toEqual(['response.created']);
    const call = pumpAll(conv).find((e) => e.type === 'response.function_call_arguments.done');
    expect(call).toMatchObject({ name: 'end_call', arguments: '{}', output_index: 0 });
    const callId = (call as unknown as { call_id: string }).call_id;
    events(conv, { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: callId, output: '{"ok":true}' } });
    events(conv, { type: 'response.create', response: { metadata: { purpose: 'tool-output' } } });
    const done = pumpAll(conv).find((e) => e.type === 'response.output_audio_transcript.done');
    expect(done).toMatchObject({ transcript: 'Goodbye!' });
  });
});

describe('local Realtime server over WebSocket: function calls', () => {
  let server: LocalRealtimeServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('paces a function-call-only response from the default echo agent: keypad 9 ends the call', async () => {
    server = await startLocalRealtimeServer({ speed: Infinity, firstDeltaDelayMs: 20 });
    const ws = new WebSocket(server.url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const send = (e: Ev): void => ws.send(JSON.stringify(e));
    send({ type: 'session.update', session: { type: 'realtime', tools: [{ type: 'function', name: 'end_call', description: 'Hang up' }] } });
    send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Keypad entry: 9' }] } });
    send({ type: 'response.create', response: { metadata: { purpose: 'answer' } } });
    const done = await server.waitForSent((r) => r.event.type === 'response.done');
    expect(done.event).toMatchObject({
      response: { status: 'completed', metadata: { purpose: 'answer' }, output: [{ type: 'function_call', name: 'end_call', arguments: '{}', status: 'completed' }] },
    });
    const created = await server.waitForSent((r) => r.event.type === 'response.created');
    const added = await server.waitForSent((r) => r.event.type === 'response.output_item.added');
    // Emitted by the pump, one firstDeltaDelayMs after response.created.
    expect(added.atMs - created.atMs).toBeGreaterThanOrEqual(10);
    expect(server.errors).toEqual([]);
    ws.close();
  });
});
