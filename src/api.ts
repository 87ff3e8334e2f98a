/**
 * The public API contract of conclave (`API.md` at the repository root, kept equal to the shared contract by
 * `test/api-contract.test.ts`): names and shapes that programs outside this repository are written against.
 * Add freely; rename nothing.
 *
 * Conventions that hold for every member below:
 * - Durations and TTLs are in milliseconds; instants are `Date`s.
 * - Values (KV values, task payloads and results) are JSON data: anything else is an `InvalidArgumentError`.
 * - Bad input (an empty key, a ttl <= 0, an unknown option) is an `InvalidArgumentError` thrown before
 *   anything is sent: nothing is written.
 * - An aborted `signal` rejects with `AbortError`; a stopped agent with `ClosedError`. Without a signal, an
 *   operation that needs the cluster gives up after the agent's `operationTimeoutMs` (default 10 s) with
 *   `NoLeaderError`, which means the write may or may not have taken effect.
 * - A write that resolves is committed on a quorum of voters, and every later read on any agent sees it.
 */
import type { Libp2p } from '@libp2p/interface'
import type { SvidRotation } from './security/options.ts'

/** The options every operation takes: a signal to give up early. */
export interface Abortable {
  /**
   * Aborting it rejects the pending call with `AbortError`. A write already sent may still commit: the
   * caller then does not learn its outcome (as with `NoLeaderError`).
   */
  signal?: AbortSignal
}

/** How `Coordinator.join` finds or founds a cluster. */
export interface ClusterConfig {
  /** Multiaddrs of any existing members (with /p2p/<peerId>); empty = found a new cluster. */
  bootstrap?: string[]
  /**
   * Target size of the Raft voter set (default 3, odd, max 7); other agents are non-voters. Only the founding
   * agent's value counts: it is committed to the replicated state, and every later leader keeps to it.
   */
  voters?: number
  /** Refuse to join a cluster with another id. */
  clusterId?: string
  /**
   * Non-voting replicas kept ready to be promoted (default 2, at most 16). The voters and these hold the
   * Raft log; every other agent is a member, with the whole API but no log. The leader's value counts.
   */
  standbys?: number
  /**
   * How many finished tasks (completed, dead, expired, cancelled) the cluster keeps for status queries
   * before it forgets the oldest (default 10,000; an integer from 0 to 1,000,000). Only the founding
   * agent's value counts: it is committed to the replicated state, so every replica keeps the same tasks.
   */
  maxFinishedTasks?: number
}

/** Membership of the cluster: joining, leaving, and who is in it. */
export interface Coordinator {
  /**
   * Founds a cluster (no `bootstrap`) or joins one through any of the given members, then resolves once this
   * agent is a member with a session, ready for the other calls. A joining agent starts as a non-voter and
   * is promoted while the voter set is below its target. Called again on a member, it only dials the given
   * addresses. Throws `InvalidArgumentError` for malformed multiaddrs, an even or out-of-range `voters`, or a
   * `clusterId` other than the cluster's; `NoLeaderError` when no bootstrap member could add this agent in
   * time.
   */
  join(config: ClusterConfig, options?: Abortable): Promise<void>
  /**
   * Leaves the cluster for good: hands off leadership if this agent leads, ends its session (its locks are
   * released and its named-election candidacies withdrawn), and has the leader remove it from the
   * configuration. A no-op if the agent never joined. `NoLeaderError` if no leader removed it in time.
   */
  leave(options?: Abortable): Promise<void>
  /**
   * Every voter and non-voter of the configuration as this agent knows it (a local view: no round trip, and
   * it may trail the leader's by a moment), with liveness, load and last contact from the membership
   * protocol.
   */
  members(options?: Abortable): Promise<AgentInfo[]>
  /** undefined while no leader is known. The leader this agent last heard from; no round trip. */
  leader(options?: Abortable): Promise<AgentInfo | undefined>
  /** Whether this agent is the Raft leader now, as far as it knows (a deposed leader learns it late). */
  isLeader(): boolean
}

