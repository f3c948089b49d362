/**
 * The README's run command, for real: the entry point started as a process with no API key must
 * serve calls on the embedded local model, and stop cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CallReport } from '../../src/report/schema.js';
import { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { loadCallerMulaw } from '../support/fixtures.js';
import { eventually } from '../support/call-rig.js';
import { HttpPeer } from '../support/peers.js';

let child: ChildProcessWithoutNullStreams | null = null;
afterEach(() => {
  if (child !== null && child.exitCode === null) child.kill('SIGKILL');
  child = null;
});

function startMain(env: NodeJS.ProcessEnv): { proc: ChildProcessWithoutNullStreams; lines: Array<Record<string, unknown>>; port: Promise<number>; metricsPort: Promise<number> } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OPENAI_') && k !== 'REALTIME_BACKEND'));
  // An ephemeral metrics port: the default 9464 would collide between test files run in parallel.
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...clean, METRICS_PORT: '0', ...env }, cwd: process.cwd() });
  const lines: Array<Record<string, unknown>> = [];
  let onMetricsPort: (port: number) => void = () => undefined;
  const metricsPort = new Promise<number>((resolve) => {
    onMetricsPort = resolve;
  });
  const port = new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(parsed['msg']));
        if (m?.[1] !== undefined) resolve(Number(m[1]));
        const metrics = /^metrics listening at http:\/\/127\.0\.0\.1:(\d+)$/.exec(String(parsed['msg']));
        if (metrics?.[1] !== undefined) onMetricsPort(Number(metrics[1]));
      } catch {
        // non-JSON output (none expected) is ignored here and shows up in assertions on `lines`
      }
    });
    proc.on('exit', (code) => reject(new Error(`main exited early with ${code}`)));
  });
  return { proc, lines, port, metricsPort };
}

/** Starts main with `env`, expecting it to refuse: its exit code and stderr, and whether it ever listened. */
async function refusedStart(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; listened: boolean }> {
  const main = startMain({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env });
  child = main.proc;
  main.port.catch(() => undefined); // it never listens: the exit rejects this
  const stderr: string[] = [];
  createInterface({ input: main.proc.stderr }).on('line', (line) => stderr.push(line));
  const code = await new Promise<number | null>((resolve) => main.proc.on('exit', (c) => resolve(c)));
  return { code, stderr: stderr.join('\n'), listened: main.lines.some((l) => String(l['msg']).startsWith('Server listening at')) };
}

/** Main started with `env`, and a call on it that is connected upstream: ready for a signal. */
async function mainWithLiveCall(env: NodeJS.ProcessEnv): Promise<{ main: ReturnType<typeof startMain>; port: number; caller: SimulatedCaller; exited: Promise<number | null> }> {
  const main = startMain({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env });
  child = main.proc;
  const port = await main.port;
  const caller = new SimulatedCaller({ url: `ws://127.0.0.1:${port}/media-stream`, audio: loadCallerMulaw('caller-yes') });
  await caller.start();
  await eventually(() => main.lines.some((l) => l['msg'] === 'upstream open'), 'call connected');
  const exited = new Promise<number | null>((resolve) => main.proc.on('exit', (code) => resolve(code)));
  return { main, port, caller, exited };
}

