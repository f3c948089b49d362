/**
 * Property-based: thousands of random interleavings of caller, keypad, model and network events
 * drive a CallSession through the harness (its Twilio side plays audio and echoes marks on the
 * fake clock). A protocol-faithful stand-in for the Realtime API answers the session's requests
 * and checks, at every step, the guarantees a caller relies on:
 *  - never two responses at once (a create while one is requested or active),
 *  - never a response.create while the caller talks,
 *  - never a cancel without an active response, only with that response's id, and only once,
 *  - never a truncate beyond the audio the model produced or the bridge sent,
 *  - no throw, and nothing after the call ended (no timer re-armed, nothing sent).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SessionAction } from '../../src/call/session.js';
import type { RealtimeClientEvent } from '../../src/realtime/events.js';
import { SessionHarness, STREAM_SID } from '../support/session-harness.js';

type Command =
  | { t: 'advance'; ms: number }
  | { t: 'speech-start' }
  | { t: 'speech-stop' }
  | { t: 'model-step'; deltaMs: number; toolCall: boolean }
  /** several model events in a row: answers get far enough to be heard, and interrupted */
  | { t: 'model-burst'; steps: number; deltaMs: number; gapMs: number }
  | { t: 'key'; digit: string }
  | { t: 'drop-upstream' }
  | { t: 'open-upstream' }
  | { t: 'junk'; which: number }
  | { t: 'tool-result'; ok: boolean };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1500 }) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'speech-start' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'speech-stop' as const }) },
  { weight: 12, arbitrary: fc.record({ t: fc.constant('model-step' as const), deltaMs: fc.integer({ min: 10, max: 400 }), toolCall: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('model-burst' as const), steps: fc.integer({ min: 2, max: 10 }), deltaMs: fc.integer({ min: 20, max: 200 }), gapMs: fc.integer({ min: 0, max: 120 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('key' as const), digit: fc.constantFrom('1', '5', '#', '*', '9') }) },
  { weight: 1, arbitrary: fc.constant({ t: 'drop-upstream' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'open-upstream' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('junk' as const), which: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('tool-result' as const), ok: fc.boolean() }) },
);

interface ModelResponse {
  id: string;
  itemId: string | null;
  producedMs: number;
  /** audio this response will produce before it is done */
  targetMs: number;
  audioDone: boolean;
  cancelled: boolean;
  toolCall: boolean;
  toolCallSent: boolean;
}

/** The Realtime API as the session sees it, reduced to what the guarantees are about. */
class ModelStandIn {
  open = false;
  connectRequested = false;
  callerSpeaking = false;
  requested = 0;
  active: ModelResponse | null = null;
  readonly producedByItem = new Map<string, number>();
  readonly openToolCalls: string[] = [];
  readonly violations: string[] = [];
  private seq = 0;

  constructor(private readonly h: SessionHarness) {}

  /** Everything the session sent since the last look, in order. */
  consume(actions: readonly SessionAction[]): void {
    for (const a of actions) {
      if (a.kind === 'connect-upstream') this.connectRequested = true;
      if (a.kind === 'close-upstream') this.lose();
      if (a.kind === 'run-tool') this.openToolCalls.push(a.callId);
      if (a.kind === 'send-realtime') this.onClientEvent(a.event);
    }
  }

  private onClientEvent(ev: RealtimeClientEvent): void {
    if (!this.open) {
      this.violations.push(`${ev.type} sent while the upstream is not open`);
      return;
    }
    switch (ev.type) {
      case 'session.update':
        this.h.sessionUpdated();
        return;
      case 'response.create':
        if (this.requested > 0 || this.active !== null) this.violations.push('response.create while another response is requested or active');
        if (this.callerSpeaking) this.violations.push('response.create while the caller talks');
        this.requested += 1;
        return;
      case 'response.cancel':
        if (this.active === null) this.violations.push(`response.cancel ${ev.response_id ?? '(no id)'} with no active response`);
        else if (ev.response_id !== this.active.id) this.violations.push(`response.cancel ${ev.response_id ?? '(no id)'} while ${this.active.id} is active`);
        else if (this.active.cancelled) this.violations.push(`response.cancel ${ev.response_id} twice`);
        else this.active.cancelled = true;
        return;
      case 'conversation.item.truncate': {
        const produced = this.producedByItem.get(ev.item_id);
        if (produced === undefined) this.violations.push(`truncate of unknown item ${ev.item_id}`);
        else if (ev.audio_end_ms > produced) this.violations.push(`truncate at ${ev.audio_end_ms} ms of ${ev.item_id}, which has only ${produced} ms`);
        if (ev.audio_end_ms > this.h.now) this.violations.push(`truncate at ${ev.audio_end_ms} ms, more than the call lasted`);
        return;
      }
      default:
        return;
    }
  }

  private lose(): void {
    this.open = false;
    this.requested = 0;
    this.active = null;
    this.callerSpeaking = false;
  }

  drop(): void {
    if (!this.open) return;
    this.lose();
    this.connectRequested = false;
    this.h.feed({ kind: 'upstream-closed', code: 1006, reason: 'dropped' });
  }

  openIfAsked(): void {
    if (this.open || !this.connectRequested) return;
    this.open = true;
    this.connectRequested = false;
    this.h.feed({ kind: 'upstream-open' });
  }

  speechStart(): void {
    if (!this.open || this.callerSpeaking) return;
    this.callerSpeaking = true;
    this.h.realtime({ type: 'input_audio_buffer.speech_started', audio_start_ms: Math.round(this.h.now), item_id: `item_user_${this.seq}` });
  }

  speechStop(): void {
    if (!this.open || !this.callerSpeaking) return;
    this.callerSpeaking = false;
    this.seq += 1;
    this.h.realtime({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: Math.round(this.h.now), item_id: `item_user_${this.seq}` });
    this.h.realtime({ type: 'input_audio_buffer.committed', item_id: `item_user_${this.seq}`, previous_item_id: null });
  }

  /** One more event of the response in progress, as the API orders them. */
  step(deltaMs: number, toolCall: boolean): void {
    if (!this.open) return;
    const r = this.active;
    if (r === null) {
      if (this.requested === 0) return;
      this.requested -= 1;
      this.seq += 1;
      this.active = { id: `resp_${this.seq}`, itemId: null, producedMs: 0, targetMs: 200 + ((this.seq * 337) % 2500), audioDone: false, cancelled: false, toolCall, toolCallSent: false };
      this.h.responseCreated(this.active.id);
      return;
    }
    if (r.cancelled) {
      this.finish(r, 'cancelled');
      return;
    }
    if (r.toolCall && !r.toolCallSent) {
      r.toolCallSent = true;
      this.seq += 1;
      this.h.functionCall(r.id, `item_fc_${this.seq}`, `call_${this.seq}`, this.seq % 5 === 0 ? 'end_call' : 'lookup_order', '{"id":"42"}');
      return;
    }
    if (r.itemId === null) {
      this.seq += 1;
      r.itemId = `item_${this.seq}`;
      this.producedByItem.set(r.itemId, 0);
      this.h.itemAdded(r.id, r.itemId);
      return;
    }
    if (r.producedMs < r.targetMs) {
      const ms = Math.min(deltaMs, r.targetMs - r.producedMs);
      r.producedMs += ms;
      this.producedByItem.set(r.itemId, r.producedMs);
      this.h.delta(r.id, r.itemId, ms);
      return;
    }
    if (!r.audioDone) {
      r.audioDone = true;
      this.h.audioDone(r.id, r.itemId);
      return;
    }
    this.finish(r, 'completed');
  }

  private finish(r: ModelResponse, status: 'completed' | 'cancelled'): void {
    this.active = null;
    this.h.responseDone(r.id, status);
  }
}

function run(commands: readonly Command[]): { violations: string[]; ended: boolean } {
  const h = new SessionHarness();
  const model = new ModelStandIn(h);
  let seen = 0;
  // The stand-in may answer at once (session.updated), which makes more actions: look until quiet.
  const look = (): void => {
    while (seen < h.actions.length) {
      const fresh = h.actions.slice(seen).map((a) => a.action);
      seen = h.actions.length;
      model.consume(fresh);
    }
  };
  h.sendStart();
  look();
  model.openIfAsked();
  look();
  let endedAt = -1;
  for (const c of commands) {
    switch (c.t) {
      case 'advance':
        h.advance(c.ms);
        break;
      case 'speech-start':
        model.speechStart();
        break;
      case 'speech-stop':
        model.speechStop();
        break;
      case 'model-step':
        model.step(c.deltaMs, c.toolCall);
        break;
      case 'model-burst':
        for (let i = 0; i < c.steps; i++) {
          model.step(c.deltaMs, false);
          look();
          h.advance(c.gapMs);
          look();
        }
        break;
      case 'key':
        h.dtmf(c.digit);
        break;
      case 'drop-upstream':
        model.drop();
        break;
      case 'open-upstream':
        model.openIfAsked();
        break;
      case 'junk':
        if (c.which === 0) h.feed({ kind: 'twilio-invalid', reason: 'not-json', detail: 'garbage', fatal: false });
        else if (c.which === 1) h.realtime({ type: 'rate_limits.updated', rate_limits: [] } as never);
        else if (c.which === 2) h.feed({ kind: 'twilio', message: { event: 'mark', sequenceNumber: '9', streamSid: STREAM_SID, mark: { name: 'cb:99:99' } } });
        else h.feed({ kind: 'realtime', event: { type: 'error', event_id: 'e', error: { type: 'invalid_request_error', code: 'some_code', message: 'x', param: null, event_id: null } } as never });
        break;
      case 'tool-result': {
        const callId = model.openToolCalls.shift();
        if (callId !== undefined) h.toolResult(callId, c.ok ? { ok: true, output: '{"status":"shipped"}' } : { ok: false, error: 'tool failed' });
        break;
      }
    }
    look();
    if (h.session.isEnded && endedAt < 0) endedAt = h.actions.length;
  }
  // The caller hangs up; after the end nothing more may happen, whatever arrives or fires.
  h.feed({ kind: 'twilio-closed', code: 1000 });
  if (endedAt < 0) endedAt = h.actions.length;
  const ends = h.actions.filter((a) => a.action.kind === 'end-call').length;
  const afterEnd = h.actions.slice(endedAt).filter((a) => a.action.kind !== 'log');
  const violations = [...model.violations];
  if (ends !== 1) violations.push(`${ends} end-call actions`);
  h.advance(60_000);
  h.speechStarted();
  h.delta('resp_late', 'item_late', 100);
  const late = h.actions.slice(endedAt).filter((a) => a.action.kind !== 'log');
  if (late.length !== afterEnd.length) violations.push(`actions after the end: ${late.slice(afterEnd.length).map((a) => a.action.kind).join(', ')}`);
  return { violations, ended: h.session.isEnded };
}

describe('CallSession under random interleavings', () => {
  it('keeps every turn-taking guarantee, throws nothing, and does nothing after the end', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 200 }), (commands) => {
        const result = run(commands);
        expect(result.violations).toEqual([]);
        expect(result.ended).toBe(true);
      }),
      { numRuns: 2000, seed: 20261130 },
    );
  });

  it('the stand-in catches what it claims to: a second create, a create over the caller, a stray cancel', () => {
    const h = new SessionHarness();
    h.now = 1000;
    const model = new ModelStandIn(h);
    model.open = true;
    model.consume([{ kind: 'send-realtime', event: { type: 'response.create' } }]);
    model.consume([{ kind: 'send-realtime', event: { type: 'response.create' } }]);
    model.callerSpeaking = true;
    model.requested = 0;
    model.consume([{ kind: 'send-realtime', event: { type: 'response.create' } }]);
    model.consume([{ kind: 'send-realtime', event: { type: 'response.cancel', response_id: 'resp_x' } }]);
    model.consume([{ kind: 'send-realtime', event: { type: 'conversation.item.truncate', item_id: 'item_nope', content_index: 0, audio_end_ms: 10 } }]);
    expect(model.violations).toEqual([
      'response.create while another response is requested or active',
      'response.create while the caller talks',
      'response.cancel resp_x with no active response',
      'truncate of unknown item item_nope',
    ]);
  });
});
