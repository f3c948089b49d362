/**
 * Replays a recording as a Twilio call: the simulated caller speaks the recording in real time
 * into callbridge (an in-process server by default, or a running one with `url`), plays what it
 * gets back, and hangs up once the agent has gone quiet. Returns both sides' logs, the summary
 * and, in-process, the call's post-call report, made by the very recorder a serving process uses
 * (src/report/recorder.ts); writing files is outputs.ts's job.
 */
import { performance } from 'node:perf_hooks';
import { memoryRecorderFactory, teeRecorderFactory, type MemoryRecording } from '../../call/recorder.js';
import { loadConfig, type AppConfig } from '../../config.js';
import { createLogger, type Logger } from '../../observability/logger.js';
import { startLocalRealtimeServer, type LocalRealtimeServer } from '../local-model/server.js';
import { buildServer, type CallbridgeServer } from '../../server.js';
import { SimulatedCaller, type ReceivedMessage, type SentMessage } from '../simulated-caller.js';
import { reportRecorderFactory } from '../../report/recorder.js';
import type { CallReport } from '../../report/schema.js';
import type { ReplayInput } from './input.js';
import { buildSummary, type BridgeLog, type CallerLog, type ReplaySummary } from './summary.js';
import { MULAW_BYTES_PER_MS } from '../../audio/wire-format.js';

const MULAW_SILENCE = 0xff;
/** The agent counts as done once nothing has played (or been generated) for this long. */
export const DEFAULT_QUIET_MS = 1500;
/** However chatty the agent, the call ends this long after the recording does. */
export const DEFAULT_MAX_TAIL_MS = 20_000;
const POLL_MS = 50;
const PROGRESS_EVERY_MS = 200;
/** How long the in-process bridge gets to close both sockets after the caller hangs up. */
const CLOSE_WAIT_MS = 5000;

export interface ReplayProgress {
  /** ms since the stream started */
  elapsedMs: number;
  /** Recording length plus the quiet wait: the least the replay can take. */
  expectedMs: number;
  /** `speaking` while the recording plays, `waiting` for the agent to finish, then `done`. */
  phase: 'speaking' | 'waiting' | 'done';
  interruptions: number;
}

export interface ReplayOptions {
  input: ReplayInput;
  /** ws://host:port/media-stream of a running callbridge. Unset: an in-process server. */
  url?: string;
  /** Environment for the in-process server's config (backend choice, key, Realtime URL). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Logger for the in-process server and local model. Default: silent. */
  logger?: Logger;
  quietMs?: number;
  maxTailMs?: number;
  onProgress?: (p: ReplayProgress) => void;
}

export interface ReplayResult {
  input: ReplayInput;
  summary: ReplaySummary;
  caller: CallerLog;
  /** The caller's raw view of every frame received (for events.jsonl). */
  received: readonly ReceivedMessage[];
  sent: readonly SentMessage[];
  /** The bridge's recording (in-process only). */
  bridge: BridgeLog | null;
  /** The post-call report, as REPORTS_DIR would hold it (in-process only: null with `url`). */
  report: CallReport | null;
  /** What the caller sent, 8 kHz mu-law on the stream timeline. */
  callerAudio: Uint8Array;
  /** What the caller heard, 8 kHz mu-law on the stream timeline. */
  heardAudio: Uint8Array;
}

interface Target {
  url: string;
  description: string;
  recording: () => MemoryRecording | null;
  /** The call's post-call report once the call has ended (in-process only). */
  report: () => CallReport | null;
  close: () => Promise<void>;
  /** Calls still open on the in-process server (0 for a remote one). */
  liveCalls: () => number;
}

