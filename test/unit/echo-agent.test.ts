import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AnswerContext } from '../../src/tooling/local-model/conversation.js';
import {
  DEFAULT_GREETING,
  EARCON,
  SYNTHETIC_WORD_MS,
  VOICE_CLIP_NAMES,
  echoAnswer,
  extractExactText,
  loadVoiceClip,
  speechSpan,
  syntheticSpeech,
} from '../../src/tooling/local-model/echo-agent.js';

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

// ---------------------------------------------------------------- the phone agent's moments

/** A context as the Conversation builds it. */
function ctx(over: Partial<AnswerContext> = {}): AnswerContext {
  return {
    lastUserAudio: null,
    lastUserTranscript: null,
    responseIndex: 0,
    instructions: '',
    tools: [],
    toolChoice: 'auto',
    metadata: null,
    lastUserText: null,
    lastFunctionOutput: null,
    ...over,
  };
}

const GREETING_INSTRUCTIONS = 'Say exactly this, word for word, and nothing else: "Thanks for calling Acme Dental, how can I help?"';

function rmsOf(samples: Int16Array): number {
  let sum = 0;
  for (const v of samples) sum += v * v;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

function ms(samples: Int16Array): number {
  return samples.length / 24;
}

describe('echo agent: greeting, keypad, tools', () => {
  it('speaks the quoted greeting text, with "Press 9 to hang up." only when end_call is declared', () => {
    const plain = echoAnswer(ctx({ metadata: { purpose: 'greeting' }, instructions: GREETING_INSTRUCTIONS, tools: ['lookup'] }));
    expect(plain.transcript).toBe('Thanks for calling Acme Dental, how can I help?');
    expect(plain.functionCall).toBeUndefined();
    const withHint = echoAnswer(ctx({ metadata: { purpose: 'greeting' }, instructions: GREETING_INSTRUCTIONS, tools: ['lookup', 'end_call'] }));
    expect(withHint.transcript).toBe('Thanks for calling Acme Dental, how can I help? Press 9 to hang up.');
    // 9 synthetic words, then the hint clip.
    expect(ms(plain.audio)).toBeCloseTo(9 * SYNTHETIC_WORD_MS, 0);
    expect(ms(withHint.audio)).toBeGreaterThan(ms(plain.audio) + 800);
    expect(rmsOf(withHint.audio)).toBeGreaterThan(200);
  });

  it('greets with the demo greeting clip when the instructions quote no text', () => {
    const answer = echoAnswer(ctx({ metadata: { purpose: 'greeting' }, instructions: 'Greet the caller warmly.' }));
    expect(answer.transcript).toBe(DEFAULT_GREETING);
    expect(answer.audio).toEqual(loadVoiceClip('greeting'));
    expect(echoAnswer(ctx({ metadata: { purpose: 'greeting' }, tools: ['end_call'] })).transcript).toBe(`${DEFAULT_GREETING} Press 9 to hang up.`);
    expect(extractExactText('Say exactly this, word for word, and nothing else: "He said "hi" to me."')).toBe('He said "hi" to me.');
  });

  it('answers "Keypad entry: 9" with an end_call function call and no audio when end_call is declared', () => {
    const answer = echoAnswer(ctx({ metadata: { purpose: 'answer' }, tools: ['end_call'], lastUserText: 'Keypad entry: 9' }));
    expect(answer.audio.length).toBe(0);
    expect(answer.functionCall).toEqual({ name: 'end_call', arguments: '{}' });
    // Without end_call (or with tool_choice none) it just reads the key back.
    expect(echoAnswer(ctx({ lastUserText: 'Keypad entry: 9' })).transcript).toBe('You pressed 9.');
    const none = echoAnswer(ctx({ tools: ['end_call'], toolChoice: 'none', lastUserText: 'Keypad entry: 9' }));
    expect(none.functionCall).toBeUndefined();
    expect(none.transcript).toBe('You pressed 9.');
  });

  it('reads other keypad entries back digit by digit', () => {
    const answer = echoAnswer(ctx({ metadata: { purpose: 'answer' }, tools: ['end_call'], lastUserText: 'Keypad entry: 42' }));
    expect(answer.transcript).toBe('You pressed 4 2.');
    expect(answer.functionCall).toBeUndefined();
    const expected = ms(loadVoiceClip('you-pressed')) + 2 * 120 + ms(loadVoiceClip('four')) + ms(loadVoiceClip('two'));
    expect(ms(answer.audio)).toBeCloseTo(expected, 0);
    expect(echoAnswer(ctx({ lastUserText: 'Keypad entry: 1*#' })).transcript).toBe('You pressed 1 * #.');
  });

  it('says goodbye after the end_call output, and reads other tool results', () => {
    const bye = echoAnswer(ctx({ metadata: { purpose: 'tool-output' }, lastFunctionOutput: { callId: 'call_1', name: 'end_call', output: '{"ok":true}' } }));
    expect(bye.transcript).toBe('Goodbye!');
    expect(bye.audio).toEqual(loadVoiceClip('goodbye'));
    expect(echoAnswer(ctx({ metadata: { purpose: 'goodbye' } })).transcript).toBe('Goodbye!');
    const long = 'x'.repeat(150) + ' ' + 'y'.repeat(100);
    const found = echoAnswer(ctx({ lastUserText: 'Keypad entry: 1', lastFunctionOutput: { callId: 'call_2', name: 'lookup', output: long } }));
    expect(found.transcript).toBe(`Here is what I found: ${long.slice(0, 200)}`);
  });

  it('asks whether the caller is still there, and apologizes for a failed transfer', () => {
    expect(echoAnswer(ctx({ metadata: { purpose: 'reminder' } })).transcript).toBe('Are you still there?');
    const failed = echoAnswer(ctx({ metadata: { purpose: 'transfer-failed' } }));
    expect(failed.transcript).toBe('Sorry, I could not transfer your call. How else can I help?');
    expect(failed.audio).toEqual(loadVoiceClip('transfer-failed'));
  });

  it('still echoes spoken turns for purpose answer, and reads back typed text', () => {
    const spoken = echoAnswer(ctx({ metadata: { purpose: 'answer' }, lastUserAudio: speechWithSilence(100, 300), lastUserTranscript: 'hi' }));
    expect(spoken.transcript).toBe('You said: hi');
    expect(spoken.audio.subarray(0, EARCON.length)).toEqual(EARCON);
    expect(echoAnswer(ctx({ lastUserText: 'hello there' })).transcript).toBe('You said: hello there');
  });
});

describe('echo agent: voice', () => {
  it('loads every clip as non-silent 24 kHz speech, all clips together under 300 KB on disk', () => {
    for (const name of VOICE_CLIP_NAMES) {
      const clip = loadVoiceClip(name);
      expect(ms(clip), name).toBeGreaterThan(200);
      expect(ms(clip), name).toBeLessThan(6000);
      expect(rmsOf(clip), name).toBeGreaterThan(1000);
      let peak = 0;
      for (const v of clip) peak = Math.max(peak, Math.abs(v));
      expect(peak, name).toBeGreaterThan(8000);
    }
    const dir = join(import.meta.dirname, '../../src/tooling/local-model/voice');
    const bytes = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    expect(bytes).toBeLessThan(300 * 1024);
  });

  it('renders text with no clip as quiet speech-like sound of about 320 ms per word', () => {
    const audio = syntheticSpeech('one two three four five');
    expect(ms(audio)).toBe(5 * SYNTHETIC_WORD_MS);
    let peak = 0;
    for (const v of audio) peak = Math.max(peak, Math.abs(v));
    expect(peak).toBeLessThanOrEqual(Math.round(32767 * 0.1));
    expect(rmsOf(audio)).toBeGreaterThan(500);
    // Syllables: the level rises and falls inside each word, with a pause between words.
    expect(rmsOf(audio.subarray(300 * 24, 320 * 24))).toBe(0);
  });
});
