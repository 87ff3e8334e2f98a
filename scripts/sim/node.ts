/**
 * The shell around one `RaftNode`, as a real one would be but against simulated parts: it takes one Ready at
 * a time, writes its snapshot, entries and hard state to the simulated disk, and only once that write is
 * durable sends the Ready's messages, applies its committed entries to the KV store, serves the reads its
 * ReadStates allow and calls `advance`. It compacts its log now and then (its own snapshot goes to disk the
 * same way). A crash drops the core, the KV state and everything not yet durable; a restart rebuilds them
 * from the disk. Clients talk to it through `submitWrite` and `submitRead`.
 *
 * A follower that knows the leader forwards some writes to it (`forwardWrite`) instead of redirecting the
 * client: the leader proposes them naming the follower as their origin, so the core asks the other followers
 * to copy their acknowledgements to it and it may commit them itself before the leader says so. The follower
 * answers the client when it applies the entry carrying the operation or when the leader's answer arrives,
 * whichever is first, as the agent does.
 */

import type { KvOutput } from '../../src/check/index.ts'
import { decodeConfig } from '../../src/raft/config.ts'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import {
  ConfigChangeError,
  InvalidRequestError,
  NotLeaderError,
  ProposalDroppedError,
} from '../../src/raft/errors.ts'
import { RaftNode } from '../../src/raft/raft.ts'
import type {
  Config,
  ConfigChange,
  Entry,
  Message,
  NodeId,
  PersistedState,
  Random,
  ReadContext,
  ReadState,
  Ready,
  Role,
} from '../../src/raft/types.ts'
import type { SimDisk, StoredLog } from './disk.ts'
import { type SafetyMonitor, Violation } from './invariants.ts'
import { decodeCommand, encodeCommand, KvStore, type KvWrite } from './kv.ts'
import type { Scheduler } from './scheduler.ts'

/** A node's answer to a client request. */
export type NodeReply =
  | { type: 'ok'; output: KvOutput }
  /** Not the leader: nothing was proposed. `leader` is the node's guess ('' if none). */
  | { type: 'redirect'; leader: NodeId }
  /** Refused before proposing (transfer in progress, too much uncommitted): nothing was proposed. */
  | { type: 'refused' }
  /** Another entry was committed at the proposal's index: the write did not and will never take effect. */
  | { type: 'failed' }

/** Why a node did not propose a write: answered alike to a client and to a forwarding follower. */
type WriteRefusal = { type: 'redirect'; leader: NodeId } | { type: 'refused' }

/** A write a follower forwarded to its leader. */
export interface ForwardRequest {
  opId: string
  input: KvWrite
}

/** The leader's answer to a forwarded write. */
export type ForwardReply =
  /** Proposed at `index` in `term`: the follower answers its client when it applies the entry. */
  | { type: 'accepted'; index: number; term: number }
  /** Nothing was proposed (as `NodeReply`): the follower relays this to its client. */
  | { type: 'redirect'; leader: NodeId }
  | { type: 'refused' }
  /** The leader applied it: its output (the follower answers with this or its own apply, whichever is first). */
  | { type: 'done'; output: KvOutput }
  /** Another entry was committed at its index. */
  | { type: 'failed' }

/** What the node needs from the world around it. */
export interface NodeEnv {
  readonly scheduler: Scheduler
  readonly monitor: SafetyMonitor
  readonly options: Partial<RaftCoreOptions>
  /** Latency of the next write to this node's disk, in ms. */
  diskDelay(node: SimNode): number
  /** The core's random source for one incarnation of a node. */
  random(node: NodeId, incarnation: number): Random
  send(from: SimNode, message: Message): void
  /**
   * Which operation applied first at which index, with its output: a write must take effect at most once,
   * and a proposal a snapshot skipped over is answered from it (as an agent's session answers a retry).
   */
  readonly appliedOps: Map<string, { index: number; output: KvOutput }>
  readonly counters: NodeCounters
  /** The node was seen leading `term` for the first time. */
  onLeader(node: SimNode, term: number): void
  /** A node's stable storage (for the commit durability check). */
  durableLog(id: NodeId): StoredLog
  /** The node became a pre-candidate or a candidate. */
  onCampaign(node: SimNode): void
  /** The node, as leader, advanced its commit index past `previous`. */
  onCommit(node: SimNode, previous: number): void
  /** Whether a write that reached this follower (which knows a leader) is forwarded rather than redirected. */
  shouldForward(node: SimNode): boolean
  /**
   * Carries a forwarded write to `to` over the simulated network; the answer comes back the same way, or
   * never (lost, cut off, or a node went down).
   */
  forward(from: SimNode, to: NodeId, request: ForwardRequest, answer: (reply: ForwardReply) => void): void
  trace(line: string): void
}

