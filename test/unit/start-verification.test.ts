import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { clusterClaimCheck, createStartVerifier } from '../../src/twilio/start-verification.js';
import type { CheckOutcome, StartCheck, StartCheckName } from '../../src/twilio/start-verification.js';

const CALL = { callSid: 'CA00000000000000000000000000000001', resume: false };

function logSink(): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('debug', sink).child({ callSid: CALL.callSid }), lines };
}

/** A check whose run returns `outcome()`: made at run time, so a rejection is never left unhandled. */
function check(name: StartCheckName, outcome: () => Promise<CheckOutcome>): StartCheck {
  return { name, run: outcome };
}

const never = (): Promise<CheckOutcome> => new Promise<CheckOutcome>(() => undefined);

describe('createStartVerifier', () => {
  it('passes when every check passes, and records each', async () => {
    const recorded: string[] = [];
    const verify = createStartVerifier(
      [check('call-status', async () => ({ result: 'passed', label: 'in-progress' })), check('cluster-claim', async () => ({ result: 'passed', label: 'claimed' }))],
      { record: (c, o) => recorded.push(`${c}:${o}`) },
    );
    await expect(verify(CALL, logSink().logger)).resolves.toEqual({ ok: true });
    expect(recorded.sort()).toEqual(['call-status:in-progress', 'cluster-claim:claimed']);
  });

  it('settles on the first refusal without waiting for a slow check', async () => {
    const verify = createStartVerifier([check('call-status', never), check('cluster-claim', async () => ({ result: 'refused', reason: 'seen by another worker' }))], {
      timeoutMs: 60_000,
      record: () => undefined,
    });
    await expect(verify(CALL, logSink().logger)).resolves.toEqual({ ok: false, reason: 'cluster-claim: seen by another worker' });
  });

  it('lets the call go on when a check times out or fails, warning with the call and the error', async () => {
    const recorded: string[] = [];
    const { logger, lines } = logSink();
    const verify = createStartVerifier([check('call-status', never), check('cluster-claim', () => Promise.reject(new Error('not connected to the primary')))], {
      timeoutMs: 50,
      record: (c, o) => recorded.push(`${c}:${o}`),
    });
    const started = Date.now();
    await expect(verify(CALL, logger)).resolves.toEqual({ ok: true });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(recorded.sort()).toEqual(['call-status:unverified', 'cluster-claim:unverified']);
    const warnings = lines.filter((l) => l['level'] === 'warn');
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ callSid: CALL.callSid, check: 'call-status', err: 'no answer within 50 ms' }),
        expect.objectContaining({ callSid: CALL.callSid, check: 'cluster-claim', err: 'not connected to the primary' }),
      ]),
    );
  });

  it('passes at once with no checks', async () => {
    await expect(createStartVerifier([], { record: () => undefined })(CALL, logSink().logger)).resolves.toEqual({ ok: true });
  });
});

describe('clusterClaimCheck', () => {
  it('asks the primary with the resume flag and turns its answer into an outcome', async () => {
    const asked: Array<[string, boolean]> = [];
    const shared = {
      claim: async (callSid: string, resume: boolean) => {
        asked.push([callSid, resume]);
        return resume ? ({ ok: true } as const) : ({ ok: false, reason: 'already had its stream' } as const);
      },
      allowResume: () => undefined,
    };
    await expect(clusterClaimCheck(shared).run({ ...CALL, resume: true })).resolves.toEqual({ result: 'passed', label: 'claimed' });
    await expect(clusterClaimCheck(shared).run(CALL)).resolves.toEqual({ result: 'refused', reason: 'already had its stream' });
    expect(asked).toEqual([
      [CALL.callSid, true],
      [CALL.callSid, false],
    ]);
  });
});
