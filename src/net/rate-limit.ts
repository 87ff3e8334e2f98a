/**
 * Per-peer token buckets: how many requests (RPC) or messages (Raft) one remote peer may send per second.
 * A bucket holds up to `burst` tokens and refills at `perSecond`; each request or message takes one. The
 * defaults sit far above what a busy agent sends (its forwarded writes, probes and Raft traffic), so they
 * bound what a misbehaving peer costs without ever slowing a real one.
 */

/** A rate: `perSecond` sustained, and up to `burst` at once after a quiet spell. */
export interface RateLimit {
  /** Tokens added per second; `Infinity` turns the limit off. */
  perSecond: number
  /** Largest number of tokens a bucket holds. Default: `perSecond` (one second's worth). */
  burst?: number
}

/** Checks a rate option; `undefined` falls back to `fallback`. */
export function checkRateLimit(limit: RateLimit | undefined, fallback: RateLimit): Required<RateLimit> {
  const perSecond = limit?.perSecond ?? fallback.perSecond
  const burst = limit?.burst ?? (limit === undefined ? (fallback.burst ?? perSecond) : perSecond)
  if (!(perSecond > 0)) throw new RangeError(`perSecond must be > 0, got ${perSecond}`)
  if (!(burst >= 1)) throw new RangeError(`burst must be >= 1, got ${burst}`)
  return { perSecond, burst }
}

interface Bucket {
  tokens: number
  /** When `tokens` was last brought up to date (ms, the limiter's monotonic clock). */
  at: number
}

/** One token bucket per peer. Entries of peers whose bucket is full again are pruned as the map grows. */
export class PeerRateLimiter {
  readonly perSecond: number
  readonly burst: number
  private readonly clock: () => number
  private readonly buckets = new Map<string, Bucket>()
  private pruneAt = 1024

  /** `clock`: monotonic milliseconds (a `Scheduler`'s `now`). */
  constructor(limit: Required<RateLimit>, clock: () => number) {
    this.perSecond = limit.perSecond
    this.burst = limit.burst
    this.clock = clock
  }

  /** Takes one token for `peer`; false if its bucket is empty (the request or message is over the rate). */
  take(peer: string): boolean {
    if (this.perSecond === Number.POSITIVE_INFINITY) return true
    const bucket = this.refill(peer)
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  /** Milliseconds until `peer` has a token again (0 if it has one now). */
  waitMs(peer: string): number {
    if (this.perSecond === Number.POSITIVE_INFINITY) return 0
    const bucket = this.refill(peer)
    return bucket.tokens >= 1 ? 0 : Math.ceil(((1 - bucket.tokens) * 1000) / this.perSecond)
  }

  /** Peers with a bucket (tests). */
  get size(): number {
    return this.buckets.size
  }

  private refill(peer: string): Bucket {
    const now = this.clock()
    let bucket = this.buckets.get(peer)
    if (bucket === undefined) {
      if (this.buckets.size >= this.pruneAt) this.prune(now)
      bucket = { tokens: this.burst, at: now }
      this.buckets.set(peer, bucket)
      return bucket
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.perSecond) / 1000)
    bucket.at = now
    return bucket
  }

  /** Forgets peers whose bucket has refilled: a fresh bucket is the same thing. */
  private prune(now: number): void {
    for (const [peer, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) * this.perSecond) / 1000 >= this.burst) this.buckets.delete(peer)
    }
    // Many busy peers: let the map grow before scanning again, so pruning stays amortized O(1).
    this.pruneAt = Math.max(1024, this.buckets.size * 2)
  }
}
