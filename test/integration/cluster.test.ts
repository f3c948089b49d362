/**
 * WORKERS > 1, for real: `node --import tsx src/main.ts` as a primary with forked workers sharing
 * one random port, real calls over real sockets, real signals. What is checked: calls spread over
 * the workers, the primary serves the cluster's summed /metrics on METRICS_PORT (the public port
 * answers 404), a killed worker is replaced, a crash loop stops the primary, SIGTERM and Ctrl-C
 * drain every worker once, the primary exits 0 once they have all exited cleanly, and a replayed
 * stream is refused whichever worker it reaches.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import twilio from 'twilio';
import { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { eventually } from '../support/call-rig.js';

type Line = Record<string, unknown>;

interface Main {
  proc: ChildProcessWithoutNullStreams;
  lines: Line[];
  stderr: string[];
  port: Promise<number>;
  /** from the "metrics listening at" line (METRICS_PORT=0: an ephemeral port) */
  metricsPort: Promise<number>;
  exited: Promise<number | null>;
  /** whether the process was started in its own process group (signal it as a terminal would) */
  group: boolean;
}

const running: Main[] = [];
const callers: SimulatedCaller[] = [];
afterEach(async () => {
  for (const c of callers.splice(0)) void c.hangUp().catch(() => undefined);
  for (const m of running.splice(0)) {
    if (m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
    try {
      // The whole group when it has one: workers must not outlive a failed test.
      if (m.group && m.proc.pid !== undefined) process.kill(-m.proc.pid, 'SIGKILL');
      else m.proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function startMain(env: NodeJS.ProcessEnv, options: { group?: boolean; onLine?: (line: Line) => void } = {}): Main {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OPENAI_') && k !== 'REALTIME_BACKEND' && k !== 'WORKERS'));
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    // An ephemeral metrics port: the default 9464 would collide between test files run in parallel.
    env: { ...clean, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', METRICS_PORT: '0', ...env },
    cwd: process.cwd(),
    detached: options.group === true,
  });
  const lines: Line[] = [];
  const stderr: string[] = [];
  createInterface({ input: proc.stderr }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  let onMetricsPort: (port: number) => void = () => undefined;
  const metricsPort = new Promise<number>((resolve) => {
    onMetricsPort = resolve;
  });
  const port = new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        lines.push({ msg: `non-JSON output: ${text}` });
        return;
      }
      lines.push(line);
      options.onLine?.(line);
      // What scripts/bench-load.ts and test/integration/main.test.ts read the port from.
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(line['msg']));
      if (m?.[1] !== undefined) resolve(Number(m[1]));
      const metrics = /^metrics listening at http:\/\/127\.0\.0\.1:(\d+)$/.exec(String(line['msg']));
      if (metrics?.[1] !== undefined) onMetricsPort(Number(metrics[1]));
    });
    void exited.then((code) => reject(new Error(`main exited early with ${code}; stderr: ${stderr.join('\n')}`)));
  });
  port.catch(() => undefined);
  const main = { proc, lines, stderr, port, metricsPort, exited, group: options.group === true };
  running.push(main);
  return main;
}

