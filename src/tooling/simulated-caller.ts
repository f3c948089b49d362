/**
 * A simulated Twilio caller: Twilio's side of a bidirectional Media Stream, faithful enough that
 * a bridge's "what did the caller actually hear" accounting can be checked against it.
 *
 * One timeline: every `atMs` here, media `timestamp`s and heardAudio() indices count from the
 * instant the `start` message was sent (the stream start), on a monotonic clock.
 *
 * Playback (Twilio's outbound buffer) follows the shared model in ./twilio-playback.ts: audio plays
 * in real time at 8 bytes per ms from the moment it arrives if nothing was playing, is buffered
 * when it arrives faster, and pauses when the buffer runs dry; a mark is echoed when everything
 * queued before it has played (at once if nothing was buffered); `clear` drops the buffer and
 * echoes every pending mark immediately. Each accepted message is applied at its `received` atMs,
 * so replaying `received` through a TwilioPlayback reproduces this caller's playback exactly. One
 * timer, armed for the instant the next mark comes due, sends the echoes; nothing polls.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import WebSocket, { type RawData } from 'ws';
import {
  isStrictBase64,
  type TwilioInbound,
  type TwilioMarkEcho,
  type TwilioMedia,
  type TwilioOutbound,
  type TwilioStart,
  type TwilioStop,
} from '../twilio/messages.js';
import { FRAME_BYTES, FRAME_MS, MULAW_BYTES_PER_MS } from '../audio/wire-format.js';
import { MULAW_SILENCE } from '../audio/g711.js';
import { TwilioPlayback, type PlaybackEcho } from './twilio-playback.js';
import { isJsonObject } from '../util/json.js';

const BYTES_PER_MS = MULAW_BYTES_PER_MS;
/** How long hangUp() waits for the server's half of the close handshake before dropping the TCP connection. */
const CLOSE_HANDSHAKE_TIMEOUT_MS = 1000;
const DEFAULT_WAIT_TIMEOUT_MS = 5000;

/**
 * When a scripted segment starts. Segments run one after another (one mouth): a segment's
 * condition is only watched once the previous segment has been fully spoken, and speech always
 * begins on a 20 ms frame boundary.
 */
export type SegmentStart =
  /** At this stream time (ms since stream start), or at once if that time has passed. */
  | { atMs: number }
  /** This long after the previous segment's last frame (after stream start for the first segment). */
  | { afterPreviousMs: number }
  /**
   * Once the caller has heard this much agent audio since the previous segment ended: barges in
   * mid-answer. [question, {afterHeardMs: 1500}, {afterHeardMs: 1500}] talks over every answer.
   */
  | { afterHeardMs: number }
  /**
   * Once some agent audio has played since the previous segment ended and playback has then been
   * idle for this long: a polite caller who waits for the answer to finish.
   */
  | { afterAgentQuietMs: number };

export interface CallerSegment {
  /** 8 kHz mu-law speech. */
  audio: Uint8Array;
  start: SegmentStart;
  /** Shows up in `speech` records; defaults to `segment-N`. */
  label?: string;
}

export interface SimulatedCallerOptions {
  /** e.g. ws://127.0.0.1:PORT/media-stream */
  url: string;
  /** Extra handshake headers, e.g. x-twilio-signature. */
  headers?: Record<string, string>;
  /** Defaults: 'CA' / 'MZ' / 'AC' + 32 random hex digits. */
  callSid?: string;
  streamSid?: string;
  accountSid?: string;
  customParameters?: Record<string, string>;
  /** Caller speech (8 kHz mu-law), spoken first, after leadingSilenceMs. */
  audio?: Uint8Array;
  /** Silence before `audio` (rounded up to whole 20 ms frames). Default 0. */
  leadingSilenceMs?: number;
  /** Further speech, spoken after `audio`, each when its start condition holds. */
  segments?: CallerSegment[];
  /**
   * Once all speech (audio, segments and speak() calls) has been sent, keep sending silence for
   * this long, then send `stop` and close. Default: stream silence until hangUp().
   */
  trailingSilenceMs?: number;
  /**
   * Keep the message history (`received`, `sent`) and the heard audio (heardAudio()). Default
   * true. False for long load runs, where they would grow without bound: waitFor() then only sees
   * messages that arrive after it is called, and heardAudio() throws. Nothing else changes.
   */
  record?: boolean;
  /** Told about playback as it happens, with CLOCK_MONOTONIC timestamps. Default none (no timestamps taken). */
  observer?: SimulatedCallerObserver;
}

