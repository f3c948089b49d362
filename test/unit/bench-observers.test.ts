/** The optional observation hooks bench:load uses: SimulatedCaller `observer`/`record`, local model `observer`. */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { LocalServerEvent } from '../../src/tooling/local-model/conversation.js';
import { startLocalRealtimeServer, type LocalRealtimeServer, type ReceivedEvent } from '../../src/tooling/local-model/server.js';
import {
  SimulatedCaller,
  type ClearObservation,
  type MediaObservation,
  type PlaybackObservation,
} from '../../src/tooling/simulated-caller.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('SimulatedCaller observer', () => {
  it('reports stream start, media positions, clears and playback stretches; record: false keeps no history', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const service = new Promise<{ ws: WebSocket; streamSid: string }>((resolve) => {
      wss.once('connection', (ws) => {
        ws.on('message', (data) => {
          const msg = JSON.parse(String(data)) as { event: string; streamSid?: string };
          if (msg.event === 'start' && msg.streamSid !== undefined) resolve({ ws, streamSid: msg.streamSid });
        });
      });
    });

    const starts: bigint[] = [];
    const media: MediaObservation[] = [];
    const clears: ClearObservation[] = [];
    const runs: PlaybackObservation[] = [];
    const caller = new SimulatedCaller({
      url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      record: false,
      observer: {
        onStreamStart: (o) => starts.push(o.hrtime),
        onMedia: (o) => media.push(o),
        onClear: (o) => clears.push(o),
        onPlayback: (o) => runs.push(o),
      },
    });
    cleanups.push(() => caller.hangUp());
    const before = process.hrtime.bigint();
    await caller.start();
    const { ws, streamSid } = await service;
    const payload = (bytes: number): string => Buffer.alloc(bytes, 0x7f).toString('base64');
    // 100 ms and 50 ms of audio (odd sizes are fine), then a clear 60 ms later.
    ws.send(JSON.stringify({ event: 'media', streamSid, media: { payload: payload(800) } }));
    ws.send(JSON.stringify({ event: 'media', streamSid, media: { payload: payload(401) } }));
    await sleep(60);
    ws.send(JSON.stringify({ event: 'clear', streamSid }));
    await caller.waitFor((m) => (m.parsed as { event?: string } | undefined)?.event === 'clear', 2000);

    expect(starts).toHaveLength(1);
    expect(starts[0]! >= before).toBe(true);
    expect(media.map((m) => [m.bytes, m.startsAtPlayedByte])).toEqual([
      [800, 0],
      [401, 800],
    ]);
    expect(media[0]!.hrtime > starts[0]!).toBe(true);
    expect(clears).toHaveLength(1);
    const clear = clears[0]!;
    expect(clear.hrtime > media[1]!.hrtime).toBe(true);
    expect(clear.playedBytes).toBeGreaterThanOrEqual(60 * 8 - 8);
    expect(clear.playedBytes).toBeLessThan(1201);
    expect(clear.playedBytes + clear.droppedBytes).toBe(1201);
    expect(clear.playedBytes).toBe(caller.playedBytesTotal());
    expect(runs).toHaveLength(1);
    expect(runs[0]!.end).toBe('cleared');
    expect((runs[0]!.endMs - runs[0]!.startMs) * 8).toBeCloseTo(clear.playedBytes, 0);

    // Audio after the clear starts at the played count: cleared audio never counts.
    ws.send(JSON.stringify({ event: 'media', streamSid, media: { payload: payload(80) } }));
    await sleep(50);
    expect(media[2]?.startsAtPlayedByte).toBe(clear.playedBytes);
    await caller.hangUp();
    expect(runs.map((r) => r.end)).toEqual(['cleared', 'drained']);

    expect(caller.received).toHaveLength(0);
    expect(caller.sent).toHaveLength(0);
    expect(() => caller.heardAudio()).toThrow(/record/);
  });
});

describe('LocalRealtimeServer observer', () => {
  it('reports the session, received and sent events with monotonic timestamps, in order', async () => {
    const sessions: Array<{ conn: number; sessionId: string; hrtime: bigint }> = [];
    const log: Array<{ dir: 'in' | 'out'; conn: number; type: string; hrtime: bigint }> = [];
    const closes: number[] = [];
    const server: LocalRealtimeServer = await startLocalRealtimeServer({
      observer: {
        onSession: (conn, sessionId, hrtime) => sessions.push({ conn, sessionId, hrtime }),
        onEventSent: (conn, event: LocalServerEvent, hrtime) => log.push({ dir: 'out', conn, type: event.type, hrtime }),
        onEventReceived: (conn, event: ReceivedEvent, hrtime) => log.push({ dir: 'in', conn, type: event.type, hrtime }),
        onClose: (conn) => closes.push(conn),
      },
    });
    cleanups.push(() => server.close());
    const ws = new WebSocket(server.url);
    const frames: Array<{ type: string; session?: { id?: string } }> = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as { type: string; session?: { id?: string } }));
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    await server.waitForSent((r) => r.event.type === 'session.created');
    ws.send(JSON.stringify({ type: 'response.cancel' }));
    await server.waitForSent((r) => r.event.type === 'error');
    ws.close();
    await server.waitForClose(1);

    expect(sessions).toHaveLength(1);
    expect(sessions[0]?.conn).toBe(1);
    await sleep(20);
    expect(frames[0]?.session?.id).toBe(sessions[0]?.sessionId);
    expect(log.map((l) => `${l.dir} ${l.type}`)).toEqual(['out session.created', 'in response.cancel', 'out error']);
    for (let i = 1; i < log.length; i++) expect(log[i]!.hrtime >= log[i - 1]!.hrtime).toBe(true);
    expect(closes).toEqual([1]);
  });
});