export interface NodeCounters {
  snapshotsInstalled: number
  compactions: number
  entriesApplied: number
  readsServed: number
  /** Writes a follower forwarded to its leader. */
  writesForwarded: number
  /** Forwarded writes the leader did not propose (not leader, refused): the client was redirected. */
  forwardsRefused: number
  /** Forwarded writes answered by the follower's own apply of their entry. */
  writesAppliedByFollower: number
  /** Forwarded writes answered by the leader's answer, which came before the follower applied the entry. */
  writesAnsweredByLeader: number
  /** Forwarded writes answered 'failed': another entry was applied at the index the leader reported. */
  forwardsFailed: number
  /** Times a follower advanced its commit index on a peer's acknowledgement (commits learned from peers). */
  peerCommits: number
}

interface PendingProposal {
  term: number
  opId: string
  reply: (reply: NodeReply) => void
}

interface ForwardedWrite {
  opId: string
  reply: (reply: NodeReply) => void
  /** Where the leader proposed it (0 until its answer arrives). */
  index: number
  term: number
}

interface PendingRead {
  key: string
  reply: (reply: NodeReply) => void
}

export class SimNode {
  readonly id: NodeId
  readonly disk: SimDisk
  raft: RaftNode | undefined
  kv = new KvStore()
  applied = 0
  /** Bumped at every crash: events scheduled for an earlier incarnation are ignored. */
  incarnation = 0
  /** Compact once this many entries were applied past the last snapshot. */
  compactEvery: number
  /** Role and term as last observed, for the monitor and the fault schedule. */
  role: Role = 'follower'
  term = 0
  leader: NodeId = ''
  commit = 0
  private readonly env: NodeEnv
  private appliedTerm = 0
  private appliedConfig: Config = { voters: [], nonVoters: [] }
  /** Shut down for good by the operator (it was removed from the cluster): clients are refused at once. */
  decommissioned = false
  private inFlight: Ready | undefined
  private readonly proposals = new Map<number, PendingProposal[]>()
  /** Writes forwarded to the leader, by operation id, until this node applies them (or learns they failed). */
  private readonly forwarded = new Map<string, ForwardedWrite>()
  /** Highest index this incarnation reached through a snapshot: entries up to it were never applied here. */
  private restoredUpTo = 0
  private readonly reads = new Map<ReadContext, PendingRead>()
  private readStates: ReadState[] = []
  private readSeq = 0
  private firstReadyPending = false

  constructor(id: NodeId, disk: SimDisk, env: NodeEnv, compactEvery: number) {
    this.id = id
    this.disk = disk
    this.env = env
    this.compactEvery = compactEvery
  }

  get up(): boolean {
    return this.raft !== undefined
  }

  /** The log as written (durable plus pending): what the invariants read. */
  get log(): StoredLog {
    return this.disk.written
  }

