/**
 * Writes a replay's four files into one folder:
 *   heard.wav      stereo 8 kHz PCM16: left = the caller as sent, right = what the caller heard
 *   events.jsonl   every message both ways (Twilio and Realtime) on the stream clock, audio elided
 *   summary.json   see summary.ts
 *   timeline.svg   see timeline-svg.ts
 *   report.json    the post-call report (in-process only; docs/report.md)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulawStereoPcm16 } from '../../audio/stereo.js';
import { writeWavPcm16 } from '../audio/wav.js';
import { elideAudio } from '../../call/recorder.js';
import type { ReceivedMessage, SentMessage } from '../simulated-caller.js';
import type { ReplayResult } from './run.js';
import { bridgeStreamStart, type BridgeLog } from './summary.js';
import { renderTimelineSvg } from './timeline-svg.js';
import { MULAW_RATE_HZ } from '../../audio/wire-format.js';

export const OUTPUT_FILES = ['heard.wav', 'events.jsonl', 'summary.json', 'timeline.svg'] as const;
/** In-process replays also write the call's post-call report, as a serving process would. */
export const REPORT_FILE = 'report.json';

const RATE_HZ = MULAW_RATE_HZ;

export interface EventLine {
  /** ms since the stream started */
  t: number;
  peer: 'twilio' | 'realtime';
  /** as seen by callbridge: `in` = towards it, `out` = sent by it */
  dir: 'in' | 'out';
  msg: unknown;
}

/** `replays/<input>-<UTC timestamp>`: sorts by time, never collides within a second. */
export function defaultOutputDir(inputName: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return join('replays', `${inputName}-${stamp}`);
}

export function writeOutputs(result: ReplayResult, dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'heard.wav'), heardWav(result.callerAudio, result.heardAudio));
  const events = eventLines(result.sent, result.received, result.bridge);
  writeFileSync(join(dir, 'events.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + (events.length > 0 ? '\n' : ''));
  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(result.summary, null, 2)}\n`);
  writeFileSync(join(dir, 'timeline.svg'), renderTimelineSvg({ summary: result.summary, callerAudio: result.callerAudio, heardAudio: result.heardAudio }));
  if (result.report !== null) writeFileSync(join(dir, REPORT_FILE), `${JSON.stringify(result.report, null, 2)}\n`);
  return dir;
}

/** Left: the caller's own audio; right: what they heard. Both on the stream timeline. */
export function heardWav(callerAudio: Uint8Array, heardAudio: Uint8Array): Uint8Array {
  return writeWavPcm16(mulawStereoPcm16(callerAudio, heardAudio), { sampleRate: RATE_HZ, channels: 2 });
}

/** Both peers' messages in time order, audio payloads replaced by their size. */
export function eventLines(sent: readonly SentMessage[], received: readonly ReceivedMessage[], bridge: BridgeLog | null): EventLine[] {
  const out: EventLine[] = [];
  for (const s of sent) out.push({ t: round1(s.atMs), peer: 'twilio', dir: 'in', msg: elideAudio(s.message) });
  for (const r of received) {
    const msg = r.binary ? { binaryFrameBytes: Buffer.from(r.raw, 'base64').length } : (r.parsed ?? r.raw);
    out.push({ t: round1(r.atMs), peer: 'twilio', dir: 'out', msg: elideAudio(msg) });
  }
  const t0 = bridge === null ? null : bridgeStreamStart(bridge);
  if (bridge !== null && t0 !== null) {
    for (const l of bridge.realtimeLines) out.push({ t: round1(l.atMs - t0), peer: 'realtime', dir: l.dir, msg: elideAudio(l.msg) });
  }
  // Array.prototype.sort is stable: messages at the same instant keep their order.
  return out.sort((a, b) => a.t - b.t);
}

const round1 = (v: number): number => Math.round(v * 10) / 10;
