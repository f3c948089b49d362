/**
 * How CallSession sends the caller's audio upstream: whole Twilio frames gathered into appends of
 * `inputAppendMs`, every sample exactly once and in order, across the loss of the upstream too.
 */
import { describe, expect, it } from 'vitest';
import { InboundTranscoder } from '../../src/audio/transcoder.js';
import { PCM24K_BYTES_PER_MS } from '../../src/audio/wire-format.js';
import { DEFAULT_INPUT_APPEND_MS } from '../../src/config.js';
import type { AgentConfig } from '../../src/config.js';
import type { RealtimeClientEvent } from '../../src/realtime/events.js';
import { SessionHarness, defaultAgentConfig } from '../support/session-harness.js';


/** Distinct 20 ms frames (each a different level and shape), so order and loss show. */
function frames(count: number, bytes = 160): string[] {
  return Array.from({ length: count }, (_, i) => Buffer.from(Array.from({ length: bytes }, (_, j) => (0x10 + i * 7 + (j % 13) * 11) & 0xff)).toString('base64'));
}

/** What one transcoder fed the same frames in one go makes of them: the exact bytes expected upstream. */
function reference(payloads: readonly string[]): Buffer {
  const t = new InboundTranscoder();
  return Buffer.concat(payloads.map((p) => Buffer.from(t.transcode(p), 'base64')));
}

/** Every realtime event sent since `since`, appends included (the harness's toRealtime leaves them out). */
function sentUpstream(h: SessionHarness, since = 0): RealtimeClientEvent[] {
  return h.actions.slice(since).flatMap(({ action }) => (action.kind === 'send-realtime' ? [action.event] : []));
}

function appends(h: SessionHarness, since = 0): Buffer[] {
  return sentUpstream(h, since).flatMap((e) => (e.type === 'input_audio_buffer.append' ? [Buffer.from(e.audio, 'base64')] : []));
}

function plain(overrides: Partial<AgentConfig> = {}): AgentConfig {
  return defaultAgentConfig({ greeting: null, idle: null, ...overrides });
}

describe('caller audio upstream', () => {
  it('by default sends 20 ms frames in pairs: one 40 ms append per two frames, the odd frame held for its partner', () => {
    expect(DEFAULT_INPUT_APPEND_MS).toBe(40);
    const h = new SessionHarness(plain());
    h.startCall();
    const payloads = frames(5);
    const sizes: number[] = [];
    for (const p of payloads) {
      const before = h.mark();
      h.callerMedia(p);
      sizes.push(...appends(h, before).map((a) => a.length / PCM24K_BYTES_PER_MS));
    }
    // after frames 2 and 4; frame 5 waits
    expect(sizes).toEqual([40, 40]);
    expect(Buffer.concat(appends(h))).toEqual(reference(payloads).subarray(0, 80 * PCM24K_BYTES_PER_MS));
  });

  it('forwards every sample once and in order, bit-identical to converting frame by frame, for any append size', () => {
    for (const inputAppendMs of [20, 40, 60, 100]) {
      const h = new SessionHarness(plain({ inputAppendMs }));
      h.startCall();
      const payloads = frames(51);
      for (const p of payloads) h.callerMedia(p);
      const sent = appends(h);
      const framesPerAppend = inputAppendMs / 20;
      expect(sent).toHaveLength(Math.floor(51 / framesPerAppend));
      for (const a of sent) expect(a.length).toBe(inputAppendMs * PCM24K_BYTES_PER_MS);
      const whole = Math.floor(51 / framesPerAppend) * framesPerAppend;
      expect(Buffer.concat(sent)).toEqual(reference(payloads).subarray(0, whole * 20 * PCM24K_BYTES_PER_MS));
    }
  });

  it('rounds up to whole frames: frames of another length go as soon as the held audio reaches the size', () => {
    const h = new SessionHarness(plain({ inputAppendMs: 40 }));
    h.startCall();
    // 30 ms frames (240 bytes of mu-law): 30 held, then 60 sent
    const payloads = frames(4, 240);
    for (const p of payloads) h.callerMedia(p);
    expect(appends(h).map((a) => a.length / PCM24K_BYTES_PER_MS)).toEqual([60, 60]);
    expect(Buffer.concat(appends(h))).toEqual(reference(payloads));
  });

  it('audio held when the upstream is lost goes, with what follows, to the new session: nothing dropped or reordered', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    h.sessionUpdated();
    const payloads = frames(9);
    for (const p of payloads.slice(0, 3)) h.callerMedia(p); // 40 ms sent, 20 ms held
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    for (const p of payloads.slice(3, 6)) h.callerMedia(p); // buffered while reconnecting
    const beforeOpen = h.mark();
    h.feed({ kind: 'upstream-open' });
    const reopened = appends(h, beforeOpen);
    // the held frame travels with the first frame buffered after the loss
    expect(reopened.map((a) => a.length / PCM24K_BYTES_PER_MS)).toEqual([40, 20, 20]);
    for (const p of payloads.slice(6)) h.callerMedia(p); // paired again from here
    expect(appends(h).map((a) => a.length / PCM24K_BYTES_PER_MS)).toEqual([40, 40, 20, 20, 40]);
    expect(Buffer.concat(appends(h))).toEqual(reference(payloads.slice(0, 8)));
  });

  it('a frame held when the upstream is lost waits for the new session: its session.update goes first, then the pair', () => {
    const h = new SessionHarness(plain());
    h.startCall();
    const payloads = frames(4);
    for (const p of payloads.slice(0, 3)) h.callerMedia(p); // 40 ms sent, 20 ms held
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    const beforeOpen = h.mark();
    h.feed({ kind: 'upstream-open' }); // back before the next frame: nothing to send yet
    expect(appends(h, beforeOpen)).toEqual([]);
    h.callerMedia(payloads[3]!);
    const types = sentUpstream(h, beforeOpen).map((e) => e.type);
    expect(types[0]).toBe('session.update');
    expect(types.filter((t) => t === 'input_audio_buffer.append')).toHaveLength(1);
    expect(types.indexOf('input_audio_buffer.append')).toBeGreaterThan(types.indexOf('session.update'));
    expect(appends(h, beforeOpen).map((a) => a.length / PCM24K_BYTES_PER_MS)).toEqual([40]);
    expect(Buffer.concat(appends(h))).toEqual(reference(payloads));
  });

  it('the bound on audio buffered while reconnecting drops the oldest first, a carried frame with it', () => {
    const h = new SessionHarness(plain({ maxBufferedInboundMs: 100 }));
    h.startCall();
    const payloads = frames(13);
    for (const p of payloads.slice(0, 3)) h.callerMedia(p); // 40 ms sent, frame 2 held
    h.feed({ kind: 'upstream-closed', code: 1006, reason: '' });
    // frame 2 leaves with frame 3 as one 40 ms piece, then 20 ms pieces: 220 ms, over the bound
    for (const p of payloads.slice(3)) h.callerMedia(p);
    const beforeOpen = h.mark();
    h.feed({ kind: 'upstream-open' });
    const kept = appends(h, beforeOpen);
    // the newest 100 ms: frames 8..12, as the one converter of the whole call made them
    expect(kept.map((a) => a.length / PCM24K_BYTES_PER_MS)).toEqual([20, 20, 20, 20, 20]);
    expect(Buffer.concat(kept)).toEqual(reference(payloads).subarray(8 * 20 * PCM24K_BYTES_PER_MS));
  });
});
