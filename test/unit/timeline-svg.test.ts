import { describe, expect, it } from 'vitest';
import { SUMMARY_FORMAT, type ReplaySummary } from '../../src/tooling/replay/summary.js';
import { renderTimelineSvg } from '../../src/tooling/replay/timeline-svg.js';
import { mulawToneSpans } from '../support/signals.js';

const tone = (lengthMs: number, spans: Array<[number, number]>): Uint8Array => mulawToneSpans(lengthMs, spans, { amplitude: 12_000, hz: 300 });

const SUMMARY: ReplaySummary = {
  format: SUMMARY_FORMAT,
  input: 'barge <in> & "out"',
  target: 'in-process, local model',
  upstreamVisible: true,
  callSid: 'CA1',
  streamSid: 'MZ1',
  durationMs: 6000,
  counts: { callerSpeech: 2, turns: 2, responses: 2, completedResponses: 1, cancelledResponses: 1, interruptions: 1, errors: 0 },
  callerSpeech: [
    { startMs: 0, endMs: 1400, firstAgentAudioHeardMs: 1560, perceivedLatencyMs: 160 },
    { startMs: 3000, endMs: 3600, firstAgentAudioHeardMs: 4150, perceivedLatencyMs: 550 },
  ],
  turns: [
    { startedMs: 100, stoppedMs: 1500, itemId: 'item_u1', firstAudioSentMs: 1560, firstAudioLatencyMs: 60 },
    { startedMs: 3080, stoppedMs: 4100, itemId: 'item_u2', firstAudioSentMs: 4150, firstAudioLatencyMs: 50 },
  ],
  responses: [
    { id: 'resp_1', purpose: null, status: 'cancelled', reason: 'client_cancelled', createdMs: 1510, doneMs: 3100, audioSentMs: 2000, audioHeardMs: 1520 },
    { id: 'resp_2', purpose: null, status: 'completed', reason: null, createdMs: 4110, doneMs: 4200, audioSentMs: 500, audioHeardMs: 500 },
  ],
  greeting: null,
  toolCalls: [],
  keypadEntries: [],
  ended: { atMs: 6000, by: 'caller', reason: 'twilio-stop' },
  interruptions: [
    {
      atMs: 3081,
      responseId: 'resp_1',
      itemId: 'item_a1',
      heardMs: 1520,
      heardSource: 'cleared-marks',
      droppedMs: 480,
      truncateMs: 1515,
      truncatedItemId: 'item_a1',
      deletedItemIds: [],
      cancelSent: true,
      speechStartedMs: 3080,
      clearSentMs: 3080.4,
      reactionMs: 0.4,
      callerSpeechStartMs: 3000,
      sinceCallerSpeechMs: 81,
    },
  ],
  dtmf: [{ atMs: 500, digit: '#' }],
  latency: {
    firstAudioMs: { count: 2, min: 50, median: 55, max: 60 },
    perceivedMs: { count: 2, min: 160, median: 355, max: 550 },
    reactionMs: { count: 1, min: 0.4, median: 0.4, max: 0.4 },
  },
  errors: [],
  twilioProtocolErrors: [],
};

const CALLER = tone(6000, [
  [0, 1400],
  [3000, 3600],
]);
const HEARD = tone(6000, [
  [1561, 3081],
  [4151, 4651],
]);

/**
 * A strict-enough XML well-formedness check: every tag closes in order, attributes are quoted,
 * and text holds no raw `<` or bare `&`. SVG viewers refuse the whole picture for less.
 */
function checkWellFormed(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const entity = /&(?:amp|lt|gt|quot|#39|#\d+);/y;
  let i = 0;
  while (i < xml.length) {
    const c = xml[i];
    if (c === '<') {
      tag.lastIndex = i;
      const m = tag.exec(xml);
      if (m === null) throw new Error(`malformed tag at ${i}: ${xml.slice(i, i + 60)}`);
      const [all, closing, name, , selfClosing] = m;
      if (closing === '/') {
        const open = stack.pop();
        if (open !== name) throw new Error(`</${name}> closes <${open}> at ${i}`);
      } else if (selfClosing !== '/') stack.push(name ?? '');
      i += all.length;
    } else if (c === '&') {
      entity.lastIndex = i;
      const m = entity.exec(xml);
      if (m === null) throw new Error(`bare & at ${i}: ${xml.slice(i, i + 20)}`);
      i += m[0].length;
    } else {
      i++;
    }
  }
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(' > ')}`);
}

/** The text content of every <text> element, unescaped. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
    (m[1] ?? '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&'),
  );
}

describe('timeline.svg', () => {
  const svg = renderTimelineSvg({ summary: SUMMARY, callerAudio: CALLER, heardAudio: HEARD });

  it('is one well-formed SVG document, even with markup characters in the recording name', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(() => checkWellFormed(svg)).not.toThrow();
    expect(texts(svg)[0]).toBe('Replay: barge <in> & "out" · 6.0 s · 2 turns · 2 responses · 1 interruption');
  });

  it('draws a time axis with a tick per second', () => {
    const labels = texts(svg);
    for (let s = 0; s <= 6; s++) expect(labels).toContain(`${s} s`);
  });

  it('draws both waveform lanes as filled envelopes', () => {
    expect(texts(svg)).toEqual(expect.arrayContaining(['Caller', 'what they said', 'Agent', 'what the caller heard']));
    const envelopes = [...svg.matchAll(/<path d="M([^"]+)Z" fill="(#[0-9a-f]{6})"/g)];
    expect(envelopes).toHaveLength(2);
    // Loud stretches reach far from the centre line; silence stays within a pixel of it.
    for (const [, d] of envelopes) {
      const ys = (d ?? '').split('L').map((p) => Number(p.split(',')[1]));
      expect(Math.max(...ys) - Math.min(...ys)).toBeGreaterThan(25);
    }
  });

  it('marks turns, responses, the barge-in, the truncation point, the wait and DTMF, with a legend', () => {
    const labels = texts(svg);
    expect(labels).toEqual(
      expect.arrayContaining([
        'turn 1',
        'turn 2',
        'R1 cancelled',
        'R2 completed',
        'barge-in 81 ms',
        '✂ truncated at 1515 ms (heard 1520 ms)',
        'wait 160 ms',
        'wait 550 ms',
        'DTMF #',
        'caller',
        'agent, as heard',
        'barge-in: caller spoke → agent silent',
        'sent, never heard',
      ]),
    );
    // The barge-in line crosses both lanes at the clear's time.
    const x = 128 + (3081 / 6000) * (1200 - 128 - 28);
    const line = svg.match(/<line x1="([\d.]+)" y1="[\d.]+" x2="\1" y2="([\d.]+)" stroke="#dc2626" stroke-width="2"\/>/);
    expect(Number(line?.[1])).toBeCloseTo(x, 0);
    expect(svg).toContain('fill="url(#unheard)"');
  });

  it('falls back to the caller speech when the upstream was not visible', () => {
    const remote: ReplaySummary = { ...SUMMARY, upstreamVisible: false, turns: null, responses: null, errors: null, counts: { ...SUMMARY.counts, turns: null, responses: null } };
    const out = renderTimelineSvg({ summary: remote, callerAudio: CALLER, heardAudio: HEARD });
    expect(() => checkWellFormed(out)).not.toThrow();
    expect(texts(out)).toEqual(expect.arrayContaining(['caller speech', 'speech 1', 'speech 2']));
    expect(texts(out)).not.toContain('responses');
  });
});
