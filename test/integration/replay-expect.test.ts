/**
 * `npm run replay -- <captures…> --expect expectations.json` as a CI step runs it: the real script
 * in a child process, replaying the committed captures on the local model in real time. The pass
 * and the fail run go at once (each is its own process and in-process server).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallReport } from '../../src/report/schema.js';

const CALLS = fileURLToPath(new URL('../fixtures/calls/', import.meta.url));
const BARE_BRIDGE = fileURLToPath(new URL('../fixtures/config/bare-bridge.json', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function replay(args: string[]): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OPENAI_') && k !== 'REALTIME_BACKEND'));
  // The captures were recorded on the bare bridge (no greeting): replayed on the same agent, on the local model.
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/replay.ts', ...args], {
    cwd: process.cwd(),
    env: { ...clean, REALTIME_BACKEND: 'local', CONFIG_FILE: BARE_BRIDGE, LOG_LEVEL: 'info' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

let dir = '';
let passing: Run;
let failing: Run;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cb-expect-'));
  writeFileSync(
    join(dir, 'pass.json'),
    JSON.stringify({ maxApiErrors: 0, interruptionsHeardWithinMs: 300, endReason: 'caller-hung-up', maxFirstAudioMs: 2000, toolNotCalled: 'transfer_call' }),
  );
  writeFileSync(join(dir, 'fail.json'), JSON.stringify({ maxInterruptions: 0, toolCalled: 'lookup_order', endReason: 'agent-ended', maxApiErrors: 0 }));
  [passing, failing] = await Promise.all([
    replay([join(CALLS, 'two-turn.twilio.jsonl'), join(CALLS, 'barge-in.twilio.jsonl'), '--expect', join(dir, 'pass.json'), '--out', join(dir, 'pass')]),
    replay([join(CALLS, 'barge-in.twilio.jsonl'), '--expect', join(dir, 'fail.json'), '--out', join(dir, 'fail')]),
  ]);
}, 120_000);

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('npm run replay -- <captures…> --expect', () => {
  it('all met: exit 0, one summary line, and a report.json per capture', () => {
    expect(passing.stderr).toBe('');
    expect(passing.code).toBe(0);
    expect(passing.stdout.trimEnd().split('\n').at(-1)).toBe('PASS: 2 recording(s), 5 expectation(s) each, all met');
    expect(passing.stdout).not.toContain('FAIL');
    for (const name of ['two-turn', 'barge-in']) {
      const report = JSON.parse(readFileSync(join(dir, 'pass', name, 'report.json'), 'utf8')) as CallReport;
      expect(report.format).toBe('callbridge.report/1');
      expect(report.endReason).toBe('caller-hung-up');
      expect(existsSync(join(dir, 'pass', name, 'summary.json'))).toBe(true);
    }
    const bargeIn = JSON.parse(readFileSync(join(dir, 'pass', 'barge-in', 'report.json'), 'utf8')) as CallReport;
    expect(bargeIn.interruptions).toHaveLength(1);
    // The same call as the summary tells it: one code path for what happened.
    const summary = JSON.parse(readFileSync(join(dir, 'pass', 'barge-in', 'summary.json'), 'utf8')) as { interruptions: Array<{ truncateMs: number; reactionMs: number }> };
    expect(bargeIn.interruptions[0]?.heardMs).toBe(summary.interruptions[0]?.truncateMs);
    expect(bargeIn.interruptions[0]?.reactionMs).toBe(summary.interruptions[0]?.reactionMs);
  });

  it('missed: exit 1 and one line per failed expectation, with the reason', () => {
    expect(failing.code).toBe(1);
    const lines = failing.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('FAIL '))).toEqual([
      'FAIL barge-in: maxInterruptions: 1 interruptions, at most 0 expected',
      'FAIL barge-in: toolCalled: lookup_order was not called; no tool ran',
      'FAIL barge-in: endReason: ended caller-hung-up (twilio-stop), expected agent-ended',
    ]);
    expect(lines.at(-1)).toBe('3 failure(s) in 1 recording(s)');
  });

  it('a bad expectations file: exit 2 naming the key, before anything is replayed', async () => {
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ maxApiError: 0, interruptionsHeardWithinMs: -5 }));
    const run = await replay([join(CALLS, 'barge-in.twilio.jsonl'), '--expect', join(dir, 'bad.json'), '--out', join(dir, 'bad')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown key "maxApiError"');
    expect(run.stderr).toContain('interruptionsHeardWithinMs must be a number of ms ≥ 0, got -5');
    expect(existsSync(join(dir, 'bad'))).toBe(false);

    const withUrl = await replay([join(CALLS, 'barge-in.twilio.jsonl'), '--expect', join(dir, 'pass.json'), '--url', 'ws://127.0.0.1:9/media-stream']);
    expect(withUrl.code).toBe(2);
    expect(withUrl.stderr).toContain('--expect checks the post-call report, which only an in-process replay makes');
  });
});
