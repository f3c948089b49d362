/**
 * The bench's side of its caller hosts: forks them, places each call on one of them in turn, and
 * after the run rebuilds every call's observations here, where the calls are judged.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClearObs, PlaybackRun } from './analysis.js';
import { MediaLog, TimedLog } from './callers.js';
import type { CallObservations, CallerCommand, CallerHostMessage, CallSnapshot } from './caller-protocol.js';
import type { ModelTrace } from './model.js';
import { CLOCK_BASE_ENV, type LoopStats } from './protocol.js';

const HOST_ENTRY = fileURLToPath(new URL('./caller-host.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const REPLY_TIMEOUT_MS = 60_000;

/** One call as the bench judges it: placed in a caller host, observed there, collected after hang-up. */
export class RemoteCall {
  trace: ModelTrace | null = null;
  startError: Error | null = null;
  dropped = false;
  streamStartT: number | null = null;
  media = new MediaLog();
  echoes = new TimedLog();
  clears: ClearObs[] = [];
  playback: PlaybackRun[] = [];
  w0Ms = 0;
  w1Ms = 0;
  heard0 = 0;
  heard1 = 0;
  readonly caller = {
    callSid: '',
    error: undefined as { message: string } | undefined,
    protocolErrors: { length: 0 },
    speech: [] as Array<{ startMs: number; endMs?: number | undefined }>,
    endReason: undefined as string | undefined,
    closeCode: undefined as number | undefined,
    closeReason: undefined as string | undefined,
  };

  constructor(readonly index: number) {}

  fill(o: CallObservations): void {
    this.streamStartT = o.streamStartT;
    for (let i = 0; i < o.media.t.length; i++) this.media.push(o.media.t[i] ?? 0, o.media.startsAtByte[i] ?? 0);
    for (let i = 0; i < o.echoes.t.length; i++) this.echoes.push(o.echoes.t[i] ?? 0, o.echoes.lateMs[i] ?? 0);
    this.clears = o.clears;
    this.playback = o.playback;
    this.dropped = o.dropped;
    this.caller.callSid = o.callSid;
    this.caller.error = o.error === null ? undefined : { message: o.error };
    this.caller.protocolErrors = { length: o.protocolErrors };
    this.caller.speech = o.speech;
    this.caller.endReason = o.endReason ?? undefined;
    this.caller.closeCode = o.closeCode ?? undefined;
    this.caller.closeReason = o.closeReason ?? undefined;
  }
}

class Host {
  private readonly waiters: Array<{ match: (m: CallerHostMessage) => boolean; resolve: (m: CallerHostMessage) => void }> = [];

  constructor(readonly child: ChildProcess) {
    child.on('message', (raw: unknown) => {
      const msg = raw as CallerHostMessage;
      const at = this.waiters.findIndex((w) => w.match(msg));
      if (at < 0) return;
      const [w] = this.waiters.splice(at, 1);
      w?.resolve(msg);
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Sends `cmd` and waits for the first reply `match` accepts. */
  request<T extends CallerHostMessage>(cmd: CallerCommand, match: (m: CallerHostMessage) => m is T, timeoutMs = REPLY_TIMEOUT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`caller host ${this.pid}: no answer to ${cmd.type} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
      });
      this.child.send(cmd);
    });
  }
}

export class CallerPool {
  private readonly calls: RemoteCall[] = [];

  private constructor(private readonly hosts: Host[]) {}

  /** `count` caller hosts, ready. */
  static async start(count: number, clockBase: bigint): Promise<CallerPool> {
    const env: NodeJS.ProcessEnv = { ...process.env, [CLOCK_BASE_ENV]: clockBase.toString() };
    delete env['NODE_OPTIONS'];
    const children: ChildProcess[] = [];
    const started = await Promise.allSettled(
      Array.from({ length: count }, async () => {
        const child = fork(HOST_ENTRY, [], { cwd: REPO_ROOT, env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        const host = new Host(child);
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`caller host not ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
          child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`caller host exited during startup (code ${code})`));
          });
          child.once('message', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        return host;
      }),
    );
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) {
      // None of them is any use now; none may outlive the step.
      for (const child of children) child.kill('SIGKILL');
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    return new CallerPool(started.map((s) => (s as PromiseFulfilledResult<Host>).value));
  }

  get pids(): number[] {
    return this.hosts.map((h) => h.pid);
  }

  /** Places call `index` on the next host in turn and waits until its stream started (or failed to). */
  async place(index: number, url: string, runMs: number): Promise<RemoteCall> {
    const call = new RemoteCall(index);
    this.calls.push(call);
    const host = this.hosts[index % this.hosts.length]!;
    const reply = await host.request({ type: 'place', index, url, runMs }, (m): m is Extract<CallerHostMessage, { type: 'placed' }> => m.type === 'placed' && m.index === index);
    if (reply.startError !== null) call.startError = new Error(reply.startError);
    return call;
  }

  /** Every call's stream position and heard bytes, read now in its host. */
  async snapshot(): Promise<Map<number, CallSnapshot>> {
    const replies = await Promise.all(this.hosts.map((h) => h.request({ type: 'snapshot' }, (m): m is Extract<CallerHostMessage, { type: 'snapshot' }> => m.type === 'snapshot')));
    return new Map(replies.flatMap((r) => r.calls.map((c) => [c.index, c] as const)));
  }

  loopStart(): void {
    for (const h of this.hosts) h.child.send({ type: 'loop-start' } satisfies CallerCommand);
  }

  /** The hosts' event-loop delay over the window: the worst host's p50, p99 and max. */
  async loopStop(): Promise<LoopStats> {
    const all = await Promise.all(this.hosts.map((h) => h.request({ type: 'loop-stop' }, (m): m is Extract<CallerHostMessage, { type: 'loop' }> => m.type === 'loop')));
    return {
      p50: Math.max(...all.map((r) => r.stats.p50)),
      p99: Math.max(...all.map((r) => r.stats.p99)),
      max: Math.max(...all.map((r) => r.stats.max)),
    };
  }

  /** Hangs every call up, then brings each call's observations here. */
  async hangUpAndCollect(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.request({ type: 'hang-up' }, (m): m is Extract<CallerHostMessage, { type: 'hung-up' }> => m.type === 'hung-up')));
    const replies = await Promise.all(this.hosts.map((h) => h.request({ type: 'collect' }, (m): m is Extract<CallerHostMessage, { type: 'collected' }> => m.type === 'collected')));
    const byIndex = new Map(this.calls.map((c) => [c.index, c]));
    for (const r of replies) for (const o of r.calls) byIndex.get(o.index)?.fill(o);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.hosts.map(
        (h) =>
          new Promise<void>((resolve) => {
            if (h.child.exitCode !== null || h.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => {
              h.child.kill('SIGKILL');
              resolve();
            }, 5000);
            h.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (h.child.connected) h.child.send({ type: 'close' } satisfies CallerCommand);
            else h.child.kill('SIGTERM');
          }),
      ),
    );
  }
}
