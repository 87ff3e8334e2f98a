import type { JsonValue } from './json.ts'
import type { RunTaskOp, TaskSpec } from './task-spec.ts'

/**
 * The commands of the replicated coordination state. Each normal Raft entry carries one `Envelope`
 * (see `codec.ts`); the state machine applies its command deterministically.
 */

/** Write `value` under `key`. With `expectedRevision`, only if the key's modRevision equals it (0 = absent). */
export interface PutCommand {
  type: 'put'
  key: string
  value: JsonValue
  expectedRevision?: number
}

/** Remove `key`. With `expectedRevision`, only if the key's modRevision equals it (0 = absent). */
export interface DeleteCommand {
  type: 'delete'
  key: string
  expectedRevision?: number
}

/** Open a session (lease) for `agentId`; idempotent for the same id and agent. */
export interface OpenSessionCommand {
  type: 'openSession'
  sessionId: string
  agentId: string
  ttlMs: number
}

/** Push the session's expiry to `time + ttlMs`. */
export interface KeepAliveCommand {
  type: 'keepAlive'
  sessionId: string
}

/** End the session on its owner's request: releases its locks and withdraws its candidacies. */
export interface CloseSessionCommand {
  type: 'closeSession'
  sessionId: string
}

/**
 * End the session on the leader's housekeeping. `ttl` applies only if the session's `expiresAt <= time`, so a
 * proposal that raced with a keepAlive does nothing; `dead` (membership declared the agent dead) always applies.
 */
export interface ExpireSessionCommand {
  type: 'expireSession'
  sessionId: string
  reason: 'ttl' | 'dead'
}

/** Take `key` for the session, or queue FIFO behind the holder if `wait`, else answer `Busy`. */
export interface LockAcquireCommand {
  type: 'lockAcquire'
  key: string
  sessionId: string
  /** Unique per acquire call of the session: a session may queue several requests for one key. */
  requestId: string
  ttlMs: number
  wait: boolean
}

/** Give up the lock; only the current holder's token is accepted. */
export interface LockReleaseCommand {
  type: 'lockRelease'
  key: string
  sessionId: string
  fencingToken: number
}

/** Push the held lock's expiry to `time + ttlMs`; `LockLost` if the token no longer holds. */
export interface LockExtendCommand {
  type: 'lockExtend'
  key: string
  sessionId: string
  fencingToken: number
  ttlMs: number
}

/**
 * Abandon an acquire, whatever became of it: a queued request leaves the queue, and a request that was
 * granted meanwhile releases the lock. Unknown requests are ignored.
 */
export interface LockCancelCommand {
  type: 'lockCancel'
  key: string
  sessionId: string
  requestId: string
}

/** The leader's housekeeping: applies only if `fencingToken` still holds and its `expiresAt <= time`. */
export interface LockExpireCommand {
  type: 'lockExpire'
  key: string
  fencingToken: number
  /**
   * The lease the leader timed out (`LockHolder.leaseIndex`): expired only if no extend set a newer one.
   * Absent (an older leader): expired if its `expiresAt` is not past the entry's timestamp.
   */
  leaseIndex?: number
}

/** Stand in the named election; candidates form a FIFO queue whose head leads. One candidacy per session. */
export interface CampaignCommand {
  type: 'campaign'
  name: string
  sessionId: string
  agentId: string
  requestId: string
  /**
   * The candidate's value (etcd's campaign value), shown with it once it leads. A candidacy that exists
   * already takes this value; absent leaves it as it was.
   */
  value?: JsonValue
}

/** Withdraw the session's candidacy (leading or queued); unknown candidacies are ignored. */
export interface ResignCommand {
  type: 'resign'
  name: string
  sessionId: string
  /**
   * The campaign (its `requestId`) whose candidacy to withdraw: a later campaign of the same session is left
   * standing. Absent: the session's candidacy, whichever campaign made it.
   */
  requestId?: string
}

/**
 * Register (or re-register) an agent, bound to its own live session (opened with the same `agentId`): it
 * counts as alive for scheduling while that session lives. Re-registering updates every field; with another
 * session it also ends the previous incarnation (its running attempts fail, its assigned tasks are
 * re-queued). `name` must not be held by another live agent.
 */
