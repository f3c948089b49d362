/**
 * RECORD_AUDIO: a stereo WAV per call in the folder, `<callSid>.wav` (8 kHz PCM16, the caller left,
 * what the caller heard right: src/recording/call-audio.ts), as a CallRecorder of the bridge.
 *
 * Memory stays flat whatever the call's length: finished pieces of audio (a few seconds each) are
 * streamed into a hidden temporary file in the folder as the call goes; at the end the header gets
 * its final sizes and the file its name (atomically, like the reports). Disk use is ~1.9 MB per
 * minute of call. A disk that cannot keep up (more than MAX_BUFFERED_BYTES waiting) or a write
 * error stops that call's recording, logged with the callSid; the call goes on. Streams refused
 * after their start (`unauthorized`) leave no file.
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { mulawStereoPcm16 } from '../audio/stereo.js';
import type { CallEndInfo, CallIds, CallRecorder, RecorderFactory } from '../call/recorder.js';
import type { Logger } from '../observability/logger.js';
import { isObj, obj, str } from '../report/fields.js';
import { publishFile, temporaryFile } from '../report/files.js';
import { PendingWork } from '../report/pending.js';
import { CallAudio } from './call-audio.js';
import { PCM16_WAV_HEADER_BYTES, pcm16Bytes, pcm16WavHeader } from './wav-header.js';

const FORMAT = { sampleRate: 8000, channels: 2 } as const;
/** Bytes waiting for the disk before a call's recording gives up: about 4 minutes of audio. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export interface AudioRecordings {
  factory: RecorderFactory;
  /** Waits for recordings still being finished, up to `timeoutMs` (the shutdown's). */
  flush(timeoutMs: number): Promise<boolean>;
}

export function audioRecordings(dir: string, logger: Logger): AudioRecordings {
  const finishing = new PendingWork();
  return {
    factory: (ids) => new AudioRecorder(dir, ids, logger.child({ callSid: ids.callSid, streamSid: ids.streamSid }), finishing),
    flush: (timeoutMs) => finishing.settle(timeoutMs),
  };
}

class AudioRecorder implements CallRecorder {
  private readonly tmp: string;
  private file: WriteStream | null;
  private readonly audio: CallAudio;
  /** `start` arrival on the bridge's clock: the recording's time 0. */
  private t0: number | null = null;
  private dataBytes = 0;
  private failed = false;

  constructor(
    private readonly dir: string,
    private readonly ids: CallIds,
    private readonly log: Logger,
    private readonly finishing: PendingWork,
  ) {
    this.tmp = temporaryFile(dir, ids.callSid, 'wav');
    this.file = createWriteStream(this.tmp);
    this.file.on('error', (err) => this.fail(`cannot write ${this.tmp}: ${err.message}`));
    // The sizes are not known yet: patched in when the call ends.
    this.file.write(pcm16WavHeader(FORMAT, 0));
    this.audio = new CallAudio((left, right) => this.write(left, right));
  }

  twilio(dir: 'in' | 'out', msg: unknown, atMs: number): void {
    if (this.failed || !isObj(msg)) return;
    const event = str(msg, 'event');
    if (this.t0 === null) {
      if (dir === 'in' && event === 'start') this.t0 = atMs;
      return;
    }
    const t = atMs - this.t0;
    if (event === 'media') {
      const media = obj(msg, 'media');
      const payload = str(media, 'payload');
      if (payload === null) return;
      const bytes = new Uint8Array(Buffer.from(payload, 'base64'));
      if (dir === 'in') this.audio.caller(Number(str(media, 'timestamp') ?? t), bytes);
      else this.audio.agent(t, bytes);
    } else if (dir === 'out' && event === 'clear') {
      this.audio.clear(t);
    }
    if (dir === 'in') this.audio.advance(t);
  }

  realtime(): void {
    // Only what crossed the Twilio socket is heard.
  }

  end(info?: CallEndInfo): void {
    const file = this.file;
    if (file === null) return;
    const keep = !this.failed && this.t0 !== null && info?.reason !== 'unauthorized';
    // The last pieces go out first, while the file is still this recording's.
    const lengthMs = keep && this.t0 !== null ? this.audio.finish((info?.atMs ?? this.t0) - this.t0) : 0;
    this.file = null;
    if (!keep || this.failed) {
      file.destroy();
      this.finishing.track(unlink(this.tmp).catch(() => undefined));
      return;
    }
    const stats = this.audio.stats;
    this.finishing.track(this.publish(file, lengthMs, stats.lateCallerMs, stats.droppedAheadMs));
  }

  private write(left: Uint8Array, right: Uint8Array): void {
    const file = this.file;
    if (file === null || this.failed) return;
    if (file.writableLength > MAX_BUFFERED_BYTES) {
      this.fail(`the disk is not keeping up (${file.writableLength} bytes waiting)`);
      return;
    }
    const bytes = pcm16Bytes(mulawStereoPcm16(left, right));
    this.dataBytes += bytes.byteLength;
    file.write(bytes);
  }

  private async publish(file: WriteStream, lengthMs: number, lateCallerMs: number, droppedAheadMs: number): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        file.once('error', reject);
        file.end(() => resolve());
      });
      if (this.failed) throw new Error('the recording failed during the call');
      const handle = await open(this.tmp, 'r+');
      try {
        await handle.write(pcm16WavHeader(FORMAT, this.dataBytes), 0, PCM16_WAV_HEADER_BYTES, 0);
      } finally {
        await handle.close();
      }
      const path = await publishFile(this.tmp, this.dir, this.ids.callSid, this.ids.streamSid, 'wav');
      this.log.info({ file: path, lengthMs: Math.round(lengthMs), lateCallerMs, droppedAheadMs }, 'call audio recorded');
    } catch (err) {
      this.log.error({ err: (err as Error).message, dir: this.dir }, 'call audio recording could not be written');
    } finally {
      await unlink(this.tmp).catch(() => undefined);
    }
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = true;
    this.log.error({ why }, 'call audio recording stopped; the call goes on unrecorded');
    this.file?.destroy();
  }
}
