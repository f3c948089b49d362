/**
 * Process entry: load config, start the upstream backend (the embedded local model when there is
 * no API key), serve, and shut down gracefully on SIGTERM/SIGINT.
 */
import { ConfigError, loadConfig } from './config.js';
import type { AppConfig } from './config.js';
import { createLogger } from './observability/logger.js';
import type { Logger } from './observability/logger.js';
import { startLocalRealtimeServer } from './realtime/local/server.js';
import type { LocalRealtimeServer } from './realtime/local/server.js';
import { buildServer } from './server.js';
import type { CallbridgeServer } from './server.js';
import { fileRecorderFactory } from './call/recorder.js';

async function startBackend(config: AppConfig, logger: Logger): Promise<{ url: string; local: LocalRealtimeServer | null }> {
  if (config.realtimeBackend === 'openai') {
    logger.info({ realtimeUrl: config.realtimeUrl }, 'realtime backend: OpenAI-compatible endpoint');
    return { url: config.realtimeUrl, local: null };
  }
  const local = await startLocalRealtimeServer({ record: false, logger: logger.child({ component: 'local-model' }) });
  logger.info(
    { realtimeUrl: local.url },
    'no OPENAI_API_KEY (or REALTIME_BACKEND=local): running on the embedded local model, an echo agent that speaks your last sentence back',
  );
  return { url: local.url, local };
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  for (const warning of config.startupWarnings) logger.warn(warning);
  let server: CallbridgeServer | null = null;
  logCrashes(logger, () => (server === null ? {} : { liveCalls: server.startedCalls, openStreams: server.calls.size, draining: server.draining }));
  const backend = await startBackend(config, logger);
  const recorderFactory =
    config.recordCallsDir === null
      ? undefined
      : fileRecorderFactory(config.recordCallsDir, (err, file) => logger.warn({ err: err.message, file }, 'call capture write failed'));
  if (config.recordCallsDir !== null) logger.info({ dir: config.recordCallsDir }, 'RECORD_CALLS: capturing every call for replay');
  server = await buildServer({
    config,
    logger,
    realtimeUrl: backend.url,
    processMetrics: true,
    ...(recorderFactory === undefined ? {} : { recorderFactory }),
  });
  if (config.twilioAuthToken === null) {
    logger.warn(
      'TWILIO_AUTH_TOKEN is not set: requests are NOT authenticated, and anyone who finds this URL can place calls through it on your API key. Set TWILIO_AUTH_TOKEN and PUBLIC_URL before exposing the service.',
    );
  }
  if (config.publicUrl === null) {
    logger.warn('PUBLIC_URL is not set: TwiML will point Twilio at the Host header of each webhook request');
  }
  await server.app.listen({ port: config.port, host: config.host });
  const running = server;

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      // A second signal means "now": end the calls without waiting out the drain.
      logger.warn({ signal }, 'second signal: ending live calls now');
      try {
        await running.endAllCalls();
        process.exit(0);
      } catch (err) {
        logger.error({ err: errorFields(err) }, 'ending calls on the second signal failed');
        process.exit(1);
      }
    }
    stopping = true;
    // Readiness fails at once so the load balancer stops sending calls; live calls may finish.
    running.startDraining();
    logger.info({ signal, liveCalls: running.startedCalls, drainTimeoutMs: config.drainTimeoutMs }, 'draining before shutdown');
    try {
      const finished = await running.waitForCallsToFinish(config.drainTimeoutMs);
      if (!finished) logger.warn({ liveCalls: running.startedCalls, openStreams: running.calls.size }, 'drain timeout: ending the remaining calls');
      await running.endAllCalls();
      await running.app.close();
      await backend.local?.close();
      logger.info('shut down cleanly');
      process.exit(0);
    } catch (err) {
      logger.error({ err: errorFields(err) }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/**
 * A crash must be loud: without these, an exception thrown from a timer or socket callback would
 * kill every live call with only Node's bare stack trace on stderr, outside the JSON log stream
 * that is searched and alerted on.
 */
function logCrashes(logger: Logger, context: () => Record<string, unknown>): void {
  // A stray rejection (a REST hang-up, a capture write) belongs to one call at most; Node's
  // default of crashing on it would end every other call too. Logged at error to be seen and fixed.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: errorFields(reason), ...safeContext(context) }, 'unhandled promise rejection');
  });
  // After an uncaught exception the process state is unknown: log, then exit non-zero so the
  // supervisor restarts it. pino flushes its buffered lines on exit.
  process.on('uncaughtException', (err, origin) => {
    try {
      logger.fatal({ err: errorFields(err), origin, ...safeContext(context) }, 'uncaught exception: exiting');
    } catch {
      process.stderr.write(`callbridge: uncaught exception (${origin}): ${err.stack ?? String(err)}\n`);
    }
    process.exit(1);
  });
}

function safeContext(context: () => Record<string, unknown>): Record<string, unknown> {
  try {
    return context();
  } catch {
    return {};
  }
}

function errorFields(err: unknown): { message: string; stack?: string; name?: string } {
  if (err instanceof Error) return { name: err.name, message: err.message, ...(err.stack === undefined ? {} : { stack: err.stack }) };
  return { message: String(err) };
}

main().catch((err: unknown) => {
  process.stderr.write(`callbridge failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
