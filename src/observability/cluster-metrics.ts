/**
 * Cluster-wide metrics (WORKERS > 1): the primary keeps each worker's latest snapshot and turns
 * them into one exposition with prom-client's AggregatorRegistry.aggregate(), which combines each
 * family by its `aggregator`: counters, histograms and gauges such as callbridge_active_calls are
 * summed; prom-client's own process metrics say otherwise where a sum means nothing
 * (process_start_time_seconds is omitted, nodejs_version_info is the first, event-loop lag
 * gauges are averaged).
 *
 * Counters must not go down when a worker dies and is replaced: Prometheus would read the drop as
 * a counter reset and count the survivors' whole totals again as an increase. So the counters and
 * histograms of a retired worker are kept as last reported and go on being added in; its gauges
 * (its calls, its memory) go with it. What it counted after its last scrape is lost, as it would
 * be for a single process that died.
 */
import { AggregatorRegistry } from 'prom-client';
import type { MetricsSnapshot } from './metrics.js';

/** Retired workers' kept families are folded into one snapshot once there are this many. */
const RETIRED_COMPACT_AT = 8;

/** Families that only ever grow, and so must outlive their worker. */
function isCumulative(type: string): boolean {
  return type === 'counter' || type === 'histogram';
}

export class ClusterMetrics {
  private readonly latest = new Map<number, MetricsSnapshot>();
  private retired: MetricsSnapshot[] = [];

  /** The figures a worker just reported; they stand for it until the next report or its exit. */
  record(workerId: number, snapshot: MetricsSnapshot): void {
    this.latest.set(workerId, snapshot);
  }

  /** A worker exited: its counters and histograms are kept as last reported, the rest dropped. */
  retire(workerId: number): void {
    const last = this.latest.get(workerId);
    this.latest.delete(workerId);
    if (last === undefined) return;
    const kept = last.filter((family) => isCumulative(family.type));
    if (kept.length > 0) this.retired.push(kept);
  }

  /**
   * The aggregated text exposition of every live worker's latest figures, the retired workers'
   * counters, and `extra` (the primary's own families).
   */
  async render(extra: MetricsSnapshot[] = []): Promise<string> {
    if (this.retired.length >= RETIRED_COMPACT_AT) this.retired = [await aggregateToSnapshot(this.retired)];
    const registry = AggregatorRegistry.aggregate([...this.retired, ...this.latest.values(), ...extra]);
    return registry.metrics();
  }
}

async function aggregateToSnapshot(snapshots: MetricsSnapshot[]): Promise<MetricsSnapshot> {
  const families = await AggregatorRegistry.aggregate(snapshots).getMetricsAsJSON();
  return families as unknown as MetricsSnapshot;
}