  /** Boots the node from its disk (first start or restart). */
  start(): void {
    if (this.raft) return
    const state = this.disk.load()
    const snapshot = state.snapshot
    const snapshotIndex = snapshot?.meta.index ?? 0
    this.raft = new RaftNode({
      id: this.id,
      state,
      random: this.env.random(this.id, this.incarnation),
      options: this.env.options,
      applied: snapshotIndex,
    })
    this.kv = snapshot ? KvStore.restore(snapshot.data) : new KvStore()
    this.applied = snapshotIndex
    this.restoredUpTo = snapshotIndex
    this.appliedTerm = snapshot?.meta.term ?? 0
    this.appliedConfig = snapshot ? snapshot.meta.config : { voters: [], nonVoters: [] }
    // Config entries up to the snapshot are in its meta; the ones after it apply again from the log.
    this.role = 'follower'
    this.leader = ''
    this.term = state.hardState.term
    this.commit = Math.max(state.hardState.commit, snapshotIndex)
    if (this.incarnation > 0) {
      this.env.monitor.observeRestart(this.id, snapshotIndex, state.hardState.commit)
      this.firstReadyPending = true
    }
    this.pump()
  }

  /** Stops the node; the first `syncedWrites` pending disk writes had completed (see `SimDisk.crash`). */
  crash(syncedWrites = 0): void {
    if (!this.raft) return
    this.raft = undefined
    this.incarnation++
    this.disk.crash(syncedWrites)
    this.inFlight = undefined
    this.proposals.clear()
    this.forwarded.clear()
    this.reads.clear()
    this.readStates = []
    this.kv = new KvStore()
    this.role = 'follower'
    this.leader = ''
    this.env.monitor.observeCrash(this.id)
  }

  tick(): void {
    this.raft?.tick()
    this.afterInput()
  }

  receive(message: Message): void {
    const raft = this.raft
    if (!raft) return
    // A peer's copy of its acknowledgement (see `notify`), or the leader's own, may let a follower commit
    // before the leader tells it.
    const peerAck = message.type === 'appendResponse' && this.role === 'follower'
    const commitBefore = peerAck ? raft.status().commit : 0
    raft.step(message)
    if (peerAck && raft.status().commit > commitBefore) {
      this.env.counters.peerCommits++
      this.env.trace(`${this.id} commits up to ${raft.status().commit} on ${message.from}'s acknowledgement`)
    }
    this.afterInput()
  }

  /** Proposes a client write; the reply comes when its fate is known here (or never, if this node fails). */
  submitWrite(opId: string, input: KvWrite, reply: (reply: NodeReply) => void): void {
    const raft = this.writableRaft(reply)
    if (raft === undefined) return
    if (
      this.role !== 'leader' &&
      this.leader !== '' &&
      this.leader !== this.id &&
      this.env.shouldForward(this)
    ) {
      this.forwardWrite(opId, input, reply)
      return
    }
    const proposal = proposeWrite(raft, opId, input, undefined, reply)
    if (proposal === undefined) return
    this.track(proposal, opId, reply)
    this.afterInput()
  }

  /** The core, if this node may take a write now; if not, `refuse` is told so (or nothing is, if it is down). */
  private writableRaft(refuse: (reply: WriteRefusal) => void): RaftNode | undefined {
    if (this.decommissioned) {
      refuse({ type: 'redirect', leader: '' })
      return undefined
    }
    if (!this.raft) return undefined
    if (!this.isMember()) {
      refuse({ type: 'redirect', leader: '' })
      return undefined
    }
    return this.raft
  }

  /** Waits for the entry proposed at `proposal` to apply here, to answer `reply`. */
  private track(
    proposal: { index: number; term: number },
    opId: string,
    reply: (reply: NodeReply) => void,
  ): void {
    const waiting = this.proposals.get(proposal.index)
    const pending = { term: proposal.term, opId, reply }
    if (waiting) waiting.push(pending)
    else this.proposals.set(proposal.index, [pending])
  }

