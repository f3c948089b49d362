/**
 * REPORTS_DIR: one file per call, `<callSid>.json`, written atomically: into a temporary file in
 * the same folder, then linked to its name, so a reader never sees half a report. A caller back
 * from a failed transfer is a second stream of the same call: its report, finding the name taken,
 * goes to `<callSid>.<streamSid>.json` (link() refuses to replace, so neither overwrites the other).
 *
 * The folder is checked at start-up (prepareReportsDir: the service refuses to start without a
 * writable one); a write that fails later is logged with the callSid and counted, and the call and
 * the other reports go on.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { link, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import type { ReportFileOutcome } from '../observability/metrics.js';
import { PendingWork } from './pending.js';
import type { CallReport } from './schema.js';

/** A folder that cannot take reports: the message names it and why. */
export class ReportsDirError extends Error {
  override name = 'ReportsDirError';
}

/** Creates the folder if need be and proves it writable, or throws a ReportsDirError saying why. */
export function prepareReportsDir(dir: string, variable: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.callbridge-write-check-${process.pid}-${randomBytes(4).toString('hex')}`);
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (err) {
    throw new ReportsDirError(`${variable} ${dir} is not a writable folder: ${(err as Error).message}`);
  }
}

/** A file name from a Twilio id: nothing but letters, digits, `_` and `-` (ids are exactly that). */
export function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_');
}

/**
 * Gives a finished temporary file in `dir` its name, `<callSid>.<ext>`, atomically and never over
 * another call's file: link() refuses an existing name, and a second stream of the same call (a
 * caller back from a failed transfer) then gets `<callSid>.<streamSid>.<ext>`. Returns the path.
 * The temporary file is left for the caller to remove.
 */
export async function publishFile(tmp: string, dir: string, callSid: string, streamSid: string, ext: string): Promise<string> {
  const file = join(dir, `${safeName(callSid)}.${ext}`);
  try {
    await link(tmp, file);
    return file;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const second = join(dir, `${safeName(callSid)}.${safeName(streamSid)}.${ext}`);
      await link(tmp, second);
      return second;
    }
    // A file system without hard links: rename is atomic too, it only would replace a file of
    // the same name.
    await rename(tmp, file);
    return file;
  }
}

/** A temporary file in `dir` for a call's file: hidden, unique, removed once published. */
export function temporaryFile(dir: string, callSid: string, ext: string): string {
  return join(dir, `.${safeName(callSid)}.${randomBytes(6).toString('hex')}.${ext}.tmp`);
}

export class ReportFiles {
  private readonly writes = new PendingWork();

  constructor(
    private readonly dir: string,
    private readonly onOutcome: (outcome: ReportFileOutcome) => void,
  ) {}

  /** Starts the write and returns at once; the write settles on its own. */
  write(report: CallReport, log: Logger): void {
    this.writes.track(this.writeFile(report, log));
  }

  /** Waits for the writes under way, up to `timeoutMs`; true when none is left. */
  flush(timeoutMs: number): Promise<boolean> {
    return this.writes.settle(timeoutMs);
  }

  private async writeFile(report: CallReport, log: Logger): Promise<void> {
    const tmp = temporaryFile(this.dir, report.callSid, 'json');
    try {
      await writeFile(tmp, `${JSON.stringify(report, null, 2)}\n`);
      const file = await publishFile(tmp, this.dir, report.callSid, report.streamSid, 'json');
      this.onOutcome('written');
      log.info({ file }, 'post-call report written');
    } catch (err) {
      this.onOutcome('failed');
      log.error({ err: (err as Error).message, dir: this.dir }, 'post-call report file could not be written');
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }
}
