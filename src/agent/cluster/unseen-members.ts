import type { MemberId } from '../../swim/types.ts'

/** Agents not in the view are asked to sync again after this long. */
const RESEED_INTERVAL_MS = 30_000

/**
 * An agent the cluster knows of (Raft, registry) but the view does not is synced with only after this many
 * probe periods: its own announcement usually arrives first, and every member syncing with a joiner at once
 * is a burst of dials and full-state messages for nothing.
 */
export const SEED_DELAY_PERIODS = 4

/**
 * Members the cluster or another member names but the view lacks, and when to sync (push-pull) with each:
 * after a few probe periods at a random phase, then at most every 30 s; sooner after a failed dial.
 */
export class UnseenMembers {
  private readonly entries = new Map<MemberId, { notedAt: number; syncedAt?: number }>()
  private readonly probeInterval: number
  private readonly random: () => number

  constructor(probeInterval: number, random: () => number) {
    this.probeInterval = probeInterval
    this.random = random
  }

  get size(): number {
    return this.entries.size
  }

  clear(): void {
    this.entries.clear()
  }

  /** Whether `id` is waiting to be synced with (or seen). */
  has(id: MemberId): boolean {
    return this.entries.has(id)
  }

  /** The members waiting: each refresh passes them to `due` again, so their delay can run out. */
  waiting(): MemberId[] {
    return [...this.entries.keys()]
  }

  /**
   * Of `ids`, those to sync with at `time`, recorded as synced; `now` skips the initial delay. Members the
   * view holds (`inView`) are forgotten.
   */
  due(ids: readonly MemberId[], time: number, now: boolean, inView: (id: MemberId) => boolean): MemberId[] {
    const delay = SEED_DELAY_PERIODS * this.probeInterval
    for (const [id] of this.entries) if (inView(id)) this.entries.delete(id)
    const due: MemberId[] = []
    for (const id of ids) {
      if (inView(id)) continue
      let entry = this.entries.get(id)
      if (entry === undefined) {
        // A random phase spreads the members that noticed the same agent at the same time.
        entry = { notedAt: now ? time - delay : time + this.random() * this.probeInterval }
        this.entries.set(id, entry)
      }
      if (!now && time - entry.notedAt < delay) continue
      if (entry.syncedAt !== undefined && time - entry.syncedAt < RESEED_INTERVAL_MS) continue
      entry.syncedAt = time
      due.push(id)
    }
    return due
  }

  /** A sync with `id` did not reach it (no address yet, a failed dial): try again in a few probe periods. */
  unreached(id: MemberId, time: number): void {
    const entry = this.entries.get(id)
    if (entry?.syncedAt === undefined) return
    entry.syncedAt = time - RESEED_INTERVAL_MS + SEED_DELAY_PERIODS * this.probeInterval
  }

  /** Forgets members synced with once and still unseen that `keep` does not vouch for: they free their room. */
  prune(time: number, keep: (id: MemberId) => boolean): void {
    for (const [id, entry] of this.entries) {
      const stale = entry.syncedAt !== undefined && time - entry.syncedAt >= RESEED_INTERVAL_MS
      if (stale && !keep(id)) this.entries.delete(id)
    }
  }
}
