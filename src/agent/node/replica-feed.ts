import { InvalidArgumentError, NotFoundError, NotVoterError } from '../../errors.ts'
import type { Config, Entry, EntryType } from '../../raft/types.ts'
import type { Scheduler } from '../../time/index.ts'
import { AppliedLog } from './applied-log.ts'
import type { LeaderPort, RunnerPort } from './port.ts'
import type { Replica } from './replica.ts'

/** An applied entry as the feed carries it (JSON): the data in base64. */
export interface FeedEntry {
  index: number
  term: number
  type: EntryType
  data: string
}

/** The answer to `replica.entries`. */
export interface FeedAnswer {
  /** Contiguous from the asked index; empty when nothing new came within the wait. */
  entries: FeedEntry[]
  /** The asked index is older than what this replica keeps: fetch `replica.snapshot` first. */
  snapshot: boolean
  /** This replica's applied index. */
  applied: number
  /** The leader this replica knows ('' when none) and its term. */
  leader: string
  term: number
  /** The replicas (voters and standbys) in this replica's latest configuration. */
  config: Config
}

/** One piece of the state snapshot (`replica.snapshot`), taken at `index`. */
export interface FeedSnapshotChunk {
  index: number
  totalBytes: number
  offset: number
  chunk: string
}

/** Most entry bytes one answer carries (at least one entry whatever its size). */
const FEED_ANSWER_BYTES = 1024 * 1024
/** Snapshot bytes per chunk (base64 makes it a third larger, still well under the frame limit). */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024
/** A snapshot taken for members is served again to those who ask within this long. */
const SNAPSHOT_REUSE_MS = 1_000
/** How long a snapshot is kept for members fetching it in chunks. */
const SNAPSHOT_KEEP_MS = 30_000
/** Longest wait of one `replica.entries` long poll. */
export const MAX_FEED_WAIT_MS = 30_000

export interface ReplicaFeedInit {
  replica: Replica
  runner: RunnerPort
  leader: LeaderPort
  /** Resolves once this replica applied everything acknowledged before the call (`Client.barrier`). */
  barrier(signal?: AbortSignal): Promise<void>
  scheduler: Scheduler
}

/**
 * What a replica serves the members that hold no log (over the client protocol, `replica.*` operations):
 * the entries it applied, from any index a member asks (a member that loses its replica resumes on
 * another from its own applied index, so it sees every entry once, in order), a snapshot when the index is
 * older than what it keeps, and read points for linearizable reads (ReadIndex through this replica).
 */
export class ReplicaFeed {
  private readonly init: ReplicaFeedInit
  private readonly log = new AppliedLog()
  /** Each entry encoded once, however many members it is served to. */
  private readonly encoded = new WeakMap<Entry, FeedEntry>()
  private cached?: { index: number; bytes: Uint8Array; takenAt: number; cancel: () => void }

  constructor(init: ReplicaFeedInit) {
    this.init = init
    init.replica.onApplied(entry => this.log.push(entry))
    init.replica.onRestore(() => this.log.reset())
  }

  /** Entries from `fromIndex`, waiting up to `waitMs` for the first when there is none yet. */
  async entries(fromIndex: unknown, waitMs: unknown, closed?: AbortSignal): Promise<FeedAnswer> {
    const runner = this.runner()
    if (!Number.isSafeInteger(fromIndex) || (fromIndex as number) < 1) {
      throw new InvalidArgumentError('fromIndex must be a positive integer')
    }
    const wait = waitMs === undefined ? 0 : (waitMs as number)
    if (!Number.isSafeInteger(wait) || wait < 0 || wait > MAX_FEED_WAIT_MS) {
      throw new InvalidArgumentError(`waitMs must be an integer from 0 to ${MAX_FEED_WAIT_MS}`)
    }
    const from = fromIndex as number
    if (from > this.init.replica.state.appliedIndex && wait > 0 && closed?.aborted !== true) {
      await new Promise<void>(resolve => {
        const done = (): void => {
          cancelTimer()
          cancelWake()
          closed?.removeEventListener('abort', done)
          resolve()
        }
        const cancelWake = this.log.onNext(done)
        const cancelTimer = this.init.scheduler.after(wait, done, { keepAlive: true })
        closed?.addEventListener('abort', done, { once: true })
      })
    }
    const applied = this.init.replica.state.appliedIndex
    const kept = from > applied ? [] : this.log.from(from, FEED_ANSWER_BYTES)
    const status = runner.status()
    return {
      entries: (kept ?? []).map(entry => this.encode(entry)),
      snapshot: kept === undefined,
      applied,
      leader: this.init.leader.leader,
      term: status.term,
      config: { voters: [...status.config.voters], nonVoters: [...status.config.nonVoters] },
    }
  }

  /** A read point: the index this replica applied once the leader confirmed its lead (ReadIndex). */
  async readIndex(signal?: AbortSignal): Promise<{ index: number }> {
    this.runner()
    await this.init.barrier(signal)
    return { index: this.init.replica.state.appliedIndex }
  }

  /** The state at some index, in chunks: without `index` a new one (or one taken within the last second). */
  snapshot(index: unknown, offset: unknown): FeedSnapshotChunk {
    this.runner()
    const now = this.init.scheduler.now()
    let cached = this.cached
    if (index === undefined) {
      if (cached === undefined || now - cached.takenAt > SNAPSHOT_REUSE_MS) {
        cached?.cancel()
        const taken = {
          index: this.init.replica.state.appliedIndex,
          bytes: this.init.replica.snapshot(),
          takenAt: now,
          cancel: () => {},
        }
        taken.cancel = this.init.scheduler.after(SNAPSHOT_KEEP_MS, () => {
          if (this.cached === taken) this.cached = undefined
        })
        this.cached = taken
        cached = taken
      }
    } else if (cached === undefined || cached.index !== index) {
      throw new NotFoundError('that snapshot is no longer kept: ask for a new one')
    }
    const start = offset === undefined ? 0 : (offset as number)
    if (!Number.isSafeInteger(start) || start < 0 || start > cached.bytes.length) {
      throw new InvalidArgumentError(`offset must be an integer from 0 to ${cached.bytes.length}`)
    }
    const end = Math.min(start + SNAPSHOT_CHUNK_BYTES, cached.bytes.length)
    return {
      index: cached.index,
      totalBytes: cached.bytes.length,
      offset: start,
      chunk: Buffer.from(cached.bytes.subarray(start, end)).toString('base64'),
    }
  }

  private encode(entry: Entry): FeedEntry {
    let feedEntry = this.encoded.get(entry)
    if (feedEntry === undefined) {
      feedEntry = encodeEntry(entry)
      this.encoded.set(entry, feedEntry)
    }
    return feedEntry
  }

  private runner() {
    const runner = this.init.runner.current()
    if (runner === undefined) throw new NotVoterError('This agent holds no Raft log: ask a replica')
    return runner
  }
}

export function encodeEntry(entry: Entry): FeedEntry {
  return {
    index: entry.index,
    term: entry.term,
    type: entry.type,
    data: Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).toString('base64'),
  }
}

export function decodeEntry(entry: FeedEntry): Entry {
  return { index: entry.index, term: entry.term, type: entry.type, data: Buffer.from(entry.data, 'base64') }
}
