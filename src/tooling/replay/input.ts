/**
 * Loads what a replay plays as the caller: a WAV file (any rate, any channels) or a capture of a
 * real call (`<callSid>.twilio.jsonl`, written by RECORD_CALLS). Either way the result is the
 * caller's 8 kHz mu-law audio on the stream timeline, plus what else Twilio sent that a replay
 * must repeat (custom parameters, DTMF). Bad input fails with the file and line at fault.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { mulawEncode, MULAW_SILENCE } from '../../audio/g711.js';
import { resampleOffline } from '../audio/offline-resample.js';
import { readWav, WavFormatError, type DecodedWav } from '../audio/wav.js';
import { CAPTURE_FORMAT } from '../../call/recorder.js';
import { Type } from 'typebox';
import { twilioMessageFrom } from '../../twilio/messages.js';
import { compile, problemText } from '../../validation/validator.js';
import type { Problem } from '../../validation/validator.js';
import { MULAW_BYTES_PER_MS, MULAW_RATE_HZ } from '../../audio/wire-format.js';

const TWILIO_RATE_HZ = MULAW_RATE_HZ;
const CAPTURE_SUFFIX = '.twilio.jsonl';

export interface DtmfPress {
  /** ms since the stream started */
  atMs: number;
  digit: string;
}

export interface ReplayInput {
  /** Short name for output folders: the file name without its extension(s). */
  name: string;
  path: string;
  kind: 'wav' | 'capture';
  /** The caller's audio, 8 kHz mu-law, index 0 = stream start; gaps in a capture are silence. */
  audio: Uint8Array;
  durationMs: number;
  customParameters: Record<string, string>;
  dtmf: DtmfPress[];
  /** One line on where the audio came from, e.g. "WAV 44100 Hz, 2 ch, pcm16". */
  description: string;
  /** Things in the input that the replay skips, with their line. */
  warnings: string[];
}

export class ReplayInputError extends Error {
  override name = 'ReplayInputError';
}

/** Reads a recording from disk and recognises its kind by content, not by name. */
export function loadReplayInput(path: string): ReplayInput {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new ReplayInputError(`${path}: cannot read: ${(err as Error).message}`);
  }
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF') return wavInput(bytes, path);
  if (bytes.subarray(0, 1).toString('latin1') === '{') return captureInput(bytes.toString('utf8'), path);
  throw new ReplayInputError(`${path}: neither a WAV file nor a call capture (${CAPTURE_SUFFIX})`);
}

export function inputName(path: string): string {
  const file = basename(path);
  if (file.endsWith(CAPTURE_SUFFIX)) return file.slice(0, -CAPTURE_SUFFIX.length);
  const dot = file.lastIndexOf('.');
  return dot > 0 ? file.slice(0, dot) : file;
}

// ---------------------------------------------------------------- WAV

export function wavInput(bytes: Uint8Array, path: string): ReplayInput {
  const wav = readWavOrFail(bytes, path);
  const description = `WAV ${wav.sampleRate} Hz, ${wav.channels} ch, ${wav.encoding}`;
  let audio: Uint8Array;
  if (wav.encoding === 'mulaw' && wav.channels === 1 && wav.sampleRate === TWILIO_RATE_HZ) {
    // Already what Twilio sends: keep the codes exactly (a decode/encode round trip would not).
    audio = wav.data;
  } else {
    const pcm = resampleOffline(downmix(wav.samples, wav.channels), wav.sampleRate, TWILIO_RATE_HZ);
    audio = new Uint8Array(pcm.length);
    mulawEncode(pcm, audio);
  }
  if (audio.length === 0) throw new ReplayInputError(`${path}: the WAV file holds no audio`);
  return {
    name: inputName(path),
    path,
    kind: 'wav',
    audio,
    durationMs: audio.length / MULAW_BYTES_PER_MS,
    customParameters: {},
    dtmf: [],
    description,
    warnings: [],
  };
}

function readWavOrFail(bytes: Uint8Array, path: string): DecodedWav {
  try {
    return readWav(bytes);
  } catch (err) {
    if (err instanceof WavFormatError) throw new ReplayInputError(`${path}: ${err.message}`);
    throw err;
  }
}

/** Average interleaved channels into one. */
function downmix(interleaved: Int16Array, channels: number): Int16Array {
  if (channels === 1) return interleaved;
  const frames = Math.floor(interleaved.length / channels);
  const out = new Int16Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += interleaved[f * channels + c] ?? 0;
    out[f] = Math.round(sum / channels);
  }
  return out;
}

// ---------------------------------------------------------------- capture

interface PlacedMedia {
  atByte: number;
  bytes: Uint8Array;
}

/** The first line of a capture: which call, in which format, of which side. */
const CaptureHeader = compile(
  Type.Object({
    kind: Type.Literal('header'),
    format: Type.Literal(CAPTURE_FORMAT),
    stream: Type.Literal('twilio'),
    callSid: Type.Optional(Type.String()),
  }),
  { root: 'the header' },
);

