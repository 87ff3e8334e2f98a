/** Summaries of latency samples, shared by every side of the comparison so both are computed alike. */

/** Throughput and latency of one closed-loop load. */
export interface LoadSummary {
  /** Operations that succeeded. */
  operations: number
  /** Operations that failed (not in the latencies). */
  errors: number
  elapsedMs: number
  opsPerSecond: number
  p50Ms: number
  p99Ms: number
}

/** The sample at percentile `p` (nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** The middle value; the mean of the two middle ones for an even count. NaN when empty. */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

export function summarize(latenciesMs: number[], errors: number, elapsedMs: number): LoadSummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b)
  return {
    operations: sorted.length,
    errors,
    elapsedMs: round(elapsedMs),
    opsPerSecond: Math.round(sorted.length / (elapsedMs / 1000)),
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
  }
}

/** Three decimals: microsecond resolution is all a millisecond figure on loopback can claim. */
export function round(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : value
}

/** A wall-clock time in ms with sub-millisecond resolution, comparable between processes on one machine. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now()
}
