import type { MemberId, PushPullEntry } from '../../swim/types.ts'

/**
 * Members another member's push-pull named that this view lacks and the cluster did not know yet (a
 * joiner's registry copy lags behind the view of the seed that answered it), kept so that they enter the
 * view as soon as the registry names them, the way the claim gate introduces the members the cluster
 * knows: at incarnation 0, alive, their own word outranking that. Asking each directly at once, as before,
 * made every joiner of a storm dial every member with its full state (50 agents started together: about 50
 * push-pulls each); most of them arrive in the registry within a probe period or two, and those that do not
 * are synced with after the seed delay (`UnseenMembers`).
 */
export class NamedMembers {
  private readonly entries = new Map<MemberId, { entry: PushPullEntry; by: MemberId }>()
  private readonly limit: number

  /** Holds at most `limit` members (the view's `maxPendingMembers`); later ones are only synced with. */
  constructor(limit: number) {
    this.limit = limit
  }

  /** `by` (a member that may accuse) named `entries` that the view lacks. */
  hold(entries: readonly PushPullEntry[], by: MemberId): void {
    for (const entry of entries) {
      if (!this.entries.has(entry.id) && this.entries.size >= this.limit) continue
      this.entries.set(entry.id, { entry, by })
    }
  }

  /**
   * Takes out the held members the view now holds (`inView`) or no longer waits for (`waiting`: given up),
   * forgotten, and those the cluster now knows, named by a member it knows (`known`): returned, grouped by
   * the member that named them, to be introduced as that member's push-pull would have.
   */
  take(
    inView: (id: MemberId) => boolean,
    known: (id: MemberId) => boolean,
    waiting: (id: MemberId) => boolean,
  ): Map<MemberId, PushPullEntry[]> {
    const introduce = new Map<MemberId, PushPullEntry[]>()
    for (const [id, { entry, by }] of this.entries) {
      if (inView(id) || !waiting(id)) {
        this.entries.delete(id)
        continue
      }
      if (!known(id) || !known(by)) continue
      this.entries.delete(id)
      const batch = introduce.get(by) ?? []
      batch.push({ ...entry, incarnation: 0, status: 'alive' })
      introduce.set(by, batch)
    }
    return introduce
  }

  clear(): void {
    this.entries.clear()
  }
}
