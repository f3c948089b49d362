/**
 * A one-line progress bar for a replay, redrawn in place on a terminal. Writes nothing when the
 * stream is not a TTY, so piped output and CI logs stay clean.
 */
import type { ReplayProgress } from './run.js';

export interface ProgressBar {
  update(p: ReplayProgress): void;
  /** Ends the line so later output starts on a fresh one. */
  finish(): void;
}

const BAR_CELLS = 28;
const CLEAR_LINE = '\r\x1b[2K';

const PHASE_TEXT: Record<ReplayProgress['phase'], string> = {
  speaking: 'playing the recording',
  waiting: 'waiting for the agent to finish',
  done: 'hung up',
};

/** The line for one update (no control characters): exported for tests and reuse. */
export function progressLine(label: string, p: ReplayProgress, cells = BAR_CELLS): string {
  const fraction = p.expectedMs > 0 ? Math.min(1, p.elapsedMs / p.expectedMs) : 1;
  const filled = Math.round(fraction * cells);
  const bar = '█'.repeat(filled) + '░'.repeat(cells - filled);
  const time = `${(p.elapsedMs / 1000).toFixed(1)} s / ${(p.expectedMs / 1000).toFixed(1)} s`;
  const cut = `${p.interruptions} interruption${p.interruptions === 1 ? '' : 's'}`;
  return `${label} ▕${bar}▏ ${time} · ${cut} · ${PHASE_TEXT[p.phase]}`;
}

export function createProgressBar(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!stream.isTTY) return { update: () => undefined, finish: () => undefined };
  let drawn = false;
  return {
    update(p) {
      const line = progressLine(label, p);
      // Never wrap: a wrapped line cannot be redrawn in place with \r.
      const width = stream.columns > 0 ? stream.columns - 1 : line.length;
      stream.write(`${CLEAR_LINE}${line.slice(0, width)}`);
      drawn = true;
    },
    finish() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}
