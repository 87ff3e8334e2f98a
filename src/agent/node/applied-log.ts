import type { Entry } from '../../raft/types.ts'

/** Most entries a replica keeps for its members to catch up from; older ones are served as a snapshot. */
export const APPLIED_LOG_ENTRIES = 8_192
/** Most bytes of entry data kept, whatever the count. */
export const APPLIED_LOG_BYTES = 32 * 1024 * 1024

/**
 * The entries a replica applied most recently, contiguous and ending at its applied index: what it serves
 * to the members it feeds (`ReplicaFeed`). Memory only, bounded by count and bytes; a restore from a
 * snapshot empties it, since the entries before the snapshot were never seen here.
 */
export class AppliedLog {
  private entries: Entry[] = []
  private start = 0
  private bytes = 0
  private readonly waiters = new Set<() => void>()
  private readonly maxEntries: number
  private readonly maxBytes: number

  constructor(maxEntries = APPLIED_LOG_ENTRIES, maxBytes = APPLIED_LOG_BYTES) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }

  /** The entry just applied (indexes ascend by one; anything else starts the log over). */
  push(entry: Entry): void {
    const last = this.lastIndex()
    if (last !== undefined && entry.index !== last + 1) this.reset()
    this.entries.push(entry)
    this.bytes += entry.data.byteLength
    while (
      this.entries.length - this.start > this.maxEntries ||
      (this.bytes > this.maxBytes && this.entries.length - this.start > 1)
    ) {
      this.bytes -= this.entries[this.start].data.byteLength
      this.start++
    }
    // Compact the array now and then rather than shift at every push.
    if (this.start > 1_024 && this.start * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.start)
      this.start = 0
    }
    if (this.waiters.size > 0) {
      const waiters = [...this.waiters]
      this.waiters.clear()
      for (const wake of waiters) wake()
    }
  }

  /** After a restore: the entries before the snapshot are unknown here. */
  reset(): void {
    this.entries = []
    this.start = 0
    this.bytes = 0
  }

  firstIndex(): number | undefined {
    return this.entries.length > this.start ? this.entries[this.start].index : undefined
  }

  lastIndex(): number | undefined {
    return this.entries.length > this.start ? this.entries[this.entries.length - 1].index : undefined
  }

  /**
   * The entries from `index` on, up to `maxBytes` of data (at least one): `[]` when none is applied yet,
   * undefined when `index` is older than what is kept (the caller needs a snapshot).
   */
  from(index: number, maxBytes: number): Entry[] | undefined {
    const first = this.firstIndex()
    const last = this.lastIndex()
    if (first === undefined || last === undefined) return undefined
    if (index > last) return []
    if (index < first) return undefined
    const out: Entry[] = []
    let size = 0
    for (let i = this.start + (index - first); i < this.entries.length; i++) {
      const entry = this.entries[i]
      if (out.length > 0 && size + entry.data.byteLength > maxBytes) break
      out.push(entry)
      size += entry.data.byteLength
    }
    return out
  }

  /** Resolves at the next `push` (the caller bounds the wait); returns the cancel function. */
  onNext(wake: () => void): () => void {
    this.waiters.add(wake)
    return () => this.waiters.delete(wake)
  }
}
