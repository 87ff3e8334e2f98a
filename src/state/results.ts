import type { TaskState } from './task-spec.ts'

/**
 * What applying one entry answers to the proposer. A plain, JSON-safe value: it is stored in the session's
 * dedup table and in snapshots, and returned again for a retried request.
 */
export type CommandResult =
  /** Applied; nothing more to say (session closed, lock released, resigned, no-op entry). */
  | { type: 'ok' }
  /** A conditional housekeeping command (expireSession 'ttl', lockExpire, close of an unknown session) found nothing to do. */
  | { type: 'unchanged' }
  /** A KV mutation; `revision` is the store's revision after it (unchanged for a delete of an absent key). */
  | { type: 'revision'; revision: number }
  /** openSession / keepAlive: the session lives until `expiresAt` unless kept alive. */
  | { type: 'session'; sessionId: string; expiresAt: number }
  /** lockAcquire granted at once (or was already granted to this request). */
  | { type: 'lockGranted'; fencingToken: number; expiresAt: number }
  /** lockAcquire queued: `position` 1 is next in line. A later grant arrives as a `lockGranted` event. */
  | { type: 'lockQueued'; position: number }
  | { type: 'lockExtended'; fencingToken: number; expiresAt: number }
  /** campaign made (or found) this session the election's leader. */
  | { type: 'elected'; term: number }
  /** campaign queued: `position` 1 leads next. A later win arrives as an `electionChanged` event. */
  | { type: 'candidate'; position: number }
  /** submitTask: the task exists from state time `createdAt`; its placement arrives as events. */
  | { type: 'taskSubmitted'; taskId: string; createdAt: number }
  /** claimTask: the attempt now running, and its fencing token (the claiming entry's index). */
  | { type: 'taskClaimed'; taskId: string; attempt: number; fencingToken: number }
  /** stealTask: the task is now assigned to `agentId`. */
  | { type: 'taskAssigned'; taskId: string; agentId: string }
  /**
   * completeTask, failTask and the task housekeeping commands: the state the command left the task in,
   * before the entry's placement pass (a task back to `pending` may be `assigned` by the same entry).
   */
  | { type: 'taskState'; taskId: string; state: TaskState }
  /** A `next` operation found no task this agent may start now. */
  | { type: 'noTask' }
  /** submitTasks / runTasks: one result per task or operation, in order. */
  | { type: 'taskResults'; results: CommandResult[] }
  /** txn: which branch applied, and the store's revision after it (unchanged if it wrote nothing). */
  | { type: 'txn'; succeeded: boolean; revision: number }
  | { type: 'error'; code: ErrorCode; message: string }

export type ErrorCode =
  /** The entry is not a valid envelope; nothing changed but `appliedIndex`. */
  | 'InvalidCommand'
  /** The session named by the envelope or the command does not exist (never opened, expired or closed). */
  | 'SessionExpired'
  /** The key's modRevision is not the expected one. */
  | 'RevisionMismatch'
  /** lockAcquire without `wait` found the lock held. */
  | 'Busy'
  /** lockRelease with a token that is not the current holder's. */
  | 'NotHolder'
  /** lockExtend of a lock the token no longer holds, or whose lease ran out. */
  | 'LockLost'
  /** The request's seq is below what the session still remembers: its answer was already acknowledged. */
  | 'StaleRequest'
  /** The entry's index is not above `appliedIndex`: the shell replayed an entry; nothing changed. */
  | 'AlreadyApplied'
  /** submitTask with the id of a task that exists. */
  | 'AlreadyExists'
  /** The task or agent named does not exist (or a finished task was forgotten). */
  | 'NotFound'
  /** claimTask: the agent is not eligible or not registered with that session; or the task runs or is done. */
  | 'NotClaimable'
  /** completeTask / failTask from an attempt that is not the task's running one. */
  | 'StaleAttempt'
  /** completeTask / failTask (or a batch's complete / fail) from an agent that is not the task's assignee. */
  | 'NotAssignee'
  /** stealTask whose conditions no longer hold; nothing changed. */
  | 'NotStealable'
  /** registerAgent / updateAgent with a name another live agent holds. */
  | 'NameTaken'
  /** registerAgent with a session that is not the agent's own. */
  | 'SessionMismatch'
  /** proclaim from a session that does not lead the election. */
  | 'NotLeader'
  /** lockAcquire / semaphoreAcquire of a key held or awaited with another permit count. */
  | 'PermitsMismatch'
  /** A well-formed command the state refuses (a task depending on an unknown task or itself); nothing changed. */
  | 'InvalidArgument'
  /** submitTask with the id of an existing task (or repeating task) whose contents differ; nothing changed. */
  | 'Conflict'

export type ErrorResult = Extract<CommandResult, { type: 'error' }>

export function errorResult(code: ErrorCode, message: string): ErrorResult {
  return { type: 'error', code, message }
}

// Shared immutable results: returned on hot paths without allocating.
export const OK: CommandResult = Object.freeze({ type: 'ok' })
export const UNCHANGED: CommandResult = Object.freeze({ type: 'unchanged' })
export const NO_TASK: CommandResult = Object.freeze({ type: 'noTask' })
