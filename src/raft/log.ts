/**
 * The in-memory Raft log: the entries after a snapshot base, in an array indexed by offset, and what of it is
 * durable (`stableIndex`) and what has been handed out to the shell for persistence (`unstableFrom`).
 */

import type { Entry } from './types.ts'

export class RaftLog {
  /** Index and term of the last entry the snapshot covers (0, 0 without a snapshot). */
  snapshotIndex: number
  snapshotTerm: number
  /** Highest index known to be on stable storage. */
  stableIndex: number
  /** First index not yet handed out in a Ready for persistence. */
  unstableFrom: number
  /** Data size of the last `sliceBySize` result. */
  sliceBytes = 0
  private entries: Entry[]

  /** A log restored from storage: everything given is already durable. */
  constructor(snapshotIndex: number, snapshotTerm: number, entries: readonly Entry[]) {
    this.snapshotIndex = snapshotIndex
    this.snapshotTerm = snapshotTerm
    this.entries = []
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].index !== snapshotIndex + 1 + i) {
        throw new RangeError(`Persisted entries are not contiguous after index ${snapshotIndex}`)
      }
      this.entries.push(entries[i])
    }
    this.stableIndex = this.lastIndex()
    this.unstableFrom = this.stableIndex + 1
  }

  firstIndex(): number {
    return this.snapshotIndex + 1
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length
  }

  lastTerm(): number {
    return this.entries.length === 0 ? this.snapshotTerm : this.entries[this.entries.length - 1].term
  }

  /** Term of the entry at `index`; undefined when it was compacted away or is beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm
    const offset = index - this.snapshotIndex - 1
    if (offset < 0 || offset >= this.entries.length) return undefined
    return this.entries[offset].term
  }

  /** The entry at `index`, which must be in (snapshotIndex, lastIndex]. */
  entry(index: number): Entry {
    return this.entries[index - this.snapshotIndex - 1]
  }

  /** Entries [lo, hi), both within (snapshotIndex, lastIndex + 1]. */
  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.snapshotIndex - 1, hi - this.snapshotIndex - 1)
  }

  /**
   * Entries from `lo` up to the end, stopping before the total data size would exceed `maxBytes`; at least
   * one entry when `lo` is in the log. Sets `sliceBytes` to the data size of what it returns.
   */
  sliceBySize(lo: number, maxBytes: number): Entry[] {
    const start = lo - this.snapshotIndex - 1
    let end = start
    let bytes = 0
    const entries = this.entries
    while (end < entries.length) {
      const size = entries[end].data.length
      if (end > start && bytes + size > maxBytes) break
      bytes += size
      end++
    }
    this.sliceBytes = bytes
    return entries.slice(start, end)
  }

  /** Data bytes of the entries in (from, to]. */
  bytesBetween(from: number, to: number): number {
    let bytes = 0
    const lo = Math.max(from, this.snapshotIndex) - this.snapshotIndex
    const hi = to - this.snapshotIndex
    for (let i = lo; i < hi; i++) bytes += this.entries[i].data.length
    return bytes
  }

  /** Appends one entry at lastIndex + 1 (the leader's own proposals). */
  append(entry: Entry): void {
    this.entries.push(entry)
  }

  /**
   * Index of the first of `entries` (consecutive, from a leader) that is not already in the log with the same
   * term, or -1 when all are. Entries at or below the snapshot are taken as matching (they are committed).
   */
  findConflict(entries: readonly Entry[]): number {
    const last = this.lastIndex()
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      if (entry.index <= this.snapshotIndex) continue
      if (entry.index > last || this.entry(entry.index).term !== entry.term) return i
    }
    return -1
  }

  /** Drops the entries at `index` and after. */
  truncateFrom(index: number): void {
    const keep = index - this.snapshotIndex - 1
    if (keep < 0 || keep >= this.entries.length) return
    this.entries.length = keep
    if (this.stableIndex >= index) this.stableIndex = index - 1
    if (this.unstableFrom > index) this.unstableFrom = index
  }

  /** Appends `entries[from..]`, which must start at lastIndex + 1. */
  appendFrom(entries: readonly Entry[], from: number): void {
    for (let i = from; i < entries.length; i++) this.entries.push(entries[i])
  }

  /** The candidate's last entry is at least as up to date as ours (Raft §5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm()
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex())
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex()
  }

  /** Hands out the entries not yet given for persistence. */
  takeUnstable(): Entry[] {
    const last = this.lastIndex()
    if (this.unstableFrom > last) return []
    const entries = this.slice(this.unstableFrom, last + 1)
    this.unstableFrom = last + 1
    return entries
  }

  /** The shell persisted entries up to (index, term); ignored if that entry has since been replaced. */
  stableTo(index: number, term: number): void {
    if (index > this.stableIndex && index < this.unstableFrom && this.term(index) === term) {
      this.stableIndex = index
    }
  }

  /** Discards entries up to `index` (which must be in the log), which a snapshot now covers. */
  compact(index: number): void {
    if (index <= this.snapshotIndex || index > this.lastIndex()) return
    const term = this.term(index) as number
    this.entries.splice(0, index - this.snapshotIndex)
    this.snapshotIndex = index
    this.snapshotTerm = term
  }

  /**
   * Installs a snapshot base at (index, term). With `keepSuffix` (the log has that entry) the entries after it
   * stay; otherwise the log becomes empty after it. Everything after the base is handed out again, so the
   * shell can replace its stored log with the snapshot followed by the Ready's entries.
   */
  restore(index: number, term: number, keepSuffix: boolean): void {
    if (keepSuffix && index >= this.snapshotIndex && index <= this.lastIndex()) {
      this.entries.splice(0, index - this.snapshotIndex)
    } else {
      this.entries = []
    }
    this.snapshotIndex = index
    this.snapshotTerm = term
    this.stableIndex = index
    this.unstableFrom = index + 1
  }

  /** Smallest index in [lo, hi] whose term is at least `term` (terms never decrease along the log); hi + 1 if none. */
  firstIndexWithTermAtLeast(term: number, lo: number, hi: number): number {
    let low = Math.max(lo, this.firstIndex())
    let high = hi + 1
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.entry(mid).term >= term) high = mid
      else low = mid + 1
    }
    return low
  }

  /** Largest index whose entry has exactly `term`, or -1 when the log holds no such entry. */
  lastIndexOfTerm(term: number): number {
    // Largest index with term <= `term`, by binary search over (snapshotIndex, lastIndex].
    let low = this.firstIndex()
    let high = this.lastIndex() + 1
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.entry(mid).term <= term) low = mid + 1
      else high = mid
    }
    const candidate = low - 1
    return this.term(candidate) === term ? candidate : -1
  }
}