export interface RegisterAgentCommand {
  type: 'registerAgent'
  agentId: string
  name: string
  sessionId: string
  addrs: string[]
  capabilities: string[]
  labels: Record<string, string>
  /** Task slots. */
  concurrency: number
  /**
   * The agent's SPIFFE ID, when identities are on. The leader admits a registration forwarded by an agent
   * only with that agent's own verified ID here, so the registry holds verified IDs.
   */
  spiffeId?: string
  /**
   * Whether a worker of the agent is running, so the scheduler may place tasks on its slots (absent: true,
   * as in entries from before the field). An agent without a worker still claims explicitly.
   */
  runsTasks?: boolean
}

/**
 * A member's join in one entry: open a session for `agentId` (as `openSession`) and register the agent under
 * it (as `registerAgent`). Both apply, or neither: a registration that would be refused (its name held by
 * another live agent, the session another agent's) opens no session either. Idempotent for one session id
 * and agent, like `openSession`. Answers the session, as `openSession` does.
 */
export interface OpenSessionAndRegisterCommand extends Omit<RegisterAgentCommand, 'type'> {
  type: 'openSessionAndRegister'
  ttlMs: number
}

/** Change fields of a registered agent; absent fields keep their value. */
export interface UpdateAgentCommand {
  type: 'updateAgent'
  agentId: string
  name?: string
  addrs?: string[]
  capabilities?: string[]
  labels?: Record<string, string>
  concurrency?: number
  /** See `RegisterAgentCommand.runsTasks`; false sends the tasks assigned to it back to pending. */
  runsTasks?: boolean
}

/** The agent leaves for good: its record goes, its running attempts fail, its assigned tasks are re-queued. */
export interface DeregisterAgentCommand {
  type: 'deregisterAgent'
  agentId: string
}

/** Add a task; `AlreadyExists` if its id is taken. */
export interface SubmitTaskCommand {
  type: 'submitTask'
  task: TaskSpec
}

/**
 * Start an attempt of the task on the agent (whose registered session must be `sessionId`): allowed if the
 * task is assigned to it, or pending or assigned elsewhere (not running) and the agent is eligible.
 * The attempt's fencing token is this entry's index.
 */
export interface ClaimTaskCommand {
  type: 'claimTask'
  taskId: string
  agentId: string
  sessionId: string
}

/** End the current attempt with success; `StaleAttempt` unless (attempt, fencingToken) is the running one. */
export interface CompleteTaskCommand {
  type: 'completeTask'
  taskId: string
  attempt: number
  fencingToken: number
  result: JsonValue
  /**
   * The agent whose attempt this is: refused (`NotAssignee`) unless it is the task's assignee. Absent only in
   * entries of older versions; with `security`, a member that may not `vote` must name itself here.
   */
  agentId?: string
}

/** End the current attempt with failure: retried after a back-off, or dead once retries are used up. */
export interface FailTaskCommand {
  type: 'failTask'
  taskId: string
  attempt: number
  fencingToken: number
  error: string
  /** As on `completeTask`: the agent whose attempt this is. */
  agentId?: string
}

/**
 * Move an assigned, not running task from `fromAgentId` to `toAgentId`, only if it is still assigned to
 * `fromAgentId` and `toAgentId` is eligible; else `NotStealable` and nothing changes.
 */
export interface StealTaskCommand {
  type: 'stealTask'
  taskId: string
  fromAgentId: string
  toAgentId: string
}

/** The leader's housekeeping: fails `attempt` if it still runs and `startedAt + timeout <= time`. */
export interface TimeoutTaskCommand {
  type: 'timeoutTask'
  taskId: string
  attempt: number
}

/** The leader's housekeeping: a failed task whose `retryAt <= time` becomes pending again. */
export interface RetryDueCommand {
  type: 'retryDue'
  taskId: string
}

/** The leader's housekeeping: a task not finished by its `deadline <= time` expires. */
export interface ExpireTaskCommand {
  type: 'expireTask'
  taskId: string
}

