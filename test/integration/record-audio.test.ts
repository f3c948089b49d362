/**
 * RECORD_AUDIO on a real call: the stereo WAV the bridge writes must show what the simulated
 * caller itself heard (its own playback model): the answer until the barge-in's clear, silence
 * from then on, and the next answer.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mulawDecode } from '../../src/audio/g711.js';
import { readWav } from '../../src/tooling/audio/wav.js';
import { createLogger } from '../../src/observability/logger.js';
import type { AnswerSource } from '../../src/tooling/local-model/conversation.js';
import { audioRecordings } from '../../src/recording/audio-recorder.js';
import { eventually, startRig } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';

const QUESTION = loadCallerMulaw('caller-question');
const INTERRUPT = loadCallerMulaw('caller-interrupt');
const LONG_ANSWER = loadAgentPcm24k('agent-answer');
const SHORT_ANSWER = LONG_ANSWER.subarray(0, 1000 * 24);
const answers: AnswerSource = ({ responseIndex }) => (responseIndex === 0 ? { audio: LONG_ANSWER, transcript: 'long' } : { audio: SHORT_ANSWER, transcript: 'short' });

let rig: Rig | null = null;
let dir = '';
afterEach(async () => {
  await rig?.close();
  rig = null;
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
  dir = '';
});

/** RMS of each 10 ms of one channel of interleaved stereo PCM16. */
function rms10ms(samples: Int16Array, channel: 0 | 1): number[] {
  const out: number[] = [];
  for (let f = 0; (f + 1) * 80 * 2 <= samples.length; f++) {
    let sum = 0;
    for (let i = 0; i < 80; i++) sum += (samples[(f * 80 + i) * 2 + channel] ?? 0) ** 2;
    out.push(Math.sqrt(sum / 80));
  }
  return out;
}

describe('RECORD_AUDIO', () => {
  it('writes <callSid>.wav: stereo 8 kHz, caller left, what the caller heard right, silent after the clear', async () => {
    dir = mkdtempSync(join(tmpdir(), 'cb-audio-'));
    const recordings = audioRecordings(dir, createLogger('silent'));
    rig = await startRig({ upstream: { answer: answers, speed: Number.POSITIVE_INFINITY }, recorderFactory: recordings.factory });
    const caller = rig.caller({ audio: QUESTION, segments: [{ audio: INTERRUPT, start: { afterHeardMs: 1500 }, label: 'barge-in' }] });
    await caller.start();
    await eventually(() => caller.clears.length === 1 && caller.bufferedBytes() === 0 && caller.playedBytesTotal() > 0 && rig!.fake.sent.filter((e) => e.event.type === 'response.done').length >= 2, 'the answer after the barge-in played', 30_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await caller.hangUp();
    await eventually(() => rig!.server.calls.size === 0, 'call released');
    expect(await recordings.flush(5000)).toBe(true);

    // Only the finished file: the temporary one is gone.
    expect(readdirSync(dir)).toEqual([`${caller.callSid}.wav`]);
    const wav = readWav(readFileSync(join(dir, `${caller.callSid}.wav`)));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2, encoding: 'pcm16' });

    // The caller's own picture of the call, on the same timeline.
    const heard = new Int16Array(caller.heardAudio().length);
    mulawDecode(caller.heardAudio(), heard);
    const frames = Math.min(wav.samples.length / 2, heard.length);
    expect(Math.abs(wav.samples.length / 2 / 8 - caller.heardAudio().length / 8)).toBeLessThan(50);

    const right = rms10ms(wav.samples, 1);
    const left = rms10ms(wav.samples, 0);
    const heardRms: number[] = [];
    for (let f = 0; (f + 1) * 80 <= frames; f++) {
      let sum = 0;
      for (let i = 0; i < 80; i++) sum += (heard[f * 80 + i] ?? 0) ** 2;
      heardRms.push(Math.sqrt(sum / 80));
    }
    const active = (x: number): boolean => x > 30;
    // Right = what was heard: frame by frame the same, but for the few ms the loopback moves each
    // edge (more on a loaded machine); a right channel not cut at the clear differs for seconds.
    const differing = heardRms.filter((h, f) => active(h) !== active(right[f] ?? 0)).length;
    const edges = heardRms.filter((h, f) => f > 0 && active(h) !== active(heardRms[f - 1] ?? 0)).length;
    expect(edges).toBeGreaterThan(0);
    expect(differing).toBeLessThanOrEqual(3 * edges + 2);

    // Silent from the clear until the next answer began, though the long answer had far more queued.
    const clearAt = Math.ceil((caller.clears[0] ?? 0) / 10) + 1;
    const nextAnswer = heardRms.findIndex((h, f) => f > clearAt && active(h));
    expect(nextAnswer).toBeGreaterThan(clearAt);
    expect(right.slice(clearAt, nextAnswer - 1).every((x) => !active(x))).toBe(true);
    expect(right.slice(clearAt - 30, clearAt - 1).some(active)).toBe(true);
    // Left: the caller speaking, the question first, the barge-in around the clear.
    expect(left.slice(0, 100).some(active)).toBe(true);
    expect(left.slice(clearAt - 60, clearAt).some(active)).toBe(true);
  });
});
