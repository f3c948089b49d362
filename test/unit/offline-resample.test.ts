import { describe, expect, it } from 'vitest';
import { resampleOffline } from '../../src/tooling/audio/offline-resample.js';

function tone(hz: number, rate: number, seconds: number, amplitude: number): Int16Array {
  const out = new Int16Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate));
  return out;
}

/** RMS of the middle of a signal: the filter's edges (where the input starts and ends) are left out. */
function middleRms(x: Int16Array, skip: number): number {
  let sum = 0;
  let n = 0;
  for (let i = skip; i < x.length - skip; i++) {
    sum += (x[i] ?? 0) ** 2;
    n++;
  }
  return Math.sqrt(sum / n);
}

/** Frequency from the count of rising zero crossings over the middle of the signal. */
function dominantHz(x: Int16Array, rate: number, skip: number): number {
  let first = -1;
  let last = -1;
  let crossings = 0;
  for (let i = skip + 1; i < x.length - skip; i++) {
    if ((x[i - 1] ?? 0) < 0 && (x[i] ?? 0) >= 0) {
      if (first < 0) first = i;
      else crossings++;
      last = i;
    }
  }
  return (crossings * rate) / (last - first);
}

const db = (ratio: number): number => 20 * Math.log10(ratio);

describe('offline resampler', () => {
  it('keeps a 1 kHz tone at its frequency and level from 44.1 kHz to 8 kHz', () => {
    const input = tone(1000, 44_100, 1, 10_000);
    const out = resampleOffline(input, 44_100, 8000);
    expect(out.length).toBe(8000);
    expect(dominantHz(out, 8000, 400)).toBeCloseTo(1000, 0);
    expect(Math.abs(db(middleRms(out, 400) / middleRms(input, 2205)))).toBeLessThan(0.1);
  });

  it('attenuates a 6 kHz tone by at least 40 dB from 48 kHz to 8 kHz (it would alias to 2 kHz)', () => {
    const input = tone(6000, 48_000, 1, 16_000);
    const out = resampleOffline(input, 48_000, 8000);
    expect(db(middleRms(out, 400) / middleRms(input, 2400))).toBeLessThan(-40);
  });

  it.each([8000, 11_025, 16_000, 22_050, 44_100, 48_000])('passes 440 Hz from %i Hz to 8 kHz unchanged in level', (rate) => {
    const out = resampleOffline(tone(440, rate, 0.5, 8000), rate, 8000);
    expect(out.length).toBe(4000);
    expect(Math.abs(db(middleRms(out, 400) / (8000 / Math.SQRT2)))).toBeLessThan(0.1);
  });

  it('upsamples 8 kHz to 48 kHz without images', () => {
    const input = tone(3000, 8000, 0.5, 10_000);
    const out = resampleOffline(input, 8000, 48_000);
    expect(out.length).toBe(24_000);
    expect(dominantHz(out, 48_000, 2400)).toBeCloseTo(3000, 0);
    expect(Math.abs(db(middleRms(out, 2400) / middleRms(input, 400)))).toBeLessThan(0.2);
  });

  it('returns a copy at equal rates and rejects nonsense rates', () => {
    const input = new Int16Array([1, 2, 3]);
    const out = resampleOffline(input, 8000, 8000);
    expect([...out]).toEqual([1, 2, 3]);
    expect(out).not.toBe(input);
    expect(() => resampleOffline(input, 0, 8000)).toThrow(RangeError);
    expect(() => resampleOffline(input, 8000, Number.NaN)).toThrow(RangeError);
  });
});
