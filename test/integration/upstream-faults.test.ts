/**
 * Upstream faults on real sockets: the Realtime connection drops mid-answer or mid-silence, the
 * session expires, or the service refuses connections for a while. The call must carry on, with
 * the conversation re-seeded, or end cleanly when the upstream stays away.
 */
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { PCM24K_BYTES_PER_MS } from '../../src/audio/wire-format.js';
import { loadFallbackAudio } from '../../src/call/fallback-audio.js';
import { startLocalRealtimeServer } from '../../src/tooling/local-model/server.js';
import type { LocalRealtimeServer } from '../../src/tooling/local-model/server.js';
import { buildServer } from '../../src/server.js';
import type { CallbridgeServer } from '../../src/server.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { SimulatedCaller } from '../../src/tooling/simulated-caller.js';
import { eventually, sentOfType, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadCallerMulaw } from '../support/fixtures.js';

const QUESTION = loadCallerMulaw('caller-question');
const YES = loadCallerMulaw('caller-yes');

let rig: Rig | null = null;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await rig?.close();
  rig = null;
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The service on an ephemeral port with `upstreamUrl` as its Realtime endpoint, closed after the test. */
async function serveAgainst(upstreamUrl: string): Promise<{ server: CallbridgeServer; appPort: number }> {
  const config = { ...loadConfig({ REALTIME_BACKEND: 'openai', OPENAI_REALTIME_URL: upstreamUrl }), logLevel: 'silent' as const };
  const server: CallbridgeServer = await buildServer({ config, logger: createLogger('silent') });
  cleanups.push(async () => {
    await server.endAllCalls(500);
    await server.app.close();
  });
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const { port: appPort } = server.app.server.address() as { port: number };
  return { server, appPort };
}

function responseCreates(fake: LocalRealtimeServer, connectionId: number): number {
  return upstreamEvents(fake, connectionId).filter((e) => e.type === 'response.create').length;
}