/** One member of the cluster, as `members()` and `leader()` describe it. */
export interface AgentInfo {
  /** The libp2p peer id string: stable across restarts on the same `dataDir`. */
  id: string
  /** The agent's human label (`AgentOptions.name`; default the short peer id). */
  name: string
  /** Multiaddrs it can be reached at, each ending in `/p2p/<id>`. */
  addrs: string[]
  /** What it can run, matched against `TaskConstraints.requiredCapabilities`. */
  capabilities: string[]
  /** Free-form labels from `AgentOptions.labels`. */
  labels: Record<string, string>
  /** Whether it votes in Raft (and can become the cluster leader) or only replicates. */
  role: 'voter' | 'nonvoter'
  /**
   * Liveness in the membership protocol (SWIM): `suspect` is not yet confirmed dead, `left` departed on
   * purpose with `leave()`.
   */
  status: 'alive' | 'suspect' | 'dead' | 'left'
  /** 0..1, share of this agent's task slots in use. */
  load: number
  /** When this agent last heard from it (directly or through the membership protocol). */
  lastSeen: Date
  /** The member's verified SPIFFE ID, when SPIFFE identities are on (`security` option). */
  spiffeId?: string
  /** Whether it holds the Raft log (a voter or a standby); a member (false) is fed by a replica. */
  replica: boolean
}

/**
 * A leader election: `agent.election` (the cluster's Raft leadership itself) or `agent.elections(name)` (a
 * named election, held in the replicated state, that any agent can stand in; its leader holds it through its
 * session, so a leader that stops or is cut off past its session TTL loses it to the next candidate).
 */
export interface LeaderElection {
  /**
   * Resolves once this agent leads; rejects if aborted. For a named election, candidates are served first
   * come first served, and an aborted campaign withdraws the candidacy; `value` (JSON data, converted as
   * `JSON.stringify` converts it) is the value it leads with, seen by every watcher (named elections only).
   * For `agent.election`, it asks the leader to transfer leadership here; `NotVoterError` on a non-voter.
   */
  campaign(options?: Abortable & { value?: unknown }): Promise<void>
  /**
   * Hands leadership to another candidate; no-op if not leader. For `agent.election` it resolves once
   * another voter leads (or none can); for a named election, once the resignation is committed.
   */
  resign(options?: Abortable): Promise<void>
  /**
   * Current leader first, then every change. The iterator ends when the signal aborts or the agent stops;
   * leave it early with `break` or `return()`. Named-election watches count toward the agent's watch limit
   * (`LimitExceededError` when reached). `buffer` (default 1,000): most events waiting for the consumer;
   * leader changes keep no history, so one that falls that far behind gets `CompactedError`: watch again.
   */
  watch(options?: Abortable & { buffer?: number }): AsyncIterable<LeaderEvent>
  /** Raft term for `agent.election`; for named elections a number that increases with every new leader. */
  term(): number
  /**
   * Sets the leader's value (etcd's Proclaim), seen by every watcher as a `changed` event of the same leader
   * and term. Only the current leader may: else `NotLeaderError`, and nothing changes.
   */
  proclaim(value: unknown, options?: Abortable): Promise<void>
}

/** A change of leader, as `LeaderElection.watch` yields it. */
export interface LeaderEvent {
  /** `elected`: a leader after none; `resigned`: none after a leader; `changed`: one leader after another. */
  type: 'elected' | 'resigned' | 'changed'
  /** The new leader's agent id (for `resigned`, the one that stepped down). */
  leaderId: string
  /** The election's term after the change (see `LeaderElection.term`). */
  term: number
  /**
   * When the change happened: for a named election the time of its entry (the leader's clock); for Raft
   * leadership, when this agent saw it. The first event (the leader at the start of the watch) is stamped then.
   */
  timestamp: Date
  /** The leader's value (its campaign value or last proclaim), if it has one. */
  value?: unknown
}

/**
 * Tasks run by agents: at most one live attempt per task, results accepted only from the current attempt,
 * retries, deadlines and timeouts decided by the cluster leader and recorded in the log.
 */
