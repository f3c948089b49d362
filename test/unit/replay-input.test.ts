import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulawDecode } from '../../src/audio/g711.js';
import { writeWavMulaw, writeWavPcm16 } from '../../src/tooling/audio/wav.js';
import { loadReplayInput, ReplayInputError } from '../../src/tooling/replay/input.js';
import { startFrame } from '../support/twilio-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'cb-replay-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const HEADER = { kind: 'header', format: 'callbridge.capture/1', stream: 'twilio', callSid: 'CA1', streamSid: 'MZ1', startedAt: '2026-01-01T00:00:00.000Z' };
const START = startFrame('abc');
const media = (timestampMs: number, byte: number, bytes = 160) => ({
  event: 'media',
  sequenceNumber: '2',
  streamSid: 'MZ1',
  media: { track: 'inbound', chunk: '1', timestamp: String(timestampMs), payload: Buffer.alloc(bytes, byte).toString('base64') },
});

function capture(lines: unknown[], header: unknown = HEADER): string {
  return [header, ...lines].map((l) => JSON.stringify(l)).join('\n') + '\n';
}

describe('replay input: WAV files', () => {
  it('converts any rate and channel count to 8 kHz mono mu-law', () => {
    const rate = 44_100;
    const frames = rate; // one second
    const stereo = new Int16Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      const v = Math.round(8000 * Math.sin((2 * Math.PI * 500 * i) / rate));
      stereo[2 * i] = v;
      stereo[2 * i + 1] = v;
    }
    const input = loadReplayInput(file('caller.wav', writeWavPcm16(stereo, { sampleRate: rate, channels: 2 })));
    expect(input).toMatchObject({ name: 'caller', kind: 'wav', durationMs: 1000, customParameters: {}, dtmf: [], description: 'WAV 44100 Hz, 2 ch, pcm16' });
    expect(input.audio).toHaveLength(8000);
    const pcm = new Int16Array(input.audio.length);
    mulawDecode(input.audio, pcm);
    const peak = Math.max(...pcm.subarray(1000, 7000));
    expect(peak).toBeGreaterThan(7600);
    expect(peak).toBeLessThan(8400);
  });

  it("keeps an 8 kHz mono mu-law file's bytes exactly", () => {
    const codes = Uint8Array.from({ length: 800 }, (_, i) => (i * 37) % 256);
    const input = loadReplayInput(file('mulaw.wav', writeWavMulaw(codes, { sampleRate: 8000, channels: 1 })));
    expect([...input.audio]).toEqual([...codes]);
  });

  it('names the file when the WAV is broken', () => {
    const path = file('broken.wav', Buffer.from('RIFF\x10\x00\x00\x00WAVEjunk', 'latin1'));
    expect(() => loadReplayInput(path)).toThrow(ReplayInputError);
    expect(() => loadReplayInput(path)).toThrow(path);
  });
});

describe('replay input: call captures', () => {
  it('places media by timestamp, fills gaps with silence, and keeps custom parameters and DTMF times', () => {
    const path = file(
      'CA1.twilio.jsonl',
      capture([
        { t: 1, dir: 'in', msg: { event: 'connected', protocol: 'Call', version: '1.0.0' } },
        { t: 2, dir: 'in', msg: START },
        { t: 22, dir: 'in', msg: media(0, 0x10) },
        // 40 ms skipped as silent, then one frame
        { t: 82, dir: 'in', msg: media(60, 0x20) },
        { t: 500, dir: 'in', msg: { event: 'dtmf', sequenceNumber: '5', streamSid: 'MZ1', dtmf: { track: 'inbound_track', digit: '5' } } },
        { t: 510, dir: 'in', msg: { event: 'mark', sequenceNumber: '6', streamSid: 'MZ1', mark: { name: 'x' } } },
        { t: 600, dir: 'in', msg: { event: 'stop', sequenceNumber: '7', streamSid: 'MZ1', stop: { accountSid: 'AC1', callSid: 'CA1' } } },
      ]),
    );
    const input = loadReplayInput(path);
    expect(input).toMatchObject({ name: 'CA1', kind: 'capture', durationMs: 80, customParameters: { callToken: 'abc' }, dtmf: [{ atMs: 498, digit: '5' }], warnings: [] });
    expect(input.audio).toHaveLength(640);
    expect(input.audio.subarray(0, 160).every((b) => b === 0x10)).toBe(true);
    expect(input.audio.subarray(160, 480).every((b) => b === 0xff)).toBe(true);
    expect(input.audio.subarray(480).every((b) => b === 0x20)).toBe(true);
  });

  it('skips frames that were not JSON and anything after stop, with a warning naming the line', () => {
    const path = file(
      'warn.twilio.jsonl',
      capture([
        { t: 2, dir: 'in', msg: START },
        { t: 3, dir: 'in', msg: 'garbage' },
        { t: 22, dir: 'in', msg: media(0, 0x10) },
        { t: 40, dir: 'in', msg: { event: 'stop', sequenceNumber: '7', streamSid: 'MZ1', stop: {} } },
        { t: 42, dir: 'in', msg: media(20, 0x10) },
      ]),
    );
    const input = loadReplayInput(path);
    expect(input.audio).toHaveLength(160);
    expect(input.warnings).toEqual([`${path}:3: skipped a frame that was not JSON`, `${path}:6: skipped "media" after stop`]);
  });

  it.each([
    ['a header of another format', capture([], { ...HEADER, format: 'other/9' }), ':1: capture format "other/9" is not supported'],
    ['the upstream log instead of the Twilio one', capture([], { ...HEADER, stream: 'realtime' }), ':1: this is the upstream log of a call'],
    ['no header', `${JSON.stringify({ t: 1, dir: 'in', msg: START })}\n`, ':1: not a call capture'],
    ['a line that is not JSON', `${capture([{ t: 2, dir: 'in', msg: START }])}{oops\n`, ':3: not valid JSON'],
    ['a line without t', capture([{ dir: 'in', msg: START }]), ':2: t is missing'],
    ['media before start', capture([{ t: 2, dir: 'in', msg: media(0, 1) }]), ':2: media before the start message'],
    ['a bad payload', capture([{ t: 2, dir: 'in', msg: START }, { t: 3, dir: 'in', msg: { ...media(0, 1), media: { payload: '@@@' } } }]), ':3: not a valid Twilio message: media.payload must be valid base64'],
    ['a non-Twilio media format', capture([{ t: 2, dir: 'in', msg: { ...START, start: { ...START.start, mediaFormat: { encoding: 'audio/x-alaw', sampleRate: 8000, channels: 1 } } } }]), ':2: media format audio/x-alaw'],
    ['no start', capture([{ t: 1, dir: 'in', msg: { event: 'connected', protocol: 'Call', version: '1.0.0' } }]), ': no start message'],
    ['no media', capture([{ t: 2, dir: 'in', msg: START }]), ': no media'],
  ])('rejects %s with the file and line', (_what, content, message) => {
    const path = file('bad.twilio.jsonl', content);
    expect(() => loadReplayInput(path)).toThrow(ReplayInputError);
    expect(() => loadReplayInput(path)).toThrow(`${path}${message}`);
  });

  it('rejects files that are neither, and files that do not exist', () => {
    expect(() => loadReplayInput(file('notes.txt', 'hello'))).toThrow('neither a WAV file nor a call capture');
    expect(() => loadReplayInput(join(dir, 'missing.wav'))).toThrow('cannot read');
  });
});
