/**
 * When this leader first saw each thing it times, on its own monotonic clock, for one leadership: the part
 * the leader's timings share (lock leases, task attempts, assignments nobody starts). Each is timed from the
 * first housekeeping round in which this leader sees it applied, never from an entry's timestamp or a wall
 * clock; a new leadership starts every timing over, and a thing not seen in a round ended and is forgotten.
 *
 * A round: `begin(leadership)`, `elapsed(key, now)` for each thing present, `end()`.
 */
export class LeaderStopwatch<K> {
  /** The leadership the timings belong to (`RaftHost.leaderSince`, by identity). */
  private leadership?: object
  /** By key: when this leadership first saw it (monotonic ms). */
  private readonly firstSeen = new Map<K, number>()
  /** The keys seen in the round under way. */
  private readonly present = new Set<K>()

  /** Starts a housekeeping round for `leadership`; a new leadership starts every timing over. */
  begin(leadership: object): void {
    if (this.leadership !== leadership) {
      this.leadership = leadership
      this.firstSeen.clear()
    }
    this.present.clear()
  }

  /**
   * Milliseconds at monotonic `now` since this leadership first saw `key`; undefined the first time (its
   * timing starts now, and nothing seen for the first time is due).
   */
  elapsed(key: K, now: number): number | undefined {
    this.present.add(key)
    const since = this.firstSeen.get(key)
    if (since === undefined) {
      this.firstSeen.set(key, now)
      return undefined
    }
    return now - since
  }

  /** Ends the round: what was not seen in it ended (released, started, timed out...) and is forgotten. */
  end(): void {
    if (this.present.size < this.firstSeen.size) {
      for (const key of this.firstSeen.keys()) if (!this.present.has(key)) this.firstSeen.delete(key)
    }
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.leadership = undefined
    this.firstSeen.clear()
    this.present.clear()
  }
}