export interface TaskDistributor {
  /**
   * id generated when absent. Resolves once the task is committed, with its defaults filled in.
   * `InvalidArgumentError` for a malformed task or an id that already exists.
   */
  submit(task: TaskInput, options?: Abortable): Promise<DistributedTask>
  /**
   * This agent starts running it. A task assigned to another agent and not yet started is taken over.
   * `NotFoundError` for an unknown task; `NotClaimableError` when this agent may not run it (constraints) or
   * the task is running, waiting out a retry, or finished.
   */
  claim(taskId: string, options?: Abortable): Promise<ClaimedTask>
  /**
   * Ends this agent's current attempt with `result` (JSON data; `undefined` is stored as `null`).
   * `StaleAttemptError` if this agent holds no current attempt of the task (it timed out, was stolen or
   * failed meanwhile); `NotFoundError` for an unknown task.
   */
  complete(taskId: string, result: unknown, options?: Abortable): Promise<void>
  /**
   * Ends this agent's current attempt as failed: the task is retried (state `failed`, then `pending`) while
   * retries remain, else it is `dead`. Same errors as `complete`.
   */
  fail(taskId: string, error: Error | string, options?: Abortable): Promise<void>
  /**
   * The task's state, linearizable (it reflects every change acknowledged before the call). `NotFoundError`
   * for an unknown task, or a finished one no longer retained.
   */
  status(taskId: string, options?: Abortable): Promise<TaskStatus>
  /**
   * Waits for and claims the best task this agent may run: highest priority first, then the earliest
   * submitted, among those whose constraints it meets, while it has a free slot (`AgentOptions.concurrency`).
   * Aborting the signal ends the wait with `AbortError`.
   */
  next(options?: Abortable): Promise<ClaimedTask>
  /**
   * The worker loop: next() -> handler -> complete(result) or fail(error); the handler gets task.signal.
   * Runs `concurrency` loops at once (default: the agent's `concurrency`); a handler that throws, or resolves
   * with a value that is not JSON data, fails its attempt. Stops when `close()` is called or the signal
   * aborts.
   */
  process(
    handler: (task: ClaimedTask) => Promise<unknown>,
    options?: Abortable & { concurrency?: number },
  ): TaskWorker
  /**
   * pending/assigned/waiting/failed -> 'cancelled' at once; running -> its attempt's signal aborts and the
   * task is 'cancelled' (a later complete from that attempt: StaleAttemptError); completed/dead/expired/
   * cancelled: no-op. On the id of a repeating task, no more occurrences are created.
   */
  cancel(taskId: string, options?: Abortable & { reason?: string }): Promise<void>
  /** In submission order; `after` = last id seen. */
  list(
    filter?: TaskFilter,
    options?: Abortable & { limit?: number; after?: string },
  ): Promise<{ tasks: TaskStatus[]; more: boolean }>
  /**
   * An event per transition and per progress update, in order; resumable from a revision. `buffer` as for
   * `ConsensusProtocol.watch` (default 1,000 events), caught up from the retained task changes.
   */
  watch(
    filter?: TaskFilter,
    options?: Abortable & { fromRevision?: number; buffer?: number },
  ): AsyncIterable<TaskEvent>
  /** No new attempts start (of that type, or of any); running ones go on. */
  pause(type?: string, options?: Abortable): Promise<void>
  /** Undoes `pause` for that type (without one: every pause, of all types and of each type). */
  resume(type?: string, options?: Abortable): Promise<void>
  /**
   * Sets how many finished tasks the cluster keeps before it forgets the oldest (an integer from 0 to
   * 1,000,000; the founder's `join({ maxFinishedTasks })` or 10,000 until set): a replicated setting, the same
   * on every agent. `InvalidArgumentError` for a bad value, with nothing changed.
   */
  setMaxFinishedTasks(maxFinishedTasks: number, options?: Abortable): Promise<void>
}

/** Stop claiming, wait for running handlers (as BullMQ does). */
export interface TaskWorker {
  /** Claims nothing more, and resolves once every running handler has returned and its outcome was sent. */
  close(): Promise<void>
}

/** A task to submit. Unknown fields are an `InvalidArgumentError`. */
export interface TaskInput {
  /** Unique in the cluster; default a random UUID. */
  id?: string
  /** What kind of work it is, for the handler to dispatch on. */
  type: string
  /** Higher runs first; default 0. */
  priority?: number
  /** The task's input, a plain object of JSON data; default `{}`. */
  payload?: Record<string, unknown>
  /** Who may run it and how often it is retried; see `TaskConstraints` for the defaults. */
  constraints?: Partial<TaskConstraints>
  /** Not completed by then => 'expired'. */
  deadline?: Date
  /** Not started before then (delay = runAt - now). */
  runAt?: Date
  /**
   * Task ids; starts after all completed; if one ends dead/expired/cancelled, this one is 'cancelled' with a
   * reason naming it.
   */
  dependsOn?: string[]
  /**
   * A repeating task: each occurrence is a task of its own, id `${id}:${slot}`, created exactly once per slot
   * cluster-wide. `every` ms (at least 10), or a `cron` expression read in `timezone` (default UTC).
   */
  repeat?: { every?: number; cron?: string; timezone?: string; limit?: number }
  /** Default exponential 1 s, max 300 s. */
  backoff?: { type: 'fixed' | 'exponential'; delay: number; maxDelay?: number }
  /**
   * Ms to keep this task's status once finished (default 24 h); whatever the ages, the cluster keeps a
   * bounded number of finished tasks (default 10,000), dropping the oldest first.
   */
  retention?: { completed?: number; failed?: number }
}

