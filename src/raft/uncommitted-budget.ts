/**
 * The leader's flow control on uncommitted entry bytes (`maxUncommittedBytes`), fair to large proposals.
 *
 * The plain rule (etcd-io/raft's `increaseUncommittedSize`) admits a proposal when it fits under the cap, or
 * when nothing is uncommitted (so one entry larger than the cap still gets in, alone). Under a steady stream
 * of small proposals the uncommitted bytes stay near the cap and a large proposal that is refused and retried
 * never finds the room: each commit frees a little and a small proposal takes it first (simulator seed 83: a
 * 300-byte transaction under a 400-byte cap refused on more than 50 tries, never completed).
 *
 * So a refused proposal waits in a FIFO, by first refusal, and the first waiter keeps its room: it keeps the
 * plain rule (fits, or nothing is uncommitted), and every other proposal is admitted only if it fits beside
 * the first waiter. Once the uncommitted bytes plus the first waiter fit under the cap, every admission keeps
 * them fitting, so the first waiter is admitted on its first retry after the entries uncommitted at its
 * refusal have committed; the one behind it then becomes first. A waiter at position i is thus admitted
 * within i + 1 such drains (fewer when it fits beside the first). Only the first waiter reserves: reserving
 * for all of them (each fits only beside every one ahead) stalled everything behind waiters whose sizes sum
 * past the cap (simulator, 400-byte cap: a dozen waiters, nothing uncommitted, all refused).
 *
 * A waiter is known by the key its proposer gives (`propose`'s `waiter`: the agent's session and sequence
 * number, the same on every retry, whatever else in the data changes), so another proposal of the same size
 * cannot take its place. A proposal without a key (one the shell does not number) is known by its size:
 * proposals of one size need the same room and are interchangeable here. A retry refreshes its waiter (and
 * its size: a retry's data may differ a little); a waiter not retried for `expiryTicks` leader ticks is dropped, so a proposer that vanished holds
 * the room for at most that long. At most {@link MAX_WAITERS} sizes wait; beyond that a refused proposal
 * is refused without waiting (as before).
 *
 * Bound: admission never lets in more than the plain rule would, so the uncommitted bytes stay at most
 * `maxUncommittedBytes`, or one entry alone when it is larger; the queue adds at most MAX_WAITERS small
 * records.
 */

/** How many refused proposals (distinct keys or sizes) may wait at once. */
export const MAX_WAITERS = 64

interface Waiter {
  size: number
  /** The proposer's identity for the proposal, the same on each retry; undefined: known by its size. */
  key: string | undefined
  /** Leader ticks since this size was last refused (a retry) or queued. */
  idle: number
}

export class UncommittedBudget {
  /** Payload bytes of the entries this leader appended that are not known committed. */
  private uncommitted = 0
  private waiters: Waiter[] = []
  private readonly maxBytes: number
  private readonly expiryTicks: number

  constructor(maxBytes: number, expiryTicks: number) {
    this.maxBytes = maxBytes
    this.expiryTicks = expiryTicks
  }

  /** Bytes uncommitted now. */
  get bytes(): number {
    return this.uncommitted
  }

  /** How many refused sizes wait for room. */
  get waiting(): number {
    return this.waiters.length
  }

  /**
   * Admits a proposal of `size` bytes (counting it as uncommitted) or refuses it (returns false, and the
   * proposal waits for room as described above). `key`: the proposal's identity across retries, if any.
   */
  admit(size: number, key?: string): boolean {
    if (size === 0) return true
    const position = this.waiters.findIndex(waiter =>
      key === undefined ? waiter.key === undefined && waiter.size === size : waiter.key === key,
    )
    // The room kept for the first waiter, unless this is it.
    const reserved = position === 0 || this.waiters.length === 0 ? 0 : this.waiters[0].size
    const fits =
      this.uncommitted + reserved + size <= this.maxBytes ||
      // The plain rule's empty-log exception, only for the first in line: one oversize entry alone.
      (reserved === 0 && this.uncommitted === 0)
    if (fits) {
      if (position >= 0) this.waiters.splice(position, 1)
      this.uncommitted += size
      return true
    }
    if (position >= 0) {
      this.waiters[position].idle = 0
      this.waiters[position].size = size
    } else if (this.waiters.length < MAX_WAITERS) {
      this.waiters.push({ size, key, idle: 0 })
    }
    return false
  }

  /** Entries of `bytes` payload committed. */
  release(bytes: number): void {
    this.uncommitted = Math.max(0, this.uncommitted - bytes)
  }

  /** One leader tick: waiters not retried for `expiryTicks` are given up. */
  tick(): void {
    if (this.waiters.length === 0) return
    for (const waiter of this.waiters) waiter.idle++
    this.waiters = this.waiters.filter(waiter => waiter.idle <= this.expiryTicks)
  }

  /** A new term or role: nothing of this leader's is uncommitted or waiting. */
  reset(): void {
    this.uncommitted = 0
    this.waiters = []
  }
}
