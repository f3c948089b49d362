import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { Admission } from '../../src/server/admission.js';
import { callObserverFactory } from '../../src/server/call-observer.js';

const A = 'CA00000000000000000000000000000001';

function setUp(): { metrics: Metrics; admission: Admission; observe: ReturnType<typeof callObserverFactory> } {
  const metrics = new Metrics();
  const admission = new Admission({ maxCalls: 5, maxCallDurationMs: 10_000, wallClock: () => 0 });
  return { metrics, admission, observe: callObserverFactory(metrics) };
}

async function sample(metrics: Metrics, series: string): Promise<number> {
  const line = (await metrics.render()).split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

describe('the per-connection call observer', () => {
  it('counts a call started and ended once, by its outcome, however often the bridge reports it', async () => {
    const { metrics, admission, observe } = setUp();
    const stream = admission.openStream();
    const observer = observe(stream);
    stream.claim(A, false);
    observer.callStarted();
    observer.callStarted();
    expect(await sample(metrics, 'callbridge_active_calls')).toBe(1);
    observer.callEnded('transferred', true);
    observer.callEnded('error', true);
    expect(await sample(metrics, 'callbridge_active_calls')).toBe(0);
    expect(await sample(metrics, 'callbridge_calls_total{outcome="transferred"}')).toBe(1);
    expect(await sample(metrics, 'callbridge_calls_total{outcome="error"}')).toBe(0);
    expect([admission.pendingStreams, admission.startedCalls]).toEqual([0, 0]);
  });

  it.each([
    ['a bad call token', 'unauthorized', false, 'bad-token'],
    ['a replay refused by admission', 'unauthorized', true, 'replayed'],
    ['no start', 'protocol-violation', false, 'protocol'],
  ] as const)('a stream that never started is a rejected connection: %s', async (_name, reason, replay, rejected) => {
    const { metrics, admission, observe } = setUp();
    if (replay) {
      const live = admission.openStream();
      live.claim(A, false);
      live.started();
    }
    const stream = admission.openStream();
    const observer = observe(stream);
    if (replay) stream.claim(A, false);
    observer.callEnded(reason, false);
    expect(await sample(metrics, `callbridge_rejected_connections_total{reason="${rejected}"}`)).toBe(1);
    expect(admission.pendingStreams).toBe(0);
  });
});