/** A task as submitted, with its defaults filled in. */
export interface DistributedTask {
  /** Unique in the cluster: the submitted id, or the generated UUID. */
  id: string
  /** What kind of work it is. */
  type: string
  /** Higher runs first. */
  priority: number
  /** The task's input, as JSON carried it (a copy). */
  payload: Record<string, unknown>
  /** With every default filled in. */
  constraints: TaskConstraints
  /** When the cluster accepted it (the leader's clock). */
  createdAt: Date
  /** Not completed by then => 'expired'. */
  deadline?: Date
}

/** Who may run a task, and how its attempts are bounded. */
export interface TaskConstraints {
  /** The agent must have all of them. */
  requiredCapabilities: string[]
  /** Ids or names, tried first. */
  preferredAgents?: string[]
  /** Ids or names, never assigned. */
  excludeAgents?: string[]
  /** Retries after the first attempt (default 3). */
  maxRetries: number
  /**
   * Ms one attempt may run before it counts as failed (0 = none). The agent running the attempt aborts its
   * `signal` on its own monotonic clock at the send of its claim + `timeout` − a drift margin
   * (`leaseSafetyMarginMs`: by default the larger of 50 ms and 10 % of the timeout, at most half of it), and
   * from then on refuses its `complete` and `fail` (`StaleAttemptError`); the leader fails the attempt, and may
   * retry it, only once a full `timeout` has passed on its monotonic clock since it saw the attempt start.
   * So the abort comes no later than the leader's timeout and the retry no earlier: never two live attempts.
   */
  timeout: number
  /** Tasks with the same key prefer the agent that ran the last one. */
  affinity?: string
}

/** A task this agent is running: one attempt of it. */
export interface ClaimedTask extends DistributedTask {
  /** 1 for the first attempt, one more for each later one. */
  attempt: number
  /**
   * Strictly increases with every attempt of this task (it is the index of the log entry that started the
   * attempt): pass it to whatever the handler writes to, so that a write from a superseded attempt can be
   * refused there.
   */
  fencingToken: bigint
  /** Aborts when this attempt is no longer this agent's (timeout, deadline, stolen, cancelled). */
  signal: AbortSignal
  /** Reports progress (JSON data) of this attempt; StaleAttemptError once it is no longer current. */
  progress(value: unknown, options?: Abortable): Promise<void>
}

/** Where a task stands, as `status()` returns it. */
export interface TaskStatus {
  /** The task's id. */
  id: string
  /** 'failed' = an attempt failed and a retry is due; 'dead' = retries exhausted. */
  state: TaskState
  /** The agent running it, or that ran the last attempt. */
  assignee?: string
  /** The current (or last) attempt; 0 before the first. */
  attempt: number
  /** What the handler returned, once `completed`. */
  result?: unknown
  /** The last failure's message. */
  error?: string
  /** When the state last changed (the leader's clock). */
  updatedAt: Date
  /** The task's type. */
  type: string
  /** Higher runs first. */
  priority: number
  /** The last progress the current (or last) attempt reported. */
  progress?: unknown
  /** When it was submitted (the leader's clock). */
  createdAt: Date
  /** Not started before then. */
  runAt?: Date
  /** The tasks it waits for. */
  dependsOn?: string[]
  /** Why it was cancelled (the caller's reason, or the dependency that ended). */
  cancelReason?: string
}

/**
 * Distributed locks bound to the agent's session: a lock is released when its TTL runs out unextended, when
 * it is released, or when the session ends (the agent stops or is cut off from the cluster).
 */
