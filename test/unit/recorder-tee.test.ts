import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MemoryRecording, teeRecorderFactory } from '../../src/call/recorder.js';
import type { CallRecorder, RecorderFactory } from '../../src/call/recorder.js';
import { createLogger } from '../../src/observability/logger.js';
import { reportRecorderFactory } from '../../src/report/recorder.js';
import type { CallReport } from '../../src/report/schema.js';

const IDS = { callSid: 'CA1', streamSid: 'MZ1' };
const START = { event: 'start', streamSid: 'MZ1', start: { callSid: 'CA1', streamSid: 'MZ1', customParameters: {} } };

describe('several recorders of a call', () => {
  it('each is told everything; one that throws is dropped for the call and reported, the others go on', () => {
    const memory: MemoryRecording[] = [];
    const keep: RecorderFactory = (ids, at) => {
      const r = new MemoryRecording(ids, at);
      memory.push(r);
      return r;
    };
    const breaks: RecorderFactory = (): CallRecorder => ({
      twilio: () => {
        throw new Error('disk on fire');
      },
      realtime: () => undefined,
      end: () => undefined,
    });
    const refuses: RecorderFactory = () => {
      throw new Error('cannot open');
    };
    const errors: string[] = [];
    const tee = teeRecorderFactory([breaks, refuses, keep], (err, ids) => errors.push(`${ids.callSid}: ${(err as Error).message}`));
    const r = tee?.(IDS, 0);
    r?.twilio('in', START, 1);
    r?.twilio('in', { event: 'stop' }, 2);
    r?.realtime('in', { type: 'response.done' }, 3);
    r?.end({ reason: 'twilio-stop', atMs: 4 });
    expect(errors).toEqual(['CA1: cannot open', 'CA1: disk on fire']);
    expect(memory[0]?.twilioLines).toHaveLength(2);
    expect(memory[0]?.endReason).toBe('twilio-stop');
    expect(teeRecorderFactory([], () => undefined)).toBeUndefined();
    expect(teeRecorderFactory([keep], () => undefined)).toBe(keep);
  });

  it('the report recorder: a sink that throws is logged; the other sinks still get the report', () => {
    const lines: Array<{ msg: string; callSid?: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as { msg: string });
        done();
      },
    });
    const got: CallReport[] = [];
    const factory = reportRecorderFactory({
      logger: createLogger('info', sink),
      sinks: [
        () => {
          throw new Error('full');
        },
        (report) => got.push(report),
      ],
    });
    const r = factory(IDS, performance.now());
    r.twilio('in', START, performance.now());
    r.end({ reason: 'twilio-stop', atMs: performance.now(), profile: 'support' });
    r.end({ reason: 'twilio-stop' }); // once only
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ callSid: 'CA1', profile: 'support', endReason: 'caller-hung-up' });
    expect(lines.find((l) => l.msg === 'post-call report sink failed')).toMatchObject({ callSid: 'CA1' });
  });
});
