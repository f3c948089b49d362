/**
 * Integration rig: the real server on an ephemeral port, the strict local Realtime server as the
 * upstream, and simulated Twilio callers — all on loopback, all real sockets.
 */
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config.js';
import type { AgentConfig, AppConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { buildServer } from '../../src/server.js';
import type { RecorderFactory } from '../../src/call/recorder.js';
import type { CallbridgeServer } from '../../src/server.js';
import { startLocalRealtimeServer } from '../../src/tooling/local-model/server.js';
import type { LocalRealtimeServer, LocalRealtimeServerSettings } from '../../src/tooling/local-model/server.js';
import { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { realtimeSchemas } from './realtime-schemas.js';
import { withoutKnownNulls } from './realtime-schema-exceptions.js';
import type { SimulatedCallerOptions } from '../../src/tooling/simulated-caller.js';

export interface LogLine {
  level: string;
  msg: string;
  callSid?: string | null;
  [key: string]: unknown;
}

export interface Rig {
  fake: LocalRealtimeServer;
  server: CallbridgeServer;
  config: AppConfig;
  mediaUrl: string;
  baseUrl: string;
  logs: LogLine[];
  caller(options: Omit<SimulatedCallerOptions, 'url'>): SimulatedCaller;
  close(): Promise<void>;
}

export async function startRig(options: {
  upstream?: LocalRealtimeServerSettings;
  agent?: Partial<AgentConfig>;
  env?: NodeJS.ProcessEnv;
  /** applied over the config loaded from `env` (the rig's port, host and log level still win) */
  config?: Partial<AppConfig>;
  recorderFactory?: RecorderFactory;
  wallClock?: () => number;
} = {}): Promise<Rig> {
  const fake = await startLocalRealtimeServer({ ...options.upstream, record: true });
  const base = loadConfig({ OPENAI_REALTIME_URL: fake.url, REALTIME_BACKEND: 'openai', ...options.env });
  const config: AppConfig = {
    ...base,
    ...options.config,
    port: 0,
    host: '127.0.0.1',
    logLevel: 'debug',
    // The bridge's own tests run the bare bridge: no greeting, tools or idle reminders unless a
    // test asks for them, so their exact message sequences stay about the routine they test.
    agent: { ...base.agent, greeting: null, tools: [], idle: null, ...options.config?.agent, ...options.agent },
  };
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const logger = createLogger('debug', sink);
  const server = await buildServer({
    config,
    logger,
    realtimeUrl: fake.url,
    ...(options.recorderFactory === undefined ? {} : { recorderFactory: options.recorderFactory }),
    ...(options.wallClock === undefined ? {} : { wallClock: options.wallClock }),
  });
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  const callers: SimulatedCaller[] = [];
  return {
    fake,
    server,
    config,
    logs,
    mediaUrl: `ws://127.0.0.1:${address.port}/media-stream`,
    baseUrl: `http://127.0.0.1:${address.port}`,
    caller(callerOptions) {
      const c = new SimulatedCaller({ ...callerOptions, url: `ws://127.0.0.1:${address.port}/media-stream` });
      callers.push(c);
      return c;
    },
    async close() {
      await Promise.all(callers.map((c) => c.hangUp().catch(() => undefined)));
      await server.endAllCalls();
      await server.app.close();
      await fake.close();
      // Every scenario on the rig doubles as a conformance check of both directions.
      expectSchemaConformance(fake);
    },
  };
}

/** Client events the upstream received on one connection, without the audio appends. */
export function upstreamEvents(fake: LocalRealtimeServer, connectionId: number): Array<Record<string, unknown> & { type: string }> {
  return fake.received
    .filter((r) => r.connectionId === connectionId && r.event.type !== 'input_audio_buffer.append')
    .map((r) => r.event);
}

export function sentOfType<T extends string>(fake: LocalRealtimeServer, connectionId: number, type: T): Array<Record<string, unknown>> {
  return fake.sent.filter((r) => r.connectionId === connectionId && r.event.type === type).map((r) => r.event as unknown as Record<string, unknown>);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll until `check` holds; fails with `what` after the timeout. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

/**
 * Every client event the bridge sent and every server event the embedded model emitted on `fake`
 * must match OpenAI's published schema (test/support/realtime-schemas.ts), but for the nulls the
 * real service is known to send (test/support/realtime-schema-exceptions.ts). Throws a list of the
 * distinct problems, each with the event type and the field.
 */
export function expectSchemaConformance(fake: LocalRealtimeServer): void {
  const schemas = realtimeSchemas();
  const problems = new Set<string>();
  for (const r of fake.received) {
    if (r.event.type === '<unparsable>') continue;
    const p = schemas.checkClientEvent(r.event);
    if (p !== null) problems.add(`client ${p.type}: ${p.problems.join('; ')}`);
  }
  for (const r of fake.sent) {
    const p = schemas.checkServerEvent(withoutKnownNulls(r.event));
    if (p !== null) problems.add(`server ${p.type}: ${p.problems.join('; ')}`);
  }
  if (problems.size > 0) throw new Error(`Realtime events that do not match OpenAI's schema:\n${[...problems].join('\n')}`);
}
