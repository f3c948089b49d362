/**
 * The call's life cycle in CallSession: how it starts, which stream it belongs to, how it ends
 * (reason and close code), and what each configuration knob puts into the upstream session.
 */
import { describe, expect, it } from 'vitest';
import type { SessionUpdateEvent } from '../../src/realtime/events.js';
import { CLOSE_CODE_BY_REASON } from '../../src/call/session.js';
import type { SessionAction } from '../../src/call/session.js';
import { FIRST_CONNECT_GIVE_UP_MS, HOLD_TONE_AFTER_MS } from '../../src/call/upstream-fallback.js';
import { AMD_WAIT_MAX_MS } from '../../src/call/amd.js';
import { CALL_SID, STREAM_SID, SessionHarness, defaultAgentConfig } from '../support/session-harness.js';

const SILENCE_20MS_MULAW = Buffer.alloc(160, 0xff).toString('base64');

function nonLog(actions: SessionAction[]): SessionAction[] {
  return actions.filter((a) => a.kind !== 'log');
}

function stop(streamSid: string = STREAM_SID): { kind: 'twilio'; message: { event: 'stop'; sequenceNumber: string; streamSid: string; stop: { accountSid: string; callSid: string } } } {
  return { kind: 'twilio', message: { event: 'stop', sequenceNumber: '9', streamSid, stop: { accountSid: 'AC1', callSid: CALL_SID } } };
}

function sessionUpdate(h: SessionHarness): SessionUpdateEvent {
  const e = h.toRealtime().find((x) => x.type === 'session.update');
  if (e === undefined || e.type !== 'session.update') throw new Error('no session.update');
  return e;
}

describe('start', () => {
  it('announces the call with its ids and custom parameters first, then connects and arms the hold and give-up timers', () => {
    const h = new SessionHarness();
    const out = nonLog(h.sendStart({ customParameters: { plan: 'gold' } }));
    expect(out).toEqual([
      { kind: 'call-started', callSid: CALL_SID, streamSid: STREAM_SID, customParameters: { plan: 'gold' } },
      { kind: 'connect-upstream', attempt: 1, delayMs: 0 },
      { kind: 'set-timer', timer: 'hold', delayMs: HOLD_TONE_AFTER_MS },
      { kind: 'set-timer', timer: 'connect-deadline', delayMs: FIRST_CONNECT_GIVE_UP_MS },
    ]);
    expect(h.session.ids).toEqual({ callSid: CALL_SID, streamSid: STREAM_SID });
  });

  it('has no ids, no end reason and is not ended before start', () => {
    const h = new SessionHarness();
    expect(h.session.ids).toEqual({ callSid: null, streamSid: null });
    expect(h.session.endReason).toBeNull();
    expect(h.session.isEnded).toBe(false);
    expect(h.session.profile).toBeNull();
    expect(h.session.transferTarget).toBeNull();
  });

  it('opening the upstream in time clears both start timers', () => {
    const h = new SessionHarness();
    h.sendStart();
    const out = nonLog(h.feed({ kind: 'upstream-open' }));
    expect(out.slice(0, 2)).toEqual([
      { kind: 'clear-timer', timer: 'hold' },
      { kind: 'clear-timer', timer: 'connect-deadline' },
    ]);
    // no hold tone was playing: nothing to clear on Twilio's side
    expect(h.toTwilio()).toEqual([]);
  });

  it.each([
    ['an 8 kHz stream of another encoding', { encoding: 'audio/x-alaw', sampleRate: 8000, channels: 1 }],
    ['mu-law at 16 kHz', { encoding: 'audio/x-mulaw', sampleRate: 16000, channels: 1 }],
    ['two-channel mu-law', { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 2 }],
  ])('refuses %s as a protocol violation, before anything goes upstream', (_name, mediaFormat) => {
    const h = new SessionHarness();
    const out = nonLog(h.sendStart({ mediaFormat }));
    expect(out).toEqual([{ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 }]);
    expect(h.session.ids.streamSid).toBeNull();
  });

  it('an authorised start is told the start and the time; a refused one leaves no ids and no upstream', () => {
    const seen: Array<{ callSid: string; nowMs: number }> = [];
    const ok = new SessionHarness(defaultAgentConfig(), {
      authorizeStart: (start, nowMs) => {
        seen.push({ callSid: start.callSid, nowMs });
        return { ok: true };
      },
    });
    ok.now = 42;
    ok.sendStart();
    expect(seen).toEqual([{ callSid: CALL_SID, nowMs: 42 }]);
    expect(ok.actionsOf('connect-upstream')).toHaveLength(1);

    const refused = new SessionHarness(defaultAgentConfig(), { authorizeStart: () => ({ ok: false, reason: 'bad token' }) });
    refused.sendStart();
    expect(refused.session.ids).toEqual({ callSid: null, streamSid: null });
    expect(refused.actionsOf('connect-upstream')).toEqual([]);
    expect(refused.session.endReason).toBe('unauthorized');
  });
});

