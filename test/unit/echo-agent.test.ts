import { describe, expect, it } from 'vitest';
import { EARCON, echoAnswer, speechSpan } from '../../src/realtime/local/echo-agent.js';

const CTX = { lastUserTranscript: null, responseIndex: 0, instructions: '' };

function speechWithSilence(silenceMs: number, speechMs: number): Int16Array {
  const out = new Int16Array((2 * silenceMs + speechMs) * 24);
  for (let i = silenceMs * 24; i < (silenceMs + speechMs) * 24; i++) out[i] = Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / 24000));
  return out;
}

describe('echo agent', () => {
  it('answers with the earcon followed by the caller’s speech, long silences trimmed', () => {
    const user = speechWithSilence(800, 600);
    const answer = echoAnswer({ ...CTX, lastUserAudio: user });
    expect(answer.audio.subarray(0, EARCON.length)).toEqual(EARCON);
    const echoedMs = (answer.audio.length - EARCON.length) / 24;
    expect(echoedMs).toBeGreaterThanOrEqual(600);
    expect(echoedMs).toBeLessThanOrEqual(600 + 2 * 120 + 10);
    expect(answer.transcript).toMatch(/^You said: /);
  });

  it('quotes the caller’s transcript when there is one', () => {
    const answer = echoAnswer({ ...CTX, lastUserAudio: speechWithSilence(0, 300), lastUserTranscript: 'book a table' });
    expect(answer.transcript).toBe('You said: book a table');
  });

  it('falls back to a tone when the caller said nothing yet', () => {
    const answer = echoAnswer({ ...CTX, lastUserAudio: null });
    expect(answer.audio.length).toBe(1000 * 24);
  });

  it('keeps all-quiet input whole rather than echoing nothing', () => {
    expect(speechSpan(new Int16Array(2400))).toEqual({ start: 0, end: 2400 });
  });

  it('has a click-free earcon: it starts and ends at silence', () => {
    expect(Math.abs(EARCON[0] ?? 1)).toBeLessThan(50);
    expect(Math.abs(EARCON[90 * 24 - 1] ?? 1)).toBeLessThan(50);
  });
});
