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
  const backend = await startBackend(config, logger);
  const recorderFactory =
    config.recordCallsDir === null
      ? undefined
      : fileRecorderFactory(config.recordCallsDir, (err, file) => logger.warn({ err: err.message, file }, 'call capture write failed'));
  if (config.recordCallsDir !== null) logger.info({ dir: config.recordCallsDir }, 'RECORD_CALLS: capturing every call for replay');
  const server = await buildServer({
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

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      // A second signal means "now": end the calls without waiting out the drain.
      logger.warn({ signal }, 'second signal: ending live calls now');
      await server.endAllCalls();
      process.exit(0);
    }
    stopping = true;
    // Readiness fails at once so the load balancer stops sending calls; live calls may finish.
    server.startDraining();
    logger.info({ signal, liveCalls: server.calls.size, drainTimeoutMs: config.drainTimeoutMs }, 'draining before shutdown');
    try {
      const finished = await server.waitForCallsToFinish(config.drainTimeoutMs);
      if (!finished) logger.warn({ liveCalls: server.calls.size }, 'drain timeout: ending the remaining calls');
      await server.endAllCalls();
      await server.app.close();
      await backend.local?.close();
      logger.info('shut down cleanly');
      process.exit(0);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`callbridge failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
