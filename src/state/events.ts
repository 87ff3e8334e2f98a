import type { JsonValue } from './json.ts'

/**
 * What applying an entry tells the shell, which turns these into API behaviour (watch streams, lock
 * grants, lost locks, leader changes). Every replica emits the same events for the same entry.
 */
export type StateEvent =
  | KvEvent
  | LockGrantedEvent
  | LockReleasedEvent
  | SessionExpiredEvent
  | SessionClosedEvent
  | ElectionChangedEvent
  | AgentChangedEvent
  | TaskAssignedEvent
  | TaskUnassignedEvent
  | TaskStolenEvent
  | TaskStartedEvent
  | TaskAttemptEndedEvent
  | TaskCompletedEvent
  | TaskFailedEvent
  | TaskRetryEvent
  | TaskDeadEvent
  | TaskExpiredEvent
  | TaskChangeEvent

export interface KvEvent {
  type: 'kv'
  op: 'put' | 'delete'
  key: string
  /** The new value of a put; absent for a delete. */
  value?: JsonValue
  /** The value before: the deleted value, or the one a put replaced; absent if the key did not exist. */
  prevValue?: JsonValue
  /** The store revision this mutation created. */
  revision: number
  /** State time (leader ms) of the entry. */
  timestamp: number
}

export interface LockGrantedEvent {
  type: 'lockGranted'
  key: string
  sessionId: string
  requestId: string
  /** The Raft index of the granting entry. */
  fencingToken: number
  expiresAt: number
}

export interface LockReleasedEvent {
  type: 'lockReleased'
  key: string
  sessionId: string
  requestId: string
  fencingToken: number
  /** `released` by the holder (or a cancelled request), `expired` lease, or its `session` ended. */
  reason: 'released' | 'expired' | 'session'
}

export interface SessionExpiredEvent {
  type: 'sessionExpired'
  sessionId: string
  agentId: string
  /** `ttl`: not kept alive; `dead`: membership declared the agent dead. */
  reason: 'ttl' | 'dead'
}

export interface SessionClosedEvent {
  type: 'sessionClosed'
  sessionId: string
  agentId: string
}

export interface ElectionLeader {
  agentId: string
  sessionId: string
  requestId: string
}

export interface ElectionChangedEvent {
  type: 'electionChanged'
  name: string
  /** Absent when the last candidate left. */
  leader?: ElectionLeader
  /** The leader's value (campaign value or last proclaim), if it has one. */
  value?: JsonValue
  /** Increases with every new leader; unchanged when the election becomes leaderless. */
  term: number
  timestamp: number
}

/** The agent registry changed: the shell refreshes its address book and member list. */
export interface AgentChangedEvent {
  type: 'agentChanged'
  agentId: string
  /** `down`: its session ended (it stays listed, not alive); `left`: deregistered (or forgotten). */
  change: 'registered' | 'updated' | 'down' | 'left'
}

/** The scheduler placed a pending task on an agent, which should claim it. */
export interface TaskAssignedEvent {
  type: 'taskAssigned'
  taskId: string
  agentId: string
}

/** An assigned (not running) task went back to pending: its agent went down or is no longer eligible. */
export interface TaskUnassignedEvent {
  type: 'taskUnassigned'
  taskId: string
  agentId: string
  reason: 'agentDown' | 'ineligible'
}

/** An assigned, not running task moved to another agent (a steal, or a claim by another eligible agent). */
export interface TaskStolenEvent {
  type: 'taskStolen'
  taskId: string
  from: string
  to: string
}

export interface TaskStartedEvent {
  type: 'taskStarted'
  taskId: string
  agentId: string
  attempt: number
  /** The Raft index of the claiming entry. */
  fencingToken: number
}

/**
 * A running attempt stopped being current, for whatever reason: the shell aborts the `ClaimedTask` signal
 * of that attempt (unless the agent itself ended it with `completed` or `failed`).
 */
export interface TaskAttemptEndedEvent {
  type: 'taskAttemptEnded'
  taskId: string
  agentId: string
  attempt: number
  fencingToken: number
  /** `session`: the agent's session ended or it re-registered with a new one; `left`: it deregistered. */
  reason: 'completed' | 'failed' | 'timeout' | 'session' | 'left' | 'expired' | 'cancelled'
}

export interface TaskCompletedEvent {
  type: 'taskCompleted'
  taskId: string
  agentId: string
  attempt: number
}

/** An attempt failed and a retry is planned at `retryAt` (state time). */
export interface TaskFailedEvent {
  type: 'taskFailed'
  taskId: string
  agentId: string
  attempt: number
  error: string
  retryAt: number
}

/** A failed task is pending again; `attempt` attempts were made so far. */
export interface TaskRetryEvent {
  type: 'taskRetry'
  taskId: string
  attempt: number
}

/** Retries are used up (or the task was cancelled): the task is finished without success. */
export interface TaskDeadEvent {
  type: 'taskDead'
  taskId: string
  attempt: number
  error: string
}

/** The deadline passed before the task completed. */
export interface TaskExpiredEvent {
  type: 'taskExpired'
  taskId: string
}

/** What happened to a task, as `TaskEvent` of the API names it. */
export type TaskChangeType =
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

/**
 * One task transition or progress update, numbered: `revision` counts task changes cluster-wide (1, 2, 3,
 * ... with no gap), so a watch resumes after the last revision it saw with neither gap nor duplicate. The
 * task table keeps the latest ones for that (`TaskTable.changesSince`).
 */
export interface TaskChange {
  type: TaskChangeType
  taskId: string
  taskType: string
  attempt: number
  /** The agent it is assigned to or runs on (assigned, started, progress, completed, failed). */
  assignee?: string
  progress?: JsonValue
  result?: JsonValue
  /** The failure's message (failed, dead), or the cancel reason (cancelled). */
  error?: string
  revision: number
  /** State time (leader ms) of the entry. */
  timestamp: number
}

/** A `TaskChange`, as the entry that made it tells the shell. */
export interface TaskChangeEvent {
  type: 'taskChange'
  change: TaskChange
}
