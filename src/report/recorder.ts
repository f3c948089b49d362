/**
 * The live tap of the post-call report: a CallRecorder (src/call/recorder.ts) that folds each
 * message the bridge reports into the call's account (src/report/facts.ts) as it happens, keeping
 * no audio, and at the end of the call builds the report and hands it to the sinks (a file in
 * REPORTS_DIR, the CALL_REPORT_URL queue, the replay's report.json).
 *
 * Nothing here may disturb the call: the bridge calls a recorder inside its handling of each
 * message, and a throw there would end the call. A failure disables this call's report (logged
 * once, with the callSid); the call goes on. Sinks must return at once (they queue, never await).
 */
import { performance } from 'node:perf_hooks';
import type { CallEndInfo, CallIds, CallRecorder, RecorderFactory } from '../call/recorder.js';
import type { Logger } from '../observability/logger.js';
import { buildReport } from './build.js';
import { CallFacts } from './facts.js';
import type { CallReport } from './schema.js';

/** Takes a finished report; must not block or throw (a throw is logged and the other sinks still run). */
export type ReportSink = (report: CallReport, log: Logger) => void;

export interface ReportRecorderOptions {
  sinks: readonly ReportSink[];
  logger: Logger;
  /** ms since the epoch; default Date.now */
  wallClock?: () => number;
}

export function reportRecorderFactory(options: ReportRecorderOptions): RecorderFactory {
  const wallClock = options.wallClock ?? Date.now;
  return (ids, openedAtMs) => {
    // The recorder's times are on the bridge's monotonic clock; this anchors them to the wall.
    const wallAtOpen = wallClock() - (performance.now() - openedAtMs);
    return new ReportRecorder(ids, options, (atMs) => wallAtOpen + (atMs - openedAtMs), wallClock);
  };
}

class ReportRecorder implements CallRecorder {
  private facts: CallFacts | null = new CallFacts();
  private readonly log: Logger;

  constructor(
    ids: CallIds,
    private readonly options: ReportRecorderOptions,
    private readonly wallAt: (atMs: number) => number,
    private readonly wallClock: () => number,
  ) {
    this.log = options.logger.child({ callSid: ids.callSid, streamSid: ids.streamSid });
  }

  twilio(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    this.guard(() => this.facts?.twilio(dir, msg, atMs));
  }

  realtime(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    this.guard(() => this.facts?.realtime(dir, msg, atMs));
  }

  end(info?: CallEndInfo): void {
    const facts = this.facts;
    this.facts = null;
    if (facts === null) return;
    let report: CallReport | null = null;
    try {
      facts.end(info?.reason ?? null, info?.atMs ?? performance.now());
      const start = facts.start;
      report =
        start === null ? null : buildReport(facts.snapshot(), { startedAtEpochMs: this.wallAt(start.atMs), nowEpochMs: this.wallClock(), profile: info?.profile ?? null });
    } catch (err) {
      this.log.error({ err: (err as Error).stack ?? String(err) }, 'post-call report could not be built; no report for this call');
      return;
    }
    if (report === null) {
      this.log.info({ reason: info?.reason ?? null }, 'no post-call report: the stream was refused');
      return;
    }
    for (const sink of this.options.sinks) {
      try {
        sink(report, this.log);
      } catch (err) {
        this.log.error({ err: (err as Error).stack ?? String(err) }, 'post-call report sink failed');
      }
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.facts = null;
      try {
        this.log.error({ err: (err as Error).stack ?? String(err) }, 'post-call report stopped: a message could not be read; the call goes on without a report');
      } catch {
        // the call matters more than this line
      }
    }
  }
}
