/**
 * The operations listener: GET /metrics on METRICS_PORT, apart from the public port.
 *
 * Why a port of its own: the public port is what the load balancer exposes to Twilio, and so to
 * the internet; metrics name call volumes, outcomes and error codes, which are nobody else's
 * business, and scraping them costs every worker a round of work. Kept off the public listener,
 * /metrics cannot be reached however the ingress is configured; only /healthz and /readyz stay
 * public-side, where probes expect them.
 *
 * Plain node:http: one route, no body parsing, nothing of the call path. With WORKERS > 1 only the
 * primary listens here, serving the figures it gathers from every worker.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import type { MetricsExposition } from './metrics.js';

export const METRICS_PATH = '/metrics';
/** A scrape is small and local; a client slower than this is holding a socket for nothing. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsServerOptions {
  exposition: MetricsExposition;
  host: string;
  /** 0: an ephemeral port (tests); the log line names the one chosen */
  port: number;
  logger: Logger;
}

export interface MetricsServer {
  /** `http://HOST:PORT`, as logged */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Listens and logs "metrics listening at http://HOST:PORT"; rejects if the port cannot be had. */
export async function serveMetrics({ exposition, host, port, logger }: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    void answer(request, response, exposition, logger);
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`METRICS_PORT ${port} on ${host}: ${err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // A socket error after listening (a client resetting mid-scrape) is the client's problem.
  server.on('error', (err) => logger.warn({ err: err.message }, 'metrics listener error'));
  const bound = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  logger.info({ metricsPort: bound }, `metrics listening at ${url}`);
  return { url, port: bound, close: () => closeServer(server) };
}

async function answer(request: IncomingMessage, response: ServerResponse, exposition: MetricsExposition, logger: Logger): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (path !== METRICS_PATH) {
    send(response, 404, 'application/json; charset=utf-8', '{"error":"not found"}');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    send(response, 405, 'application/json; charset=utf-8', '{"error":"method not allowed"}');
    return;
  }
  let text: string;
  try {
    text = await exposition.render();
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'metrics unavailable');
    send(response, 503, 'application/json; charset=utf-8', '{"error":"metrics unavailable"}');
    return;
  }
  send(response, 200, exposition.contentType, request.method === 'HEAD' ? '' : text, Buffer.byteLength(text));
}

function send(response: ServerResponse, status: number, contentType: string, body: string, length = Buffer.byteLength(body)): void {
  if (response.writableEnded) return;
  response.writeHead(status, { 'content-type': contentType, 'content-length': length, 'cache-control': 'no-store' });
  response.end(body);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive scrapers would otherwise hold close() open.
    server.closeAllConnections();
  });
}