/**
 * Observation hooks for benchmarks. `hrtime` is process.hrtime.bigint() (CLOCK_MONOTONIC, comparable
 * across processes on one machine) taken when the frame's message event fired, before parsing;
 * `atMs` is the same instant on the stream timeline. Called synchronously; must not throw.
 */
export interface SimulatedCallerObserver {
  /** The `start` message was sent: stream time 0 is this instant. */
  onStreamStart?(o: { hrtime: bigint }): void;
  /** A valid `media` message was queued for playback. */
  onMedia?(o: MediaObservation): void;
  /** A valid `clear` arrived. */
  onClear?(o: ClearObservation): void;
  /** A stretch of playback ended: drained, cut by a clear, or cut by the end of the call. */
  onPlayback?(o: PlaybackObservation): void;
  /** A mark echo was sent. */
  onMarkEcho?(o: MarkEchoObservation): void;
}

export interface MarkEchoObservation {
  /** just after the echo was handed to the socket */
  hrtime: bigint;
  /** stream ms when it was sent */
  atMs: number;
  /** stream ms when Twilio would have sent it (playback reached the mark, or the clear came) */
  dueMs: number;
  cause: PlaybackEcho['cause'];
}

export interface MediaObservation {
  hrtime: bigint;
  atMs: number;
  /** decoded payload bytes (8 per ms) */
  bytes: number;
  /**
   * Position in the played-byte count (playedBytesTotal()) at which this payload's first byte
   * plays, unless a clear drops it first. Audio cleared before it played never counts, so the
   * position stays true across clears.
   */
  startsAtPlayedByte: number;
}

export interface ClearObservation {
  hrtime: bigint;
  atMs: number;
  /** playedBytesTotal() when the clear arrived */
  playedBytes: number;
  /** queued bytes the clear dropped */
  droppedBytes: number;
}

export interface PlaybackObservation {
  /** stream times (ms) the stretch played from and to */
  startMs: number;
  endMs: number;
  end: 'drained' | 'cleared' | 'call-ended';
}

export interface ReceivedMessage {
  /** ms since stream start (when the message event fired). */
  atMs: number;
  /** The text frame as received; for binary frames, the bytes as base64. */
  raw: string;
  binary: boolean;
  /** JSON.parse(raw) for text frames that are JSON; undefined otherwise. */
  parsed: unknown;
  /** Set only when the frame was a valid outbound message that Twilio would accept. */
  message?: TwilioOutbound;
}

export interface SentMessage {
  atMs: number;
  raw: string;
  message: TwilioInbound;
}

export interface ProtocolError {
  atMs: number;
  /** 31950: binary frame. 31951: anything else Twilio rejects (bad JSON, fields, streamSid, payload). */
  code: 31950 | 31951;
  detail: string;
}

export interface MarkEcho {
  atMs: number;
  name: string;
  /** played: playback reached it; cleared: echoed by `clear`; idle: nothing was queued when it arrived. */
  cause: 'played' | 'cleared' | 'idle';
  /**
   * Outbound bytes the caller had heard at the mark: for 'played', exactly the audio queued before
   * it; for 'cleared', what had played when the clear arrived.
   */
  playedBytes: number;
}

