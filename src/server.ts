/**
 * The public port, composed: the Fastify app (src/server/app.ts), its routes — probes, Twilio's
 * webhooks, the media stream — and what they share: admission (limits, draining, the one-stream
 * memory), Twilio access (signatures, call tokens, REST), the handoffs of transferred calls and the
 * per-connection observers. Each lives in its own module under src/server/; this file wires them
 * and owns the server's lifecycle (drain, end every call). Call behaviour lives in src/call/.
 * Metrics are not served here but on METRICS_PORT (src/observability/metrics-server.ts, started
 * by main.ts).
 */
import type { AppConfig } from './config.js';
import type { CallBridge } from './call/bridge.js';
import type { RecorderFactory } from './call/recorder.js';
import type { Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import type { SharedStreamClaims } from './twilio/start-verification.js';
import { Admission } from './server/admission.js';
import { CallAgents } from './server/call-agents.js';
import { createApp } from './server/app.js';
import type { App } from './server/app.js';
import { callObserverFactory } from './server/call-observer.js';
import { Handoffs } from './server/handoffs.js';
import { registerMediaStreamRoute } from './server/media-stream-route.js';
import { registerProbeRoutes } from './server/probe-routes.js';
import { TwilioAccess } from './server/twilio-access.js';
import { registerWebhookRoutes } from './server/webhook-routes.js';
import { registerOutboundRoutes } from './server/outbound-routes.js';

// What other modules and tests import from here, wherever it now lives.
export { MAX_WS_MESSAGE_BYTES } from './server/app.js';
export type { App } from './server/app.js';
export { ANSWERED_STREAM_WAIT_MS, MIN_PENDING_STREAMS } from './server/admission.js';
export { DIAL_STATUS_PARAMETER, FROM_PARAMETER, RESUME_PARAMETER, TO_PARAMETER, TRANSFER_STATUS_PATH } from './server/twiml-contract.js';

/** How long ending all calls waits for the peers' close handshakes before cutting sockets. */
const END_CALLS_GRACE_MS = 3000;
/** How often a drain re-checks for streams of answered calls; they arrive within a second or two. */
const DRAIN_POLL_MS = 100;

export interface ServerOptions {
  config: AppConfig;
  logger: Logger;
  /** Where calls go upstream; defaults to config.realtimeUrl (the local model's URL when it runs). */
  realtimeUrl?: string;
  /** Capture every call (RECORD_CALLS, in-process replay). */
  recorderFactory?: RecorderFactory;
  /** Register Node's default process metrics (event-loop lag, memory); off in tests. */
  processMetrics?: boolean;
  /** The process's metrics, when something made before the server records into them too (post-call reports); default a new one. */
  metrics?: Metrics;
  /** Clock for call tokens, the one-stream memory and `{{now}}` (ms since the epoch); tests move it to expire them. */
  wallClock?: () => number;
  /**
   * WORKERS > 1: the primary's cluster-wide one-stream memory. Asked after this process's own
   * memory accepted a start, alongside the upstream connect (no added latency).
   */
  sharedStreamClaims?: SharedStreamClaims;
}

export interface CallbridgeServer {
  app: App;
  metrics: Metrics;
  /** every open media-stream connection (started or not), for shutdown and tests */
  readonly calls: ReadonlySet<CallBridge>;
  /** calls whose `start` was accepted and that have not ended: what MAX_CALLS counts */
  readonly startedCalls: number;
  readonly draining: boolean;
  /** stop taking calls: readiness fails and the webhook answers busy */
  startDraining(): void;
  /** end every live call; sockets still open after `graceMs` are cut */
  endAllCalls(graceMs?: number): Promise<void>;
  /**
   * Resolves true once no connection is open and no call answered by the webhook is still due to
   * start its stream; false after `timeoutMs`.
   */
  waitForCallsToFinish(timeoutMs: number): Promise<boolean>;
}

export async function buildServer(options: ServerOptions): Promise<CallbridgeServer> {
  const { config, logger } = options;
  const wallClock = options.wallClock ?? Date.now;
  const app = await createApp(logger);
  const metrics = options.metrics ?? new Metrics({ collectDefault: options.processMetrics ?? false });
  app.addHook('onClose', async () => metrics.stop());

  const admission = new Admission({ maxCalls: config.maxCalls, maxCallDurationMs: config.maxCallDurationMs, wallClock });
  const access = new TwilioAccess({ config, logger, metrics, wallClock, sharedStreamClaims: options.sharedStreamClaims });
  const handoffs = new Handoffs({ wallClock });
  const agents = new CallAgents({ config, metrics, wallClock });
  app.addHook('onClose', async () => agents.close());

  registerProbeRoutes(app, admission);
  registerWebhookRoutes(app, { access, agents, admission, handoffs, metrics, logger });
  const calls = registerMediaStreamRoute(app, {
    config,
    logger,
    realtimeUrl: options.realtimeUrl ?? config.realtimeUrl,
    access,
    agents,
    admission,
    handoffs,
    metrics,
    observerFor: callObserverFactory(metrics),
    sharedStreamClaims: options.sharedStreamClaims,
    recorderFactory: options.recorderFactory,
  });
  // After the media stream: an answering-machine verdict is handed to the call's stream.
  registerOutboundRoutes(app, { config, access, agents, admission, metrics, logger, calls, wallClock });

  return {
    app,
    metrics,
    calls,
    get startedCalls() {
      return admission.startedCalls;
    },
    get draining() {
      return admission.draining;
    },
    startDraining() {
      if (!admission.startDraining()) return;
      logger.info({ liveCalls: admission.startedCalls, answeredNotStarted: admission.answeredNotStarted() }, 'draining: no new calls; live calls may finish');
    },
    async endAllCalls(graceMs = END_CALLS_GRACE_MS) {
      const live = [...calls];
      for (const call of live) call.shutdown();
      const closedInTime = await within(Promise.all(live.map((c) => c.closed)), graceMs);
      if (!closedInTime) {
        const stuck = live.filter((c) => calls.has(c));
        logger.warn({ stuck: stuck.length, graceMs }, 'peers did not finish the close handshake; cutting their sockets');
        for (const call of stuck) call.terminate();
        await Promise.all(stuck.map((c) => c.closed));
      }
    },
    async waitForCallsToFinish(timeoutMs) {
      // Polled rather than a snapshot of `calls`: streams of calls answered before the drain keep
      // arriving after it began, and they must be waited for too.
      const finished = (): boolean => calls.size === 0 && admission.answeredNotStarted() === 0;
      if (finished()) return true;
      return new Promise<boolean>((resolve) => {
        const poll = setInterval(() => {
          if (!finished()) return;
          clearInterval(poll);
          clearTimeout(deadline);
          resolve(true);
        }, DRAIN_POLL_MS);
        const deadline = setTimeout(() => {
          clearInterval(poll);
          resolve(finished());
        }, timeoutMs);
      });
    },
  };
}

async function within(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
