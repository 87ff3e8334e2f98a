import type { Logger } from '@libp2p/interface'
import { ClosedError } from '../../errors.ts'
import { decodeConfig } from '../../raft/config.ts'
import type { RaftCoreOptions } from '../../raft/core-options.ts'
import { MAX_TERM } from '../../raft/messages.ts'
import { RaftNode } from '../../raft/raft.ts'
import type {
  Config,
  ConfigChange,
  Entry,
  Message,
  NodeId,
  RaftStatus,
  Random,
  Ready,
  Snapshot,
  SoftState,
} from '../../raft/types.ts'
import type { ShellBugs } from '../../shell-bugs.ts'
import { StorageFailedError, StorageFormatError } from '../../storage/errors.ts'
import type { RaftStorage } from '../../storage/index.ts'
import type { Cancel, Scheduler } from '../../time/index.ts'
import { AppliedWaiters } from './applied-waiters.ts'

/** What the runner needs from the application it replicates. */
export interface ReplicatedApplication {
  /** Apply one committed normal entry, in log order; the return value goes to the entry's proposer. */
  apply(entry: Entry): unknown
  /** Replace the application's state with a snapshot's. */
  restore(snapshot: Snapshot): void
  /** The application's state at the last applied index. */
  snapshot(): Uint8Array
}

export interface RaftRunnerInit {
  id: NodeId
  storage: RaftStorage
  application: ReplicatedApplication
  /** Hand a message to the transport; must not block. */
  send(message: Message): void
  random: Random
  /** Ticks the core and defers Ready handling (a macrotask, `after(0)`). */
  scheduler: Scheduler
  /** Length of one Raft tick (monotonic ms). */
  tickMs: number
  /** Take a snapshot and compact the log after this many entries applied since the last one. */
  snapshotEntries: number
  /** Tuning; tests and simulators that build a runner may set the core's bug switches here. */
  raftOptions?: Partial<RaftCoreOptions>
  log: Logger
  /** Role or leader changed. */
  onSoftState?(state: SoftState, term: number): void
  /** A configuration entry was applied (committed). */
  onConfigApplied?(config: Config, index: number): void
  /**
   * The storage failed and the runner stopped for good (fail-stop): called once, after every pending
   * proposal was rejected with `error`. The owner should stop the agent; only a restart from what is really
   * on disk brings the node back.
   */
  onFailStop?(error: StorageFailedError): void
  /**
   * @internal Test-only switches (`src/shell-bugs.ts`): `no-fail-stop` lets a storage error escape and the
   * node run on. Stripped from the published declarations.
   */
  bugs?: ShellBugs
  /**
   * The application could not apply a committed entry (it threw, e.g. `UnsupportedVersionError` for an
   * entry from a newer version): the runner stopped for good, short of that entry, rather than skip it.
   */
  onHalt?(error: Error, index: number): void
  /**
   * Observers of the linearizable reads (the simulator's read-index check): a read point was asked for
   * (`readIndex`, under `context`), and the leader confirmed one (`index`).
   */
  observeReads?: ReadObserver
}

/** See `RaftRunnerInit.observeReads`. */
export interface ReadObserver {
  asked(context: string): void
  answered(context: string, index: number): void
}

interface PendingProposal {
  term: number
  resolve(result: unknown): void
  reject(err: Error): void
}

/**
 * The imperative shell around the pure Raft core: the scheduler's timers, durable storage, the transport and
 * the application. Each Ready is handled in the order the core requires: persist (one durable write), send,
 * then apply. Ready handling is deferred to a macrotask (`after(0)`, `setImmediate` in production) so that
 * every proposal and message that arrives in one turn of the event loop goes out in one batch: one fsync,
 * one append per follower.
 */
export class RaftRunner {
  readonly id: NodeId
  private readonly init: RaftRunnerInit
  private readonly node: RaftNode
  private readonly pendingProposals = new Map<number, PendingProposal>()
  private readonly pendingReadContexts = new Map<string, { resolve(index: number): void }>()
  /** Reads the leader confirmed, waiting for this node to apply up to their index. */
  private readonly reads = new AppliedWaiters()
  private stopTicker?: Cancel
  private scheduled = false
  private stopped = false
  /** The storage error that stopped the runner for good, if one did. */
  private failure?: StorageFailedError
  private applied: number
  private snapshotIndex: number
  private readSequence = 0
  /**
   * Tells this runner's read contexts from a previous incarnation's: the sequence starts again at a restart,
   * and a leader's answer to a read asked before it (a slow or repeated message) would otherwise resolve the
   * new read of the same number with a read point from before the restart (simulator, 3-agent seed 1752:
   * read point 296 for a read asked when 298 was committed).
   */
  private readonly readEpoch: string
  private softState: SoftState = { role: 'follower', leader: '' }