describe('npm start without an API key', () => {
  it('runs on the embedded local model, answers a call with the echo agent, and exits 0 on SIGTERM', async () => {
    const main = startMain({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' });
    child = main.proc;
    const port = await main.port;
    expect(main.lines.filter((l) => String(l['msg']).includes('embedded local model'))).toHaveLength(1);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);

    const caller = new SimulatedCaller({ url: `ws://127.0.0.1:${port}/media-stream`, audio: loadCallerMulaw('caller-yes') });
    await caller.start();
    // the echo agent speaks the caller's 1.1 s sentence back after a 260 ms earcon
    await eventually(() => caller.playedBytesTotal() >= 1000 * 8, 'the echo played', 20_000);
    await caller.hangUp();
    expect(caller.protocolErrors).toEqual([]);

    const exited = new Promise<number | null>((resolve) => main.proc.on('exit', (code) => resolve(code)));
    main.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(main.lines.some((l) => l['msg'] === 'shut down cleanly')).toBe(true);
  });

  it('serves /metrics on METRICS_PORT, bound like HOST, and not on the public port, where the probes stay', async () => {
    const main = startMain({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' });
    child = main.proc;
    const port = await main.port;
    // Logged before the public port listens, so it is known by the time calls can arrive.
    const metricsPort = await main.metricsPort;
    expect(metricsPort).not.toBe(port);
    const announced = main.lines.findIndex((l) => String(l['msg']).startsWith('metrics listening at'));
    expect(announced).toBeGreaterThanOrEqual(0);
    expect(announced).toBeLessThan(main.lines.findIndex((l) => String(l['msg']).startsWith('Server listening at')));

    const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toContain('text/plain');
    const body = await scrape.text();
    expect(body).toMatch(/^callbridge_active_calls 0$/m);
    expect(body).toMatch(/^callbridge_start_verifications_total\{check="call-status",outcome="unverified"\} 0$/m);
    expect(body).toContain('process_resident_memory_bytes');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(404);

    // The public port: the probes are there, the metrics are not.
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

    const exited = new Promise<number | null>((resolve) => main.proc.on('exit', (code) => resolve(code)));
    main.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('refuses to start when METRICS_PORT is taken, naming it', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    const takenPort = (taken.address() as { port: number }).port;
    try {
      const refused = await refusedStart({ METRICS_PORT: String(takenPort) });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`METRICS_PORT ${takenPort} on 127.0.0.1`);
      expect(refused.listened).toBe(false);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it('drains on SIGTERM: not ready, busy webhook, the live call carries on until DRAIN_TIMEOUT_S, then exit 0', async () => {
    const { main, port, caller, exited } = await mainWithLiveCall({ DRAIN_TIMEOUT_S: '3' });
    const signalledAt = Date.now();
    main.proc.kill('SIGTERM');
    await eventually(() => main.lines.some((l) => l['msg'] === 'draining before shutdown'), 'draining');
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    const webhook = await fetch(`http://127.0.0.1:${port}/incoming-call`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'CallSid=CA1' });
    expect(await webhook.text()).toContain('<Hangup/>');
    // the live call is still served: its turn is answered while the process drains
    await eventually(() => caller.playedBytesTotal() >= 500 * 8, 'answer heard during the drain', 10_000);
    await caller.done; // ended by the drain timeout
    expect(caller.closeCode).toBe(1001);
    expect(await exited).toBe(0);
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(2900);
    expect(main.lines.some((l) => l['msg'] === 'drain timeout: ending the remaining calls')).toBe(true);
  });

  it('SIGTERM with a report pending: the drain ends the call, and its report is delivered (after a 503) and written before exit', async () => {
    let answered = 0;
    const receiver = await new HttpPeer((_req, res) => {
      answered += 1;
      res.writeHead(answered === 1 ? 503 : 200).end();
    }).start();
    const reportsDir = mkdtempSync(join(tmpdir(), 'cb-main-reports-'));
    try {
      const secret = 'main-test-report-secret';
      const { main, caller, exited } = await mainWithLiveCall({ DRAIN_TIMEOUT_S: '1', CALL_REPORT_URL: `${receiver.baseUrl}/reports`, TOOLS_SECRET: secret, REPORTS_DIR: reportsDir });
      main.proc.kill('SIGTERM');
      expect(await exited).toBe(0);
      // Before the process was gone: refused once (503), retried, accepted; signed over the body.
      expect(receiver.requests).toHaveLength(2);
      const last = receiver.requests[1]!;
      expect(last.headers['x-callbridge-signature']).toBe(`sha256=${createHmac('sha256', secret).update(last.body).digest('hex')}`);
      const report = JSON.parse(last.body) as CallReport;
      expect(report).toMatchObject({ format: 'callbridge.report/1', callSid: caller.callSid, endReason: 'shutdown', sessionEndReason: 'shutdown' });
      // The process saw the 200 before it exited: nothing is logged after exit. (Its position
      // against 'shut down cleanly' is not asserted: the two lines race to stdout.)
      const delivered = main.lines.findIndex((l) => l['msg'] === 'post-call report delivered' && l['callSid'] === caller.callSid);
      expect(delivered).toBeGreaterThanOrEqual(0);
      expect(JSON.parse(readFileSync(join(reportsDir, `${caller.callSid}.json`), 'utf8'))).toEqual(report);
    } finally {
      await receiver.stop();
      rmSync(reportsDir, { recursive: true, force: true });
    }
  });

  it('refuses to start when REPORTS_DIR cannot be written, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-main-reports-'));
    try {
      writeFileSync(join(dir, 'a-file'), 'x');
      const unwritable = join(dir, 'a-file', 'reports');
      const refused = await refusedStart({ REPORTS_DIR: unwritable });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`REPORTS_DIR ${unwritable} is not a writable folder`);
      expect(refused.listened).toBe(false);
      const noRecordings = await refusedStart({ RECORD_AUDIO: unwritable });
      expect(noRecordings.code).toBe(2);
      expect(noRecordings.stderr).toContain(`RECORD_AUDIO ${unwritable} is not a writable folder`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
