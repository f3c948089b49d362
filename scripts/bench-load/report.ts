/** Markdown output of bench:load: one step in full, and the table of a --find-capacity run. */
import os from 'node:os';
import { histogramQuantile, type HistogramWindow } from './prom.js';
import { AUDIBLE_MARGIN_MS, MODEL_SPEED, type StepResult } from './run.js';
import type { Summary } from './stats.js';

export function fmt(n: number, digits: number): string {
  if (Number.isNaN(n)) return 'n/a';
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '-∞';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const MiB = (kib: number): number => kib / 1024;

function ms(v: number): string {
  return Number.isNaN(v) ? 'n/a' : `${fmt(v, Math.abs(v) < 10 ? 2 : 1)} ms`;
}

function dist(s: Summary): string {
  if (s.count === 0) return 'n/a (no samples)';
  return `p50 ${ms(s.p50)}, **p99 ${ms(s.p99)}**, max ${ms(s.max)} (n=${s.count})`;
}

function histQ(h: HistogramWindow, q: number): string {
  const r = histogramQuantile(h, q);
  if (r.value === Number.POSITIVE_INFINITY) return `>${fmt(r.overflowAbove ?? 0, 0)} ms`;
  return ms(r.value);
}

export function machineLine(): string {
  const cpu0 = os.cpus()[0];
  return (
    `machine: ${cpu0?.model.trim() ?? 'unknown CPU'}, ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM; ` +
    `${os.type()} ${os.release()}; Node ${process.version}`
  );
}

/** How each figure is measured: printed above the table. */
export function methodNotes(maxTruncationErrorMs: number): string[] {
  return [
    'How each figure is measured (one clock for all processes: process.hrtime.bigint(), i.e. CLOCK_MONOTONIC):',
    '- barge-in reaction: the model sends `input_audio_buffer.speech_started` (timestamp taken just before its serialized frame is handed to the socket) → ' +
      'the matching `clear` arrives at the simulated caller (timestamp when its message event fires, before parsing). ' +
      `Counted for speech_started events in the window; p50/p99 are nearest-rank (p99 of fewer than 100 samples is the maximum). A clear is required when the model had a response in progress or the caller was hearing agent audio that did not just run out (≥ ${AUDIBLE_MARGIN_MS} ms left, or cut by the clear).`,
    '- first audio: the model sends the first `response.output_audio.delta` of a response → the first `media` arriving at the caller after it (before the next response\'s first delta and with no clear in between).',
    '- truncation error: |`audio_end_ms` of the `conversation.item.truncate` the model received − what the caller had played of that item when the clear arrived| ' +
      '(its played bytes then minus the played-byte position of the item\'s first media, / 8 bytes per ms).',
    '- API errors: `error` events the model sent. `response_cancel_not_active` is counted apart as a race when the model had already sent response.done for the cancelled response before the cancel arrived.',
    `- calls fully correct: connected (stream open, upstream session seen), not dropped, no socket or Twilio protocol error, heard agent audio in the window, every required barge-in up to the window end got a clear, no API error besides races, every truncation matched and within ${maxTruncationErrorMs} ms.`,
    '- bridge CPU / RSS: summed over the bridge\'s whole process tree (/proc/<pid>/task/*/children; utime+stime, VmRSS; tsx\'s esbuild transpiler process is listed but not counted), read from outside over the window; CPU per call = total / calls; RSS per call = the slope of RSS against calls live, sampled as each call is placed during the ramp (--find-capacity also prints the slope across steps). ' +
      'RSS slope: least squares over samples every 1 s in the window (after ramp and warm-up).',
    '- bridge event-loop delay: the bridge\'s own `callbridge_event_loop_delay_ms` histogram from /metrics, over the window.',
    '- load generator: callers in child processes (one per 100 calls by default, --caller-processes), the local model in its own; their CPU and event-loop delay (the worst caller process\'s) are shown because a busy caller process stamps clears and media late and sends mark echoes late. ' +
      'The model runs at a lower priority (--model-nice, default 10): it stands in for OpenAI, whose servers do not share the bridge\'s cores, and it stamps each event just before its socket write, so its own waiting is not measured; the callers run at the bridge\'s priority, because their delay is inside the figures.',
  ];
}

export function stepReport(r: StepResult, command: string): string {
  const b = r.bridge;
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(`| ${k} | ${v} |`);
  const calls = r.opts.calls;
  lines.push('');
  lines.push(`callbridge load benchmark (${command})`);
  lines.push(machineLine());
  lines.push(
    `bridge: \`node --import tsx src/main.ts\`${r.opts.bridgeRoot !== null ? ` of ${r.opts.bridgeRoot}` : ''}${r.opts.workers !== null ? ` with WORKERS=${r.opts.workers}` : ''}, LOG_LEVEL=info; process tree at idle: ${b.treeIdle}, at window end: ${b.treeLoad}; ` +
      `callers in ${r.opts.callerProcesses} child process${r.opts.callerProcesses === 1 ? '' : 'es'}, local model (speed ${MODEL_SPEED}x, nice ${r.opts.modelNice}) in a child process; calls placed one at a time over ${fmt(r.rampS, 1)} s, warm-up 3 s`,
  );
  lines.push('');
  lines.push(...methodNotes(r.opts.maxTruncationErrorMs));
  lines.push('');
  lines.push('| metric | value |');
  lines.push('|---|---|');
  row('verdict', r.verdict);
  row('calls fully correct', `**${r.correct} / ${calls}**${r.failures.size > 0 ? ` (incorrect: ${[...r.failures].map(([f, n]) => `${f} ${n}`).join(', ')})` : ''}`);
  row(
    'barge-in reaction (speech_started sent → clear at caller)',
    `${dist(r.reaction)}; includes up to the callers' own event-loop delay (p99 ${fmt(r.loadgen.callerLoopP99, 1)} ms)`,
  );
  row(
    'barge-ins (up to window end)',
    `${r.bargeInsExpected} needed a clear, ${r.missingClears} got none; ${r.optionalClears} optional clears (playback ending); ${r.unpromptedClears} clears answering no speech_started`,
  );
  row('first audio (first delta sent → first media at caller)', `${dist(r.firstAudio)}; ${r.responsesUnheard} responses in window never reached the caller`);
  row(
    'truncation error (audio_end_ms vs played at clear)',
    `${dist(r.truncation)}; ${r.truncationsUnmatched} unmatched, ${r.truncationsOverBound} over ${r.opts.maxTruncationErrorMs} ms`,
  );
  row(
    'mark echoes sent by the callers, after playback reached the mark',
    `${dist(r.echoLate)} (the bridge counts a mark as played when its echo arrives: an echo sent late makes it under-count what was heard, by as much)`,
  );
  row(
    'API errors from the model',
    `**${r.apiErrors.real}**${r.apiErrors.samples.length > 0 ? ` (${r.apiErrors.samples.join('; ')})` : ''}; response_cancel_not_active races (cancel crossed response.done): ${r.apiErrors.races}`,
  );
  row('bridge CPU per call', `**${fmt((r.bridge.cores * 1000) / calls, 1)} millicores** (${fmt(((b.cores - b.idleCores) * 1000) / calls, 1)} above idle)`);
  row(
    'bridge RSS per call',
    `**${fmt(b.rampRssPerCallMiB, 2)} MiB** (slope of RSS against calls live, one sample per call placed over the ramp); (under load − idle) / calls: ${fmt(MiB((b.rss1KiB - b.idleRssKiB) / calls), 2)} MiB (start-up garbage collected under load can make it negative)`,
  );
  row(
    'bridge RSS slope (window)',
    `**${fmt(b.rssSlope, 2)} MiB/min** over ${fmt(r.wallS / 60, 1)} min (${b.rssSamples} samples); second half ${fmt(b.rssSlopeLastHalf, 2)} MiB/min` +
      (r.wallS < 300 ? '; indicative only on a window this short (GC and heap sizing dominate): use --seconds 600' : ''),
  );
  if (b.liveHeapMiB !== null) {
    const grew = b.liveHeapMiB.end - b.liveHeapMiB.start;
    row(
      'bridge live JS heap after a full GC (idle; window start → end; calls over)',
      `idle ${fmt(b.liveHeapMiB.idle, 1)} MiB; **${fmt(b.liveHeapMiB.start, 1)} → ${fmt(b.liveHeapMiB.end, 1)} MiB** (${grew >= 0 ? '+' : ''}${fmt(grew, 2)} MiB over ${fmt(r.wallS / 60, 1)} min, ` +
        `${fmt((grew * 1024) / calls, 1)} KiB per call; --live-heap, forced through the bridge's inspector outside the window); ` +
        `**${fmt(b.liveHeapMiB.afterCalls, 1)} MiB** once every call had ended`,
    );
  }
  row(
    'bridge event-loop delay (window)',
    `p50 ${histQ(r.loop, 0.5)}, **p99 ${histQ(r.loop, 0.99)}**, mean ${r.loop.count > 0 ? fmt(r.loop.sum / r.loop.count, 2) : 'n/a'} ms ` +
      `(callbridge_event_loop_delay_ms, ${r.loop.count} samples); prom-client p50/p99/max ${fmt(r.promLag.p50, 1)}/${fmt(r.promLag.p99, 1)}/${fmt(r.promLag.max, 1)} ms incl. the 10 ms tick`,
  );
  row('concurrent calls (live at the bridge at window end)', `${calls} (${r.liveAtW1})`);
  row('measurement window', `${fmt(r.wallS, 1)} s`);
  row(
    'bridge CPU',
    `**${fmt(b.cores, 3)} cores** (${fmt(b.cpu.cpuS, 2)} s CPU: user ${fmt(b.cpu.userS, 2)}, sys ${fmt(b.cpu.sysS, 2)}) over ${b.processes} process(es)` +
      `${b.cpu.started + b.cpu.ended > 0 ? ` (${b.cpu.started} started, ${b.cpu.ended} ended in the window)` : ''}; idle ${fmt(b.idleCores, 3)} cores`,
  );
  row('bridge RSS', `idle ${fmt(MiB(b.idleRssKiB), 1)} MiB -> under load ${fmt(MiB(b.rss1KiB), 1)} MiB (window start ${fmt(MiB(b.rss0KiB), 1)}, peak ${fmt(MiB(b.peakRssKiB), 1)})`);
  row(
    'bridge-internal timings (its /metrics, for comparison)',
    `reaction (handler only) p50 ${histQ(r.bridgeInternal.reaction, 0.5)}, p99 ${histQ(r.bridgeInternal.reaction, 0.99)}; ` +
      `first audio after turn end p50 ${histQ(r.bridgeInternal.firstAudio, 0.5)}, p99 ${histQ(r.bridgeInternal.firstAudio, 0.99)}`,
  );
  row('interruptions in window (clears received by callers / counted by bridge)', `${r.clearsInWindow} / ${r.interruptionsBridge}`);
  row('agent audio heard by callers in window', `${fmt(r.heardMsWindow / 60_000, 2)} min (${fmt((100 * r.heardMsWindow) / Math.max(1, r.callMsWindow), 0)}% of call time)`);
  row(
    'caller speech in window',
    `${fmt(r.speechMsWindow / 60_000, 2)} min (${fmt((100 * r.speechMsWindow) / Math.max(1, r.callMsWindow), 0)}% of call time); utterances started per call min/max ${r.utterances.min}/${r.utterances.max}`,
  );
  row(
    'failures',
    `${r.startErrors.length} failed to connect, ${r.dropped.length} dropped, ${r.callerErrors} socket errors, ${r.protocolErrors} Twilio protocol errors, ` +
      `${r.silentCalls} calls heard nothing in window, ${r.upstreamErrors} upstream errors, ${r.reconnects} upstream reconnects, ${r.unclaimedSessions} upstream sessions not paired with a call`,
  );
  row('call outcomes at the bridge', r.outcomes === '' ? 'none' : r.outcomes);
  row(
    'bridge logs (whole run)',
    [...b.logs.byLevel].map(([l, n]) => `${l} ${n}`).join(', ') + (b.logs.problems.size > 0 ? `; ${[...b.logs.problems].map(([m, n]) => `${n}x ${m}`).join('; ')}` : ''),
  );
  row('bridge shutdown', `SIGTERM -> exit code ${b.exit.code ?? `signal ${b.exit.signal}`} after ${fmt(b.stopMs, 0)} ms`);
  const waitMs = b.cpu.runQueueWaitMs;
  row(
    'bridge event-loop threads waiting for a CPU (window)',
    Number.isNaN(waitMs)
      ? 'n/a'
      : `${fmt(waitMs, 0)} ms in all (${fmt((100 * waitMs) / (r.wallS * 1000), 1)}% of the window), ${fmt((1000 * waitMs) / Math.max(1, b.cpu.timeslices), 0)} µs on average ` +
        `over ${fmt(b.cpu.timeslices / r.wallS, 0)} wake-ups/s (/proc/<pid>/schedstat, main threads)`,
  );
  const l = r.loadgen;
  row(
    'load generator (caller processes; model process)',
    `callers ${fmt(l.callerCores, 2)} cores, event-loop delay p99 ${fmt(l.callerLoopP99, 1)} ms (max ${fmt(l.callerLoopMax, 1)}); model ${fmt(l.modelCores, 2)} cores, event-loop delay p99 ${fmt(l.modelLoop.p99, 1)} ms (max ${fmt(l.modelLoop.max, 1)}), RSS ${fmt(MiB(l.modelRssKiB), 0)} MiB; ` +
      `machine ${fmt(100 * l.machineBusy, 0)}% busy over ${os.cpus().length} cores (other processes: ${fmt(Math.max(0, l.otherCores), 2)} cores)`,
  );
  const cc = r.crossCheck;
  row(
    'cross-check (bridge /metrics)',
    `process_resident_memory_bytes ${cc.promRss === undefined ? 'n/a' : `${fmt(cc.promRss / 2 ** 20, 1)} MiB`}, process_cpu_seconds_total ${cc.promCpu === undefined ? 'n/a' : fmt(cc.promCpu, 2)} s, ` +
      `JS heap used ${cc.heap0 === undefined || cc.heap1 === undefined ? 'n/a' : `${fmt(cc.heap0 / 2 ** 20, 1)} -> ${fmt(cc.heap1 / 2 ** 20, 1)} MiB`} over the window; ${b.threads} threads`,
  );
  for (const e of r.startErrors) lines.push(`connect error: ${e}`);
  for (const d of r.dropped) lines.push(`dropped: ${d}`);
  if (b.exit.code !== 0) lines.push(`bridge stderr (tail):\n${b.stderrTail.join('\n')}`);
  if (r.opts.workers !== null && r.opts.workers > 1 && b.processes < r.opts.workers + 1) {
    lines.push(`warning: WORKERS=${r.opts.workers} but the bridge ran ${b.processes} process(es): this bridge may not implement WORKERS yet.`);
  }
  if (l.machineBusy > 0.9) lines.push('warning: the machine was over 90% busy; the bridge may have been starved of CPU.');
  if (l.otherCores > 0.1) lines.push(`warning: other processes used ${fmt(l.otherCores, 2)} cores during the window; latency figures may be inflated.`);
  if (l.callerLoopP99 > 2) lines.push(`warning: the callers' event loop was delayed (p99 ${fmt(l.callerLoopP99, 1)} ms): arrival stamps may be late by up to that much.`);
  return lines.join('\n');
}

export function capacityTable(steps: readonly StepResult[]): string[] {
  const lines: string[] = [];
  lines.push(
    '| calls | verdict | correct | barge-in p50 / p99 (n) | first audio p99 | trunc. err p99 | API errors (races) | CPU / call | RSS / call | loop p99 | callers + model cores (callers\' loop p99) | machine busy (other processes) |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of steps) {
    const b = r.bridge;
    lines.push(
      `| ${r.opts.calls} | ${r.pass ? 'pass' : 'FAIL'} | ${r.correct}/${r.opts.calls} | ${ms(r.reaction.p50)} / ${ms(r.reaction.p99)} (${r.reaction.count}) | ${ms(r.firstAudio.p99)} | ${ms(r.truncation.p99)} | ` +
        `${r.apiErrors.real} (${r.apiErrors.races}) | ${fmt((b.cores * 1000) / r.opts.calls, 1)} mc | ${fmt(b.rampRssPerCallMiB, 2)} MiB | ${histQ(r.loop, 0.99)} | ` +
        `${fmt(r.loadgen.callerCores, 2)} + ${fmt(r.loadgen.modelCores, 2)} (${ms(r.loadgen.callerLoopP99)}) | ${fmt(100 * r.loadgen.machineBusy, 0)}% (${fmt(Math.max(0, r.loadgen.otherCores), 2)} cores) |`,
    );
  }
  return lines;
}
