/**
 * The schema check itself: it must catch what it claims to, and its exceptions must stay narrow.
 * (Every integration scenario on the rig runs it over both directions: test/support/call-rig.ts.)
 */
import { describe, expect, it } from 'vitest';
import { realtimeSchemas } from '../support/realtime-schemas.js';
import { KNOWN_NULLS, withoutKnownNulls } from '../support/realtime-schema-exceptions.js';

const schemas = realtimeSchemas();

describe("OpenAI's Realtime schemas", () => {
  it('accept what the bridge sends, and name the field of what they refuse', () => {
    expect(schemas.checkClientEvent({ type: 'conversation.item.truncate', item_id: 'item_1', content_index: 0, audio_end_ms: 1200 })).toBeNull();
    expect(schemas.checkClientEvent({ type: 'response.create', event_id: 'cb_create_1', response: { metadata: { purpose: 'answer' } } })).toBeNull();
    expect(schemas.checkClientEvent({ type: 'conversation.item.truncate', item_id: 'item_1', content_index: 0, audio_end_ms: '1200' })).toEqual({
      type: 'conversation.item.truncate',
      problems: [expect.stringContaining('/audio_end_ms must be integer')],
    });
    expect(schemas.checkClientEvent({ type: 'response.cancel', response_id: 7 })?.problems).toEqual([expect.stringContaining('/response_id must be string')]);
    expect(schemas.checkClientEvent({ type: 'no.such.event' })).not.toBeNull();
  });

  it('refuse the embedded model’s old deviations', () => {
    const completed = { type: 'conversation.item.input_audio_transcription.completed', event_id: 'e1', item_id: 'item_1', content_index: 0, transcript: 'hi' };
    expect(schemas.checkServerEvent(completed)?.problems).toEqual([expect.stringContaining("must have required property 'usage'")]);
    expect(schemas.checkServerEvent({ ...completed, usage: { type: 'duration', seconds: 1.2 } })).toBeNull();
    const part = { type: 'response.content_part.added', event_id: 'e2', response_id: 'r', item_id: 'i', output_index: 0, content_index: 0 };
    expect(schemas.checkServerEvent({ ...part, part: { type: 'output_audio', transcript: '' } })).not.toBeNull();
    expect(schemas.checkServerEvent({ ...part, part: { type: 'audio', transcript: '' } })).toBeNull();
  });

  it('forgive only the listed nulls, at exactly their path and event type', () => {
    const created = {
      type: 'response.created',
      event_id: 'e3',
      response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', status_details: null, usage: null, output: [] },
    };
    expect(schemas.checkServerEvent(created)).not.toBeNull();
    expect(schemas.checkServerEvent(withoutKnownNulls(created))).toBeNull();
    // the same nulls in another event type, or a wrong non-null value, are not forgiven
    const updated = { ...created, type: 'response.done' };
    expect(schemas.checkServerEvent(withoutKnownNulls(updated))?.problems).toEqual([expect.stringContaining('/response/usage must be object')]);
    expect(schemas.checkServerEvent(withoutKnownNulls({ ...created, response: { ...created.response, usage: 'none' } }))).not.toBeNull();
    // each exception says why
    for (const known of KNOWN_NULLS) expect(known.why.length).toBeGreaterThan(20);
  });
});
