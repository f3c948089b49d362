import { describe, expect, it } from 'vitest';
import {
  WavFormatError,
  pcm16Bytes,
  pcm16WavHeader,
  readWav,
  writeWavMulaw,
  writeWavMulawFromPcm16,
  writeWavPcm16,
} from '../../src/tooling/audio/wav.js';
import { loadAgentPcm24k, loadCallerMulaw } from '../support/fixtures.js';

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

function u16(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff];
}

function chunk(id: string, body: number[]): number[] {
  return [...ascii(id), ...u32(body.length), ...body, ...(body.length % 2 ? [0] : [])];
}

function fmt(tag: number, channels: number, rate: number, bits: number): number[] {
  const block = (channels * bits) / 8;
  return chunk('fmt ', [...u16(tag), ...u16(channels), ...u32(rate), ...u32(rate * block), ...u16(block), ...u16(bits)]);
}

function riff(...chunks: number[][]): Uint8Array {
  const body = [...ascii('WAVE'), ...chunks.flat()];
  return new Uint8Array([...ascii('RIFF'), ...u32(body.length), ...body]);
}

function readU32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at, true);
}

describe('wav', () => {
  it('round-trips mono and stereo PCM16', () => {
    const mono = Int16Array.from([0, 1, -1, 32767, -32768, 1234]);
    const a = readWav(writeWavPcm16(mono, { sampleRate: 24000, channels: 1 }));
    expect(a).toMatchObject({ sampleRate: 24000, channels: 1, encoding: 'pcm16' });
    expect([...a.samples]).toEqual([...mono]);

    const stereo = Int16Array.from([1, -1, 2, -2, 3, -3]);
    const file = writeWavPcm16(stereo, { sampleRate: 8000, channels: 2 });
    expect(file.length).toBe(44 + 12);
    expect(readU32(file, 4)).toBe(file.length - 8);
    const b = readWav(file);
    expect(b).toMatchObject({ sampleRate: 8000, channels: 2, encoding: 'pcm16' });
    expect([...b.samples]).toEqual([...stereo]);
  });

  it('round-trips mu-law bytes exactly, including an odd length (pad byte)', () => {
    const codes = Uint8Array.from([0xff, 0x7f, 0x00, 0x80, 0x12]);
    const file = writeWavMulaw(codes, { sampleRate: 8000, channels: 1 });
    expect(file.length % 2).toBe(0);
    const w = readWav(file);
    expect(w).toMatchObject({ sampleRate: 8000, channels: 1, encoding: 'mulaw' });
    expect([...w.data]).toEqual([...codes]);
    expect(w.samples[0]).toBe(0);
    expect(w.samples[2]).toBe(-32124);
    expect(w.samples[3]).toBe(32124);
  });

  it('encodes PCM16 to mu-law within G.711 quantisation error', () => {
    const pcm = Int16Array.from({ length: 800 }, (_, i) => Math.round(12000 * Math.sin(i / 5)));
    const w = readWav(writeWavMulawFromPcm16(pcm, { sampleRate: 8000, channels: 1 }));
    pcm.forEach((s, i) => expect(Math.abs((w.samples[i] ?? 0) - s)).toBeLessThanOrEqual(Math.abs(s) / 16 + 8));
  });

  it('skips unknown chunks before and after data, and tolerates a missing final pad byte', () => {
    const list = chunk('LIST', [...ascii('INFOISFT'), ...u32(3), ...ascii('ab'), 0]);
    const file = riff(list, fmt(1, 1, 16000, 16), chunk('junk', [1, 2, 3]), chunk('data', [1, 0, 2, 0]), chunk('cue ', [0, 0, 0, 0]));
    const w = readWav(file);
    expect([...w.samples]).toEqual([1, 2]);

    // A final odd-sized chunk without its pad byte, as many writers produce.
    const odd = riff(fmt(7, 1, 8000, 8), chunk('data', [0xff, 0xff, 0xff]));
    const trimmed = odd.slice(0, odd.length - 1);
    new DataView(trimmed.buffer).setUint32(4, trimmed.length - 8, true);
    expect(readWav(trimmed).data.length).toBe(3);
  });

  it('reads WAVE_FORMAT_EXTENSIBLE PCM16', () => {
    const guidTail = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];
    const body = [...u16(0xfffe), ...u16(2), ...u32(48000), ...u32(192000), ...u16(4), ...u16(16), ...u16(22), ...u16(16), ...u32(3), ...u16(1), ...guidTail];
    const w = readWav(riff(chunk('fmt ', body), chunk('data', [1, 0, 2, 0])));
    expect(w).toMatchObject({ sampleRate: 48000, channels: 2, encoding: 'pcm16' });
    expect([...w.samples]).toEqual([1, 2]);

    // The sub-format decides (wavefile itself would read 32-bit float as integer PCM).
    const float = [...u16(0xfffe), ...u16(1), ...u32(8000), ...u32(32000), ...u16(4), ...u16(32), ...u16(22), ...u16(32), ...u32(4), ...u16(3), ...guidTail];
    expect(() => readWav(riff(chunk('fmt ', float), chunk('data', [])))).toThrow(/format tag 0x0003/);
    const odd = [...body.slice(0, 24), ...u16(1), 0x12, ...guidTail.slice(1)];
    expect(() => readWav(riff(chunk('fmt ', odd), chunk('data', [])))).toThrow(/sub-format GUID is not a standard audio format/);
    expect(() => readWav(riff(chunk('fmt ', body.slice(0, 24)), chunk('data', [])))).toThrow(/EXTENSIBLE fmt chunk is 24 bytes/);
  });

  it('rejects garbage, truncation and inconsistent headers with clear errors', () => {
    const good = writeWavPcm16(Int16Array.from([1, 2, 3, 4]), { sampleRate: 8000, channels: 1 });
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(0), /shorter than a RIFF header/],
      [new TextEncoder().encode('hello, this is not a wav file'), /missing RIFF header/],
      [Uint8Array.from([...ascii('RIFF'), ...u32(4), ...ascii('AVI ')]), /"AVI ", not "WAVE"/],
      [Uint8Array.from([...ascii('RIFX'), ...u32(4), ...ascii('WAVE')]), /RIFX/],
      [good.slice(0, good.length - 3), /truncated WAV file/],
      [riff(fmt(1, 1, 8000, 16)), /Could not find the "data" chunk/],
      [riff(chunk('data', [0, 0])), /Could not find the "fmt " chunk/],
      [riff(chunk('LIST', [0, 0])), /Could not find the "fmt " chunk/],
      [riff(fmt(1, 1, 8000, 16), chunk('data', [1, 0, 2])), /not a whole number of 2-byte frames/],
      [riff(fmt(1, 1, 8000, 24), chunk('data', [])), /24 bits per sample is not supported/],
      [riff(fmt(3, 1, 8000, 32), chunk('data', [])), /format tag 0x0003/],
      [riff(fmt(6, 1, 8000, 8), chunk('data', [])), /format tag 0x0006/],
      [riff(fmt(1, 0, 8000, 16), chunk('data', [])), /channel count 0/],
      [riff(chunk('fmt ', [1, 0, 1, 0]), chunk('data', [])), /at least 16/],
      // Not checked since wavefile: chunk order (fmt after data reads fine) and a second fmt (the first is used).
    ];
    for (const [input, message] of cases) {
      expect(() => readWav(input)).toThrow(WavFormatError);
      expect(() => readWav(input)).toThrow(message);
    }

    // A chunk whose declared size runs past the RIFF end.
    const lying = riff(fmt(1, 1, 8000, 16), chunk('data', [1, 0, 2, 0]));
    new DataView(lying.buffer).setUint32(lying.length - 8, 400, true);
    expect(() => readWav(lying)).toThrow(/truncated "data" chunk: declares 400 bytes but only 4 remain/);

    // Byte rate / block align that disagree with the format.
    const bad = riff(fmt(1, 1, 8000, 16), chunk('data', []));
    new DataView(bad.buffer).setUint32(28, 1234, true);
    expect(() => readWav(bad)).toThrow(/byte rate 1234/);
  });

  it("reads the recorder's streamed header once its sizes are patched in", () => {
    const stereo = Int16Array.from([1, -1, 2, -2]);
    const body = pcm16Bytes(stereo);
    const file = new Uint8Array([...pcm16WavHeader({ sampleRate: 8000, channels: 2 }, body.length), ...body]);
    expect(readWav(file)).toMatchObject({ sampleRate: 8000, channels: 2, encoding: 'pcm16', samples: stereo });
    // Never patched (the process died mid-call): the sizes say empty, and what follows is ignored.
    expect(readWav(new Uint8Array([...pcm16WavHeader({ sampleRate: 8000, channels: 2 }, 0), ...body])).samples.length).toBe(0);
  });

  it('rejects formats it cannot write', () => {
    expect(() => writeWavPcm16(new Int16Array(6), { sampleRate: 8000, channels: 3 })).toThrow(/mono or stereo/);
    expect(() => writeWavPcm16(new Int16Array(3), { sampleRate: 8000, channels: 2 })).toThrow(/whole number/);
    expect(() => writeWavMulaw(new Uint8Array(2), { sampleRate: 0, channels: 1 })).toThrow(/sample rate/);
  });

  it('loads the committed fixtures in their documented formats', () => {
    for (const [name, minS, maxS] of [
      ['caller-question', 2, 3.2],
      ['caller-interrupt', 1.5, 3],
      ['caller-yes', 0.5, 1.5],
    ] as const) {
      const mu = loadCallerMulaw(name);
      expect(mu.length / 8000).toBeGreaterThan(minS);
      expect(mu.length / 8000).toBeLessThan(maxS);
    }
    const agent = loadAgentPcm24k('agent-answer');
    expect(agent.length / 24000).toBeGreaterThan(6);
    expect(agent.length / 24000).toBeLessThan(8.5);
    let peak = 0;
    for (const s of agent) peak = Math.max(peak, Math.abs(s));
    expect(20 * Math.log10(peak / 32768)).toBeCloseTo(-3, 0);
    expect(() => loadCallerMulaw('agent-answer')).toThrow(/must be 8 kHz mono mu-law, got pcm16 24000 Hz/);
  });
});
