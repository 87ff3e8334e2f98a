import type { LockHolder } from '../../state/index.ts'

/** A lease the leader's clock says has run out: what its `lockExpire` names. */
export interface LockExpiry {
  key: string
  fencingToken: number
  leaseIndex: number
}

/** What the clock reads of the state: every lock holder. */
export interface LockHolders {
  lockHolders(): Iterable<{ key: string; holder: Readonly<LockHolder> }>
}

/**
 * The leader's timing of lock leases, on its own monotonic clock only. A lease (a grant or an extend, named
 * by `leaseIndex`) is timed from the first housekeeping round in which this leader sees it applied, and is
 * due once a full `ttlMs` has passed since on this clock. No wall clock and no entry timestamp enters the
 * decision, so a leader whose wall clock is ahead, or steps, cannot cut a lease short.
 *
 * Why it is safe: the holder trusts its lease for `ttl - margin` from when it *sent* the request that set it
 * (`api/locks.ts`), which is before the entry was proposed, so before this leader saw it applied. A new
 * leader sees every existing lease first after its takeover, and so waits a full ttl from then. What remains
 * is the clocks' rates: the holder's lease ends first as long as the leader's monotonic clock does not run
 * faster than the holder's by more than `ttl / (ttl - margin)` (about 11 % with the default 10 % margin;
 * README, Guarantees).
 */
export class LockLeaseClock {
  /** The leadership the timings belong to (`RaftHost.leaderSince`, by identity): a new one starts over. */
  private leadership?: object
  /** By key and token: the lease seen and when (monotonic ms). */
  private readonly seen = new Map<string, { leaseIndex: number; since: number }>()

  /**
   * The leases due at monotonic `now` for the leadership `leadership`, having noted the ones seen for the
   * first time. Call once per housekeeping round, on the leader.
   */
  due(state: LockHolders, leadership: object, now: number): LockExpiry[] {
    if (this.leadership !== leadership) {
      this.leadership = leadership
      this.seen.clear()
    }
    const due: LockExpiry[] = []
    const current = new Set<string>()
    for (const { key, holder } of state.lockHolders()) {
      const id = `${holder.fencingToken}\n${key}`
      current.add(id)
      const seen = this.seen.get(id)
      if (seen === undefined || seen.leaseIndex !== holder.leaseIndex) {
        this.seen.set(id, { leaseIndex: holder.leaseIndex, since: now })
      } else if (now - seen.since >= holder.ttlMs) {
        due.push({ key, fencingToken: holder.fencingToken, leaseIndex: holder.leaseIndex })
      }
    }
    // Leases that ended (released, expired, their session gone) are forgotten.
    if (current.size < this.seen.size) {
      for (const id of this.seen.keys()) if (!current.has(id)) this.seen.delete(id)
    }
    return due
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.leadership = undefined
    this.seen.clear()
  }
}
