/**
 * The embedded local model's voice: an echo agent. Each spoken turn is answered with a short
 * rising two-note earcon followed by the caller's last utterance, played back. No key, no
 * network, yet every part of the bridge (turns, streaming, barge-in, truncation) runs for real,
 * and a person hears at once which sentence the model "answered".
 *
 * It also plays the phone agent's scripted moments, chosen by the response's `metadata.purpose`
 * and the newest conversation items: the greeting (with "Press 9 to hang up." when `end_call` is
 * declared), keypad entries read back (9 calls `end_call`), tool results, reminders, goodbyes.
 * Fixed phrases and digit words are pre-rendered clips (voice/, see its README); any other text
 * is "spoken" as a quiet syllable-modulated tone of realistic length, its transcript exact.
 */
import { KEYPAD_ENTRY_PREFIX } from '../../call/agent-script.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resampleOffline } from '../audio/offline-resample.js';
import { readWav } from '../audio/wav.js';
import type { Answer, AnswerContext, AnswerSource } from './conversation.js';
import { PCM16_24K_SAMPLES_PER_MS, concatSamples, defaultAnswer } from './conversation.js';

const SAMPLE_RATE_HZ = 24_000;
const EARCON_NOTES_HZ = [660, 880] as const;
const EARCON_NOTE_MS = 90;
const EARCON_GAP_MS = 40;
const EARCON_FADE_MS = 10;
/** −18 dBFS peak: clearly audible, never louder than speech */
const EARCON_AMPLITUDE = Math.round(32767 * 0.125);
/** Silence kept before and after the echoed speech, so it does not start or end abruptly. */
const ECHO_MARGIN_MS = 120;
/** A 10 ms frame quieter than this (RMS, about −50 dBFS) counts as silence when trimming. */
const TRIM_RMS = 100;

/** The earcon, built once: it never changes. */
export const EARCON: Int16Array = buildEarcon();

function buildEarcon(): Int16Array {
  const noteSamples = EARCON_NOTE_MS * PCM16_24K_SAMPLES_PER_MS;
  const gapSamples = EARCON_GAP_MS * PCM16_24K_SAMPLES_PER_MS;
  const fadeSamples = EARCON_FADE_MS * PCM16_24K_SAMPLES_PER_MS;
  const out = new Int16Array(EARCON_NOTES_HZ.length * (noteSamples + gapSamples));
  EARCON_NOTES_HZ.forEach((hz, n) => {
    const offset = n * (noteSamples + gapSamples);
    for (let i = 0; i < noteSamples; i++) {
      // Raised-cosine fades keep the note edges free of clicks.
      const edge = Math.min(i, noteSamples - 1 - i);
      const gain = edge >= fadeSamples ? 1 : 0.5 - 0.5 * Math.cos((Math.PI * edge) / fadeSamples);
      out[offset + i] = Math.round(EARCON_AMPLITUDE * gain * Math.sin((2 * Math.PI * hz * i) / SAMPLE_RATE_HZ));
    }
  });
  return out;
}

/** The span of `audio` that holds speech, with a margin; the whole input when it is all quiet. */
export function speechSpan(audio: Int16Array): { start: number; end: number } {
  const frame = 10 * PCM16_24K_SAMPLES_PER_MS;
  const loud = (f: number): boolean => {
    let sum = 0;
    const end = Math.min(audio.length, f + frame);
    for (let i = f; i < end; i++) sum += (audio[i] ?? 0) ** 2;
    return Math.sqrt(sum / Math.max(1, end - f)) >= TRIM_RMS;
  };
  let first = -1;
  let last = -1;
  for (let f = 0; f < audio.length; f += frame) {
    if (!loud(f)) continue;
    if (first < 0) first = f;
    last = f + frame;
  }
  if (first < 0) return { start: 0, end: audio.length };
  const margin = ECHO_MARGIN_MS * PCM16_24K_SAMPLES_PER_MS;
  return { start: Math.max(0, first - margin), end: Math.min(audio.length, last + margin) };
}

// ---------------------------------------------------------------- voice clips

/** The pre-rendered clips in voice/: 8 kHz mono mu-law WAV, one per fixed phrase or word. */
export const VOICE_CLIP_NAMES = [
  'greeting',
  'press-9-to-hang-up',
  'you-pressed',
  'you-said',
  'goodbye',
  'here-is-what-i-found',
  'are-you-still-there',
  'transfer-failed',
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'star',
  'pound',
] as const;
export type VoiceClipName = (typeof VOICE_CLIP_NAMES)[number];

const MODULE_DIR = dirname(fileURLToPath(import.meta.url));
/**
 * Next to this module (running from src/ with tsx or vitest), else the sources' copy when running
 * the compiled dist/tooling/local-model/ (tsc does not copy the clips).
 */
const VOICE_DIRS = [join(MODULE_DIR, 'voice'), join(MODULE_DIR, '..', '..', '..', 'src', 'tooling', 'local-model', 'voice')];

const clipCache = new Map<VoiceClipName, Int16Array>();

