/**
 * The agent's one set of abort and deadline helpers: waiting on a promise, a pause or a deadline, given up
 * when the caller's signal aborts (`AbortError`) or the agent closes (`ClosedError`). Time comes from the
 * agent's `Scheduler`, which every timed helper takes (awaited waits keep the process alive, as the
 * scheduler's own `sleep` does), and every listener and timer is removed
 * once the wait is over, so long-lived signals do not collect them.
 */

import { AbortError, ClosedError } from '../../errors.ts'
import type { Cancel, Scheduler } from '../../time/index.ts'

/** What ends a wait early: the caller's signal, and the agent's closing. */
export interface Interrupts {
  signal?: AbortSignal
  closed?: AbortSignal
}

/**
 * The core of every helper here: `start` gets `settle`, and the wait ends at the first of `settle`, an abort
 * (`AbortError`) or a close (`ClosedError`); listeners are removed whichever comes first.
 */
export function interruptible<T>(
  interrupts: Interrupts,
  start: (settle: (outcome: { value: T } | { error: unknown }) => void) => Cancel | undefined,
): Promise<T> {
  const { signal, closed } = interrupts
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError())
    if (closed?.aborted) return reject(new ClosedError())
    let done = false
    let cancel: Cancel | undefined
    const finish = (outcome: { value: T } | { error: unknown }): void => {
      if (done) return
      done = true
      cancel?.()
      signal?.removeEventListener('abort', onAbort)
      closed?.removeEventListener('abort', onClose)
      if ('value' in outcome) resolve(outcome.value)
      else reject(outcome.error)
    }
    const onAbort = (): void => finish({ error: new AbortError() })
    const onClose = (): void => finish({ error: new ClosedError() })
    signal?.addEventListener('abort', onAbort, { once: true })
    closed?.addEventListener('abort', onClose, { once: true })
    cancel = start(finish)
    if (done) cancel?.()
  })
}

/** `promise`'s outcome, unless the signal aborts (`AbortError`) or the agent closes (`ClosedError`) first. */
export function abortable<T>(promise: Promise<T>, interrupts: Interrupts): Promise<T> {
  const outcome = observed(promise)
  return interruptible<T>(interrupts, settle => {
    outcome.then(settle)
    return undefined
  })
}

/**
 * `promise`'s outcome, observed at once: when an interrupt came first, `interruptible` never starts, and a
 * rejection nobody listens to would end the process (an agent stopping while a ReadIndex is scheduled).
 */
function observed<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    value => ({ value }),
    error => ({ error }),
  )
}

/**
 * `promise`'s outcome if it settles within `ms`; past that, rejects with `onTimeout()`. An abort or a close
 * rejects at once.
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  interrupts: Interrupts,
  scheduler: Scheduler,
): Promise<T> {
  const outcome = observed(promise)
  return interruptible<T>(interrupts, settle => {
    outcome.then(settle)
    return scheduler.after(ms, () => settle({ error: onTimeout() }), { keepAlive: true })
  })
}

/**
 * True if `promise` fulfils within `ms`, false if `ms` passes first; rejects with its error, or at an abort
 * or close.
 */
export function settlesWithin(
  promise: Promise<unknown>,
  ms: number,
  interrupts: Interrupts,
  scheduler: Scheduler,
): Promise<boolean> {
  return interruptible<boolean>(interrupts, settle => {
    promise.then(
      () => settle({ value: true }),
      error => settle({ error }),
    )
    return scheduler.after(ms, () => settle({ value: false }), { keepAlive: true })
  })
}

/** Resolves after `ms`, or as soon as `signal` aborts: a pause that never throws. */
export function sleep(ms: number, signal: AbortSignal | undefined, scheduler: Scheduler): Promise<void> {
  return new Promise<void>(resolve => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      cancel()
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const cancel = scheduler.after(ms, done, { keepAlive: true })
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * A signal that aborts when any of `signals` does or `ms` pass (`AbortSignal.timeout` on the scheduler's
 * clock); `cancel` stops the timer once the work it bounds is done.
 */
export function deadlineSignal(
  ms: number,
  signals: AbortSignal[],
  scheduler: Scheduler,
): { signal: AbortSignal; cancel: Cancel } {
  const timeout = new AbortController()
  const cancel = scheduler.after(ms, () => timeout.abort())
  return { signal: AbortSignal.any([...signals, timeout.signal]), cancel }
}
