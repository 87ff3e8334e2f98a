/**
 * The data the Raft core exchanges with its shell. The core is a pure state machine: it is driven by
 * `tick()`, `step(message)`, `propose(data)` and configuration calls, and everything it wants done in the
 * world (persist, send, apply) comes out of `ready()` as plain data. Nothing here touches a clock, a socket
 * or a random source; the randomized election timeout is drawn from the `Random` passed in.
 *
 * Indexes and terms are plain numbers: 2^53 entries is beyond any log this library will write.
 */

/** A node's identity inside Raft: the libp2p peer id string in conclave, any string in tests. */
export type NodeId = string

/** A source of uniform numbers in [0, 1). Seeded in tests and the simulator so a run replays exactly. */
export type Random = () => number

/** Voting membership. A node is in at most one of the two lists. */
export interface Config {
  voters: NodeId[]
  nonVoters: NodeId[]
}

/**
 * A change of one server, as the Raft dissertation's single-server rule allows (section 4.1):
 * the new configuration takes effect on each server as soon as the entry is in its log, and the leader
 * accepts no further change until that entry is committed.
 */
export type ConfigChange =
  | { type: 'addVoter'; node: NodeId }
  | { type: 'removeVoter'; node: NodeId }
  | { type: 'addNonVoter'; node: NodeId }
  | { type: 'removeNonVoter'; node: NodeId }
  | { type: 'promote'; node: NodeId }

/**
 * `normal` entries carry application data (empty data = the no-op a new leader appends);
 * `config` entries carry the complete resulting `Config`, encoded with `encodeConfig`.
 */
export type EntryType = 'normal' | 'config'

export interface Entry {
  term: number
  index: number
  type: EntryType
  data: Uint8Array
}

/** What must be on stable storage before any message that depends on it is sent. */
export interface HardState {
  term: number
  /** The node voted for in `term`, or '' if none. */
  vote: NodeId
  /** Highest index known committed; persisting it is an optimisation (faster apply on restart), not safety. */
  commit: number
}

export interface SnapshotMeta {
  /** Last log index the snapshot covers. */
  index: number
  /** Term of the entry at `index`. */
  term: number
  /** The configuration in force at `index`. */
  config: Config
}

export interface Snapshot {
  meta: SnapshotMeta
  /** The application's state at `meta.index`, opaque to Raft. */
  data: Uint8Array
}

/**
 * Everything a node has on stable storage, as loaded at start. A node founding a new cluster starts from
 * a snapshot at index 0, term 0, carrying the initial configuration and empty data. A node that will be
 * added to an existing cluster starts with no snapshot and an empty log and waits to be contacted.
 */
export interface PersistedState {
  hardState: HardState
  snapshot?: Snapshot
  /** Entries after `snapshot.meta.index` (or from index 1 without a snapshot), contiguous. */
  entries: Entry[]
}

/** A correlation id for a ReadIndex request, chosen by the caller; unique per node. */
export type ReadContext = string

