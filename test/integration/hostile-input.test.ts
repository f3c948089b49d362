/**
 * Hostile and broken input on the media endpoint: each kind of bad frame gets a deliberate
 * response (ignored, or the stream closed with 1008), and a flood of them on one connection
 * leaves a normal call beside it, and the process, untouched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eventually, sentOfType, startRig, upstreamEvents } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';

const SID = 'MZ99999999999999999999999999999999';
const START = JSON.stringify({
  event: 'start',
  sequenceNumber: '1',
  streamSid: SID,
  start: { streamSid: SID, accountSid: 'AC9', callSid: 'CA99999999999999999999999999999999', tracks: ['inbound'], customParameters: {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } },
});
const media = (payload: unknown, streamSid: unknown = SID): string => JSON.stringify({ event: 'media', sequenceNumber: '2', streamSid, media: { track: 'inbound', chunk: '1', timestamp: '0', payload } });

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

async function open(url: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(url);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, closed };
}

/** Resolves with the close code, or 'open' if the server kept the connection after `ms`. */
async function outcome(closed: Promise<number>, ms = 300): Promise<number | 'open'> {
  return Promise.race([closed, new Promise<'open'>((r) => setTimeout(() => r('open'), ms))]);
}

/** `ignored`: the frame is dropped with this reason in the log; a number: the stream is closed with it. */
type Case = [name: string, frames: Array<string | Buffer>, expected: { ignored: string } | number];
const CASES: Case[] = [
  ['non-JSON text', ['{"event":'], { ignored: 'not-json' }],
  ['a JSON array', ['[1,2,3]'], { ignored: 'not-object' }],
  ['an unknown event', ['{"event":"party","streamSid":"MZ1"}'], { ignored: 'unknown-event' }],
  ['a wrong type', [media(12345)], { ignored: 'wrong-type' }],
  ['bad base64', [media('***not base64***')], { ignored: 'bad-payload' }],
  ['odd-length base64', [media('AAA')], { ignored: 'bad-payload' }],
  ['media before start', [media('//8=')], { ignored: 'media-before-start' }],
  ['an oversized payload', [START, media(Buffer.alloc(30_000, 0xff).toString('base64'))], { ignored: 'oversized-payload' }],
  ['a binary frame', [Buffer.from([1, 2, 3])], 1008],
  ['a second start', [START, START], 1008],
  ['media for another stream', [START, media('//8=', 'MZ00000000000000000000000000000000')], 1008],
  ['a frame over the size limit', [START, 'x'.repeat(70 * 1024)], 1009],
];

const appendsOn = (r: Rig, connectionId: number): number =>
  r.fake.received.filter((e) => e.connectionId === connectionId && e.event.type === 'input_audio_buffer.append').length;