  constructor(init: RaftRunnerInit) {
    this.init = init
    this.id = init.id
    this.readEpoch = `${init.scheduler.wallNow().toString(36)}.${Math.floor(init.scheduler.now()).toString(36)}`
    const state = init.storage.load()
    if (state.hardState.term > MAX_TERM) {
      // Left by a forged or corrupted message under an older version: this node could never vote again.
      throw new StorageFormatError(
        `the stored Raft term ${state.hardState.term} is past the limit ${MAX_TERM}; stop every agent and ` +
          'run \'conclave repair-term\' on each data directory (README, "A poisoned Raft term")',
      )
    }
    const snapshot = state.snapshot
    if (snapshot !== undefined) init.application.restore(snapshot)
    this.applied = snapshot?.meta.index ?? 0
    this.snapshotIndex = this.applied
    this.node = new RaftNode({
      id: init.id,
      state,
      random: init.random,
      options: init.raftOptions,
      applied: this.applied,
    })
  }

  start(): void {
    // Kept alive as Node's setInterval was: a running Raft node keeps its process running.
    this.stopTicker = this.init.scheduler.every(
      this.init.tickMs,
      () => {
        this.node.tick()
        this.schedule()
      },
      { keepAlive: true },
    )
    this.schedule()
  }

  /** Stops the runner for good: pending calls fail with `reason` (`ClosedError` by default). */
  stop(reason: Error = new ClosedError()): void {
    this.halt(reason)
  }

  /** The storage error that stopped this runner, if one did (it then refuses every call with it). */
  get failed(): StorageFailedError | undefined {
    return this.failure
  }

  private halt(reason: Error): void {
    if (this.stopped) return
    this.stopped = true
    this.stopTicker?.()
    for (const pending of this.pendingProposals.values()) pending.reject(reason)
    this.pendingProposals.clear()
    this.pendingReadContexts.clear()
    this.reads.clear()
  }

  get role(): SoftState['role'] {
    return this.softState.role
  }

  get leader(): NodeId {
    return this.softState.leader
  }

  get appliedIndex(): number {
    return this.applied
  }

  status(): RaftStatus {
    return this.node.status()
  }

  step(message: Message): void {
    if (this.stopped) return
    this.node.step(message)
    this.schedule()
  }

  /**
   * Propose on this node, which must lead (the core throws `NotLeaderError` otherwise). Resolves with the
   * application's result once the entry is applied here; rejects if another entry took its index.
   * It never times out by itself: the caller bounds it with a deadline, as the outcome is then unknown.
   * `origin`: the follower that forwarded the proposal (it learns of the commit from its peers).
   */
  propose(data: Uint8Array, origin?: NodeId, waiter?: string): Promise<unknown> {
    return this.track(() => this.node.propose(data, origin, waiter))
  }

  /** Change membership by one server; resolves once the change is committed and applied. */
  proposeConfigChange(change: ConfigChange): Promise<unknown> {
    return this.track(() => this.node.proposeConfigChange(change))
  }

