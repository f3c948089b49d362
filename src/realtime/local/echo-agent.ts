/**
 * The embedded local model's voice: an echo agent. Each answer is a short rising two-note earcon
 * followed by the caller's last utterance, played back. No key, no network, yet every part of
 * the bridge (turns, streaming, barge-in, truncation) runs for real, and a person hears at once
 * which sentence the model "answered".
 */
import type { Answer, AnswerContext, AnswerSource } from './conversation.js';
import { PCM16_24K_SAMPLES_PER_MS, defaultAnswer } from './conversation.js';

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

export const echoAnswer: AnswerSource = (ctx: AnswerContext): Answer => {
  if (ctx.lastUserAudio === null || ctx.lastUserAudio.length === 0) return defaultAnswer(ctx);
  const { start, end } = speechSpan(ctx.lastUserAudio);
  const speech = ctx.lastUserAudio.subarray(start, end);
  const audio = new Int16Array(EARCON.length + speech.length);
  audio.set(EARCON, 0);
  audio.set(speech, EARCON.length);
  const heardAs = ctx.lastUserTranscript ?? `${Math.round(speech.length / PCM16_24K_SAMPLES_PER_MS)} ms of speech`;
  return { audio, transcript: `You said: ${heardAs}` };
};
