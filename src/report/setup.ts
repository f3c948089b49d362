/**
 * What each call leaves behind, wired for a serving process from its config: the post-call report
 * (REPORTS_DIR and/or CALL_REPORT_URL) and the audio recording (RECORD_AUDIO), as recorders the
 * bridge feeds, and the flush the shutdown runs before the process exits.
 */
import type { ReportSettings } from '../config.js';
import type { RecorderFactory } from '../call/recorder.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { audioRecordings } from '../recording/audio-recorder.js';
import { ReportDelivery } from './deliver.js';
import { prepareReportsDir, ReportFiles } from './files.js';
import { reportRecorderFactory, type ReportSink } from './recorder.js';

export interface CallOutputs {
  /** The recorders to give every call; empty when nothing is configured. */
  readonly factories: RecorderFactory[];
  /**
   * Shutdown: waits up to `timeoutMs` for report files and recordings being written and for the
   * CALL_REPORT_URL queue to empty; what is still undelivered then is logged and counted failed.
   */
  flush(timeoutMs: number): Promise<void>;
}

/** Refuses (ReportsDirError) a folder that cannot be written: before any call, never during one. */
export function checkCallOutputFolders(settings: ReportSettings): void {
  if (settings.reportsDir !== null) prepareReportsDir(settings.reportsDir, 'REPORTS_DIR');
  if (settings.recordAudioDir !== null) prepareReportsDir(settings.recordAudioDir, 'RECORD_AUDIO');
}

export function startCallOutputs(settings: ReportSettings, toolsSecret: string | null, logger: Logger, metrics: Metrics): CallOutputs {
  const sinks: ReportSink[] = [];
  const flushes: Array<(timeoutMs: number) => Promise<unknown>> = [];
  if (settings.reportsDir !== null) {
    const files = new ReportFiles(settings.reportsDir, (outcome) => metrics.reportFile(outcome));
    sinks.push((report, log) => files.write(report, log));
    flushes.push((ms) => files.flush(ms));
    logger.info({ dir: settings.reportsDir }, 'REPORTS_DIR: a post-call report file per call');
  }
  if (settings.callReportUrl !== null) {
    const delivery = new ReportDelivery({
      url: settings.callReportUrl,
      secret: toolsSecret,
      logger,
      onOutcome: (outcome, latencyMs) => metrics.report(outcome, latencyMs),
    });
    sinks.push((report, log) => delivery.enqueue(report, log));
    flushes.push(async (ms) => {
      const { abandoned } = await delivery.flush(ms);
      if (abandoned > 0) logger.error({ abandoned }, 'shutdown: post-call reports not delivered to CALL_REPORT_URL in time');
    });
    logger.info({ signed: toolsSecret !== null }, 'CALL_REPORT_URL: posting a post-call report per call');
  }
  const factories: RecorderFactory[] = [];
  if (sinks.length > 0) factories.push(reportRecorderFactory({ sinks, logger }));
  if (settings.recordAudioDir !== null) {
    const recordings = audioRecordings(settings.recordAudioDir, logger);
    factories.push(recordings.factory);
    flushes.push((ms) => recordings.flush(ms));
    logger.info({ dir: settings.recordAudioDir }, 'RECORD_AUDIO: recording every call (stereo: caller left, what the caller heard right)');
  }
  return {
    factories,
    async flush(timeoutMs) {
      await Promise.all(flushes.map((f) => f(timeoutMs)));
    },
  };
}