  /**
   * Sends a client write to the leader. The client hears back when this node applies the entry carrying
   * `opId` (which, with commits learned from peers, may come before the leader's answer) or when the leader
   * says it applied it, whichever is first; at once if the leader did not propose it. If the forward, the
   * answer or the entry is lost, the client times out.
   */
  private forwardWrite(opId: string, input: KvWrite, reply: (reply: NodeReply) => void): void {
    const leader = this.leader
    const pending: ForwardedWrite = { opId, reply, index: 0, term: 0 }
    // One operation id is never proposed twice (clients retry only what was not proposed or failed).
    this.forwarded.set(opId, pending)
    this.env.counters.writesForwarded++
    this.env.trace(`${this.id} forwards ${opId} to ${leader}`)
    this.env.forward(this, leader, { opId, input }, answer => {
      // Answered already (applied here), or this node crashed since: the map was cleared.
      if (this.forwarded.get(opId) !== pending) return
      const counters = this.env.counters
      switch (answer.type) {
        case 'accepted': {
          pending.index = answer.index
          pending.term = answer.term
          // Not applied here yet, or skipped by a snapshot (then the leader's answer tells the outcome).
          if (answer.index > this.applied || answer.index <= this.restoredUpTo) return
          // Applied here before this answer came, and not with this operation (it would have been answered):
          // which entry it was is in the log, unless compacted away since (then the leader's answer tells).
          const term = this.disk.written.termAt(answer.index)
          if (term === undefined) return
          this.forwarded.delete(opId)
          this.forwardedLost(pending, term)
          return
        }
        case 'done':
          this.forwarded.delete(opId)
          counters.writesAnsweredByLeader++
          this.env.trace(`${this.id} answers its forwarded ${opId} from ${leader}'s answer`)
          reply({ type: 'ok', output: answer.output })
          return
        case 'failed':
          this.forwarded.delete(opId)
          counters.forwardsFailed++
          reply(answer)
          return
        default:
          this.forwarded.delete(opId)
          counters.forwardsRefused++
          this.env.trace(`${this.id}: ${leader} did not take ${opId} (${answer.type})`)
          reply(answer)
      }
    })
  }

  /** The leader asks to propose a write a follower forwarded; `origin` names that follower. */
  serveForward(origin: NodeId, request: ForwardRequest, answer: (reply: ForwardReply) => void): void {
    const raft = this.writableRaft(answer)
    if (raft === undefined) return
    const proposal = proposeWrite(raft, request.opId, request.input, origin, answer)
    if (proposal === undefined) return
    this.env.trace(`${this.id} proposes ${request.opId} for ${origin} at ${proposal.index}/${proposal.term}`)
    answer({ type: 'accepted', index: proposal.index, term: proposal.term })
    this.track(proposal, request.opId, reply => {
      if (reply.type === 'ok') answer({ type: 'done', output: reply.output })
      else if (reply.type === 'failed') answer({ type: 'failed' })
    })
    this.afterInput()
  }

  /** Another entry of `term` was applied at the index where the leader proposed a forwarded write. */
  private forwardedLost(pending: ForwardedWrite, term: number): void {
    if (term === pending.term) {
      throw new Violation(
        'proposal-identity',
        this.env.scheduler.now,
        `${this.id} forwarded ${pending.opId}, proposed at ${pending.index}/${pending.term}, but applied another entry there`,
      )
    }
    // The entry the leader proposed was overwritten: it can never take effect, so the client may retry.
    this.env.counters.forwardsFailed++
    pending.reply({ type: 'failed' })
  }

  /** A linearizable read through ReadIndex; a follower relays it to its leader. */
  submitRead(opId: string, key: string, reply: (reply: NodeReply) => void): void {
    if (this.decommissioned) {
      reply({ type: 'redirect', leader: '' })
      return
    }
    const raft = this.raft
    if (!raft) return
    const context = `${opId}#${++this.readSeq}`
    if ((this.role !== 'leader' && this.leader === '') || !this.isMember()) {
      // The core drops a read it cannot relay; say so at once instead of letting the client time out.
      reply({ type: 'redirect', leader: '' })
      return
    }
    try {
      raft.readIndex(context)
    } catch (error) {
      if (error instanceof NotLeaderError) {
        reply({ type: 'redirect', leader: error.leader })
        return
      }
      throw error
    }
    this.reads.set(context, { key, reply })
    this.afterInput()
  }

  /**
   * Whether this node is in its own configuration. One that is not was removed (or never added): its idea of
   * the leader may be long stale, so it sends clients elsewhere rather than relaying into the void.
   */
  private isMember(): boolean {
    const config = this.raft?.status().config
    return config !== undefined && (config.voters.includes(this.id) || config.nonVoters.includes(this.id))
  }

