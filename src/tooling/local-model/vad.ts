/**
 * Energy-based voice activity detector for the local Realtime server, on PCM16 24 kHz mono.
 *
 * It stands in for the real API's `server_vad`, so its outputs are expressed the way the real
 * server reports them: in input-buffer time (ms of audio appended since the session started,
 * never wall clock), `audio_start_ms` including the prefix padding and `audio_end_ms` including
 * the silence that ended the turn ("the end of audio sent to the model").
 *
 * The real `threshold` is a speech probability; an energy detector has no probability, so it is
 * mapped monotonically onto an RMS level (see {@link thresholdToDbfs}). Hysteresis (a lower level
 * keeps speech going than starts it) and a minimum speech duration keep clicks and the natural
 * dips inside words from toggling the state.
 */

export const VAD_SAMPLE_RATE_HZ = 24_000;
export const VAD_SAMPLES_PER_MS = VAD_SAMPLE_RATE_HZ / 1000;
/** Analysis frame: short enough for 10 ms timing resolution, long enough to average a 100 Hz voice. */
export const VAD_FRAME_MS = 10;
export const VAD_FRAME_SAMPLES = VAD_FRAME_MS * VAD_SAMPLES_PER_MS;
/** Loud audio must last this long before it counts as speech, so clicks and pops never start a turn. */
export const VAD_MIN_SPEECH_MS = 80;
/** Once speaking, frames down to this many dB under the start level still count as speech. */
export const VAD_HYSTERESIS_DB = 6;
/** Level reported for digital silence, where the logarithm would be -Infinity. */
export const VAD_FLOOR_DBFS = -120;

/** threshold 0 → -65 dBFS, 0.5 → -45 dBFS, 1 → -25 dBFS (RMS of one frame, full scale = 0 dBFS). */
const DBFS_AT_THRESHOLD_ZERO = -65;
const DB_SPAN_OF_THRESHOLD = 40;

/**
 * The start level for a `turn_detection.threshold`: linear in dB, so each +0.1 of threshold asks
 * for 4 dB louder speech. 0.5 (the API default) lands at -45 dBFS RMS, above a quiet phone line's
 * noise floor (about -60 dBFS) and well below normal speech (about -30 to -20 dBFS).
 * Out-of-range values are clamped to 0..1.
 */
export function thresholdToDbfs(threshold: number): number {
  const t = Math.min(1, Math.max(0, threshold));
  return DBFS_AT_THRESHOLD_ZERO + DB_SPAN_OF_THRESHOLD * t;
}

export interface VadConfig {
  /** 0..1 as in `turn_detection.threshold`; higher needs louder speech. */
  threshold: number;
  prefixPaddingMs: number;
  silenceDurationMs: number;
}

export type VadEvent =
  | {
      type: 'speech_started';
      /** onset minus prefix padding, clamped at 0 (input-buffer ms) */
      audioStartMs: number;
      /** first frame of the speech itself (input-buffer ms) */
      onsetMs: number;
    }
  | {
      type: 'speech_stopped';
      /** where the silence that ended the turn reached `silenceDurationMs` (input-buffer ms) */
      audioEndMs: number;
      /** end of the last frame that was still speech (input-buffer ms) */
      lastSpeechMs: number;
    };

type State =
  | { kind: 'silence' }
  /** Loud audio seen since `onsetMs`, not yet long enough to be speech. */
  | { kind: 'candidate'; onsetMs: number }
  | { kind: 'speech'; lastSpeechMs: number };

export class EnergyVad {
  private startDbfs = 0;
  private keepDbfs = 0;
  private prefixPaddingMs = 0;
  private silenceDurationMs = 0;
  private state: State = { kind: 'silence' };
  /** Frames fully analysed so far, since sample 0 of the session. */
  private frames = 0;
  // Sum of squares of the frame being filled; appends of any size split frames anywhere.
  private frameSumSquares = 0;
  private frameFill = 0;

  constructor(config: VadConfig) {
    this.configure(config);
  }

  /** Takes effect from the next frame; the current state is kept (a session.update mid-turn). */
  configure(config: VadConfig): void {
    this.startDbfs = thresholdToDbfs(config.threshold);
    this.keepDbfs = this.startDbfs - VAD_HYSTERESIS_DB;
    this.prefixPaddingMs = Math.max(0, config.prefixPaddingMs);
    this.silenceDurationMs = Math.max(0, config.silenceDurationMs);
  }

  get speaking(): boolean {
    return this.state.kind === 'speech';
  }

  /** Input-buffer ms analysed so far (whole frames only). */
  get analysedMs(): number {
    return this.frames * VAD_FRAME_MS;
  }

  /**
   * Forget any speech in progress, e.g. after a manual commit or a clear. Time keeps running:
   * input-buffer time is per session, not per turn.
   */
  reset(): void {
    this.state = { kind: 'silence' };
  }

  /** Feed PCM16 24 kHz samples; returns the transitions they caused, in order. */
  push(samples: Int16Array): VadEvent[] {
    const events: VadEvent[] = [];
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i] ?? 0;
      this.frameSumSquares += s * s;
      this.frameFill++;
      if (this.frameFill === VAD_FRAME_SAMPLES) {
        const rms = Math.sqrt(this.frameSumSquares / VAD_FRAME_SAMPLES);
        this.frameSumSquares = 0;
        this.frameFill = 0;
        const event = this.onFrame(rmsToDbfs(rms));
        if (event) events.push(event);
      }
    }
    return events;
  }

  private onFrame(levelDbfs: number): VadEvent | null {
    const frameStartMs = this.frames * VAD_FRAME_MS;
    this.frames++;
    const frameEndMs = frameStartMs + VAD_FRAME_MS;
    const state = this.state;
    switch (state.kind) {
      case 'silence':
        if (levelDbfs < this.startDbfs) return null;
        this.state = { kind: 'candidate', onsetMs: frameStartMs };
        return this.promoteIfLongEnough(frameEndMs);
      case 'candidate':
        if (levelDbfs < this.keepDbfs) {
          this.state = { kind: 'silence' };
          return null;
        }
        return this.promoteIfLongEnough(frameEndMs);
      case 'speech':
        if (levelDbfs >= this.keepDbfs) {
          state.lastSpeechMs = frameEndMs;
          return null;
        }
        if (frameEndMs - state.lastSpeechMs < this.silenceDurationMs) return null;
        this.state = { kind: 'silence' };
        return { type: 'speech_stopped', audioEndMs: frameEndMs, lastSpeechMs: state.lastSpeechMs };
    }
  }

  private promoteIfLongEnough(frameEndMs: number): VadEvent | null {
    if (this.state.kind !== 'candidate') return null;
    const onsetMs = this.state.onsetMs;
    if (frameEndMs - onsetMs < VAD_MIN_SPEECH_MS) return null;
    this.state = { kind: 'speech', lastSpeechMs: frameEndMs };
    return { type: 'speech_started', audioStartMs: Math.max(0, onsetMs - this.prefixPaddingMs), onsetMs };
  }
}

export function rmsToDbfs(rms: number): number {
  if (rms <= 0) return VAD_FLOOR_DBFS;
  return Math.max(VAD_FLOOR_DBFS, 20 * Math.log10(rms / 32768));
}
