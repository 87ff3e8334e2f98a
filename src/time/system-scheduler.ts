import type { Cancel, Scheduler } from './scheduler.ts'

/**
 * The production scheduler: Node's monotonic clock (`performance.now()`), wall clock (`Date.now()`) and timers.
 * The only file in `src/` allowed to touch them.
 */
export const systemScheduler: Scheduler = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  after(delayMs: number, fn: () => void): Cancel {
    if (delayMs <= 0) {
      const immediate = setImmediate(fn)
      immediate.unref()
      return () => clearImmediate(immediate)
    }
    const timer = setTimeout(fn, delayMs)
    timer.unref()
    return () => clearTimeout(timer)
  },
  every(intervalMs: number, fn: () => void): Cancel {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0 ms, got ${intervalMs}`)
    const timer = setInterval(fn, intervalMs)
    timer.unref()
    return () => clearInterval(timer)
  },
}
