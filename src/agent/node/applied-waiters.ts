import type { Scheduler } from '../../time/index.ts'
import { type Interrupts, interruptible } from './abort.ts'

interface Waiter {
  readonly index: number
  settle(outcome: { value: undefined } | { error: unknown }): void
}

/**
 * The agent's one wait-until-applied: callers wait for a log index, and `advance` releases every wait the
 * applied index has reached. The Raft runner waits here for its linearizable reads, the replica for the
 * API calls that must see an entry they learned of from the leader (a claim's start, say).
 */
export class AppliedWaiters {
  private applied: number
  /** By index (mostly appended: entries are waited for in log order), released from the front. */
  private readonly waiting: Waiter[] = []

  constructor(applied = 0) {
    this.applied = applied
  }

  get index(): number {
    return this.applied
  }

  /** How many waits are pending. */
  get size(): number {
    return this.waiting.length
  }

  /**
   * Resolves once `index` is applied; rejects at an abort (`AbortError`) or close (`ClosedError`), and with
   * `timeout.error()` once `timeout.ms` pass. A wait that ends early is forgotten.
   */
  wait(index: number, interrupts: Interrupts = {}, timeout?: Timeout): Promise<void> {
    if (this.applied >= index) return Promise.resolve()
    return interruptible<undefined>(interrupts, settle => {
      const waiter: Waiter = { index, settle }
      let at = this.waiting.length
      while (at > 0 && this.waiting[at - 1].index > index) at--
      this.waiting.splice(at, 0, waiter)
      const cancelTimer = timeout?.scheduler.after(timeout.ms, () => settle({ error: timeout.error() }), {
        keepAlive: true,
      })
      return () => {
        cancelTimer?.()
        const at = this.waiting.indexOf(waiter)
        if (at >= 0) this.waiting.splice(at, 1)
      }
    })
  }

  /** The applied index is now `applied` (an entry applied, or a snapshot restored): release who waited for it. */
  advance(applied: number): void {
    this.applied = applied
    let released = 0
    while (released < this.waiting.length && this.waiting[released].index <= applied) released++
    if (released === 0) return
    for (const waiter of this.waiting.splice(0, released)) waiter.settle({ value: undefined })
  }

  /** Forgets every wait without settling it (a stopped runner: its callers give up on their own deadlines). */
  clear(): void {
    this.waiting.length = 0
  }
}

/** A wait's time bound: past `ms` on `scheduler`'s clock it rejects with `error()`. */
export interface Timeout {
  ms: number
  error(): Error
  /** The clock of `ms`: the agent's. */
  scheduler: Scheduler
}
