/**
 * timeline.svg of a replayed call: one picture to read the call at a glance. Two waveform lanes
 * on one time axis (what the caller said, what the caller heard of the agent), the server VAD's
 * turns above the caller, the model's responses above the agent, a red line at each barge-in
 * with how long the agent took to go quiet, the cut on the agent lane with the truncation point,
 * the silence the caller waited through after each utterance, the greeting, the agent's tool
 * calls (a lane of bars: name, duration, ✓/✗, the output or error as a tooltip), the keypad
 * entries handed to the model, and the end of the call with who ended it. Pure: summary + audio
 * in, SVG text out.
 */
import { mulawDecode } from '../../audio/g711.js';
import type { CallEnded, Interruption, ReplaySummary, ToolCallSummary } from './summary.js';
import { MULAW_BYTES_PER_MS } from '../../audio/wire-format.js';

export interface TimelineInput {
  summary: ReplaySummary;
  /** What the caller sent, 8 kHz mu-law, index 0 = stream start. */
  callerAudio: Uint8Array;
  /** What the caller heard, 8 kHz mu-law, index 0 = stream start. */
  heardAudio: Uint8Array;
}

const SAMPLES_PER_MS = MULAW_BYTES_PER_MS;
const WIDTH = 1200;
const LEFT = 128;
const RIGHT = 28;
const PLOT_W = WIDTH - LEFT - RIGHT;
/** Rough width of one character of the 11 px labels, for keeping labels apart. */
const CHAR_W = 6.6;
/** The same for the 9.5 px bold labels. */
const SMALL_CHAR_W = 6.2;
const FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

const COLOR = {
  caller: '#2563eb',
  agent: '#ea580c',
  turn: '#16a34a',
  response: '#f59e0b',
  cancelled: '#9ca3af',
  bargeIn: '#dc2626',
  dtmf: '#7c3aed',
  toolOk: '#0d9488',
  toolError: '#be123c',
  toolPending: '#d97706',
  end: '#111827',
  text: '#111827',
  muted: '#6b7280',
  grid: '#e5e7eb',
  laneBg: '#f9fafb',
};

/** Vertical layout, top to bottom: the lanes; what goes below them is in `Bottom`. */
const Y = {
  title: 26,
  subtitle: 46,
  bargeLabels: 66,
  turnRow: 92,
  callerTop: 110,
  laneH: 92,
  responseRow: 212,
  agentTop: 230,
  cutLabels: 338,
};

/** The rows below the agent lane: the tool and keypad rows exist only when there is something to show. */
interface Bottom {
  /** Top of the tool-call lane (a bar row and two label lines), or null without tool calls. */
  toolRow: number | null;
  /** Top of the keypad-entry row, or null without keypad entries. */
  keypadRow: number | null;
  axis: number;
  /** Baseline of the first legend line. */
  legend: number;
  height: number;
}

const TOOL_LINES = 2;
const TOOL_LINE_H = 16;
const TOOL_ROW_H = TOOL_LINES * TOOL_LINE_H + 6;
const KEYPAD_ROW_H = 24;
const LEGEND_LINE_H = 18;

function bottomLayout(s: ReplaySummary, legendLines: number): Bottom {
  let y = Y.cutLabels + 14;
  const toolRow = (s.toolCalls?.length ?? 0) > 0 ? y : null;
  if (toolRow !== null) y += TOOL_ROW_H;
  const keypadRow = (s.keypadEntries?.length ?? 0) > 0 ? y : null;
  if (keypadRow !== null) y += KEYPAD_ROW_H;
  const axis = toolRow === null && keypadRow === null ? 366 : y + 8;
  const legend = axis + 38;
  return { toolRow, keypadRow, axis, legend, height: legend + 24 + (legendLines - 1) * LEGEND_LINE_H };
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const f1 = (v: number): string => (Math.round(v * 10) / 10).toString();
const ms = (v: number): string => `${Math.round(v)} ms`;
/** Durations under 10 ms keep their tenth: a built-in tool answers in well under one. */
const dur = (v: number): string => (Math.abs(v) < 10 ? `${f1(v)} ms` : ms(v));
const secs = (v: number): string => `${(v / 1000).toFixed(1)} s`;
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${f1(x)}" y="${f1(y)}" ${attrs}>${esc(s)}</text>`;
}

