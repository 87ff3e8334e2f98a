import type { LockHolder } from '../../state/index.ts'
import { LeaderStopwatch } from './leader-stopwatch.ts'

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
  /** By lease (token, key and the entry that set it: an extend starts its timing over). */
  private readonly stopwatch = new LeaderStopwatch<string>()

  /**
   * The leases due at monotonic `now` for the leadership `leadership`, having noted the ones seen for the
   * first time. Call once per housekeeping round, on the leader.
   */
  due(state: LockHolders, leadership: object, now: number): LockExpiry[] {
    this.stopwatch.begin(leadership)
    const due: LockExpiry[] = []
    for (const { key, holder } of state.lockHolders()) {
      const elapsed = this.stopwatch.elapsed(`${holder.fencingToken}\n${holder.leaseIndex}\n${key}`, now)
      if (elapsed !== undefined && elapsed >= holder.ttlMs) {
        due.push({ key, fencingToken: holder.fencingToken, leaseIndex: holder.leaseIndex })
      }
    }
    this.stopwatch.end()
    return due
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.stopwatch.clear()
  }
}
