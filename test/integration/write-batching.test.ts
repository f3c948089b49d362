/**
 * The writes of one input leave together: an audio delta's media and marks (and a barge-in's
 * clear) reach the Twilio socket in one write, not one write per message. Counted on the real
 * server-side TCP socket, by wrapping (not replacing) its write paths.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startRig } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';

const QUESTION = loadCallerMulaw('caller-question');
const ANSWER_MS = 1500;
const ANSWER = loadAgentPcm24k('agent-answer').subarray(0, ANSWER_MS * 24);

/** Counts the write calls Node makes on `socket` (each is one write or writev syscall). */
function countWrites(socket: Socket): { writes: number } {
  const tally = { writes: 0 };
  const write = socket._write.bind(socket);
  socket._write = (chunk, encoding, done) => {
    tally.writes += 1;
    write(chunk, encoding, done);
  };
  const writev = socket._writev?.bind(socket);
  if (writev !== undefined) {
    socket._writev = (chunks, done) => {
      tally.writes += 1;
      writev(chunks, done);
    };
  }
  return tally;
}

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

describe('write batching', () => {
  it("sends each audio delta's media and marks to Twilio in one write", async () => {
    rig = await startRig({ upstream: { answer: () => ({ audio: ANSWER, transcript: 'Sure.' }) } });
    const tallies: Array<{ writes: number }> = [];
    rig.server.app.server.on('connection', (socket: Socket) => tallies.push(countWrites(socket)));
    const caller = rig.caller({ segments: [{ audio: QUESTION, start: { atMs: 200 } }] });
    await caller.start();
    const mediaBytes = (): number =>
      caller.received.reduce((n, r) => n + (r.message?.event === 'media' ? Buffer.from(r.message.media.payload, 'base64').length : 0), 0);
    await eventually(() => mediaBytes() >= ANSWER_MS * 8, 'the whole answer reached the caller');
    // Counted before the hang-up, whose close frame is a write of its own.
    const writesSoFar = tallies.map((t) => t.writes);
    await caller.hangUp();

    const messages = caller.received.filter((r) => r.message?.event === 'media' || r.message?.event === 'mark').length;
    expect(writesSoFar).toHaveLength(1);
    const writes = writesSoFar[0]! - 1; // the first is the HTTP 101 of the handshake
    expect(writes).toBeGreaterThan(0);
    // Every delta ends on a mark, so each write carries at least a media message and a mark;
    // with one write per message this would be 1.
    expect(messages / writes).toBeGreaterThanOrEqual(2);
  });
});
