/**
 * The agent's audio on its way to Twilio in CallSession: which deltas play, when items are
 * finished, the first-audio latency, and the bounded interruption records.
 */
import { describe, expect, it } from 'vitest';
import type { SessionAction } from '../../src/call/session.js';
import { SessionHarness, defaultAgentConfig } from '../support/session-harness.js';

function firstAudio(h: SessionHarness): number[] {
  return h.actionsOf('metric').flatMap((m) => (m.event.name === 'first-audio' ? [m.event.latencyMs] : []));
}

function twilioEvents(out: SessionAction[]): string[] {
  return out.flatMap((a) => (a.kind === 'send-twilio' ? [a.message.event] : []));
}

describe('first-audio latency', () => {
  it('measures from the end of the caller\'s turn to the first audio sent, once per turn', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.now = 1000;
    h.speechStopped();
    h.now = 1700;
    h.responseCreated('resp_1');
    h.itemAdded('resp_1', 'item_a');
    h.now = 1850;
    h.delta('resp_1', 'item_a', 300);
    h.delta('resp_1', 'item_a', 300);
    expect(firstAudio(h)).toEqual([850]);
  });

  it('is not measured for audio that answers no turn (a greeting)', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: { text: 'Hello.' } }));
    h.startCall();
    h.sessionUpdated();
    h.responseCreated('resp_g');
    h.itemAdded('resp_g', 'item_g');
    h.delta('resp_g', 'item_g', 200);
    expect(firstAudio(h)).toEqual([]);
  });

  it('a caller who starts talking again before the answer\'s audio resets the measure', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    h.speechStarted();
    h.responseDone('resp_1', 'cancelled');
    h.now = 2000;
    h.speechStopped();
    h.now = 2300;
    h.responseCreated('resp_2');
    h.itemAdded('resp_2', 'item_b');
    h.delta('resp_2', 'item_b', 100);
    expect(firstAudio(h)).toEqual([300]);
  });

  it('a key pressed after the turn ended resets the measure until the keypad entry ends a turn', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.now = 100;
    h.speechStopped();
    h.dtmf('1');
    h.responseCreated('resp_x'); // a response created anyway (its create raced the key)
    h.itemAdded('resp_x', 'item_x');
    h.delta('resp_x', 'item_x', 100);
    expect(firstAudio(h)).toEqual([]);
  });
});

describe('which audio plays', () => {
  it('audio of an item never announced by output_item.added still plays, with its content index', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null }));
    h.startCall();
    h.speechStopped();
    h.responseCreated('resp_1');
    const out = h.realtime({ type: 'response.output_audio.delta', response_id: 'resp_1', item_id: 'item_z', output_index: 0, content_index: 2, delta: Buffer.alloc(4800).toString('base64') });
    expect(twilioEvents(out)).toContain('media');
    h.advance(50);
    const before = h.mark();
    h.speechStarted();
    const trunc = h.toRealtime(before).find((e) => e.type === 'conversation.item.truncate');
    expect(trunc).toMatchObject({ item_id: 'item_z', content_index: 2 });
  });

  it('output_audio.done of another item does not end the one streaming; its own does, with the tail and a mark', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 110);
    const other = h.audioDone('resp_1', 'item_other');
    expect(twilioEvents(other)).toEqual([]);
    const own = h.audioDone('resp_1', 'item_a');
    expect(twilioEvents(own)).toEqual(['media', 'mark']);
  });

  it('response.done of another response does not flush the item streaming', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 110);
    expect(twilioEvents(h.responseDone('resp_other'))).toEqual([]);
  });

  it('a second item of the same response finishes the first one before its own audio', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 110);
    h.itemAdded('resp_1', 'item_b');
    const out = h.delta('resp_1', 'item_b', 100);
    // the first item's tail (and its mark), then the second's audio
    expect(twilioEvents(out).slice(0, 2)).toEqual(['media', 'mark']);
    expect(twilioEvents(out).filter((e) => e === 'media').length).toBeGreaterThanOrEqual(2);
  });

  it('a delta arriving after a finished item\'s done goes out normally (the tail was already flushed)', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 100);
    h.audioDone('resp_1', 'item_a');
    const out = h.delta('resp_1', 'item_a', 100);
    expect(twilioEvents(out)).toContain('media');
  });

  it('late audio from before a barge-in is dropped for the suppression window, and plays after it', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, suppressDeltasMs: 500 }));
    h.startCall();
    h.speechStopped();
    h.fullResponse('resp_1', 'item_a', 1000); // generated in full, still playing
    h.advance(200);
    h.speechStarted(); // nothing to cancel: the audio is cut at Twilio
    h.advance(100);
    expect(twilioEvents(h.delta('resp_1', 'item_a', 100))).toEqual([]);
    h.advance(390); // 490 ms after the barge-in: still inside
    expect(twilioEvents(h.delta('resp_1', 'item_a', 100))).toEqual([]);
    h.advance(10); // 500 ms: the window is over
    expect(twilioEvents(h.delta('resp_1', 'item_a', 100))).toContain('media');
  });
});

describe('interruption records', () => {
  it('keeps the most recent hundred', () => {
    const h = new SessionHarness(defaultAgentConfig({ greeting: null, idle: null }));
    h.startCall();
    for (let i = 0; i < 105; i++) {
      h.speechStopped();
      h.responseCreated(`resp_${i}`);
      h.itemAdded(`resp_${i}`, `item_${i}`);
      h.delta(`resp_${i}`, `item_${i}`, 100);
      h.advance(20);
      h.speechStarted();
      h.responseDone(`resp_${i}`, 'cancelled');
    }
    expect(h.session.interruptions).toHaveLength(100);
    expect(h.session.interruptions[0]?.responseId).toBe('resp_5');
    expect(h.session.interruptions.at(-1)?.responseId).toBe('resp_104');
  });

  it('records the response cancelled, the items truncated and deleted, and what was heard and sent', () => {
    const h = SessionHarness.answering(defaultAgentConfig({ greeting: null }));
    h.now = 0;
    h.delta('resp_1', 'item_a', 300);
    h.itemAdded('resp_1', 'item_b');
    h.advance(120);
    h.speechStarted();
    expect(h.session.interruptions).toEqual([
      { atMs: 120, responseId: 'resp_1', cancelSent: true, truncated: [{ itemId: 'item_a', audioEndMs: 120, sentMs: 300 }], deleted: ['item_b'], heardMs: 120, sentMs: 300 },
    ]);
  });
});

describe('marks follow audio, never stand alone', () => {
  function marksAndMedia(out: SessionAction[]): string[] {
    return out.flatMap((a) => (a.kind === 'send-twilio' ? [a.message.event] : []));
  }

  it('a delta that ends exactly on a mark interval gets one mark, not two', () => {
    const h = SessionHarness.answering();
    h.delta('resp_1', 'item_a', 100);
    const out = h.delta('resp_1', 'item_a', 100);
    const events = marksAndMedia(out);
    expect(events.filter((e) => e === 'mark')).toHaveLength(1);
    expect(events.at(-1)).toBe('mark');
  });
});
