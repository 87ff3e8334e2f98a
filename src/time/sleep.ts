import { AbortError } from '../errors.ts'
import type { Scheduler } from './scheduler.ts'

/**
 * Promise-shaped waits on a {@link Scheduler}: the one place the shell turns a deferred call into something
 * to await. Waits keep the process alive (a caller awaits them); an abort rejects with `AbortError`.
 */

/** Resolves after `ms`; rejects with `AbortError` if `signal` aborts first (or already has). */
export function sleep(scheduler: Scheduler, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError())
    const onAbort = (): void => {
      cancel()
      reject(new AbortError())
    }
    const cancel = scheduler.after(
      ms,
      () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      },
      { keepAlive: true },
    )
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * `promise`, or what `timedOut()` returns (or throws) if it has not settled within `ms`. Rejects with
 * `AbortError` when `signal` aborts first. `promise` is not cancelled: the caller gives up on it.
 */
export function raceTimeout<T, U>(
  scheduler: Scheduler,
  promise: Promise<T>,
  ms: number,
  timedOut: () => U,
  signal?: AbortSignal,
): Promise<T | U> {
  return new Promise<T | U>((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError())
    let settled = false
    const finish = (): boolean => {
      if (settled) return false
      settled = true
      cancel()
      signal?.removeEventListener('abort', onAbort)
      return true
    }
    const onAbort = (): void => {
      if (finish()) reject(new AbortError())
    }
    const cancel = scheduler.after(
      ms,
      () => {
        if (!finish()) return
        try {
          resolve(timedOut())
        } catch (err) {
          reject(err)
        }
      },
      { keepAlive: true },
    )
    signal?.addEventListener('abort', onAbort, { once: true })
    promise.then(
      value => {
        if (finish()) resolve(value)
      },
      err => {
        if (finish()) reject(err)
      },
    )
  })
}

/**
 * An `AbortSignal` that aborts after `ms` with a `TimeoutError` `DOMException`, as `AbortSignal.timeout` does,
 * on the scheduler's clock. Like it, the pending timer does not keep the process alive.
 */
export function timeoutSignal(scheduler: Scheduler, ms: number): AbortSignal {
  const controller = new AbortController()
  scheduler.after(ms, () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')))
  return controller.signal
}
