import { AbortError, ClosedError } from '../../../errors.ts'

/**
 * What idle `next()` calls wait on: a generation number that moves whenever something that may give this
 * agent work happens (an assignment, a steal, a registration, a failed claim). The events of one batch of
 * applied entries are coalesced into one wake-up. Counts the callers waiting, which is the free capacity
 * the work stealer may fill.
 */
export class TaskChanges {
  private readonly closed: AbortSignal
  private readonly waiters = new Set<() => void>()
  private readonly idleListeners = new Set<() => void>()
  private wakeScheduled = false
  private idleCount = 0
  /** Moves at every wake-up; a caller that saw one value waits for the next. */
  generation = 0

  constructor(closed: AbortSignal) {
    this.closed = closed
  }

  /** Callers waiting now. */
  get idle(): number {
    return this.idleCount
  }

  /** Calls `listener` whenever a caller starts waiting; returns the unsubscribe. */
  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener)
    return () => this.idleListeners.delete(listener)
  }

  /** Wakes the waiting callers once the current batch of events is through (a microtask later). */
  wake(): void {
    if (this.wakeScheduled) return
    this.wakeScheduled = true
    queueMicrotask(() => {
      this.wakeScheduled = false
      this.flush()
    })
  }

  /** Wakes the waiting callers now. */
  flush(): void {
    this.generation++
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const waiter of waiters) waiter()
  }

  /** Resolves at the next change after `seen`; rejects on abort or close. */
  wait(seen: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.generation !== seen) return Promise.resolve()
    const closed = this.closed
    this.idleCount++
    const waiting = new Promise<void>((resolve, reject) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done)
        this.waiters.delete(done)
        if (closed.aborted) reject(new ClosedError())
        else if (signal?.aborted) reject(new AbortError())
        else resolve()
      }
      signal?.addEventListener('abort', done, { once: true })
      this.waiters.add(done)
    }).finally(() => {
      this.idleCount--
    })
    for (const listener of this.idleListeners) listener()
    return waiting
  }
}
