import { ClosedError } from '../errors.ts'
import type { Entry, HardState, PersistedState, Snapshot, SnapshotMeta } from '../raft/types.ts'
import { StorageLockedError } from './errors.ts'
import { checkMetaKey, checkMetaValue } from './meta-key.ts'
import type { RaftStorage, StorageUpdate } from './raft-storage.ts'
import { planCompact, planWrite, type StoredLogView, type WritePlan } from './write-plan.ts'

/**
 * What a `MemoryRaftStorage` keeps, standing in for a disk: open a new `MemoryRaftStorage` on the same
 * `MemoryDisk` after closing the old one to model a restart. One storage at a time may use it.
 */
export class MemoryDisk {
  hardState: HardState = { term: 0, vote: '', commit: 0 }
  snapshot: Snapshot | undefined
  /** Entries after the snapshot index, contiguous. */
  entries: Entry[] = []
  readonly meta = new Map<string, Uint8Array>()
  inUse = false
}

/**
 * `RaftStorage` in memory, with the same semantics and validation as `SqliteRaftStorage`, for tests and
 * agents without a data directory. Data is copied in and out, so callers may reuse their buffers.
 */
export class MemoryRaftStorage implements RaftStorage {
  readonly #disk: MemoryDisk
  #closed = false

  constructor(disk: MemoryDisk = new MemoryDisk()) {
    if (disk.inUse) throw new StorageLockedError('MemoryDisk is already open in another MemoryRaftStorage')
    disk.inUse = true
    this.#disk = disk
  }

  load(): PersistedState {
    const disk = this.#open()
    return {
      hardState: { ...disk.hardState },
      snapshot: disk.snapshot === undefined ? undefined : copySnapshot(disk.snapshot),
      entries: disk.entries.map(copyEntry),
    }
  }

  write(update: StorageUpdate): void {
    const plan = planWrite(this.#view(), update)
    this.#apply(plan)
  }

  compact(snapshot: Snapshot): void {
    const plan = planCompact(this.#view(), snapshot)
    this.#apply(plan)
  }

  getMeta(key: string): Uint8Array | undefined {
    const disk = this.#open()
    checkMetaKey(key)
    return disk.meta.get(key)?.slice()
  }

  setMeta(key: string, value: Uint8Array): void {
    const disk = this.#open()
    checkMetaKey(key)
    checkMetaValue(value)
    disk.meta.set(key, value.slice())
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#disk.inUse = false
  }

  #open(): MemoryDisk {
    if (this.#closed) throw new ClosedError('RaftStorage is closed')
    return this.#disk
  }

  #view(): StoredLogView {
    const disk = this.#open()
    const snapshotMeta: SnapshotMeta | undefined = disk.snapshot?.meta
    const baseIndex = snapshotMeta?.index ?? 0
    const last = disk.entries.at(-1)
    return {
      hardState: disk.hardState,
      snapshotMeta,
      lastIndex: last?.index ?? baseIndex,
      lastTerm: last?.term ?? snapshotMeta?.term ?? 0,
      termBetween: index => disk.entries[index - baseIndex - 1].term,
    }
  }

  /** Nothing below can throw: the plan was validated, so the write is all or nothing. */
  #apply(plan: WritePlan): void {
    const disk = this.#disk
    if (plan.snapshot !== undefined) {
      const baseIndex = disk.snapshot?.meta.index ?? 0
      const dropThrough = plan.snapshot.meta.index
      disk.entries = plan.keepEntriesAfterSnapshot ? disk.entries.slice(dropThrough - baseIndex) : []
      disk.snapshot = copySnapshot(plan.snapshot)
    }
    if (plan.entries.length > 0) {
      const baseIndex = disk.snapshot?.meta.index ?? 0
      if (plan.truncateFrom !== undefined) disk.entries.length = plan.truncateFrom - baseIndex - 1
      for (const entry of plan.entries) disk.entries.push(copyEntry(entry))
    }
    if (plan.hardState !== undefined) {
      const { term, vote, commit } = plan.hardState
      disk.hardState = { term, vote, commit }
    }
  }
}

function copyEntry(entry: Entry): Entry {
  return { term: entry.term, index: entry.index, type: entry.type, data: entry.data.slice() }
}

function copySnapshot(snapshot: Snapshot): Snapshot {
  const { index, term, config } = snapshot.meta
  return {
    meta: { index, term, config: { voters: [...config.voters], nonVoters: [...config.nonVoters] } },
    data: snapshot.data.slice(),
  }
}
