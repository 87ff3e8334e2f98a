import type { KvEvent } from './events.ts'

/** Replay of the KV history from a revision: the events, or `compacted` if some are no longer retained. */
export type HistoryResult =
  | { type: 'events'; events: KvEvent[] }
  /** Events up to and including `compactedRevision` are gone; ask again from `compactedRevision + 1`. */
  | { type: 'compacted'; compactedRevision: number }

/** The last `capacity` KV events in revision order, in a ring buffer, for watches that start in the past. */
export class KvHistory {
  readonly capacity: number
  /** Highest revision that was dropped from the window (0 while nothing was). */
  compactedRevision = 0
  private readonly buffer: KvEvent[] = []
  /** Position of the oldest event once the buffer is full. */
  private start = 0

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size(): number {
    return this.buffer.length
  }

  push(event: KvEvent): void {
    if (this.capacity === 0) {
      this.compactedRevision = event.revision
      return
    }
    if (this.buffer.length < this.capacity) {
      this.buffer.push(event)
      return
    }
    this.compactedRevision = this.buffer[this.start].revision
    this.buffer[this.start] = event
    this.start = (this.start + 1) % this.capacity
  }

  /**
   * Events with revision >= `fromRevision` whose key starts with `prefix`, oldest first, at most `limit`.
   * `compacted` if any event at or after `fromRevision` is no longer retained.
   */
  since(fromRevision: number, prefix = '', limit = Number.POSITIVE_INFINITY): HistoryResult {
    const from = Math.max(fromRevision, 1)
    if (from <= this.compactedRevision)
      return { type: 'compacted', compactedRevision: this.compactedRevision }
    const events: KvEvent[] = []
    const size = this.buffer.length
    // Revisions increase along the ring: binary search the first one >= from.
    let low = 0
    let high = size
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.at(middle).revision < from) low = middle + 1
      else high = middle
    }
    for (let i = low; i < size && events.length < limit; i++) {
      const event = this.at(i)
      if (event.key.startsWith(prefix)) events.push(event)
    }
    return { type: 'events', events }
  }

  /** All retained events, oldest first. */
  toArray(): KvEvent[] {
    const events: KvEvent[] = []
    for (let i = 0; i < this.buffer.length; i++) events.push(this.at(i))
    return events
  }

  private at(position: number): KvEvent {
    return this.buffer[(this.start + position) % this.buffer.length]
  }
}
