/**
 * Call capture: what crossed both sockets of a call, with arrival times, so any call from the
 * field can be replayed (`npm run replay`) and turned into a regression test.
 *
 * Files per call in the RECORD_CALLS folder:
 *   <callSid>.twilio.jsonl    every inbound Twilio message as received (audio kept: it is the input)
 *   <callSid>.realtime.jsonl  every upstream event both ways, audio payloads elided
 * Each file starts with a header line; every other line is one CaptureLine. The realtime file ends
 * with a CaptureEndLine (a CaptureLine too, `msg.type` = CAPTURE_END_TYPE) saying why the call
 * ended. It is not written into the Twilio file: that file is the replay input and holds exactly
 * what Twilio sent.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { join } from 'node:path';

export const CAPTURE_FORMAT = 'callbridge.capture/1';

export interface CaptureHeader {
  kind: 'header';
  format: typeof CAPTURE_FORMAT;
  stream: 'twilio' | 'realtime';
  callSid: string;
  streamSid: string;
  /** wall-clock start of the call's media socket */
  startedAt: string;
}

export interface CaptureLine {
  /** ms since the call's media socket opened */
  t: number;
  /** `in`: towards callbridge; `out`: sent by callbridge */
  dir: 'in' | 'out';
  /** the message as parsed JSON, or the raw text when it was not JSON */
  msg: unknown;
}

/** `msg.type` of the line that closes a realtime capture; never sent to anyone. */
export const CAPTURE_END_TYPE = 'callbridge.call_ended';

/** The last line of a realtime capture (and of a MemoryRecording's realtimeLines). */
export interface CaptureEndLine extends CaptureLine {
  dir: 'out';
  msg: { type: typeof CAPTURE_END_TYPE; reason: string | null };
}

/** How the call ended, as the bridge knows it. */
export interface CallEndInfo {
  /** The session's endReason (`agent-ended`, `twilio-stop`, ...); null when unknown. */
  reason: string | null;
  /** When the call ended, on the clock of the recorder's other times; default performance.now(). */
  atMs?: number;
  /** The agent profile that answered (per-number profiles), once known; for the post-call report. */
  profile?: string | null;
}

export interface CallIds {
  callSid: string;
  streamSid: string;
}

/** Receives a call's traffic. Implementations must never throw into the call. */
export interface CallRecorder {
  twilio(dir: 'in' | 'out', msg: unknown, atMs: number): void;
  realtime(dir: 'in' | 'out', msg: unknown, atMs: number): void;
  /** The call is over: write how it ended (when given) and close. Called once. */
  end(info?: CallEndInfo): void;
}

function endMessage(info: CallEndInfo | undefined): CaptureEndLine['msg'] {
  return { type: CAPTURE_END_TYPE, reason: info?.reason ?? null };
}

/** Opened when a call's `start` arrives; `openedAtMs` is when its media socket opened. */
export type RecorderFactory = (ids: CallIds, openedAtMs: number) => CallRecorder;

/** Replace audio payloads by their size: logs stay small and free of voice data. */
export function elideAudio(msg: unknown): unknown {
  if (typeof msg !== 'object' || msg === null) return msg;
  const m = msg as Record<string, unknown>;
  const type = m['type'];
  if (type === 'input_audio_buffer.append' && typeof m['audio'] === 'string') return { ...m, audio: elided(m['audio']) };
  if (type === 'response.output_audio.delta' && typeof m['delta'] === 'string') return { ...m, delta: elided(m['delta']) };
  if (m['event'] === 'media' && typeof m['media'] === 'object' && m['media'] !== null) {
    const media = m['media'] as Record<string, unknown>;
    if (typeof media['payload'] === 'string') return { ...m, media: { ...media, payload: elided(media['payload']) } };
  }
  return msg;
}

function elided(b64: string): { elidedBytes: number } {
  return { elidedBytes: Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0) };
}

