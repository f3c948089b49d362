/**
 * The simulated callers of bench:load: their script, and what each one observed (media and clear
 * arrivals, playback stretches), stamped on the shared clock.
 */
import { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import type { CallerSegment, SimulatedCallerObserver } from '../../src/tooling/simulated-caller.js';
import { loadCallerMulaw } from '../../test/support/fixtures.js';
import type { ClearObs, MediaArrivals, PlaybackRun } from './analysis.js';
import type { ModelTrace } from './model.js';
import { clockMs } from './protocol.js';

/** Pauses in the caller script. */
const POLITE_PAUSE_MS = 600;
const BARGE_IN_AFTER_HEARD_MS = 1200;
/** A conservative lower bound on one script cycle, to know how many cycles fill the run. */
const MIN_CYCLE_MS = 10_000;

const QUESTION = loadCallerMulaw('caller-question');
const INTERRUPT = loadCallerMulaw('caller-interrupt');
const YES = loadCallerMulaw('caller-yes');

/**
 * One cycle: ask (politely, once the agent is quiet), hear the answer out; say something else
 * and barge in on that second answer; let the reply to the barge-in play out. Repeated.
 */
export function callerScript(runMs: number): CallerSegment[] {
  const cycles = Math.ceil(runMs / MIN_CYCLE_MS) + 1;
  const segments: CallerSegment[] = [];
  for (let i = 0; i < cycles; i++) {
    segments.push(
      { audio: QUESTION, start: i === 0 ? { atMs: 300 } : { afterAgentQuietMs: POLITE_PAUSE_MS }, label: 'question' },
      { audio: INTERRUPT, start: { afterAgentQuietMs: POLITE_PAUSE_MS }, label: 'follow-up' },
      { audio: YES, start: { afterHeardMs: BARGE_IN_AFTER_HEARD_MS }, label: 'barge-in' },
    );
  }
  return segments;
}

/** Timed values in two growable Float64Arrays: 16 bytes per entry, flat on long runs. */
export class TimedLog {
  t = new Float64Array(1024);
  value = new Float64Array(1024);
  length = 0;

  push(t: number, value: number): void {
    if (this.length === this.t.length) {
      const t2 = new Float64Array(this.t.length * 2);
      t2.set(this.t);
      this.t = t2;
      const v2 = new Float64Array(this.value.length * 2);
      v2.set(this.value);
      this.value = v2;
    }
    this.t[this.length] = t;
    this.value[this.length] = value;
    this.length += 1;
  }
}

/** Media arrivals: when each payload arrived, and the played-byte position its first byte plays at. */
export class MediaLog extends TimedLog implements MediaArrivals {
  get startsAtByte(): Float64Array {
    return this.value;
  }
}

/** One simulated call and everything observed about it. */
export class CallRecord {
  readonly caller: SimulatedCaller;
  /** the model's view of this call's upstream session; null if none was seen */
  trace: ModelTrace | null = null;
  startError: Error | null = null;
  hangingUp = false;
  /** ended before we hung up (server closed it, or a socket error) */
  dropped = false;
  /** shared-clock ms of stream time 0 */
  streamStartT: number | null = null;
  readonly media = new MediaLog();
  readonly clears: ClearObs[] = [];
  readonly playback: PlaybackRun[] = [];
  /** Echoes of played marks: when each left (shared clock), and how many ms after playback reached its mark. */
  readonly echoes = new TimedLog();
  /** stream ms and heard bytes at the window's start and end */
  w0Ms = 0;
  w1Ms = 0;
  heard0 = 0;
  heard1 = 0;

  constructor(
    readonly index: number,
    mediaUrl: string,
    runMs: number,
    clockBase: bigint,
  ) {
    const observer: SimulatedCallerObserver = {
      onStreamStart: (o) => {
        this.streamStartT = clockMs(o.hrtime, clockBase);
      },
      onMedia: (o) => this.media.push(clockMs(o.hrtime, clockBase), o.startsAtPlayedByte),
      onClear: (o) => {
        this.clears.push({ t: clockMs(o.hrtime, clockBase), playedBytes: o.playedBytes });
      },
      onMarkEcho: (o) => {
        if (o.cause === 'played') this.echoes.push(clockMs(o.hrtime, clockBase), o.atMs - o.dueMs);
      },
      onPlayback: (o) => {
        const s = this.streamStartT ?? 0;
        this.playback.push({ startT: s + o.startMs, endT: s + o.endMs, cleared: o.end === 'cleared' });
      },
    };
    // record: false keeps the callers' memory flat on long runs (no message history, no heard audio).
    this.caller = new SimulatedCaller({ url: mediaUrl, segments: callerScript(runMs), record: false, observer });
    void this.caller.done.then(() => {
      if (!this.hangingUp) this.dropped = true;
    });
  }

  /** Opens the media stream; a failure is kept in startError. */
  async start(): Promise<void> {
    try {
      await this.caller.start();
    } catch (err) {
      this.startError = err instanceof Error ? err : new Error(String(err));
    }
  }

  async hangUp(): Promise<void> {
    this.hangingUp = true;
    await this.caller.hangUp().catch(() => undefined);
  }
}
