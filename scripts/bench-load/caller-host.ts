/**
 * Child-process entry: a share of bench:load's simulated Twilio callers. With many calls, one
 * process's own event-loop delay (its timers send frames and mark echoes, and stamp arrivals)
 * became part of every figure it measured; the calls are spread over a few such hosts, each
 * reporting what it observed, stamped on the shared clock, to the bench over IPC. Not run by
 * hand: scripts/bench-load/caller-pool.ts forks it.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { CallRecord } from './callers.js';
import type { CallObservations, CallerCommand, CallerHostMessage } from './caller-protocol.js';
import { CLOCK_BASE_ENV } from './protocol.js';

const LOOP_RESOLUTION_MS = 10;

function send(msg: CallerHostMessage): void {
  process.send?.(msg);
}

function observations(c: CallRecord): CallObservations {
  const caller = c.caller;
  return {
    index: c.index,
    streamStartT: c.streamStartT,
    media: { t: Array.from(c.media.t.subarray(0, c.media.length)), startsAtByte: Array.from(c.media.startsAtByte.subarray(0, c.media.length)) },
    echoes: { t: Array.from(c.echoes.t.subarray(0, c.echoes.length)), lateMs: Array.from(c.echoes.value.subarray(0, c.echoes.length)) },
    clears: c.clears,
    playback: c.playback,
    dropped: c.dropped,
    callSid: caller.callSid,
    error: caller.error?.message ?? null,
    protocolErrors: caller.protocolErrors.length,
    speech: caller.speech.map((r) => ({ startMs: r.startMs, endMs: r.endMs })),
    endReason: caller.endReason ?? null,
    closeCode: caller.closeCode ?? null,
    closeReason: caller.closeReason ?? null,
  };
}

function main(): void {
  const baseText = process.env[CLOCK_BASE_ENV];
  if (baseText === undefined || process.send === undefined) throw new Error('caller-host runs only as a child of bench:load');
  const base = BigInt(baseText);
  const calls: CallRecord[] = [];
  let loop: IntervalHistogram | null = null;
  process.on('message', (raw: unknown) => {
    const cmd = raw as CallerCommand;
    switch (cmd.type) {
      case 'place': {
        const call = new CallRecord(cmd.index, cmd.url, cmd.runMs, base);
        calls.push(call);
        void call.start().then(() => send({ type: 'placed', index: cmd.index, startError: call.startError?.message ?? null }));
        return;
      }
      case 'snapshot':
        send({ type: 'snapshot', calls: calls.map((c) => ({ index: c.index, nowMs: c.caller.nowMs(), playedBytes: c.caller.playedBytesTotal() })) });
        return;
      case 'loop-start':
        loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
        loop.enable();
        return;
      case 'loop-stop': {
        const h = loop;
        loop = null;
        h?.disable();
        const ms = (ns: number): number => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
        send({ type: 'loop', stats: h ? { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) } : { p50: Number.NaN, p99: Number.NaN, max: Number.NaN } });
        return;
      }
      case 'hang-up':
        void Promise.all(calls.map((c) => c.hangUp())).then(() => send({ type: 'hung-up' }));
        return;
      case 'collect':
        send({ type: 'collected', calls: calls.map(observations) });
        return;
      case 'close':
        void Promise.all(calls.map((c) => c.hangUp())).then(() => process.exit(0));
        return;
    }
  });
  process.on('disconnect', () => void Promise.all(calls.map((c) => c.hangUp())).then(() => process.exit(0)));
  send({ type: 'ready' });
}

main();
