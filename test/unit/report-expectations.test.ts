import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkExpectations, EXPECTATION_KEYS, ExpectationsError, loadExpectations, parseExpectations } from '../../src/report/expectations.js';
import type { CallReport } from '../../src/report/schema.js';
import { REPORT_FORMAT } from '../../src/report/schema.js';

function report(overrides: Partial<CallReport> = {}): CallReport {
  return {
    format: REPORT_FORMAT,
    timestamp: 0,
    callSid: 'CA1',
    streamSid: 'MZ1',
    from: null,
    to: null,
    direction: 'inbound',
    profile: null,
    resumed: false,
    startedAt: '2025-01-01T00:00:00.000Z',
    endedAt: '2025-01-01T00:00:10.000Z',
    durationMs: 10_000,
    endReason: 'agent-ended',
    sessionEndReason: 'agent-ended',
    transcript: [
      { role: 'agent', atMs: 100, itemId: 'a1', responseId: 'r1', purpose: 'answer', text: 'Your order has shipped today.', heardText: 'Your order has', interrupted: true, audioMs: 2000, heardMs: 900 },
    ],
    interruptions: [{ atMs: 1000, by: 'speech', responseId: 'r1', itemId: 'a1', heardMs: 900, reactionMs: 0.8, cancelled: false }],
    toolCalls: [{ atMs: 50, callId: 'c1', name: 'lookup_order', arguments: '{}', ran: true, ok: true, output: '{}', durationMs: 30 }],
    keypad: [],
    latency: { firstAudioMs: { count: 2, p50: 400, p95: 700, max: 700 }, bargeInReactionMs: { count: 1, p50: 0.8, p95: 0.8, max: 0.8 } },
    apiErrors: { count: 0, byCode: {}, errors: [] },
    upstreamReconnects: 0,
    omitted: {},
    ...overrides,
  };
}

describe('expectations', () => {
  it('accepts every documented key, a single string wherever a list is taken', () => {
    const raw = {
      maxApiErrors: 0,
      endReason: 'agent-ended',
      toolCalled: 'lookup_order',
      toolNotCalled: ['transfer_call'],
      maxToolErrors: 0,
      minInterruptions: 1,
      maxInterruptions: 2,
      interruptionsHeardWithinMs: 300,
      maxFirstAudioMs: 1500,
      callerHeard: 'your order',
      maxDurationMs: 60_000,
    };
    expect(Object.keys(raw).sort()).toEqual([...EXPECTATION_KEYS].sort());
    expect(parseExpectations(raw, 'e.json')).toEqual({ ...raw, endReason: ['agent-ended'], toolCalled: ['lookup_order'], callerHeard: ['your order'] });
  });

  it('refuses a bad file whole, naming each offending key', () => {
    const problems = (raw: unknown): string[] => {
      try {
        parseExpectations(raw, 'e.json');
      } catch (err) {
        if (err instanceof ExpectationsError) return err.problems;
        throw err;
      }
      return [];
    };
    expect(problems({ maxApiError: 0, maxApiErrors: -1, endReason: 'hung-up', toolCalled: [], interruptionsHeardWithinMs: '300' })).toEqual([
      expect.stringContaining('unknown key "maxApiError"'),
      'maxApiErrors must be a whole number ≥ 0, got -1',
      expect.stringMatching(/^endReason must be one of caller-hung-up, agent-ended, .* got "hung-up"$/),
      'toolCalled must be a non-empty string or an array of them, got []',
      'interruptionsHeardWithinMs must be a number of ms ≥ 0, got "300"',
    ]);
    expect(problems({ minInterruptions: 3, maxInterruptions: 1 })).toEqual(['minInterruptions (3) is more than maxInterruptions (1)']);
    expect(problems([1, 2])[0]).toMatch(/^must be a JSON object of expectations/);
  });

  it('names the file when it cannot be read or is not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-expect-'));
    try {
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{ "maxApiErrors": 0,');
      expect(() => loadExpectations(bad)).toThrow(new RegExp(`^${bad}: is not valid JSON`));
      expect(() => loadExpectations(join(dir, 'missing.json'))).toThrow(/missing\.json: cannot be read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes a call that meets them all', () => {
    const e = parseExpectations(
      { maxApiErrors: 0, endReason: ['agent-ended', 'caller-hung-up'], toolCalled: 'lookup_order', toolNotCalled: 'transfer_call', interruptionsHeardWithinMs: 300, maxFirstAudioMs: 1000, callerHeard: 'YOUR ORDER', minInterruptions: 1 },
      'e.json',
    );
    expect(checkExpectations(report(), e)).toEqual([]);
  });

  it('says why, one line each, for every expectation a call misses', () => {
    const e = parseExpectations(
      {
        maxApiErrors: 0,
        endReason: 'agent-ended',
        toolCalled: 'transfer_call',
        toolNotCalled: 'lookup_order',
        interruptionsHeardWithinMs: 0.5,
        maxFirstAudioMs: 500,
        callerHeard: 'shipped today',
        maxInterruptions: 0,
        maxDurationMs: 5000,
      },
      'e.json',
    );
    const failed = checkExpectations(
      report({ apiErrors: { count: 2, byCode: { response_cancel_not_active: 2 }, errors: [] }, endReason: 'caller-hung-up', sessionEndReason: 'twilio-stop' }),
      e,
    );
    expect(failed.map((f) => `${f.key}: ${f.reason}`)).toEqual([
      'maxApiErrors: 2 API errors (response_cancel_not_active ×2), at most 0 expected',
      'maxInterruptions: 1 interruptions, at most 0 expected',
      'interruptionsHeardWithinMs: 1 of 1 barge-ins took longer than 0.5 ms to silence the agent (at 1000 ms: 0.8 ms)',
      'maxFirstAudioMs: first agent audio came 700 ms after a caller\'s turn ended (p50 400 ms), at most 500 ms expected',
      'maxDurationMs: the call lasted 10000 ms, at most 5000 ms expected',
      'toolCalled: transfer_call was not called; tools that ran: lookup_order',
      'toolNotCalled: lookup_order ran 1 time(s) (first at 50 ms), expected never',
      // The agent said it, but the caller cut it off before hearing it.
      'callerHeard: the caller never heard "shipped today"',
      'endReason: ended caller-hung-up (twilio-stop), expected agent-ended',
    ]);
  });
});
