import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { SimulatedCaller, type MarkEchoObservation, type SimulatedCallerOptions } from '../../src/tooling/simulated-caller.js';

/**
 * Timing slack for these real-time tests. The bugs they catch are whole frames or playbacks off
 * (no pacing, drift that accumulates, an echo that waits for playback instead of coming at once),
 * i.e. hundreds of ms to seconds; 120 ms absorbs the timer jitter of a loaded 2-core machine.
 */
const TOL = 120;
const SILENCE = 0xff;

type Json = Record<string, unknown>;

interface ServerMessage {
  at: number;
  json: Json;
}

/** The service side of one stream, as the in-test server sees it. */
interface ServiceSide {
  ws: WebSocket;
  headers: Record<string, string | string[] | undefined>;
  messages: ServerMessage[];
  closed: Promise<{ code: number; at: number }>;
  send(obj: unknown): number;
  waitFor(pred: (m: ServerMessage) => boolean, timeoutMs?: number): Promise<ServerMessage>;
}

interface TestServer {
  url: string;
  connection: Promise<ServiceSide>;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const callers: SimulatedCaller[] = [];

afterEach(async () => {
  await Promise.all(callers.splice(0).map((c) => c.hangUp().catch(() => undefined)));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function asJson(v: unknown): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
  return v as Json;
}

async function startServer(opts: { rejectUpgrade?: number } = {}): Promise<TestServer> {
  const wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    verifyClient: (_info, cb) => (opts.rejectUpgrade ? cb(false, opts.rejectUpgrade) : cb(true)),
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const connection = new Promise<ServiceSide>((resolve) => {
    wss.once('connection', (ws, req) => {
      const messages: ServerMessage[] = [];
      const waiters: Array<{ pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }> = [];
      ws.on('message', (data) => {
        const m: ServerMessage = { at: performance.now(), json: asJson(JSON.parse(String(data))) };
        messages.push(m);
        for (const w of [...waiters]) {
          if (w.pred(m)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      });
      const closed = new Promise<{ code: number; at: number }>((res) => ws.on('close', (code) => res({ code, at: performance.now() })));
      resolve({
        ws,
        headers: req.headers,
        messages,
        closed,
        send(obj: unknown): number {
          ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
          return performance.now();
        },
        waitFor(pred, timeoutMs = 5000) {
          const hit = messages.find(pred);
          if (hit) return Promise.resolve(hit);
          return new Promise<ServerMessage>((res, rej) => {
            const t = setTimeout(() => rej(new Error('server waitFor timed out')), timeoutMs);
            waiters.push({ pred, resolve: (m) => (clearTimeout(t), res(m)) });
          });
        },
      });
    });
  });
  const port = (wss.address() as AddressInfo).port;
  const server: TestServer = {
    url: `ws://127.0.0.1:${port}/media-stream`,
    connection,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
  servers.push(server);
  return server;
}

function caller(opts: SimulatedCallerOptions): SimulatedCaller {
  const c = new SimulatedCaller(opts);
  callers.push(c);
  return c;
}

/** Start a call and hand back both ends once the stream has started. */
async function connect(opts: Partial<SimulatedCallerOptions> = {}): Promise<{ server: TestServer; svc: ServiceSide; call: SimulatedCaller }> {
  const server = await startServer();
  const call = caller({ url: server.url, ...opts });
  await call.start();
  const svc = await server.connection;
  await svc.waitFor((m) => m.json['event'] === 'start');
  return { server, svc, call };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function bytes(ms: number, value: number): Uint8Array {
  return new Uint8Array(ms * 8).fill(value);
}

function b64(u: Uint8Array): string {
  return Buffer.from(u).toString('base64');
}

function media(streamSid: string, audio: Uint8Array): Json {
  return { event: 'media', streamSid, media: { payload: b64(audio) } };
}

function mark(streamSid: string, name: string): Json {
  return { event: 'mark', streamSid, mark: { name } };
}

function isMarkEcho(name: string) {
  return (m: ServerMessage): boolean => m.json['event'] === 'mark' && asJson(m.json['mark'])['name'] === name;
}

/** [first, end) index ranges where `heard` equals `value`. */
function spans(heard: Uint8Array, value: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = -1;
  for (let i = 0; i <= heard.length; i++) {
    const on = i < heard.length && heard[i] === value;
    if (on && start < 0) start = i;
    if (!on && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  return out;
}

describe('SimulatedCaller: inbound stream', () => {
  it('sends connected, start and real-time media frames with Twilio shapes, then stop after trailing silence', async () => {
    const server = await startServer();
    const speech = new Uint8Array(8 * 1000).map((_, i) => i % 200); // 1 s, recognisable pattern
    const call = caller({
      url: server.url,
      headers: { 'x-twilio-signature': 'sig' },
      customParameters: { callToken: 'tok' },
      audio: speech,
      leadingSilenceMs: 100,
      trailingSilenceMs: 200,
    });
    const t0 = performance.now();
    await call.start();
    const svc = await server.connection;
    expect(svc.headers['x-twilio-signature']).toBe('sig');
    const closed = await svc.closed;
    await call.done;
    expect(closed.code).toBe(1000);
    expect(call.endReason).toBe('completed');
    expect(call.closeCode).toBeUndefined();

    expect(call.callSid).toMatch(/^CA[0-9a-f]{32}$/);
    expect(call.streamSid).toMatch(/^MZ[0-9a-f]{32}$/);
    expect(call.accountSid).toMatch(/^AC[0-9a-f]{32}$/);

    const msgs = svc.messages.map((m) => m.json);
    expect(msgs[0]).toEqual({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    expect(msgs[1]).toEqual({
      event: 'start',
      sequenceNumber: '1',
      streamSid: call.streamSid,
      start: {
        streamSid: call.streamSid,
        accountSid: call.accountSid,
        callSid: call.callSid,
        tracks: ['inbound'],
        customParameters: { callToken: 'tok' },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
    });
    const last = msgs[msgs.length - 1];
    expect(last).toEqual({
      event: 'stop',
      sequenceNumber: String(msgs.length - 1),
      streamSid: call.streamSid,
      stop: { accountSid: call.accountSid, callSid: call.callSid },
    });

    const frames = svc.messages.slice(2, -1);
    // 100 ms lead + 1000 ms speech + 200 ms trailing = 65 frames of 20 ms.
    expect(frames).toHaveLength(65);
    const inbound: number[] = [];
    frames.forEach((f, k) => {
      expect(Object.keys(f.json).sort()).toEqual(['event', 'media', 'sequenceNumber', 'streamSid']);
      expect(f.json['event']).toBe('media');
      expect(f.json['sequenceNumber']).toBe(String(k + 2));
      expect(f.json['streamSid']).toBe(call.streamSid);
      const m = asJson(f.json['media']);
      expect(Object.keys(m).sort()).toEqual(['chunk', 'payload', 'timestamp', 'track']);
      expect(m['track']).toBe('inbound');
      expect(m['chunk']).toBe(String(k + 1));
      expect(m['timestamp']).toBe(String(k * 20));
      const payload = Buffer.from(String(m['payload']), 'base64');
      expect(payload.length).toBe(160);
      inbound.push(...payload);
    });
    const expected = [...bytes(100, SILENCE), ...speech, ...bytes(200, SILENCE)];
    expect(inbound).toEqual(expected);

    // Real-time pacing, anchored to the stream start: frame k arrives ~20k ms after frame 0.
    const first = frames[0]!.at;
    frames.forEach((f, k) => {
      expect(f.at - first).toBeGreaterThan(k * 20 - TOL);
      expect(f.at - first).toBeLessThan(k * 20 + TOL);
    });
    expect(performance.now() - t0).toBeGreaterThan(1300 - TOL);

    expect(call.speech).toHaveLength(1);
    expect(call.speech[0]).toMatchObject({ label: 'audio', startMs: 100, endMs: 1100 });
    expect(call.sent.map((s) => s.message.event)).toEqual(msgs.map((m) => m['event']));
  });

  it('keeps streaming silence until hangUp(), which sends stop, closes with 1000 and stops all timers', async () => {
    const { svc, call } = await connect({ audio: bytes(40, 0x20) });
    await sleep(300);
    await call.hangUp();
    await call.done;
    const closed = await svc.closed;
    expect(closed.code).toBe(1000);
    expect(call.endReason).toBe('hangup');
    const events = svc.messages.map((m) => m.json['event']);
    expect(events.at(-1)).toBe('stop');
    const frames = events.filter((e) => e === 'media').length;
    expect(frames).toBeGreaterThanOrEqual(12);
    expect(frames).toBeLessThanOrEqual(19);
    const sentBefore = call.sent.length;
    await sleep(100);
    expect(call.sent.length).toBe(sentBefore);
    await call.hangUp(); // idempotent
  });

  it('records the close code when the server closes the socket', async () => {
    const { svc, call } = await connect();
    svc.ws.close(1011, 'bye');
    await call.done;
    expect(call.closeCode).toBe(1011);
    expect(call.closeReason).toBe('bye');
    expect(call.endReason).toBe('server-closed');
    const n = call.sent.length;
    await sleep(60);
    expect(call.sent.length).toBe(n);
    await expect(call.waitFor(() => false)).rejects.toThrow(/call ended/);
  });

  it('rejects start() when the upgrade is refused, and records the HTTP status', async () => {
    const server = await startServer({ rejectUpgrade: 403 });
    const call = caller({ url: server.url });
    await expect(call.start()).rejects.toThrow(/403/);
    expect(call.handshakeStatus).toBe(403);
    await call.done;
    expect(call.endReason).toBe('error');
  });

  it('rejects start() and settles done for a malformed URL', async () => {
    const call = caller({ url: 'http//nope' });
    await expect(call.start()).rejects.toThrow();
    await call.done;
    expect(call.endReason).toBe('error');
  });

  it('sends DTMF in Twilio shape', async () => {
    const { svc, call } = await connect();
    call.sendDtmf('5');
    const m = await svc.waitFor((x) => x.json['event'] === 'dtmf');
    expect(m.json).toEqual({ event: 'dtmf', sequenceNumber: expect.any(String), streamSid: call.streamSid, dtmf: { track: 'inbound_track', digit: '5' } });
  });
});

describe('SimulatedCaller: playback model', () => {
  it('echoes a mark only after the audio before it has played', async () => {
    const { svc, call } = await connect();
    const sentAt = svc.send(media(call.streamSid, bytes(500, 0x11)));
    svc.send(mark(call.streamSid, 'm1'));
    const echo = await svc.waitFor(isMarkEcho('m1'));
    expect(echo.at - sentAt).toBeGreaterThanOrEqual(480);
    expect(echo.at - sentAt).toBeLessThan(500 + TOL);
    expect(echo.json).toEqual({ event: 'mark', sequenceNumber: expect.any(String), streamSid: call.streamSid, mark: { name: 'm1' } });
    expect(call.marksEchoed).toEqual([{ atMs: expect.any(Number), name: 'm1', cause: 'played', playedBytes: 4000 }]);
    expect(call.playedBytesTotal()).toBe(4000);

    const heard = call.heardAudio();
    const played = spans(heard, 0x11);
    expect(played).toHaveLength(1);
    const [from, to] = played[0]!;
    expect(to - from).toBe(4000);
    // Heard where it actually played on the stream timeline.
    const received = call.received.find((r) => r.message?.event === 'media')!;
    expect(Math.abs(from / 8 - received.atMs)).toBeLessThan(1);
    expect(call.marksEchoed[0]!.atMs).toBeGreaterThanOrEqual(to / 8);
  });

  it('tells its observer when each echo left and when Twilio would have sent it', async () => {
    const echoes: MarkEchoObservation[] = [];
    const { svc, call } = await connect({ observer: { onMarkEcho: (o) => echoes.push(o) } });
    svc.send(media(call.streamSid, bytes(200, 0x11)));
    svc.send(mark(call.streamSid, 'm1'));
    await svc.waitFor(isMarkEcho('m1'));
    svc.send(mark(call.streamSid, 'idle'));
    await svc.waitFor(isMarkEcho('idle'));
    expect(echoes.map((e) => e.cause)).toEqual(['played', 'idle']);
    const played = echoes[0]!;
    // Due when the 200 ms had played from the media's arrival; sent by a timer, so a little after.
    const arrived = call.received.find((r) => r.message?.event === 'media')!.atMs;
    expect(played.dueMs).toBeCloseTo(arrived + 200, 0);
    expect(played.atMs).toBeGreaterThanOrEqual(played.dueMs);
    expect(played.atMs - played.dueMs).toBeLessThan(TOL);
    expect(played.atMs).toBe(call.marksEchoed[0]!.atMs);
  });

  it('echoes a mark at once when nothing is queued', async () => {
    const { svc, call } = await connect();
    const sentAt = svc.send(mark(call.streamSid, 'idle'));
    const echo = await svc.waitFor(isMarkEcho('idle'));
    expect(echo.at - sentAt).toBeLessThan(TOL);
    expect(call.marksEchoed[0]).toMatchObject({ name: 'idle', cause: 'idle', playedBytes: 0 });
  });

  it('buffers audio that arrives faster than real time and plays it back to back', async () => {
    const { svc, call } = await connect();
    const sentAt = svc.send(media(call.streamSid, bytes(100, 0x21)));
    svc.send(media(call.streamSid, bytes(100, 0x22)));
    svc.send(mark(call.streamSid, 'a'));
    svc.send(media(call.streamSid, bytes(100, 0x23)));
    svc.send(mark(call.streamSid, 'b'));
    svc.send(mark(call.streamSid, 'c'));
    const a = await svc.waitFor(isMarkEcho('a'));
    const c = await svc.waitFor(isMarkEcho('c'));
    expect(a.at - sentAt).toBeGreaterThanOrEqual(190);
    expect(a.at - sentAt).toBeLessThan(200 + TOL);
    expect(c.at - sentAt).toBeGreaterThanOrEqual(290);
    expect(c.at - sentAt).toBeLessThan(300 + TOL);
    expect(call.marksEchoed.map((m) => [m.name, m.cause, m.playedBytes])).toEqual([
      ['a', 'played', 1600],
      ['b', 'played', 2400],
      ['c', 'played', 2400],
    ]);
    const heard = call.heardAudio();
    const s1 = spans(heard, 0x21)[0]!;
    const s2 = spans(heard, 0x22)[0]!;
    const s3 = spans(heard, 0x23)[0]!;
    expect(s2[0]).toBe(s1[1]);
    expect(s3[0]).toBe(s2[1]);
    expect(s3[1] - s1[0]).toBe(2400);
  });

  it('clear drops queued audio and echoes every pending mark at once, in order', async () => {
    const { svc, call } = await connect();
    const sentAt = svc.send(media(call.streamSid, bytes(2000, 0x31)));
    svc.send(mark(call.streamSid, 'x'));
    svc.send(media(call.streamSid, bytes(500, 0x32)));
    svc.send(mark(call.streamSid, 'y'));
    await sleep(300);
    const clearAt = svc.send({ event: 'clear', streamSid: call.streamSid });
    const y = await svc.waitFor(isMarkEcho('y'));
    const x = svc.messages.find(isMarkEcho('x'));
    if (x === undefined) throw new Error("mark x was never echoed");
    expect(svc.messages.indexOf(x)).toBeLessThan(svc.messages.indexOf(y));
    expect(y.at - clearAt).toBeLessThan(TOL);
    expect(call.marksEchoed.map((m) => [m.name, m.cause])).toEqual([
      ['x', 'cleared'],
      ['y', 'cleared'],
    ]);
    expect(call.clears).toHaveLength(1);

    const played = call.playedBytesTotal();
    expect(played / 8).toBeGreaterThan(clearAt - sentAt - TOL);
    expect(played / 8).toBeLessThan(clearAt - sentAt + TOL);
    expect(call.marksEchoed[0]!.playedBytes).toBe(played);

    await sleep(200);
    expect(call.playedBytesTotal()).toBe(played); // nothing plays after a clear
    const heard = call.heardAudio();
    const s = spans(heard, 0x31);
    expect(s).toHaveLength(1);
    expect(s[0]![1] - s[0]![0]).toBe(played);
    expect(spans(heard, 0x32)).toHaveLength(0);
    // Playback stopped where the clear arrived on the caller's timeline.
    expect(Math.abs(s[0]![1] / 8 - call.clears[0]!)).toBeLessThan(1);
    expect(heard.subarray(s[0]![1]).every((b) => b === SILENCE)).toBe(true);

    // Audio after a clear starts playing at once.
    const again = svc.send(media(call.streamSid, bytes(100, 0x33)));
    svc.send(mark(call.streamSid, 'z'));
    const z = await svc.waitFor(isMarkEcho('z'));
    expect(z.at - again).toBeGreaterThanOrEqual(90);
    expect(z.at - again).toBeLessThan(100 + TOL);
    expect(call.playedBytesTotal()).toBe(played + 800);
  });

  it('pauses on underrun and resumes when more audio arrives', async () => {
    const { svc, call } = await connect();
    const first = svc.send(media(call.streamSid, bytes(200, 0x41)));
    await sleep(500);
    expect(call.playedBytesTotal()).toBe(1600);
    expect(call.bufferedBytes()).toBe(0);
    const second = svc.send(media(call.streamSid, bytes(200, 0x42)));
    svc.send(mark(call.streamSid, 'after-underrun'));
    const echo = await svc.waitFor(isMarkEcho('after-underrun'));
    expect(second - first).toBeGreaterThanOrEqual(490);
    expect(echo.at - second).toBeGreaterThanOrEqual(190);
    expect(echo.at - second).toBeLessThan(200 + TOL);
    expect(call.marksEchoed[0]).toMatchObject({ cause: 'played', playedBytes: 3200 });

    const heard = call.heardAudio();
    const a = spans(heard, 0x41)[0]!;
    const b = spans(heard, 0x42)[0]!;
    expect(a[1] - a[0]).toBe(1600);
    expect(b[1] - b[0]).toBe(1600);
    const gapMs = (b[0] - a[1]) / 8;
    expect(gapMs).toBeGreaterThan(300 - TOL);
    expect(gapMs).toBeLessThan(300 + TOL);
  });

  it('accepts payloads of any size, including odd byte counts', async () => {
    const { svc, call } = await connect();
    svc.send(media(call.streamSid, new Uint8Array(333).fill(0x51)));
    svc.send(media(call.streamSid, new Uint8Array(1).fill(0x51)));
    svc.send(mark(call.streamSid, 'odd'));
    await svc.waitFor(isMarkEcho('odd'));
    expect(call.marksEchoed[0]).toMatchObject({ cause: 'played', playedBytes: 334 });
    expect(call.protocolErrors).toEqual([]);
  });
});

describe('SimulatedCaller: strictness', () => {
  it('records what Twilio would reject, ignores it, and keeps working', async () => {
    const { svc, call } = await connect();
    const sid = call.streamSid;
    svc.ws.send(Buffer.from(bytes(20, 0x61)), { binary: true });
    svc.send({ ...media(sid, bytes(20, 0x62)), extra: 1 });
    svc.send({ event: 'media', streamSid: sid, media: { payload: b64(bytes(20, 0x63)), track: 'outbound' } });
    svc.send(media('MZ' + '0'.repeat(32), bytes(20, 0x64)));
    svc.send({ event: 'media', streamSid: sid, media: { payload: 'not base64!' } });
    svc.send({ event: 'media', streamSid: sid });
    svc.send({ event: 'mark', streamSid: sid, mark: {} });
    svc.send({ event: 'clear', streamSid: sid, mark: { name: 'n' } });
    svc.send({ event: 'stop', streamSid: sid });
    svc.send('{not json');
    svc.send('[1,2]');
    svc.send({ streamSid: sid });
    svc.send(mark(sid, 'ok'));
    await call.waitFor((m) => m.message?.event === 'mark');
    await svc.waitFor(isMarkEcho('ok'));

    const errs = call.protocolErrors;
    expect(errs.map((e) => e.code)).toEqual([31950, ...Array<number>(11).fill(31951)]);
    const details = errs.map((e) => e.detail).join('\n');
    for (const want of ['binary', '"extra"', '"media.track"', 'not this stream', 'base64', 'media is missing', 'mark.name', '"mark"', 'unknown event "stop"', 'not valid JSON', 'not a JSON object', 'event is missing']) {
      expect(details).toContain(want);
    }
    // Rejected media never played; the valid mark saw an idle buffer.
    expect(call.playedBytesTotal()).toBe(0);
    expect(call.marksEchoed).toEqual([{ atMs: expect.any(Number), name: 'ok', cause: 'idle', playedBytes: 0 }]);
    expect(call.received).toHaveLength(13);
    expect(call.received[0]!.binary).toBe(true);
    expect(call.received.filter((r) => r.message !== undefined)).toHaveLength(1);
  });
});

describe('SimulatedCaller: observation helpers', () => {
  it('waitFor resolves on past and future messages and rejects on timeout', async () => {
    const { svc, call } = await connect();
    svc.send(mark(call.streamSid, 'early'));
    const early = await call.waitFor((m) => m.message?.event === 'mark');
    await expect(call.waitFor((m) => m === early)).resolves.toBe(early);
    const later = call.waitFor((m) => m.message?.event === 'clear');
    setTimeout(() => svc.send({ event: 'clear', streamSid: call.streamSid }), 50);
    const got = await later;
    expect(got.atMs).toBeGreaterThan(early.atMs);
    expect(got.parsed).toEqual({ event: 'clear', streamSid: call.streamSid });
    await expect(call.waitFor(() => false, 50)).rejects.toThrow(/within 50 ms/);
  });

  it('heardAudio() is aligned to the stream timeline and freezes when the call ends', async () => {
    const { svc, call } = await connect();
    await sleep(200);
    svc.send(media(call.streamSid, bytes(1000, 0x71)));
    await sleep(300);
    await call.hangUp();
    const heard = call.heardAudio();
    const s = spans(heard, 0x71);
    expect(s).toHaveLength(1);
    expect(s[0]![0] / 8).toBeGreaterThan(200 - 5);
    expect(s[0]![0] / 8).toBeLessThan(200 + TOL);
    expect(s[0]![1]).toBe(heard.length); // playback was cut off by the hang-up
    expect(call.playedBytesTotal()).toBe(s[0]![1] - s[0]![0]);
    await sleep(50);
    expect(call.heardAudio()).toEqual(heard);
  });
});

describe('SimulatedCaller: scripted segments', () => {
  it('talks over the answer after hearing afterHeardMs of it, and answers politely after afterAgentQuietMs', async () => {
    const question = bytes(200, 0x01);
    const interrupt = bytes(100, 0x02);
    const yes = bytes(100, 0x03);
    const { svc, call } = await connect({
      audio: question,
      segments: [
        { audio: interrupt, start: { afterHeardMs: 300 }, label: 'interrupt' },
        { audio: yes, start: { afterAgentQuietMs: 200 }, label: 'yes' },
      ],
      trailingSilenceMs: 100,
    });
    // Service: answer once the question has been heard, clear when the interruption arrives, answer again.
    const payloadHas = (value: number) => (m: ServerMessage): boolean =>
      m.json['event'] === 'media' && Buffer.from(String(asJson(m.json['media'])['payload']), 'base64').includes(value);
    await svc.waitFor(payloadHas(0x01));
    await svc.waitFor((m) => m.json['event'] === 'media' && !payloadHas(0x01)(m) && svc.messages.some(payloadHas(0x01)));
    const answerAt = call.nowMs();
    svc.send(media(call.streamSid, bytes(2000, 0x10)));
    await svc.waitFor(payloadHas(0x02));
    svc.send({ event: 'clear', streamSid: call.streamSid });
    await svc.waitFor((m) => m.json['event'] === 'media' && !payloadHas(0x02)(m) && svc.messages.some(payloadHas(0x02)));
    svc.send(media(call.streamSid, bytes(300, 0x20)));
    await svc.waitFor(payloadHas(0x03), 3000);
    await call.done;
    expect(call.endReason).toBe('completed');

    const [q, i, y] = call.speech;
    expect(q).toMatchObject({ label: 'audio', startMs: 0, endMs: 200 });
    expect(i!.label).toBe('interrupt');
    // Starts on the first frame after 300 ms of the answer have played.
    expect(i!.startMs - answerAt).toBeGreaterThanOrEqual(300 - 20);
    expect(i!.startMs - answerAt).toBeLessThan(300 + TOL);
    expect(i!.heardBytesAtStart).toBeGreaterThanOrEqual(300 * 8);
    expect(y!.label).toBe('yes');
    // The second answer (300 ms) started right after the interruption; the caller waited 200 ms of quiet after it.
    const second = spans(call.heardAudio(), 0x20)[0]!;
    expect(second[1] - second[0]).toBe(2400);
    expect(y!.startMs - second[1] / 8).toBeGreaterThanOrEqual(200 - 20);
    expect(y!.startMs - second[1] / 8).toBeLessThan(200 + TOL);
    expect(svc.messages.at(-1)!.json['event']).toBe('stop');
  });

  it('speak() queues speech behind the script and resolves when it has been sent', async () => {
    const { svc, call } = await connect({ audio: bytes(100, 0x04) });
    const rec = await call.speak(bytes(50, 0x05), 'extra');
    expect(rec.label).toBe('extra');
    expect(rec.startMs).toBe(100);
    expect(rec.endMs).toBe(150);
    const m = await svc.waitFor((x) => x.json['event'] === 'media' && asJson(x.json['media'])['timestamp'] === '140');
    const payload = Buffer.from(String(asJson(m.json['media'])['payload']), 'base64');
    expect([...payload.subarray(0, 80)].every((b) => b === 0x05)).toBe(true);
    expect([...payload.subarray(80)].every((b) => b === SILENCE)).toBe(true);
    const pending = call.speak(bytes(50, 0x06));
    await call.hangUp();
    await expect(pending).rejects.toThrow(/call ended/);
  });

  it('validates options', () => {
    expect(() => new SimulatedCaller({ url: '' })).toThrow(/url/);
    expect(() => new SimulatedCaller({ url: 'ws://x', leadingSilenceMs: -1 })).toThrow(RangeError);
    expect(() => new SimulatedCaller({ url: 'ws://x', segments: [{ audio: bytes(1, 1), start: { afterHeardMs: Number.NaN } }] })).toThrow(RangeError);
  });
});