/**
 * Give up a task that has not finished: it becomes `cancelled` (a running attempt ends, and its completion is
 * refused as stale); tasks waiting for it are cancelled too. A finished task is left as it is. On the id of a
 * repeating task, no more occurrences are created.
 */
export interface CancelTaskCommand {
  type: 'cancelTask'
  taskId: string
  /** Shown as the task's `cancelReason`; default `cancelled`. */
  reason?: string
}

/**
 * Several submissions in one entry (concurrent `submit` calls of one agent, coalesced): each is applied as its
 * own `submitTask` would be, in order, and answers for itself in a `taskResults` result. Exactly once as a
 * whole, through the envelope's session numbering.
 */
export interface SubmitTasksCommand {
  type: 'submitTasks'
  tasks: TaskSpec[]
}

export type { RunTaskOp } from './task-spec.ts'

/**
 * A worker agent's task operations in one entry (its concurrent claims, `next()` calls, completions and
 * failures, coalesced), applied in order, each answering for itself in a `taskResults` result. A task is
 * started at most once per entry, so that every attempt has its own fencing token.
 */
export interface RunTasksCommand {
  type: 'runTasks'
  agentId: string
  sessionId: string
  ops: RunTaskOp[]
}

/**
 * The size the leader keeps the Raft voter set at (voter replacement and promotion), cluster-wide: committed
 * by the agent that founds the cluster, so every later leader, and every restart, uses the same target.
 * Any integer from 1 to 9; an even target is kept one below (the voter count is kept odd). A state where none
 * was ever committed (a cluster founded before this command) has the default target, 3.
 */
export interface SetVoterTargetCommand {
  type: 'setVoterTarget'
  voters: number
}

/**
 * Raises the cluster's command-set version (`versions.ts`): proposed by the leader once every replica
 * supports `version`. Never lowers it. A replica that supports less stops applying at this entry.
 */
export interface SetClusterVersionCommand {
  type: 'setClusterVersion'
  version: number
}

/**
 * Sets how many finished tasks the state keeps (`task-retention.ts`), cluster-wide: an integer from 0 to
 * `MAX_FINISHED_TASKS_LIMIT`. Lowering it forgets the oldest finished tasks past the new cap in this entry.
 */
export interface SetMaxFinishedTasksCommand {
  type: 'setMaxFinishedTasks'
  maxFinishedTasks: number
}

/**
 * Write `value` under `key`, bound to the live session `sessionId`: the key is deleted when the session
 * ends (closed, expired or declared dead), in the entry that ends it. A later plain put of the key unbinds it.
 */
export interface PutEphemeralCommand {
  type: 'putEphemeral'
  key: string
  value: JsonValue
  sessionId: string
  expectedRevision?: number
}

/** What a transaction compares; see `TxnCommand`. */
export interface TxnCompareSpec {
  key: string
  target: 'value' | 'revision' | 'createRevision' | 'version' | 'exists'
  op: '==' | '!=' | '<' | '>'
  /** JSON for `value`, an integer >= 0 for the revisions and `version`, a boolean for `exists`. */
  value: JsonValue
}

/** One write of a transaction; an ephemeral put is bound to the transaction's `sessionId`. */
export type TxnOpSpec =
  | { type: 'put'; key: string; value: JsonValue; ephemeral?: boolean }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }

/**
 * etcd's Txn: if every compare holds, apply `success`, else `failure`; all of a branch's writes at one
 * revision, or none. At most `MAX_TXN_OPS` compares and ops per branch, at least one op in all, no key
 * written twice in a branch. A compare on the value of an absent key never holds; an absent key's
 * revisions and version are 0.
 */
export interface TxnCommand {
  type: 'txn'
  compare: TxnCompareSpec[]
  success: TxnOpSpec[]
  failure?: TxnOpSpec[]
  /** The session ephemeral puts bind to; required if any op is ephemeral. */
  sessionId?: string
}

