import type { Entry, HardState, PersistedState, Snapshot } from '../raft/types.ts'

/** The durable part of one `Ready`, in the order the Raft shell must persist it. */
export interface StorageUpdate {
  hardState?: HardState
  entries: Entry[]
  snapshot?: Snapshot
}

/**
 * Stable storage for one Raft node and its agent. Calls are synchronous on purpose: the shell persists a
 * Ready between `ready()` and sending its messages, and nothing may interleave with that.
 *
 * Every mutating call is atomic and durable (fsync'd) before it returns, with one exception: a `write` that
 * changes nothing but the commit index may reach the disk only with the next write or at `close` (Raft never
 * needs the commit index on disk: a restarted node may come back with an older one and relearns it); `load`
 * returns it at once either way. A call rejected with
 * `InvalidArgumentError` changed nothing. Any other failure (I/O, disk full) leaves the storage failed:
 * every later call throws `StorageFailedError`, and the process should restart from what is on disk.
 *
 * Besides the checks each method names, every write keeps these invariants, whose violation means a bug in
 * the caller and is refused: the term and the commit index never decrease; the vote never changes within a
 * term once cast; no entry or snapshot has a term above the stored term; the commit index never exceeds the
 * last index; log terms never decrease along the log.
 */
export interface RaftStorage {
  /** Everything on disk, for RaftNode's `init.state`: entries after the snapshot, contiguous. */
  load(): PersistedState
  /**
   * Persist one Ready's durable part in one transaction: the snapshot first (it replaces the stored one and
   * drops log entries up to its index, or all entries if the log has no entry with the snapshot's index and
   * term), then the entries (every stored entry with index >= `entries[0].index` is deleted, then the
   * entries are inserted), then the hard state.
   *
   * Refused: entries that are not contiguous, that leave a gap after the stored log, or that start at or
   * below the snapshot index; a snapshot older than the stored one, or at the same index with another term.
   */
  write(update: StorageUpdate): void
  /**
   * The application took a snapshot at `snapshot.meta.index`: store it and delete entries up to that index.
   * Refused: a snapshot older than the stored one, beyond the last log index, or whose term differs from
   * the stored entry at its index.
   */
  compact(snapshot: Snapshot): void
  /** Small durable metadata (peer key, cluster id, node name...), or undefined if never set. */
  getMeta(key: string): Uint8Array | undefined
  /** Store `value` under `key` durably, replacing any previous value. */
  setMeta(key: string, value: Uint8Array): void
  /** Release the storage (and its file lock). Idempotent; every other call afterwards throws `ClosedError`. */
  close(): void
}
