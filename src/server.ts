/**
 * The Fastify app: routes and plugins only. Call behaviour lives in src/call/.
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyInstance, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import formbody from '@fastify/formbody';
import websocket from '@fastify/websocket';
import type { AppConfig } from './config.js';
import { CallBridge } from './call/bridge.js';
import type { RecorderFactory } from './call/recorder.js';
import type { Logger } from './observability/logger.js';
import { connectStreamTwiml, streamUrlFrom } from './twilio/twiml.js';

/** A media frame is < 1 KiB; anything near this bound is not Twilio. */
export const MAX_WS_MESSAGE_BYTES = 64 * 1024;
/** How long ending all calls waits for the peers' close handshakes before cutting sockets. */
const END_CALLS_GRACE_MS = 3000;

export interface ServerOptions {
  config: AppConfig;
  logger: Logger;
  /** Where calls go upstream; defaults to config.realtimeUrl (the local model's URL when it runs). */
  realtimeUrl?: string;
  /** Capture every call (RECORD_CALLS, in-process replay). */
  recorderFactory?: RecorderFactory;
}

export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

export interface CallbridgeServer {
  app: App;
  /** live calls, for shutdown and tests */
  readonly calls: ReadonlySet<CallBridge>;
  /** hang up every live call; sockets still open after `graceMs` are cut */
  endAllCalls(graceMs?: number): Promise<void>;
}

export async function buildServer(options: ServerOptions): Promise<CallbridgeServer> {
  const { config, logger } = options;
  const realtimeUrl = options.realtimeUrl ?? config.realtimeUrl;
  // Per-request access lines would double every webhook; calls log their own meaningful events.
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: false,
  });
  const calls = new Set<CallBridge>();
  let nextConnectionId = 1;

  await app.register(formbody);
  await app.register(websocket, { options: { maxPayload: MAX_WS_MESSAGE_BYTES, perMessageDeflate: false } });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.post('/incoming-call', async (request, reply) => {
    const streamUrl = streamUrlFor(request, config, logger);
    const callSid = formField(request, 'CallSid');
    logger.info({ callSid, streamUrl }, 'incoming call: answering with <Connect><Stream>');
    return reply.type('text/xml').send(connectStreamTwiml(streamUrl));
  });

  app.get('/media-stream', { websocket: true }, (socket) => {
    const bridge = new CallBridge(socket, {
      agent: config.agent,
      realtimeUrl,
      apiKey: config.openaiApiKey,
      logger,
      connectionId: nextConnectionId++,
      ...(options.recorderFactory === undefined ? {} : { recorderFactory: options.recorderFactory }),
    });
    calls.add(bridge);
    void bridge.closed.then(() => calls.delete(bridge));
  });

  return {
    app,
    calls,
    async endAllCalls(graceMs = END_CALLS_GRACE_MS) {
      const live = [...calls];
      for (const call of live) call.hangUp();
      let timer: NodeJS.Timeout | undefined;
      const closedInTime = await Promise.race([
        Promise.all(live.map((c) => c.closed)).then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (!closedInTime) {
        const stuck = live.filter((c) => calls.has(c));
        logger.warn({ stuck: stuck.length, graceMs }, 'peers did not finish the close handshake; cutting their sockets');
        for (const call of stuck) call.terminate();
        await Promise.all(stuck.map((c) => c.closed));
      }
    },
  };
}

function streamUrlFor(request: FastifyRequest, config: AppConfig, logger: Logger): string {
  if (config.publicUrl !== null) return streamUrlFrom(config.publicUrl);
  const host = request.headers.host ?? `localhost:${config.port}`;
  logger.warn({ host }, 'PUBLIC_URL is not set: building the stream URL from the Host header; set PUBLIC_URL in production');
  return streamUrlFrom(`https://${host}`);
}

function formField(request: FastifyRequest, name: string): string | null {
  const body = request.body;
  if (typeof body !== 'object' || body === null) return null;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : null;
}
