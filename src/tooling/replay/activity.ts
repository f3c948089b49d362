/**
 * Where a mu-law track is audible: the caller's speech stretches and the first agent audio the
 * caller heard. An energy gate on 10 ms frames, raised above the track's own noise floor so a
 * noisy field recording is not one endless stretch of "speech".
 */
import { mulawDecode } from '../../audio/g711.js';
import { MULAW_BYTES_PER_MS } from '../../audio/wire-format.js';

const FRAME_MS = 10;
const FRAME_BYTES = FRAME_MS * MULAW_BYTES_PER_MS;
/** About −50 dBFS RMS: quieter frames are silence whatever the floor. */
const MIN_ACTIVE_RMS = 100;
/** A frame is active this far above the track's noise floor (10th percentile frame RMS). */
const ABOVE_FLOOR_DB = 15;
/** Pauses shorter than this stay inside one stretch: the server VAD's own silence window. */
export const MERGE_GAP_MS = 500;
/** Shorter stretches are clicks, not speech. */
const MIN_STRETCH_MS = 60;

export interface Stretch {
  /** ms since the stream started */
  startMs: number;
  endMs: number;
}

/** RMS of frame f; `scratch` holds one decoded frame. */
function rmsOf(track: Uint8Array, f: number, scratch: Int16Array): number {
  mulawDecode(track.subarray(f * FRAME_BYTES, (f + 1) * FRAME_BYTES), scratch);
  let sum = 0;
  for (let i = 0; i < FRAME_BYTES; i++) sum += (scratch[i] ?? 0) ** 2;
  return Math.sqrt(sum / FRAME_BYTES);
}

function frameRms(track: Uint8Array): Float64Array {
  const scratch = new Int16Array(FRAME_BYTES);
  const out = new Float64Array(Math.floor(track.length / FRAME_BYTES));
  for (let f = 0; f < out.length; f++) out[f] = rmsOf(track, f, scratch);
  return out;
}

function threshold(rms: Float64Array): number {
  if (rms.length === 0) return MIN_ACTIVE_RMS;
  const sorted = Float64Array.from(rms).sort();
  const floor = sorted[Math.floor(sorted.length * 0.1)] ?? 0;
  return Math.max(MIN_ACTIVE_RMS, floor * 10 ** (ABOVE_FLOOR_DB / 20));
}

/** Audible stretches of a track, pauses under MERGE_GAP_MS bridged. */
export function audibleStretches(track: Uint8Array): Stretch[] {
  const rms = frameRms(track);
  const gate = threshold(rms);
  const out: Stretch[] = [];
  let current: Stretch | null = null;
  for (let f = 0; f < rms.length; f++) {
    if ((rms[f] ?? 0) < gate) continue;
    const startMs = f * FRAME_MS;
    if (current !== null && startMs - current.endMs < MERGE_GAP_MS) {
      current.endMs = startMs + FRAME_MS;
      continue;
    }
    if (current !== null) out.push(current);
    current = { startMs, endMs: startMs + FRAME_MS };
  }
  if (current !== null) out.push(current);
  return out.filter((s) => s.endMs - s.startMs >= MIN_STRETCH_MS);
}

/** Start of the first audible frame in [fromMs, toMs), or null. Uses the absolute gate only. */
export function firstAudibleMs(track: Uint8Array, fromMs: number, toMs: number): number | null {
  const scratch = new Int16Array(FRAME_BYTES);
  const first = Math.max(0, Math.ceil(fromMs / FRAME_MS));
  const last = Math.min(Math.floor(track.length / FRAME_BYTES), Math.floor(toMs / FRAME_MS));
  for (let f = first; f < last; f++) if (rmsOf(track, f, scratch) >= MIN_ACTIVE_RMS) return f * FRAME_MS;
  return null;
}