describe('which stream a frame belongs to', () => {
  it('a stop for another stream is a violation; a stop for ours ends the call as twilio-stop', () => {
    const other = new SessionHarness();
    other.startCall();
    expect(nonLog(other.feed(stop('MZother'))).filter((a) => a.kind === 'end-call')).toEqual([{ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 }]);

    const ours = new SessionHarness();
    ours.startCall();
    expect(nonLog(ours.feed(stop()))).toEqual([{ kind: 'end-call', reason: 'twilio-stop', closeCode: 1000 }]);
  });

  it('a stop before any start simply ends the call', () => {
    const h = new SessionHarness();
    expect(nonLog(h.feed(stop('MZwhatever')))).toEqual([{ kind: 'end-call', reason: 'twilio-stop', closeCode: 1000 }]);
  });

  it('a key for another stream, or before start, is a violation', () => {
    const before = new SessionHarness();
    const out = before.feed({ kind: 'twilio', message: { event: 'dtmf', sequenceNumber: '5', streamSid: STREAM_SID, dtmf: { track: 'inbound_track', digit: '1' } } });
    expect(nonLog(out)).toEqual([{ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 }]);

    const other = new SessionHarness();
    other.startCall();
    const out2 = other.feed({ kind: 'twilio', message: { event: 'dtmf', sequenceNumber: '5', streamSid: 'MZother', dtmf: { track: 'inbound_track', digit: '1' } } });
    expect(nonLog(out2).find((a) => a.kind === 'end-call')).toEqual({ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 });
  });

  it('forwards the inbound track under both of Twilio\'s names, and never the outbound track', () => {
    // one frame per append, so each frame's fate shows on its own
    const h = new SessionHarness(defaultAgentConfig({ inputAppendMs: 20 }));
    h.startCall();
    const media = (track: string) =>
      h.feed({ kind: 'twilio', message: { event: 'media', sequenceNumber: '2', streamSid: STREAM_SID, media: { track, chunk: '1', timestamp: '0', payload: SILENCE_20MS_MULAW } } as never });
    expect(nonLog(media('inbound')).map((a) => (a.kind === 'send-realtime' ? a.event.type : a.kind))).toEqual(['input_audio_buffer.append']);
    expect(nonLog(media('inbound_track')).map((a) => (a.kind === 'send-realtime' ? a.event.type : a.kind))).toEqual(['input_audio_buffer.append']);
    expect(nonLog(media('outbound'))).toEqual([]);
    expect(h.session.isEnded).toBe(false);
  });

  it('a media payload of exactly the size limit is still caller audio', () => {
    const h = new SessionHarness();
    h.startCall();
    const limit = Buffer.alloc(8000, 0xff).toString('base64');
    expect(nonLog(h.callerMedia(limit)).map((a) => (a.kind === 'send-realtime' ? a.event.type : a.kind))).toEqual(['input_audio_buffer.append']);
    const over = Buffer.alloc(8001, 0xff).toString('base64');
    expect(nonLog(h.callerMedia(over))).toEqual([]);
  });

  it('a connected message does nothing', () => {
    const h = new SessionHarness();
    h.startCall();
    expect(h.feed({ kind: 'twilio', message: { event: 'connected', protocol: 'Call', version: '1.0.0' } })).toEqual([]);
  });
});

describe('how a call ends', () => {
  it.each([
    ['deadline', 'max-duration', 1000],
    ['shutdown', 'shutdown', 1001],
  ] as const)('%s ends the call as %s with close code %d', (kind, reason, closeCode) => {
    const h = new SessionHarness();
    h.startCall();
    expect(nonLog(h.feed({ kind }))).toEqual([{ kind: 'end-call', reason, closeCode }]);
    expect(h.session.endReason).toBe(reason);
    expect(h.session.isEnded).toBe(true);
  });

  it('the close code of every end reason: 1008 for policy, 1011 for a dead upstream, 1001 for shutdown, 1000 otherwise', () => {
    const policy = new Set(['protocol-violation', 'unauthorized']);
    const expected = (reason: string): number => (policy.has(reason) ? 1008 : reason === 'upstream-failed' ? 1011 : reason === 'shutdown' ? 1001 : 1000);
    const reasons = Object.keys(CLOSE_CODE_BY_REASON);
    expect(reasons).toHaveLength(11);
    for (const reason of reasons) expect([reason, CLOSE_CODE_BY_REASON[reason as keyof typeof CLOSE_CODE_BY_REASON]]).toEqual([reason, expected(reason)]);
  });

  it('ends once: a second end input adds nothing, and nothing is ever answered after the end', () => {
    const h = new SessionHarness();
    h.startCall();
    h.feed({ kind: 'deadline' });
    expect(h.feed({ kind: 'shutdown' })).toEqual([]);
    expect(h.feed({ kind: 'twilio-closed', code: 1000 })).toEqual([]);
    expect(h.speechStopped()).toEqual([]);
    expect(h.session.endReason).toBe('max-duration');
    expect(h.actionsOf('end-call')).toHaveLength(1);
  });

  it('a non-fatal invalid frame is ignored; a fatal one ends the call', () => {
    const h = new SessionHarness();
    h.startCall();
    expect(nonLog(h.feed({ kind: 'twilio-invalid', reason: 'not-json', detail: 'x', fatal: false }))).toEqual([]);
    expect(h.session.isEnded).toBe(false);
    expect(nonLog(h.feed({ kind: 'twilio-invalid', reason: 'binary-frame', detail: 'x', fatal: true }))).toEqual([{ kind: 'end-call', reason: 'protocol-violation', closeCode: 1008 }]);
  });

  it('a twilio-closed while no transfer is under way is a plain hang-up', () => {
    const h = new SessionHarness();
    h.startCall();
    h.feed({ kind: 'twilio-closed', code: 1005 });
    expect(h.session.endReason).toBe('twilio-closed');
  });
});