describe('upstream faults', () => {
  it('dropped mid-answer: stops the answer where the caller is, re-seeds what was heard, and answers again on a new session', async () => {
    rig = await startRig({ upstream: { speed: 1.5 } });
    const caller = rig.caller({ audio: QUESTION });
    await caller.start();
    await eventually(() => caller.playedBytesTotal() >= 1500 * 8, 'answer playing');
    rig.fake.dropAll();
    await rig.fake.waitForConnections(2, 3000);
    await eventually(() => sentOfType(rig!.fake, 2, 'response.done').length >= 1 && caller.bufferedBytes() === 0, 'answered again on the new session', 30_000);
    await caller.hangUp();

    // Twilio's buffer was cleared at the drop: the heard position is exact
    expect(caller.clears).toHaveLength(1);
    const second = upstreamEvents(rig.fake, 2);
    expect(second.map((e) => e.type)).toEqual(['session.update', 'conversation.item.create', 'conversation.item.create', 'response.create']);
    const [user, assistant] = second.slice(1, 3).map((e) => e['item'] as { role: string; content: Array<{ text: string }> });
    expect(user?.role).toBe('user');
    expect(assistant?.role).toBe('assistant');
    // the echo agent's transcript, cut to the share the caller heard before the drop
    const full = (sentOfType(rig.fake, 1, 'response.output_audio_transcript.delta').map((e) => e['delta']).join('') as string).split(/\s+/);
    const kept = assistant?.content[0]?.text.split(/\s+/) ?? [];
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(full.length);
    expect(full.slice(0, kept.length)).toEqual(kept);
    expect(rig.fake.errors).toEqual([]);
    expect(rig.logs.find((l) => l.msg === 'upstream lost: reconnecting')).toMatchObject({ callSid: caller.callSid });
    expect(await rig.server.metrics.render()).toMatch(/callbridge_upstream_reconnects_total\{outcome="ok"\} 1/);
  });

  it('dropped mid-silence: the caller’s next sentence is answered on the new session', async () => {
    rig = await startRig({ upstream: { speed: Number.POSITIVE_INFINITY } });
    const caller = rig.caller({ audio: YES, leadingSilenceMs: 1500 });
    await caller.start();
    await rig.fake.waitForReceived((r) => r.event.type === 'session.update');
    rig.fake.dropAll();
    await eventually(() => sentOfType(rig!.fake, 2, 'response.done').length === 1, 'answered after the drop', 20_000);
    await eventually(() => caller.playedBytesTotal() > 500 * 8, 'the answer played', 10_000);
    await caller.hangUp();
    expect(responseCreates(rig.fake, 1)).toBe(0);
    expect(responseCreates(rig.fake, 2)).toBe(1);
  });

  it('an expired session (60-minute limit) is replaced and the call goes on', async () => {
    rig = await startRig({ upstream: { speed: Number.POSITIVE_INFINITY } });
    const caller = rig.caller({ audio: YES, leadingSilenceMs: 1000 });
    await caller.start();
    await rig.fake.waitForReceived((r) => r.event.type === 'session.update');
    rig.fake.expireSession(1);
    await eventually(() => sentOfType(rig!.fake, 2, 'response.done').length === 1, 'answered on the new session', 20_000);
    await caller.hangUp();
    expect(rig.logs.some((l) => l.msg === 'realtime error' && l['code'] === 'session_expired')).toBe(true);
  });

  it('refused for a while: retries with backoff until the upstream is back, caller audio kept meanwhile', async () => {
    const first = await startLocalRealtimeServer({ record: true, speed: Number.POSITIVE_INFINITY });
    const port = first.port;
    const { appPort } = await serveAgainst(first.url);
    await first.close(); // nothing listens on the upstream port now: connections are refused

    const caller = new SimulatedCaller({ url: `ws://127.0.0.1:${appPort}/media-stream`, audio: YES });
    cleanups.push(async () => void (await caller.hangUp()));
    await caller.start();
    await new Promise((r) => setTimeout(r, 900)); // attempts at 0, 250 and 500 ms fail
    const second = await startLocalRealtimeServer({ record: true, port, speed: Number.POSITIVE_INFINITY });
    cleanups.push(() => second.close());
    await eventually(() => sentOfType(second, 1, 'response.done').length === 1, 'answered once the upstream is back', 20_000);
    // the whole sentence said while no upstream existed was kept and delivered
    // by the bytes, whatever the size of each append
    const appendedMs = second.received.reduce((ms, r) => (r.event.type === 'input_audio_buffer.append' && typeof r.event['audio'] === 'string' ? ms + Buffer.from(r.event['audio'], 'base64').length / PCM24K_BYTES_PER_MS : ms), 0);
    expect(appendedMs).toBeGreaterThan(1100);
    expect(second.errors).toEqual([]);
  });

  it('refused for good: gives up after bounded retries and closes the stream cleanly', async () => {
    rig = await startRig();
    await rig.fake.close();
    const caller = rig.caller({ audio: YES });
    await caller.start();
    await caller.done;
    expect(caller.endReason).toBe('server-closed');
    expect(caller.closeCode).toBe(1011);
    await eventually(() => rig!.server.calls.size === 0, 'call removed');
    const ended = rig.logs.find((l) => l.msg === 'call ended');
    expect(ended).toMatchObject({ callSid: caller.callSid, reason: 'upstream-failed', attempts: 6 });
    // Not in silence: the last thing the caller got before the close was the apology, heard to its end.
    const media = caller.received.flatMap((r) => (r.message?.event === 'media' ? [r.message.media.payload] : []));
    expect(media[media.length - 1]).toBe(loadFallbackAudio().apology);
    expect(caller.marksEchoed.some((m) => m.name === 'cb-unavailable' && m.cause === 'played')).toBe(true);
  });

  it('black-holed (accepts TCP, never answers): the caller hears the hold tone, then the apology, and the call ends cleanly', async () => {
    // A load balancer that accepts and forwards nowhere: the TCP connection opens, the WebSocket handshake never completes.
    const held = new Set<Socket>();
    const hole = createServer((socket) => {
      held.add(socket);
      // Read and drop what arrives, so the bridge's FIN is seen ('end' waits for a flowing stream).
      socket.resume();
      socket.on('close', () => held.delete(socket));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    let attempts = 0;
    hole.on('connection', () => (attempts += 1));
    cleanups.push(async () => {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => hole.close(() => resolve()));
    });
    const { port: holePort } = hole.address() as { port: number };
    const { server, appPort } = await serveAgainst(`ws://127.0.0.1:${holePort}/v1/realtime`);

    const caller = new SimulatedCaller({ url: `ws://127.0.0.1:${appPort}/media-stream`, audio: YES });
    cleanups.push(async () => void (await caller.hangUp()));
    const startedAt = performance.now();
    await caller.start();
    await caller.done;
    const endedAfterMs = performance.now() - startedAt;

    const audio = loadFallbackAudio();
    const media = caller.received.flatMap((r) => (r.message?.event === 'media' ? [r.message.media.payload] : []));
    const tones = media.filter((p) => p === audio.holdTone).length;
    expect(tones).toBeGreaterThanOrEqual(1);
    expect(media[media.length - 1]).toBe(audio.apology);
    expect(media.every((p) => p === audio.holdTone || p === audio.apology)).toBe(true);
    // the apology was played to the end: its mark came back before the stream closed
    expect(caller.marksEchoed.some((m) => m.name === 'cb-unavailable' && m.cause === 'played')).toBe(true);
    expect(caller.closeCode).toBe(1011);
    // Old behaviour: about 38 s of silence. The bound is 10 s; the margin is for a loaded CI machine.
    expect(endedAfterMs).toBeLessThan(15_000);
    // every handshake that hung was given up, none left open
    expect(attempts).toBeGreaterThanOrEqual(2);
    await eventually(() => held.size === 0, 'the bridge closed every connection to the black hole', 5000);
    await eventually(() => server.calls.size === 0, 'call removed');
  }, 30_000);
});
