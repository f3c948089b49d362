import { setTimeout as sleep } from 'node:timers/promises';
import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterMetrics } from '../../src/observability/cluster-metrics.js';
import { MAX_UPSTREAM_ERROR_CODES, Metrics } from '../../src/observability/metrics.js';

/** Samples of the text exposition, keyed `name{k="v",...}` with labels sorted, as the format allows any order. */
async function scrape(metrics: Metrics): Promise<Map<string, number>> {
  const samples = new Map<string, number>();
  for (const line of (await metrics.render()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`unparsable sample line: ${line}`);
    const [, name = '', labelText = '', value = ''] = match;
    const labels = [...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)]
      .map(([, k = '', v = '']) => `${k}="${v}"`)
      .sort();
    samples.set(labels.length === 0 ? name : `${name}{${labels.join(',')}}`, Number(value));
  }
  return samples;
}

function sample(samples: Map<string, number>, key: string): number {
  const value = samples.get(key);
  if (value === undefined) throw new Error(`no sample ${key}; have ${[...samples.keys()].join(' ')}`);
  return value;
}

const started: Metrics[] = [];
function metrics(collectDefault = false): Metrics {
  const m = new Metrics({ collectDefault });
  started.push(m);
  return m;
}

afterEach(() => {
  for (const m of started.splice(0)) m.stop();
});

