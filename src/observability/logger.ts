/**
 * Structured logging. One root pino logger per process; one child per call carrying callSid and
 * streamSid, so every line of a call can be found by its callSid.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogLevel } from '../config.js';

export type { Logger };

/**
 * Standard output is written asynchronously: a synchronous write is a syscall per line on the
 * event loop that carries every call's audio (3 % of the bridge's busy time at 40 calls), and a
 * slow log reader would stall the calls. Lines written meanwhile go out together; pino flushes
 * what is left synchronously when the process exits, so a crash's last line is not lost.
 *
 * `bindings` go on every line the logger (and its children) writes: with WORKERS > 1 the primary's
 * lines carry `role: "primary"` and a worker's `role: "worker"` and its `worker` id, so the lines
 * of one process can be told from the others' in the shared output.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream, bindings: Record<string, unknown> = {}): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'callbridge', ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}

export function callLogger(root: Logger, ids: { callSid: string | null; streamSid: string | null; connectionId: number }): Logger {
  return root.child({ callSid: ids.callSid, streamSid: ids.streamSid, connectionId: ids.connectionId });
}