  /** Proposes a membership change on this node (its leader); returns whether the core took it. */
  changeConfig(change: ConfigChange): boolean {
    const raft = this.raft
    if (!raft) return false
    try {
      raft.proposeConfigChange(change)
    } catch (error) {
      if (isRefusal(error)) return false
      throw error
    }
    this.afterInput()
    return true
  }

  /** Asks this node (the leader) to hand leadership to `to`; returns whether the core took it. */
  transferLeadership(to: NodeId): boolean {
    const raft = this.raft
    if (!raft) return false
    try {
      raft.transferLeadership(to)
    } catch (error) {
      if (isRefusal(error)) return false
      throw error
    }
    this.afterInput()
    return true
  }

  /** Starts an election now, as if its election timer had fired. */
  campaign(): void {
    if (!this.raft) return
    this.raft.campaign()
    this.afterInput()
  }

  /** The configuration as this node's core sees it now. */
  config(): Config | undefined {
    return this.raft?.status().config
  }

  /** The configuration at the applied index (a committed one). */
  get committedConfig(): Config {
    return this.appliedConfig
  }

  /** The last index of the core's log (written or not yet), 0 when down. */
  lastIndex(): number {
    return this.raft?.status().lastIndex ?? 0
  }

  /** Takes a snapshot at the applied index if enough was applied since the last one. */
  maybeCompact(force = false): boolean {
    const raft = this.raft
    if (!raft) return false
    const snapshotIndex = this.disk.written.snapshotIndex
    if (this.applied <= snapshotIndex) return false
    if (!force && this.applied - snapshotIndex < this.compactEvery) return false
    const data = this.kv.snapshot()
    const snapshot = raft.compact(this.applied, data)
    if (!snapshot) return false
    // The core works out the snapshot's meta itself; it must agree with what this node applied.
    const { meta } = snapshot
    if (
      meta.index !== this.applied ||
      meta.term !== this.appliedTerm ||
      meta.config.voters.join() !== this.appliedConfig.voters.join() ||
      meta.config.nonVoters.join() !== this.appliedConfig.nonVoters.join()
    ) {
      throw new Violation(
        'snapshot-meta',
        this.env.scheduler.now,
        `${this.id} compacted at ${this.applied}/${this.appliedTerm} with config ${JSON.stringify(this.appliedConfig)} but the core made ${JSON.stringify(meta)}`,
      )
    }
    const id = this.disk.submit({ entries: [], compaction: snapshot })
    const incarnation = this.incarnation
    this.env.scheduler.after(this.env.diskDelay(this), () => {
      if (this.incarnation === incarnation) this.disk.flush(id)
    })
    this.env.counters.compactions++
    this.env.trace(`${this.id} compacts its log at ${this.applied}`)
    return true
  }

  /** After any input: hand out the next Ready if none is in flight, then report what the monitor checks. */
  private afterInput(): void {
    this.pump()
    this.observe()
  }

  private observe(): void {
    const raft = this.raft
    if (!raft) return
    const status = raft.status()
    const monitor = this.env.monitor
    if (status.role !== this.role || status.term !== this.term || status.leader !== this.leader) {
      const elected = status.role === 'leader' && (this.role !== 'leader' || status.term !== this.term)
      const campaigning =
        status.role !== this.role && (status.role === 'preCandidate' || status.role === 'candidate')
      this.role = status.role
      this.term = status.term
      this.leader = status.leader
      if (elected) {
        this.env.trace(`${this.id} becomes leader in term ${status.term}`)
        this.env.onLeader(this, status.term)
      } else {
        this.env.trace(`${this.id} is ${status.role} in term ${status.term}, leader '${status.leader}'`)
        if (campaigning) this.env.onCampaign(this)
      }
    }
    if (status.role === 'leader') monitor.observeLeader(this.id, status.term, this.disk.written)
    else monitor.observeNotLeader(this.id)
    if (status.commit > this.commit) {
      const previous = this.commit
      this.commit = status.commit
      monitor.observeCommit(status.term, status.commit, this.disk.written)
      if (status.role === 'leader') {
        const term = this.disk.written.termAt(status.commit)
        if (term !== undefined) {
          monitor.observeLeaderCommit(this.id, status.commit, term, status.config.voters, id =>
            this.env.durableLog(id),
          )
        }
        this.env.onCommit(this, previous)
      }
    }
  }

