/**
 * A simulated agent's stable storage: the real `RaftStorage` interface (src/storage) over an in-memory
 * image of the disk that outlives the agent's crashes, with the faults real disks have:
 *
 * - a write that fails (I/O error, disk full): it throws `StorageFailedError` and the storage is failed from
 *   then on, every call throws, as `RaftStorage` says; what reached the disk is the write's torn prefix (the
 *   snapshot, some of the entries, never the hard state without all of them) or nothing;
 * - a crash in the middle of a write (`armCrash`): the process dies inside `write`, leaving a torn prefix;
 * - a lost fsync at a crash: a write that changes nothing but the commit index may reach the disk only with
 *   the next write (the one laxity `RaftStorage` allows), so a crash loses it;
 * - a slow disk: a write blocks the agent's event loop for the disk's latency (`onSlowWrite`).
 *
 * `durable` is what survives a crash; the invariants read it (commit durability) and the log as written.
 */

import type { PersistedState, Snapshot } from '../../src/raft/types.ts'
import { StorageFailedError } from '../../src/storage/errors.ts'
import type { RaftStorage, StorageUpdate } from '../../src/storage/index.ts'
import { StoredLog } from './disk.ts'

/** Thrown out of `write` when the process dies in the middle of it (never caught by the agent's code). */
export class SimCrash extends Error {
  override name = 'SimCrash'
}

export interface StorageHooks {
  /** Entries are about to be stored right after an entry (or snapshot) of `prevTerm`. */
  onWrite?(prevTerm: number, update: StorageUpdate): void
  onCompact?(snapshot: Snapshot): void
  /** Called after each successful write: the latency of this write (ms of blocked event loop), or 0. */
  writeLatency?(): number
  /** The write blocked the agent for `ms`. */
  onSlowWrite?(ms: number): void
}

export class SimStorage implements RaftStorage {
  /** What is on the platters: survives crashes. */
  durable: StoredLog
  /** A commit-only hard state not synced yet (lost at a crash). */
  private lazyCommit: number | undefined
  private failed = false
  private closed = false
  /** The next write fails (`'fail'`) or the process dies in it (`'crash'`); `torn` entries of it land. */
  private armed: { kind: 'fail' | 'crash'; torn: number } | undefined
  /** `--bug forget-vote`: a crash loses the vote, as if it had never been synced. */
  forgetVoteOnCrash = false
  private readonly meta = new Map<string, Uint8Array>()
  hooks: StorageHooks = {}
  /** The agent's name, for error messages. */
  name = ''
  readonly stats = { writes: 0, failedWrites: 0, tornWrites: 0, lostCommits: 0, compactions: 0 }

  constructor(initial: PersistedState) {
    this.durable = new StoredLog(initial)
  }

  /** The log as the agent last wrote it (the lazy commit included). */
  get written(): StoredLog {
    return this.durable
  }

  get isFailed(): boolean {
    return this.failed
  }

  /** The next write fails, with `torn` of its entries on disk; or the process dies in it. */
  arm(kind: 'fail' | 'crash', torn: number): void {
    this.armed = { kind, torn }
  }

  /** No armed fault any more (the faults stopped). */
  disarm(): void {
    this.armed = undefined
  }

  /** The process is gone: a commit not yet synced is lost; the next incarnation reopens the storage. */
  crash(): void {
    if (this.lazyCommit !== undefined) this.stats.lostCommits++
    this.lazyCommit = undefined
    if (this.forgetVoteOnCrash) this.durable.hardState.vote = ''
    this.armed = undefined
    this.failed = false
    this.closed = false
  }

  load(): PersistedState {
    this.check()
    const state = this.durable.toPersistedState()
    if (this.lazyCommit !== undefined) state.hardState.commit = this.lazyCommit
    return state
  }

  write(update: StorageUpdate): void {
    this.check()
    this.stats.writes++
    // The term before the entries, as the log will hold it (a snapshot in the same write may supply it).
    const first = update.entries[0]?.index ?? 0
    const prevTerm =
      first === 0
        ? 0
        : update.snapshot !== undefined && update.snapshot.meta.index === first - 1
          ? update.snapshot.meta.term
          : (this.durable.termAt(first - 1) ?? 0)
    const armed = this.armed
    if (armed !== undefined) {
      this.armed = undefined
      this.tear(update, armed.torn)
      if (armed.kind === 'crash') throw new SimCrash('the process died in the middle of a write')
      this.failed = true
      this.stats.failedWrites++
      throw new StorageFailedError('simulated I/O error')
    }
    if (update.entries.length > 0) this.hooks.onWrite?.(prevTerm, update)
    const commitOnly =
      update.snapshot === undefined &&
      update.entries.length === 0 &&
      update.hardState !== undefined &&
      update.hardState.term === this.durable.hardState.term &&
      update.hardState.vote === this.durable.hardState.vote
    if (commitOnly) {
      // Not synced: it reaches the disk with the next write.
      this.lazyCommit = update.hardState!.commit
      return
    }
    // A commit index not synced yet goes to disk with this write.
    if (this.lazyCommit !== undefined) this.durable.hardState.commit = this.lazyCommit
    this.lazyCommit = undefined
    try {
      this.durable.apply({ snapshot: update.snapshot, entries: update.entries, hardState: update.hardState })
    } catch (error) {
      throw new Error(
        `${this.name}: ${(error as Error).message} (stored ${this.durable.snapshotIndex}..${this.durable.lastIndex}, commit ${this.durable.hardState.commit})`,
      )
    }
    const latency = this.hooks.writeLatency?.() ?? 0
    if (latency > 0) this.hooks.onSlowWrite?.(latency)
  }

  /**
   * A failed write or a crash in it left a prefix of `update` on disk, as a log-structured store whose last
   * record was cut short would: some of its entries, never its hard state (the transaction did not commit).
   * Only entries of a term the disk already holds can land: a torn record never gets ahead of the stored term.
   */
  private tear(update: StorageUpdate, entries: number): void {
    const term = this.durable.hardState.term
    let landed = 0
    while (landed < Math.min(entries, update.entries.length) && update.entries[landed].term <= term) landed++
    if (landed === 0 || update.snapshot !== undefined) return
    this.stats.tornWrites++
    this.durable.apply({ entries: update.entries.slice(0, landed) })
  }

  compact(snapshot: Snapshot): void {
    this.check()
    this.stats.compactions++
    this.durable.apply({ entries: [], compaction: snapshot })
    this.hooks.onCompact?.(snapshot)
  }

  getMeta(key: string): Uint8Array | undefined {
    this.check()
    return this.meta.get(key)
  }

  setMeta(key: string, value: Uint8Array): void {
    this.check()
    this.meta.set(key, value.slice())
  }

  close(): void {
    this.closed = true
  }

  /** The commit index the agent wrote, synced or not. */
  get commit(): number {
    return this.lazyCommit ?? this.durable.hardState.commit
  }

  private check(): void {
    if (this.closed) throw new StorageFailedError('storage closed')
    if (this.failed) throw new StorageFailedError('storage failed earlier')
  }
}
