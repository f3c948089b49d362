/**
 * CALL_REPORT_URL delivery against real local HTTP receivers (test/support/peers.ts): retries,
 * no retries, signatures, the bounded queue and the shutdown flush. And REPORTS_DIR files.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import type { ReportFileOutcome, ReportOutcome } from '../../src/observability/metrics.js';
import { Metrics } from '../../src/observability/metrics.js';
import { ReportDelivery } from '../../src/report/deliver.js';
import { prepareReportsDir, ReportFiles, ReportsDirError } from '../../src/report/files.js';
import type { CallReport } from '../../src/report/schema.js';
import { REPORT_FORMAT } from '../../src/report/schema.js';
import { eventually } from '../support/call-rig.js';
import { HttpPeer } from '../support/peers.js';
import type { ReceivedRequest } from '../support/peers.js';

const SECRET = 'report-secret-for-tests';

function report(callSid: string, streamSid = 'MZ1'): CallReport {
  return {
    format: REPORT_FORMAT,
    timestamp: Date.now(),
    callSid,
    streamSid,
    from: '+15550001111',
    to: '+15552223333',
    direction: 'inbound',
    profile: null,
    resumed: false,
    startedAt: new Date().toISOString(),
    endedAt: new Date().toISOString(),
    durationMs: 1000,
    endReason: 'caller-hung-up',
    sessionEndReason: 'twilio-stop',
    transcript: [],
    interruptions: [],
    toolCalls: [],
    keypad: [],
    latency: { firstAudioMs: null, bargeInReactionMs: null },
    apiErrors: { count: 0, byCode: {}, errors: [] },
    upstreamReconnects: 0,
    omitted: {},
  };
}

/** A receiver's check: the signature over the raw body, in constant time. */
function signatureValid(req: ReceivedRequest): boolean {
  const got = Buffer.from(String(req.headers['x-callbridge-signature'] ?? ''));
  const want = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(req.body).digest('hex')}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

interface Logged {
  level: string;
  msg: string;
  callSid?: string;
  [key: string]: unknown;
}

function logSink(): { logger: ReturnType<typeof createLogger>; lines: Logged[] } {
  const lines: Logged[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Logged);
      done();
    },
  });
  return { logger: createLogger('debug', sink), lines };
}

const peers: HttpPeer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) await p.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A receiver answering each request with the next status of `statuses` (the last one repeats). */
async function receiver(statuses: number[]): Promise<HttpPeer> {
  let n = 0;
  const peer = await new HttpPeer((_req, res) => {
    const status = statuses[Math.min(n, statuses.length - 1)] ?? 200;
    n += 1;
    res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'not now');
  }).start();
  peers.push(peer);
  return peer;
}

function delivery(url: string, logger: ReturnType<typeof createLogger>, outcomes: Array<{ outcome: ReportOutcome; latencyMs?: number }>, extra: Partial<ConstructorParameters<typeof ReportDelivery>[0]> = {}): ReportDelivery {
  return new ReportDelivery({
    url,
    secret: SECRET,
    logger,
    onOutcome: (outcome, latencyMs) => outcomes.push({ outcome, ...(latencyMs === undefined ? {} : { latencyMs }) }),
    backoffMs: () => 20,
    ...extra,
  });
}