  private pump(): void {
    for (;;) {
      const raft = this.raft
      if (!raft || this.inFlight || !raft.hasReady()) return
      const ready = raft.ready()
      const hasWrite =
        ready.snapshot !== undefined || ready.entries.length > 0 || ready.hardState !== undefined
      if (!hasWrite) {
        this.complete(ready)
        continue
      }
      const id = this.disk.submit({
        snapshot: ready.snapshot,
        entries: ready.entries,
        hardState: ready.hardState,
      })
      if (ready.entries.length > 0) {
        const prevTerm = this.disk.written.termAt(ready.entries[0].index - 1) ?? 0
        this.env.monitor.observeWrite(this.id, prevTerm, ready.entries)
      }
      this.inFlight = ready
      const incarnation = this.incarnation
      this.env.scheduler.after(this.env.diskDelay(this), () => {
        if (this.incarnation !== incarnation) return
        this.disk.flush(id)
        this.complete(ready)
        this.afterInput()
      })
      return
    }
  }

  /** The Ready's writes are durable: send, apply, serve reads, advance. */
  private complete(ready: Ready): void {
    const raft = this.raft!
    for (const message of ready.messages) this.env.send(this, message)
    if (ready.snapshot) this.restore(ready.snapshot.meta.index, ready.snapshot.meta.term, ready.snapshot)
    for (const entry of ready.committed) this.apply(entry)
    for (const readState of ready.readStates) this.readStates.push(readState)
    this.serveReads()
    raft.advance(ready)
    this.inFlight = undefined
    if (this.firstReadyPending) {
      this.firstReadyPending = false
      this.env.monitor.observeReadyDone(this.id)
    }
    this.maybeCompact()
  }

  private restore(index: number, term: number, snapshot: NonNullable<Ready['snapshot']>): void {
    this.env.monitor.observeRestore(this.id, index, term)
    this.kv = KvStore.restore(snapshot.data)
    this.applied = index
    this.restoredUpTo = Math.max(this.restoredUpTo, index)
    this.appliedTerm = term
    this.appliedConfig = snapshot.meta.config
    this.env.counters.snapshotsInstalled++
    this.env.trace(`${this.id} installs a snapshot at ${index}/${term}`)
    // Proposals the snapshot skipped over: the entry at each one's index was applied by the node that made
    // the snapshot. If the operation took effect (there, or at another index through another proposal of
    // it), the answer is its output, as an agent's session keeps it for a retry; if not, the entry there is
    // another and ours can never take effect. Without an answer, the client would wait out its timeout.
    for (const [slot, waiting] of [...this.proposals]) {
      if (slot > index) continue
      this.proposals.delete(slot)
      for (const pending of waiting) {
        const applied = this.env.appliedOps.get(pending.opId)
        pending.reply(applied === undefined ? { type: 'failed' } : { type: 'ok', output: applied.output })
      }
    }
  }