/**
 * Take one of the `permits` permits of the semaphore `key` for the session, or queue FIFO if `wait`, else
 * answer `Busy`. Semaphores live in the lock table (a lock is a semaphore of one permit); a key used with
 * another permit count answers `PermitsMismatch`. Each permit is released, extended, cancelled and expired
 * with the lock commands, by its own fencing token.
 */
export interface SemaphoreAcquireCommand {
  type: 'semaphoreAcquire'
  key: string
  sessionId: string
  requestId: string
  ttlMs: number
  wait: boolean
  permits: number
}

/** Set the value of the election's leader; `NotLeader` unless the session leads it. */
export interface ProclaimCommand {
  type: 'proclaim'
  name: string
  sessionId: string
  value: JsonValue
}

/** No new attempt starts of tasks of `taskType` (of any type if absent); running attempts go on. */
export interface PauseTasksCommand {
  type: 'pauseTasks'
  taskType?: string
}

/** Undoes `pauseTasks` for `taskType`; without one, every pause (of all types and of each type) ends. */
export interface ResumeTasksCommand {
  type: 'resumeTasks'
  taskType?: string
}

/** The running attempt reports progress; `StaleAttempt` unless (attempt, fencingToken) is the running one. */
export interface TaskProgressCommand {
  type: 'taskProgress'
  taskId: string
  attempt: number
  fencingToken: number
  progress: JsonValue
}

/**
 * The leader's housekeeping: the task's `runAt` has come on the leader's clock, so it stops waiting for it
 * (and becomes pending unless it still waits for dependencies). Applies to a task still delayed, whatever
 * the entry's timestamp.
 */
export interface ReleaseTaskCommand {
  type: 'releaseTask'
  taskId: string
}

/**
 * The leader's housekeeping: the slot `slot` (state ms) of the repeating task `scheduleId` is due; its
 * occurrence `${scheduleId}:${slot}` is created, unless a slot at or after it was already served, so each
 * slot gets one occurrence cluster-wide whichever leader proposes it, and however often.
 */
export interface CreateOccurrenceCommand {
  type: 'createOccurrence'
  scheduleId: string
  slot: number
}

/** The leader's housekeeping: finished tasks whose retention is over are forgotten (unfinished ones stay). */
export interface ForgetTasksCommand {
  type: 'forgetTasks'
  taskIds: string[]
}

export type Command =
  | PutCommand
  | DeleteCommand
  | OpenSessionCommand
  | KeepAliveCommand
  | CloseSessionCommand
  | ExpireSessionCommand
  | LockAcquireCommand
  | LockReleaseCommand
  | LockExtendCommand
  | LockCancelCommand
  | LockExpireCommand
  | CampaignCommand
  | ResignCommand
  | RegisterAgentCommand
  | OpenSessionAndRegisterCommand
  | UpdateAgentCommand
  | DeregisterAgentCommand
  | SubmitTaskCommand
  | ClaimTaskCommand
  | CompleteTaskCommand
  | FailTaskCommand
  | StealTaskCommand
  | TimeoutTaskCommand
  | RetryDueCommand
  | ExpireTaskCommand
  | CancelTaskCommand
  | SubmitTasksCommand
  | RunTasksCommand
  | SetVoterTargetCommand
  | PutEphemeralCommand
  | TxnCommand
  | SemaphoreAcquireCommand
  | ProclaimCommand
  | PauseTasksCommand
  | ResumeTasksCommand
  | TaskProgressCommand
  | ReleaseTaskCommand
  | CreateOccurrenceCommand
  | ForgetTasksCommand
  | SetClusterVersionCommand
  | SetMaxFinishedTasksCommand

export type CommandType = Command['type']

/**
 * What one normal Raft entry carries. `ts` is the leader's wall clock in ms when it proposed the entry; it is
 * the only source of time inside the state machine. With `session` and `seq` the command is applied at most
 * once per (session, seq) (Raft dissertation section 6.3); `ackedBelow` tells that the client has received
 * the answers of all its seqs below it, so their stored results may be discarded.
 */
export interface Envelope {
  ts: number
  session?: string
  seq?: number
  ackedBelow?: number
  command: Command
}
