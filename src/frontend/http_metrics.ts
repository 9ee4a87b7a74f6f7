// The HTTP front end's Prometheus metrics (prom-client), one registry per front-end thread.
// The thread that serves /metrics asks main, which gathers every thread's metrics as JSON and
// aggregates them (prom-client's AggregatorRegistry, as for a cluster) with the store's gauges.
import { Counter, Histogram, Registry } from 'prom-client';
import type { FailoverCounts } from '../db/group_reader.js';

export class HttpMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'brisedb_http_requests_total',
    help: 'HTTP requests answered, by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  private readonly bytes = new Counter({
    name: 'brisedb_http_bytes_total',
    help: 'HTTP body bytes, by route and direction (in = request bodies, out = response bodies)',
    labelNames: ['route', 'direction'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'brisedb_http_request_duration_seconds',
    help: 'Time from the request to its answer (for streamed bodies: until the headers and the first bytes)',
    labelNames: ['route', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  observe(route: string, method: string, status: number, bytesIn: number, bytesOut: number, startedAtMs: number, nowMs: number): void {
    this.requests.inc({ route, method, status: String(status) });
    if (bytesIn > 0) this.bytes.inc({ route, direction: 'in' }, bytesIn);
    if (bytesOut > 0) this.bytes.inc({ route, direction: 'out' }, bytesOut);
    this.latency.observe({ route, method }, Math.max(0, nowMs - startedAtMs) / 1000);
  }

  /**
   * Reads of replicated groups served by a remote member (the local one failed), member read
   * failures, and hedged reads: this thread's counts, read at each scrape (summed over threads).
   */
  watchReads(counts: FailoverCounts): void {
    // Counters of this thread's reader, read at each scrape (reset to the running total).
    const counter = (name: string, help: string, value: () => number): void => {
      new Counter({ name, help, registers: [this.registry], collect() { this.reset(); this.inc(value()); } });
    };
    counter('brisedb_reads_failed_over_total', 'Reads served by another member of the volume group because the one before failed', () => counts.failovers);
    counter('brisedb_member_read_failures_total', 'Reads of a group member that failed (a damaged needle, a server down, a cut answer)', () => counts.failures);
    counter('brisedb_reads_hedged_total', 'Reads for which a second member was asked because the first was slower than its p99', () => counts.hedges);
  }

  /** For main's aggregation across threads. */
  json(): Promise<unknown> {
    return this.registry.getMetricsAsJSON();
  }
}