  private apply(entry: Entry): void {
    this.env.monitor.observeApply(this.id, entry)
    this.applied = entry.index
    this.appliedTerm = entry.term
    this.env.counters.entriesApplied++
    let output: KvOutput | undefined
    let opId = ''
    if (entry.type === 'config') {
      this.appliedConfig = decodeConfig(entry.data)
    } else if (entry.data.length > 0) {
      const command = decodeCommand(entry.data)
      opId = command.opId
      output = this.kv.apply(command.input)
      const first = this.env.appliedOps.get(opId)
      if (first === undefined) this.env.appliedOps.set(opId, { index: entry.index, output })
      else if (first.index !== entry.index) {
        throw new Violation(
          'exactly-once',
          this.env.scheduler.now,
          `operation ${opId} applied at ${entry.index} after it already took effect at ${first.index}`,
        )
      }
    }
    if (this.forwarded.size > 0) this.settleForwarded(entry, opId, output)
    const waiting = this.proposals.get(entry.index)
    if (!waiting) return
    this.proposals.delete(entry.index)
    for (const pending of waiting) {
      if (pending.term === entry.term && pending.opId === opId && output !== undefined) {
        pending.reply({ type: 'ok', output })
      } else if (pending.term === entry.term) {
        throw new Violation(
          'proposal-identity',
          this.env.scheduler.now,
          `${this.id} proposed ${pending.opId} at ${entry.index}/${entry.term} but applied another entry there`,
        )
      } else {
        pending.reply({ type: 'failed' })
      }
    }
  }

  /** Answers the forwarded write `entry` carries, and fails the one the leader had proposed at its index. */
  private settleForwarded(entry: Entry, opId: string, output: KvOutput | undefined): void {
    const mine = output === undefined ? undefined : this.forwarded.get(opId)
    if (mine && output) {
      if (mine.index !== 0 && (mine.index !== entry.index || mine.term !== entry.term)) {
        throw new Violation(
          'proposal-identity',
          this.env.scheduler.now,
          `${this.id} forwarded ${opId}, proposed at ${mine.index}/${mine.term}, but applied it at ${entry.index}/${entry.term}`,
        )
      }
      this.forwarded.delete(opId)
      this.env.counters.writesAppliedByFollower++
      this.env.trace(`${this.id} answers its forwarded ${opId} on applying it at ${entry.index}`)
      mine.reply({ type: 'ok', output })
      return
    }
    for (const [id, pending] of this.forwarded) {
      if (pending.index !== entry.index) continue
      this.forwarded.delete(id)
      this.forwardedLost(pending, entry.term)
    }
  }

  private serveReads(): void {
    if (this.readStates.length === 0) return
    const waiting: ReadState[] = []
    for (const readState of this.readStates) {
      if (readState.index > this.applied) {
        waiting.push(readState)
        continue
      }
      const read = this.reads.get(readState.context)
      if (!read) continue
      this.reads.delete(readState.context)
      this.env.counters.readsServed++
      this.env.trace(
        `${this.id} serves read ${readState.context} at index ${readState.index} (applied ${this.applied}, commit ${this.commit})`,
      )
      read.reply({ type: 'ok', output: this.kv.get(read.key) })
    }
    this.readStates = waiting
  }
}

/** The errors by which the core declines a request without anything having gone wrong. */
function isRefusal(error: unknown): boolean {
  return (
    error instanceof NotLeaderError ||
    error instanceof ProposalDroppedError ||
    error instanceof ConfigChangeError ||
    error instanceof InvalidRequestError
  )
}

/** What a founding member finds on disk: a snapshot at 0 with the initial configuration. */
export function foundingState(voters: NodeId[]): PersistedState {
  return {
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: {
      meta: { index: 0, term: 0, config: { voters: [...voters], nonVoters: [] } },
      data: new Uint8Array(0),
    },
    entries: [],
  }
}

/** What a node that will be added to a running cluster finds on disk: nothing. */
export function emptyState(): PersistedState {
  return { hardState: { term: 0, vote: '', commit: 0 }, entries: [] }
}

/** Proposes a write (forwarded by `origin`, if given); undefined if the core refused it, told to `refuse`. */
function proposeWrite(
  raft: RaftNode,
  opId: string,
  input: KvWrite,
  origin: NodeId | undefined,
  refuse: (reply: WriteRefusal) => void,
): { index: number; term: number } | undefined {
  try {
    return raft.propose(encodeCommand({ opId, input }), origin)
  } catch (error) {
    if (error instanceof NotLeaderError) refuse({ type: 'redirect', leader: error.leader })
    else if (error instanceof ProposalDroppedError) refuse({ type: 'refused' })
    else throw error
    return undefined
  }
}
