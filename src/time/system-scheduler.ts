import type { Cancel, Scheduler, TimerOptions } from './scheduler.ts'

/**
 * The production scheduler: Node's monotonic clock (`performance.now()`), wall clock (`Date.now()`) and timers.
 * The only file under `src/agent`, `src/net`, `src/storage`, `src/security` and the cores allowed to touch
 * them (test/time/no-clock.test.ts).
 */
export const systemScheduler: Scheduler = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  after(delayMs: number, fn: () => void, options?: TimerOptions): Cancel {
    // setImmediate for 0: a macrotask after the I/O already queued, as the Raft runner's batching needs.
    if (!(delayMs > 0)) {
      const immediate = setImmediate(fn)
      if (options?.keepAlive !== true) immediate.unref()
      return () => clearImmediate(immediate)
    }
    const timer = setTimeout(fn, delayMs)
    if (options?.keepAlive !== true) timer.unref()
    return () => clearTimeout(timer)
  },
  every(intervalMs: number, fn: () => void, options?: TimerOptions): Cancel {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0 ms, got ${intervalMs}`)
    const timer = setInterval(fn, intervalMs)
    if (options?.keepAlive !== true) timer.unref()
    return () => clearInterval(timer)
  },
}
