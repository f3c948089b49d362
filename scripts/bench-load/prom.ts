/** The bridge's /metrics (Prometheus text): scraping, and histograms over a window between two scrapes. */

export type Series = Map<string, number>;

/** `name{labels} value` lines into a map keyed by `name{labels}` as written. */
export function parseProm(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (at < 0) continue;
    const value = Number(line.slice(at + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, at), value);
  }
  return out;
}

export async function scrape(baseUrl: string): Promise<Series> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  return parseProm(await res.text());
}

export function sumMatching(s: Series, prefix: string): number {
  let total = 0;
  for (const [k, v] of s) if (k.startsWith(prefix)) total += v;
  return total;
}

interface Bucket {
  le: number;
  /** cumulative count */
  count: number;
}

function histogramBuckets(s: Series, name: string): Bucket[] {
  const out: Bucket[] = [];
  const re = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`);
  for (const [k, v] of s) {
    const m = re.exec(k);
    if (m?.[1] === undefined) continue;
    out.push({ le: m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), count: v });
  }
  return out.sort((a, b) => a.le - b.le);
}

export interface HistogramWindow {
  count: number;
  sum: number;
  buckets: Bucket[];
}

/** The observations made between two scrapes of one histogram. */
export function histogramDiff(before: Series, after: Series, name: string): HistogramWindow {
  const b0 = histogramBuckets(before, name);
  const b1 = histogramBuckets(after, name);
  const buckets = b1.map((b) => ({ le: b.le, count: b.count - (b0.find((x) => x.le === b.le)?.count ?? 0) }));
  return {
    count: (after.get(`${name}_count`) ?? 0) - (before.get(`${name}_count`) ?? 0),
    sum: (after.get(`${name}_sum`) ?? 0) - (before.get(`${name}_sum`) ?? 0),
    buckets,
  };
}

/**
 * histogram_quantile() semantics: linear within the bucket. NaN without observations; +Infinity
 * when the rank lands in the +Inf bucket (then `overflowAbove` is the top finite bound).
 */
export function histogramQuantile(h: HistogramWindow, q: number): { value: number; overflowAbove?: number } {
  if (h.count <= 0) return { value: Number.NaN };
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return { value: Number.POSITIVE_INFINITY, overflowAbove: prevLe };
      const inBucket = b.count - prevCount;
      return { value: inBucket <= 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket };
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return { value: Number.NaN };
}
