import { createHmac, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_TOOL_RESPONSE_BYTES, type HttpToolRequest, runHttpTool, toolSignature } from '../../src/call/http-tool.js';
import type { HttpTool } from '../../src/config.js';

const SECRET = 'tool-secret-0123456789';
const CALL_SID = 'CA22222222222222222222222222222222';

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;

/** A tool endpoint on loopback. Each test installs its handler; requests and socket closes are recorded. */
class ToolServer {
  readonly received: Received[] = [];
  handler: Handler = (_req, res) => res.end('{}');
  /** resolves when the socket of the first request closes */
  private socketClosed!: Promise<void>;
  private markClosed!: () => void;
  private readonly server: Server = createServer((req, res) => void this.handle(req, res));

  constructor() {
    this.resetClosed();
  }

  private resetClosed(): void {
    this.socketClosed = new Promise((ok) => (this.markClosed = ok));
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/tools/lookup`;
  }

  async start(): Promise<void> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  /** Resolves true once the client's connection is closed, false if it still is open after `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((ok) => (timer = setTimeout(() => ok(false), ms)));
    const result = await Promise.race([this.socketClosed.then(() => true), expired]);
    clearTimeout(timer);
    return result;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.socket.once('close', () => this.markClosed());
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    this.received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
    await this.handler(req, res, body);
  }
}

function tool(url: string, timeoutMs = 2000): HttpTool {
  return {
    type: 'http',
    name: 'lookup_order',
    description: 'Looks up an order',
    parameters: { type: 'object', properties: { orderId: { type: 'string' } } },
    url,
    timeoutMs,
  };
}

const request: HttpToolRequest = {
  name: 'lookup_order',
  arguments: { orderId: 'A-17', note: 'café "quoted" ✓' },
  callSid: CALL_SID,
  from: '+15550001111',
  to: null,
};

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}