/** Writes captures into a folder; a write failure disables that call's capture, never the call. */
export function fileRecorderFactory(dir: string, onError: (err: Error, file: string) => void): RecorderFactory {
  mkdirSync(dir, { recursive: true });
  return (ids, openedAtMs) => {
    const startedAt = new Date(Date.now() - (performance.now() - openedAtMs)).toISOString();
    const safeSid = ids.callSid.replace(/[^A-Za-z0-9_-]/g, '_');
    const open = (stream: 'twilio' | 'realtime'): WriteStream | null => {
      const file = join(dir, `${safeSid}.${stream}.jsonl`);
      const ws = createWriteStream(file, { flags: 'w' });
      let failed = false;
      ws.on('error', (err) => {
        if (!failed) onError(err, file);
        failed = true;
      });
      const header: CaptureHeader = { kind: 'header', format: CAPTURE_FORMAT, stream, callSid: ids.callSid, streamSid: ids.streamSid, startedAt };
      ws.write(`${JSON.stringify(header)}\n`);
      return ws;
    };
    const twilio = open('twilio');
    const realtime = open('realtime');
    const write = (ws: WriteStream | null, dir: 'in' | 'out', msg: unknown, atMs: number): void => {
      if (ws === null || ws.destroyed || ws.writableEnded) return;
      const line: CaptureLine = { t: Math.round((atMs - openedAtMs) * 10) / 10, dir, msg };
      ws.write(`${JSON.stringify(line)}\n`);
    };
    return {
      // Only inbound Twilio traffic is the call's input; what we sent is derived from it.
      twilio: (dir, msg, atMs) => {
        if (dir === 'in') write(twilio, dir, msg, atMs);
      },
      realtime: (dir, msg, atMs) => write(realtime, dir, elideAudio(msg), atMs),
      end: (info) => {
        write(realtime, 'out', endMessage(info), info?.atMs ?? performance.now());
        twilio?.end();
        realtime?.end();
      },
    };
  };
}

/** Keeps everything in memory (both directions, audio kept), for in-process replay and tests. */
export class MemoryRecording implements CallRecorder {
  readonly twilioLines: Array<{ atMs: number; dir: 'in' | 'out'; msg: unknown }> = [];
  readonly realtimeLines: Array<{ atMs: number; dir: 'in' | 'out'; msg: unknown }> = [];
  ended = false;
  /** The reason given to end(); null until then, or when none was given. */
  endReason: string | null = null;

  constructor(readonly ids: CallIds, readonly openedAtMs: number) {}

  twilio(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    this.twilioLines.push({ atMs, dir, msg });
  }

  realtime(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    this.realtimeLines.push({ atMs, dir, msg });
  }

  /** Also appends the end line to realtimeLines, as the file capture does. */
  end(info?: CallEndInfo): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = info?.reason ?? null;
    this.realtimeLines.push({ atMs: info?.atMs ?? performance.now(), dir: 'out', msg: endMessage(info) });
  }
}

/**
 * Several recorders of each call (capture, post-call report, audio), each told everything. One
 * that throws — opening or later — is dropped for that call and reported to `onError`; the
 * others go on. Undefined with no factory, the factory itself with one.
 */
export function teeRecorderFactory(factories: readonly RecorderFactory[], onError: (err: unknown, ids: CallIds) => void): RecorderFactory | undefined {
  if (factories.length <= 1) return factories[0];
  return (ids, openedAtMs) => {
    const live: CallRecorder[] = [];
    for (const factory of factories) {
      try {
        live.push(factory(ids, openedAtMs));
      } catch (err) {
        onError(err, ids);
      }
    }
    const each = (fn: (r: CallRecorder) => void): void => {
      for (const r of [...live]) {
        try {
          fn(r);
        } catch (err) {
          live.splice(live.indexOf(r), 1);
          onError(err, ids);
        }
      }
    };
    return {
      twilio: (dir, msg, atMs) => each((r) => r.twilio(dir, msg, atMs)),
      realtime: (dir, msg, atMs) => each((r) => r.realtime(dir, msg, atMs)),
      end: (info) => each((r) => r.end(info)),
    };
  };
}

/** A factory that keeps every call's MemoryRecording, in order of arrival. */
export function memoryRecorderFactory(): { factory: RecorderFactory; recordings: MemoryRecording[] } {
  const recordings: MemoryRecording[] = [];
  return {
    recordings,
    factory: (ids, openedAtMs) => {
      const r = new MemoryRecording(ids, openedAtMs);
      recordings.push(r);
      return r;
    },
  };
}
