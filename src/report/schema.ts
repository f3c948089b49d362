/**
 * The post-call report, `callbridge.report/1`: one JSON document per call, written to REPORTS_DIR,
 * POSTed to CALL_REPORT_URL and written by `npm run replay` as report.json. docs/report.md
 * documents every field; a change that removes or retypes a field needs a new format version.
 */
import type { EndReason } from '../call/session.js';

export const REPORT_FORMAT = 'callbridge.report/1';

/** How a call ended, in the report's words (the session's EndReason, for people). */
export const REPORT_END_REASONS = [
  'caller-hung-up',
  'agent-ended',
  'transferred',
  'idle',
  'voicemail',
  'upstream-failed',
  'max-duration',
  'shutdown',
  'protocol-violation',
  'error',
] as const;
export type ReportEndReason = (typeof REPORT_END_REASONS)[number];

/**
 * As callbridge_calls_total names them (src/server/call-observer.ts), but for the two ways Twilio
 * tells of a hang-up (`stop`, or the socket closing without one), which a report reader cannot
 * tell apart and need not: both are the caller hanging up. `unauthorized` streams get no report.
 */
export const REPORT_END_REASON_BY_SESSION: Record<Exclude<EndReason, 'unauthorized'>, ReportEndReason> = {
  'twilio-stop': 'caller-hung-up',
  'twilio-closed': 'caller-hung-up',
  'agent-ended': 'agent-ended',
  transferred: 'transferred',
  idle: 'idle',
  voicemail: 'voicemail',
  'upstream-failed': 'upstream-failed',
  'max-duration': 'max-duration',
  shutdown: 'shutdown',
  'protocol-violation': 'protocol-violation',
};

export interface AgentTurn {
  role: 'agent';
  /** ms since the call started (its stream's `start`): the item's first audio sent, else its first event. */
  atMs: number;
  itemId: string;
  responseId: string | null;
  /** Why the bridge asked for the response: greeting, answer, tool-output, reminder, goodbye, transfer-failed. */
  purpose: string | null;
  /** Everything the model said in this item. */
  text: string;
  /** What the caller heard of it: `text` cut at the heard position (docs/report.md, heardText). */
  heardText: string;
  /** The caller barged in on it. */
  interrupted: boolean;
  /** ms of audio the model produced for it. */
  audioMs: number;
  /** ms of it the caller heard. */
  heardMs: number;
}

export interface CallerTurn {
  role: 'caller';
  /** speech_started, ms since the call started. */
  atMs: number;
  /** speech_stopped; null if the call ended mid-speech. */
  endMs: number | null;
  itemId: string | null;
  /** The server's transcription; null without `transcriptionModel` in the agent config. */
  text: string | null;
}

export type TranscriptEntry = AgentTurn | CallerTurn;

export interface ReportInterruption {
  /** `clear` sent: the agent went quiet for the caller. */
  atMs: number;
  /** What cut the agent off: the caller's speech (server VAD) or a key. */
  by: 'speech' | 'keypad';
  responseId: string | null;
  itemId: string | null;
  /** ms of the cut item the caller had heard: the truncation point sent to the model. */
  heardMs: number;
  /** speech_started (or the key) arriving → clear sent. */
  reactionMs: number | null;
  /** A response.cancel went with it (the response was still generating). */
  cancelled: boolean;
}

export interface ReportToolCall {
  /** ms since the call started: the call was complete and ran (or first appeared, if it never ran). */
  atMs: number;
  callId: string;
  name: string;
  /** As the model wrote them (JSON text, possibly invalid). */
  arguments: string;
  /** false for calls of a cancelled response: never run, no output. */
  ran: boolean;
  /** true: `output`; false: `error`; null: no output was sent. */
  ok: boolean | null;
  output?: string;
  error?: string;
  /** atMs → output written; null without one. */
  durationMs: number | null;
}

export interface ReportKeypadEntry {
  atMs: number;
  digits: string;
}

export interface LatencyFigures {
  count: number;
  p50: number;
  p95: number;
  max: number;
}

export interface CallReport {
  format: typeof REPORT_FORMAT;
  /** When the report was made, ms since the epoch; signed with the body, so a receiver can refuse old ones. */
  timestamp: number;
  callSid: string;
  streamSid: string;
  /** The caller's number (the stream's `from` parameter); null when not passed. */
  from: string | null;
  /** The number dialled (`to`); null when not passed. */
  to: string | null;
  /** Twilio's call direction (`direction` parameter); `inbound` when not passed. */
  direction: string;
  /** The agent profile that answered (the session's, per number or AGENT_CONFIG_URL), else the stream's `profile` parameter; null when none was named. */
  profile: string | null;
  /** This stream brought the caller back from a transfer the target did not take. */
  resumed: boolean;
  /** ISO 8601: the stream's `start` arrived. */
  startedAt: string;
  /** ISO 8601: the call ended (both sockets closed). */
  endedAt: string;
  durationMs: number;
  endReason: ReportEndReason;
  /** The session's own end reason, finer than endReason (`twilio-stop`, `twilio-closed`, …); null when unknown. */
  sessionEndReason: string | null;
  /** Agent and caller turns in time order. */
  transcript: TranscriptEntry[];
  interruptions: ReportInterruption[];
  toolCalls: ReportToolCall[];
  keypad: ReportKeypadEntry[];
  latency: {
    /** Caller's turn ended (speech_stopped) → first agent audio sent. */
    firstAudioMs: LatencyFigures | null;
    /** Barge-in: speech_started (or key) → clear sent. */
    bargeInReactionMs: LatencyFigures | null;
  };
  apiErrors: {
    count: number;
    /** By error code; `unknown` without one, `other` past 32 distinct codes. */
    byCode: Record<string, number>;
    /** The first 200 in full. */
    errors: Array<{ atMs: number; code: string | null; type: string | null; message: string }>;
  };
  /** Upstream connections re-established mid-call. */
  upstreamReconnects: number;
  /** Entries left out of the lists above by the per-call limits (docs/report.md, Limits); all 0 on an ordinary call. */
  omitted: Record<string, number>;
}