/** One request on a connection of its own, so that node:cluster hands each to the next worker. */
function get(port: number, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { ...(init.body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }), ...init.headers };
    const req = http.request(
      { host: '127.0.0.1', port, path, method: init.method ?? 'GET', agent: false, headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

function sampleOf(exposition: string, sample: string): number {
  const escaped = sample.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(exposition);
  if (m?.[1] === undefined) throw new Error(`no sample ${sample} in:\n${exposition}`);
  return Number(m[1]);
}

function call(port: number, options: { callSid?: string; headers?: Record<string, string>; customParameters?: Record<string, string> } = {}): SimulatedCaller {
  // No speech: the caller streams silence until hung up; the echo agent greets it.
  const caller = new SimulatedCaller({ url: `ws://127.0.0.1:${port}/media-stream`, ...options });
  callers.push(caller);
  return caller;
}

const byMsg = (lines: Line[], msg: string, where: (l: Line) => boolean = () => true): Line[] => lines.filter((l) => l['msg'] === msg && where(l));
const primary = (l: Line): boolean => l['role'] === 'primary';
const ofWorker = (id: unknown) => (l: Line): boolean => l['role'] === 'worker' && l['worker'] === id;

/** worker id → pid, from the primary's "worker started" lines */
function startedWorkers(lines: Line[]): Map<number, number> {
  return new Map(byMsg(lines, 'worker started', primary).map((l) => [Number(l['worker']), Number(l['workerPid'])]));
}

/** the worker ids whose calls reached the upstream, one per call */
function servingWorkers(lines: Line[]): number[] {
  return byMsg(lines, 'upstream open').map((l) => Number(l['worker']));
}

describe('WORKERS > 1', () => {
  it('spreads calls over the workers, sums /metrics, replaces a killed worker, and drains on SIGTERM to exit 0', async () => {
    const main = startMain({ WORKERS: '2', DRAIN_TIMEOUT_S: '60', MAX_CALLS: '10' });
    const port = await main.port;
    const metricsPort = await main.metricsPort;
    // The primary serves the metrics, once, before any worker listens; the workers serve none.
    const metricsListening = main.lines.filter((l) => String(l['msg']).startsWith('metrics listening at'));
    expect(metricsListening).toEqual([expect.objectContaining({ role: 'primary', metricsPort })]);
    expect(main.lines.findIndex((l) => l['msg'] === 'worker started')).toBeGreaterThan(main.lines.indexOf(metricsListening[0]!));

    // One announcement, by the primary, once both workers listen on the one shared port.
    const announced = main.lines.filter((l) => String(l['msg']).startsWith('Server listening at'));
    expect(announced).toHaveLength(1);
    expect(announced[0]).toMatchObject({ role: 'primary', workers: 2 });
    const listening = main.lines.filter((l) => String(l['msg']).startsWith('worker listening at'));
    expect(listening.map((l) => l['msg'])).toEqual([`worker listening at http://127.0.0.1:${port}`, `worker listening at http://127.0.0.1:${port}`]);
    expect(new Set(listening.map((l) => l['worker'])).size).toBe(2);
    // The embedded local model runs once, in the primary.
    expect(main.lines.filter((l) => String(l['msg']).includes('embedded local model'))).toEqual([expect.objectContaining({ role: 'primary' })]);
    expect(byMsg(main.lines, 'starting workers', primary)).toEqual([expect.objectContaining({ workers: 2, maxCallsPerWorker: 5, maxCalls: 10 })]);
    // Every line of a worker says which one wrote it.
    const workerPids = startedWorkers(main.lines);
    expect(workerPids.size).toBe(2);
    for (const l of main.lines.filter((x) => x['role'] === 'worker')) expect(workerPids.get(Number(l['worker']))).toBe(l['pid']);

    // Four calls: node:cluster hands connections to the workers in turn, so both serve some.
    const first = [call(port), call(port), call(port), call(port)];
    await Promise.all(first.map((c) => c.start()));
    await eventually(() => servingWorkers(main.lines).length === 4, 'four calls reached the upstream');
    const serving = servingWorkers(main.lines);
    expect(new Set(serving)).toEqual(new Set(workerPids.keys()));
    const servingPids = new Set(byMsg(main.lines, 'upstream open').map((l) => l['pid']));
    expect(servingPids).toEqual(new Set(workerPids.values()));

    // The primary's METRICS_PORT: the cluster's figures, summed over the workers.
    for (let i = 0; i < 2; i++) {
      const scrape = await get(metricsPort, '/metrics');
      expect(scrape.status).toBe(200);
      expect(sampleOf(scrape.body, 'callbridge_active_calls')).toBe(4);
      expect(sampleOf(scrape.body, 'callbridge_workers')).toBe(2);
      expect(sampleOf(scrape.body, 'callbridge_worker_restarts_total')).toBe(0);
    }
    // The public port, whichever worker answers: no metrics.
    for (let i = 0; i < 2; i++) expect((await get(port, '/metrics')).status).toBe(404);

    // A worker killed outright: its calls are lost, the error is logged, a replacement starts.
    const [victimId, victimPid] = [...workerPids.entries()][0] ?? [0, 0];
    const survivorId = [...workerPids.keys()].find((id) => id !== victimId);
    const victimCalls = serving.filter((id) => id === victimId).length;
    process.kill(victimPid, 'SIGKILL');
    await eventually(() => byMsg(main.lines, 'worker died unexpectedly: starting a replacement', primary).length === 1, 'the death logged');
    expect(byMsg(main.lines, 'worker died unexpectedly: starting a replacement', primary)[0]).toMatchObject({
      level: 'error',
      worker: victimId,
      workerPid: victimPid,
      signal: 'SIGKILL',
      exitCode: null,
    });
    await eventually(() => startedWorkers(main.lines).size === 3, 'a replacement forked');
    const replacementId = [...startedWorkers(main.lines).keys()].find((id) => !workerPids.has(id));
    await eventually(() => main.lines.some((l) => ofWorker(replacementId)(l) && String(l['msg']).startsWith('worker listening at')), 'the replacement listens');
    await eventually(() => first.filter((c) => c.endReason !== undefined).length === victimCalls, "the dead worker's calls dropped");

    let scrape = await get(metricsPort, '/metrics');
    expect(sampleOf(scrape.body, 'callbridge_active_calls')).toBe(4 - victimCalls);
    expect(sampleOf(scrape.body, 'callbridge_workers')).toBe(2);
    expect(sampleOf(scrape.body, 'callbridge_worker_restarts_total')).toBe(1);

    // The replacement takes calls: new calls go round both live workers.
    const more: SimulatedCaller[] = [];
    for (let i = 0; i < 4 && !servingWorkers(main.lines).includes(Number(replacementId)); i++) {
      const c = call(port);
      more.push(c);
      await c.start();
      const before = servingWorkers(main.lines).length;
      await eventually(() => servingWorkers(main.lines).length > before, 'the new call reached the upstream');
    }
    expect(servingWorkers(main.lines)).toContain(Number(replacementId));
    scrape = await get(metricsPort, '/metrics');
    expect(sampleOf(scrape.body, 'callbridge_active_calls')).toBe(4 - victimCalls + more.length);

    // SIGTERM to the primary: every worker drains once, exactly as a single process does.
    const live = [...first.filter((c) => c.endReason === undefined), ...more];
    main.proc.kill('SIGTERM');
    await eventually(() => byMsg(main.lines, 'draining before shutdown').length === 3, 'the primary and both workers draining');
    expect(byMsg(main.lines, 'draining before shutdown', primary)).toHaveLength(1);
    expect(byMsg(main.lines, 'draining before shutdown', ofWorker(survivorId))).toHaveLength(1);
    expect(byMsg(main.lines, 'draining before shutdown', ofWorker(replacementId))).toHaveLength(1);
    expect(byMsg(main.lines, 'draining before shutdown', (l) => l['role'] === 'worker').map((l) => l['signal'])).toEqual(['SIGTERM (via the primary)', 'SIGTERM (via the primary)']);
    for (let i = 0; i < 2; i++) {
      expect((await get(port, '/readyz')).status).toBe(503);
      expect((await get(port, '/healthz')).status).toBe(200);
      const webhook = await get(port, '/incoming-call', { method: 'POST', body: `CallSid=CAdrain${i}` });
      expect(webhook.body).toContain('<Hangup/>');
    }
    // The live calls carry on through the drain...
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(live.every((c) => c.endReason === undefined)).toBe(true);
    // ...and once they are over, the workers exit, then the primary, with 0.
    await Promise.all(live.map((c) => c.hangUp()));
    expect(await main.exited).toBe(0);
    expect(byMsg(main.lines, 'shut down cleanly', primary)).toHaveLength(1);
    expect(byMsg(main.lines, 'shut down cleanly', (l) => l['role'] === 'worker')).toHaveLength(2);
    expect(byMsg(main.lines, 'second signal: ending live calls now')).toEqual([]);
    // The kill above is the only error.
    expect(main.lines.filter((l) => l['level'] === 'error' || l['level'] === 'fatal').map((l) => l['msg'])).toEqual(['worker died unexpectedly: starting a replacement']);
  });

  it('Ctrl-C reaches every process of the group: one drain per worker, and the second Ctrl-C ends the calls', async () => {
    const main = startMain({ WORKERS: '2', DRAIN_TIMEOUT_S: '60' }, { group: true });
    const port = await main.port;
    const pgid = main.proc.pid ?? 0;
    const calls = [call(port), call(port)];
    await Promise.all(calls.map((c) => c.start()));
    await eventually(() => servingWorkers(main.lines).length === 2, 'both calls reached the upstream');

    // As a terminal does: SIGINT to the whole foreground process group, primary and workers alike.
    process.kill(-pgid, 'SIGINT');
    await eventually(() => byMsg(main.lines, 'draining before shutdown').length === 3, 'the primary and both workers draining');
    await new Promise((resolve) => setTimeout(resolve, 800));
    // Each worker drained once, though it heard the signal and then the primary's relay of it.
    expect(byMsg(main.lines, 'draining before shutdown', (l) => l['role'] === 'worker')).toHaveLength(2);
    expect(byMsg(main.lines, 'second signal: ending live calls now')).toEqual([]);
    expect(calls.every((c) => c.endReason === undefined)).toBe(true);
    expect((await get(port, '/readyz')).status).toBe(503);

    // The second Ctrl-C: the primary tells every worker to end its calls now.
    process.kill(-pgid, 'SIGINT');
    await Promise.all(calls.map((c) => c.done));
    expect(calls.map((c) => c.closeCode)).toEqual([1001, 1001]);
    expect(await main.exited).toBe(0);
    expect(byMsg(main.lines, 'second signal: ending live calls now', primary)).toHaveLength(1);
    expect(byMsg(main.lines, 'second signal: ending live calls now', (l) => l['role'] === 'worker')).toHaveLength(2);
    expect(byMsg(main.lines, 'shut down cleanly', primary)).toHaveLength(1);
  });

  it('stops forking and exits 1 when the workers crash-loop', async () => {
    const killed = new Set<number>();
    const main = startMain(
      { WORKERS: '2' },
      {
        onLine: (line) => {
          // Every worker dies as soon as it is forked.
          if (line['msg'] !== 'worker started') return;
          const pid = Number(line['workerPid']);
          killed.add(pid);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        },
      },
    );
    expect(await main.exited).toBe(1);
    // Five deaths are replaced; the sixth within the minute is a crash loop.
    expect(byMsg(main.lines, 'worker started', primary)).toHaveLength(7);
    expect(byMsg(main.lines, 'worker died unexpectedly: starting a replacement', primary)).toHaveLength(5);
    const fatal = main.lines.filter((l) => l['level'] === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ role: 'primary', signal: 'SIGKILL' });
    expect(String(fatal[0]?.['msg'])).toContain('crash-looping');
  });

  it('a replayed stream is refused whichever worker it reaches: by that worker\'s memory, or by the primary\'s for the whole cluster', async () => {
    const authToken = 'test-auth-token-0123456789abcdef';
    const publicUrl = 'https://cb.example.test';
    const callSid = 'CA0123456789abcdef0123456789abcdef';
    const form = { CallSid: callSid, AccountSid: 'AC0123456789abcdef0123456789abcdef', From: '+15550001111', To: '+15552223333' };
    const main = startMain({ WORKERS: '2', TWILIO_AUTH_TOKEN: authToken, PUBLIC_URL: publicUrl });
    const port = await main.port;
    const metricsPort = await main.metricsPort;
    // The eavesdropper's copy of the real call: its signed webhook, and its stream handshake.
    const webhookSignature = twilio.getExpectedTwilioSignature(authToken, `${publicUrl}/incoming-call`, form);
    const streamHeaders = { 'x-twilio-signature': twilio.getExpectedTwilioSignature(authToken, 'wss://cb.example.test/media-stream', {}) };
    const signedCall = async (): Promise<SimulatedCaller> => {
      const answer = await get(port, '/incoming-call', { method: 'POST', body: new URLSearchParams(form).toString(), headers: { 'x-twilio-signature': webhookSignature } });
      const token = /<Parameter name="callToken" value="([^"]+)"\/>/.exec(answer.body)?.[1];
      expect(token).toBeDefined();
      // Twilio brings back every parameter of the TwiML, which the token binds.
      const caller = call(port, { callSid, headers: streamHeaders, customParameters: { from: form.From, to: form.To, callToken: token ?? '' } });
      await caller.start();
      return caller;
    };

    const real = await signedCall();
    await eventually(() => servingWorkers(main.lines).length === 1, 'the real call reached the upstream');
    const [servedBy] = servingWorkers(main.lines);
    await real.hangUp();
    await eventually(() => byMsg(main.lines, 'call ended', (l) => l['callSid'] === callSid).length === 1, 'the real call ended');

    // node:cluster hands each new connection to the next worker: an extra request between
    // attempts shifts which worker the replayed stream lands on, until both have had one.
    const refusedOn = new Set<number>();
    for (let attempt = 0; attempt < 6 && refusedOn.size < 2; attempt++) {
      if (attempt % 2 === 1) await get(port, '/healthz');
      const replayed = await signedCall();
      await replayed.done;
      expect(replayed.closeCode).toBe(1008);
      // (A stream refused at `start` has no callSid on its lines yet: it never became a call.)
      const refusals = (): Line[] => byMsg(main.lines, 'call ended', (l) => l['reason'] === 'unauthorized');
      await eventually(() => refusals().length === attempt + 1, 'the replay ended');
      refusedOn.add(Number(refusals().at(-1)?.['worker']));
    }
    expect(refusedOn).toEqual(new Set(startedWorkers(main.lines).keys()));
    // On the worker that served the call, its own memory refused at `start`: nothing went upstream.
    expect(byMsg(main.lines, 'stream rejected: start not authorised', ofWorker(servedBy))[0]).toMatchObject({ reason: 'this CallSid already had its stream (a replay)' });
    // On the other, its memory had never seen the CallSid; the primary's had, and said so while the
    // upstream connected, which was then closed.
    const other = [...refusedOn].find((id) => id !== servedBy);
    expect(byMsg(main.lines, 'call ended', (l) => ofWorker(other)(l) && l['callSid'] === callSid)[0]).toMatchObject({
      authReason: 'cluster-claim: this CallSid already had its stream (a replay), seen by another worker',
    });
    expect(byMsg(main.lines, 'stream refused cluster-wide', primary).length).toBeGreaterThanOrEqual(1);
    const scrape = await get(metricsPort, '/metrics');
    expect(sampleOf(scrape.body, 'callbridge_start_verifications_total{check="cluster-claim",outcome="claimed"}')).toBe(1);
    expect(sampleOf(scrape.body, 'callbridge_start_verifications_total{check="cluster-claim",outcome="refused"}')).toBeGreaterThanOrEqual(1);
    expect(sampleOf(scrape.body, 'callbridge_rejected_connections_total{reason="replayed"}')).toBeGreaterThanOrEqual(1);
    // Twice: a worker that answered a webhook whose stream went to the other would otherwise wait
    // out ANSWERED_STREAM_WAIT_MS in its drain.
    main.proc.kill('SIGTERM');
    await eventually(() => byMsg(main.lines, 'draining before shutdown', primary).length === 1, 'draining');
    main.proc.kill('SIGTERM');
    expect(await main.exited).toBe(0);
  });

  it('WORKERS=1 is the single process of old: no primary, no worker fields', async () => {
    const main = startMain({ WORKERS: '1' });
    const port = await main.port;
    const metricsPort = await main.metricsPort;
    expect((await get(port, '/healthz')).status).toBe(200);
    const scrape = await get(metricsPort, '/metrics');
    expect(sampleOf(scrape.body, 'callbridge_active_calls')).toBe(0);
    expect(scrape.body).not.toContain('callbridge_workers');
    expect((await get(port, '/metrics')).status).toBe(404);
    main.proc.kill('SIGTERM');
    expect(await main.exited).toBe(0);
    expect(main.lines.some((l) => 'role' in l || 'worker' in l)).toBe(false);
    expect(byMsg(main.lines, 'starting workers')).toEqual([]);
  });

  it('refuses an invalid WORKERS before starting anything, naming it', async () => {
    const main = startMain({ WORKERS: 'lots' });
    expect(await main.exited).toBe(2);
    expect(main.stderr.join('\n')).toContain('WORKERS must be an integer 1-64 or "auto", got "lots"');
    expect(main.lines).toEqual([]);
  });
});
