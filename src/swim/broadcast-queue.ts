/**
 * The updates this node still has to publish, each a limited number of times (memberlist's
 * TransmitLimitedQueue). A batch takes the least transmitted updates first, newest first among equals, so
 * fresh news goes out at once and old news fades after its retransmissions. A newer update about a member
 * replaces the queued one about the same member: only the latest word about anyone is worth repeating.
 */

import type { MemberId, Update } from './types.ts'

interface QueuedUpdate {
  update: Update
  transmits: number
  /** Insertion order: higher is newer. */
  order: number
}

/** The member an update is about. */
export function updateSubject(update: Update): MemberId {
  return update.type === 'alive' ? update.member.id : update.id
}

/** The incarnation an update speaks of. */
export function updateIncarnation(update: Update): number {
  return update.type === 'alive' ? update.member.incarnation : update.incarnation
}

export class BroadcastQueue {
  private readonly queued = new Map<MemberId, QueuedUpdate>()
  private nextOrder = 0

  get size(): number {
    return this.queued.size
  }

  /** Queues `update` with no transmissions yet, replacing what was queued about the same member. */
  push(update: Update): void {
    this.queued.set(updateSubject(update), { update, transmits: 0, order: this.nextOrder++ })
  }

  /** Drops the queued update about `id` if it speaks of an incarnation below `incarnation` (now stale). */
  dropStale(id: MemberId, incarnation: number): void {
    const entry = this.queued.get(id)
    if (entry !== undefined && updateIncarnation(entry.update) < incarnation) this.queued.delete(id)
  }

  /** The queued update about `id`, if any. */
  get(id: MemberId): Update | undefined {
    return this.queued.get(id)?.update
  }

  /**
   * Takes up to `maxCount` updates for one batch and counts the transmission; updates that reach
   * `transmitLimit` transmissions leave the queue.
   */
  take(maxCount: number, transmitLimit: number): Update[] {
    if (this.queued.size === 0) return []
    const entries = [...this.queued.entries()]
    entries.sort(([, a], [, b]) => a.transmits - b.transmits || b.order - a.order)
    const batch: Update[] = []
    for (const [id, entry] of entries) {
      if (batch.length >= maxCount) break
      batch.push(entry.update)
      entry.transmits++
      if (entry.transmits >= transmitLimit) this.queued.delete(id)
    }
    return batch
  }
}
