/**
 * Runs a configured `http` tool: one signed JSON POST per function call the model makes.
 *
 * The outcome is always a value, never an exception: the model has to be told something whatever
 * happens, so every failure becomes a sentence it can relay ("tool X timed out after 3000 ms") and
 * that an operator reading the logs can act on. The body is read as a stream under a hard byte
 * limit, so a tool that answers too much (or forever) costs at most MAX_TOOL_RESPONSE_BYTES.
 */
import { createHmac } from 'node:crypto';
import type { HttpTool } from '../config.js';

/** Largest 2xx body passed on to the model; a larger answer fails the call to the tool. */
export const MAX_TOOL_RESPONSE_BYTES = 16 * 1024;
/** How much of a non-2xx body is quoted in the error. */
const ERROR_EXCERPT_CHARS = 200;
/** Bytes read from a non-2xx body to find that excerpt (a UTF-8 character is at most 4 bytes). */
const ERROR_EXCERPT_BYTES = ERROR_EXCERPT_CHARS * 4;

import type { ToolOutcome } from './tool-calls.js';
export type { ToolOutcome };

export interface HttpToolRequest {
  /** the function name the model called */
  name: string;
  /** the parsed arguments object the model supplied */
  arguments: unknown;
  callSid: string;
  from: string | null;
  to: string | null;
}

export interface HttpToolOptions {
  /** HMAC key for X-Callbridge-Signature; null: the request goes unsigned. */
  secret: string | null;
  /** Aborts the request when the call ends. */
  signal?: AbortSignal;
}

export const SIGNATURE_HEADER = 'X-Callbridge-Signature';

/** `sha256=` + hex HMAC-SHA256 of the exact body, keyed with the shared secret. */
export function toolSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** Why fetch() failed before any answer, from undici's `TypeError('fetch failed', { cause })`. */
export function describeFetchFailure(err: unknown, origin: string): string {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  // Node 20 reports a refused dual-stack connect as an AggregateError whose members carry the code.
  const errors = cause instanceof AggregateError ? cause.errors : [];
  const codes = [code, ...errors.map((e: unknown) => (typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined))];
  if (codes.includes('ECONNREFUSED')) return `could not connect to ${origin}: connection refused`;
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) return `could not connect to ${origin}: host not found`;
  if (codes.includes('ECONNRESET') || codes.includes('UND_ERR_SOCKET')) return `lost the connection to ${origin}`;
  const message = cause instanceof Error ? cause.message : String(cause);
  if (message === 'unexpected redirect') return `answered with a redirect from ${origin}; tool URLs must answer directly`;
  const detail = message !== '' ? message : typeof code === 'string' ? code : 'unknown error';
  return `failed on ${origin}: ${detail}`;
}

export interface BoundedBody {
  bytes: Uint8Array;
  /** true when the body went past the limit and reading stopped there */
  overflow: boolean;
}

/** Reads at most `limit` bytes (+ one chunk), then cancels the stream, which closes the connection. */
export async function readBounded(body: ReadableStream<Uint8Array> | null, limit: number): Promise<BoundedBody> {
  if (body === null) return { bytes: new Uint8Array(0), overflow: false };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        return { bytes: concat(chunks, total), overflow: true };
      }
    }
  } finally {
    reader.releaseLock();
  }
  return { bytes: concat(chunks, total), overflow: false };
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'an invalid URL';
  }
}

export async function runHttpTool(tool: HttpTool, request: HttpToolRequest, options: HttpToolOptions): Promise<ToolOutcome> {
  const name = tool.name;
  const fail = (error: string): ToolOutcome => ({ ok: false, error });
  const callSignal = options.signal;
  if (callSignal?.aborted) return fail(`tool ${name} was cancelled: the call ended`);

  let body: string;
  try {
    body = JSON.stringify({
      name: request.name,
      arguments: request.arguments === undefined ? null : request.arguments,
      callSid: request.callSid,
      from: request.from,
      to: request.to,
    });
  } catch (err) {
    return fail(`tool ${name} was not called: its arguments cannot be sent as JSON (${err instanceof Error ? err.message : String(err)})`);
  }

  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.secret !== null) headers[SIGNATURE_HEADER] = toolSignature(options.secret, body);

  const timeout = AbortSignal.timeout(tool.timeoutMs);
  const signal = callSignal === undefined ? timeout : AbortSignal.any([timeout, callSignal]);
  const origin = originOf(tool.url);
  // Whichever fired first decides the message; the abort surfaces from fetch() or from read().
  const aborted = (): ToolOutcome | null => {
    if (callSignal?.aborted) return fail(`tool ${name} was cancelled: the call ended`);
    if (timeout.aborted) return fail(`tool ${name} timed out after ${tool.timeoutMs} ms`);
    return null;
  };

  let response: Response;
  try {
    response = await fetch(tool.url, { method: 'POST', headers, body, signal, redirect: 'error' });
  } catch (err) {
    return aborted() ?? fail(`tool ${name} ${describeFetchFailure(err, origin)}`);
  }

  try {
    if (!response.ok) {
      let excerpt = '';
      try {
        const { bytes } = await readBounded(response.body, ERROR_EXCERPT_BYTES);
        excerpt = Array.from(new TextDecoder().decode(bytes)).slice(0, ERROR_EXCERPT_CHARS).join('');
      } catch {
        // The status is the news; a body that fails to arrive only loses the excerpt.
      }
      const status = `tool ${name} answered HTTP ${response.status}`;
      return fail(excerpt.trim() === '' ? status : `${status}: ${excerpt}`);
    }
    const { bytes, overflow } = await readBounded(response.body, MAX_TOOL_RESPONSE_BYTES);
    if (overflow) return fail(`tool ${name} answered more than ${MAX_TOOL_RESPONSE_BYTES} bytes`);
    return { ok: true, output: new TextDecoder().decode(bytes) };
  } catch (err) {
    return aborted() ?? fail(`tool ${name} ${describeFetchFailure(err, origin)} while sending its answer`);
  }
}
