/**
 * The public API contract of conclave (`../shared/API.md`): names and shapes that programs outside this
 * repository are written against. Add freely; rename nothing.
 */
import type { Libp2p } from '@libp2p/interface'
import type { SvidRotation } from './security/options.ts'

export interface Abortable {
  signal?: AbortSignal
}

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
}

export interface Coordinator {
  join(config: ClusterConfig, options?: Abortable): Promise<void>
  leave(options?: Abortable): Promise<void>
  members(options?: Abortable): Promise<AgentInfo[]>
  /** undefined while no leader is known. */
  leader(options?: Abortable): Promise<AgentInfo | undefined>
  isLeader(): boolean
}

export interface AgentInfo {
  id: string
  name: string
  addrs: string[]
  capabilities: string[]
  labels: Record<string, string>
  role: 'voter' | 'nonvoter'
  status: 'alive' | 'suspect' | 'dead' | 'left'
  /** 0..1, share of this agent's task slots in use. */
  load: number
  lastSeen: Date
  /** The member's verified SPIFFE ID, when SPIFFE identities are on (`security` option). */
  spiffeId?: string
}

export interface LeaderElection {
  /** Resolves once this agent leads; rejects if aborted. */
  campaign(options?: Abortable): Promise<void>
  /** Hands leadership to another candidate; no-op if not leader. */
  resign(options?: Abortable): Promise<void>
  /** Current leader first, then every change. */
  watch(options?: Abortable): AsyncIterable<LeaderEvent>
  /** Raft term for `agent.election`; for named elections a number that increases with every new leader. */
  term(): number
}

export interface LeaderEvent {
  type: 'elected' | 'resigned' | 'changed'
  leaderId: string
  term: number
  timestamp: Date
}

export interface TaskDistributor {
  /** id generated when absent. */
  submit(task: TaskInput, options?: Abortable): Promise<DistributedTask>
  /** This agent starts running it. */
  claim(taskId: string, options?: Abortable): Promise<ClaimedTask>
  complete(taskId: string, result: unknown, options?: Abortable): Promise<void>
  fail(taskId: string, error: Error | string, options?: Abortable): Promise<void>
  status(taskId: string, options?: Abortable): Promise<TaskStatus>
  /** Waits for and claims the best task this agent may run. */
  next(options?: Abortable): Promise<ClaimedTask>
  /** The worker loop: next() -> handler -> complete(result) or fail(error); the handler gets task.signal. */
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
  /** An event per transition and per progress update, in order; resumable from a revision. */
  watch(filter?: TaskFilter, options?: Abortable & { fromRevision?: number }): AsyncIterable<TaskEvent>
  /** No new attempts start (of that type, or of any); running ones go on. */
  pause(type?: string, options?: Abortable): Promise<void>
  resume(type?: string, options?: Abortable): Promise<void>
}

/** Stop claiming, wait for running handlers (as BullMQ does). */
export interface TaskWorker {
  close(): Promise<void>
}

export interface TaskInput {
  id?: string
  type: string
  /** Higher runs first; default 0. */
  priority?: number
  payload?: Record<string, unknown>
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

export interface DistributedTask {
  id: string
  type: string
  priority: number
  payload: Record<string, unknown>
  constraints: TaskConstraints
  createdAt: Date
  deadline?: Date
}

export interface TaskConstraints {
  /** The agent must have all of them. */
  requiredCapabilities: string[]
  /** Ids or names, tried first. */
  preferredAgents?: string[]
  /** Ids or names, never assigned. */
  excludeAgents?: string[]
  /** Retries after the first attempt (default 3). */
  maxRetries: number
  /** Ms one attempt may run before it counts as failed (0 = none). */
  timeout: number
  /** Tasks with the same key prefer the agent that ran the last one. */
  affinity?: string
}

export interface ClaimedTask extends DistributedTask {
  attempt: number
  fencingToken: bigint
  /** Aborts when this attempt is no longer this agent's (timeout, deadline, stolen, cancelled). */
  signal: AbortSignal
  /** Reports progress (JSON data) of this attempt; StaleAttemptError once it is no longer current. */
  progress(value: unknown, options?: Abortable): Promise<void>
}

export interface TaskStatus {
  id: string
  /** 'failed' = an attempt failed and a retry is due; 'dead' = retries exhausted. */
  state: TaskState
  assignee?: string
  attempt: number
  result?: unknown
  error?: string
  updatedAt: Date
  type: string
  priority: number
  progress?: unknown
  createdAt: Date
  runAt?: Date
  dependsOn?: string[]
  cancelReason?: string
}

export interface DistributedLock {
  /** Waits, first come first served. */
  acquire(key: string, ttl: number, options?: Abortable): Promise<Lock>
  tryAcquire(
    key: string,
    ttl: number,
    options?: Abortable,
  ): Promise<{ lock: Lock | undefined; acquired: boolean }>
}

export interface Lock {
  readonly key: string
  /** Strictly increases with every grant of this key, cluster-wide. */
  readonly fencingToken: bigint
  /** Aborts when the lock expires or is taken away. */
  readonly lost: AbortSignal
  /** Rejects once the lock is lost. */
  extend(ttl: number, options?: Abortable): Promise<void>
  release(options?: Abortable): Promise<void>
  /** False as soon as it may no longer be held (never a false true). */
  isHeld(): boolean
}

export interface ConsensusProtocol {
  /** Committed on a quorum when it resolves; value is JSON data. */
  propose(
    key: string,
    value: unknown,
    options?: Abortable & { expectedRevision?: number },
  ): Promise<{ revision: number }>
  get(
    key: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local' },
  ): Promise<unknown | undefined>
  watch(prefix: string, options?: Abortable & { fromRevision?: number }): AsyncIterable<ConsensusEvent>
  delete(key: string, options?: Abortable & { expectedRevision?: number }): Promise<{ revision: number }>
}

export interface ConsensusEvent {
  type: 'put' | 'delete'
  key: string
  value?: unknown
  revision: number
  timestamp: Date
}

export interface WorkStealer {
  /** Idle agents steal automatically from busy ones. */
  enable(options?: Abortable): Promise<void>
  steal(targetAgent: string, options?: Abortable): Promise<DistributedTask | undefined>
  /** Publish surplus work to idle agents. */
  offer(task: DistributedTask, options?: Abortable): Promise<void>
}

export interface ClusterHealth {
  healthy: boolean
  memberCount: number
  healthyCount: number
  /** Leader id, '' if none. */
  leader: string
  members: MemberHealth[]
}

export interface MemberHealth {
  id: string
  healthy: boolean
  lastSeen: Date
  load: number
}

/** The members an agent and the libp2p service share. */
export interface ConclaveApi extends Coordinator {
  /** libp2p peer id string. */
  readonly id: string
  readonly name: string
  /** Where others can reach it, each ending in /p2p/<id>: pass as bootstrap. */
  multiaddrs(): string[]
  /** The cluster (Raft) leadership. */
  readonly election: LeaderElection
  /** A named election any agent can campaign in. */
  elections(name: string): LeaderElection
  readonly tasks: TaskDistributor
  readonly locks: DistributedLock
  readonly consensus: ConsensusProtocol
  readonly workStealing: WorkStealer
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
  id?: string
  type?: string
  state?: TaskState | TaskState[]
  /** Agent id. */
  assignee?: string
}

/** One transition of a task, or a progress update; `revision` numbers them cluster-wide, with no gap. */
export interface TaskEvent {
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
  taskId: string
  taskType: string
  attempt: number
  assignee?: string
  progress?: unknown
  result?: unknown
  error?: string
  revision: number
  timestamp: Date
}
