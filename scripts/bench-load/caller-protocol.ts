/**
 * What the bench and its caller hosts (child processes running simulated Twilio callers) say to
 * each other over IPC. Times `t` are ms on the shared clock (see protocol.ts); `Ms` fields are
 * stream ms of one call.
 */
import type { LoopStats } from './protocol.js';

export type CallerCommand =
  | { type: 'place'; index: number; url: string; runMs: number }
  /** stream position and heard bytes of every call, now (window start or end) */
  | { type: 'snapshot' }
  | { type: 'loop-start' }
  | { type: 'loop-stop' }
  | { type: 'hang-up' }
  | { type: 'collect' }
  | { type: 'close' };

export interface CallSnapshot {
  index: number;
  nowMs: number;
  playedBytes: number;
}

/** Everything a caller host observed of one call, sent once after hang-up. */
export interface CallObservations {
  index: number;
  streamStartT: number | null;
  media: { t: number[]; startsAtByte: number[] };
  echoes: { t: number[]; lateMs: number[] };
  clears: Array<{ t: number; playedBytes: number }>;
  playback: Array<{ startT: number; endT: number; cleared: boolean }>;
  dropped: boolean;
  callSid: string;
  error: string | null;
  protocolErrors: number;
  speech: Array<{ startMs: number; endMs: number | undefined }>;
  endReason: string | null;
  closeCode: number | null;
  closeReason: string | null;
}

export type CallerHostMessage =
  | { type: 'ready' }
  | { type: 'placed'; index: number; startError: string | null }
  | { type: 'snapshot'; calls: CallSnapshot[] }
  | { type: 'loop'; stats: LoopStats }
  | { type: 'hung-up' }
  | { type: 'collected'; calls: CallObservations[] };