export interface SpeechRecord {
  label: string;
  /** Stream time of the first frame carrying this speech. */
  startMs: number;
  /** Stream time just after its last byte (set once fully sent). */
  endMs?: number;
  /** Outbound bytes the caller had heard when this speech began. */
  heardBytesAtStart: number;
}

export type CallEndReason = 'hangup' | 'completed' | 'server-closed' | 'error';

interface QueuedSpeech {
  audio: Uint8Array;
  start: SegmentStart;
  label: string;
  resolve?: (record: SpeechRecord) => void;
  reject?: (err: Error) => void;
}

interface ActiveSpeech {
  item: QueuedSpeech;
  record: SpeechRecord;
  offset: number;
}

interface Waiter {
  pred: (m: ReceivedMessage) => boolean;
  resolve: (m: ReceivedMessage) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

function sid(prefix: string): string {
  return prefix + randomBytes(16).toString('hex');
}

function checkMs(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): string | undefined {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) return `unknown field "${where}${k}"`;
  return undefined;
}

export class SimulatedCaller {
  readonly callSid: string;
  readonly streamSid: string;
  readonly accountSid: string;

  readonly received: ReceivedMessage[] = [];
  readonly sent: SentMessage[] = [];
  readonly protocolErrors: ProtocolError[] = [];
  readonly marksEchoed: MarkEcho[] = [];
  /** Stream times of each valid `clear`. */
  readonly clears: number[] = [];
  /** Each stretch of caller speech, in order. */
  readonly speech: SpeechRecord[] = [];
  /** Resolves when the call is over: stop sent and socket closed, server closed it, or connecting failed. */
  readonly done: Promise<void>;

  /** Close code, when the server closed the socket. */
  closeCode?: number;
  closeReason?: string;
  /** HTTP status when the server refused the WebSocket upgrade. */
  handshakeStatus?: number;
  endReason?: CallEndReason;
  error?: Error;

  private readonly opts: SimulatedCallerOptions;
  private readonly record: boolean;
  private readonly observer: SimulatedCallerObserver | undefined;
  private ws?: WebSocket;
  private startCalled = false;
  /** performance.now() at the stream start; undefined until `start` is sent. */
  private t0?: number;
  private ended = false;
  /** Stream time the stream stopped at (playback froze); undefined while it runs. */
  private endMs?: number;
  private seq = 0;
  private resolveDone!: () => void;
  private hangUpPromise?: Promise<void>;
  private closeFallback?: NodeJS.Timeout;

  // Inbound (caller -> server) stream.
  private frameTimer?: NodeJS.Timeout;
  private nextFrame = 0;
  private readonly speechQueue: QueuedSpeech[] = [];
  private activeSpeech?: ActiveSpeech;
  /** Stream time and heard bytes when the last speech ended (stream start before any speech). */
  private lastSpeechEndMs = 0;
  private heardAtLastSpeechEnd = 0;

  // Outbound (server -> caller) playback.
  private timeline = new Uint8Array(0);
  private readonly playback: TwilioPlayback;
  private markTimer?: NodeJS.Timeout;
  /** When the armed mark timer is due (stream ms). */
  private markTimerDueMs?: number;
  private readonly waiters = new Set<Waiter>();