/** Keeps labels on one row from overlapping: each goes to the first line where it fits. */
class LabelRows {
  private readonly rightEdges: number[] = [];

  constructor(private readonly lines: number) {}

  place(x: number, chars: number): number {
    const w = chars * CHAR_W;
    for (let i = 0; i < this.lines; i++) {
      if (x >= (this.rightEdges[i] ?? Number.NEGATIVE_INFINITY) + 6) {
        this.rightEdges[i] = x + w;
        return i;
      }
    }
    this.rightEdges[this.lines - 1] = x + w;
    return this.lines - 1;
  }
}

export function renderTimelineSvg(input: TimelineInput): string {
  const { summary } = input;
  const legendItems = legendEntries(summary);
  const bottom = bottomLayout(summary, legendLines(legendItems));
  const lengthMs = Math.max(summary.durationMs, input.callerAudio.length / SAMPLES_PER_MS, input.heardAudio.length / SAMPLES_PER_MS, 1000);
  const x = (t: number): number => LEFT + (Math.min(Math.max(t, 0), lengthMs) / lengthMs) * PLOT_W;

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${bottom.height}" viewBox="0 0 ${WIDTH} ${bottom.height}" ${FONT} font-size="11">`,
    '<defs><pattern id="unheard" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      `<rect width="6" height="6" fill="#f3f4f6"/><line x1="0" y1="0" x2="0" y2="6" stroke="${COLOR.cancelled}" stroke-width="2"/></pattern></defs>`,
    `<rect width="${WIDTH}" height="${bottom.height}" fill="#ffffff"/>`,
  );
  parts.push(...titleLines(summary));
  parts.push(...axis(lengthMs, x, bottom.axis));
  parts.push(...lane('Caller', 'what they said', Y.callerTop, COLOR.caller, input.callerAudio, lengthMs, x));
  parts.push(...lane('Agent', 'what the caller heard', Y.agentTop, COLOR.agent, input.heardAudio, lengthMs, x));
  parts.push(...turnBars(summary, x));
  parts.push(...responseBars(summary, x, lengthMs));
  parts.push(...waits(summary, x));
  parts.push(...interruptions(summary.interruptions, x));
  parts.push(...dtmfMarks(summary, x));
  parts.push(...toolBars(summary, x, bottom.toolRow));
  parts.push(...keypadMarks(summary, x, bottom.keypadRow));
  parts.push(...endMark(summary, x, bottom.axis));
  parts.push(...legend(legendItems, bottom.legend));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function titleLines(s: ReplaySummary): string[] {
  const title = [
    `Replay: ${s.input}`,
    secs(s.durationMs),
    s.counts.turns === null ? plural(s.counts.callerSpeech, 'caller utterance') : plural(s.counts.turns, 'turn'),
    s.counts.responses === null ? null : plural(s.counts.responses, 'response'),
    plural(s.counts.interruptions, 'interruption'),
  ]
    .filter((p): p is string => p !== null)
    .join(' · ');
  const facts: string[] = [s.target];
  if (s.latency.firstAudioMs !== null) facts.push(`first audio sent ${ms(s.latency.firstAudioMs.median)} after turn end (median)`);
  if (s.latency.perceivedMs !== null) facts.push(`caller waited ${ms(s.latency.perceivedMs.median)} (median)`);
  if (s.errors !== null) facts.push(s.errors.length === 0 ? 'no API errors' : `${plural(s.errors.length, 'API error')}: ${s.errors.map((e) => e.code ?? '?').join(', ')}`);
  if (!s.upstreamVisible) facts.push('upstream not visible (--url)');
  return [
    text(LEFT, Y.title, title, `font-size="17" font-weight="bold" fill="${COLOR.text}"`),
    text(LEFT, Y.subtitle, facts.join(' · '), `font-size="12" fill="${COLOR.muted}"`),
  ];
}

function tickStepMs(lengthMs: number): number {
  const minGapPx = 48;
  for (const step of [1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000]) {
    if ((step / lengthMs) * PLOT_W >= minGapPx) return step;
  }
  return 1_200_000;
}