export interface DistributedLock {
  /**
   * Waits, first come first served. Resolves with the lock held for `ttl` ms (from the call, or from the
   * grant when it had to wait); aborting the signal leaves the queue. `InvalidArgumentError` for an empty key or a ttl that is not a positive number
   * of ms (at most 2^31 - 1).
   */
  acquire(key: string, ttl: number, options?: Abortable): Promise<Lock>
  /** Takes the lock if it is free now, without waiting: `acquired` false (and no lock) if someone holds it. */
  tryAcquire(
    key: string,
    ttl: number,
    options?: Abortable,
  ): Promise<{ lock: Lock | undefined; acquired: boolean }>
  /**
   * A semaphore: at most `permits` (an integer >= 1) holders of `key` at once, FIFO. A key in use with
   * another permit count (a lock is one permit) is an `InvalidArgumentError`.
   */
  semaphore(key: string, permits: number): Semaphore
}

/** At most `permits` holders at once; each permit is a `Lock` with its own fencing token. */
export interface Semaphore {
  /**
   * Waits, first come first served, for a permit held for `ttl` ms (renewed by `extend`); the permit is a
   * `Lock` with its own fencing token. `InvalidArgumentError` for a bad ttl, or when the key is already used
   * with another permit count.
   */
  acquire(ttl: number, options?: Abortable): Promise<Lock>
  /** Takes a permit if one is free now, without waiting: `acquired: false` and no lock otherwise. */
  tryAcquire(ttl: number, options?: Abortable): Promise<{ lock: Lock | undefined; acquired: boolean }>
}

/** A held lock. */
export interface Lock {
  /** The key it locks. */
  readonly key: string
  /** Strictly increases with every grant of this key, cluster-wide. */
  readonly fencingToken: bigint
  /** Aborts when the lock expires or is taken away. */
  readonly lost: AbortSignal
  /**
   * Rejects once the lock is lost (`LockLostError`; `lost` aborts then). Otherwise renews it for `ttl` ms
   * from the call.
   */
  extend(ttl: number, options?: Abortable): Promise<void>
  /** Gives the lock to the next waiter. Idempotent; resolves also when the lock was already lost. */
  release(options?: Abortable): Promise<void>
  /**
   * False as soon as it may no longer be held (never a false true). It turns false a safety margin before the
   * cluster could grant the lock to anyone else, measured on this agent's monotonic clock. This holds for any
   * wall-clock offsets and steps, as long as the leader's monotonic clock runs no more than about 11 % faster
   * than this agent's (README, Guarantees).
   */
  isHeld(): boolean
}

/**
 * A key-value store replicated by Raft, in the manner of etcd: every write bumps one cluster-wide
 * revision. Keys are non-empty strings of at most 1024 UTF-16 code units; values are JSON data of at most
 * 1 MiB as JSON text.
 */
export interface ConsensusProtocol {
  /**
   * Committed on a quorum when it resolves; value is JSON data, converted as `JSON.stringify` converts it.
   * Resolves with the revision of the write. With `expectedRevision`, it writes only if the key was last
   * written at that revision (0 = the key must not exist), else `RevisionMismatchError` and nothing is
   * written. `ephemeral`: the key is deleted when this agent's session ends (it stops, dies or is declared
   * dead).
   */
  propose(
    key: string,
    value: unknown,
    options?: Abortable & { expectedRevision?: number; ephemeral?: boolean },
  ): Promise<{ revision: number }>
  /**
   * The key's value (a copy), or undefined if absent. `linearizable` (default) reflects every write
   * acknowledged before the call, on any agent (a ReadIndex round with the leader); `local` reads this
   * agent's replica at once and may be stale.
   */
  get(
    key: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local' },
  ): Promise<unknown | undefined>
  /**
   * Every change under `prefix` ('' for all keys) in revision order, never skipping or repeating one: from
   * `fromRevision` if given (replayed from the retained history; `CompactedError` if it no longer reaches
   * back), else from the next write. Ends when the signal aborts or the agent stops. `LimitExceededError`
   * when the agent's watch limit is reached. `prevValue`: events carry the value before the change.
   * `buffer` (default 1,000): most events waiting for the consumer; one that falls behind reads on from the
   * retained history, and one that falls behind that gets `CompactedError` with `resumeRevision`.
   */
  watch(
    prefix: string,
    options?: Abortable & { fromRevision?: number; prevValue?: boolean; buffer?: number },
  ): AsyncIterable<ConsensusEvent>
  /**
   * Deletes the key; `expectedRevision` as for `propose`. Deleting an absent key changes nothing and
   * resolves with the current revision.
   */
  delete(key: string, options?: Abortable & { expectedRevision?: number }): Promise<{ revision: number }>
  /** The key with its revisions, version and owner. */
  getEntry(
    key: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local' },
  ): Promise<KvEntry | undefined>
  /**
   * Keys under `prefix` ('' for all) in byte order, at most `limit` (default 1,000, at most 10,000) after the
   * key `after`, read at one revision; `more` says whether more follow (pass the last key as `after`).
   */
  list(
    prefix: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local'; limit?: number; after?: string },
  ): Promise<{ entries: KvEntry[]; revision: number; more: boolean }>
  /** etcd's Txn: all or nothing, at one revision. */
  transaction(request: TxnRequest, options?: Abortable): Promise<{ succeeded: boolean; revision: number }>
}

