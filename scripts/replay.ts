/**
 * npm run replay -- <recording…> [--url ws://host:port/media-stream] [--out dir] [--expect file]
 *
 * Plays recordings (WAVs of a caller, or RECORD_CALLS captures `<callSid>.twilio.jsonl`) into
 * callbridge exactly as Twilio would, one after the other, and writes what happened into a folder
 * per recording. With --expect, checks each call's post-call report against the expectations
 * (src/report/expectations.ts) and exits 1 with a line per failed expectation: a CI step.
 *
 * Exit codes: 0 all replayed (and every expectation met), 1 a replay failed or an expectation
 * was not met, 2 bad arguments or input (nothing was replayed).
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { pino } from 'pino';
import { ConfigError } from '../src/config.js';
import { checkExpectations, ExpectationsError, loadExpectations } from '../src/report/expectations.js';
import type { Expectations } from '../src/report/expectations.js';
import { createLogger } from '../src/observability/logger.js';
import { loadReplayInput, ReplayInputError } from '../src/tooling/replay/input.js';
import { defaultOutputDir, OUTPUT_FILES, REPORT_FILE, writeOutputs } from '../src/tooling/replay/outputs.js';
import { createProgressBar } from '../src/tooling/replay/progress.js';
import { loadInProcessConfig, runReplay, targetUrlProblem } from '../src/tooling/replay/run.js';
import type { ReplayInput } from '../src/tooling/replay/input.js';
import type { LatencyStats, ReplaySummary } from '../src/tooling/replay/summary.js';
import { endLabel } from '../src/tooling/replay/timeline-svg.js';

const USAGE = `Replay a recorded call into callbridge, as Twilio would.

usage: npm run replay -- <recording…> [--url ws://host:port/media-stream] [--out dir]
                          [--expect expectations.json]

  <recording>   a WAV file of a caller (any rate or channels), or a call capture
                <callSid>.twilio.jsonl written with RECORD_CALLS=<dir>; several are
                replayed one after the other
  --url URL     replay against a running callbridge (its /media-stream WebSocket).
                Default: an in-process server on the embedded local model, or on
                OPENAI_REALTIME_URL / OPENAI_API_KEY as \`npm start\` would choose.
                The replay's handshake is unsigned, so a server with TWILIO_AUTH_TOKEN
                set refuses it (403): point --url at an unsecured development server.
  --out DIR     output folder (default replays/<recording>-<UTC time>/); with several
                recordings, a folder per recording inside it
  --expect FILE check each call's post-call report against the expectations in FILE
                (docs/report.md, Expectations): one line per failed expectation and exit
                1, or a summary line and exit 0. In-process only (not with --url).
  -h, --help    this text

Writes heard.wav (left: caller, right: what the caller heard), events.jsonl (every message
both ways, audio elided), summary.json, timeline.svg, and, in-process only, report.json
(the post-call report, docs/report.md) and server.log.`;

function fail(message: string, code = 2): never {
  process.stderr.write(`replay: ${message}\n`);
  process.exit(code);
}

const ms = (v: number | null): string => (v === null ? '—' : `${Math.round(v)} ms`);
const statLine = (s: LatencyStats | null): string => (s === null ? '—' : `median ${ms(s.median)} (min ${ms(s.min)}, max ${ms(s.max)}, n=${s.count})`);

function keyNumbers(s: ReplaySummary): string[] {
  const c = s.counts;
  const lines = [
    [
      `duration ${(s.durationMs / 1000).toFixed(1)} s`,
      c.turns === null ? `${c.callerSpeech} caller utterances` : `${c.turns} turns`,
      c.responses === null ? null : `${c.responses} responses (${c.completedResponses} completed, ${c.cancelledResponses} cancelled)`,
      `${c.interruptions} interruptions`,
      c.errors === null ? null : `${c.errors} API errors`,
    ]
      .filter((p): p is string => p !== null)
      .join(' · '),
  ];
  if (s.latency.firstAudioMs !== null) lines.push(`first audio sent after turn end: ${statLine(s.latency.firstAudioMs)}`);
  lines.push(`caller waited for the agent: ${statLine(s.latency.perceivedMs)}`);
  s.interruptions.forEach((it, i) => {
    const parts = [`heard ${ms(it.heardMs)}`];
    if (it.truncateMs !== null) parts.push(`truncated at ${ms(it.truncateMs)}`);
    if (it.reactionMs !== null) parts.push(`speech_started → clear ${it.reactionMs} ms`);
    if (it.sinceCallerSpeechMs !== null) parts.push(`agent quiet ${ms(it.sinceCallerSpeechMs)} after the caller spoke`);
    lines.push(`interruption ${i + 1} at ${(it.atMs / 1000).toFixed(2)} s: ${parts.join(', ')}`);
  });
  if (s.greeting !== null) {
    const g = s.greeting;
    lines.push(`greeting: first audio at ${ms(g.firstAudioMs)}${g.interrupted ? ', interrupted' : ''}${g.transcript === null ? '' : `: "${g.transcript.slice(0, 80)}"`}`);
  }
  for (const c of s.toolCalls ?? []) {
    const result = !c.ran ? 'not run' : c.ok === null ? 'no output' : c.ok ? `ok in ${ms(c.durationMs)}` : `error after ${ms(c.durationMs)}: ${(c.error ?? '').slice(0, 80)}`;
    lines.push(`tool ${c.name} at ${(c.startMs / 1000).toFixed(2)} s: ${result}`);
  }
  for (const k of s.keypadEntries ?? []) lines.push(`keypad entry ${k.digits} at ${(k.atMs / 1000).toFixed(2)} s`);
  lines.push(`${endLabel(s)} at ${(s.ended.atMs / 1000).toFixed(2)} s${s.ended.reason === null ? '' : ` (${s.ended.reason})`}`);
  for (const e of s.errors ?? []) lines.push(`API error at ${ms(e.atMs)}: ${e.code ?? '?'}: ${e.message}`);
  if (s.twilioProtocolErrors.length > 0) lines.push(`Twilio would have rejected ${s.twilioProtocolErrors.length} message(s) (see summary.json)`);
  if (!s.upstreamVisible) lines.push('upstream events not visible with --url: turns, responses and API errors are not in the summary');
  return lines;
}

/** Where each recording's files go: --out itself for one, a folder per recording inside it for several. */
function outputDirs(inputs: readonly ReplayInput[], out: string | undefined): string[] {
  const used = new Map<string, number>();
  return inputs.map((input) => {
    if (out === undefined) return defaultOutputDir(input.name);
    if (inputs.length === 1) return out;
    const n = (used.get(input.name) ?? 0) + 1;
    used.set(input.name, n);
    return join(out, n === 1 ? input.name : `${input.name}-${n}`);
  });
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { url: { type: 'string' }, out: { type: 'string' }, expect: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`);
  }
  if (parsed.values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (parsed.positionals.length === 0) fail(`no recording given\n\n${USAGE}`);

  // Everything is checked before anything runs: a typo in the last argument must not cost the
  // minutes of replaying the first ones.
  const url = parsed.values.url;
  const urlProblem = url === undefined ? null : targetUrlProblem(url);
  if (urlProblem !== null) fail(urlProblem);
  let expectations: Expectations | null = null;
  if (parsed.values.expect !== undefined) {
    if (url !== undefined) fail('--expect checks the post-call report, which only an in-process replay makes: drop --url');
    try {
      expectations = loadExpectations(parsed.values.expect);
    } catch (err) {
      if (err instanceof ExpectationsError) fail(err.message);
      throw err;
    }
  }
  const inputs: ReplayInput[] = [];
  for (const recording of parsed.positionals) {
    try {
      inputs.push(loadReplayInput(recording));
    } catch (err) {
      if (err instanceof ReplayInputError) fail(err.message);
      throw err;
    }
  }
  let level: ReturnType<typeof loadInProcessConfig>['logLevel'] | null = null;
  if (url === undefined) {
    try {
      level = loadInProcessConfig(process.env).logLevel;
    } catch (err) {
      if (err instanceof ConfigError) fail(err.message);
      throw err;
    }
  }

  const dirs = outputDirs(inputs, parsed.values.out);
  const failures: string[] = [];
  let checked = 0;
  for (const [i, input] of inputs.entries()) {
    const outDir = dirs[i] ?? defaultOutputDir(input.name);
    for (const w of input.warnings) process.stderr.write(`replay: warning: ${input.name}: ${w}\n`);
    let logger;
    if (level !== null) {
      mkdirSync(outDir, { recursive: true });
      logger = createLogger(level, pino.destination({ dest: join(outDir, 'server.log'), sync: true }));
    }
    process.stdout.write(`replaying ${input.name} (${input.description}, ${(input.durationMs / 1000).toFixed(1)} s) into ${url ?? 'an in-process callbridge'}\n`);
    const bar = createProgressBar(input.name);
    let result;
    try {
      result = await runReplay({ input, ...(url === undefined ? {} : { url }), ...(logger === undefined ? {} : { logger }), onProgress: (p) => bar.update(p) });
    } catch (err) {
      bar.finish();
      if (inputs.length === 1 && expectations === null) fail((err as Error).message, 1);
      failures.push(`FAIL ${input.name}: the replay failed: ${(err as Error).message}`);
      continue;
    }
    bar.finish();
    writeOutputs(result, outDir);
    const files = url === undefined ? [...OUTPUT_FILES, ...(result.report === null ? [] : [REPORT_FILE]), 'server.log'] : [...OUTPUT_FILES];
    process.stdout.write(`\n${outDir}/\n  ${files.join('  ')}\n`);
    for (const line of keyNumbers(result.summary)) process.stdout.write(`  ${line}\n`);
    if (expectations === null) continue;
    if (result.report === null) {
      failures.push(`FAIL ${input.name}: no post-call report: the call did not end within the replay's wait`);
      continue;
    }
    checked += 1;
    for (const f of checkExpectations(result.report, expectations)) failures.push(`FAIL ${input.name}: ${f.key}: ${f.reason}`);
  }

  if (expectations === null && failures.length === 0) return;
  process.stdout.write('\n');
  for (const line of failures) process.stdout.write(`${line}\n`);
  const count = Object.keys(expectations ?? {}).length;
  if (failures.length > 0) {
    process.stdout.write(`${failures.length} failure(s) in ${inputs.length} recording(s)\n`);
    process.exit(1);
  }
  process.stdout.write(`PASS: ${checked} recording(s), ${count} expectation(s) each, all met\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`replay failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
