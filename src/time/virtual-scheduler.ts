import type { Cancel, Scheduler } from './scheduler.ts'

interface Pending {
  readonly seq: number
  due: number
  readonly fn: () => void
  /** For `every`: the interval to re-arm with; 0 for a one-shot call. */
  readonly interval: number
  cancelled: boolean
}

/**
 * A scheduler whose time moves only when the owner says so (`advance`, `runUntil`, `runNext`). Calls due at the
 * same instant run in the order they were scheduled, so a run is a pure function of what was scheduled.
 * `wallOffsetMs` and `rate` let a simulator give each agent a skewed and drifting clock over one shared
 * virtual timeline; `stepWall` models a wall-clock step (NTP), which never moves `now()`.
 */
export class VirtualScheduler implements Scheduler {
  private time: number
  private wallOffset: number
  private seq = 0
  private readonly queue: Pending[] = []

  constructor(options: { start?: number; wallStart?: number } = {}) {
    this.time = options.start ?? 0
    this.wallOffset = (options.wallStart ?? 1_700_000_000_000) - this.time
  }

  now(): number {
    return this.time
  }

  wallNow(): number {
    return this.time + this.wallOffset
  }

  /** Steps the wall clock by `deltaMs` (forward or back); monotonic time is unaffected. */
  stepWall(deltaMs: number): void {
    this.wallOffset += deltaMs
  }

  after(delayMs: number, fn: () => void): Cancel {
    return this.push(Math.max(0, delayMs), fn, 0)
  }

  every(intervalMs: number, fn: () => void): Cancel {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0 ms, got ${intervalMs}`)
    return this.push(intervalMs, fn, intervalMs)
  }

  /** Time of the next pending call, or undefined if none is pending. */
  nextDue(): number | undefined {
    this.dropCancelled()
    return this.queue.length === 0 ? undefined : this.queue[0].due
  }

  /** Number of calls still pending (cancelled ones excluded). */
  pending(): number {
    this.dropCancelled()
    return this.queue.length
  }

  /** Runs the earliest pending call (moving time to its due time). Returns false if nothing was pending. */
  runNext(): boolean {
    this.dropCancelled()
    const next = this.queue.shift()
    if (next === undefined) return false
    if (next.due > this.time) this.time = next.due
    if (next.interval > 0) {
      next.due = this.time + next.interval
      this.insert(next)
    }
    next.fn()
    return true
  }

  /** Runs every call due up to `until` in order, then sets time to `until`. */
  runUntil(until: number): void {
    for (;;) {
      const due = this.nextDue()
      if (due === undefined || due > until) break
      this.runNext()
    }
    if (until > this.time) this.time = until
  }

  /** Moves time forward by `ms`, running every call that falls due on the way. */
  advance(ms: number): void {
    this.runUntil(this.time + ms)
  }

  private push(delay: number, fn: () => void, interval: number): Cancel {
    const entry: Pending = { seq: this.seq++, due: this.time + delay, fn, interval, cancelled: false }
    this.insert(entry)
    return () => {
      entry.cancelled = true
    }
  }

  private insert(entry: Pending): void {
    // Binary search for the first entry that runs after this one (by due time, then by scheduling order).
    let lo = 0
    let hi = this.queue.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const other = this.queue[mid]
      if (other.due < entry.due || (other.due === entry.due && other.seq < entry.seq)) lo = mid + 1
      else hi = mid
    }
    this.queue.splice(lo, 0, entry)
  }

  private dropCancelled(): void {
    while (this.queue.length > 0 && this.queue[0].cancelled) this.queue.shift()
    if (this.queue.length > 64 && this.queue.some(p => p.cancelled)) {
      const live = this.queue.filter(p => !p.cancelled)
      this.queue.length = 0
      this.queue.push(...live)
    }
  }
}