describe('hostile input', () => {
  it.each(CASES)('answers %s deliberately', async (_name, frames, expected) => {
    rig = await startRig();
    const { ws, closed } = await open(rig.mediaUrl);
    for (const f of frames) ws.send(f);
    const sentStart = frames.includes(START);
    expect(await outcome(closed)).toBe(typeof expected === 'number' ? expected : 'open');
    if (typeof expected !== 'number') {
      // The frame went nowhere: held audio is flushed right after session.update, so once that
      // has arrived upstream, an append of the ignored frame would have arrived with it.
      if (sentStart) {
        await rig.fake.waitForReceived((r) => r.connectionId === 1 && r.event.type === 'session.update');
        expect(rig.fake.connectionsOpened).toBe(1);
        expect(appendsOn(rig, 1)).toBe(0);
      } else {
        expect(rig.fake.connectionsOpened).toBe(0);
      }
      const ignored = rig.logs.filter((l) => l.msg === 'ignored invalid twilio frame');
      expect(ignored).toHaveLength(1);
      expect(ignored[0]).toMatchObject({ level: 'warn', reason: expected.ignored, connectionId: 1 });
    }
    ws.terminate();
    // and the server still serves
    expect((await fetch(`${rig.baseUrl}/healthz`)).status).toBe(200);
    if (sentStart && typeof expected === 'number') {
      // a stream that broke the protocol after it started is counted as rejected, not as a hang-up
      await eventually(() => rig!.server.startedCalls === 0, 'call ended');
      const metrics = await rig.server.metrics.render();
      expect(metrics).toMatch(/callbridge_calls_total\{outcome="rejected"\} 1\n/);
      expect(metrics).toMatch(/callbridge_calls_total\{outcome="caller-hung-up"\} 0\n/);
    }
  });

  it('a flood of malformed frames on one connection leaves a normal call beside it untouched', async () => {
    const longAnswer = loadAgentPcm24k('agent-answer');
    const shortAnswer = longAnswer.subarray(0, 24_000);
    rig = await startRig({
      upstream: {
        speed: Number.POSITIVE_INFINITY,
        answer: ({ responseIndex }) => ({ audio: responseIndex === 0 ? longAnswer : shortAnswer, transcript: 'answer' }),
      },
    });
    const caller = rig.caller({ audio: loadCallerMulaw('caller-question'), segments: [{ audio: loadCallerMulaw('caller-yes'), start: { afterHeardMs: 1200 } }] });
    await caller.start();
    // Fuzz connections that send START open upstream sessions too: the normal call must be 1.
    await rig.fake.waitForConnections(1);

    // Deterministic pseudo-random frames of every broken kind, on connections reopened as the
    // server closes them for protocol violations.
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const junk = (): string | Buffer => {
      switch (rand(12)) {
        case 0: return '{"event":"media"'.slice(0, rand(16));
        case 1: return JSON.stringify([rand(100)]);
        case 2: return JSON.stringify({ event: 'x'.repeat(rand(50)) });
        case 3: return media(rand(2) === 0 ? null : { nested: true });
        case 4: return media('!!' + 'A'.repeat(rand(40)));
        case 5: return media('A'.repeat(1 + 4 * rand(10)) + 'A');
        case 6: return JSON.stringify({ event: 'mark', streamSid: SID });
        case 7: return JSON.stringify({ event: 'dtmf', streamSid: SID, dtmf: 7 });
        case 8: return JSON.stringify({ event: 'start', start: 'nope' });
        case 9: return Buffer.from([rand(256)]);
        case 10: return media('//8=', `MZ${rand(1000)}`);
        default: return '\u0000\uffff' + 'x'.repeat(rand(200));
      }
    };
    const FRAMES = 3000;
    let sent = 0;
    let connections = 0;
    const fuzzStart = Date.now();
    while (sent < FRAMES) {
      const { ws, closed } = await open(rig.mediaUrl);
      connections += 1;
      if (rand(2) === 0) ws.send(START);
      let isOpen = true;
      void closed.then(() => {
        isOpen = false;
      });
      while (isOpen && sent < FRAMES) {
        ws.send(junk());
        sent += 1;
        if (sent % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      ws.terminate();
    }
    const fuzzMs = Date.now() - fuzzStart;

    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length >= 2 && caller.clears.length === 1 && caller.bufferedBytes() === 0, 'the normal call completed its turns', 40_000);
    await caller.hangUp();

    // The normal call went exactly as it goes without the flood.
    const events = upstreamEvents(rig.fake, 1).map((e) => e.type);
    expect(events).toEqual(['session.update', 'response.create', 'conversation.item.truncate', 'response.create']);
    expect(caller.clears).toHaveLength(1);
    expect(caller.protocolErrors).toEqual([]);
    expect(rig.fake.errors.filter((e) => e.connectionId === 1)).toEqual([]);
    // The flood really happened, and the process is healthy.
    expect(sent).toBe(FRAMES);
    expect(connections).toBeGreaterThan(1); // violations closed connections and the fuzzer came back
    expect(fuzzMs).toBeLessThan(30_000);
    expect((await fetch(`${rig.baseUrl}/healthz`)).status).toBe(200);
    expect(rig.logs.filter((l) => l.level === 'error')).toEqual([]);
    await eventually(() => rig!.server.calls.size === 0, 'every connection released');
  });
});