export async function runReplay(options: ReplayOptions): Promise<ReplayResult> {
  const { input } = options;
  const quietMs = options.quietMs ?? DEFAULT_QUIET_MS;
  const maxTailMs = options.maxTailMs ?? DEFAULT_MAX_TAIL_MS;
  const target = options.url === undefined ? await inProcessTarget(options.env ?? process.env, options.logger ?? createLogger('silent')) : remoteTarget(options.url);
  const caller = new SimulatedCaller({ url: target.url, customParameters: input.customParameters });
  // When the bridge ends the call (end_call, transfer, idle) the caller sees its socket close: that is the end.
  let closedAtMs: number | null = null;
  void caller.done.then(() => {
    closedAtMs = caller.nowMs();
  });
  const timers: NodeJS.Timeout[] = [];
  let progressTimer: NodeJS.Timeout | undefined;
  try {
    const spoken = caller.speak(input.audio, 'recording').then(
      () => true,
      () => false,
    );
    try {
      await caller.start();
    } catch (err) {
      throw new Error(`cannot connect to ${target.url}: ${(err as Error).message}`);
    }
    timers.push(...scheduleDtmf(caller, input.dtmf));
    let phase: ReplayProgress['phase'] = 'speaking';
    const report = (): void =>
      options.onProgress?.({ elapsedMs: caller.nowMs(), expectedMs: input.durationMs + quietMs, phase, interruptions: caller.clears.length });
    if (options.onProgress !== undefined) {
      report();
      progressTimer = setInterval(report, PROGRESS_EVERY_MS);
    }

    const finishedSpeaking = await Promise.race([spoken, caller.done.then(() => false)]);
    if (finishedSpeaking) {
      phase = 'waiting';
      await waitForQuiet(caller, target.recording, quietMs, maxTailMs);
    }
    await caller.hangUp();
    phase = 'done';
    report();
    // The bridge records until both its sockets are closed: wait, so its log is complete.
    await waitUntil(() => target.liveCalls() === 0, CLOSE_WAIT_MS);
    return collect(input, caller, target, closedAtMs);
  } finally {
    for (const t of timers) clearTimeout(t);
    clearInterval(progressTimer);
    await caller.hangUp().catch(() => undefined);
    await target.close();
  }
}

/** Presses each recorded key at its stream time. */
function scheduleDtmf(caller: SimulatedCaller, presses: ReplayInput['dtmf']): NodeJS.Timeout[] {
  return presses.map((press) =>
    setTimeout(
      () => {
        try {
          caller.sendDtmf(press.digit);
        } catch {
          // The call already ended: nothing to press any more.
        }
      },
      Math.max(0, press.atMs - caller.nowMs()),
    ),
  );
}

function collect(input: ReplayInput, caller: SimulatedCaller, target: Target, closedAtMs: number | null): ReplayResult {
  // The caller's `stop` when it hung up; else when the bridge closed the socket on it.
  const endMs = caller.sent.find((s) => s.message.event === 'stop')?.atMs ?? closedAtMs ?? caller.nowMs();
  const heardAudio = caller.heardAudio();
  const callerAudio = sentAudio(caller.sent, Math.max(heardAudio.length, Math.ceil(endMs * MULAW_BYTES_PER_MS)));
  const callerLog: CallerLog = {
    callSid: caller.callSid,
    streamSid: caller.streamSid,
    sent: caller.sent,
    received: caller.received,
    marksEchoed: caller.marksEchoed,
    protocolErrors: caller.protocolErrors,
    playedBytesAtEnd: caller.playedBytesTotal(),
  };
  const recording = target.recording();
  const bridge: BridgeLog | null = recording === null ? null : { twilioLines: recording.twilioLines, realtimeLines: recording.realtimeLines };
  const summary = buildSummary({ input: input.name, target: target.description, caller: callerLog, bridge, callerAudio, heardAudio, endMs });
  return { input, summary, caller: callerLog, received: caller.received, sent: caller.sent, bridge, report: target.report(), callerAudio, heardAudio };
}

/**
 * The in-process server's config: `npm start`'s, backend choice included, for a server only the
 * replay talks to. Any free loopback port, whatever PORT and HOST say; no Twilio signatures or
 * REST hang-ups, since no Twilio is involved (and a hang-up would name a real call's sid).
 */
export function loadInProcessConfig(env: NodeJS.ProcessEnv): AppConfig {
  // Nor does it leave anything where the served calls do: its report goes into its own folder.
  const base = loadConfig({ ...env, TWILIO_AUTH_TOKEN: '', TWILIO_ACCOUNT_SID: '', RECORD_CALLS: '', REPORTS_DIR: '', CALL_REPORT_URL: '', RECORD_AUDIO: '' });
  return { ...base, port: 0, host: '127.0.0.1' };
}

