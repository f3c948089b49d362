/**
 * Process entry: load config, start the upstream backend (the embedded local model when there is
 * no API key), serve, and shut down gracefully on SIGTERM/SIGINT.
 *
 * WORKERS > 1 runs the same server in that many worker processes under a primary (node:cluster):
 * src/cluster/primary.ts and src/cluster/worker.ts. Unset or 1, none of that code is loaded.
 */
import { ConfigError, loadConfig } from './config.js';
import type { AppConfig } from './config.js';
import { createLogger } from './observability/logger.js';
import type { Logger } from './observability/logger.js';
import { serveMetrics } from './observability/metrics-server.js';
import { startLocalRealtimeServer } from './tooling/local-model/server.js';
import type { LocalRealtimeServer } from './tooling/local-model/server.js';
import { buildServer } from './server.js';
import type { CallbridgeServer } from './server.js';
import { fileRecorderFactory, teeRecorderFactory } from './call/recorder.js';
import type { RecorderFactory } from './call/recorder.js';
import { Metrics } from './observability/metrics.js';
import { ReportsDirError } from './report/files.js';
import { checkCallOutputFolders, startCallOutputs } from './report/setup.js';
import type { CallOutputs } from './report/setup.js';
import { WORKER_COUNT_ENV } from './cluster/protocol.js';
import type { WorkerLink } from './cluster/worker.js';

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
  // A folder that cannot take what calls leave behind stops the start-up, before any call: a
  // report or recording lost for every call is worse than a service that says why it will not run.
  try {
    checkCallOutputFolders(config.reports);
  } catch (err) {
    if (err instanceof ReportsDirError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // WORKERS > 1: this process is either the primary or one of the workers it forked. Unset or 1:
  // none of the cluster code is even loaded.
  if (process.env[WORKER_COUNT_ENV] !== undefined) {
    const { connectToPrimary } = await import('./cluster/worker.js');
    const link = connectToPrimary();
    if (link !== null) return runWorker(config, link);
  }
  if (config.workers > 1) return runClusterPrimary(config);
  return runSingle(config);
}

/** One process serving every call: the default, and what each container replica runs. */
async function runSingle(config: AppConfig): Promise<void> {
  const logger = createLogger(config.logLevel);
  for (const warning of config.startupWarnings) logger.warn(warning);
  let server: CallbridgeServer | null = null;
  logCrashes(logger, () => (server === null ? {} : { liveCalls: server.startedCalls, openStreams: server.calls.size, draining: server.draining }));
  const backend = await startBackend(config, logger);
  if (config.recordCallsDir !== null) logger.info({ dir: config.recordCallsDir }, 'RECORD_CALLS: capturing every call for replay');
  const metrics = new Metrics({ collectDefault: true });
  const outputs = startCallOutputs(config.reports, config.toolsSecret, logger, metrics);
  server = await buildServer({
    config,
    logger,
    realtimeUrl: backend.url,
    metrics,
    ...recorderOption(config, logger, outputs),
  });
  logSecurityWarnings(config, logger);
  // Before the public port: by the time calls can arrive they can be watched, and a taken
  // METRICS_PORT stops the start-up instead of leaving the service unobserved. It stays open
  // through the drain, which is worth watching too.
  await serveMetrics({ exposition: server.metrics, host: config.host, port: config.metricsPort, logger });
  await server.app.listen({ port: config.port, host: config.host });
  const shutdown = shutdownOf(server, config, logger, outputs, async () => backend.local?.close());
  let signalled = false;
  const onSignal = (signal: string): void => {
    if (signalled) shutdown.endNow(signal);
    else shutdown.drain(signal);
    signalled = true;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/**
 * WORKERS > 1, the primary: starts the local model once (when there is no API key), logs the
 * start-up warnings once, and forks and supervises the workers (src/cluster/primary.ts).
 */
async function runClusterPrimary(config: AppConfig): Promise<void> {
  const logger = createLogger(config.logLevel, undefined, { role: 'primary', pid: process.pid });
  for (const warning of config.startupWarnings) logger.warn(warning);
  logCrashes(logger, () => ({}));
  const backend = await startBackend(config, logger);
  if (config.recordCallsDir !== null) logger.info({ dir: config.recordCallsDir }, 'RECORD_CALLS: capturing every call for replay');
  logSecurityWarnings(config, logger);
  const { runPrimary } = await import('./cluster/primary.js');
  await runPrimary({
    config,
    logger,
    localRealtimeUrl: backend.local === null ? null : backend.url,
    beforeExit: async () => backend.local?.close(),
  });
}

/**
 * WORKERS > 1, a worker: the ordinary server with its share of MAX_CALLS, on the primary's local
 * model if it runs one, consulting the primary's one-stream memory. It serves no metrics (the
 * primary does, on METRICS_PORT) and drains when the primary says so.
 */
async function runWorker(config: AppConfig, link: WorkerLink): Promise<void> {
  const logger = createLogger(config.logLevel, undefined, { role: 'worker', worker: link.id, pid: process.pid });
  let server: CallbridgeServer | null = null;
  logCrashes(logger, () => (server === null ? {} : { liveCalls: server.startedCalls, openStreams: server.calls.size, draining: server.draining }));
  if (config.realtimeBackend === 'local' && link.realtimeUrl === null) {
    throw new Error('worker started without the URL of the primary\'s local model');
  }
  const realtimeUrl = link.realtimeUrl ?? config.realtimeUrl;
  // MAX_CALLS is the service's; each worker admits its share.
  const workerConfig: AppConfig = { ...config, maxCalls: Math.ceil(config.maxCalls / link.count) };
  // Each worker reports its own calls, from its own queue; the primary sums the metrics.
  const metrics = new Metrics({ collectDefault: true });
  const outputs = startCallOutputs(config.reports, config.toolsSecret, logger, metrics);
  server = await buildServer({
    config: workerConfig,
    logger,
    realtimeUrl,
    metrics,
    sharedStreamClaims: link.streamClaims,
    ...recorderOption(config, logger, outputs),
  });
  link.serveMetrics(server.metrics);
  // The primary logs "Server listening at …" once every worker listens; each worker says so in its own words.
  const addresses: string[] = [];
  await server.app.listen({
    port: config.port,
    host: config.host,
    listenTextResolver: (address) => {
      addresses.push(address);
      return `worker listening at ${address}`;
    },
  });
  const shutdown = shutdownOf(server, config, logger, outputs, async () => {});
  link.onStop((request) => {
    // Only the primary's second signal ends calls at once; a worker's own signals only ever
    // drain (see src/cluster/worker.ts: Ctrl-C reaches the primary and every worker).
    if (request.kind === 'now') shutdown.endNow(`${request.signal} (via the primary)`);
    else shutdown.drain(request.from === 'primary' ? `${request.signal} (via the primary)` : request.signal);
  });
  link.ready(addresses);
}

/** Every recorder a call gets: the RECORD_CALLS capture, the post-call report, the audio recording. */
function recorderOption(config: AppConfig, logger: Logger, outputs: CallOutputs): { recorderFactory?: RecorderFactory } {
  const factories = [...outputs.factories];
  if (config.recordCallsDir !== null) {
    factories.unshift(fileRecorderFactory(config.recordCallsDir, (err, file) => logger.warn({ err: err.message, file }, 'call capture write failed')));
  }
  const recorderFactory = teeRecorderFactory(factories, (err, ids) =>
    logger.error({ callSid: ids.callSid, streamSid: ids.streamSid, err: (err as Error).stack ?? String(err) }, 'a call recorder failed; the others and the call go on'),
  );
  return recorderFactory === undefined ? {} : { recorderFactory };
}

function logSecurityWarnings(config: AppConfig, logger: Logger): void {
  if (config.twilioAuthToken === null) {
    logger.warn(
      'TWILIO_AUTH_TOKEN is not set: requests are NOT authenticated, and anyone who finds this URL can place calls through it on your API key. Set TWILIO_AUTH_TOKEN and PUBLIC_URL before exposing the service.',
    );
  }
  if (config.publicUrl === null) {
    logger.warn('PUBLIC_URL is not set: TwiML will point Twilio at the Host header of each webhook request');
  }
}

/**
 * However long the calls took to drain, the reports of the last of them get this long to go out:
 * they are made when those calls end. The Kubernetes manifests' grace period leaves it (README,
 * Scaling out).
 */
const REPORT_FLUSH_MIN_MS = 5000;
/** After a second signal: a short last chance for reports and recordings already under way. */
const REPORT_FLUSH_NOW_MS = 1000;

/**
 * Drain: readiness fails at once so the load balancer stops sending calls; live calls may finish
 * for up to DRAIN_TIMEOUT_S, then the rest are ended; pending post-call reports and recordings
 * are flushed for what is left of the drain (at least REPORT_FLUSH_MIN_MS), and the process exits
 * 0. Idempotent. endNow: end the calls without waiting out the drain (a second signal).
 */
function shutdownOf(
  running: CallbridgeServer,
  config: AppConfig,
  logger: Logger,
  outputs: CallOutputs,
  closeBackend: () => Promise<unknown>,
): { drain(signal: string): void; endNow(signal: string): void } {
  let draining = false;
  let endingNow = false;
  return {
    drain(signal) {
      if (draining || endingNow) return;
      draining = true;
      running.startDraining();
      logger.info({ signal, liveCalls: running.startedCalls, drainTimeoutMs: config.drainTimeoutMs }, 'draining before shutdown');
      const drainStartedAt = Date.now();
      void (async () => {
        try {
          const finished = await running.waitForCallsToFinish(config.drainTimeoutMs);
          if (endingNow) return;
          if (!finished) logger.warn({ liveCalls: running.startedCalls, openStreams: running.calls.size }, 'drain timeout: ending the remaining calls');
          await running.endAllCalls();
          // Every call has ended, so every report is made: send what is still queued.
          await outputs.flush(Math.max(REPORT_FLUSH_MIN_MS, config.drainTimeoutMs - (Date.now() - drainStartedAt)));
          if (endingNow) return;
          await running.app.close();
          await closeBackend();
          logger.info('shut down cleanly');
          process.exit(0);
        } catch (err) {
          logger.error({ err: errorFields(err) }, 'shutdown failed');
          process.exit(1);
        }
      })();
    },
    endNow(signal) {
      if (endingNow) return;
      endingNow = true;
      running.startDraining();
      logger.warn({ signal }, 'second signal: ending live calls now');
      void (async () => {
        try {
          await running.endAllCalls();
          await outputs.flush(REPORT_FLUSH_NOW_MS);
          process.exit(0);
        } catch (err) {
          logger.error({ err: errorFields(err) }, 'ending calls on the second signal failed');
          process.exit(1);
        }
      })();
    },
  };
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
