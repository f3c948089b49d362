/**
 * Regenerates the committed call recordings in test/fixtures/calls/ (see its README):
 * real calls through an in-process callbridge on the embedded local model, captured with the
 * RECORD_CALLS recorder, then slimmed by dropping all-silent media frames (Twilio may skip silent
 * frames; a replay fills the gaps with silence).
 *
 * Run: npx tsx scripts/make-replay-fixtures.ts
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { fileRecorderFactory } from '../src/call/recorder.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { startLocalRealtimeServer } from '../src/tooling/local-model/server.js';
import { buildServer } from '../src/server.js';
import { SimulatedCaller, type CallerSegment } from '../src/tooling/simulated-caller.js';
import { loadCallerMulaw } from '../test/support/fixtures.js';

const OUT_DIR = fileURLToPath(new URL('../test/fixtures/calls/', import.meta.url));
const MULAW_SILENCE = 0xff;
/** The call ends once the caller has heard nothing for this long after their last words. */
const QUIET_MS = 1200;
const MAX_CALL_MS = 40_000;

interface Scenario {
  name: string;
  /** Twilio-shaped ids, fixed so a regenerated file differs only where the call did. */
  callSid: string;
  segments: CallerSegment[];
  dtmf?: { atMs: number; digit: string };
}

const question = loadCallerMulaw('caller-question');
const interrupt = loadCallerMulaw('caller-interrupt');
const yes = loadCallerMulaw('caller-yes');

const SCENARIOS: Scenario[] = [
  {
    // Asks, waits for the whole answer, answers back, waits again.
    name: 'two-turn',
    callSid: `CA${'0'.repeat(31)}1`,
    segments: [
      { audio: question, start: { afterPreviousMs: 200 }, label: 'question' },
      { audio: yes, start: { afterAgentQuietMs: 600 }, label: 'yes' },
    ],
    dtmf: { atMs: 1000, digit: '1' },
  },
  {
    // Cuts the first answer off about a second in.
    name: 'barge-in',
    callSid: `CA${'0'.repeat(31)}2`,
    segments: [
      { audio: question, start: { afterPreviousMs: 200 }, label: 'question' },
      { audio: interrupt, start: { afterHeardMs: 1000 }, label: 'interrupt' },
    ],
  },
  {
    // Talks over every answer, 0.7 s in, three times.
    name: 'talk-over',
    callSid: `CA${'0'.repeat(31)}3`,
    segments: [
      { audio: question, start: { afterPreviousMs: 200 }, label: 'question' },
      { audio: interrupt, start: { afterHeardMs: 700 }, label: 'over-1' },
      { audio: yes, start: { afterHeardMs: 700 }, label: 'over-2' },
      { audio: yes, start: { afterHeardMs: 700 }, label: 'over-3' },
    ],
  },
];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Until every segment is spoken and nothing has played for QUIET_MS since. */
async function untilDone(caller: SimulatedCaller, segments: number): Promise<void> {
  const deadline = performance.now() + MAX_CALL_MS;
  let busyAt = performance.now();
  while (performance.now() < deadline) {
    const spoken = caller.speech.length === segments && caller.speech.every((s) => s.endMs !== undefined);
    if (!spoken || caller.bufferedBytes() > 0) busyAt = performance.now();
    if (performance.now() - busyAt >= QUIET_MS) return;
    await sleep(50);
  }
  throw new Error(`call did not finish within ${MAX_CALL_MS} ms`);
}

/** Drops media lines whose payload is pure silence: the capture then holds the speech only. */
function slim(capture: string): string {
  return (
    capture
      .trim()
      .split('\n')
      .filter((line) => {
        const parsed = JSON.parse(line) as { msg?: { event?: string; media?: { payload?: string } } };
        const payload = parsed.msg?.event === 'media' ? parsed.msg.media?.payload : undefined;
        return payload === undefined || !Buffer.from(payload, 'base64').every((b) => b === MULAW_SILENCE);
      })
      .join('\n') + '\n'
  );
}

async function record(scenario: Scenario): Promise<void> {
  const captureDir = mkdtempSync(join(tmpdir(), 'cb-fixture-'));
  // The fixtures are made on the local model whatever the caller's environment says.
  const config = { ...loadConfig({ REALTIME_BACKEND: 'local' }), port: 0, host: '127.0.0.1' };
  const logger = createLogger('warn');
  const local = await startLocalRealtimeServer({ record: false });
  const server = await buildServer({
    config,
    logger,
    realtimeUrl: local.url,
    recorderFactory: fileRecorderFactory(captureDir, (err) => logger.error({ err: err.message }, 'capture failed')),
  });
  try {
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    const address = server.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    const caller = new SimulatedCaller({
      url: `ws://127.0.0.1:${address.port}/media-stream`,
      callSid: scenario.callSid,
      streamSid: `MZ${scenario.callSid.slice(2)}`,
      accountSid: `AC${'0'.repeat(32)}`,
      customParameters: { fixture: scenario.name },
      segments: scenario.segments,
    });
    await caller.start();
    const press = scenario.dtmf;
    if (press !== undefined) setTimeout(() => caller.sendDtmf(press.digit), press.atMs);
    await untilDone(caller, scenario.segments.length);
    await caller.hangUp();
    while (server.calls.size > 0) await sleep(20);
    const captured = readFileSync(join(captureDir, `${scenario.callSid}.twilio.jsonl`), 'utf8');
    const file = join(OUT_DIR, `${scenario.name}.twilio.jsonl`);
    writeFileSync(file, slim(captured));
    process.stdout.write(`${file}: ${(caller.nowMs() / 1000).toFixed(1)} s call, ${caller.clears.length} interruption(s)\n`);
  } finally {
    await server.endAllCalls();
    await server.app.close();
    await local.close();
    rmSync(captureDir, { recursive: true, force: true });
  }
}

for (const scenario of SCENARIOS) await record(scenario);