describe('the upstream session configuration', () => {
  it('sends the agent\'s instructions, voice, tools and VAD settings, with server-side responses off', () => {
    const h = new SessionHarness(
      defaultAgentConfig({
        instructions: 'Be brief.',
        voice: 'cedar',
        transcriptionModel: null,
        noiseReduction: null,
        turnDetection: { threshold: 0.4, prefixPaddingMs: 200, silenceDurationMs: 300 },
        tools: [{ type: 'end_call' }],
      }),
    );
    h.startCall();
    const s = sessionUpdate(h).session;
    expect(s.instructions).toBe('Be brief.');
    expect(s.tool_choice).toBe('auto');
    expect(s.tools?.map((t) => t.name)).toEqual(['end_call']);
    expect(s.audio.output.voice).toBe('cedar');
    expect(s.audio.input.transcription).toBeNull();
    expect(s.audio.input.noise_reduction).toBeNull();
    // silence shorter than 500 ms cuts callers off mid-sentence: never below it
    expect(s.audio.input.turn_detection).toEqual({
      type: 'server_vad',
      threshold: 0.4,
      prefix_padding_ms: 200,
      silence_duration_ms: 500,
      create_response: false,
      interrupt_response: false,
    });
  });

  it('keeps a silence duration longer than the floor as configured, and far-field noise reduction', () => {
    const h = new SessionHarness(defaultAgentConfig({ noiseReduction: 'far_field', turnDetection: { threshold: 0.5, prefixPaddingMs: 300, silenceDurationMs: 900 } }));
    h.startCall();
    const s = sessionUpdate(h).session;
    expect(s.audio.input.noise_reduction).toEqual({ type: 'far_field' });
    expect(s.audio.input.turn_detection).toMatchObject({ silence_duration_ms: 900 });
    expect(h.session.sessionConfig()).toEqual(s);
  });
});

describe('answering-machine detection arms its own timer', () => {
  it('an outbound call with detection running sets the amd timer; a resumed one does not run detection', () => {
    const h = new SessionHarness(defaultAgentConfig(), { amdPending: () => true });
    const out = nonLog(h.sendStart());
    expect(out).toContainEqual({ kind: 'set-timer', timer: 'amd', delayMs: AMD_WAIT_MAX_MS });

    const resumed = new SessionHarness(defaultAgentConfig(), {
      amdPending: () => true,
      resumeFor: () => ({ transcript: [], transferFailed: { to: '+1555', status: 'busy' } }),
    });
    expect(nonLog(resumed.sendStart()).filter((a) => a.kind === 'set-timer' && a.timer === 'amd')).toEqual([]);
  });
});

describe('the start timers when they are no longer needed, or there is no audio to play', () => {
  it('without fallback audio a slow connection plays nothing but keeps checking every few seconds', () => {
    const h = new SessionHarness();
    h.sendStart();
    const out = nonLog(h.feed({ kind: 'timer', timer: 'hold' }));
    expect(out).toEqual([{ kind: 'set-timer', timer: 'hold', delayMs: 2000 }]);
  });

  it('a hold, connect-deadline or farewell timer firing once connected does nothing', () => {
    const h = new SessionHarness();
    h.startCall();
    expect(nonLog(h.feed({ kind: 'timer', timer: 'hold' }))).toEqual([]);
    expect(nonLog(h.feed({ kind: 'timer', timer: 'connect-deadline' }))).toEqual([]);
    expect(nonLog(h.feed({ kind: 'timer', timer: 'farewell' }))).toEqual([]);
    expect(h.session.isEnded).toBe(false);
  });

  it('the connect deadline without fallback audio ends the call at once as upstream-failed, hanging up by the call sid', () => {
    const h = new SessionHarness();
    h.sendStart();
    const out = nonLog(h.feed({ kind: 'timer', timer: 'connect-deadline' }));
    expect(out).toEqual([
      { kind: 'close-upstream' },
      { kind: 'clear-timer', timer: 'hold' },
      { kind: 'clear-timer', timer: 'connect-deadline' },
      { kind: 'clear-timer', timer: 'farewell' },
      { kind: 'hangup-call', callSid: CALL_SID },
      { kind: 'end-call', reason: 'upstream-failed', closeCode: 1011 },
    ]);
  });
});
