/**
 * The Raft node: a deterministic state machine driven by `tick`, `step` and the proposal calls, whose effects
 * come out of `ready()` as data. Modelled on etcd-io/raft: pre-vote, check-quorum with leader leases,
 * flow-controlled pipelined replication, leadership transfer, single-server membership changes, chunked
 * snapshots and ReadIndex.
 */

import {
  applyConfigChange,
  ConfigHistory,
  copyConfig,
  decodeConfig,
  emptyConfig,
  encodeConfig,
} from './config.ts'
import type { RaftCoreOptions, RaftInit } from './core-options.ts'
import {
  ConfigChangeError,
  InvalidRequestError,
  NotLeaderError,
  ProposalDroppedError,
  UNCOMMITTED_BYTES_FULL,
} from './errors.ts'
import { RaftLog } from './log.ts'
import { isWellFormed, MAX_TERM, MAX_TERM_ADVANCE } from './messages.ts'
import { PeerProgress } from './progress.ts'
import { majorityIndex, quorumSize, tallyVotes } from './quorum.ts'
import { ReadOnlyQueue, type ReadRound } from './read-only.ts'
import type {
  AppendRequest,
  AppendResponse,
  Config,
  ConfigChange,
  Entry,
  HardState,
  HeartbeatRequest,
  HeartbeatResponse,
  Message,
  NodeId,
  RaftCore,
  RaftOptions,
  RaftStatus,
  Random,
  ReadContext,
  ReadIndexResponse,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMeta,
  SnapshotRequest,
  SnapshotResponse,
  SoftState,
  VoteRequest,
  VoteResponse,
} from './types.ts'
import { UncommittedBudget } from './uncommitted-budget.ts'

/** The defaults of every option. */
export const DEFAULT_RAFT_OPTIONS: Readonly<RaftCoreOptions> = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxMessageBytes: 1024 * 1024,
  maxInflightMessages: 256,
  maxInflightBytes: 16 * 1024 * 1024,
  snapshotChunkBytes: 256 * 1024,
  maxInflightSnapshotChunks: 16,
  maxUncommittedBytes: 64 * 1024 * 1024,
  bugs: {},
})

type CampaignKind = 'preVote' | 'vote' | 'transfer'

/** A snapshot being received chunk by chunk, from one leader in one term. */
interface IncomingSnapshot {
  meta: SnapshotMeta
  from: NodeId
  term: number
  chunks: Uint8Array[]
  received: number
  /** Chunks that overtook one still on its way (the leader pipelines them), by offset, until the gap fills. */
  ahead: Map<number, SnapshotRequest>
}

const EMPTY = new Uint8Array(0)

function sameConfig(a: Config, b: Config): boolean {
  return (
    a.voters.length === b.voters.length &&
    a.nonVoters.length === b.nonVoters.length &&
    a.voters.every((id, i) => b.voters[i] === id) &&
    a.nonVoters.every((id, i) => b.nonVoters[i] === id)
  )
}

function concatChunks(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]
  const data = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    data.set(chunk, offset)
    offset += chunk.length
  }
  return data
}

/** Throws `InvalidRequestError` for an option value the core cannot run with. */
export function validateOptions(options: RaftOptions): void {
  const positive: (keyof RaftOptions)[] = [
    'electionTicks',
    'heartbeatTicks',
    'maxMessageBytes',
    'maxInflightMessages',
    'maxInflightBytes',
    'snapshotChunkBytes',
    'maxInflightSnapshotChunks',
    'maxUncommittedBytes',
  ]
  for (const key of positive) {
    const value = options[key]
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new InvalidRequestError(`Raft option ${key} must be a positive integer`)
    }
  }
  if (options.heartbeatTicks >= options.electionTicks) {
    throw new InvalidRequestError('Raft option heartbeatTicks must be below electionTicks')
  }
}

/**
 * One Raft peer. Not thread-safe and not re-entrant: the shell calls it from one loop.
 *
 * Entries and snapshots handed in or out are treated as immutable; the node keeps references to them.
 */
export class RaftNode implements RaftCore {
  readonly id: NodeId
  private readonly options: RaftCoreOptions
  private readonly random: Random
  private readonly log: RaftLog
  private readonly configs: ConfigHistory
  private config: Config
  private voters: readonly NodeId[]

  private term: number
  private vote: NodeId
  private commit: number
  private role: Role = 'follower'
  private leader: NodeId = ''

  private electionElapsed = 0
  private heartbeatElapsed = 0
  private randomizedElectionTimeout = 0
  private readonly votes = new Map<NodeId, boolean>()
  /**
   * The highest term of a leader this node has followed since it started (see `mayFollowLowerTerm`): a
   * leader of a lower term is not followed after it. Not durable: after a restart the last log term bounds it.
   */
  private followedTerm = 0
  /**
   * Elections this node started in a row (as a candidate, not pre-candidate) without becoming leader or
   * hearing a leader it follows: past the first, no transfer's campaign is live, and a leader of a lower term
   * that reaches it may be followed (see `mayFollowLowerTerm`). Not durable.
   */
  private campaignsInARow = 0

  // Leader state.
  private readonly progress = new Map<NodeId, PeerProgress>()
  private transferee: NodeId = ''
  private transferElapsed = 0
  private pendingConfigIndex = 0
  /** Flow control on this leader's uncommitted bytes, fair to a large proposal refused for them. */
  private readonly uncommitted: UncommittedBudget
  private readonly readOnly = new ReadOnlyQueue()
  /** Uncommitted entries forwarded by a follower, by index: who to name in `notify` when sending them. */
  private readonly origins = new Map<number, NodeId>()
  /** Highest index a follower may have committed from notified acknowledgements: reads must wait for it. */
  private notifiedUpTo = 0
  /** Per follower, the highest index this leadership sent it (an upper bound on what it may hold of ours). */
  private readonly sentUpTo = new Map<NodeId, number>()

  // Follower state for commits learned from peers (`notify`): how far our log is known to be the current
  // leader's, and how far each peer said (after making it durable) its log is.
  private matched = 0
  private readonly peerMatch = new Map<NodeId, number>()

  // Snapshots: the latest one this node has (to send), one being received, one to hand to the shell.
  private snapshot: Snapshot | undefined
  private incoming: IncomingSnapshot | undefined
  private snapshotOut: Snapshot | undefined

  // Output, drained by ready().
  private outbox: Message[] = []
  private readStates: ReadState[] = []
  private applied: number
  private committedOut: number
  private lastSoft: SoftState
  private lastHard: HardState