  constructor(opts: SimulatedCallerOptions) {
    if (typeof opts.url !== 'string' || opts.url === '') throw new TypeError('url is required');
    checkMs('leadingSilenceMs', opts.leadingSilenceMs);
    checkMs('trailingSilenceMs', opts.trailingSilenceMs);
    if (opts.audio !== undefined && !(opts.audio instanceof Uint8Array)) throw new TypeError('audio must be a Uint8Array');
    this.opts = opts;
    this.record = opts.record ?? true;
    this.observer = opts.observer;
    this.playback = new TwilioPlayback({ onStretch: (s) => this.observer?.onPlayback?.(s) });
    this.callSid = opts.callSid ?? sid('CA');
    this.streamSid = opts.streamSid ?? sid('MZ');
    this.accountSid = opts.accountSid ?? sid('AC');

    if (opts.audio) {
      this.speechQueue.push({ audio: opts.audio, start: { atMs: opts.leadingSilenceMs ?? 0 }, label: 'audio' });
    }
    (opts.segments ?? []).forEach((seg, i) => {
      if (!(seg.audio instanceof Uint8Array)) throw new TypeError(`segments[${i}].audio must be a Uint8Array`);
      const s = seg.start;
      const v = 'atMs' in s ? s.atMs : 'afterPreviousMs' in s ? s.afterPreviousMs : 'afterHeardMs' in s ? s.afterHeardMs : s.afterAgentQuietMs;
      checkMs(`segments[${i}].start`, v);
      this.speechQueue.push({ audio: seg.audio, start: s, label: seg.label ?? `segment-${i}` });
    });

    this.done = new Promise<void>((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** Connect, send `connected` and `start`, and begin streaming media frames in real time. */
  start(): Promise<void> {
    if (this.startCalled) return Promise.reject(new Error('start() may only be called once'));
    this.startCalled = true;
    if (this.ended) return Promise.reject(new Error('call already ended'));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.opts.url, { headers: this.opts.headers ?? {} });
      } catch (err) {
        // A malformed URL throws synchronously; `done` must still settle.
        this.error = err instanceof Error ? err : new Error(String(err));
        this.finish('error');
        reject(this.error);
        return;
      }
      this.ws = ws;

      ws.on('unexpected-response', (_req, res) => {
        this.handshakeStatus = res.statusCode;
        res.resume();
        ws.terminate();
      });
      ws.on('open', () => {
        settled = true;
        this.beginStream();
        resolve();
      });
      ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
      ws.on('error', (err) => {
        const e = this.handshakeStatus !== undefined ? new Error(`WebSocket upgrade refused with HTTP ${this.handshakeStatus}`) : err;
        this.error ??= e;
        if (!settled) {
          settled = true;
          this.finish('error');
          reject(e);
        }
      });
      ws.on('close', (code, reason) => {
        const weClosed = this.hangUpPromise !== undefined;
        if (!weClosed && !this.ended) {
          this.closeCode = code;
          this.closeReason = reason.toString('utf8');
        }
        this.finish(weClosed ? (this.endReason ?? 'hangup') : 'server-closed');
        if (!settled) {
          settled = true;
          reject(this.error ?? new Error(`socket closed (${code}) before it opened`));
        }
      });
    });
  }

  /** Send `stop` and close the socket (1000). Idempotent; resolves once the socket has closed. */
  hangUp(): Promise<void> {
    return this.endCall('hangup');
  }

  /**
   * Speak more audio as soon as any earlier speech has finished. Resolves with its record once
   * its last frame has been sent; rejects if the call ends first.
   */
  speak(audio: Uint8Array, label?: string): Promise<SpeechRecord> {
    if (this.ended) return Promise.reject(new Error('call is over'));
    return new Promise<SpeechRecord>((resolve, reject) => {
      if (!(audio instanceof Uint8Array)) throw new TypeError('audio must be a Uint8Array');
      this.speechQueue.push({ audio, start: { afterPreviousMs: 0 }, label: label ?? 'speak', resolve, reject });
    });
  }

  /** Send a DTMF digit, as Twilio does when the caller presses a key. */
  sendDtmf(digit: string): void {
    if (this.t0 === undefined || this.ended) throw new Error('stream is not running');
    if (!/^[0-9*#A-D]$/.test(digit)) throw new RangeError(`invalid DTMF digit "${digit}"`);
    this.send({ event: 'dtmf', sequenceNumber: this.nextSeq(), streamSid: this.streamSid, dtmf: { track: 'inbound_track', digit } });
  }

  /** What the caller heard so far (or until the call ended): 8 kHz mu-law on the stream timeline. */
  heardAudio(): Uint8Array {
    if (!this.record) throw new Error('heardAudio() needs the caller to record (record: false was set)');
    const end = Math.max(0, Math.floor(this.clockMs() * BYTES_PER_MS));
    const out = new Uint8Array(end).fill(MULAW_SILENCE);
    out.set(this.timeline.subarray(0, Math.min(end, this.timeline.length)));
    return out;
  }

  /** Outbound audio bytes played to the caller so far (cleared audio never counts). */
  playedBytesTotal(): number {
    return this.playback.playedBytes(this.clockMs());
  }

  /** Outbound audio bytes queued but not yet played. */
  bufferedBytes(): number {
    return this.playback.bufferedBytes(this.clockMs());
  }

  /** Milliseconds since the stream start (0 before it). */
  nowMs(): number {
    return this.t0 === undefined ? 0 : performance.now() - this.t0;
  }

  /** First already-received or future message matching pred; rejects on timeout or when the call ends. */
  waitFor(pred: (m: ReceivedMessage) => boolean, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS): Promise<ReceivedMessage> {
    const hit = this.received.find(pred);
    if (hit) return Promise.resolve(hit);
    if (this.ended) return Promise.reject(new Error('waitFor: call ended before a matching message arrived'));
    return new Promise<ReceivedMessage>((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`waitFor: no matching message within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  // ---------------------------------------------------------------- stream lifecycle

  private beginStream(): void {
    this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    this.t0 = performance.now();
    this.observer?.onStreamStart?.({ hrtime: process.hrtime.bigint() });
    const start: TwilioStart = {
      event: 'start',
      sequenceNumber: this.nextSeq(),
      streamSid: this.streamSid,
      start: {
        streamSid: this.streamSid,
        accountSid: this.accountSid,
        callSid: this.callSid,
        tracks: ['inbound'],
        customParameters: { ...(this.opts.customParameters ?? {}) },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
    };
    this.send(start);
    this.pumpFrames();
  }

  private endCall(reason: CallEndReason): Promise<void> {
    if (this.hangUpPromise) return this.hangUpPromise;
    const ws = this.ws;
    if (this.ended || !ws) {
      this.finish(reason);
      this.hangUpPromise = this.done;
      return this.done;
    }
    this.endReason = reason;
    if (ws.readyState === WebSocket.OPEN && this.t0 !== undefined) {
      const stop: TwilioStop = {
        event: 'stop',
        sequenceNumber: this.nextSeq(),
        streamSid: this.streamSid,
        stop: { accountSid: this.accountSid, callSid: this.callSid },
      };
      this.send(stop);
    }
    // Playback and timers stop now, not when the close handshake completes: the caller is gone.
    this.stopStreaming();
    this.hangUpPromise = this.done;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
      ws.close(1000);
      this.closeFallback = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_TIMEOUT_MS);
    } else if (ws.readyState === WebSocket.CLOSED) {
      this.finish(reason);
    }
    return this.done;
  }

  /** Freeze the playback position and stop every timer; the stream is no longer live. */
  private stopStreaming(): void {
    if (this.endMs === undefined) {
      this.endMs = this.t0 === undefined ? 0 : performance.now() - this.t0;
      this.playback.end(this.endMs);
    }
    if (this.frameTimer) clearTimeout(this.frameTimer);
    this.frameTimer = undefined;
    this.disarmMarkTimer();
  }

  private finish(reason: CallEndReason): void {
    if (this.ended) return;
    this.stopStreaming();
    this.ended = true;
    this.endReason ??= reason;
    if (this.closeFallback) clearTimeout(this.closeFallback);
    const err = new Error(`call ended (${this.endReason})`);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error('waitFor: call ended before a matching message arrived'));
    }
    this.waiters.clear();
    if (this.activeSpeech) this.speechQueue.unshift(this.activeSpeech.item);
    this.activeSpeech = undefined;
    for (const item of this.speechQueue.splice(0)) item.reject?.(err);
    this.resolveDone();
  }

  private nextSeq(): string {
    this.seq += 1;
    return String(this.seq);
  }

  private send(message: TwilioInbound): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const raw = JSON.stringify(message);
    ws.send(raw);
    if (this.record) this.sent.push({ atMs: this.nowMs(), raw, message });
  }

  /** Playback clock: ms since stream start, frozen once the call ended. */
  private clockMs(): number {
    if (this.endMs !== undefined) return this.endMs;
    if (this.t0 === undefined) return 0;
    return performance.now() - this.t0;
  }

  // ---------------------------------------------------------------- inbound media (caller speech)

  /**
   * Send every frame that is due. Frame k is due at t0 + 20k: scheduling against the stream start
   * keeps the long-run rate exact however late individual timers fire; a stalled event loop is
   * caught up with a burst, as Twilio's own sender does.
   */
  private pumpFrames(): void {
    this.frameTimer = undefined;
    if (this.ended || this.endMs !== undefined || this.t0 === undefined) return;
    while (this.nextFrame * FRAME_MS <= performance.now() - this.t0) {
      const timestampMs = this.nextFrame * FRAME_MS;
      if (this.trailingSilenceOver(timestampMs)) {
        void this.endCall('completed');
        return;
      }
      this.sendFrame(timestampMs);
      this.nextFrame += 1;
    }
    const dueIn = this.t0 + this.nextFrame * FRAME_MS - performance.now();
    this.frameTimer = setTimeout(() => this.pumpFrames(), Math.max(1, Math.ceil(dueIn)));
  }

  private trailingSilenceOver(timestampMs: number): boolean {
    const trailing = this.opts.trailingSilenceMs;
    if (trailing === undefined || this.activeSpeech || this.speechQueue.length > 0) return false;
    return timestampMs >= this.lastSpeechEndMs + trailing;
  }

  private sendFrame(timestampMs: number): void {
    const frame = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
    if (!this.activeSpeech) this.maybeStartSpeech(timestampMs);
    const active = this.activeSpeech;
    if (active) {
      const n = Math.min(FRAME_BYTES, active.item.audio.length - active.offset);
      frame.set(active.item.audio.subarray(active.offset, active.offset + n));
      active.offset += n;
      if (active.offset >= active.item.audio.length) {
        const endMs = timestampMs + n / BYTES_PER_MS;
        active.record.endMs = endMs;
        this.lastSpeechEndMs = endMs;
        this.heardAtLastSpeechEnd = this.playedBytesTotal();
        this.activeSpeech = undefined;
        active.item.resolve?.(active.record);
      }
    }
    const media: TwilioMedia = {
      event: 'media',
      sequenceNumber: this.nextSeq(),
      streamSid: this.streamSid,
      media: {
        track: 'inbound',
        chunk: String(this.nextFrame + 1),
        timestamp: String(timestampMs),
        payload: Buffer.from(frame).toString('base64'),
      },
    };
    this.send(media);
  }

  private maybeStartSpeech(timestampMs: number): void {
    const next = this.speechQueue[0];
    if (!next || !this.speechStartDue(next.start, timestampMs)) return;
    this.speechQueue.shift();
    const record: SpeechRecord = { label: next.label, startMs: timestampMs, heardBytesAtStart: this.playedBytesTotal() };
    this.speech.push(record);
    if (next.audio.length === 0) {
      record.endMs = timestampMs;
      this.lastSpeechEndMs = timestampMs;
      this.heardAtLastSpeechEnd = record.heardBytesAtStart;
      next.resolve?.(record);
      this.maybeStartSpeech(timestampMs);
      return;
    }
    this.activeSpeech = { item: next, record, offset: 0 };
  }

  private speechStartDue(start: SegmentStart, timestampMs: number): boolean {
    if ('atMs' in start) return timestampMs >= start.atMs;
    if ('afterPreviousMs' in start) return timestampMs >= this.lastSpeechEndMs + start.afterPreviousMs;
    const now = this.clockMs();
    const heardSince = this.playback.playedBytes(now) - this.heardAtLastSpeechEnd;
    if ('afterHeardMs' in start) return heardSince >= start.afterHeardMs * BYTES_PER_MS;
    if (heardSince <= 0) return false;
    const idleSince = this.playback.idleSinceMs(now);
    return idleSince !== undefined && now - idleSince >= start.afterAgentQuietMs;
  }

  // ---------------------------------------------------------------- outbound messages (server -> caller)

  private onMessage(data: RawData, isBinary: boolean): void {
    const hrtime = this.observer ? process.hrtime.bigint() : 0n;
    const atMs = this.nowMs();
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (isBinary) {
      const entry: ReceivedMessage = { atMs, raw: buf.toString('base64'), binary: true, parsed: undefined };
      if (this.record) this.received.push(entry);
      this.protocolError(atMs, 31950, `binary frame of ${buf.length} bytes; Twilio accepts text frames only`);
      return;
    }
    const raw = buf.toString('utf8');
    let parsed: unknown;
    let isJson = true;
    try {
      parsed = JSON.parse(raw);
    } catch {
      isJson = false;
    }
    const entry: ReceivedMessage = { atMs, raw, binary: false, parsed };
    if (this.record) this.received.push(entry);
    // After `stop` Twilio has left the stream: nothing plays and nothing is judged any more.
    if (this.endMs === undefined) {
      const result = isJson ? this.validate(parsed) : { error: 'frame is not valid JSON' };
      if ('error' in result) {
        this.protocolError(atMs, 31951, result.error);
      } else {
        entry.message = result.message;
        this.apply(result.message, hrtime, atMs);
      }
    }
    this.notifyWaiters(entry);
  }

  private protocolError(atMs: number, code: 31950 | 31951, detail: string): void {
    this.protocolErrors.push({ atMs, code, detail });
  }

  private notifyWaiters(entry: ReceivedMessage): void {
    for (const w of [...this.waiters]) {
      if (w.pred(entry)) {
        clearTimeout(w.timer);
        this.waiters.delete(w);
        w.resolve(entry);
      }
    }
  }

  /** Twilio's acceptance rules for messages to it: exact shapes, no extra fields, our streamSid. */
  private validate(v: unknown): { message: TwilioOutbound } | { error: string } {
    if (this.t0 === undefined) return { error: 'message sent before the start event' };
    if (!isJsonObject(v)) return { error: 'message is not a JSON object' };
    const event = v['event'];
    if (typeof event !== 'string') return { error: 'event is missing or not a string' };
    if (event !== 'media' && event !== 'mark' && event !== 'clear') return { error: `unknown event "${event.slice(0, 40)}"` };
    const allowed = event === 'clear' ? ['event', 'streamSid'] : ['event', 'streamSid', event];
    const extra = onlyKeys(v, allowed, '');
    if (extra) return { error: `${event}: ${extra}` };
    const streamSid = v['streamSid'];
    if (typeof streamSid !== 'string') return { error: `${event}: streamSid is missing or not a string` };
    if (streamSid !== this.streamSid) return { error: `${event}: streamSid "${streamSid.slice(0, 40)}" is not this stream's` };
    if (event === 'clear') return { message: { event, streamSid } };

    const body = v[event];
    if (!isJsonObject(body)) return { error: `${event}: ${event} is missing or not an object` };
    if (event === 'media') {
      const bad = onlyKeys(body, ['payload'], 'media.');
      if (bad) return { error: `media: ${bad}` };
      const payload = body['payload'];
      if (typeof payload !== 'string') return { error: 'media: media.payload is missing or not a string' };
      if (!isStrictBase64(payload)) return { error: 'media: media.payload is not valid base64' };
      return { message: { event, streamSid, media: { payload } } };
    }
    const bad = onlyKeys(body, ['name'], 'mark.');
    if (bad) return { error: `mark: ${bad}` };
    const name = body['name'];
    if (typeof name !== 'string') return { error: 'mark: mark.name is missing or not a string' };
    return { message: { event, streamSid, mark: { name } } };
  }

  /** Twilio acts on the message at atMs, the instant recorded in `received`. */
  private apply(message: TwilioOutbound, hrtime: bigint, atMs: number): void {
    switch (message.event) {
      case 'media': {
        const bytes = new Uint8Array(Buffer.from(message.media.payload, 'base64'));
        const appended = this.playback.append(bytes.length, atMs);
        this.sendEchoes(appended.echoes);
        if (bytes.length > 0) {
          if (this.record) {
            const at = appended.startsAtMs * BYTES_PER_MS;
            this.ensureTimeline(at + bytes.length);
            this.timeline.set(bytes, at);
          }
          this.observer?.onMedia?.({ hrtime, atMs, bytes: bytes.length, startsAtPlayedByte: appended.startsAtPlayedByte });
        }
        break;
      }
      case 'mark':
        this.sendEchoes(this.playback.mark(message.mark.name, atMs));
        break;
      case 'clear': {
        const cleared = this.playback.clear(atMs);
        this.clears.push(atMs);
        if (this.record && cleared.droppedBytes > 0) {
          const from = cleared.stoppedAtMs * BYTES_PER_MS;
          this.timeline.fill(MULAW_SILENCE, from, from + cleared.droppedBytes);
        }
        this.sendEchoes(cleared.echoes);
        this.observer?.onClear?.({ hrtime, atMs, playedBytes: cleared.playedBytes, droppedBytes: cleared.droppedBytes });
        break;
      }
    }
    this.armMarkTimer();
  }

  // ---------------------------------------------------------------- mark echoes

  /** One timer, armed for the exact instant the next pending mark comes due. */
  private armMarkTimer(): void {
    const due = this.t0 === undefined || this.endMs !== undefined ? null : this.playback.nextEchoAtMs();
    if (due !== null && due === this.markTimerDueMs && this.markTimer) return;
    this.disarmMarkTimer();
    if (due === null) return;
    this.markTimerDueMs = due;
    // Node timers can fire up to ~1 ms early against performance.now(); the timer re-arms if so.
    this.markTimer = setTimeout(
      () => {
        this.markTimer = undefined;
        this.markTimerDueMs = undefined;
        this.sendEchoes(this.playback.advance(this.clockMs()));
        this.armMarkTimer();
      },
      Math.max(1, Math.ceil(due - this.nowMs())),
    );
  }

  private disarmMarkTimer(): void {
    if (this.markTimer) clearTimeout(this.markTimer);
    this.markTimer = undefined;
    this.markTimerDueMs = undefined;
  }

  private sendEchoes(echoes: readonly PlaybackEcho[]): void {
    for (const e of echoes) {
      const echo: TwilioMarkEcho = { event: 'mark', sequenceNumber: this.nextSeq(), streamSid: this.streamSid, mark: { name: e.name } };
      this.send(echo);
      const atMs = this.nowMs();
      this.marksEchoed.push({ atMs, name: e.name, cause: e.cause, playedBytes: e.playedBytes });
      this.observer?.onMarkEcho?.({ hrtime: process.hrtime.bigint(), atMs, dueMs: e.atMs, cause: e.cause });
    }
  }

  private ensureTimeline(length: number): void {
    if (length <= this.timeline.length) return;
    const next = new Uint8Array(Math.max(length, this.timeline.length * 2, FRAME_BYTES * 50)).fill(MULAW_SILENCE);
    next.set(this.timeline);
    this.timeline = next;
  }
}
