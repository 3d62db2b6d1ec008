/** Nearest-rank percentile (p50 of four values is the second) of samples sorted ascending. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface LatencySummary {
  samples: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** p50, p99 and max of latencies in milliseconds, to 0.1 ms. */
export function summariseLatencies(ms: number[]): LatencySummary {
  const sorted = [...ms].sort((a, b) => a - b);
  const round = (v: number | undefined) => (v === undefined ? null : Math.round(v * 10) / 10);
  return {
    samples: sorted.length,
    p50Ms: round(sorted.length ? percentile(sorted, 50) : undefined),
    p99Ms: round(sorted.length ? percentile(sorted, 99) : undefined),
    maxMs: round(sorted.at(-1)),
  };
}
