/**
 * Pure statistics for the load benchmark: quantiles of raw samples and the slope of a series.
 * No I/O, no clocks: unit-tested in test/unit/bench-load-stats.test.ts.
 */

/**
 * The q-quantile of raw samples by the nearest-rank method: the smallest sample with at least
 * q·n samples at or below it (p99 of 50 samples is the largest one). Conservative for latency: it
 * never interpolates below an observed value. NaN when there are no samples.
 */
export function quantile(samples: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`q must be in [0, 1], got ${q}`);
  const finite = samples.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

export interface Summary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  const finite = samples.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const v of finite) {
    sum += v;
    if (v > max) max = v;
  }
  return { count: finite.length, p50: quantile(finite, 0.5), p99: quantile(finite, 0.99), max, mean: sum / finite.length };
}

export interface Point {
  x: number;
  y: number;
}

/** Least-squares slope dy/dx; NaN with fewer than two distinct x. */
export function slope(points: readonly Point[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

/** Index of the first element of ascending `sorted` that is > x (sorted.length if none). */
export function upperBound(sorted: ArrayLike<number>, x: number, from = 0, to = sorted.length): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? Number.POSITIVE_INFINITY) > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
