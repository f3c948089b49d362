/**
 * `npm run replay` end to end: the committed recordings (test/fixtures/calls/) replayed in real
 * time against an in-process callbridge on the local model, and once against a running server
 * by URL. The four replays run at once: each is its own server and call, and all of them are
 * mostly waiting on real time.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readWav } from '../../src/tooling/audio/wav.js';
import { loadReplayInput } from '../../src/tooling/replay/input.js';
import { OUTPUT_FILES, writeOutputs } from '../../src/tooling/replay/outputs.js';
import { runReplay, type ReplayResult } from '../../src/tooling/replay/run.js';
import type { ReplaySummary } from '../../src/tooling/replay/summary.js';
import { startRig, type Rig } from '../support/call-rig.js';

const CALLS = fileURLToPath(new URL('../fixtures/calls/', import.meta.url));
/** The local model whatever the developer's environment holds: no key, no network. */
const LOCAL_ONLY: NodeJS.ProcessEnv = {
  REALTIME_BACKEND: 'local',
  // These captures were recorded on the bare bridge (no greeting): replayed on the same agent.
  CONFIG_FILE: fileURLToPath(new URL('../fixtures/config/bare-bridge.json', import.meta.url)),
};

function replay(name: string, url?: string): Promise<ReplayResult> {
  const input = loadReplayInput(join(CALLS, `${name}.twilio.jsonl`));
  return runReplay({ input, env: LOCAL_ONLY, ...(url === undefined ? {} : { url }) });
}

let rig: Rig | null = null;
const results = new Map<string, ReplayResult>();
const outDirs = new Map<string, string>();

beforeAll(async () => {
  rig = await startRig();
  const runs = {
    'two-turn': replay('two-turn'),
    'barge-in': replay('barge-in'),
    'talk-over': replay('talk-over'),
    'barge-in via --url': replay('barge-in', rig.mediaUrl),
  };
  const done = await Promise.all(Object.entries(runs).map(async ([name, run]) => [name, await run] as const));
  for (const [name, result] of done) {
    results.set(name, result);
    outDirs.set(name, writeOutputs(result, mkdtempSync(join(tmpdir(), 'cb-replay-'))));
  }
}, 60_000);

afterAll(async () => {
  await rig?.close();
  for (const dir of outDirs.values()) rmSync(dir, { recursive: true, force: true });
});

/**
 * No API error, except a cancel that crossed its response's done in flight: the bridge sent it
 * while the response was active as far as it knew, and the done arrived after. Every bridge and
 * the real API race like that; anything else (a cancel of a response known to be over, a second
 * create) is a bug and fails here.
 */
function expectNoApiErrorsButCrossedCancels(name: string): void {
  const r = results.get(name);
  const lines = r?.bridge?.realtimeLines ?? [];
  const doneAt = new Map<string, number>();
  for (const l of lines) {
    const m = l.msg as { type?: string; response?: { id?: string } };
    if (l.dir === 'in' && m.type === 'response.done' && m.response?.id !== undefined && !doneAt.has(m.response.id)) doneAt.set(m.response.id, l.atMs);
  }
  const crossed = lines.filter((l) => {
    const m = l.msg as { type?: string; response_id?: string };
    return l.dir === 'out' && m.type === 'response.cancel' && m.response_id !== undefined && (doneAt.get(m.response_id) ?? Infinity) > l.atMs;
  }).length;
  const errors = r?.summary.errors ?? [];
  expect(errors.filter((e) => e.code !== 'response_cancel_not_active')).toEqual([]);
  // Each benign error is explained by a cancel the bridge sent before that response's done reached it.
  expect(errors.length).toBeLessThanOrEqual(crossed);
  if (errors.length > 0) expect(r?.bridge).not.toBeNull();
}

function summary(name: string): ReplaySummary {
  const r = results.get(name);
  if (r === undefined) throw new Error(`no replay of ${name}`);
  return r.summary;
}