describe('CALL_REPORT_URL delivery', () => {
  it('retries a receiver that fails twice with 503, then delivers once: the same signed bytes each time', async () => {
    const peer = await receiver([503, 503, 200]);
    const { logger, lines } = logSink();
    const outcomes: Array<{ outcome: ReportOutcome; latencyMs?: number }> = [];
    const d = delivery(`${peer.baseUrl}/reports`, logger, outcomes);
    const r = report('CA0001');
    d.enqueue(r, logger.child({ callSid: r.callSid }));
    await eventually(() => outcomes.length === 1, 'the report settled');

    expect(outcomes).toEqual([{ outcome: 'delivered', latencyMs: expect.any(Number) }]);
    expect(peer.requests).toHaveLength(3);
    for (const req of peer.requests) {
      expect(req.method).toBe('POST');
      expect(req.path).toBe('/reports');
      expect(req.headers['content-type']).toBe('application/json');
      expect(signatureValid(req)).toBe(true);
      expect(req.body).toBe(peer.requests[0]?.body);
    }
    const body = JSON.parse(peer.requests[0]?.body ?? '') as CallReport;
    expect(body).toEqual(r);
    expect(typeof body.timestamp).toBe('number');
    expect(lines.filter((l) => l.msg === 'post-call report delivery failed; retrying').map((l) => [l.callSid, l['detail']])).toEqual([
      ['CA0001', 'HTTP 503'],
      ['CA0001', 'HTTP 503'],
    ]);
    expect(lines.find((l) => l.msg === 'post-call report delivered')).toMatchObject({ callSid: 'CA0001', attempts: 3, status: 200 });
    expect(d.pending).toBe(0);
  });

  it('does not retry a 400: the receiver said no', async () => {
    const peer = await receiver([400]);
    const { logger, lines } = logSink();
    const outcomes: Array<{ outcome: ReportOutcome }> = [];
    const d = delivery(peer.baseUrl, logger, outcomes);
    d.enqueue(report('CA0002'), logger.child({ callSid: 'CA0002' }));
    await eventually(() => outcomes.length === 1, 'the report settled');
    // Given the time a retry would have taken: still one request.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(peer.requests).toHaveLength(1);
    expect(outcomes).toEqual([{ outcome: 'failed' }]);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({ callSid: 'CA0002', msg: 'post-call report refused by CALL_REPORT_URL; not retried', detail: 'HTTP 400' });
  });

  it('retries 429 and network errors, and gives up after the last attempt', async () => {
    const peer = await receiver([429, 200]);
    const { logger } = logSink();
    const outcomes: Array<{ outcome: ReportOutcome }> = [];
    delivery(peer.baseUrl, logger, outcomes).enqueue(report('CA0003'), logger);
    await eventually(() => outcomes.length === 1, 'the 429 retried');
    expect(outcomes[0]?.outcome).toBe('delivered');
    expect(peer.requests).toHaveLength(2);

    // A port nobody listens on: connection refused, every time.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { logger: l2, lines } = logSink();
    const outcomes2: Array<{ outcome: ReportOutcome }> = [];
    delivery(`http://127.0.0.1:${port}/`, l2, outcomes2, { maxAttempts: 3 }).enqueue(report('CA0004'), l2.child({ callSid: 'CA0004' }));
    await eventually(() => outcomes2.length === 1, 'given up');
    expect(outcomes2).toEqual([{ outcome: 'failed' }]);
    expect(lines.filter((l) => l.msg === 'post-call report delivery failed; retrying')).toHaveLength(2);
    expect(lines.find((l) => l.msg === 'post-call report not delivered: every retry failed')).toMatchObject({ callSid: 'CA0004', attempts: 3 });
  });

  it('bounded queue: past its capacity the oldest waiting report is dropped, logged and counted; the rest go out', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const peer = await new HttpPeer(async (_req, res) => {
      await gate;
      res.writeHead(204).end();
    }).start();
    peers.push(peer);
    const { logger, lines } = logSink();
    const outcomes: Array<{ outcome: ReportOutcome }> = [];
    const d = delivery(peer.baseUrl, logger, outcomes, { capacity: 3, concurrency: 1 });
    for (let i = 1; i <= 6; i++) d.enqueue(report(`CA000${i}`), logger.child({ callSid: `CA000${i}` }));
    // One in flight, three waiting: the 5th and 6th each pushed the oldest waiting one out.
    await eventually(() => peer.requests.length === 1, 'the first request in flight');
    expect(d.pending).toBe(4);
    expect(outcomes).toEqual([{ outcome: 'dropped' }, { outcome: 'dropped' }]);
    expect(lines.filter((l) => l.msg.startsWith('post-call report dropped')).map((l) => l.callSid)).toEqual(['CA0002', 'CA0003']);
    release();
    await eventually(() => outcomes.length === 6, 'all settled');
    expect(outcomes.filter((o) => o.outcome === 'delivered')).toHaveLength(4);
    expect(peer.requests.map((r) => (JSON.parse(r.body) as CallReport).callSid)).toEqual(['CA0001', 'CA0004', 'CA0005', 'CA0006']);
  });

  it('enqueue never waits for the receiver', async () => {
    const peer = await new HttpPeer(async () => new Promise<void>(() => undefined)).start(); // never answers
    peers.push(peer);
    const { logger } = logSink();
    const d = delivery(peer.baseUrl, logger, [], { timeoutMs: 60_000 });
    const started = performance.now();
    for (let i = 0; i < 200; i++) d.enqueue(report(`CA${i}`), logger);
    expect(performance.now() - started).toBeLessThan(200);
    await d.flush(0);
  });

  it('flush: waits for the queue to empty, then gives up on what is left, logging each callSid', async () => {
    const peer = await receiver([200]);
    const { logger } = logSink();
    const outcomes: Array<{ outcome: ReportOutcome }> = [];
    const d = delivery(peer.baseUrl, logger, outcomes);
    d.enqueue(report('CA0010'), logger);
    expect(await d.flush(5000)).toEqual({ abandoned: 0 });
    expect(outcomes).toEqual([{ outcome: 'delivered', latencyMs: expect.any(Number) }]);

    const stuck = await new HttpPeer(async () => new Promise<void>(() => undefined)).start();
    peers.push(stuck);
    const { logger: l2, lines } = logSink();
    const outcomes2: Array<{ outcome: ReportOutcome }> = [];
    const d2 = delivery(stuck.baseUrl, l2, outcomes2, { timeoutMs: 60_000, concurrency: 1 });
    d2.enqueue(report('CA0011'), l2.child({ callSid: 'CA0011' }));
    d2.enqueue(report('CA0012'), l2.child({ callSid: 'CA0012' }));
    const started = performance.now();
    expect(await d2.flush(300)).toEqual({ abandoned: 2 });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(outcomes2).toEqual([{ outcome: 'failed' }, { outcome: 'failed' }]);
    expect(lines.filter((l) => l.msg === 'post-call report not delivered: the shutdown ran out of time').map((l) => l.callSid).sort()).toEqual(['CA0011', 'CA0012']);
    // After the flush the process exits: a late report is refused, not silently kept.
    d2.enqueue(report('CA0013'), l2);
    expect(outcomes2.at(-1)).toEqual({ outcome: 'failed' });
  });

  it('counts reports in callbridge_reports_total and the delivery latency', async () => {
    const metrics = new Metrics();
    metrics.report('delivered', 42);
    metrics.report('dropped');
    metrics.report('failed');
    metrics.reportFile('written');
    const text = await metrics.render();
    expect(text).toContain('callbridge_reports_total{outcome="delivered"} 1');
    expect(text).toContain('callbridge_reports_total{outcome="dropped"} 1');
    expect(text).toContain('callbridge_reports_total{outcome="failed"} 1');
    expect(text).toContain('callbridge_report_delivery_ms_count 1');
    expect(text).toContain('callbridge_report_files_total{outcome="written"} 1');
    expect(text).toContain('callbridge_report_files_total{outcome="failed"} 0');
  });
});