/** One change of the key-value store, as `watch` yields it. */
export interface ConsensusEvent {
  /** A write (`propose`) or a delete of an existing key. */
  type: 'put' | 'delete'
  /** The key changed. */
  key: string
  /** The value written; absent for a delete. */
  value?: unknown
  /** The revision of the write: strictly increasing along a watch. */
  revision: number
  /** When the write was applied (the leader's clock). */
  timestamp: Date
  /** The value before the change, when the watch asked for `prevValue` (absent if the key did not exist). */
  prevValue?: unknown
}

/** A key with its value and history counters, as `getEntry` and `list` return it (etcd's KeyValue). */
export interface KvEntry {
  /** The key. */
  key: string
  /** Its value (a copy): JSON data. */
  value: unknown
  /** The revision of the key's last put (its modRevision). */
  revision: number
  /** The revision of the put that created the key (after its last delete). */
  createRevision: number
  /** Puts since the key was created. */
  version: number
  /** Deleted when its owner's session ends. */
  ephemeral: boolean
  /** Agent id of an ephemeral key's owner. */
  owner?: string
}

/**
 * If every compare holds, `success` applies, else `failure`; all of it at one revision, or nothing. At most
 * 128 compares and 128 ops per branch, at least one op, no key written twice in a branch.
 */
export interface TxnRequest {
  /** All must hold for `success` to apply. */
  compare: TxnCompare[]
  /** Applied when every compare holds. */
  success: TxnOp[]
  /** Applied otherwise (nothing when absent). */
  failure?: TxnOp[]
}

/**
 * `value` is JSON data for `target: 'value'` (a compare on an absent key's value never holds; `<` and `>`
 * order two numbers or two strings), an integer for the revisions and `version` (0 for an absent key), a
 * boolean for `exists` (`==` or `!=` only).
 */
export interface TxnCompare {
  /** The key compared. */
  key: string
  /** What of the key is compared. */
  target: 'value' | 'revision' | 'createRevision' | 'version' | 'exists'
  /** How it is compared with `value`. */
  op: '==' | '!=' | '<' | '>'
  /** What it is compared with. */
  value: unknown
}

/** One write of a transaction branch: a put (optionally ephemeral), a delete, or the delete of a prefix. */
export type TxnOp =
  | { type: 'put'; key: string; value: unknown; ephemeral?: boolean }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }

/** Moving queued tasks from busy agents to idle ones. */
export interface WorkStealer {
  /**
   * Idle agents steal automatically from busy ones. Turns automatic stealing on for this agent, until it
   * stops or the signal aborts. Idempotent.
   */
  enable(options?: Abortable): Promise<void>
  /**
   * Moves one task assigned to `targetAgent` (id or name) and not yet running to this agent, if this agent
   * may run it and has a free slot: the best such task. Undefined if there is none. `NotFoundError` for an
   * unknown agent.
   */
  steal(targetAgent: string, options?: Abortable): Promise<DistributedTask | undefined>
  /** Publish surplus work to idle agents. A hint, nothing more: no task changes hands by it. */
  offer(task: DistributedTask, options?: Abortable): Promise<void>
}

/** The cluster's health as this agent sees it (`Agent.health()`). */
export interface ClusterHealth {
  /** A leader is known and a majority of the voters is alive. */
  healthy: boolean
  /** Voters and non-voters in the configuration. */
  memberCount: number
  /** Members whose status is `alive`. */
  healthyCount: number
  /** Leader id, '' if none. */
  leader: string
  /** One entry per member of the configuration. */
  members: MemberHealth[]
  /**
   * The command-set version the cluster runs: the leader raises it once every replica supports more, and
   * refuses newer commands below it with `UnsupportedVersionError` (see the README's rolling upgrades).
   */
  clusterVersion: number
}

