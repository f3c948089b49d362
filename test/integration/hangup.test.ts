/**
 * Hang-up paths the simulated caller does not take: the media socket closing without `stop`, and
 * a hang-up while the upstream is still handshaking. The upstream must be gone within 100 ms.
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { buildServer } from '../../src/server.js';
import { eventually, startRig } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';

const START = (callSid: string): string =>
  JSON.stringify({
    event: 'start',
    sequenceNumber: '1',
    streamSid: 'MZ11111111111111111111111111111111',
    start: {
      streamSid: 'MZ11111111111111111111111111111111',
      accountSid: 'AC11111111111111111111111111111111',
      callSid,
      tracks: ['inbound'],
      customParameters: {},
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    },
  });

async function openTwilioSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  return ws;
}

/** "At once": far below any timeout the bridge has (the shortest is 1 s); the margin is for a loaded machine. */
const HANG_UP_CLOSE_MS = 500;

let rig: Rig | null = null;
let blackHole: Server | null = null;
const held: Socket[] = [];
afterEach(async () => {
  for (const s of held.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (blackHole === null ? resolve() : blackHole.close(() => resolve())));
  blackHole = null;
  await rig?.close();
  rig = null;
});

describe('hang-up', () => {
  it('a media socket that closes without stop closes the upstream at once', async () => {
    rig = await startRig();
    const ws = await openTwilioSocket(rig.mediaUrl);
    ws.send(START('CA11111111111111111111111111111111'));
    await rig.fake.waitForConnections(1);
    await rig.fake.waitForReceived((r) => r.event.type === 'session.update');
    const t0 = performance.now();
    ws.terminate(); // no stop, no close frame: the line just dropped
    const closed = await rig.fake.waitForClose(1, 2000);
    expect(performance.now() - t0).toBeLessThan(HANG_UP_CLOSE_MS);
    expect(closed.code).toBe(1000);
    await eventually(() => rig!.server.calls.size === 0, 'call removed');
    expect(rig.logs.find((l) => l.msg === 'call ended')).toMatchObject({ reason: 'twilio-closed' });
  });

  it('a hang-up while the upstream is still handshaking tears the upstream down at once', async () => {
    // accepts TCP and reads (so it sees the FIN), never answers the upgrade
    blackHole = createServer((socket) => {
      held.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => blackHole!.listen(0, '127.0.0.1', () => resolve()));
    const { port: holePort } = blackHole.address() as { port: number };
    const config = { ...loadConfig({ REALTIME_BACKEND: 'openai', OPENAI_REALTIME_URL: `ws://127.0.0.1:${holePort}/v1/realtime?model=x` }), logLevel: 'silent' as const };
    const server = await buildServer({ config, logger: createLogger('silent') });
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = server.app.server.address() as { port: number };
    try {
      const ws = await openTwilioSocket(`ws://127.0.0.1:${port}/media-stream`);
      ws.send(START('CA22222222222222222222222222222222'));
      await eventually(() => held.length === 1, 'upstream TCP connection opened');
      const upstream = held[0]!;
      const upstreamClosed = new Promise<number>((resolve) => upstream.once('close', () => resolve(performance.now())));
      const t0 = performance.now();
      ws.send(JSON.stringify({ event: 'stop', sequenceNumber: '2', streamSid: 'MZ11111111111111111111111111111111', stop: { accountSid: 'AC1', callSid: 'CA2' } }));
      expect((await upstreamClosed) - t0).toBeLessThan(HANG_UP_CLOSE_MS);
      await eventually(() => server.calls.size === 0, 'call removed', 5000);
    } finally {
      await server.endAllCalls(500);
      await server.app.close();
    }
  });
});