/** Every later line: one frame, when it was seen and which way it went. */
const CaptureLine = compile(
  Type.Object({
    t: Type.Number({ minimum: 0, expected: 'a number of ms >= 0' }),
    dir: Type.Union([Type.Literal('in'), Type.Literal('out')], { expected: '"in" or "out"' }),
    /** the frame as JSON, or its text when it was not JSON */
    msg: Type.Unknown(),
  }),
  { root: 'a capture line' },
);

/**
 * Why the first line is not a header this replay can play, said as the user needs it: a capture
 * of another version, or the upstream log (`.realtime.jsonl`) of the same call, get their own hint.
 */
function headerProblem(header: unknown, problems: readonly Problem[]): string {
  const fields = new Set(problems.map((p) => p.field));
  const h = typeof header === 'object' && header !== null ? (header as Record<string, unknown>) : {};
  if (fields.has('') || fields.has('kind')) return `not a call capture: the first line must be its header ({"kind":"header","format":"${CAPTURE_FORMAT}",...})`;
  if (fields.has('format')) return `capture format ${JSON.stringify(h['format'])} is not supported (expected "${CAPTURE_FORMAT}")`;
  if (h['stream'] === 'realtime') return `this is the upstream log of a call; replay its ${CAPTURE_SUFFIX} file (the caller's side)`;
  return problemText(problems);
}

export function captureInput(text: string, path: string): ReplayInput {
  const lines = text.split('\n');
  const fail = (lineNo: number, why: string): never => {
    throw new ReplayInputError(`${path}:${lineNo}: ${why}`);
  };
  const json = (lineNo: number): unknown => {
    try {
      return JSON.parse(lines[lineNo - 1] ?? '');
    } catch {
      return fail(lineNo, 'not valid JSON');
    }
  };

  const header = json(1);
  if (!CaptureHeader.is(header)) return fail(1, headerProblem(header, CaptureHeader.problems()));

  const warnings: string[] = [];
  const media: PlacedMedia[] = [];
  const dtmfAt: Array<{ t: number; digit: string }> = [];
  let startT: number | null = null;
  let customParameters: Record<string, string> = {};
  let stopped = false;

  for (let lineNo = 2; lineNo <= lines.length; lineNo++) {
    if ((lines[lineNo - 1] ?? '').trim() === '') continue;
    const line = json(lineNo);
    if (!CaptureLine.is(line)) return fail(lineNo, problemText(CaptureLine.problems()));
    const t = line.t;
    // Only what Twilio sent is input; anything we sent is re-derived by the replay.
    if (line.dir === 'out') continue;
    const msg = line.msg;
    if (typeof msg === 'string') {
      warnings.push(`${path}:${lineNo}: skipped a frame that was not JSON`);
      continue;
    }
    // The line was parsed here, so the frame is ours to check in place.
    const parsed = twilioMessageFrom(msg);
    if (!parsed.ok) return fail(lineNo, `not a valid Twilio message: ${parsed.error.detail}`);
    const m = parsed.message;
    if (stopped) {
      warnings.push(`${path}:${lineNo}: skipped "${m.event}" after stop`);
      continue;
    }
    switch (m.event) {
      case 'connected':
        break;
      case 'start': {
        if (startT !== null) return fail(lineNo, 'a second start message');
        const f = m.start.mediaFormat;
        if (f.encoding !== 'audio/x-mulaw' || f.sampleRate !== TWILIO_RATE_HZ || f.channels !== 1) {
          return fail(lineNo, `media format ${f.encoding} ${f.sampleRate} Hz ${f.channels} ch is not Twilio's 8 kHz mono mu-law`);
        }
        startT = t;
        customParameters = { ...m.start.customParameters };
        break;
      }
      case 'media': {
        if (startT === null) return fail(lineNo, 'media before the start message');
        const ts = Number(m.media.timestamp);
        if (!Number.isFinite(ts) || ts < 0) return fail(lineNo, `media.timestamp must be ms >= 0, got "${m.media.timestamp}"`);
        media.push({ atByte: Math.round(ts * MULAW_BYTES_PER_MS), bytes: Buffer.from(m.media.payload, 'base64') });
        break;
      }
      case 'dtmf':
        if (startT === null) return fail(lineNo, 'dtmf before the start message');
        dtmfAt.push({ t, digit: m.dtmf.digit });
        break;
      case 'mark':
        // Echoes of the original bridge's marks: the replay's caller echoes its own.
        break;
      case 'stop':
        stopped = true;
        break;
    }
  }
  if (startT === null) throw new ReplayInputError(`${path}: no start message: the capture holds no call`);
  if (media.length === 0) throw new ReplayInputError(`${path}: no media: the capture holds no caller audio`);
  const start = startT;

  let length = 0;
  for (const m of media) length = Math.max(length, m.atByte + m.bytes.length);
  const audio = new Uint8Array(length).fill(MULAW_SILENCE);
  for (const m of media) audio.set(m.bytes, m.atByte);
  return {
    name: inputName(path),
    path,
    kind: 'capture',
    audio,
    durationMs: length / MULAW_BYTES_PER_MS,
    customParameters,
    dtmf: dtmfAt.map((d) => ({ atMs: Math.max(0, d.t - start), digit: d.digit })),
    description: `capture of ${header.callSid ?? 'a call'} (${media.length} media frames)`,
    warnings,
  };
}
