/**
 * Child-process entry: the local Realtime model that plays the upstream in bench:load. Runs in its
 * own process so neither its CPU nor its event loop is the callers' (whose clocks time the
 * bridge). Reports sessions and the few events the bench times, stamped on the shared clock,
 * to its parent over IPC. Not run by hand: scripts/bench-load/model.ts forks it.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { startLocalRealtimeServer, type LocalRealtimeObserver, type ReceivedEvent } from '../../src/tooling/local-model/server.js';
import { isCancelRace } from './analysis.js';
import { CLOCK_BASE_ENV, MODEL_SPEED_ENV, clockMs, type HostCommand, type HostMessage, type ModelObs } from './protocol.js';

const LOOP_RESOLUTION_MS = 10;

interface ConnState {
  active: string | null;
  lastResponseId: string | null;
  done: Set<string>;
  withAudio: Set<string>;
  lastReceived: ReceivedEvent | null;
}

function send(msg: HostMessage): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  const baseText = process.env[CLOCK_BASE_ENV];
  if (baseText === undefined || process.send === undefined) throw new Error('model-host runs only as a child of bench:load');
  const base = BigInt(baseText);
  const speed = Number(process.env[MODEL_SPEED_ENV] ?? '4');

  let batch: ModelObs[] = [];
  let flushScheduled = false;
  const emit = (o: ModelObs): void => {
    batch.push(o);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      const out = batch;
      batch = [];
      send({ type: 'obs', batch: out });
    });
  };

  const conns = new Map<number, ConnState>();
  const state = (conn: number): ConnState => {
    let s = conns.get(conn);
    if (s === undefined) {
      s = { active: null, lastResponseId: null, done: new Set(), withAudio: new Set(), lastReceived: null };
      conns.set(conn, s);
    }
    return s;
  };

  const observer: LocalRealtimeObserver = {
    onSession(conn, sessionId, hrtime) {
      state(conn);
      emit({ kind: 'session', conn, sessionId, t: clockMs(hrtime, base) });
    },
    onEventSent(conn, event, hrtime) {
      const s = state(conn);
      switch (event.type) {
        case 'input_audio_buffer.speech_started':
          emit({ kind: 'speech-started', conn, t: clockMs(hrtime, base), responseActive: s.active !== null });
          return;
        case 'response.created':
          s.active = event.response.id;
          s.lastResponseId = event.response.id;
          return;
        case 'response.output_audio.delta':
          if (s.withAudio.has(event.response_id)) return;
          s.withAudio.add(event.response_id);
          emit({ kind: 'first-delta', conn, t: clockMs(hrtime, base), responseId: event.response_id, itemId: event.item_id });
          return;
        case 'response.done':
          if (s.active === event.response.id) s.active = null;
          s.done.add(event.response.id);
          emit({ kind: 'response-done', conn, t: clockMs(hrtime, base), responseId: event.response.id, status: event.response.status });
          return;
        case 'error': {
          const code = event.error.code ?? event.error.type;
          const last = s.lastReceived;
          const cancelId = last?.type === 'response.cancel' && typeof last['response_id'] === 'string' ? last['response_id'] : null;
          const race = code === 'response_cancel_not_active' && last?.type === 'response.cancel' && isCancelRace(cancelId, s);
          emit({ kind: 'error', conn, t: clockMs(hrtime, base), code, message: event.error.message, race });
          return;
        }
        default:
          return;
      }
    },
    onEventReceived(conn, event, hrtime) {
      const s = state(conn);
      s.lastReceived = event;
      if (event.type === 'conversation.item.truncate') {
        const itemId = typeof event['item_id'] === 'string' ? event['item_id'] : '';
        const audioEndMs = typeof event['audio_end_ms'] === 'number' ? event['audio_end_ms'] : Number.NaN;
        emit({ kind: 'truncate', conn, t: clockMs(hrtime, base), itemId, audioEndMs });
      }
    },
    onClose(conn, close, hrtime) {
      conns.delete(conn);
      emit({ kind: 'close', conn, t: clockMs(hrtime, base), code: close.code });
    },
  };

  const server = await startLocalRealtimeServer({ record: false, speed, observer });
  let loop: IntervalHistogram | null = null;
  process.on('message', (raw: unknown) => {
    const cmd = raw as HostCommand;
    if (cmd.type === 'loop-start') {
      loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
      loop.enable();
    } else if (cmd.type === 'loop-stop') {
      const h = loop;
      loop = null;
      h?.disable();
      const ms = (ns: number): number => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
      send({ type: 'loop', stats: h ? { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) } : { p50: Number.NaN, p99: Number.NaN, max: Number.NaN } });
    } else if (cmd.type === 'close') {
      void server.close().then(() => process.exit(0));
    }
  });
  process.on('disconnect', () => void server.close().then(() => process.exit(0)));
  send({ type: 'ready', url: server.url });
}

main().catch((err: unknown) => {
  process.stderr.write(`model-host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