describe('replaying committed call recordings in-process on the local model', () => {
  it('two-turn: two turns, two completed responses, no interruption, no API error', () => {
    const s = summary('two-turn');
    expect(s.upstreamVisible).toBe(true);
    expect(s.turns).toHaveLength(2);
    expect(s.responses?.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(s.interruptions).toEqual([]);
    expect(s.errors).toEqual([]);
    expect(s.twilioProtocolErrors).toEqual([]);
    // Every turn got an answer, and the whole answer was heard.
    for (const t of s.turns ?? []) expect(t.firstAudioLatencyMs).not.toBeNull();
    for (const r of s.responses ?? []) expect(r.audioHeardMs).toBeCloseTo(r.audioSentMs, -1);
    expect(s.callerSpeech).toHaveLength(2);
    for (const c of s.callerSpeech) expect(c.perceivedLatencyMs).toBeGreaterThan(0);
  });

  it('two-turn: re-sends the recorded custom parameters and DTMF at their times', () => {
    const r = results.get('two-turn');
    const start = r?.sent.find((m) => m.message.event === 'start')?.message;
    expect(start?.event === 'start' ? start.start.customParameters : null).toEqual({ fixture: 'two-turn' });
    expect(r?.summary.dtmf).toEqual([{ atMs: expect.closeTo(1000, -2), digit: '1' }]);
  });

  it('barge-in: one interruption, truncated just below what the caller heard, at once', () => {
    const s = summary('barge-in');
    expect(s.interruptions).toHaveLength(1);
    const it0 = s.interruptions[0]!;
    expect(it0.heardSource).toBe('cleared-marks');
    expect(it0.heardMs).toBeGreaterThan(500);
    expect(it0.truncateMs).not.toBeNull();
    expect(it0.truncateMs!).toBeLessThanOrEqual(it0.heardMs);
    expect(it0.truncateMs!).toBeGreaterThanOrEqual(it0.heardMs - 60);
    expect(it0.reactionMs).not.toBeNull();
    expect(it0.reactionMs!).toBeLessThan(300);
    expect(it0.droppedMs).toBeGreaterThan(0);
    const cut = s.responses?.find((r) => r.id === it0.responseId);
    expect(cut?.status === 'cancelled' || it0.truncatedItemId !== null).toBe(true);
    expect(cut?.audioHeardMs).toBeCloseTo(it0.heardMs, -1);
    expect(s.errors).toEqual([]);
    expect(s.twilioProtocolErrors).toEqual([]);
  });

  it('talk-over: every answer is cut, each truncated at what was heard', () => {
    const s = summary('talk-over');
    expect(s.interruptions.length).toBeGreaterThanOrEqual(2);
    for (const i of s.interruptions) {
      expect(i.truncateMs ?? -1).toBeLessThanOrEqual(i.heardMs);
      expect(i.truncateMs ?? -1).toBeGreaterThanOrEqual(i.heardMs - 60);
      expect(i.reactionMs ?? Infinity).toBeLessThan(300);
    }
    expectNoApiErrorsButCrossedCancels('talk-over');
    expect(s.twilioProtocolErrors).toEqual([]);
  });

  it('against a running server by URL: the same interruption, upstream fields null', () => {
    const s = summary('barge-in via --url');
    const local = summary('barge-in');
    expect(s.upstreamVisible).toBe(false);
    expect(s.target).toBe(rig?.mediaUrl);
    expect(s.turns).toBeNull();
    expect(s.responses).toBeNull();
    expect(s.errors).toBeNull();
    expect(s.interruptions).toHaveLength(1);
    expect(s.interruptions[0]).toMatchObject({ truncateMs: null, reactionMs: null, cancelSent: null, heardSource: 'cleared-marks' });
    expect(Math.abs(s.interruptions[0]!.heardMs - local.interruptions[0]!.heardMs)).toBeLessThan(100);
  });

  it('writes heard.wav (stereo 8 kHz), events.jsonl without audio payloads, summary.json and timeline.svg', () => {
    for (const [name, dir] of outDirs) {
      const result = results.get(name)!;
      for (const file of OUTPUT_FILES) expect(readFileSync(join(dir, file)).length, `${name}/${file}`).toBeGreaterThan(0);

      const wav = readWav(readFileSync(join(dir, 'heard.wav')));
      expect(wav).toMatchObject({ sampleRate: 8000, channels: 2, encoding: 'pcm16' });
      expect(wav.samples.length / 2 / 8).toBeGreaterThanOrEqual(result.summary.durationMs - 40);

      const lines = readFileSync(join(dir, 'events.jsonl'), 'utf8').trim().split('\n');
      const events = lines.map((l) => JSON.parse(l) as { t: number; peer: string; dir: string; msg: unknown });
      const peers = new Set(events.map((e) => e.peer));
      expect(peers.has('twilio')).toBe(true);
      expect(peers.has('realtime')).toBe(result.summary.upstreamVisible);
      for (let i = 1; i < events.length; i++) expect(events[i]!.t).toBeGreaterThanOrEqual(events[i - 1]!.t);
      for (const e of events) {
        expect(['in', 'out']).toContain(e.dir);
        const m = e.msg as { event?: string; type?: string; media?: { payload?: unknown }; audio?: unknown; delta?: unknown };
        if (m.event === 'media') expect(m.media?.payload).toEqual({ elidedBytes: expect.any(Number) });
        if (m.type === 'input_audio_buffer.append') expect(m.audio).toEqual({ elidedBytes: expect.any(Number) });
        if (m.type === 'response.output_audio.delta') expect(m.delta).toEqual({ elidedBytes: expect.any(Number) });
      }
      expect(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(result.summary)));
      const svg = readFileSync(join(dir, 'timeline.svg'), 'utf8');
      expect(svg.startsWith('<svg ')).toBe(true);
      expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    }
  });
});