async function inProcessTarget(env: NodeJS.ProcessEnv, logger: Logger): Promise<Target> {
  const config = loadInProcessConfig(env);
  let local: LocalRealtimeServer | null = null;
  let server: CallbridgeServer | null = null;
  try {
    if (config.realtimeBackend === 'local') local = await startLocalRealtimeServer({ record: false, logger: logger.child({ component: 'local-model' }) });
    const realtimeUrl = local?.url ?? config.realtimeUrl;
    const memory = memoryRecorderFactory();
    let report: CallReport | null = null;
    const reports = reportRecorderFactory({ sinks: [(r) => (report = r)], logger });
    const recorderFactory = teeRecorderFactory([memory.factory, reports], (err) => logger.error({ err: (err as Error).stack ?? String(err) }, 'replay recorder failed'));
    server = await buildServer({ config, logger, realtimeUrl, ...(recorderFactory === undefined ? {} : { recorderFactory }) });
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    const address = server.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('in-process server has no TCP address');
    const running = server;
    const model = local;
    return {
      url: `ws://127.0.0.1:${address.port}/media-stream`,
      description: model !== null ? 'in-process, local model' : `in-process, ${redactUrl(realtimeUrl)}`,
      recording: () => memory.recordings[0] ?? null,
      report: () => report,
      liveCalls: () => running.calls.size,
      close: async () => {
        await running.endAllCalls();
        await running.app.close();
        await model?.close();
      },
    };
  } catch (err) {
    await server?.app.close();
    await local?.close();
    throw err;
  }
}

/** Why `url` cannot be a replay target, or null when it can. */
export function targetUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `--url must be a ws:// or wss:// URL, got "${url}"`;
  }
  return parsed.protocol === 'ws:' || parsed.protocol === 'wss:' ? null : `--url must be a ws:// or wss:// URL, got "${url}"`;
}

function remoteTarget(url: string): Target {
  const problem = targetUrlProblem(url);
  if (problem !== null) throw new Error(problem);
  return { url, description: url, recording: () => null, report: () => null, liveCalls: () => 0, close: async () => undefined };
}

/** Query strings can carry keys (Azure `api-key`); a summary shows host and path only. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return 'a Realtime endpoint';
  }
}

/**
 * Holds the line until the agent is quiet: nothing buffered in the caller's playback, and (when
 * the upstream is visible) no response running or owed, for `quietMs` in a row.
 */
async function waitForQuiet(caller: SimulatedCaller, recording: () => MemoryRecording | null, quietMs: number, maxTailMs: number): Promise<void> {
  const model = new ModelActivity();
  const ended = caller.done.then(() => true);
  const startedAt = performance.now();
  let busyAt = startedAt;
  while (performance.now() - startedAt < maxTailMs) {
    if (caller.bufferedBytes() > 0 || model.busy(recording())) busyAt = performance.now();
    if (performance.now() - busyAt >= quietMs) return;
    if (await Promise.race([sleep(POLL_MS).then(() => false), ended])) return;
  }
}

/** Follows the upstream log as it grows: is a response running, or owed to a turn that just ended? */
class ModelActivity {
  private scanned = 0;
  private open = 0;
  private owed = false;

  busy(recording: MemoryRecording | null): boolean {
    if (recording === null) return false;
    const lines = recording.realtimeLines;
    for (; this.scanned < lines.length; this.scanned++) {
      const line = lines[this.scanned];
      if (line === undefined || line.dir !== 'in' || typeof line.msg !== 'object' || line.msg === null) continue;
      const type = (line.msg as Record<string, unknown>)['type'];
      if (type === 'input_audio_buffer.speech_stopped') this.owed = true;
      else if (type === 'response.created') {
        this.open++;
        this.owed = false;
      } else if (type === 'response.done') this.open = Math.max(0, this.open - 1);
    }
    return this.open > 0 || this.owed;
  }
}

/** The caller's sent media placed by timestamp: exactly what went down the wire. */
function sentAudio(sent: readonly SentMessage[], minLength: number): Uint8Array {
  const frames: Array<{ at: number; bytes: Buffer }> = [];
  let length = minLength;
  for (const s of sent) {
    if (s.message.event !== 'media') continue;
    const at = Math.round(Number(s.message.media.timestamp) * MULAW_BYTES_PER_MS);
    const bytes = Buffer.from(s.message.media.payload, 'base64');
    frames.push({ at, bytes });
    length = Math.max(length, at + bytes.length);
  }
  const out = new Uint8Array(length).fill(MULAW_SILENCE);
  for (const f of frames) out.set(f.bytes, f.at);
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check() && performance.now() < deadline) await sleep(20);
}
