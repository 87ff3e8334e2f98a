/**
 * Lifeguard's dynamic suspicion timeout for one suspected member. It starts at `max` and falls on a log
 * scale towards `min` as distinct members independently report the same suspicion: with k confirmations it
 * reaches `min`. Several nodes probing the same silent member is strong evidence; one accuser alone, who may
 * be the slow one, gets the long timeout.
 */

import type { MemberId } from './types.ts'

export class Suspicion {
  /** The suspected incarnation. */
  readonly incarnation: number
  /** Confirmations needed to reach the minimum timeout (0: start at the minimum). */
  readonly k: number
  readonly min: number
  readonly max: number
  private started: number
  private readonly accusers = new Set<MemberId>()
  /**
   * Whether this node published the suspicion itself (its own accusation or confirmation, or one learned
   * by push-pull): then it also publishes the death when the timeout expires. A node that only heard the
   * suspicion on the gossip topic declares the death in its own view and publishes nothing: everyone else
   * heard the same gossip and runs the same timer, and the accusers publish the death for any that missed
   * it. (Every holder publishing was one gossipsub flood per member for each crash: with 300 agents, 140
   * to 216 floods of the same death, each reaching every agent.)
   */
  spreading = false
  private confirmationCount = 0
  private due: number

  /** `from` is the first accuser; it never counts again, as our own suspicion may be gossiped back to us. */
  constructor(from: MemberId, incarnation: number, k: number, min: number, max: number, now: number) {
    this.incarnation = incarnation
    this.k = k
    this.min = min
    this.max = max
    this.started = now
    this.accusers.add(from)
    this.due = now + (k < 1 ? min : max)
  }

  /** When the member is to be declared dead, unless refuted first. */
  get deadline(): number {
    return this.due
  }

  get confirmations(): number {
    return this.confirmationCount
  }

  /**
   * Registers an accusation by `from`. True if it was a new, independent one that moved the deadline (worth
   * re-gossiping); false for a repeat accuser or once the minimum is reached.
   */
  confirm(from: MemberId): boolean {
    if (this.confirmationCount >= this.k) return false
    if (this.accusers.has(from)) return false
    this.accusers.add(from)
    this.confirmationCount++
    this.due = this.started + timeoutAfterConfirmations(this.confirmationCount, this.k, this.min, this.max)
    return true
  }

  /** Moves the timer out by `delay` (time this node spent stalled does not count). */
  postpone(delay: number): void {
    this.started += delay
    this.due += delay
  }
}

/** The total timeout after `n` of `k` confirmations: max − log(n+1)/log(k+1) × (max − min), at least min. */
export function timeoutAfterConfirmations(n: number, k: number, min: number, max: number): number {
  const fraction = Math.log(n + 1) / Math.log(k + 1)
  return Math.max(min, Math.floor(max - fraction * (max - min)))
}
