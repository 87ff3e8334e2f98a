import type { Cancel, Scheduler, TimerOptions } from './scheduler.ts'

/** How one agent's clocks differ from the scheduler they run on (tests, the simulator, the chaos suite). */
export interface ClockSkew {
  /** Added to the wall clock (ms): a clock set ahead (> 0) or behind (< 0). Default 0. */
  wallOffsetMs?: number
  /**
   * How fast this agent's clocks run against the base (1 = same rate; 1.001 = 1 ms fast per second). Both
   * clocks drift together, and delays are measured on the skewed clock. Default 1.
   */
  rate?: number
}

/**
 * A scheduler whose clocks are the `base`'s, set off by `wallOffsetMs` and running at `rate`. Monotonic time
 * still never goes back; the offset can be changed later with `stepWall` (a wall-clock step).
 */
export class SkewedScheduler implements Scheduler {
  private readonly base: Scheduler
  private readonly rate: number
  private readonly origin: number
  private wallOffset: number

  constructor(base: Scheduler, skew: ClockSkew = {}) {
    const rate = skew.rate ?? 1
    const offset = skew.wallOffsetMs ?? 0
    if (!(rate > 0) || !Number.isFinite(rate))
      throw new RangeError(`rate must be a positive number, got ${rate}`)
    if (!Number.isFinite(offset)) throw new RangeError(`wallOffsetMs must be a finite number, got ${offset}`)
    this.base = base
    this.rate = rate
    this.origin = base.now()
    this.wallOffset = offset
  }

  now(): number {
    return this.origin + (this.base.now() - this.origin) * this.rate
  }

  wallNow(): number {
    const elapsed = this.base.now() - this.origin
    return Math.floor(this.base.wallNow() + elapsed * (this.rate - 1) + this.wallOffset)
  }

  /** Steps the wall clock by `deltaMs` (forward or back); monotonic time is unaffected. */
  stepWall(deltaMs: number): void {
    this.wallOffset += deltaMs
  }

  after(delayMs: number, fn: () => void, options?: TimerOptions): Cancel {
    return this.base.after(delayMs / this.rate, fn, options)
  }

  every(intervalMs: number, fn: () => void, options?: TimerOptions): Cancel {
    return this.base.every(intervalMs / this.rate, fn, options)
  }
}