/** A linearizable read point: once the node has applied `index`, a read for `context` may be served. */
export interface ReadState {
  context: ReadContext
  index: number
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader'

interface MessageBase {
  from: NodeId
  to: NodeId
  /** The sender's term; for pre-vote requests, the term the sender would campaign in. */
  term: number
}

/** RequestVote, and PreVote (the same question asked without raising anyone's term). */
export interface VoteRequest extends MessageBase {
  type: 'vote' | 'preVote'
  lastLogIndex: number
  lastLogTerm: number
  /** Set when the election follows a TimeoutNow: voters then ignore their leader lease (check-quorum). */
  transfer: boolean
}

export interface VoteResponse extends MessageBase {
  type: 'voteResponse' | 'preVoteResponse'
  granted: boolean
}

/** AppendEntries. Empty `entries` is a probe; liveness alone travels as `heartbeat`. */
export interface AppendRequest extends MessageBase {
  type: 'append'
  prevLogIndex: number
  prevLogTerm: number
  entries: Entry[]
  leaderCommit: number
  /**
   * Set on an entry-less append that only tells a caught-up follower of a new commit index: the follower
   * does not answer it when it succeeds (the leader learns nothing from that answer), which saves two
   * messages per commit and follower. Absent means false.
   */
  commitOnly?: boolean
  /**
   * Followers that proposed some of `entries` through this leader and want to learn early that they are
   * committed: the receiver sends each of them a copy of its successful answer, after making the entries
   * durable (a peer acknowledgement). With copies from enough voters a follower knows an entry of the
   * current term is on a majority and commits it itself, one network hop before the leader could tell it.
   * A hint: absent, empty or ignored, nothing but that early commit is lost.
   */
  notify?: NodeId[]
}

export interface AppendResponse extends MessageBase {
  type: 'appendResponse'
  success: boolean
  /**
   * On success, the index of the last entry the request made durable on the follower.
   * On rejection, the `prevLogIndex` that was rejected.
   */
  index: number
  /**
   * Fast back-off on rejection: the follower's last index if its log is shorter than `prevLogIndex`, else
   * the first index of the conflicting term (`hintTerm`), so the leader skips a whole term per round trip.
   */
  hintIndex: number
  hintTerm: number
}

/** Leader liveness and commit propagation; `context` carries a ReadIndex round when non-empty. */
export interface HeartbeatRequest extends MessageBase {
  type: 'heartbeat'
  leaderCommit: number
  context: ReadContext
}

export interface HeartbeatResponse extends MessageBase {
  type: 'heartbeatResponse'
  context: ReadContext
}

/** One chunk of InstallSnapshot. Chunks of one snapshot share `meta`; `offset` counts bytes of data. */
export interface SnapshotRequest extends MessageBase {
  type: 'snapshot'
  meta: SnapshotMeta
  offset: number
  data: Uint8Array
  done: boolean
}

export interface SnapshotResponse extends MessageBase {
  type: 'snapshotResponse'
  /** The snapshot index the response is about. */
  index: number
  /** Bytes received so far in order (the next expected offset); -1 to ask the leader to restart. */
  offset: number
  /** True once the whole snapshot is durable and installed. */
  done: boolean
}

/** Leadership transfer: the leader tells the target to start an election at once. */
export interface TimeoutNowRequest extends MessageBase {
  type: 'timeoutNow'
}

/** A follower's ReadIndex request relayed to the leader. */
export interface ReadIndexRequest extends MessageBase {
  type: 'readIndex'
  context: ReadContext
}

/** The leader's answer to a relayed ReadIndex, sent once leadership is confirmed. */
export interface ReadIndexResponse extends MessageBase {
  type: 'readIndexResponse'
  context: ReadContext
  index: number
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | SnapshotResponse
  | TimeoutNowRequest
  | ReadIndexRequest
  | ReadIndexResponse

export type MessageType = Message['type']

/** Role and leader as the node last saw them; present in a Ready only when changed. */
export interface SoftState {
  role: Role
  /** '' when no leader is known. */
  leader: NodeId
}

/**
 * One batch of work for the shell. Handle it in this order, then call `advance(ready)`:
 * 1. persist `snapshot` (if any), then `entries` (truncating any stored suffix from `entries[0].index`),
 *    then `hardState`, durably and in one step where the store allows;
 * 2. send `messages`;
 * 3. if `snapshot` is set, restore the application from it; then apply `committed` in order;
 * 4. hand out `readStates` (each becomes servable once the application has applied its index).
 *
 * A `snapshot` becomes the base of the stored log: drop the stored entries up to its index, and all of them
 * unless the stored entry at its index has the snapshot's term. Whatever the node keeps after the snapshot
 * index comes back in `entries` of the same Ready, so dropping every stored entry is also correct.
 */
export interface Ready {
  softState?: SoftState
  hardState?: HardState
  entries: Entry[]
  snapshot?: Snapshot
  messages: Message[]
  committed: Entry[]
  readStates: ReadState[]
}

/** Tuning; every time is in ticks of the shell's clock. */
export interface RaftOptions {
  /** Followers start an election after a randomized timeout in [electionTicks, 2 * electionTicks). */
  electionTicks: number
  /** A leader sends heartbeats every `heartbeatTicks`. Must be below `electionTicks`. */
  heartbeatTicks: number
  /** Ask for permission (pre-vote) before raising the term. Default true. */
  preVote: boolean
  /** A leader that has not heard from a quorum within an election timeout steps down. Default true. */
  checkQuorum: boolean
  /** Most entries bytes in one append message (at least one entry is always sent). */
  maxMessageBytes: number
  /** Most append messages in flight to one follower before waiting for acknowledgements. */
  maxInflightMessages: number
  /** Most entry bytes in flight to one follower. */
  maxInflightBytes: number
  /** Size of one InstallSnapshot chunk. */
  snapshotChunkBytes: number
  /**
   * Most InstallSnapshot chunks sent to one follower ahead of its acknowledgement (default 16: 4 MiB at the
   * default chunk size); a follower keeps as many that arrive out of order. One chunk a round trip would make
   * a state of many chunks take as many round trips to reach a new or lagging member.
   */
  maxInflightSnapshotChunks: number
  /**
   * Most uncommitted entry bytes the leader accepts before `propose` throws `ProposalDroppedError` (one entry
   * larger than this is accepted alone, when nothing else is uncommitted). A refused proposal keeps its place
   * in line while it is retried (within an election timeout), so a large one is not starved by small ones.
   */
  maxUncommittedBytes: number
}

export interface Progress {
  match: number
  next: number
  state: 'probe' | 'replicate' | 'snapshot'
  /** Whether the follower answered within the current check-quorum window. */
  recentActive: boolean
}

export interface RaftStatus {
  id: NodeId
  role: Role
  term: number
  vote: NodeId
  leader: NodeId
  commit: number
  applied: number
  lastIndex: number
  config: Config
  /** Per-peer replication state; only on the leader. */
  progress?: Record<NodeId, Progress>
  /** A leadership transfer in progress, on the leader. */
  transferee?: NodeId
}

/**
 * The core's surface, implemented by `RaftNode` in `raft.ts` (`new RaftNode(init: RaftInit)`).
 * Methods that need leadership throw `NotLeaderError` (from `errors.ts`) on other nodes; the shell forwards.
 */
export interface RaftCore {
  readonly id: NodeId
  /** Advance logical time by one tick. */
  tick(): void
  /** Handle a message from a peer. Messages of stale terms or from unknown peers are handled as Raft says. */
  step(message: Message): void
  /**
   * Append application data on the leader. The entry commits if a later Ready lists it in `committed`.
   * `origin`: the follower that forwarded it, which then learns of its commit from its peers (`notify`).
   * `waiter`: the proposal's identity across retries (the same on each), so that one refused for
   * `maxUncommittedBytes` keeps its place in line however its data changes between tries.
   */
  propose(data: Uint8Array, origin?: NodeId, waiter?: string): { index: number; term: number }
  /** Change membership by one server; throws if a change is still uncommitted or the change is invalid. */
  proposeConfigChange(change: ConfigChange): { index: number; term: number }
  /** Hand leadership to `to` (a voter): catch it up, then send it TimeoutNow. */
  transferLeadership(to: NodeId): void
  /** Ask for a linearizable read point; answered by a `ReadState` with the same context in a later Ready. */
  readIndex(context: ReadContext): void
  /** Start an election now (pre-vote first when enabled). Ignored on non-voters. */
  campaign(): void
  /**
   * The application's snapshot at `index` (<= applied): the log before it may be discarded. Returns the
   * snapshot with its meta (term and configuration at `index`) for the shell to persist, or undefined when the
   * log is already compacted that far. It never comes back in a Ready.
   */
  compact(index: number, data: Uint8Array): Snapshot | undefined
  hasReady(): boolean
  /** The pending batch. Proposals since the last Ready go out batched in as few appends as the limits allow. */
  ready(): Ready
  /** Acknowledge that `ready` was handled as its documentation says. */
  advance(ready: Ready): void
  status(): RaftStatus
  /**
   * The term of the entry at `index` in this node's log (the snapshot's term at its index), or undefined when
   * the log does not hold it (compacted, or past its end): a shell tells by it that another leader's entries
   * replaced a proposal's.
   */
  termAt(index: number): number | undefined
}
