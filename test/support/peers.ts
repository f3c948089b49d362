/**
 * In-process doubles of the phone agent's HTTP peers, on loopback: Twilio's REST API (reached
 * through TWILIO_API_BASE_URL) and a tool endpoint. They record what they receive, with the time.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface ReceivedRequest {
  atMs: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export class HttpPeer {
  readonly requests: ReceivedRequest[] = [];
  private readonly server: Server;

  constructor(private readonly answer: (req: ReceivedRequest, res: ServerResponse) => void | Promise<void>) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get baseUrl(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const recorded: ReceivedRequest = {
      atMs: performance.now(),
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    this.requests.push(recorded);
    await this.answer(recorded, res);
  }
}

/** Twilio's Calls resource: every update succeeds, as for a live call. */
export function twilioRestDouble(): HttpPeer {
  return new HttpPeer((req, res) => {
    const m = /\/Accounts\/(AC[0-9a-f]{32})\/Calls\/(CA[0-9a-f]{32})\.json$/.exec(req.path);
    if (req.method !== 'POST' || m === null) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 20404, message: 'not found', status: 404 }));
      return;
    }
    const form = new URLSearchParams(req.body);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ sid: m[2], account_sid: m[1], status: form.get('Status') ?? 'in-progress' }));
  });
}