describe('REPORTS_DIR files', () => {
  it('writes <callSid>.json atomically; a second stream of the call gets its own file; no temporary file is left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-reports-'));
    dirs.push(dir);
    const outcomes: ReportFileOutcome[] = [];
    const files = new ReportFiles(dir, (o) => outcomes.push(o));
    const { logger } = logSink();
    files.write(report('CA0100', 'MZ1'), logger);
    expect(await files.flush(5000)).toBe(true);
    files.write(report('CA0100', 'MZ2'), logger);
    expect(await files.flush(5000)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['CA0100.MZ2.json', 'CA0100.json']);
    expect((JSON.parse(readFileSync(join(dir, 'CA0100.json'), 'utf8')) as CallReport).streamSid).toBe('MZ1');
    expect((JSON.parse(readFileSync(join(dir, 'CA0100.MZ2.json'), 'utf8')) as CallReport).streamSid).toBe('MZ2');
    expect(outcomes).toEqual(['written', 'written']);
  });

  it('a write failing at run time is logged with the callSid and counted; nothing throws and later writes go on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-reports-'));
    dirs.push(dir);
    const outcomes: ReportFileOutcome[] = [];
    const files = new ReportFiles(join(dir, 'gone'), (o) => outcomes.push(o));
    const { logger, lines } = logSink();
    expect(() => files.write(report('CA0200'), logger.child({ callSid: 'CA0200' }))).not.toThrow();
    await files.flush(5000);
    expect(outcomes).toEqual(['failed']);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({ callSid: 'CA0200', msg: 'post-call report file could not be written' });
  });

  it('refuses a folder that cannot be written, naming the variable and the folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-reports-'));
    dirs.push(dir);
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expect(() => prepareReportsDir(join(file, 'reports'), 'REPORTS_DIR')).toThrow(ReportsDirError);
    expect(() => prepareReportsDir(join(file, 'reports'), 'REPORTS_DIR')).toThrow(`REPORTS_DIR ${join(file, 'reports')} is not a writable folder`);
    // A folder that does not exist yet is made.
    expect(() => prepareReportsDir(join(dir, 'new', 'reports'), 'REPORTS_DIR')).not.toThrow();
    expect(readdirSync(join(dir, 'new', 'reports'))).toEqual([]);
  });
});
