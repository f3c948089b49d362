/**
 * The bench's side of the model host: forks it, collects its observations per upstream session
 * (a ModelTrace per connection), and hands out new sessions in order so each can be paired with
 * the call that caused it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { reniceProcess } from './proc.js';
import type { FirstDeltaObs, SpeechStartedObs, TruncateObs } from './analysis.js';
import { CLOCK_BASE_ENV, MODEL_SPEED_ENV, type HostCommand, type HostMessage, type LoopStats, type ModelObs } from './protocol.js';

const HOST_ENTRY = fileURLToPath(new URL('./model-host.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 5000;

export interface ApiErrorObs {
  t: number;
  code: string;
  message: string;
  race: boolean;
}

/** What the model saw of one upstream session. */
export interface ModelTrace {
  conn: number;
  sessionId: string;
  openedT: number;
  closedT: number | null;
  speechStarted: SpeechStartedObs[];
  firstDeltas: FirstDeltaObs[];
  truncates: TruncateObs[];
  errors: ApiErrorObs[];
  responsesDone: number;
}

export class ModelHost {
  readonly traces = new Map<number, ModelTrace>();
  private readonly unclaimed: ModelTrace[] = [];
  private sessionWaiter: ((t: ModelTrace) => void) | null = null;
  private loopWaiter: ((s: LoopStats) => void) | null = null;
  /** observations for a connection whose session event has not been seen (cannot happen; counted) */
  orphanObs = 0;

  private constructor(
    readonly child: ChildProcess,
    readonly pid: number,
    readonly url: string,
  ) {
    child.on('message', (raw: unknown) => this.onMessage(raw as HostMessage));
  }

  /**
   * `nice`: the host's threads get this nice value once it listens (0: left as is). The model
   * stands in for OpenAI's servers, which do not share the bridge's cores; a positive value
   * makes it yield the CPU to the bridge and the callers whenever they wake. What it measures
   * is not affected: the model stamps an event just before handing it to its socket.
   */
  static async start(speed: number, clockBase: bigint, nice = 0): Promise<ModelHost> {
    const env: NodeJS.ProcessEnv = { ...process.env, [CLOCK_BASE_ENV]: clockBase.toString(), [MODEL_SPEED_ENV]: String(speed) };
    delete env['NODE_OPTIONS'];
    const child = fork(HOST_ENTRY, [], { cwd: REPO_ROOT, env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    if (child.pid === undefined) throw new Error('could not fork the model host');
    const pid = child.pid;
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`model host not ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`model host exited during startup (code ${code})`));
      });
      const onMessage = (raw: unknown): void => {
        const msg = raw as HostMessage;
        if (msg.type !== 'ready') return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(msg.url);
      };
      child.on('message', onMessage);
    });
    if (nice !== 0) {
      try {
        reniceProcess(pid, nice);
      } catch (err) {
        child.kill('SIGKILL');
        throw err;
      }
    }
    return new ModelHost(child, pid, url);
  }

  /** The next upstream session not yet handed out, waiting up to timeoutMs; null on timeout. */
  nextSession(timeoutMs: number): Promise<ModelTrace | null> {
    const first = this.unclaimed.shift();
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sessionWaiter = null;
        resolve(null);
      }, timeoutMs);
      this.sessionWaiter = (t) => {
        clearTimeout(timer);
        this.sessionWaiter = null;
        resolve(t);
      };
    });
  }

  /** Sessions that appeared but were never paired with a call (reconnects, strays). */
  get unclaimedSessions(): number {
    return this.unclaimed.length;
  }

  loopStart(): void {
    this.command({ type: 'loop-start' });
  }

  loopStop(): Promise<LoopStats> {
    return new Promise((resolve) => {
      this.loopWaiter = resolve;
      this.command({ type: 'loop-stop' });
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.command({ type: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  private command(cmd: HostCommand): void {
    if (this.child.connected) this.child.send(cmd);
  }

  private onMessage(msg: HostMessage): void {
    if (msg.type === 'obs') {
      for (const o of msg.batch) this.observe(o);
    } else if (msg.type === 'loop') {
      const w = this.loopWaiter;
      this.loopWaiter = null;
      w?.(msg.stats);
    }
  }

  private observe(o: ModelObs): void {
    if (o.kind === 'session') {
      const trace: ModelTrace = {
        conn: o.conn,
        sessionId: o.sessionId,
        openedT: o.t,
        closedT: null,
        speechStarted: [],
        firstDeltas: [],
        truncates: [],
        errors: [],
        responsesDone: 0,
      };
      this.traces.set(o.conn, trace);
      if (this.sessionWaiter !== null) this.sessionWaiter(trace);
      else this.unclaimed.push(trace);
      return;
    }
    const trace = this.traces.get(o.conn);
    if (trace === undefined) {
      this.orphanObs += 1;
      return;
    }
    switch (o.kind) {
      case 'speech-started':
        trace.speechStarted.push({ t: o.t, responseActive: o.responseActive });
        return;
      case 'first-delta':
        trace.firstDeltas.push({ t: o.t, responseId: o.responseId, itemId: o.itemId });
        return;
      case 'response-done':
        trace.responsesDone += 1;
        return;
      case 'truncate':
        trace.truncates.push({ t: o.t, itemId: o.itemId, audioEndMs: o.audioEndMs });
        return;
      case 'error':
        trace.errors.push({ t: o.t, code: o.code, message: o.message, race: o.race });
        return;
      case 'close':
        trace.closedT = o.t;
        return;
    }
  }
}
