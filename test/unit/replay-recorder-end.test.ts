import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CAPTURE_END_TYPE, fileRecorderFactory, MemoryRecording } from '../../src/call/recorder.js';
import { loadReplayInput } from '../../src/tooling/replay/input.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('recorder end line', () => {
  it('MemoryRecording keeps the reason and ends its realtime lines with it, once', () => {
    const r = new MemoryRecording({ callSid: 'CA1', streamSid: 'MZ1' }, 0);
    r.realtime('in', { type: 'response.done' }, 10);
    r.end({ reason: 'agent-ended', atMs: 42 });
    r.end({ reason: 'twilio-closed', atMs: 50 });
    expect(r.ended).toBe(true);
    expect(r.endReason).toBe('agent-ended');
    expect(r.realtimeLines.at(-1)).toEqual({ atMs: 42, dir: 'out', msg: { type: CAPTURE_END_TYPE, reason: 'agent-ended' } });
    expect(r.realtimeLines).toHaveLength(2);
  });

  it('end() without a reason still ends (the older call)', () => {
    const r = new MemoryRecording({ callSid: 'CA1', streamSid: 'MZ1' }, 0);
    r.end();
    expect(r.endReason).toBeNull();
    expect(r.realtimeLines[0]?.msg).toEqual({ type: CAPTURE_END_TYPE, reason: null });
  });

  it('the file capture writes the reason as the last realtime line; the Twilio file stays a replay input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'replay-recorder-'));
    dirs.push(dir);
    const errors: string[] = [];
    const rec = fileRecorderFactory(dir, (e) => errors.push(e.message))({ callSid: 'CA7', streamSid: 'MZ7' }, 100);
    const payload = Buffer.alloc(160, 0xff).toString('base64');
    rec.twilio('in', { event: 'connected', protocol: 'Call', version: '1.0.0' }, 100);
    rec.twilio('in', {
      event: 'start',
      sequenceNumber: '1',
      streamSid: 'MZ7',
      start: { streamSid: 'MZ7', accountSid: 'AC7', callSid: 'CA7', tracks: ['inbound'], customParameters: {}, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } },
    }, 101);
    rec.twilio('in', { event: 'media', sequenceNumber: '2', streamSid: 'MZ7', media: { track: 'inbound', chunk: '1', timestamp: '0', payload } }, 120);
    rec.realtime('out', { type: 'session.update', session: {} }, 105);
    rec.end({ reason: 'agent-ended', atMs: 300 });
    await settle();

    const rt = readFileSync(join(dir, 'CA7.realtime.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rt.at(-1)).toEqual({ t: 200, dir: 'out', msg: { type: CAPTURE_END_TYPE, reason: 'agent-ended' } });
    const tw = readFileSync(join(dir, 'CA7.twilio.jsonl'), 'utf8').trim().split('\n');
    expect(tw).toHaveLength(4);
    expect(tw.some((l) => l.includes(CAPTURE_END_TYPE))).toBe(false);
    const input = loadReplayInput(join(dir, 'CA7.twilio.jsonl'));
    expect(input.kind).toBe('capture');
    expect(input.warnings).toEqual([]);
    expect(errors).toEqual([]);
  });
});