/** The promise's value, or 'still pending' after `ms`: a missing timeout fails an assertion, not the test runner's clock. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T | 'still pending'> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'still pending'>((ok) => (timer = setTimeout(() => ok('still pending'), ms)));
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

let server: ToolServer;
beforeEach(async () => {
  server = new ToolServer();
  await server.start();
});
afterEach(() => server.stop());

describe('toolSignature', () => {
  it('is sha256= and the hex HMAC-SHA256 of the body under the secret', () => {
    // RFC 4231 test case 2
    expect(toolSignature('Jefe', 'what do ya want for nothing?')).toBe('sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });
});

describe('runHttpTool', () => {
  it('POSTs the call as signed JSON and returns the 2xx body as-is', async () => {
    server.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"shipped","eta":"Tuesday"}');
    };
    const outcome = await runHttpTool(tool(server.url), request, { secret: SECRET });

    expect(outcome).toEqual({ ok: true, output: '{"status":"shipped","eta":"Tuesday"}' });
    expect(server.received).toHaveLength(1);
    const [got] = server.received;
    expect(got?.method).toBe('POST');
    expect(got?.path).toBe('/tools/lookup');
    expect(got?.headers['content-type']).toBe('application/json');
    expect(got?.body.toString('utf8')).toBe(
      JSON.stringify({ name: 'lookup_order', arguments: request.arguments, callSid: CALL_SID, from: '+15550001111', to: null }),
    );
    // Verified as a tool endpoint would: HMAC over the raw bytes received, constant-time compare.
    const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(got?.body ?? Buffer.alloc(0)).digest('hex')}`);
    const header = Buffer.from(String(got?.headers['x-callbridge-signature']));
    expect(header.length).toBe(expected.length);
    expect(timingSafeEqual(header, expected)).toBe(true);
    const wrongKey = `sha256=${createHmac('sha256', 'other-secret').update(got?.body ?? Buffer.alloc(0)).digest('hex')}`;
    expect(header.toString()).not.toBe(wrongKey);
  });

  it('sends no signature header without a secret, and passes a plain-text body through', async () => {
    server.handler = (_req, res) => {
      res.writeHead(201, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Order A-17 ships Tuesday. ✓');
    };
    const outcome = await runHttpTool(tool(server.url), request, { secret: null });
    expect(outcome).toEqual({ ok: true, output: 'Order A-17 ships Tuesday. ✓' });
    expect(server.received[0]?.headers).not.toHaveProperty('x-callbridge-signature');
  });

  it('accepts a body of exactly the limit', async () => {
    const body = 'x'.repeat(MAX_TOOL_RESPONSE_BYTES);
    server.handler = (_req, res) => res.end(body);
    await expect(runHttpTool(tool(server.url), request, { secret: null })).resolves.toEqual({ ok: true, output: body });
  });

  it('times out a tool that never answers, and closes the connection', async () => {
    server.handler = () => undefined; // never answers
    const started = performance.now();
    const outcome = await within(2000, runHttpTool(tool(server.url, 200), request, { secret: SECRET }));
    const elapsed = performance.now() - started;

    expect(outcome).toEqual({ ok: false, error: 'tool lookup_order timed out after 200 ms' });
    expect(elapsed).toBeGreaterThanOrEqual(180);
    expect(elapsed).toBeLessThan(700);
    expect(server.received).toHaveLength(1);
    expect(await server.closedWithin(1000)).toBe(true);
  });

  it('times out a tool that answers headers but never finishes the body', async () => {
    server.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"partial":');
    };
    const started = performance.now();
    const outcome = await within(2000, runHttpTool(tool(server.url, 200), request, { secret: null }));
    expect(outcome).toEqual({ ok: false, error: 'tool lookup_order timed out after 200 ms' });
    expect(performance.now() - started).toBeLessThan(700);
    expect(await server.closedWithin(1000)).toBe(true);
  });

  it('reports a non-2xx answer with its status and the first 200 characters of the body', async () => {
    const body = `upstream database unavailable ${'.'.repeat(300)}`;
    server.handler = (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end(body);
    };
    const outcome = await runHttpTool(tool(server.url), request, { secret: null });
    expect(outcome).toEqual({ ok: false, error: `tool lookup_order answered HTTP 503: ${body.slice(0, 200)}` });
  });

  it('reports a non-2xx answer without a body by its status alone', async () => {
    server.handler = (_req, res) => {
      res.writeHead(404);
      res.end();
    };
    await expect(runHttpTool(tool(server.url), request, { secret: null })).resolves.toEqual({
      ok: false,
      error: 'tool lookup_order answered HTTP 404',
    });
  });

  it('refuses a body over 16 KiB and stops reading it early', async () => {
    const total = 1024 * 1024;
    const chunk = Buffer.alloc(4096, 0x61);
    let written = 0;
    let serverDone!: () => void;
    const served = new Promise<void>((ok) => (serverDone = ok));
    // Paced, so the loopback socket buffers (several MiB) cannot swallow the whole body at once:
    // only a client that stops reading ends the stream before 1 MiB is out.
    server.handler = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      while (written < total && !res.destroyed && res.writable) {
        res.write(chunk);
        written += chunk.length;
        await sleep(2);
      }
      res.end();
      serverDone();
    };

    const started = performance.now();
    const outcome = await runHttpTool(tool(server.url, 10_000), request, { secret: null });
    const elapsed = performance.now() - started;
    expect(outcome).toEqual({ ok: false, error: 'tool lookup_order answered more than 16384 bytes' });
    expect(await server.closedWithin(1000)).toBe(true);
    await served;
    // Buffering the whole answer before checking its size would let all 1 MiB out (~0.5 s).
    expect(written).toBeLessThan(total / 4);
    expect(elapsed).toBeLessThan(300);
  });

  it('refuses one byte over the limit', async () => {
    server.handler = (_req, res) => res.end('x'.repeat(MAX_TOOL_RESPONSE_BYTES + 1));
    await expect(runHttpTool(tool(server.url), request, { secret: null })).resolves.toEqual({
      ok: false,
      error: 'tool lookup_order answered more than 16384 bytes',
    });
  });

  it('reports a refused connection', async () => {
    const dead = new ToolServer();
    await dead.start();
    const url = dead.url;
    await dead.stop();
    const outcome = await runHttpTool(tool(url), request, { secret: null });
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.error).toBe(`tool lookup_order could not connect to ${new URL(url).origin}: connection refused`);
  });

  it('refuses to follow a redirect', async () => {
    server.handler = (_req, res) => {
      res.writeHead(307, { location: 'http://127.0.0.1:9/elsewhere' });
      res.end();
    };
    const outcome = await runHttpTool(tool(server.url), request, { secret: null });
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.error).toMatch(/^tool lookup_order answered with a redirect/);
    expect(server.received).toHaveLength(1);
  });

  it('is cancelled when the call ends, and closes the connection', async () => {
    server.handler = () => undefined; // never answers
    const callEnded = new AbortController();
    setTimeout(() => callEnded.abort(), 50);
    const started = performance.now();
    const outcome = await within(2000, runHttpTool(tool(server.url, 5000), request, { secret: null, signal: callEnded.signal }));
    expect(outcome).toEqual({ ok: false, error: 'tool lookup_order was cancelled: the call ended' });
    expect(performance.now() - started).toBeLessThan(500);
    expect(await server.closedWithin(1000)).toBe(true);
  });

  it('does not call a tool for a call that already ended', async () => {
    const outcome = await runHttpTool(tool(server.url), request, { secret: null, signal: AbortSignal.abort() });
    expect(outcome).toEqual({ ok: false, error: 'tool lookup_order was cancelled: the call ended' });
    await sleep(50);
    expect(server.received).toEqual([]);
  });

  it('never throws, even for arguments that are not JSON-serialisable', async () => {
    const outcome = await runHttpTool(tool(server.url), { ...request, arguments: { n: 1n } }, { secret: null });
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.error).toMatch(/^tool lookup_order was not called: its arguments cannot be sent as JSON/);
    expect(server.received).toEqual([]);
  });
});
