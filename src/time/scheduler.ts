/**
 * The one way the shell reads time and defers work.
 *
 * The pure cores (Raft, SWIM, the state machine) take time as an input; the shell around them gets it from a
 * `Scheduler`. Production passes {@link systemScheduler} (Node's clocks and timers); the simulator passes a
 * {@link VirtualScheduler} whose time moves only when it is told to, so a failing seed replays exactly.
 * No file under `src/` other than `system-scheduler.ts` may read a clock or start a timer (a test enforces it).
 */

/** Cancels a call made with {@link Scheduler.after} or {@link Scheduler.every}. Idempotent. */
export type Cancel = () => void

/** How a deferred call relates to the process's lifetime. */
export interface TimerOptions {
  /**
   * Keep the process alive while the call is pending (a `ref`'d Node timer). Default false (`unref`): for
   * background duties; true for what a caller awaits, so that a pending wait is not cut short by an exit.
   */
  keepAlive?: boolean
}

export interface Scheduler {
  /** Monotonic milliseconds: never goes back, unaffected by wall-clock steps. Use for every duration and expiry. */
  now(): number
  /**
   * Wall-clock milliseconds since the epoch, a whole number (as `Date.now()`: entries carry it). For display
   * and for timestamps that leave the process only.
   */
  wallNow(): number
  /**
   * Runs `fn` once, `delayMs` from now. A delay of 0 runs it after the I/O already queued (as `setImmediate`),
   * never synchronously. Calls that fall due together run in the order they were made.
   */
  after(delayMs: number, fn: () => void, options?: TimerOptions): Cancel
  /** Runs `fn` every `intervalMs` (> 0) until cancelled. */
  every(intervalMs: number, fn: () => void, options?: TimerOptions): Cancel
}
