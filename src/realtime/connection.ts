/**
 * The upstream Realtime connection of one call: a WebSocket speaking the GA interface, to OpenAI,
 * Azure OpenAI, or the embedded local model — the same code path for all three.
 */
import WebSocket from 'ws';
import type { Socket } from 'node:net';
import { parseServerEvent } from './events.js';
import type { OtherServerEvent, RealtimeClientEvent, RealtimeServerEvent } from './events.js';

/**
 * A black-holed upstream (SYN dropped, TLS never answered) only shows as this timeout, once per
 * attempt. A healthy handshake takes well under a second, even to another region; 3 s leaves room
 * for two attempts before the session gives the first connection up (FIRST_CONNECT_GIVE_UP_MS).
 */
export const REALTIME_HANDSHAKE_TIMEOUT_MS = 3000;

export interface RealtimeConnectionHandlers {
  onOpen(): void;
  onEvent(event: RealtimeServerEvent | OtherServerEvent): void;
  onInvalidFrame(reason: string): void;
  onClose(code: number, reason: string): void;
}

/** Azure OpenAI authenticates with an `api-key` header; OpenAI and compatible servers with a Bearer token. */
export function authHeaders(url: string, apiKey: string | null): Record<string, string> {
  if (apiKey === null) return {};
  const host = new URL(url).hostname;
  if (host.endsWith('.openai.azure.com')) return { 'api-key': apiKey };
  return { Authorization: `Bearer ${apiKey}` };
}

export class RealtimeConnection {
  private readonly socket: WebSocket;
  private closed = false;
  /** the TCP (or TLS) socket under the WebSocket, once the handshake is done: for corking writes */
  private transportSocket: Socket | null = null;

  constructor(url: string, apiKey: string | null, private readonly handlers: RealtimeConnectionHandlers) {
    this.socket = new WebSocket(url, {
      headers: authHeaders(url, apiKey),
      handshakeTimeout: REALTIME_HANDSHAKE_TIMEOUT_MS,
      // A phone call is latency-bound; compression costs CPU per frame and buys little on base64 audio.
      perMessageDeflate: false,
      generateMask: zeroMask,
    });
    // The upgrade response carries the socket ws goes on to write to; ws offers no other public handle.
    this.socket.on('upgrade', (response) => {
      this.transportSocket = response.socket;
    });
    this.socket.on('open', () => handlers.onOpen());
    this.socket.on('message', (data, isBinary) => {
      if (isBinary) {
        handlers.onInvalidFrame('binary frame from Realtime server');
        return;
      }
      const parsed = parseServerEvent(rawToString(data));
      if (parsed.ok) handlers.onEvent(parsed.event);
      else handlers.onInvalidFrame(parsed.error);
    });
    // 'error' always precedes 'close' in ws; the close carries the outcome.
    this.socket.on('error', () => undefined);
    this.socket.on('unexpected-response', (_req, res) => {
      this.finish(1006, `upstream refused the handshake: HTTP ${res.statusCode ?? '?'}`);
      this.socket.terminate();
    });
    this.socket.on('close', (code, reason) => this.finish(code, reason.toString()));
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /** The socket under the WebSocket, null before the handshake completes. */
  get transport(): Socket | null {
    return this.transportSocket;
  }

  send(event: RealtimeClientEvent): boolean {
    if (this.socket.readyState !== WebSocket.OPEN) return false;
    if (event.type === 'input_audio_buffer.append' && event.event_id === undefined) this.socket.send(appendMessage(event.audio), TEXT_FRAME);
    else this.socket.send(JSON.stringify(event));
    return true;
  }

  /** Close at once; a connection still handshaking is torn down rather than left to finish. */
  close(code = 1000, reason = 'call ended'): void {
    this.closed = true;
    if (this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
    else if (this.socket.readyState === WebSocket.OPEN) this.socket.close(code, reason);
  }

  private finish(code: number, reason: string): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.handlers.onClose(code, this.closed ? `closed by bridge: ${reason}` : reason);
  }

  private closedNotified = false;
}

/**
 * A client frame's masking key exists so that script in a browser cannot make a frame look like an
 * HTTP request to a caching proxy on the path (RFC 6455 §10.3). The bridge is no browser, its frames
 * are JSON with a fixed start, and to OpenAI they travel inside TLS, which no proxy reads. With a
 * zero key ws neither copies the payload nor XORs it: half of the per-frame work of sending.
 */
function zeroMask(mask: Buffer): void {
  mask[0] = 0;
  mask[1] = 0;
  mask[2] = 0;
  mask[3] = 0;
}

/** A Buffer goes out as a text frame only when told: ws makes Buffers binary by default. */
const TEXT_FRAME = { binary: false } as const;
const APPEND_HEAD = Buffer.from('{"type":"input_audio_buffer.append","audio":"', 'latin1');
const APPEND_TAIL = Buffer.from('"}', 'latin1');

/**
 * The append of caller audio, the most frequent message of a call, as the bytes of its JSON.
 * Built by copying rather than JSON.stringify, which would scan the base64 text for characters to
 * escape (base64 has none: a unit test compares the two). A Buffer rather than a string: ws writes
 * a string by having Node copy it into a malloc'd block per write, after measuring its UTF-8 length;
 * a Buffer is written as it is, and up to 60 ms of audio (under 4 KiB) comes from Node's pool.
 */
export function appendMessage(base64Audio: string): Buffer {
  const audioAt = APPEND_HEAD.length;
  const tailAt = audioAt + base64Audio.length;
  const message = Buffer.allocUnsafe(tailAt + APPEND_TAIL.length);
  APPEND_HEAD.copy(message, 0);
  message.write(base64Audio, audioAt, 'latin1');
  APPEND_TAIL.copy(message, tailAt);
  return message;
}

export function rawToString(data: WebSocket.RawData): string {
  if (typeof data === 'string') return data;
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
