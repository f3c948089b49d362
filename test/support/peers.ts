/**
 * In-process doubles of the phone agent's HTTP peers, on loopback: Twilio's REST API (reached
 * through TWILIO_API_BASE_URL) and a tool endpoint. They record what they receive, with the time.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { HttpTool } from '../../src/config.js';

export interface ReceivedRequest {
  atMs: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface HttpPeerOptions {
  /** whether a request goes into `requests` (default: every one) */
  record?: (req: ReceivedRequest) => boolean;
}

export class HttpPeer {
  readonly requests: ReceivedRequest[] = [];
  private readonly server: Server;

  constructor(
    private readonly answer: (req: ReceivedRequest, res: ServerResponse) => void | Promise<void>,
    private readonly options: HttpPeerOptions = {},
  ) {
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
    if (this.options.record?.(recorded) ?? true) this.requests.push(recorded);
    await this.answer(recorded, res);
  }
}

/**
 * How the double answers a call's status read (GET …/Calls/{CallSid}.json): a Twilio status
 * (`in-progress`, `completed`, …), `not-found` (404 / 20404), `server-error` (500 / 20500), or
 * `no-answer-ever` (the request is held open until the double stops: a timeout).
 */
export type CallStatusAnswer = string;
export const NOT_FOUND = 'not-found';
export const SERVER_ERROR = 'server-error';
export const NO_ANSWER_EVER = 'no-answer-ever';

export interface TwilioRestDouble extends HttpPeer {
  /** the status reads (GETs), which `requests` leaves out: it holds what was done to calls */
  readonly statusReads: ReceivedRequest[];
  /** How the status read of `callSid` is answered from now on; unset calls are `in-progress`. */
  setCallStatus(callSid: string, answer: CallStatusAnswer): void;
  /** The form of each call created (POST …/Calls.json), with the CallSid the double gave it. */
  readonly createdCalls: Array<{ callSid: string; form: URLSearchParams }>;
}

/** The CallSid the double gives the n-th call it creates (from 1). */
export function createdCallSid(n: number): string {
  return `CA${n.toString(16).padStart(32, 'f')}`;
}

/**
 * Twilio's Calls resource. Creates (POST …/Calls.json) answer a new queued call. Updates (POST) succeed, as for a live call; a hang-up
 * (Status=completed) makes later status reads say `completed`, as Twilio's would. Status reads
 * (GET) say `in-progress` unless a test set something else.
 */
export function twilioRestDouble(): TwilioRestDouble {
  const statuses = new Map<string, CallStatusAnswer>();
  const statusReads: ReceivedRequest[] = [];
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const createdCalls: Array<{ callSid: string; form: URLSearchParams }> = [];
  const peer = new HttpPeer(
    (req, res) => {
      // calls.create: a new call, queued, as Twilio answers it (201).
      const create = /\/Accounts\/(AC[0-9a-f]{32})\/Calls\.json$/.exec(req.path);
      if (create !== null && req.method === 'POST') {
        const form = new URLSearchParams(req.body);
        const callSid = createdCallSid(createdCalls.length + 1);
        createdCalls.push({ callSid, form });
        // Its status reads say in-progress (the default), as they would once the callee picked up.
        json(res, 201, { sid: callSid, account_sid: create[1], to: form.get('To'), from: form.get('From'), status: 'queued', direction: 'outbound-api' });
        return;
      }
      const m = /\/Accounts\/(AC[0-9a-f]{32})\/Calls\/(CA[0-9a-f]{32})\.json$/.exec(req.path);
      const [, accountSid, callSid] = m ?? [];
      if (accountSid === undefined || callSid === undefined || (req.method !== 'POST' && req.method !== 'GET')) {
        json(res, 404, { code: 20404, message: 'not found', status: 404 });
        return;
      }
      if (req.method === 'GET') {
        statusReads.push(req);
        const answer = statuses.get(callSid) ?? 'in-progress';
        if (answer === NO_ANSWER_EVER) return;
        if (answer === NOT_FOUND) json(res, 404, { code: 20404, message: `The requested resource ${req.path} was not found`, status: 404 });
        else if (answer === SERVER_ERROR) json(res, 500, { code: 20500, message: 'Internal Server Error', status: 500 });
        else json(res, 200, { sid: callSid, account_sid: accountSid, status: answer });
        return;
      }
      const status = new URLSearchParams(req.body).get('Status');
      if (status !== null) statuses.set(callSid, status);
      json(res, 200, { sid: callSid, account_sid: accountSid, status: status ?? statuses.get(callSid) ?? 'in-progress' });
    },
    { record: (req) => req.method !== 'GET' },
  );
  return Object.assign(peer, {
    statusReads,
    createdCalls,
    setCallStatus(callSid: string, answer: CallStatusAnswer): void {
      statuses.set(callSid, answer);
    },
  });
}

/** The `http` tool the agent tests give the model: an order lookup on a tool server double. */
export function orderLookupTool(toolServerBaseUrl: string): HttpTool {
  return {
    type: 'http',
    name: 'lookup_order',
    description: 'Look up an order by number',
    parameters: { type: 'object', properties: { order: { type: 'string' } }, required: ['order'] },
    url: `${toolServerBaseUrl}/orders`,
    timeoutMs: 3000,
  };
}