describe('Metrics', () => {
  it('starts every known label value at zero and touches nothing global', async () => {
    const s = await scrape(metrics());
    expect(sample(s, 'callbridge_active_calls')).toBe(0);
    for (const outcome of ['completed', 'caller-hung-up', 'upstream-failed', 'rejected', 'error', 'drained', 'max-duration']) {
      expect(sample(s, `callbridge_calls_total{outcome="${outcome}"}`)).toBe(0);
    }
    expect(sample(s, 'callbridge_interruptions_total{cancel_sent="true"}')).toBe(0);
    expect(sample(s, 'callbridge_interruptions_total{cancel_sent="false"}')).toBe(0);
    expect(sample(s, 'callbridge_upstream_reconnects_total{outcome="ok"}')).toBe(0);
    expect(sample(s, 'callbridge_upstream_reconnects_total{outcome="failed"}')).toBe(0);
    for (const reason of ['bad-signature', 'bad-token', 'busy', 'draining', 'protocol']) {
      expect(sample(s, `callbridge_rejected_connections_total{reason="${reason}"}`)).toBe(0);
    }
    expect(sample(s, 'callbridge_first_audio_latency_ms_count')).toBe(0);
    // No code has been seen: an open label set has no series until it has one.
    expect([...s.keys()].some((k) => k.startsWith('callbridge_upstream_errors_total'))).toBe(false);
    // Nor does a runtime metric appear unless asked for.
    expect([...s.keys()].some((k) => k.startsWith('process_') || k.startsWith('nodejs_') || k.includes('event_loop'))).toBe(false);
    expect(globalRegistry.getMetricsAsArray().filter((m) => m.name.startsWith('callbridge_'))).toEqual([]);
  });

  it('keeps two instances apart', async () => {
    const a = metrics();
    const b = metrics();
    a.callStarted();
    a.callEnded('drained');
    a.callStarted();
    a.upstreamError('server_error');
    const [sa, sb] = [await scrape(a), await scrape(b)];
    expect(sample(sa, 'callbridge_active_calls')).toBe(1);
    expect(sample(sa, 'callbridge_calls_total{outcome="drained"}')).toBe(1);
    expect(sample(sa, 'callbridge_upstream_errors_total{code="server_error"}')).toBe(1);
    expect(sample(sb, 'callbridge_active_calls')).toBe(0);
    expect(sample(sb, 'callbridge_calls_total{outcome="drained"}')).toBe(0);
    expect(sb.has('callbridge_upstream_errors_total{code="server_error"}')).toBe(false);
  });

  it('moves the active-calls gauge up and down, never below zero', async () => {
    const m = metrics();
    m.callStarted();
    m.callStarted();
    m.callStarted();
    expect(sample(await scrape(m), 'callbridge_active_calls')).toBe(3);
    m.callEnded('completed');
    m.callEnded('caller-hung-up');
    let s = await scrape(m);
    expect(sample(s, 'callbridge_active_calls')).toBe(1);
    expect(sample(s, 'callbridge_calls_total{outcome="completed"}')).toBe(1);
    expect(sample(s, 'callbridge_calls_total{outcome="caller-hung-up"}')).toBe(1);
    m.callEnded('max-duration');
    m.callEnded('error');
    s = await scrape(m);
    expect(sample(s, 'callbridge_active_calls')).toBe(0);
    // The unpaired end is still an ended call; only the gauge refuses to go negative.
    expect(sample(s, 'callbridge_calls_total{outcome="error"}')).toBe(1);
  });

  it('records interruptions, heard-ms and reaction time', async () => {
    const m = metrics();
    m.interruption({ heardMs: 1200, reactionMs: 0.3, cancelSent: true });
    m.interruption({ heardMs: null, reactionMs: 40, cancelSent: false });
    const s = await scrape(m);
    expect(sample(s, 'callbridge_interruptions_total{cancel_sent="true"}')).toBe(1);
    expect(sample(s, 'callbridge_interruptions_total{cancel_sent="false"}')).toBe(1);

    // Only the truncating barge-in has a heard position.
    expect(sample(s, 'callbridge_interruption_heard_ms_count')).toBe(1);
    expect(sample(s, 'callbridge_interruption_heard_ms_sum')).toBe(1200);
    expect(sample(s, 'callbridge_interruption_heard_ms_bucket{le="1000"}')).toBe(0);
    expect(sample(s, 'callbridge_interruption_heard_ms_bucket{le="2000"}')).toBe(1);
    expect(sample(s, 'callbridge_interruption_heard_ms_bucket{le="30000"}')).toBe(1);

    expect(sample(s, 'callbridge_barge_in_reaction_ms_count')).toBe(2);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_sum')).toBeCloseTo(40.3, 9);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_bucket{le="0.1"}')).toBe(0);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_bucket{le="0.5"}')).toBe(1);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_bucket{le="25"}')).toBe(1);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_bucket{le="50"}')).toBe(2);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_bucket{le="500"}')).toBe(2);
  });

  it('records first-audio latency', async () => {
    const m = metrics();
    m.firstAudioLatency(420);
    m.firstAudioLatency(7000);
    const s = await scrape(m);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="50"}')).toBe(0);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="300"}')).toBe(0);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="500"}')).toBe(1);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="5000"}')).toBe(1);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="+Inf"}')).toBe(2);
    expect(sample(s, 'callbridge_first_audio_latency_ms_sum')).toBe(7420);
  });

  it('drops measurements that cannot be real instead of throwing into the call', async () => {
    const m = metrics();
    expect(() => {
      m.firstAudioLatency(Number.NaN);
      m.firstAudioLatency(-5);
      m.interruption({ heardMs: Number.POSITIVE_INFINITY, reactionMs: Number.NaN, cancelSent: true });
    }).not.toThrow();
    const s = await scrape(m);
    expect(sample(s, 'callbridge_first_audio_latency_ms_count')).toBe(0);
    expect(sample(s, 'callbridge_interruption_heard_ms_count')).toBe(0);
    expect(sample(s, 'callbridge_barge_in_reaction_ms_count')).toBe(0);
    // The barge-in itself still happened.
    expect(sample(s, 'callbridge_interruptions_total{cancel_sent="true"}')).toBe(1);
  });

  it('records reconnects and rejected connections', async () => {
    const m = metrics();
    m.reconnect('ok');
    m.reconnect('failed');
    m.reconnect('failed');
    m.rejectedConnection('bad-signature');
    m.rejectedConnection('busy');
    m.rejectedConnection('busy');
    const s = await scrape(m);
    expect(sample(s, 'callbridge_upstream_reconnects_total{outcome="ok"}')).toBe(1);
    expect(sample(s, 'callbridge_upstream_reconnects_total{outcome="failed"}')).toBe(2);
    expect(sample(s, 'callbridge_rejected_connections_total{reason="bad-signature"}')).toBe(1);
    expect(sample(s, 'callbridge_rejected_connections_total{reason="busy"}')).toBe(2);
    expect(sample(s, 'callbridge_rejected_connections_total{reason="draining"}')).toBe(0);
  });

  it('counts start verifications per check and outcome, from zero, and drops an outcome no check has', async () => {
    const m = metrics();
    let s = await scrape(m);
    for (const outcome of ['in-progress', 'refused', 'unverified']) expect(sample(s, `callbridge_start_verifications_total{check="call-status",outcome="${outcome}"}`)).toBe(0);
    for (const outcome of ['claimed', 'refused', 'unverified']) expect(sample(s, `callbridge_start_verifications_total{check="cluster-claim",outcome="${outcome}"}`)).toBe(0);
    expect(sample(s, 'callbridge_rejected_connections_total{reason="replayed"}')).toBe(0);
    m.startVerification('call-status', 'in-progress');
    m.startVerification('call-status', 'unverified');
    m.startVerification('cluster-claim', 'refused');
    m.startVerification('call-status', 'claimed');
    m.rejectedConnection('replayed');
    s = await scrape(m);
    expect(sample(s, 'callbridge_start_verifications_total{check="call-status",outcome="in-progress"}')).toBe(1);
    expect(sample(s, 'callbridge_start_verifications_total{check="call-status",outcome="unverified"}')).toBe(1);
    expect(sample(s, 'callbridge_start_verifications_total{check="cluster-claim",outcome="refused"}')).toBe(1);
    expect(s.has('callbridge_start_verifications_total{check="call-status",outcome="claimed"}')).toBe(false);
    expect(sample(s, 'callbridge_rejected_connections_total{reason="replayed"}')).toBe(1);
  });

  it('bounds the upstream error code label', async () => {
    const m = metrics();
    m.upstreamError('rate_limit_exceeded');
    m.upstreamError('rate_limit_exceeded');
    m.upstreamError('Not-A-Code');
    m.upstreamError('x'.repeat(65));
    m.upstreamError('');
    m.upstreamError('code_9');
    m.upstreamError(null);
    let s = await scrape(m);
    expect(sample(s, 'callbridge_upstream_errors_total{code="rate_limit_exceeded"}')).toBe(2);
    expect(sample(s, 'callbridge_upstream_errors_total{code="other"}')).toBe(5);
    expect([...s.keys()].filter((k) => k.includes('Not-A-Code') || k.includes('xxx'))).toEqual([]);

    // One code is already admitted; fill up to the limit, then a new code is 'other'.
    for (let i = 1; i < MAX_UPSTREAM_ERROR_CODES; i++) m.upstreamError(`code_${'a'.repeat(i)}`);
    m.upstreamError('one_too_many');
    m.upstreamError('rate_limit_exceeded');
    s = await scrape(m);
    const codes = [...s.keys()].filter((k) => k.startsWith('callbridge_upstream_errors_total{'));
    expect(codes).toHaveLength(MAX_UPSTREAM_ERROR_CODES + 1);
    expect(s.has('callbridge_upstream_errors_total{code="one_too_many"}')).toBe(false);
    expect(sample(s, 'callbridge_upstream_errors_total{code="other"}')).toBe(6);
    // Codes admitted before the limit keep counting under their own name.
    expect(sample(s, 'callbridge_upstream_errors_total{code="rate_limit_exceeded"}')).toBe(3);
  });

  it('serves the Prometheus text content type', () => {
    expect(metrics().contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  describe('with default metrics', () => {
    it('adds runtime metrics, and two instances do not collide over them', async () => {
      const a = metrics(true);
      const b = metrics(true);
      a.callStarted();
      for (const m of [a, b]) {
        const s = await scrape(m);
        expect(s.has('process_cpu_user_seconds_total')).toBe(true);
        expect(s.has('nodejs_eventloop_lag_seconds')).toBe(true);
        expect(s.has('callbridge_event_loop_delay_ms_count')).toBe(true);
      }
      expect(sample(await scrape(a), 'callbridge_active_calls')).toBe(1);
      expect(sample(await scrape(b), 'callbridge_active_calls')).toBe(0);
      expect(globalRegistry.getMetricsAsArray()).toEqual([]);
    });

    it('puts an event-loop stall in the event-loop delay histogram, and stop() ends sampling', async () => {
      const m = metrics(true);
      await scrape(m); // starts the next interval afresh
      await sleep(50);
      const until = performance.now() + 80;
      while (performance.now() < until) {
        // blocking the loop is the point
      }
      await sleep(50);
      const s = await scrape(m);
      const count = sample(s, 'callbridge_event_loop_delay_ms_count');
      // The tick due during the 80 ms stall ran at least 70 ms late.
      expect(count - sample(s, 'callbridge_event_loop_delay_ms_bucket{le="50"}')).toBeGreaterThanOrEqual(1);
      expect(sample(s, 'callbridge_event_loop_delay_ms_bucket{le="+Inf"}')).toBe(count);
      // The stall's sample is observed at its own value (~70-80 ms), not at a bucket bound or 0.
      expect(sample(s, 'callbridge_event_loop_delay_ms_sum')).toBeGreaterThan(60);

      m.stop();
      const afterStop = sample(await scrape(m), 'callbridge_event_loop_delay_ms_count');
      await sleep(60);
      expect(sample(await scrape(m), 'callbridge_event_loop_delay_ms_count')).toBe(afterStop);
    });
  });
});

/** Samples of an exposition text, as scrape() reads a Metrics. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`unparsable sample line: ${line}`);
    const [, name = '', labelText = '', value = ''] = match;
    const labels = [...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)].map(([, k = '', v = '']) => `${k}="${v}"`).sort();
    samples.set(labels.length === 0 ? name : `${name}{${labels.join(',')}}`, Number(value));
  }
  return samples;
}

describe('ClusterMetrics (WORKERS > 1: the primary aggregates the workers)', () => {
  it('sums the workers: active calls, outcomes, histograms', async () => {
    const [a, b] = [metrics(), metrics()];
    a.callStarted();
    a.callStarted();
    b.callStarted();
    a.callEnded('completed');
    b.callEnded('idle');
    b.callStarted();
    a.firstAudioLatency(120);
    b.firstAudioLatency(80);
    const cluster = new ClusterMetrics();
    cluster.record(1, await a.snapshot());
    cluster.record(2, await b.snapshot());
    const s = parse(await cluster.render());
    expect(sample(s, 'callbridge_active_calls')).toBe(2);
    expect(sample(s, 'callbridge_calls_total{outcome="completed"}')).toBe(1);
    expect(sample(s, 'callbridge_calls_total{outcome="idle"}')).toBe(1);
    expect(sample(s, 'callbridge_first_audio_latency_ms_count')).toBe(2);
    expect(sample(s, 'callbridge_first_audio_latency_ms_sum')).toBe(200);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="100"}')).toBe(1);
    expect(sample(s, 'callbridge_first_audio_latency_ms_bucket{le="200"}')).toBe(2);
  });

  it("keeps a dead worker's counters as last reported, so they never go down; its gauges go with it", async () => {
    const [a, b] = [metrics(), metrics()];
    a.callStarted();
    a.callEnded('completed');
    a.callStarted();
    b.callStarted();
    b.callEnded('completed');
    const cluster = new ClusterMetrics();
    cluster.record(1, await a.snapshot());
    cluster.record(2, await b.snapshot());
    cluster.retire(1);
    const replacement = metrics();
    cluster.record(3, await replacement.snapshot());
    const s = parse(await cluster.render());
    expect(sample(s, 'callbridge_active_calls')).toBe(0);
    expect(sample(s, 'callbridge_calls_total{outcome="completed"}')).toBe(2);
    // Many deaths are folded into one retired snapshot, still counting every one.
    for (let id = 10; id < 30; id++) {
      const m = metrics();
      m.callStarted();
      m.callEnded('agent-ended');
      cluster.record(id, await m.snapshot());
      cluster.retire(id);
    }
    const after = parse(await cluster.render());
    expect(sample(after, 'callbridge_calls_total{outcome="agent-ended"}')).toBe(20);
    expect(sample(after, 'callbridge_calls_total{outcome="completed"}')).toBe(2);
  });

  it('aggregates process metrics as prom-client does: start time omitted, version once, memory summed', async () => {
    const [a, b] = [metrics(true), metrics(true)];
    const cluster = new ClusterMetrics();
    const snapA = await a.snapshot();
    cluster.record(1, snapA);
    cluster.record(2, await b.snapshot());
    const text = await cluster.render();
    const s = parse(text);
    expect(text).not.toContain('process_start_time_seconds');
    expect([...s.keys()].filter((k) => k.startsWith('nodejs_version_info'))).toHaveLength(1);
    const heapOfA = snapA.find((f) => f.name === 'nodejs_heap_size_total_bytes')?.values[0]?.value ?? 0;
    expect(sample(s, 'nodejs_heap_size_total_bytes')).toBeGreaterThan(heapOfA);
    // A snapshot crosses the IPC channel structured-cloned (the primary forks with 'advanced'
    // serialization: JSON would turn a NaN gauge into null, then 0): it survives the trip unchanged.
    expect(structuredClone(snapA)).toEqual(snapA);
  });
});