/** One member in `ClusterHealth`. */
export interface MemberHealth {
  /** The member's agent id (libp2p peer id). */
  id: string
  /** Its status is `alive`. */
  healthy: boolean
  /** When this agent last heard from it. */
  lastSeen: Date
  /** 0..1, share of its task slots in use. */
  load: number
}

/** The members an agent and the libp2p service share. */
export interface ConclaveApi extends Coordinator {
  /** libp2p peer id string. */
  readonly id: string
  /** The human label: `AgentOptions.name`, default the short peer id. */
  readonly name: string
  /** Where others can reach it, each ending in /p2p/<id>: pass as bootstrap. */
  multiaddrs(): string[]
  /** The cluster (Raft) leadership. */
  readonly election: LeaderElection
  /** A named election any agent can campaign in. `InvalidArgumentError` for an empty name. */
  elections(name: string): LeaderElection
  /** Submitting, claiming and running tasks. */
  readonly tasks: TaskDistributor
  /** Distributed locks with fencing tokens. */
  readonly locks: DistributedLock
  /** The replicated key-value store. */
  readonly consensus: ConsensusProtocol
  /** Moving queued tasks to idle agents. */
  readonly workStealing: WorkStealer
  /** Membership, liveness and load of every member, and whether a leader and a voter majority are up. */
  health(options?: Abortable): Promise<ClusterHealth>
  /**
   * Rotates this agent to a renewed X509-SVID (same SPIFFE ID) and, if given, renewed trust bundles,
   * without a restart: checked first (`InvalidArgumentError` for a bad file, another SPIFFE ID, an SVID
   * the bundles do not validate, or identities off; nothing changes then), then proved to every
   * authenticated peer before it resolves, so none drops this agent when the old SVID expires. See also
   * `security.reloadIntervalMs`.
   */
  rotateSvid(rotation: SvidRotation): Promise<void>
}

/** An agent made by `createAgent`: conclave on a libp2p node of its own. */
export interface Agent extends ConclaveApi {
  /** The node it runs on. */
  readonly libp2p: Libp2p
  /**
   * Shut down without leaving: flush storage, close streams, stop libp2p; a restart on the same dataDir
   * rejoins as the same member. leave() first to depart for good. Idempotent.
   */
  stop(): Promise<void>
}

/**
 * Where a task is: `waiting` = delayed (its `runAt` is in the future) or waiting for dependencies; `failed` =
 * an attempt failed and a retry is due; `dead` = retries exhausted; `cancelled` on request, or because a
 * dependency ended dead, expired or cancelled.
 */
export type TaskState =
  | 'waiting'
  | 'pending'
  | 'assigned'
  | 'running'
  | 'completed'
  | 'failed'
  | 'dead'
  | 'expired'
  | 'cancelled'

/** Which tasks `list` and `watch` cover; every field given must match. */
export interface TaskFilter {
  /** One task. */
  id?: string
  /** Tasks of this type. */
  type?: string
  /** Tasks in this state, or in any of these. */
  state?: TaskState | TaskState[]
  /** Agent id. */
  assignee?: string
}

/** One transition of a task, or a progress update; `revision` numbers them cluster-wide, with no gap. */
export interface TaskEvent {
  /** What happened. */
  type:
    | 'submitted'
    | 'waiting'
    | 'pending'
    | 'assigned'
    | 'started'
    | 'progress'
    | 'completed'
    | 'failed'
    | 'retrying'
    | 'dead'
    | 'expired'
    | 'cancelled'
  /** The task's id. */
  taskId: string
  /** The task's type. */
  taskType: string
  /** The attempt it concerns (0 before the first). */
  attempt: number
  /** The agent it is assigned to or runs on. */
  assignee?: string
  /** For `progress`: what the attempt reported. */
  progress?: unknown
  /** For `completed`: what the handler returned. */
  result?: unknown
  /** For `failed`, `retrying`, `dead`: the failure's message. */
  error?: string
  /** Numbers the task events cluster-wide with no gap; `watch(filter, { fromRevision })` resumes from one. */
  revision: number
  /** When it happened (the leader's clock). */
  timestamp: Date
}
