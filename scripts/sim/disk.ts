/**
 * A node's simulated stable storage. Writes queue up as pending batches and become durable in order, each
 * when the shell says its (random) write latency has passed; a crash loses every batch not yet durable.
 * Two images are kept: `durable` (what survives a crash) and `written` (durable plus pending: the log as the
 * node has issued it, which the invariants check).
 */

import type { Entry, HardState, PersistedState, Snapshot } from '../../src/raft/types.ts'
import { copyEntry } from './network.ts'

/** One atomic write: a Ready's snapshot, entries and hard state, or the node's own compaction. */
export interface DiskWrite {
  /** A snapshot received from the leader: it replaces the log (keeping a suffix that matches it). */
  snapshot?: Snapshot
  /** Entries to store, replacing any stored suffix from `entries[0].index`. */
  entries: Entry[]
  hardState?: HardState
  /** The node's own snapshot: entries up to its index are discarded. */
  compaction?: Snapshot
}

/** A copyable image of stable storage. */
export class StoredLog {
  hardState: HardState
  snapshot: Snapshot | undefined
  /** Contiguous entries after the snapshot (or from index 1). */
  entries: Entry[]

  constructor(state: PersistedState) {
    this.hardState = { ...state.hardState }
    this.snapshot = state.snapshot && copySnapshot(state.snapshot)
    this.entries = state.entries.map(copyEntry)
  }

  /** Index of the snapshot, 0 without one. */
  get snapshotIndex(): number {
    return this.snapshot?.meta.index ?? 0
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length
  }

  entryAt(index: number): Entry | undefined {
    return this.entries[index - this.snapshotIndex - 1]
  }

  /** Term at `index`: from the log, or the snapshot at its index; undefined where neither reaches. */
  termAt(index: number): number | undefined {
    const snapshotIndex = this.snapshotIndex
    if (index === snapshotIndex) return this.snapshot?.meta.term ?? 0
    return this.entryAt(index)?.term
  }

  /** Applies a write; throws on a write that does not fit the log (a gap, or rewriting the snapshot). */
  apply(write: DiskWrite): void {
    if (write.snapshot) this.installSnapshot(write.snapshot)
    if (write.entries.length > 0) this.storeEntries(write.entries)
    if (write.hardState) this.hardState = { ...write.hardState }
    if (write.compaction) this.compact(write.compaction)
  }

  toPersistedState(): PersistedState {
    return {
      hardState: { ...this.hardState },
      snapshot: this.snapshot && copySnapshot(this.snapshot),
      entries: this.entries.map(copyEntry),
    }
  }

  copy(): StoredLog {
    return new StoredLog(this.toPersistedState())
  }

  private installSnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta
    if (index < this.snapshotIndex) {
      throw new Error(`storage: snapshot at ${index} is older than the stored one at ${this.snapshotIndex}`)
    }
    const keep =
      this.termAt(index) === term && index <= this.lastIndex
        ? this.entries.slice(index - this.snapshotIndex)
        : []
    this.snapshot = copySnapshot(snapshot)
    this.entries = keep
  }

  private storeEntries(entries: Entry[]): void {
    const first = entries[0].index
    const snapshotIndex = this.snapshotIndex
    if (first <= snapshotIndex) {
      throw new Error(`storage: entries from ${first} would rewrite the snapshot at ${snapshotIndex}`)
    }
    if (first > this.lastIndex + 1) {
      throw new Error(`storage: entries from ${first} leave a gap after the last index ${this.lastIndex}`)
    }
    for (let i = 1; i < entries.length; i++) {
      if (entries[i].index !== first + i)
        throw new Error(`storage: entries not contiguous at ${entries[i].index}`)
    }
    this.entries.length = first - snapshotIndex - 1
    for (const entry of entries) this.entries.push(copyEntry(entry))
  }

  private compact(snapshot: Snapshot): void {
    const index = snapshot.meta.index
    const snapshotIndex = this.snapshotIndex
    if (index <= snapshotIndex) return
    if (index > this.lastIndex)
      throw new Error(`storage: compaction at ${index} beyond the last index ${this.lastIndex}`)
    this.entries = this.entries.slice(index - snapshotIndex)
    this.snapshot = copySnapshot(snapshot)
  }
}

export function copySnapshot(snapshot: Snapshot): Snapshot {
  const { meta } = snapshot
  return {
    meta: {
      index: meta.index,
      term: meta.term,
      config: { voters: [...meta.config.voters], nonVoters: [...meta.config.nonVoters] },
    },
    data: snapshot.data.slice(),
  }
}

export class SimDisk {
  durable: StoredLog
  written: StoredLog
  /** Test-only fault (`--bug forget-vote`): a crash loses the vote, as if it had never been synced. */
  forgetVoteOnCrash = false
  private pending: { id: number; write: DiskWrite }[] = []
  private nextId = 1

  constructor(initial: PersistedState) {
    this.durable = new StoredLog(initial)
    this.written = this.durable.copy()
  }

  get pendingWrites(): number {
    return this.pending.length
  }

  /** Queues a write; returns its id for `flush`. */
  submit(write: DiskWrite): number {
    this.written.apply(write)
    const id = this.nextId++
    this.pending.push({ id, write })
    return id
  }

  /** Makes every pending write up to and including `id` durable (writes complete in order). */
  flush(id: number): void {
    while (this.pending.length > 0 && this.pending[0].id <= id) {
      this.durable.apply(this.pending.shift()!.write)
    }
  }

  /**
   * Loses everything not yet durable, except the first `completed` pending writes: their sync finished just
   * before the crash, so they survive although the process died before acting on them (sending the Ready's
   * messages, applying its entries).
   */
  crash(completed = 0): void {
    while (completed-- > 0 && this.pending.length > 0) this.durable.apply(this.pending.shift()!.write)
    this.pending = []
    if (this.forgetVoteOnCrash) this.durable.hardState.vote = ''
    this.written = this.durable.copy()
  }

  /** What the node finds at restart. */
  load(): PersistedState {
    return this.durable.toPersistedState()
  }
}