  /** Appends through `append` and waits for the entry to apply. Core errors reject; they never throw. */
  private track(append: () => { index: number; term: number }): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.failure ?? new ClosedError())
    let slot: { index: number; term: number }
    try {
      slot = append()
    } catch (err) {
      return Promise.reject(err)
    }
    this.schedule()
    // A proposal still waiting at this index is one of an earlier term whose entry left the log (this node
    // was deposed, its suffix replaced, and it leads again): it is answered now, not left to its deadline.
    this.pendingProposals.get(slot.index)?.reject(new ProposalSkippedError(slot.index, 'replaced'))
    return new Promise((resolve, reject) => {
      this.pendingProposals.set(slot.index, { term: slot.term, resolve, reject })
    })
  }

  transferLeadership(to: NodeId): void {
    if (this.stopped) return
    this.node.transferLeadership(to)
    this.schedule()
  }

  campaign(): void {
    if (this.stopped) return
    this.node.campaign()
    this.schedule()
  }

  /**
   * Resolves once a linearizable read may be served from this node's application state: the leader
   * confirmed its leadership after the read began, and this node has applied up to that point.
   * A request that meets no leader is dropped by the core, so callers retry; aborting `signal` forgets the
   * request (the promise then never settles).
   */
  readIndex(signal?: AbortSignal): Promise<void> {
    if (this.stopped) return Promise.reject(this.failure ?? new ClosedError())
    const context = `${this.id}:${this.readEpoch}:${++this.readSequence}`
    this.init.observeReads?.asked(context)
    this.node.readIndex(context)
    this.schedule()
    signal?.addEventListener('abort', () => this.pendingReadContexts.delete(context), { once: true })
    return new Promise(resolve => {
      this.pendingReadContexts.set(context, {
        resolve: index => {
          void this.reads.wait(index).then(resolve)
        },
      })
    })
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return
    this.scheduled = true
    this.init.scheduler.after(
      0,
      () => {
        this.scheduled = false
        this.drain()
      },
      { keepAlive: true },
    )
  }

  private drain(): void {
    while (!this.stopped && this.node.hasReady()) {
      this.handle(this.node.ready())
    }
  }

  private handle(ready: Ready): void {
    const { storage, application } = this.init
    const persist = ready.snapshot !== undefined || ready.entries.length > 0 || ready.hardState !== undefined
    // Only a follower's log loses entries (a new leader's replace its suffix, or a snapshot resets it).
    const mayTruncate = persist && (ready.softState ?? this.softState).role !== 'leader'
    // A leader's appends may leave before its own log write (Raft dissertation 10.2.1): the network transfer
    // and the followers' fsyncs then overlap the leader's. It is safe because the write below is synchronous:
    // no acknowledgement can be processed, and so nothing can count the leader's copy toward a quorum, until
    // the write is durable. Everything else (votes, append responses) depends on the write and waits for it.
    // A leader that commits tells its followers with entry-less appends. Nobody waits on those as much as on
    // the answers to the proposals this Ready applies, so they leave after those answers (next turn of the
    // event loop): socket writes less in front of every acknowledgement.
    const commitNotice = (message: Message): boolean =>
      message.type === 'append' && message.entries.length === 0 && ready.committed.length > 0
    let sentEarly = false
    if (persist && this.softState.role === 'leader') {
      for (const message of ready.messages) {
        if (message.type === 'append' && !commitNotice(message)) this.init.send(message)
      }
      sentEarly = true
    }
    const update = { hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot }
    if (persist && !this.durably(() => storage.write(update))) return
    let deferred: Message[] | undefined
    for (const message of ready.messages) {
      if (commitNotice(message)) {
        deferred ??= []
        deferred.push(message)
      } else if (!sentEarly || message.type !== 'append') {
        this.init.send(message)
      }
    }
    if (deferred !== undefined) {
      const later = deferred
      this.init.scheduler.after(
        0,
        () => {
          if (!this.stopped) for (const message of later) this.init.send(message)
        },
        { keepAlive: true },
      )
    }
    if (ready.snapshot !== undefined) {
      try {
        application.restore(ready.snapshot)
      } catch (err) {
        // A snapshot this node cannot read (one from a newer version): stop, as for an entry.
        const error = err instanceof Error ? err : new Error(String(err))
        this.init.log.error(
          'stopped at the snapshot of index %d: %s',
          ready.snapshot.meta.index,
          error.message,
        )
        this.stop(error)
        this.init.onHalt?.(error, ready.snapshot.meta.index)
        return
      }
      this.applied = ready.snapshot.meta.index
      this.snapshotIndex = this.applied
      this.skipProposals(this.applied)
    }
    for (const entry of ready.committed) {
      // Fail-stop: nothing after an entry this node cannot apply is applied, acknowledged or sent.
      if (!this.applyEntry(entry)) return
    }
    if (mayTruncate && this.pendingProposals.size > 0) this.rejectReplaced()
    for (const readState of ready.readStates) {
      const pending = this.pendingReadContexts.get(readState.context)
      if (pending === undefined) continue
      this.pendingReadContexts.delete(readState.context)
      this.init.observeReads?.answered(readState.context, readState.index)
      pending.resolve(readState.index)
    }
    this.node.advance(ready)
    if (ready.softState !== undefined) {
      this.softState = ready.softState
      this.init.onSoftState?.(ready.softState, this.node.status().term)
    }
    this.reads.advance(this.applied)
    this.maybeCompact()
  }

  /** False if the application could not apply the entry: the runner then stopped (see `onHalt`). */
  private applyEntry(entry: Entry): boolean {
    if (entry.index <= this.applied) return true
    let result: unknown
    if (entry.type === 'config') {
      this.init.onConfigApplied?.(decodeConfig(entry.data), entry.index)
    } else {
      try {
        result = this.init.application.apply(entry)
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err))
        this.init.log.error('stopped applying the log at entry %d: %s', entry.index, error.message)
        this.stop(error)
        this.init.onHalt?.(error, entry.index)
        return false
      }
    }
    this.applied = entry.index
    const pending = this.pendingProposals.get(entry.index)
    if (pending === undefined) return true
    this.pendingProposals.delete(entry.index)
    // Another leader's entry took this index: ours was lost and will never commit.
    if (pending.term === entry.term) pending.resolve(result)
    else pending.reject(new ProposalLostError(entry.index))
    return true
  }

  /**
   * Proposals a snapshot replaced the log under (this node led, fell behind, and caught up by snapshot):
   * whether each took effect is in the restored state, not here. Rejected at once, rather than left to the
   * caller's deadline; a write with a session retries and its session answers with the result if it did.
   */
  private skipProposals(index: number): void {
    for (const [slot, pending] of this.pendingProposals) {
      if (slot > index) continue
      this.pendingProposals.delete(slot)
      pending.reject(new ProposalSkippedError(slot))
    }
  }

  /**
   * Proposals whose entry is no longer in the log (this node led, was deposed, and another leader's entries
   * replaced its suffix): rejected at once, rather than when an entry of another term applies at their
   * index, or at the caller's deadline if none ever does. Not as lost: the entry may still be on other nodes
   * and commit under a later leader (figure 8 of the Raft paper), so the outcome is unknown, as for one a
   * snapshot covered: a write with a session retries and its session answers with the result if it did.
   */
  private rejectReplaced(): void {
    for (const [slot, pending] of this.pendingProposals) {
      if (this.node.termAt(slot) === pending.term) continue
      this.pendingProposals.delete(slot)
      pending.reject(new ProposalSkippedError(slot, 'replaced'))
    }
  }

  /**
   * Runs a storage write; false if it failed, and the runner has stopped for good. Fail-stop: after a failed
   * write what is on disk is unknown, and the core already counts the Ready's entries as written, so any
   * later acknowledgement (a vote, an append response, a commit counting this node) could stand on entries
   * that never reached the disk. Nothing is sent, acknowledged or applied after it.
   */
  private durably(write: () => void): boolean {
    if (this.init.bugs?.has('no-fail-stop')) {
      write() // the bug switch: the error escapes the timer callback and the node runs on
      return true
    }
    try {
      write()
      return true
    } catch (err) {
      this.failStop(err)
      return false
    }
  }

  private failStop(err: unknown): void {
    if (this.stopped) return
    const error =
      err instanceof StorageFailedError
        ? err
        : new StorageFailedError(
            `storage write failed: ${err instanceof Error ? err.message : String(err)}`,
            {
              cause: err,
            },
          )
    this.failure = error
    this.init.log.error('storage failed, the Raft node stops for good (restart it from disk): %e', error)
    this.halt(error)
    this.init.onFailStop?.(error)
  }

  private maybeCompact(): void {
    if (this.applied - this.snapshotIndex < this.init.snapshotEntries) return
    const snapshot = this.node.compact(this.applied, this.init.application.snapshot())
    if (snapshot === undefined) return
    if (!this.durably(() => this.init.storage.compact(snapshot))) return
    this.snapshotIndex = snapshot.meta.index
    this.init.log(
      'compacted log at index %d (%d bytes of state)',
      snapshot.meta.index,
      snapshot.data.byteLength,
    )
  }
}

/**
 * The proposal's log slot left this node's log before it applied here: a snapshot was installed over it
 * (`covered`), or another leader's entries replaced it (`replaced`). It may or may not have taken effect (the
 * restored state knows, or a later leader may still commit it; a session's retry gets its result).
 */
export class ProposalSkippedError extends Error {
  override name = 'ProposalSkippedError'
  constructor(index: number, how: 'covered' | 'replaced' = 'covered') {
    super(
      how === 'covered'
        ? `proposal at index ${index} was covered by an installed snapshot before it applied here`
        : `proposal at index ${index} was replaced in this node's log by another leader's entries before it applied here; it may or may not take effect`,
    )
  }
}

/** The proposal's log slot was taken by another leader's entry: it did not and will not take effect. */
export class ProposalLostError extends Error {
  override name = 'ProposalLostError'
  constructor(index: number) {
    super(`proposal at index ${index} was superseded by another leader's entry`)
  }
}