function clipPath(name: VoiceClipName): string | null {
  for (const dir of VOICE_DIRS) {
    const path = join(dir, `${name}.wav`);
    if (existsSync(path)) return path;
  }
  return null;
}

/** A clip as PCM16 24 kHz mono, read from disk once. Throws when the clip file is missing. */
export function loadVoiceClip(name: VoiceClipName): Int16Array {
  const cached = clipCache.get(name);
  if (cached) return cached;
  const path = clipPath(name);
  if (!path) throw new Error(`voice clip '${name}.wav' not found in ${VOICE_DIRS.join(' or ')}`);
  const wav = readWav(readFileSync(path));
  if (wav.channels !== 1) throw new Error(`voice clip ${path} has ${wav.channels} channels; mono expected`);
  const pcm = resampleOffline(wav.samples, wav.sampleRate, SAMPLE_RATE_HZ);
  clipCache.set(name, pcm);
  return pcm;
}

/** The clip, or null when it cannot be loaded (the text is then synthesized instead). */
function tryClip(name: VoiceClipName): Int16Array | null {
  try {
    return loadVoiceClip(name);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- synthetic speech

/** Length of one synthetic word, gap included: about the pace of conversational speech. */
export const SYNTHETIC_WORD_MS = 320;
const SYNTHETIC_WORD_GAP_MS = 60;
/** −20 dBFS peak: quiet, clearly not a real voice. */
const SYNTHETIC_AMPLITUDE = Math.round(32767 * 0.1);
const SYNTHETIC_HARMONICS = [1, 0.5, 0.33, 0.25] as const;
const SYNTHETIC_HARMONIC_SUM = SYNTHETIC_HARMONICS.reduce((a, b) => a + b, 0);

function syllableCount(word: string): number {
  const groups = word.toLowerCase().match(/[aeiouy]+/g)?.length ?? 0;
  return Math.min(4, Math.max(1, groups));
}

function wordPitchHz(word: string): number {
  let h = 0;
  for (const ch of word) h = (h * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return 110 + (h % 50);
}

/**
 * Text with no clip, rendered as speech-like sound: per word, SYNTHETIC_WORD_MS of a harmonic
 * tone whose loudness rises and falls once per syllable, then a short pause.
 */
export function syntheticSpeech(text: string): Int16Array {
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  const wordSamples = SYNTHETIC_WORD_MS * PCM16_24K_SAMPLES_PER_MS;
  const voiced = (SYNTHETIC_WORD_MS - SYNTHETIC_WORD_GAP_MS) * PCM16_24K_SAMPLES_PER_MS;
  const out = new Int16Array(words.length * wordSamples);
  words.forEach((word, w) => {
    const syllables = syllableCount(word);
    const f0 = wordPitchHz(word);
    const offset = w * wordSamples;
    for (let i = 0; i < voiced; i++) {
      const pos = (i * syllables) / voiced;
      const envelope = Math.sin(Math.PI * (pos - Math.floor(pos)));
      // A gentle fall in pitch over the word, as in speech.
      const hz = f0 * (1.1 - (0.2 * i) / voiced);
      const t = i / SAMPLE_RATE_HZ;
      let v = 0;
      SYNTHETIC_HARMONICS.forEach((gain, h) => (v += gain * Math.sin(2 * Math.PI * hz * (h + 1) * t)));
      out[offset + i] = Math.round((SYNTHETIC_AMPLITUDE * envelope * v) / SYNTHETIC_HARMONIC_SUM);
    }
  });
  return out;
}

// ---------------------------------------------------------------- phrases

export const DEFAULT_GREETING = 'Hello, this is the callbridge echo agent. Say something and I will say it back.';
export const HANG_UP_HINT = 'Press 9 to hang up.';
export const GOODBYE = 'Goodbye!';
export const REMINDER = 'Are you still there?';
export const TRANSFER_FAILED = 'Sorry, I could not transfer your call. How else can I help?';
export const TOOL_RESULT_PREFIX = 'Here is what I found:';
/** Characters of a tool's output read back. */
export const TOOL_OUTPUT_READ_CHARS = 200;

/** The bridge's wording for a fixed-text response. */
const SAY_EXACTLY_RE = /Say exactly this, word for word, and nothing else: "(.*)"/;
const KEYPAD_RE = new RegExp(`^${KEYPAD_ENTRY_PREFIX}([0-9*#]+)$`);
const END_CALL = 'end_call';

const PHRASE_GAP_MS = 100;
const DIGIT_GAP_MS = 120;

const DIGIT_CLIPS: Record<string, VoiceClipName> = {
  '0': 'zero',
  '1': 'one',
  '2': 'two',
  '3': 'three',
  '4': 'four',
  '5': 'five',
  '6': 'six',
  '7': 'seven',
  '8': 'eight',
  '9': 'nine',
  '*': 'star',
  '#': 'pound',
};

/** One piece of an answer's audio: a clip (its text synthesized when the clip is missing), text, or a pause. */
type Piece = { clip: VoiceClipName; text: string } | { text: string } | { pauseMs: number };

function render(pieces: readonly Piece[]): Int16Array {
  const parts = pieces.map((p) => {
    if ('pauseMs' in p) return new Int16Array(p.pauseMs * PCM16_24K_SAMPLES_PER_MS);
    if ('clip' in p) return tryClip(p.clip) ?? syntheticSpeech(p.text);
    return syntheticSpeech(p.text);
  });
  return concatSamples(parts, parts.reduce((n, p) => n + p.length, 0));
}

function say(transcript: string, pieces: readonly Piece[]): Answer {
  return { audio: render(pieces), transcript };
}

/** The quoted text of the bridge's fixed-text instructions, if any. */
export function extractExactText(instructions: string): string | null {
  const m = SAY_EXACTLY_RE.exec(instructions);
  return m?.[1] !== undefined && m[1].trim().length > 0 ? m[1] : null;
}

function mayCall(ctx: AnswerContext, name: string): boolean {
  const choice = ctx.toolChoice ?? 'auto';
  if (choice === 'none' || !(ctx.tools ?? []).includes(name)) return false;
  return typeof choice === 'string' || choice.name === name;
}

function greeting(ctx: AnswerContext): Answer {
  const text = extractExactText(ctx.instructions) ?? DEFAULT_GREETING;
  const pieces: Piece[] = [text === DEFAULT_GREETING ? { clip: 'greeting', text } : { text }];
  if (!(ctx.tools ?? []).includes(END_CALL)) return say(text, pieces);
  pieces.push({ pauseMs: PHRASE_GAP_MS }, { clip: 'press-9-to-hang-up', text: HANG_UP_HINT });
  return say(`${text} ${HANG_UP_HINT}`, pieces);
}

function keypad(digits: string, ctx: AnswerContext): Answer {
  if (digits === '9' && mayCall(ctx, END_CALL)) {
    return { audio: new Int16Array(0), transcript: '', functionCall: { name: END_CALL, arguments: '{}' } };
  }
  const pieces: Piece[] = [{ clip: 'you-pressed', text: 'You pressed' }];
  for (const d of digits) pieces.push({ pauseMs: DIGIT_GAP_MS }, { clip: DIGIT_CLIPS[d] ?? 'star', text: d });
  return say(`You pressed ${[...digits].join(' ')}.`, pieces);
}

function toolResult(name: string, output: string): Answer {
  if (name === END_CALL) return say(GOODBYE, [{ clip: 'goodbye', text: GOODBYE }]);
  const read = output.slice(0, TOOL_OUTPUT_READ_CHARS).trim();
  if (read.length === 0) return say(TOOL_RESULT_PREFIX, [{ clip: 'here-is-what-i-found', text: TOOL_RESULT_PREFIX }]);
  return say(`${TOOL_RESULT_PREFIX} ${read}`, [{ clip: 'here-is-what-i-found', text: TOOL_RESULT_PREFIX }, { pauseMs: PHRASE_GAP_MS }, { text: read }]);
}

function echo(ctx: AnswerContext): Answer {
  if (ctx.lastUserAudio === null || ctx.lastUserAudio.length === 0) {
    const text = ctx.lastUserText?.trim();
    if (!text) return defaultAnswer(ctx);
    return say(`You said: ${text}`, [{ clip: 'you-said', text: 'You said' }, { pauseMs: PHRASE_GAP_MS }, { text }]);
  }
  const { start, end } = speechSpan(ctx.lastUserAudio);
  const speech = ctx.lastUserAudio.subarray(start, end);
  const audio = new Int16Array(EARCON.length + speech.length);
  audio.set(EARCON, 0);
  audio.set(speech, EARCON.length);
  const heardAs = ctx.lastUserTranscript ?? `${Math.round(speech.length / PCM16_24K_SAMPLES_PER_MS)} ms of speech`;
  return { audio, transcript: `You said: ${heardAs}` };
}

/**
 * The default answer source. By priority: the response's purpose (greeting, goodbye, reminder,
 * transfer-failed), a function output just added (end_call: goodbye; else its result read
 * back), a keypad entry (9 with `end_call` declared: a call to end_call, no audio), then the
 * echo of the caller's last turn (a tone when there is none).
 */
export const echoAnswer: AnswerSource = (ctx: AnswerContext): Answer => {
  switch (ctx.metadata?.purpose) {
    case 'greeting':
      return greeting(ctx);
    case 'goodbye':
      return say(GOODBYE, [{ clip: 'goodbye', text: GOODBYE }]);
    case 'reminder':
      return say(REMINDER, [{ clip: 'are-you-still-there', text: REMINDER }]);
    case 'transfer-failed':
      return say(TRANSFER_FAILED, [{ clip: 'transfer-failed', text: TRANSFER_FAILED }]);
    default:
      break;
  }
  const fnOutput = ctx.lastFunctionOutput;
  if (fnOutput) return toolResult(fnOutput.name, fnOutput.output);
  const keys = ctx.lastUserText ? KEYPAD_RE.exec(ctx.lastUserText.trim()) : null;
  if (keys?.[1]) return keypad(keys[1], ctx);
  return echo(ctx);
};