function axis(lengthMs: number, x: (t: number) => number, axisY: number): string[] {
  const out: string[] = [];
  const step = tickStepMs(lengthMs);
  out.push(`<line x1="${LEFT}" y1="${axisY}" x2="${LEFT + PLOT_W}" y2="${axisY}" stroke="${COLOR.muted}"/>`);
  for (let t = 0; t <= lengthMs + 1; t += step) {
    const xt = f1(x(t));
    out.push(`<line x1="${xt}" y1="${Y.turnRow - 4}" x2="${xt}" y2="${axisY}" stroke="${COLOR.grid}"/>`);
    out.push(`<line x1="${xt}" y1="${axisY}" x2="${xt}" y2="${axisY + 5}" stroke="${COLOR.muted}"/>`);
    const label = step >= 60_000 ? `${t / 60_000} min` : `${t / 1000} s`;
    out.push(text(x(t), axisY + 17, label, `text-anchor="middle" fill="${COLOR.muted}"`));
  }
  out.push(text(LEFT - 10, axisY + 4, 'time', `text-anchor="end" fill="${COLOR.muted}"`));
  return out;
}

/** A lane: label, background, and the track drawn as a min/max envelope, one column per pixel. */
function lane(title: string, subtitle: string, top: number, color: string, track: Uint8Array, lengthMs: number, x: (t: number) => number): string[] {
  const mid = top + Y.laneH / 2;
  const half = Y.laneH / 2 - 3;
  const out = [
    `<rect x="${LEFT}" y="${top}" width="${PLOT_W}" height="${Y.laneH}" fill="${COLOR.laneBg}" stroke="${COLOR.grid}"/>`,
    `<line x1="${LEFT}" y1="${mid}" x2="${LEFT + PLOT_W}" y2="${mid}" stroke="${COLOR.grid}"/>`,
    text(LEFT - 10, mid - 2, title, `text-anchor="end" font-size="13" font-weight="bold" fill="${color}"`),
    text(LEFT - 10, mid + 13, subtitle, `text-anchor="end" font-size="9.5" fill="${COLOR.muted}"`),
  ];
  const pcm = new Int16Array(track.length);
  mulawDecode(track, pcm);
  const columns = Math.ceil(x(pcm.length / SAMPLES_PER_MS) - LEFT);
  const samplesPerColumn = (lengthMs * SAMPLES_PER_MS) / PLOT_W;
  const tops: string[] = [];
  const bottoms: string[] = [];
  for (let c = 0; c < columns; c++) {
    const from = Math.floor(c * samplesPerColumn);
    const to = Math.min(pcm.length, Math.max(from + 1, Math.floor((c + 1) * samplesPerColumn)));
    let lo = 0;
    let hi = 0;
    for (let i = from; i < to; i++) {
      const v = pcm[i] ?? 0;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    // Half a pixel either way keeps silence visible as a thin line.
    const yHi = Math.min(mid - 0.5, mid - (hi / 32768) * half);
    const yLo = Math.max(mid + 0.5, mid - (lo / 32768) * half);
    tops.push(`${f1(LEFT + c)},${f1(yHi)}`);
    bottoms.push(`${f1(LEFT + c + 1)},${f1(yLo)}`);
  }
  if (tops.length > 0) out.push(`<path d="M${tops.join('L')}L${bottoms.reverse().join('L')}Z" fill="${color}" fill-opacity="0.85"/>`);
  return out;
}

function turnBars(s: ReplaySummary, x: (t: number) => number): string[] {
  const out = [text(LEFT - 10, Y.turnRow + 9, s.turns === null ? 'caller speech' : 'VAD turns', `text-anchor="end" fill="${COLOR.muted}"`)];
  // Without upstream events the caller's own speech stretches stand in for the VAD's turns.
  const spans =
    s.turns?.map((t, i) => ({ from: t.startedMs, to: t.stoppedMs ?? s.durationMs, label: `turn ${i + 1}`, tip: `speech_started ${ms(t.startedMs)} → speech_stopped ${t.stoppedMs === null ? '—' : ms(t.stoppedMs)}` })) ??
    s.callerSpeech.map((c, i) => ({ from: c.startMs, to: c.endMs, label: `speech ${i + 1}`, tip: `caller audio ${ms(c.startMs)} → ${ms(c.endMs)}` }));
  const color = s.turns === null ? COLOR.caller : COLOR.turn;
  for (const span of spans) {
    const x0 = x(span.from);
    const w = Math.max(2, x(span.to) - x0);
    out.push(
      `<g><title>${esc(span.tip)}</title><rect x="${f1(x0)}" y="${Y.turnRow}" width="${f1(w)}" height="12" rx="3" fill="${color}" fill-opacity="0.8"/>` +
        `<line x1="${f1(x0)}" y1="${Y.turnRow - 3}" x2="${f1(x0)}" y2="${Y.callerTop + Y.laneH}" stroke="${color}" stroke-dasharray="3,3"/>`,
      `${text(x0 + 4, Y.turnRow + 9.5, span.label, 'fill="#ffffff" font-size="9.5" font-weight="bold"')}</g>`,
    );
  }
  return out;
}

function responseBars(s: ReplaySummary, x: (t: number) => number, lengthMs: number): string[] {
  if (s.responses === null) return [];
  const out = [text(LEFT - 10, Y.responseRow + 9, 'responses', `text-anchor="end" fill="${COLOR.muted}"`)];
  const responses = s.responses;
  responses.forEach((r, i) => {
    const x0 = x(r.createdMs);
    const w = Math.max(2, x(r.doneMs ?? lengthMs) - x0);
    const cancelled = r.status !== 'completed';
    const label = responseLabel(r, i);
    const tip = `${r.id}${r.purpose === null ? '' : ` (${r.purpose})`}: created ${ms(r.createdMs)}, done ${r.doneMs === null ? '—' : ms(r.doneMs)}, ${ms(r.audioSentMs)} audio sent, ${ms(r.audioHeardMs)} heard`;
    out.push(
      `<g><title>${esc(tip)}</title><rect x="${f1(x0)}" y="${Y.responseRow}" width="${f1(w)}" height="12" rx="3" fill="${cancelled ? COLOR.cancelled : COLOR.response}"/>`,
    );
    // The bar spans generation, usually much shorter than playback: the label runs on past it, up
    // to the next response; where the whole label does not fit, its number does (the tooltip has the rest).
    const room = (i + 1 < responses.length ? x(responses[i + 1]?.createdMs ?? lengthMs) : LEFT + PLOT_W + RIGHT) - x0 - 7;
    const short = `R${i + 1}`;
    const shown = label.length * SMALL_CHAR_W <= room ? label : short.length * SMALL_CHAR_W <= room ? short : '';
    out.push(`${shown === '' ? '' : text(x0 + 3, Y.responseRow + 9.5, shown, `font-size="9.5" font-weight="bold" fill="${COLOR.text}"`)}</g>`);
  });
  return out;
}

/** `R2 completed`; the greeting is `greeting` (plus its status when cut); other bridge purposes are named. */
function responseLabel(r: NonNullable<ReplaySummary['responses']>[number], i: number): string {
  const status = r.status ?? 'unfinished';
  if (r.purpose === 'greeting') return r.status === 'completed' ? 'greeting' : `greeting ${status}`;
  if (r.purpose === null || r.purpose === 'answer') return `R${i + 1} ${status}`;
  return r.status === 'completed' ? `R${i + 1} ${r.purpose}` : `R${i + 1} ${r.purpose} ${status}`;
}

/** The silence after each caller utterance until agent audio reached the caller's ear. */
function waits(s: ReplaySummary, x: (t: number) => number): string[] {
  const out: string[] = [];
  const y = Y.callerTop + Y.laneH - 9;
  for (const c of s.callerSpeech) {
    if (c.firstAgentAudioHeardMs === null || c.perceivedLatencyMs === null) continue;
    const x0 = x(c.endMs);
    const x1 = x(c.firstAgentAudioHeardMs);
    out.push(
      `<g><title>${esc(`caller stopped at ${ms(c.endMs)}, first agent audio heard at ${ms(c.firstAgentAudioHeardMs)}`)}</title>` +
        `<line x1="${f1(x0)}" y1="${y}" x2="${f1(x1)}" y2="${y}" stroke="${COLOR.text}" stroke-dasharray="2,2"/>` +
        `<line x1="${f1(x1)}" y1="${y - 4}" x2="${f1(x1)}" y2="${Y.agentTop + 10}" stroke="${COLOR.text}" stroke-dasharray="2,2" stroke-opacity="0.5"/>`,
      `${text((x0 + x1) / 2, y - 4, `wait ${ms(c.perceivedLatencyMs)}`, `text-anchor="middle" font-size="9.5" fill="${COLOR.text}"`)}</g>`,
    );
  }
  return out;
}

function interruptions(list: Interruption[], x: (t: number) => number): string[] {
  const out: string[] = [];
  const top = new LabelRows(2);
  const bottom = new LabelRows(2);
  list.forEach((it, i) => {
    const xc = x(it.atMs);
    const tip = [
      `interruption ${i + 1} at ${ms(it.atMs)}`,
      it.sinceCallerSpeechMs === null ? null : `agent quiet ${ms(it.sinceCallerSpeechMs)} after the caller started speaking`,
      it.reactionMs === null ? null : `speech_started → clear ${f1(it.reactionMs)} ms`,
      `heard ${ms(it.heardMs)} (${it.heardSource}), ${ms(it.droppedMs)} dropped unheard`,
      it.truncateMs === null ? null : `truncated ${it.truncatedItemId ?? ''} at ${ms(it.truncateMs)}`,
      it.cancelSent === null ? null : it.cancelSent ? 'response.cancel sent' : 'no cancel (response already done)',
    ]
      .filter((p): p is string => p !== null)
      .join('; ');
    out.push(`<g><title>${esc(tip)}</title>`);
    if (it.callerSpeechStartMs !== null) {
      // The overlap the caller lived: talking while the agent still talked.
      const x0 = x(it.callerSpeechStartMs);
      out.push(`<rect x="${f1(x0)}" y="${Y.callerTop}" width="${f1(Math.max(1, xc - x0))}" height="${Y.laneH}" fill="${COLOR.bargeIn}" fill-opacity="0.12"/>`);
    }
    if (it.droppedMs > 0) {
      const w = x(it.atMs + it.droppedMs) - xc;
      out.push(`<rect x="${f1(xc)}" y="${Y.agentTop + 16}" width="${f1(Math.max(1, w))}" height="${Y.laneH - 32}" fill="url(#unheard)" stroke="${COLOR.cancelled}"/>`);
      if (w > 70) out.push(text(xc + w / 2, Y.agentTop + Y.laneH / 2 + 4, `${secs(it.droppedMs)} never heard`, `text-anchor="middle" font-size="9.5" fill="${COLOR.muted}"`));
    }
    out.push(`<line x1="${f1(xc)}" y1="${Y.bargeLabels - 12}" x2="${f1(xc)}" y2="${Y.agentTop + Y.laneH}" stroke="${COLOR.bargeIn}" stroke-width="2"/>`);
    const head = it.sinceCallerSpeechMs === null ? 'barge-in' : `barge-in ${ms(it.sinceCallerSpeechMs)}`;
    const topLine = top.place(xc + 4, head.length + 2);
    out.push(text(xc + 4, Y.bargeLabels - 2 + topLine * 12, head, `font-weight="bold" fill="${COLOR.bargeIn}"`));
    const cut = it.truncateMs === null ? `✂ cut after ${ms(it.heardMs)} heard` : `✂ truncated at ${ms(it.truncateMs)} (heard ${ms(it.heardMs)})`;
    const bottomLine = bottom.place(xc + 4, cut.length);
    out.push(text(xc + 4, Y.cutLabels - 12 + bottomLine * 12, cut, `fill="${COLOR.bargeIn}"`));
    out.push('</g>');
  });
  return out;
}

function dtmfMarks(s: ReplaySummary, x: (t: number) => number): string[] {
  // Keys come in quick runs: labels that would collide step down a line.
  const rows = new LabelRows(3);
  return s.dtmf.map((d) => {
    const xd = x(d.atMs);
    const label = `DTMF ${d.digit}`;
    const line = rows.place(xd, (label.length * SMALL_CHAR_W + 3) / CHAR_W);
    const y = Y.callerTop + 11 + line * 11;
    return (
      `<g><title>${esc(`DTMF ${d.digit} at ${ms(d.atMs)}`)}</title>` +
      `<line x1="${f1(xd)}" y1="${y - 11}" x2="${f1(xd)}" y2="${y + 1}" stroke="${COLOR.dtmf}" stroke-width="2"/>` +
      `${text(xd + 3, y, label, `font-size="9.5" font-weight="bold" fill="${COLOR.dtmf}"`)}</g>`
    );
  });
}

type LegendItem = [swatch: string, label: string];

function legendEntries(s: ReplaySummary): LegendItem[] {
  const items: LegendItem[] = [
    [`<rect width="14" height="10" fill="${COLOR.caller}"/>`, 'caller'],
    [`<rect width="14" height="10" fill="${COLOR.agent}"/>`, 'agent, as heard'],
  ];
  if (s.turns !== null) items.push([`<rect width="14" height="10" rx="2" fill="${COLOR.turn}"/>`, 'VAD turn']);
  if (s.responses !== null) items.push([`<rect width="14" height="10" rx="2" fill="${COLOR.response}"/>`, 'response generating']);
  items.push(
    [`<line x1="7" y1="-2" x2="7" y2="12" stroke="${COLOR.bargeIn}" stroke-width="2"/>`, 'barge-in: caller spoke → agent silent'],
    [`<rect width="14" height="10" fill="url(#unheard)" stroke="${COLOR.cancelled}"/>`, 'sent, never heard'],
    [`<line x1="0" y1="5" x2="14" y2="5" stroke="${COLOR.text}" stroke-dasharray="2,2"/>`, 'caller waiting'],
  );
  if ((s.toolCalls?.length ?? 0) > 0) {
    items.push(
      [`<rect width="14" height="10" rx="2" fill="${COLOR.toolOk}"/>`, 'tool call ✓'],
      [`<rect width="14" height="10" rx="2" fill="${COLOR.toolError}"/>`, 'tool error ✗'],
    );
    if (s.toolCalls?.some((c) => !c.ran) === true) items.push([`<rect width="14" height="10" rx="2" fill="none" stroke="${COLOR.cancelled}" stroke-dasharray="2,2"/>`, 'tool call not run']);
  }
  if ((s.keypadEntries?.length ?? 0) > 0) items.push([`<polygon points="7,0 13,5 7,10 1,5" fill="${COLOR.dtmf}"/>`, 'keypad entry to the model']);
  items.push([`<line x1="7" y1="-2" x2="7" y2="12" stroke="${COLOR.end}" stroke-width="2" stroke-dasharray="4,2"/>`, 'call ended']);
  return items;
}

const legendItemWidth = (label: string): number => 19 + label.length * CHAR_W + 14;

/** The legend wraps onto another line rather than run off the picture. */
function legendPositions(items: LegendItem[]): Array<{ x: number; line: number }> {
  const out: Array<{ x: number; line: number }> = [];
  let cx = LEFT;
  let line = 0;
  for (const [, label] of items) {
    if (cx > LEFT && cx + legendItemWidth(label) - 14 > WIDTH - RIGHT) {
      cx = LEFT;
      line++;
    }
    out.push({ x: cx, line });
    cx += legendItemWidth(label);
  }
  return out;
}

function legendLines(items: LegendItem[]): number {
  return (legendPositions(items).at(-1)?.line ?? 0) + 1;
}

function legend(items: LegendItem[], baseline: number): string[] {
  const out: string[] = [];
  const positions = legendPositions(items);
  items.forEach(([swatch, label], i) => {
    const { x: cx, line } = positions[i] ?? { x: LEFT, line: 0 };
    const y = baseline + line * LEGEND_LINE_H;
    out.push(`<g transform="translate(${f1(cx)},${y - 9})">${swatch}</g>`, text(cx + 19, y, label, `fill="${COLOR.muted}"`));
  });
  return out;
}

/** Each function call: a bar from the call's completion to its output, labelled name, duration and ✓ / ✗; calls close together stack. */
function toolBars(s: ReplaySummary, x: (t: number) => number, top: number | null): string[] {
  if (top === null || s.toolCalls === null) return [];
  const out = [text(LEFT - 10, top + 9, 'tool calls', `text-anchor="end" fill="${COLOR.muted}"`)];
  const rows = new LabelRows(TOOL_LINES);
  for (const c of s.toolCalls) {
    const x0 = x(c.startMs);
    const x1 = Math.max(x0 + 3, x(c.startMs + (c.durationMs ?? 0)));
    const label = toolLabel(c);
    const fill = !c.ran ? 'none' : c.ok === null ? COLOR.toolPending : c.ok ? COLOR.toolOk : COLOR.toolError;
    const stroke = c.ran ? '' : ` stroke="${COLOR.cancelled}" stroke-dasharray="2,2"`;
    const y = top + rows.place(x0, (x1 - x0 + 3 + label.length * SMALL_CHAR_W) / CHAR_W) * TOOL_LINE_H;
    out.push(
      `<g><title>${esc(toolTip(c))}</title><rect x="${f1(x0)}" y="${f1(y)}" width="${f1(x1 - x0)}" height="12" rx="2" fill="${fill}"${stroke}/>`,
      `${text(x1 + 3, y + 9.5, label, `font-size="9.5" font-weight="bold" fill="${fill === 'none' ? COLOR.muted : fill}"`)}</g>`,
    );
  }
  return out;
}

function toolLabel(c: ToolCallSummary): string {
  if (!c.ran) return `${c.name} not run`;
  if (c.ok === null || c.durationMs === null) return `${c.name} no output`;
  return `${c.name} ${dur(c.durationMs)} ${c.ok ? '✓' : '✗'}`;
}

function toolTip(c: ToolCallSummary): string {
  const head = `${c.name}(${c.arguments}) at ${ms(c.startMs)}`;
  if (!c.ran) return `${head}: not run (its response ended first)`;
  if (c.ok === null || c.durationMs === null) return `${head}: ran, no output sent`;
  return c.ok ? `${head}: ok in ${dur(c.durationMs)}: ${c.output ?? ''}` : `${head}: error after ${dur(c.durationMs)}: ${c.error ?? ''}`;
}

/** Each keypad entry the bridge handed to the model, labelled with its digits. */
function keypadMarks(s: ReplaySummary, x: (t: number) => number, top: number | null): string[] {
  if (top === null || s.keypadEntries === null) return [];
  const out = [text(LEFT - 10, top + 9, 'keypad', `text-anchor="end" fill="${COLOR.muted}"`)];
  const rows = new LabelRows(1);
  const cy = top + 5.5;
  for (const k of s.keypadEntries) {
    const xk = x(k.atMs);
    rows.place(xk, k.digits.length + 2);
    out.push(
      `<g><title>${esc(`keypad entry ${k.digits} sent to the model at ${ms(k.atMs)}`)}</title>` +
        `<polygon points="${f1(xk)},${f1(cy - 6)} ${f1(xk + 6)},${f1(cy)} ${f1(xk)},${f1(cy + 6)} ${f1(xk - 6)},${f1(cy)}" fill="${COLOR.dtmf}"/>`,
      `${text(xk + 9, top + 9.5, k.digits, `font-weight="bold" fill="${COLOR.dtmf}"`)}</g>`,
    );
  }
  return out;
}

/** `ended by agent (end_call)`, `ended by caller (hung up)`, ... */
export function endLabel(s: Pick<ReplaySummary, 'ended' | 'toolCalls'>): string {
  const e: CallEnded = s.ended;
  const lastRan = (name: string): boolean => [...(s.toolCalls ?? [])].reverse().find((c) => c.ran && c.name === name) !== undefined;
  switch (e.by) {
    case 'agent':
      return lastRan('end_call') ? 'ended by agent (end_call)' : 'ended by agent';
    case 'transfer':
      return lastRan('transfer_call') ? 'transferred (transfer_call)' : 'transferred';
    case 'idle':
      return 'ended: caller idle';
    case 'caller':
      return e.reason === 'twilio-closed' ? 'ended by caller (socket closed)' : 'ended by caller (hung up)';
    case 'other':
      return e.reason === null ? 'ended' : `ended (${e.reason})`;
  }
}

/** The end of the call: a dashed line across both lanes, with who ended it. */
function endMark(s: ReplaySummary, x: (t: number) => number, axisY: number): string[] {
  const xe = x(s.ended.atMs);
  const label = endLabel(s);
  const tip = `call ended at ${ms(s.ended.atMs)}; ${s.ended.reason === null ? 'reason not recorded (inferred)' : `reason: ${s.ended.reason}`}`;
  // At the right edge (the usual place) the label reads leftwards from the line.
  const leftwards = xe + 4 + label.length * 7.2 > WIDTH - 4;
  return [
    `<g><title>${esc(tip)}</title><line x1="${f1(xe)}" y1="${Y.turnRow - 4}" x2="${f1(xe)}" y2="${axisY}" stroke="${COLOR.end}" stroke-width="2" stroke-dasharray="4,2"/>`,
    `${text(leftwards ? xe - 4 : xe + 4, Y.turnRow - 8, label, `${leftwards ? 'text-anchor="end" ' : ''}font-weight="bold" fill="${COLOR.end}"`)}</g>`,
  ];
}