  constructor(init: RaftInit) {
    this.id = init.id
    this.options = { ...DEFAULT_RAFT_OPTIONS, ...init.options, bugs: { ...init.options?.bugs } }
    validateOptions(this.options)
    // A refused proposal keeps its place in line while its proposer retries (every few milliseconds); one
    // not retried for an election timeout is given up.
    this.uncommitted = new UncommittedBudget(this.options.maxUncommittedBytes, this.options.electionTicks)
    this.random = init.random
    const { hardState, snapshot, entries } = init.state
    const snapshotIndex = snapshot?.meta.index ?? 0
    this.log = new RaftLog(snapshotIndex, snapshot?.meta.term ?? 0, entries)
    this.configs = new ConfigHistory(
      snapshotIndex,
      snapshot ? copyConfig(snapshot.meta.config) : emptyConfig(),
    )
    for (const entry of entries) this.recordConfigEntry(entry)
    this.config = this.configs.current()
    this.voters = this.config.voters
    this.snapshot = snapshot
    this.term = hardState.term
    this.vote = hardState.vote
    // The application starts from the snapshot (the shell restores it) or from what it says it has applied.
    this.applied = Math.min(Math.max(init.applied ?? snapshotIndex, snapshotIndex), this.log.lastIndex())
    this.commit = Math.min(Math.max(hardState.commit, this.applied), this.log.lastIndex())
    this.committedOut = this.applied
    this.lastHard = { term: this.term, vote: this.vote, commit: hardState.commit }
    this.lastSoft = { role: this.role, leader: this.leader }
    this.resetElectionTimeout()
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    if (this.role === 'leader') this.tickLeader()
    else this.tickElection()
  }

  step(message: Message): void {
    if (message.to !== this.id || message.from === this.id || !isWellFormed(message)) return
    if (message.term > this.term) {
      if (!this.mayRaiseTerm(message)) {
        if (this.isNonVoterReply(message)) this.stepLeader(message)
        return
      }
      if (message.type === 'vote' || message.type === 'preVote') {
        // Leader lease: a follower that heard from a live leader within the election timeout ignores
        // candidates, unless the leader itself asked for the election (transfer).
        const inLease =
          this.options.checkQuorum && this.leader !== '' && this.electionElapsed < this.options.electionTicks
        if (inLease && !message.transfer) return
      }
      if (message.type === 'preVote') {
        // A pre-vote never changes our term.
      } else if (message.type === 'preVoteResponse' && message.granted) {
        // Granted pre-votes carry the term we would campaign in.
      } else if (message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot') {
        this.becomeFollower(message.term, message.from)
      } else {
        this.becomeFollower(message.term, '')
      }
    } else if (message.term < this.term) {
      if (this.mayFollowLowerTerm(message)) {
        this.stepLowerTermLeader(message)
        return
      }
      if (
        (this.options.checkQuorum || this.options.preVote) &&
        (message.type === 'append' || message.type === 'heartbeat')
      ) {
        // A stale leader (e.g. back from a partition) learns our term from this and steps down.
        this.send({
          type: 'appendResponse',
          from: this.id,
          to: message.from,
          term: this.term,
          success: false,
          index: 0,
          hintIndex: 0,
          hintTerm: 0,
        })
      } else if (message.type === 'preVote') {
        this.sendVoteResponse(message, false)
      }
      return
    }

    switch (message.type) {
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(message)
        return
      case 'voteResponse':
      case 'preVoteResponse':
        this.handleVoteResponse(message)
        return
    }
    if (this.role === 'leader') this.stepLeader(message)
    else this.stepFollower(message)
  }

  propose(data: Uint8Array, origin?: NodeId, waiter?: string): { index: number; term: number } {
    this.checkCanPropose()
    if (!this.uncommitted.admit(data.length, waiter)) throw new ProposalDroppedError(UNCOMMITTED_BYTES_FULL)
    const slot = this.appendEntry('normal', data)
    if (origin !== undefined && origin !== this.id && origin !== '') this.origins.set(slot.index, origin)
    return slot
  }

