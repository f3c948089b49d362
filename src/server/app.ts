/**
 * The Fastify instance of the public port and its plugins (form bodies for Twilio's callbacks,
 * WebSockets for the media streams). Routes are added by the route modules beside this one.
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import formbody from '@fastify/formbody';
import websocket from '@fastify/websocket';
import type { Logger } from '../observability/logger.js';

/** A media frame is < 1 KiB; anything near this bound is not Twilio. */
export const MAX_WS_MESSAGE_BYTES = 64 * 1024;

export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

export async function createApp(logger: Logger): Promise<App> {
  // Per-request access lines would double every webhook; calls log their own meaningful events.
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: false,
  });
  await app.register(formbody);
  await app.register(websocket, { options: { maxPayload: MAX_WS_MESSAGE_BYTES, perMessageDeflate: false } });
  return app;
}
