import type { HardState, PersistedState, Snapshot } from '../raft/types.ts'
import type { RaftStorage, StorageUpdate } from './raft-storage.ts'

/**
 * What one storage call did. `append`: a write with entries, a snapshot or a new term/vote (fsync'd before it
 * returns); `commit`: a write that moved only the commit index (which may reach the disk later, see
 * `RaftStorage`); `compact`: a snapshot taken by the application; `meta`: `setMeta`.
 */
export type StorageOperation = 'append' | 'commit' | 'compact' | 'meta'

/** One timed storage call, or a snapshot stored. */
export type StorageObservation =
  | { kind: 'call'; op: StorageOperation; seconds: number; failed: boolean }
  | { kind: 'snapshot'; source: 'taken' | 'installed'; bytes: number; index: number }

export type StorageObserver = (observation: StorageObservation) => void

/**
 * A `RaftStorage` that times every mutating call (each is one transaction, fsync'd: its duration is the
 * write-and-fsync latency the Raft loop waits on) and reports stored snapshots, to whoever subscribes with
 * `observe`. The composition root wraps the agent's storage with it once; metrics subscribe later, so the
 * storage can be opened before the metrics registry exists. Costs two clock reads per call, on the clock it
 * is given (monotonic ms): storage holds no clock of its own (test/time/no-clock.test.ts).
 */
export class TimedStorage implements RaftStorage {
  readonly inner: RaftStorage
  private readonly observers = new Set<StorageObserver>()
  /** The last hard state stored, to tell a commit-index-only write from one that is fsync'd. */
  private hardState?: HardState
  private readonly now: () => number

  constructor(inner: RaftStorage, now: () => number) {
    this.inner = inner
    this.now = now
  }

  /** Calls `observer` for every call from now on; returns the unsubscribe function. */
  observe(observer: StorageObserver): () => void {
    this.observers.add(observer)
    return () => {
      this.observers.delete(observer)
    }
  }

  load(): PersistedState {
    const state = this.inner.load()
    this.hardState = { ...state.hardState }
    return state
  }

  write(update: StorageUpdate): void {
    const op = this.commitOnly(update) ? 'commit' : 'append'
    this.timed(op, () => this.inner.write(update))
    if (update.hardState !== undefined) this.hardState = { ...update.hardState }
    if (update.snapshot !== undefined) this.snapshotStored('installed', update.snapshot)
  }

  compact(snapshot: Snapshot): void {
    this.timed('compact', () => this.inner.compact(snapshot))
    this.snapshotStored('taken', snapshot)
  }

  getMeta(key: string): Uint8Array | undefined {
    return this.inner.getMeta(key)
  }

  setMeta(key: string, value: Uint8Array): void {
    this.timed('meta', () => this.inner.setMeta(key, value))
  }

  close(): void {
    this.inner.close()
  }

  private commitOnly(update: StorageUpdate): boolean {
    // Anything malformed counts as an append: the inner storage refuses it.
    if (!Array.isArray(update?.entries) || update.entries.length > 0 || update.snapshot !== undefined)
      return false
    const next = update.hardState
    const last = this.hardState
    if (next === undefined) return true
    return last !== undefined && next.term === last.term && next.vote === last.vote
  }

  private timed(op: StorageOperation, call: () => void): void {
    if (this.observers.size === 0) {
      call()
      return
    }
    const started = this.now()
    let failed = true
    try {
      call()
      failed = false
    } finally {
      this.emit({ kind: 'call', op, seconds: (this.now() - started) / 1000, failed })
    }
  }

  private snapshotStored(source: 'taken' | 'installed', snapshot: Snapshot): void {
    this.emit({ kind: 'snapshot', source, bytes: snapshot.data.byteLength, index: snapshot.meta.index })
  }

  private emit(observation: StorageObservation): void {
    for (const observer of this.observers) {
      // An observer's failure must not fail a write that succeeded.
      try {
        observer(observation)
      } catch {}
    }
  }
}

/** `storage` wrapped in a `TimedStorage` timed on `now` (an already timed one is returned as is). */
export function timedStorage(storage: RaftStorage, now: () => number): TimedStorage {
  return storage instanceof TimedStorage ? storage : new TimedStorage(storage, now)
}
