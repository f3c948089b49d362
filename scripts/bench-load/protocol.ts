/**
 * What the model host (a child process running the local Realtime model) tells the bench, over
 * the IPC channel. Times `t` are ms on the shared clock: process.hrtime.bigint() (CLOCK_MONOTONIC,
 * one clock for every process on the machine) minus the base the bench passed in
 * BENCH_CLOCK_BASE_NS, so they compare directly with the callers' timestamps.
 */

export const CLOCK_BASE_ENV = 'BENCH_CLOCK_BASE_NS';
export const MODEL_SPEED_ENV = 'BENCH_MODEL_SPEED';

/** ms on the shared clock */
export function clockMs(hrtime: bigint, base: bigint): number {
  return Number(hrtime - base) / 1e6;
}

export type ModelObs =
  /** a new upstream session: session.created left */
  | { kind: 'session'; conn: number; sessionId: string; t: number }
  | { kind: 'speech-started'; conn: number; t: number; responseActive: boolean }
  /** the first response.output_audio.delta of a response left */
  | { kind: 'first-delta'; conn: number; t: number; responseId: string; itemId: string }
  | { kind: 'response-done'; conn: number; t: number; responseId: string; status: string }
  /** conversation.item.truncate arrived */
  | { kind: 'truncate'; conn: number; t: number; itemId: string; audioEndMs: number }
  /** an `error` event left; race: a response_cancel_not_active whose cancel crossed response.done */
  | { kind: 'error'; conn: number; t: number; code: string; message: string; race: boolean }
  | { kind: 'close'; conn: number; t: number; code: number };

export interface LoopStats {
  /** event-loop delay in ms, the 10 ms sampling tick taken off */
  p50: number;
  p99: number;
  max: number;
}

export type HostMessage =
  | { type: 'ready'; url: string }
  | { type: 'obs'; batch: ModelObs[] }
  | { type: 'loop'; stats: LoopStats };

export type HostCommand = { type: 'loop-start' } | { type: 'loop-stop' } | { type: 'close' };
