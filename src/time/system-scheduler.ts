import type { Cancel, Scheduler, TimerOptions } from './scheduler.ts'

/** Node fires a timer longer than this (about 24.8 days) after 1 ms instead: longer delays go in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * The production scheduler: Node's monotonic clock (`performance.now()`), wall clock (`Date.now()`) and timers.
 * The only file under `src/agent`, `src/net`, `src/storage`, `src/security` and the cores allowed to touch
 * them (test/time/no-clock.test.ts).
 */
export const systemScheduler: Scheduler = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  after(delayMs: number, fn: () => void, options?: TimerOptions): Cancel {
    const keepAlive = options?.keepAlive === true
    // setImmediate for 0: a macrotask after the I/O already queued, as the Raft runner's batching needs.
    if (!(delayMs > 0)) {
      const immediate = setImmediate(fn)
      if (!keepAlive) immediate.unref()
      return () => clearImmediate(immediate)
    }
    // Node's timers run on libuv's loop clock, whole milliseconds read at the start of a loop turn: a timer can
    // fire up to a millisecond before `now()` says its delay passed. A deadline that must not come early (an
    // attempt's local end, a lease) would then come early: a call due later than this is armed again.
    const due = performance.now() + delayMs
    let timer: NodeJS.Timeout
    const arm = (remaining: number): void => {
      const step = Math.min(remaining, MAX_TIMER_MS)
      timer = setTimeout(remaining > step ? () => arm(remaining - step) : fire, step)
      if (!keepAlive) timer.unref()
    }
    const fire = (): void => {
      const early = due - performance.now()
      if (early > 0) arm(Math.ceil(early))
      else fn()
    }
    arm(delayMs)
    return () => clearTimeout(timer)
  },
  every(intervalMs: number, fn: () => void, options?: TimerOptions): Cancel {
    if (!(intervalMs > 0 && intervalMs <= MAX_TIMER_MS)) {
      throw new RangeError(`interval must be in (0, ${MAX_TIMER_MS}] ms, got ${intervalMs}`)
    }
    const timer = setInterval(fn, intervalMs)
    if (options?.keepAlive !== true) timer.unref()
    return () => clearInterval(timer)
  },
}
