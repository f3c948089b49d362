import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fileRecorderFactory } from '../../src/call/recorder.js';
import type { CallRecorder, CaptureHeader, CaptureLine } from '../../src/call/recorder.js';
import { loadReplayInput } from '../../src/tooling/replay/input.js';
import { eventually, sentOfType, startRig } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadCallerMulaw } from '../support/fixtures.js';

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

function readJsonl(path: string): unknown[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
}

describe('RECORD_CALLS capture', () => {
  it('writes the inbound Twilio messages with arrival times and the upstream log without audio', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-capture-'));
    const errors: string[] = [];
    rig = await startRig({ upstream: { speed: Number.POSITIVE_INFINITY }, recorderFactory: fileRecorderFactory(dir, (e) => errors.push(e.message)) });
    const customParameters = { customer: 'c-42', greeting: 'Grüße, "hi" & <bye>' };
    const caller = rig.caller({ audio: loadCallerMulaw('caller-yes'), customParameters });
    await caller.start();
    await eventually(() => sentOfType(rig!.fake, 1, 'response.done').length === 1, 'answered');
    await caller.hangUp();
    await eventually(() => rig!.server.calls.size === 0, 'call closed');

    expect(readdirSync(dir).sort()).toEqual([`${caller.callSid}.realtime.jsonl`, `${caller.callSid}.twilio.jsonl`]);
    const [twHeader, ...twLines] = readJsonl(join(dir, `${caller.callSid}.twilio.jsonl`)) as [CaptureHeader, ...CaptureLine[]];
    expect(twHeader).toMatchObject({ kind: 'header', format: 'callbridge.capture/1', stream: 'twilio', callSid: caller.callSid, streamSid: caller.streamSid });
    const events = twLines.map((l) => (l.msg as { event: string }).event);
    expect(events[0]).toBe('connected');
    expect(events[1]).toBe('start');
    expect(events.at(-1)).toBe('stop');
    // every inbound message, audio kept (it is the input of a replay), in arrival order
    expect(twLines).toHaveLength(caller.sent.length);
    const media = twLines.filter((l) => (l.msg as { event: string }).event === 'media');
    expect((media[0]?.msg as { media: { payload: string } }).media.payload.length).toBeGreaterThan(200);
    for (let i = 1; i < twLines.length; i++) expect(twLines[i]!.t).toBeGreaterThanOrEqual(twLines[i - 1]!.t);

    const [rtHeader, ...rtLines] = readJsonl(join(dir, `${caller.callSid}.realtime.jsonl`)) as [CaptureHeader, ...CaptureLine[]];
    expect(rtHeader.stream).toBe('realtime');
    const first = rtLines.find((l) => l.dir === 'out');
    expect((first?.msg as { type: string }).type).toBe('session.update');
    const append = rtLines.find((l) => (l.msg as { type: string }).type === 'input_audio_buffer.append');
    expect((append?.msg as { audio: unknown }).audio).toEqual({ elidedBytes: 960 });
    const delta = rtLines.find((l) => (l.msg as { type: string }).type === 'response.output_audio.delta');
    expect((delta?.msg as { delta: unknown }).delta).toMatchObject({ elidedBytes: expect.any(Number) });
    expect(rtLines.some((l) => l.dir === 'in' && (l.msg as { type: string }).type === 'response.done')).toBe(true);
    expect(errors).toEqual([]);

    // The capture is a replay input as it stands: the caller's audio and parameters come back.
    const input = loadReplayInput(join(dir, `${caller.callSid}.twilio.jsonl`));
    const sentAudio = Buffer.concat(caller.sent.filter((m) => m.message.event === 'media').map((m) => Buffer.from((m.message as { media: { payload: string } }).media.payload, 'base64')));
    expect(input.kind).toBe('capture');
    expect(input.name).toBe(caller.callSid);
    expect(input.durationMs).toBeGreaterThan(1000);
    expect(input.durationMs).toBeCloseTo(sentAudio.length / 8, 0);
    expect(Buffer.from(input.audio).equals(sentAudio)).toBe(true);
    expect(input.customParameters).toEqual(customParameters);
    expect(input.warnings).toEqual([]);
  });

  it('a capture that throws while a call runs ends that call only: 1011, the other call and the process carry on', async () => {
    const quiet: CallRecorder = { twilio: () => undefined, realtime: () => undefined, end: () => undefined };
    const broken: CallRecorder = {
      ...quiet,
      twilio: (dir) => {
        if (dir === 'out') throw new Error('disk full');
      },
    };
    const brokenSid = 'CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    rig = await startRig({ upstream: { speed: Number.POSITIVE_INFINITY }, recorderFactory: (ids) => (ids.callSid === brokenSid ? broken : quiet) });
    const failing = rig.caller({ audio: loadCallerMulaw('caller-yes'), callSid: brokenSid });
    const healthy = rig.caller({ audio: loadCallerMulaw('caller-yes') });
    await Promise.all([failing.start(), healthy.start()]);
    await failing.done;
    expect(failing.closeCode).toBe(1011);
    // 500 ms of the answer played to the other caller
    await eventually(() => healthy.playedBytesTotal() >= 500 * 8, 'the other call answered');
    expect(healthy.closeCode).toBeUndefined();
    await healthy.hangUp();
    expect(rig.logs.find((l) => l.msg === 'call failed; ending call')).toMatchObject({ level: 'error', callSid: brokenSid });
    expect((await fetch(`${rig.baseUrl}/healthz`)).status).toBe(200);
    await eventually(() => rig!.server.calls.size === 0, 'both calls released');
    const metrics = await rig.server.metrics.render();
    expect(metrics).toMatch(/^callbridge_calls_total\{outcome="error"\} 1$/m);
    expect(metrics).toMatch(/^callbridge_active_calls 0$/m);
  });
});
