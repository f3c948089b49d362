/**
 * Structured logging. One root pino logger per process; one child per call carrying callSid and
 * streamSid, so every line of a call can be found by its callSid.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogLevel } from '../config.js';

export type { Logger };

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'callbridge' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

export function callLogger(root: Logger, ids: { callSid: string | null; streamSid: string | null; connectionId: number }): Logger {
  return root.child({ callSid: ids.callSid, streamSid: ids.streamSid, connectionId: ids.connectionId });
}
