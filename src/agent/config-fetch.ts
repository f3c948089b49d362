/**
 * AGENT_CONFIG_URL: one signed POST per call asking which agent should answer it. Started by the
 * webhook while Twilio is still connecting the call, so that by the stream's `start` the answer
 * is usually in; the stream takes it from here. A stream that lands in a process that did not
 * answer its webhook (another replica or worker) finds nothing and asks then, alongside the
 * upstream connect.
 *
 * Outcomes are values, never exceptions: whatever the endpoint does, the call goes on with its
 * static profile. The per-call cache is bounded in age and size: a call whose stream never comes
 * must not hold its entry.
 */
import { createHash } from 'node:crypto';
import { SIGNATURE_HEADER, describeFetchFailure, readBounded, toolSignature } from '../call/http-tool.js';

/** The largest answer read: instructions can be long, but not this long. */
export const MAX_AGENT_CONFIG_BYTES = 64 * 1024;
/**
 * How long a fetched answer waits for its stream. Twilio opens the stream within a second or two
 * of the webhook's answer; the call token expires after a minute anyway.
 */
export const AGENT_CONFIG_CACHE_TTL_MS = 30_000;
/** Answers kept at most; past it the oldest go (their streams, if they come, ask again). */
export const MIN_AGENT_CONFIG_CACHE_ENTRIES = 1000;

/** What the endpoint is told of the call; `timestamp` is added when the request is made. */
export interface AgentConfigRequest {
  callSid: string;
  from: string | null;
  to: string | null;
  direction: string | null;
}

export type AgentConfigAnswer =
  /** a 2xx answer: its JSON, or null for an empty body (nothing to override) */
  | { outcome: 'answer'; body: unknown }
  | { outcome: 'timeout' | 'error' | 'invalid'; detail: string };

export interface AgentConfigFetcherOptions {
  url: string;
  /** TOOLS_SECRET: the X-Callbridge-Signature key, as for http tools; null: unsigned */
  secret: string | null;
  timeoutMs: number;
  /** ms since the epoch: the body's `timestamp` and the cache's ages */
  wallClock: () => number;
  maxEntries?: number;
  ttlMs?: number;
}

interface Entry {
  /** digest of the request: a stream that describes its call otherwise asks anew */
  key: string;
  atMs: number;
  answer: Promise<AgentConfigAnswer>;
}

export class AgentConfigFetcher {
  private readonly entries = new Map<string, Entry>();
  /** aborts every request still running when the server closes */
  private readonly closing = new AbortController();
  private readonly maxEntries: number;
  private readonly ttlMs: number;

  constructor(private readonly options: AgentConfigFetcherOptions) {
    this.maxEntries = options.maxEntries ?? MIN_AGENT_CONFIG_CACHE_ENTRIES;
    this.ttlMs = options.ttlMs ?? AGENT_CONFIG_CACHE_TTL_MS;
  }

  /** The webhook answered the call: ask now, so the answer is ready for its stream. */
  prefetch(request: AgentConfigRequest): void {
    const now = this.options.wallClock();
    this.evict(now);
    // A replayed webhook replaces the entry: its stream (if any) takes the newer request.
    this.entries.delete(request.callSid);
    this.entries.set(request.callSid, { key: keyOf(request), atMs: now, answer: this.fetch(request) });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /**
   * The call's answer: the webhook's request if this process made one for the same call facts
   * (awaited if still running; its own timeout bounds the wait), else a request made now.
   */
  take(request: AgentConfigRequest): Promise<AgentConfigAnswer> {
    this.evict(this.options.wallClock());
    const entry = this.entries.get(request.callSid);
    this.entries.delete(request.callSid);
    if (entry !== undefined && entry.key === keyOf(request)) return entry.answer;
    return this.fetch(request);
  }

  /** Entries held (for tests and the bound). */
  get size(): number {
    return this.entries.size;
  }

  close(): void {
    this.closing.abort();
    this.entries.clear();
  }

  private evict(now: number): void {
    for (const [callSid, entry] of this.entries) {
      // Insertion order is age order: the first young entry ends the sweep.
      if (now - entry.atMs <= this.ttlMs) break;
      this.entries.delete(callSid);
    }
  }

  private async fetch(request: AgentConfigRequest): Promise<AgentConfigAnswer> {
    const { url, secret, timeoutMs } = this.options;
    const body = JSON.stringify({ ...request, timestamp: this.options.wallClock() });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (secret !== null) headers[SIGNATURE_HEADER] = toolSignature(secret, body);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([timeout, this.closing.signal]);
    const origin = new URL(url).origin;
    const failed = (err: unknown, stage: string): AgentConfigAnswer =>
      timeout.aborted
        ? { outcome: 'timeout', detail: `no answer within ${timeoutMs} ms` }
        : { outcome: 'error', detail: `${this.closing.signal.aborted ? 'cancelled: the server is closing' : describeFetchFailure(err, origin)}${stage}` };

    let response: Response;
    try {
      response = await fetch(url, { method: 'POST', headers, body, signal, redirect: 'error' });
    } catch (err) {
      return failed(err, '');
    }
    try {
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        return { outcome: 'error', detail: `answered HTTP ${response.status}` };
      }
      const { bytes, overflow } = await readBounded(response.body, MAX_AGENT_CONFIG_BYTES);
      if (overflow) return { outcome: 'error', detail: `answered more than ${MAX_AGENT_CONFIG_BYTES} bytes` };
      const text = new TextDecoder().decode(bytes);
      if (text.trim() === '') return { outcome: 'answer', body: null };
      try {
        return { outcome: 'answer', body: JSON.parse(text) as unknown };
      } catch (err) {
        return { outcome: 'invalid', detail: `the answer is not JSON (${(err as Error).message}): ${JSON.stringify(text.slice(0, 80))}` };
      }
    } catch (err) {
      return failed(err, ' while sending its answer');
    }
  }
}

function keyOf(request: AgentConfigRequest): string {
  return createHash('sha256').update(JSON.stringify([request.callSid, request.from, request.to, request.direction])).digest('hex');
}
