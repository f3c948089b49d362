import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { appendMessage, RealtimeConnection } from '../../src/realtime/connection.js';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

interface RawFrame {
  /** 1: text, 2: binary (RFC 6455 §5.2) */
  opcode: number;
  masked: boolean;
  key: Buffer;
  payload: string;
}

/** Client frames as they cross the wire: a hand-rolled upgrade, so nothing unmasks them for us. */
async function rawPeer(): Promise<{ url: string; frames: RawFrame[]; server: Server; sockets: Socket[] }> {
  const frames: RawFrame[] = [];
  const sockets: Socket[] = [];
  const server = createServer();
  server.on('upgrade', (req, socket: Socket) => {
    sockets.push(socket);
    const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}${WS_GUID}`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (pending.length < 2) return;
        const masked = ((pending[1] ?? 0) & 0x80) !== 0;
        let length = (pending[1] ?? 0) & 0x7f;
        let offset = 2;
        if (length === 126) {
          length = pending.readUInt16BE(2);
          offset = 4;
        }
        const total = offset + (masked ? 4 : 0) + length;
        if (pending.length < total) return;
        const key = masked ? pending.subarray(offset, offset + 4) : Buffer.alloc(4);
        const body = Buffer.from(pending.subarray(total - length, total));
        for (let i = 0; i < body.length; i++) body[i] = (body[i] ?? 0) ^ (key[i % 4] ?? 0);
        frames.push({ opcode: (pending[0] ?? 0) & 0x0f, masked, key: Buffer.from(key), payload: body.toString('utf8') });
        pending = pending.subarray(total);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/v1/realtime`, frames, server, sockets };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('RealtimeConnection on the wire', () => {
  it('sends masked client frames (as RFC 6455 requires) with a zero key, and the append as exact JSON', async () => {
    const peer = await rawPeer();
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const connection = new RealtimeConnection(peer.url, null, {
      onOpen: () => opened(),
      onEvent: () => undefined,
      onInvalidFrame: () => undefined,
      onClose: () => undefined,
    });
    cleanups.push(() => {
      connection.close();
      for (const socket of peer.sockets) socket.destroy();
      peer.server.close();
    });
    await open;
    const audio = Buffer.from(Array.from({ length: 960 }, (_, i) => (i * 37) & 0xff)).toString('base64');
    connection.send({ type: 'input_audio_buffer.append', audio });
    connection.send({ type: 'input_audio_buffer.append', audio: 'AAAA', event_id: 'evt_1' });
    connection.send({ type: 'input_audio_buffer.clear' });
    await expect.poll(() => peer.frames.length, { timeout: 2000 }).toBe(3);
    for (const frame of peer.frames) {
      // the append leaves as a Buffer: it must still be a text frame, as the API takes only text
      expect(frame.opcode).toBe(1);
      expect(frame.masked).toBe(true);
      expect([...frame.key]).toEqual([0, 0, 0, 0]);
    }
    expect(JSON.parse(peer.frames[0]?.payload ?? '')).toEqual({ type: 'input_audio_buffer.append', audio });
    // an event id set by the caller is kept: only the plain append takes the concatenated form
    expect(JSON.parse(peer.frames[1]?.payload ?? '')).toEqual({ type: 'input_audio_buffer.append', audio: 'AAAA', event_id: 'evt_1' });
    expect(JSON.parse(peer.frames[2]?.payload ?? '')).toEqual({ type: 'input_audio_buffer.clear' });
  });
});

describe('appendMessage', () => {
  it('is the UTF-8 of JSON.stringify of the append for any base64 audio', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const audio = Buffer.from(bytes).toString('base64');
        expect(appendMessage(audio).toString('utf8')).toBe(JSON.stringify({ type: 'input_audio_buffer.append', audio }));
      }),
    );
  });
});