  proposeConfigChange(change: ConfigChange): { index: number; term: number } {
    this.checkCanPropose()
    if (this.pendingConfigIndex > this.commit) {
      throw new ConfigChangeError(
        `A configuration change at index ${this.pendingConfigIndex} is not committed yet`,
      )
    }
    const next = applyConfigChange(this.config, change)
    const result = this.appendEntry('config', encodeConfig(next))
    this.pendingConfigIndex = result.index
    this.configs.add(result.index, next)
    this.onConfigChanged()
    return result
  }

  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader)
    if (to === this.id) return
    if (!this.voters.includes(to)) throw new InvalidRequestError(`${to} is not a voter`)
    if (this.transferee === to) return
    this.transferee = to
    this.transferElapsed = 0
    const progress = this.progress.get(to)
    if (progress && progress.match === this.log.lastIndex()) this.sendTimeoutNow(to)
  }

  readIndex(context: ReadContext): void {
    if (this.role === 'leader') {
      this.handleReadRequest(this.id, context)
    } else if (this.leader !== '') {
      this.send({ type: 'readIndex', from: this.id, to: this.leader, term: this.term, context })
    }
    // No known leader: dropped; the shell times out and retries.
  }

  campaign(): void {
    if (this.role === 'leader') return
    this.startCampaign(this.options.preVote ? 'preVote' : 'vote')
  }

  /**
   * Records the application's snapshot at `index` and discards the log up to it. Returns the snapshot (its
   * meta is what the shell stores alongside the data), or undefined when the log is already compacted that far.
   * The shell persists the snapshot itself; it never comes back in a Ready.
   */
  compact(index: number, data: Uint8Array): Snapshot | undefined {
    if (index > this.applied) {
      throw new InvalidRequestError(`Cannot compact to ${index}: only ${this.applied} is applied`)
    }
    if (index <= this.log.snapshotIndex) return undefined
    const meta: SnapshotMeta = {
      index,
      term: this.log.term(index) as number,
      config: copyConfig(this.configs.at(index)),
    }
    const snapshot = { meta, data }
    this.snapshot = snapshot
    this.log.compact(index)
    this.configs.compact(index)
    return snapshot
  }

  // ---------------------------------------------------------------- output

  hasReady(): boolean {
    if (this.outbox.length > 0 || this.readStates.length > 0 || this.snapshotOut !== undefined) return true
    if (this.log.hasUnstable() || this.commit > this.committedOut) return true
    if (this.role !== this.lastSoft.role || this.leader !== this.lastSoft.leader) return true
    if (
      this.term !== this.lastHard.term ||
      this.vote !== this.lastHard.vote ||
      this.commit !== this.lastHard.commit
    ) {
      return true
    }
    return this.role === 'leader' && this.leaderHasWork()
  }

  ready(): Ready {
    if (this.role === 'leader') this.flushLeader()
    const entries = this.log.takeUnstable()
    if (this.role === 'leader' && entries.length > 0 && this.origins.size > 0) this.notifyOrigins(entries)
    const ready: Ready = {
      entries,
      messages: this.outbox,
      committed: [],
      readStates: this.readStates,
    }
    if (this.role !== this.lastSoft.role || this.leader !== this.lastSoft.leader) {
      this.lastSoft = { role: this.role, leader: this.leader }
      ready.softState = { ...this.lastSoft }
    }
    if (
      this.term !== this.lastHard.term ||
      this.vote !== this.lastHard.vote ||
      this.commit !== this.lastHard.commit
    ) {
      this.lastHard = { term: this.term, vote: this.vote, commit: this.commit }
      ready.hardState = { ...this.lastHard }
    }
    if (this.snapshotOut) {
      ready.snapshot = this.snapshotOut
      this.snapshotOut = undefined
    }
    // Everything in the log is persisted by the time the shell applies this Ready, so all of it up to the
    // commit index may be applied.
    if (this.commit > this.committedOut) {
      ready.committed = this.log.slice(this.committedOut + 1, this.commit + 1)
      this.committedOut = this.commit
    }
    this.outbox = []
    this.readStates = []
    return ready
  }

  advance(ready: Ready): void {
    if (ready.snapshot && ready.snapshot.meta.index > this.applied) this.applied = ready.snapshot.meta.index
    const entries = ready.entries
    if (entries.length > 0) {
      const last = entries[entries.length - 1]
      this.log.stableTo(last.index, last.term)
    }
    const committed = ready.committed
    if (committed.length > 0) {
      const last = committed[committed.length - 1].index
      if (last > this.applied) this.applied = last
    }
    if (this.role === 'leader') {
      const self = this.progress.get(this.id)
      if (self?.maybeUpdate(this.log.stableIndex)) this.maybeCommit()
    } else if (this.peerMatch.size > 0 && entries.length > 0) {
      // Our copy became durable: it may complete a majority the peers' acknowledgements started.
      this.maybeCommitFromPeers()
    }
  }

  termAt(index: number): number | undefined {
    return this.log.term(index)
  }

  status(): RaftStatus {
    const status: RaftStatus = {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.commit,
      applied: this.applied,
      lastIndex: this.log.lastIndex(),
      config: copyConfig(this.config),
    }
    if (this.role === 'leader') {
      status.progress = {}
      for (const [id, progress] of this.progress) status.progress[id] = progress.view()
      if (this.transferee !== '') status.transferee = this.transferee
    }
    return status
  }

  // ---------------------------------------------------------------- roles

  private resetElectionTimeout(): void {
    const electionTicks = this.options.electionTicks
    const draw = Math.min(Math.max(this.random(), 0), 0.9999999999)
    this.randomizedElectionTimeout = electionTicks + Math.floor(draw * electionTicks)
  }

  /** State common to every role change. */
  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term
      this.vote = ''
    }
    this.leader = ''
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.resetElectionTimeout()
    this.votes.clear()
    this.progress.clear()
    this.transferee = ''
    this.transferElapsed = 0
    this.uncommitted.reset()
    this.readOnly.reset()
    this.origins.clear()
    this.notifiedUpTo = 0
    this.sentUpTo.clear()
    this.matched = 0
    this.peerMatch.clear()
  }

  private becomeFollower(term: number, leader: NodeId): void {
    this.reset(term)
    this.campaignsInARow = 0
    this.role = 'follower'
    this.leader = leader
  }

  private becomePreCandidate(): void {
    // Keeps term and vote: a pre-candidate has not started an election yet.
    this.votes.clear()
    this.progress.clear()
    this.readOnly.reset()
    this.role = 'preCandidate'
    this.leader = ''
    this.electionElapsed = 0
    this.resetElectionTimeout()
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1)
    this.campaignsInARow++
    this.vote = this.id
    this.role = 'candidate'
  }

  private becomeLeader(): void {
    this.reset(this.term)
    this.campaignsInARow = 0
    this.role = 'leader'
    this.leader = this.id
    const next = this.log.lastIndex() + 1
    for (const id of [...this.config.voters, ...this.config.nonVoters, this.id]) {
      if (!this.progress.has(id)) this.progress.set(id, this.newProgress(next))
    }
    const self = this.progress.get(this.id) as PeerProgress
    self.match = this.log.stableIndex
    self.recentActive = true
    self.becomeReplicate()
    self.next = next
    // The no-op of a new term lets the leader commit (and learn the commit index) in its own term.
    const noop = this.appendEntry('normal', EMPTY)
    // No membership change before every entry of earlier terms is known committed.
    this.pendingConfigIndex = noop.index
  }

  private newProgress(next: number): PeerProgress {
    return new PeerProgress(next, this.options.maxInflightMessages, this.options.maxInflightBytes)
  }

  /**
   * Whether this node may campaign: it is a voter of its latest configuration, or one whose removal is not
   * committed yet. The latter matters when a leader appended its own removal and lost leadership before it
   * committed: its log may be the only up-to-date one, so the others cannot win its vote, and it must be able
   * to lead again until the removal commits (dissertation §4.2.2). It asks and counts only the voters of its
   * latest configuration, which overlaps every majority of the previous one.
   */
  private promotable(): boolean {
    return this.voters.includes(this.id) || this.configs.at(this.commit).voters.includes(this.id)
  }

  /**
   * Whether `message`, whose term is above ours, may move us to its term. Two rules keep a term far from the
   * edge of what the codecs encode and out of the hands of members that do not take part in elections:
   * - no message moves the term more than {@link MAX_TERM_ADVANCE} at once, nor past {@link MAX_TERM}: no
   *   election history comes near either, so such a term is forged or corrupted and the message is dropped;
   * - a higher term is learned only from a voter (of the latest configuration, or of the committed one, as
   *   `promotable` allows) or from what only a leader sends (append, heartbeat, snapshot, which a follower
   *   must accept from a leader its stale configuration does not list yet). A non-voter or a stranger that
   *   answers with a higher term (a forged response, or a corrupted term) is ignored: a stale leader
   *   learns of a newer term from the voters, or steps down by check-quorum.
   */
  private mayRaiseTerm(message: Message): boolean {
    if (message.term > MAX_TERM || message.term - this.term > MAX_TERM_ADVANCE) return false
    if (message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot') return true
    return this.voters.includes(message.from) || this.configs.at(this.commit).voters.includes(message.from)
  }

  /**
   * Whether a leader takes `message`, a non-voter's answer (or ReadIndex request) carrying a term above its
   * own, as progress without moving its term. Such a term comes from a member that campaigned while it was
   * removed and did not know it (possible without pre-vote), and was added back as a non-voter: it follows
   * this leader at its own higher term (`mayFollowLowerTerm`), and its answers tell how far it has caught
   * up. They change nothing but that member's own progress (a non-voter counts in no commit, read or
   * check-quorum), so a forged one gains nothing a well-formed one of the leader's term would not; the term
   * itself is ignored (`mayRaiseTerm`), and one beyond the per-message bound is dropped as malformed.
   */
  private isNonVoterReply(message: Message): boolean {
    if (this.role !== 'leader' || message.term > MAX_TERM || message.term - this.term > MAX_TERM_ADVANCE)
      return false
    if (!this.config.nonVoters.includes(message.from) || this.voters.includes(message.from)) return false
    return (
      message.type === 'appendResponse' ||
      message.type === 'heartbeatResponse' ||
      message.type === 'snapshotResponse' ||
      message.type === 'readIndex'
    )
  }

  /**
   * Whether this node follows `message`, from a leader of a term below its own, while keeping its term and
   * vote. A node that raised its term alone (it campaigned without pre-vote while removed, and was added back
   * as a non-voter) would otherwise never catch up: it rejects the leader's appends, and the leader may not
   * learn a term from a non-voter (`mayRaiseTerm`). Following is safe because every answer still carries our
   * own term: a leader for which we are a voter steps down on it (as before), one for which we are a
   * non-voter counts us in no quorum, so our copy never helps a leader of a lower term commit; and term and
   * vote stay, so we never vote twice in a term. Only while nothing in our log is newer than that leader's
   * term (entries of a newer term may have counted toward a newer leader's commit, and must not be
   * overwritten), and never a leader of a term below one we followed.
   */
  private mayFollowLowerTerm(message: Message): boolean {
    if (this.role === 'leader') return false
    if (message.type === 'readIndexResponse') {
      return this.leader === message.from && this.followedTerm === message.term
    }
    if (message.type !== 'append' && message.type !== 'heartbeat' && message.type !== 'snapshot') return false
    if (message.term < this.followedTerm || this.log.lastTerm() > message.term) return false
    // Start following only when there is a reason: we already follow it, we take part in no election, it
    // has committed entries we lack (then no campaign of ours can win: a majority holds them), or our
    // campaigns keep failing (a second one in a row: 3-agent seed 107, a member added back as a non-voter
    // whose log held an uncommitted tail as long as the leader's commit campaigned for good). A candidate
    // in its first campaign (a transfer's, while the old leader's last heartbeats arrive) keeps to it.
    if (this.leader === message.from && this.followedTerm === message.term) return true
    if (!this.promotable()) return true
    if (this.role === 'candidate' && this.campaignsInARow >= 2) return true
    const committed = message.type === 'snapshot' ? message.meta.index : message.leaderCommit
    return committed > this.log.lastIndex()
  }

  /** Follows a leader of a lower term (see `mayFollowLowerTerm`); our own term and vote stay. */
  private stepLowerTermLeader(message: Message): void {
    if (message.type === 'readIndexResponse') {
      this.readStates.push({ context: message.context, index: message.index })
      return
    }
    if (this.role !== 'follower') this.becomeFollower(this.term, message.from)
    if (this.leader !== message.from || this.followedTerm !== message.term) {
      // Another leader (or term): what we learned about the previous one's peers no longer holds.
      this.matched = 0
      this.peerMatch.clear()
    }
    this.electionElapsed = 0
    this.leader = message.from
    this.followedTerm = message.term
    if (message.type === 'append') this.handleAppend(message)
    else if (message.type === 'heartbeat') this.handleHeartbeat(message)
    else if (message.type === 'snapshot') this.handleSnapshotChunk(message)
  }

  private startCampaign(kind: CampaignKind): void {
    if (!this.promotable()) return
    // A term at the limit cannot grow: the node stays a follower (README: "A poisoned Raft term").
    if (this.term >= MAX_TERM) return
    let voteTerm: number
    let type: 'vote' | 'preVote'
    if (kind === 'preVote') {
      this.becomePreCandidate()
      voteTerm = this.term + 1
      type = 'preVote'
    } else {
      this.becomeCandidate()
      voteTerm = this.term
      type = 'vote'
    }
    this.votes.set(this.id, true)
    if (tallyVotes(this.voters, this.votes) === 'won') {
      // A single voter wins on its own vote.
      if (kind === 'preVote') this.startCampaign('vote')
      else this.becomeLeader()
      return
    }
    const lastLogIndex = this.log.lastIndex()
    const lastLogTerm = this.log.lastTerm()
    for (const id of this.voters) {
      if (id === this.id) continue
      this.send({
        type,
        from: this.id,
        to: id,
        term: voteTerm,
        lastLogIndex,
        lastLogTerm,
        transfer: kind === 'transfer',
      })
    }
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsed++
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.startCampaign(this.options.preVote ? 'preVote' : 'vote')
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++
    this.uncommitted.tick()
    this.electionElapsed++
    if (this.transferee !== '' && ++this.transferElapsed >= this.options.electionTicks) {
      this.transferee = ''
      this.transferElapsed = 0
    }
    if (this.electionElapsed >= this.options.electionTicks) {
      this.electionElapsed = 0
      if (this.options.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, '')
          return
        }
        for (const [id, progress] of this.progress) if (id !== this.id) progress.recentActive = false
      }
    }
    for (const progress of this.progress.values()) {
      if (progress.state === 'snapshot') progress.ticksSinceChunk++
    }
    if (this.heartbeatElapsed >= this.options.heartbeatTicks) {
      this.heartbeatElapsed = 0
      this.broadcastHeartbeat('')
      this.pruneProgress()
    }
  }

  private quorumActive(): boolean {
    let active = 0
    for (const id of this.voters) {
      if (id === this.id || this.progress.get(id)?.recentActive) active++
    }
    return active >= Math.floor(this.voters.length / 2) + 1
  }

  // ---------------------------------------------------------------- votes

  private handleVoteRequest(message: VoteRequest): void {
    const canVote =
      this.vote === message.from ||
      (this.vote === '' && this.leader === '') ||
      (message.type === 'preVote' && message.term > this.term)
    const upToDate =
      this.options.bugs.voteIgnoresLog || this.log.isUpToDate(message.lastLogIndex, message.lastLogTerm)
    // Non-voters answer too: a node may have been promoted without having the entry yet (etcd does the same);
    // a candidate only counts the votes of its own configuration's voters.
    if (canVote && upToDate) {
      this.sendVoteResponse(message, true)
      if (message.type === 'vote') {
        this.electionElapsed = 0
        this.vote = message.from
      }
    } else {
      this.sendVoteResponse(message, false)
    }
  }

  private sendVoteResponse(request: VoteRequest, granted: boolean): void {
    this.send({
      type: request.type === 'vote' ? 'voteResponse' : 'preVoteResponse',
      from: this.id,
      to: request.from,
      // A granted vote carries the request's term, so a pre-candidate (whose own term is lower) counts it.
      term: granted ? request.term : this.term,
      granted,
    })
  }

  private handleVoteResponse(message: VoteResponse): void {
    const expected =
      this.role === 'preCandidate' ? 'preVoteResponse' : this.role === 'candidate' ? 'voteResponse' : ''
    if (message.type !== expected || !this.voters.includes(message.from)) return
    this.votes.set(message.from, message.granted)
    const result = tallyVotes(this.voters, this.votes)
    if (result === 'won') {
      if (this.role === 'preCandidate') this.startCampaign('vote')
      else this.becomeLeader()
    } else if (result === 'lost') {
      this.becomeFollower(this.term, '')
    }
  }

  // ---------------------------------------------------------------- followers

  private stepFollower(message: Message): void {
    switch (message.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // Same term (higher terms made us follower above): a candidate learns it lost.
        if (this.role !== 'follower') this.becomeFollower(message.term, message.from)
        this.electionElapsed = 0
        this.leader = message.from
        this.followedTerm = this.term
        if (message.type === 'append') this.handleAppend(message)
        else if (message.type === 'heartbeat') this.handleHeartbeat(message)
        else this.handleSnapshotChunk(message)
        return
      case 'timeoutNow':
        if (this.role === 'follower' && this.promotable()) this.startCampaign('transfer')
        return
      case 'readIndexResponse':
        if (this.role === 'follower') this.readStates.push({ context: message.context, index: message.index })
        return
      case 'appendResponse':
        this.handlePeerAcknowledgement(message)
        return
      default:
        // Responses meant for a leader, and ReadIndex requests sent to a node that is not one: ignored.
        return
    }
  }

  private handleAppend(message: AppendRequest): void {
    let { prevLogIndex, prevLogTerm, entries } = message
    if (prevLogIndex < this.commit) {
      // Our log up to the commit index is the leader's; keep only what lies beyond it.
      let skip = 0
      while (skip < entries.length && entries[skip].index <= this.commit) skip++
      if (skip === entries.length) {
        this.sendAppendResponse(message.from, true, this.commit, 0, 0)
        return
      }
      entries = entries.slice(skip)
      prevLogIndex = this.commit
      prevLogTerm = this.log.term(this.commit) as number
    }
    if (this.log.term(prevLogIndex) !== prevLogTerm) {
      this.rejectAppend(message.from, prevLogIndex, message.prevLogIndex)
      return
    }
    const conflict = this.log.findConflict(entries)
    if (conflict >= 0) {
      const first = entries[conflict].index
      if (first <= this.commit) return // would rewrite committed entries: a corrupt leader; ignore
      if (first <= this.log.lastIndex()) {
        this.log.truncateFrom(first)
        if (this.configs.truncateFrom(first)) this.onConfigChanged()
      }
      this.log.appendFrom(entries, conflict)
      let configChanged = false
      for (let i = conflict; i < entries.length; i++) {
        if (this.recordConfigEntry(entries[i])) configChanged = true
      }
      if (configChanged) this.onConfigChanged()
    }
    const lastNew = prevLogIndex + entries.length
    const newCommit = Math.min(message.leaderCommit, lastNew)
    if (newCommit > this.commit) this.commit = newCommit
    if (lastNew > this.matched) this.matched = lastNew
    if (message.commitOnly === true && entries.length === 0) return
    this.sendAppendResponse(message.from, true, lastNew, 0, 0)
    // Copies only to the leader's peers at its own term: following a lower-term leader, ours would be dropped.
    if (entries.length > 0 && message.notify !== undefined && message.term === this.term) {
      // Copies of the answer, sent (like it) only once these entries are durable here.
      for (const peer of message.notify) {
        // Members only: a leader cannot make us send to anyone else.
        if (peer === this.id || peer === message.from || !this.isMember(peer)) continue
        this.sendAppendResponse(peer, true, lastNew, 0, 0)
      }
    }
    if (this.peerMatch.size > 0) this.maybeCommitFromPeers()
  }

  private isMember(id: NodeId): boolean {
    return this.voters.includes(id) || this.config.nonVoters.includes(id)
  }

  /**
   * The leader's own acknowledgement, to the followers that forwarded some of `entries`: sent with this
   * Ready's other messages, after the shell made them durable. With it a forwarding follower of a 3-voter
   * cluster knows of the commit once its own copy is durable too: one hop, instead of its answer to the leader
   * and the leader's notice back.
   */
  private notifyOrigins(entries: readonly Entry[]): void {
    const notify = this.notifyFor(entries, this.id)
    if (notify === undefined) return
    const index = entries[entries.length - 1].index
    if (index > this.notifiedUpTo) this.notifiedUpTo = index
    for (const origin of notify) this.sendAppendResponse(origin, true, index, 0, 0)
  }

  /**
   * A peer's copy of its answer to the current leader (see `notify`), or the leader's own: how far its
   * durable log matches the leader's.
   */
  private handlePeerAcknowledgement(message: AppendResponse): void {
    if (this.role !== 'follower' || !message.success || this.leader === '') return
    if (!this.voters.includes(message.from)) return
    if (message.index <= (this.peerMatch.get(message.from) ?? 0)) return
    this.peerMatch.set(message.from, message.index)
    this.maybeCommitFromPeers()
  }

  /**
   * Commits what a majority of voters holds in the current term, counted from our own log and the
   * acknowledgements of our peers and the leader. Sound for the same reason a leader's
   * commit is: an entry of the current term on a majority is in every future leader's log. Only a log the
   * leader has fully matched counts (a stale suffix of an earlier term must not), only as far as it is
   * durable, and peers are counted only up to it, since their acknowledgement covers their log, which equals
   * the leader's up to there.
   */
  private maybeCommitFromPeers(): void {
    const anyTerm = this.options.bugs.peerCommitAnyTerm === true
    const last = this.log.lastIndex()
    if (!anyTerm && this.matched !== last) return
    // Our own copy counts once durable, as the leader's does: a commit is then on a majority of disks.
    const ours = anyTerm ? last : Math.min(this.matched, this.log.stableIndex)
    if (ours <= this.commit) return
    let index = majorityIndex(this.voters, id =>
      id === this.id ? ours : Math.min(this.peerMatch.get(id) ?? 0, ours),
    )
    // Never past what some copy acknowledged: the leader counts those in its read points (`notifiedUpTo`),
    // not our own log. Without this cap a follower that is a majority by itself (the one voter left after
    // the leader removed itself) commits entries the leader has not counted, and a read through the leader
    // gets a read point below them (the simulator's read-index check, seed 5 with shrink-to-one).
    if (!anyTerm) index = Math.min(index, Math.max(0, ...this.peerMatch.values()))
    if (index <= this.commit || (!anyTerm && this.log.term(index) !== this.term)) return
    this.commit = index
  }

  /** Rejects an append whose `prevLogIndex` does not match, with a hint to skip a whole term at a time. */
  private rejectAppend(to: NodeId, prevLogIndex: number, rejected: number): void {
    const lastIndex = this.log.lastIndex()
    if (prevLogIndex > lastIndex) {
      this.sendAppendResponse(to, false, rejected, lastIndex, 0)
      return
    }
    const conflictTerm = this.log.term(prevLogIndex) as number
    const first = this.log.firstIndexWithTermAtLeast(conflictTerm, this.commit + 1, prevLogIndex)
    this.sendAppendResponse(to, false, rejected, first, conflictTerm)
  }

  private sendAppendResponse(
    to: NodeId,
    success: boolean,
    index: number,
    hintIndex: number,
    hintTerm: number,
  ): void {
    this.send({
      type: 'appendResponse',
      from: this.id,
      to,
      term: this.term,
      success,
      index,
      hintIndex,
      hintTerm,
    })
  }

  private handleHeartbeat(message: HeartbeatRequest): void {
    // The leader sends at most what it knows we match, so this never commits a divergent entry.
    const commit = Math.min(message.leaderCommit, this.log.lastIndex())
    if (commit > this.commit) this.commit = commit
    this.send({
      type: 'heartbeatResponse',
      from: this.id,
      to: message.from,
      term: this.term,
      context: message.context,
    })
  }

  private handleSnapshotChunk(message: SnapshotRequest): void {
    const { meta } = message
    const respond = (offset: number, done: boolean) =>
      this.send({
        type: 'snapshotResponse',
        from: this.id,
        to: message.from,
        term: this.term,
        index: meta.index,
        offset,
        done,
      })
    if (meta.index <= this.commit) {
      // We already have everything it covers.
      this.incoming = undefined
      respond(message.offset + message.data.length, true)
      return
    }
    let incoming = this.incoming
    const sameSource =
      incoming !== undefined &&
      incoming.meta.index === meta.index &&
      incoming.meta.term === meta.term &&
      incoming.from === message.from &&
      incoming.term === message.term
    if (!sameSource) {
      // A later chunk of another snapshot from this leader: the one we assemble stays until a first chunk
      // replaces it. From a leader we have nothing of, any chunk starts an assembly (the first chunk may
      // still be on its way: the leader sends several at once).
      if (message.offset !== 0 && incoming?.from === message.from && incoming.term === message.term) {
        respond(-1, false)
        return
      }
      incoming = { meta, from: message.from, term: message.term, chunks: [], received: 0, ahead: new Map() }
      this.incoming = incoming
    }
    const assembly = incoming as IncomingSnapshot
    if (message.offset > assembly.received) {
      // It overtook an earlier chunk: kept (up to a window's worth) so that the leader need not send it again.
      if (assembly.ahead.has(message.offset) || assembly.ahead.size < this.options.maxInflightSnapshotChunks)
        assembly.ahead.set(message.offset, message)
    }
    let next = message.offset === assembly.received ? message : assembly.ahead.get(assembly.received)
    while (next !== undefined) {
      assembly.ahead.delete(next.offset)
      assembly.chunks.push(next.data)
      assembly.received += next.data.length
      if (next.done) {
        this.incoming = undefined
        this.installSnapshot({ meta: assembly.meta, data: concatChunks(assembly.chunks, assembly.received) })
        respond(assembly.received, true)
        return
      }
      next = assembly.ahead.get(assembly.received)
    }
    // The bytes received in order: the leader slides its window past them (or, if this repeats while it has
    // chunks out, finds the gap by its timer and sends from here again). None yet: -1 asks a leader that
    // thinks we have some (we restarted) to start over.
    respond(assembly.received > 0 ? assembly.received : -1, false)
  }

  private installSnapshot(snapshot: Snapshot): void {
    const { index, term, config } = snapshot.meta
    const keepSuffix = this.log.term(index) === term
    this.log.restore(index, term, keepSuffix)
    this.configs.restore(index, copyConfig(config), keepSuffix)
    this.commit = index
    if (this.committedOut < index) this.committedOut = index
    this.snapshot = snapshot
    this.snapshotOut = snapshot
    this.onConfigChanged()
  }

  // ---------------------------------------------------------------- leader

  private checkCanPropose(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader)
    if (this.transferee !== '') throw new ProposalDroppedError('Leadership transfer in progress')
    if (!this.voters.includes(this.id) && !this.config.nonVoters.includes(this.id)) {
      throw new ProposalDroppedError('This leader has been removed from the configuration')
    }
  }

  private appendEntry(type: Entry['type'], data: Uint8Array): { index: number; term: number } {
    const index = this.log.lastIndex() + 1
    this.log.append({ term: this.term, index, type, data })
    return { index, term: this.term }
  }

  private stepLeader(message: Message): void {
    if (message.type === 'readIndex') {
      this.handleReadRequest(message.from, message.context)
      return
    }
    const progress = this.progress.get(message.from)
    if (!progress) return
    switch (message.type) {
      case 'appendResponse':
        progress.recentActive = true
        this.handleAppendResponse(message, progress)
        return
      case 'heartbeatResponse':
        progress.recentActive = true
        this.handleHeartbeatResponse(message, progress)
        return
      case 'snapshotResponse':
        progress.recentActive = true
        this.handleSnapshotResponse(message, progress)
        return
      default:
        return
    }
  }

  private handleAppendResponse(message: AppendResponse, progress: PeerProgress): void {
    if (!message.success) {
      if (progress.state === 'snapshot') return
      const rejected = message.index
      if (progress.state === 'replicate' ? rejected <= progress.match : rejected !== progress.next - 1) return
      let next: number
      if (message.hintTerm === 0) {
        next = message.hintIndex + 1
      } else {
        const ourLast = this.log.lastIndexOfTerm(message.hintTerm)
        next = ourLast >= 0 ? ourLast + 1 : message.hintIndex
      }
      progress.becomeProbe(Math.min(next, rejected, this.log.lastIndex() + 1))
      return
    }
    const index = message.index
    if (index > this.log.lastIndex()) return // acknowledges entries we never had: not a response to us
    const updated = progress.maybeUpdate(index)
    if (!updated && !(progress.match === index && progress.state === 'probe')) return
    if (progress.state === 'probe') progress.becomeReplicate()
    else if (progress.state === 'snapshot' && progress.match + 1 >= this.log.firstIndex())
      progress.becomeReplicate()
    else if (progress.state === 'replicate') progress.inflights.freeLE(index)
    if (updated) this.maybeCommit()
    if (message.from === this.transferee && progress.match === this.log.lastIndex())
      this.sendTimeoutNow(message.from)
  }

  private handleHeartbeatResponse(message: HeartbeatResponse, progress: PeerProgress): void {
    progress.paused = false
    if (progress.state === 'snapshot' && progress.snapshotInFlight()) {
      // No chunk acknowledged for two heartbeat intervals while the follower answers heartbeats: one was lost
      // (the follower keeps those after a gap): send again from the first it has not acknowledged.
      if (progress.ticksSinceChunk >= 2 * this.options.heartbeatTicks) progress.resendSnapshot()
    }
    if (message.context !== '' && this.voters.includes(message.from)) {
      this.readOnly.ack(message.from, message.context)
      this.releaseReads()
    }
  }

  private handleSnapshotResponse(message: SnapshotResponse, progress: PeerProgress): void {
    if (message.done) {
      if (message.index > this.log.lastIndex()) return
      const updated = progress.maybeUpdate(message.index)
      if (progress.state === 'snapshot') {
        // The follower's log now matches ours at the snapshot index: replicate from there.
        progress.becomeReplicate()
      } else if (progress.state === 'replicate') {
        progress.inflights.freeLE(message.index)
      }
      if (updated) this.maybeCommit()
      if (message.from === this.transferee && progress.match === this.log.lastIndex())
        this.sendTimeoutNow(message.from)
      return
    }
    // Not done: only answers about the snapshot being sent now matter.
    if (progress.state !== 'snapshot' || message.index !== progress.snapshotIndex) return
    if (message.offset < 0) {
      // The follower has no assembly from us (it restarted): start over. Once started over, the answers to
      // chunks sent before that are ignored (the timer resends if the new first chunk was lost too).
      if (progress.snapshotOffset > 0 || !progress.snapshotInFlight()) {
        progress.snapshotOffset = 0
        progress.resendSnapshot()
      }
      return
    }
    if (message.offset > progress.snapshotOffset) {
      progress.snapshotOffset = message.offset
      if (progress.snapshotSent < message.offset) progress.snapshotSent = message.offset
      progress.ticksSinceChunk = 0
    }
  }

  private maybeCommit(): void {
    const index = majorityIndex(this.voters, id => this.progress.get(id)?.match ?? 0)
    if (index <= this.commit) return
    // Figure 8: only an entry of the current term is committed by counting replicas.
    if (!this.options.bugs.commitPreviousTerm && this.log.term(index) !== this.term) return
    const previous = this.commit
    this.commit = index
    this.uncommitted.release(this.log.bytesBetween(previous, index))
    if (this.origins.size > 0) {
      // Map order is index order: committed entries leave from the front.
      for (const entryIndex of this.origins.keys()) {
        if (entryIndex > index) break
        this.origins.delete(entryIndex)
      }
    }
    this.releaseReads()
    // Members this commit removed are dropped at the next heartbeat, not now: first they hear (in this Ready's
    // appends and that heartbeat) that their removal is committed, which is what stops them campaigning.
    if (!this.voters.includes(this.id) && this.commit >= this.configs.currentIndex()) this.stepDownRemoved()
  }

  /**
   * Stops tracking members removed by a committed configuration. Until the removal commits, and for one more
   * heartbeat, the leader keeps replicating to them, so they usually learn that their removal is committed
   * (and stop campaigning: see `promotable`).
   */
  private pruneProgress(): void {
    if (this.commit < this.configs.currentIndex() || this.progress.size === 0) return
    if (this.progress.size === this.config.voters.length + this.config.nonVoters.length) return
    for (const id of [...this.progress.keys()]) {
      if (id !== this.id && !this.config.voters.includes(id) && !this.config.nonVoters.includes(id)) {
        this.progress.delete(id)
      }
    }
  }

  /** This leader's removal is committed: hand off to an up-to-date voter if one exists, and step down. */
  private stepDownRemoved(): void {
    const lastIndex = this.log.lastIndex()
    const successor = this.voters.find(id => this.progress.get(id)?.match === lastIndex)
    if (successor !== undefined) this.sendTimeoutNow(successor)
    this.becomeFollower(this.term, '')
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term })
  }

  private broadcastHeartbeat(context: ReadContext): void {
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue
      this.send({
        type: 'heartbeat',
        from: this.id,
        to: id,
        term: this.term,
        leaderCommit: Math.min(progress.match, this.commit),
        context,
      })
    }
  }

  // ---------------------------------------------------------------- ReadIndex

  private handleReadRequest(from: NodeId, context: ReadContext): void {
    if (this.options.bugs.staleRead) {
      this.answerRead(from, context, this.commit)
      return
    }
    // A sole voter is its own quorum, but its commit index may lag what an earlier leader acknowledged (one
    // that removed itself and handed over before telling it the new commit): only an entry of its own term,
    // committed, proves it knows every committed entry. Until then its reads wait in the queue.
    if (
      this.voters.length === 1 &&
      this.voters[0] === this.id &&
      (this.committedInCurrentTerm() || this.options.bugs.singleVoterRead === true)
    ) {
      this.answerRead(from, context, this.commit)
      return
    }
    // A voter's request, in this term, is itself an acknowledgement of this leader sent after its read
    // began: with at most three voters it and the leader are a quorum, so no heartbeat round is needed (one
    // round trip instead of two). It vouches for this request only: reads batched with it may have begun
    // after it was sent.
    if (
      from !== this.id &&
      this.voters.includes(from) &&
      this.voters.includes(this.id) &&
      (quorumSize(this.voters.length) <= 2 || this.options.bugs.readAckAnyQuorum === true) &&
      this.committedInCurrentTerm()
    ) {
      this.answerRead(from, context, this.readPoint())
      return
    }
    this.readOnly.add({ from, context })
  }

  /**
   * The index a read begun now must wait for: the commit index, or beyond it what a follower may already have
   * committed from notified acknowledgements (`notify`). A follower commits an entry only once a majority
   * of voters holds it, and a follower holds only what this leader sent it, so no follower can be past the
   * majority of what was sent (our own log counting in full), in any configuration a follower may hold. Without that bound the read point was the last
   * entry sent with a notice to any one follower, and with a deep pipeline (the leader's log many entries
   * ahead of its commit) a read, and each session keep-alive, which confirms leadership by one, waited for all
   * of them to commit: seconds under the simulator's one-entry messages (3-agent seed 243, a healthy
   * leader's own session expired, and a write in flight failed with NoLeaderError).
   */
  private readPoint(): number {
    if (this.notifiedUpTo <= this.commit) return this.commit
    const sentTo = (id: NodeId) => (id === this.id ? this.log.lastIndex() : (this.sentUpTo.get(id) ?? 0))
    // A follower counts the voters of the configuration its log holds: the committed one, or the one a
    // pending change appended (at most one change is uncommitted), so the majority of either may have it.
    const sent = Math.max(
      majorityIndex(this.voters, sentTo),
      majorityIndex(this.configs.at(this.commit).voters, sentTo),
    )
    return Math.max(this.commit, Math.min(this.notifiedUpTo, sent))
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.commit) === this.term
  }

  private releaseReads(): void {
    if (!this.readOnly.hasRounds()) return
    const rounds: ReadRound[] = this.readOnly.takeConfirmed(
      this.voters,
      this.voters.includes(this.id) ? this.id : '',
    )
    for (const round of rounds) {
      for (const request of round.requests) this.answerRead(request.from, request.context, round.index)
    }
  }

  private answerRead(from: NodeId, context: ReadContext, index: number): void {
    if (from === this.id) {
      this.readStates.push({ context, index })
    } else {
      const response: ReadIndexResponse = {
        type: 'readIndexResponse',
        from: this.id,
        to: from,
        term: this.term,
        context,
        index,
      }
      this.send(response)
    }
  }

  // ---------------------------------------------------------------- sending

  private send(message: Message): void {
    this.outbox.push(message)
  }

  /** Whether a call to ready() would produce messages on this leader. */
  private leaderHasWork(): boolean {
    if (this.readOnly.hasWaiting() && this.committedInCurrentTerm()) return true
    const lastIndex = this.log.lastIndex()
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue
      if (progress.state === 'snapshot') {
        if (this.canSendChunk(progress)) return true
      } else if (progress.shouldSendAppend(lastIndex, this.commit)) {
        return true
      }
    }
    return false
  }

  /** Builds this Ready's replication traffic: batched appends, snapshot chunks, ReadIndex rounds. */
  private flushLeader(): void {
    if (this.readOnly.hasWaiting() && this.committedInCurrentTerm()) {
      const context = this.readOnly.startRound(this.readPoint())
      this.broadcastHeartbeat(context)
      this.releaseReads()
    }
    for (const [id, progress] of this.progress) {
      if (id !== this.id) this.sendAppends(id, progress)
    }
  }

  private sendAppends(to: NodeId, progress: PeerProgress): void {
    const lastIndex = this.log.lastIndex()
    for (;;) {
      if (progress.state === 'snapshot') {
        this.sendSnapshotChunks(to, progress)
        return
      }
      if (!progress.shouldSendAppend(lastIndex, this.commit)) return
      const prevLogIndex = progress.next - 1
      const prevLogTerm = this.log.term(prevLogIndex)
      if (prevLogTerm === undefined) {
        if (prevLogIndex > lastIndex) {
          progress.becomeProbe(lastIndex + 1)
          return
        }
        // The entries it needs were compacted away.
        progress.becomeSnapshot(this.log.snapshotIndex)
        continue
      }
      let entries: Entry[] = []
      let bytes = 0
      if (progress.canSendEntries(lastIndex)) {
        entries = this.log.sliceBySize(progress.next, this.options.maxMessageBytes)
        bytes = this.log.sliceBytes
      }
      const append: AppendRequest = {
        type: 'append',
        from: this.id,
        to,
        term: this.term,
        prevLogIndex,
        prevLogTerm,
        entries,
        leaderCommit: this.commit,
      }
      // An entry-less append to a follower that acknowledged everything up to it, with nothing in flight,
      // only carries the commit index: its answer would tell us nothing, so ask for none (a rejection is
      // still sent). Anything weaker loses answers the leader needs: the simulator finds stalls.
      if (entries.length === 0 && progress.state === 'replicate' && prevLogIndex === progress.match) {
        append.commitOnly = true
      }
      if (entries.length > 0 && this.origins.size > 0) {
        const notify = this.notifyFor(entries, to)
        if (notify !== undefined) {
          append.notify = notify
          const last = prevLogIndex + entries.length
          if (last > this.notifiedUpTo) this.notifiedUpTo = last
        }
      }
      this.send(append)
      if (entries.length > 0) {
        const last = prevLogIndex + entries.length
        if (last > (this.sentUpTo.get(to) ?? 0)) this.sentUpTo.set(to, last)
      }
      progress.sentEntries(entries.length, bytes)
      progress.sentCommit(this.commit)
      // Keep pipelining while the window allows; never send more than one empty append per flush.
      if (entries.length === 0 || progress.state !== 'replicate' || !progress.canSendEntries(lastIndex))
        return
    }
  }

  /** The followers, other than `to`, that forwarded any of `entries` and are still waiting for them. */
  private notifyFor(entries: readonly Entry[], to: NodeId): NodeId[] | undefined {
    let notify: NodeId[] | undefined
    for (const entry of entries) {
      const origin = this.origins.get(entry.index)
      if (origin === undefined || origin === to) continue
      notify ??= []
      if (!notify.includes(origin)) notify.push(origin)
    }
    return notify
  }

  /** Whether the window to a follower in snapshot state lets one more chunk out (or a transfer begin). */
  private canSendChunk(progress: PeerProgress): boolean {
    const sending = progress.sending
    if (sending === undefined) return true
    if (progress.snapshotSentAll) return false
    const window = this.options.maxInflightSnapshotChunks * Math.max(1, this.options.snapshotChunkBytes)
    return progress.snapshotSent - progress.snapshotOffset < window
  }

  /**
   * Sends the next chunks of the snapshot, as many as the window allows (`maxInflightSnapshotChunks` ahead
   * of the follower's in-order acknowledgement): one chunk a round trip would make a state of N chunks take N
   * round trips to reach a new or lagging member, whose acknowledgement a commit may need.
   */
  private sendSnapshotChunks(to: NodeId, progress: PeerProgress): void {
    const snapshot = this.snapshot
    if (snapshot === undefined) {
      progress.becomeProbe()
      return
    }
    // A transfer under way finishes with the snapshot it began with, even if we compacted again since: starting
    // over at every compaction never ends when sending a snapshot takes longer than the log takes to grow by
    // `snapshotEntries` (a slow link, small chunks). The follower installs it, then gets the newer one.
    // Not begun yet (or the follower lost what it had, and we start over): the newest snapshot.
    let sending = progress.sending
    if (
      sending === undefined ||
      (progress.snapshotOffset === 0 &&
        !progress.snapshotInFlight() &&
        sending.meta.index !== snapshot.meta.index)
    ) {
      sending = snapshot
      progress.sending = snapshot
      progress.snapshotIndex = snapshot.meta.index
      progress.snapshotOffset = 0
      progress.resendSnapshot()
    }
    const chunkBytes = Math.max(1, this.options.snapshotChunkBytes)
    const size = sending.data.length
    while (this.canSendChunk(progress)) {
      const offset = Math.min(progress.snapshotSent, size)
      const end = Math.min(offset + chunkBytes, size)
      this.send({
        type: 'snapshot',
        from: this.id,
        to,
        term: this.term,
        meta: sending.meta,
        offset,
        data: sending.data.subarray(offset, end),
        done: end === size,
      })
      progress.snapshotSent = end
      progress.snapshotSentAll = end === size
      progress.ticksSinceChunk = 0
    }
  }

  // ---------------------------------------------------------------- membership

  /** Records a config entry in the history; returns whether it was one. Malformed ones are ignored everywhere. */
  private recordConfigEntry(entry: Entry): boolean {
    if (entry.type !== 'config') return false
    let config: Config
    try {
      config = decodeConfig(entry.data)
    } catch {
      return false
    }
    this.configs.add(entry.index, config)
    return true
  }

  /** The configuration in force may have changed (an entry appended or truncated, a snapshot installed). */
  private onConfigChanged(): void {
    const config = this.configs.current()
    if (sameConfig(config, this.config)) {
      this.config = config
      return
    }
    this.config = config
    this.voters = config.voters
    if (this.role !== 'leader') return
    const members = new Set([...config.voters, ...config.nonVoters])
    const next = this.log.lastIndex() + 1
    for (const id of members) {
      if (!this.progress.has(id)) {
        const progress = this.newProgress(next)
        // A new member gets a full check-quorum window to answer.
        progress.recentActive = true
        this.progress.set(id, progress)
      }
    }
    this.pruneProgress()
    if (this.transferee !== '' && !config.voters.includes(this.transferee)) this.transferee = ''
    // The quorum changed: the commit index and pending reads may move.
    this.maybeCommit()
    this.releaseReads()
  }
}
