import { isJsonValue, type JsonValue } from './json.ts'
import { isBoundedCount, isCount, isId, isPositive, isRecord, MAX_TIME_VALUE } from './validate.ts'

/**
 * One operation of a `runTasks` batch. `claim` and `next` act for the batch's agent and session, as
 * `claimTask` does; `complete` and `fail` are `completeTask` and `failTask`. `next` starts the task `next()`
 * would pick: the agent's best assigned task, else the best pending one it may take; `noTask` if there is
 * none.
 */
export type RunTaskOp =
  | { op: 'claim'; taskId: string }
  | { op: 'next' }
  | { op: 'complete'; taskId: string; attempt: number; fencingToken: number; result: JsonValue }
  | {
      op: 'fail'
      taskId: string
      attempt: number
      fencingToken: number
      error: string
      /**
       * Its agent stopped the attempt because its own session lease lapsed (a keep-alive answered late), not
       * because the handler failed: the attempt does not count against `maxRetries` (at most
       * `MAX_LAPSED_ATTEMPTS` such per task). Command-set version 3.
       */
      lapsed?: true
    }

/**
 * Most attempts of one task that a lapse of their agent's session lease may end without counting against
 * `maxRetries` (`lapsed` on a `fail` op): past it they count, so a worker that keeps saying so cannot retry a
 * task forever.
 */
export const MAX_LAPSED_ATTEMPTS = 10

/**
 * Where a task is in its lifecycle (see `tasks.ts`). `waiting`: delayed (its `runAt` not yet released by the
 * leader) or waiting for dependencies.
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

/** Every task state, in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = [
  'waiting',
  'pending',
  'assigned',
  'running',
  'completed',
  'failed',
  'dead',
  'expired',
  'cancelled',
]

/** True for a known task state name. */
export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value)
}

/** Finished states: nothing happens to such a task any more but being forgotten. */
export const FINISHED_STATES: ReadonlySet<TaskState> = new Set(['completed', 'dead', 'expired', 'cancelled'])

/** A repeating task: an occurrence every `every` ms, or at each time the cron expression names. */
export interface RepeatSpec {
  /** Ms between occurrences, at least `MIN_REPEAT_EVERY_MS`. Exactly one of `every` and `cron`. */
  every?: number
  /** A cron expression (5 to 7 fields, as `croner` reads them). */
  cron?: string
  /** IANA time zone the cron expression is read in (default UTC). */
  timezone?: string
  /** Most occurrences ever created. */
  limit?: number
}

/** Delay before a retry: `fixed` is `delay` each time, `exponential` is `delay * 2^(n-1)`, both capped. */
export interface BackoffSpec {
  type: 'fixed' | 'exponential'
  delay: number
  maxDelay?: number
}

/** Ms a finished task's status is kept: `completed`, and `failed` for dead, expired and cancelled ones. */
export interface RetentionSpec {
  completed?: number
  failed?: number
}

/** Shortest `repeat.every` accepted, in ms. */
export const MIN_REPEAT_EVERY_MS = 10

/** `TaskConstraints` of the API as the log carries them: complete, defaults applied by the proposer. */
export interface TaskConstraintsSpec {
  /** The agent must have all of them. */
  requiredCapabilities: string[]
  /** Agent ids or names, tried first, in this order. */
  preferredAgents?: string[]
  /** Agent ids or names, never assigned. */
  excludeAgents?: string[]
  /** Retries after the first attempt. */
  maxRetries: number
  /** Ms one attempt may run before it counts as failed; 0 = no limit. */
  timeout: number
  /** Tasks with the same key prefer the agent that started the last one. */
  affinity?: string
}

/** A task as `submitTask` carries it; its `createdAt` is the state time of the submitting entry. */
export interface TaskSpec {
  id: string
  type: string
  /** Higher runs first. */
  priority: number
  payload: { [key: string]: JsonValue }
  constraints: TaskConstraintsSpec
  /** State time (leader ms) by which the task must be completed, or it expires. */
  deadline?: number
  /** State time (leader ms) before which no attempt starts: the task waits until the leader releases it. */
  runAt?: number
  /** Tasks that must all complete first; each existed when this one was submitted. */
  dependsOn?: string[]
  /** A repeating task: occurrences `${id}:${slot}` are created by the leader, one per slot. */
  repeat?: RepeatSpec
  backoff?: BackoffSpec
  retention?: RetentionSpec
}

/** Longest list a command may carry (capabilities, agent lists, addresses, labels): bounds scheduling work. */
export const MAX_LIST_LENGTH = 256
/** Highest `maxRetries` accepted. */
export const MAX_RETRIES = 1_000_000
/** Most task slots an agent may advertise. */
export const MAX_CONCURRENCY = 1_000_000
/** Most tasks in one `submitTasks`, and operations in one `runTasks`: bounds the work of one entry. */
export const MAX_BATCH_OPS = 4096

/** Non-empty strings, at most MAX_LIST_LENGTH of them. */
export function isIdList(value: unknown): value is string[] {
  if (!Array.isArray(value) || value.length > MAX_LIST_LENGTH) return false
  for (let i = 0; i < value.length; i++) if (!isId(value[i])) return false
  return true
}

/** A plain object of string values (non-empty keys), at most MAX_LIST_LENGTH entries. */
export function isLabels(value: unknown): value is Record<string, string> {
  if (!isRecord(value) || Object.getPrototypeOf(value) !== Object.prototype) return false
  let count = 0
  for (const key in value) {
    if (key.length === 0 || typeof value[key] !== 'string') return false
    if (++count > MAX_LIST_LENGTH) return false
  }
  return true
}

/** A task slot count: an integer in [1, MAX_CONCURRENCY]. */
export function isConcurrency(value: unknown): value is number {
  return isCount(value) && value >= 1 && value <= MAX_CONCURRENCY
}

const taskKeys = new Set([
  'id',
  'type',
  'priority',
  'payload',
  'constraints',
  'deadline',
  'runAt',
  'dependsOn',
  'repeat',
  'backoff',
  'retention',
])
const repeatKeys = new Set(['every', 'cron', 'timezone', 'limit'])
const backoffKeys = new Set(['type', 'delay', 'maxDelay'])
const retentionKeys = new Set(['completed', 'failed'])
const constraintKeys = new Set([
  'requiredCapabilities',
  'preferredAgents',
  'excludeAgents',
  'maxRetries',
  'timeout',
  'affinity',
])

/** True if every key of `value` with a defined value is in `allowed` (undefined is absent, as in JSON). */
function onlyKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (value[key] !== undefined && !allowed.has(key)) return false
  return true
}

/** Bounds a spec is checked against beyond its shape: the log's own, or an API's tighter ones. */
export interface TaskSpecLimits {
  /** Longest task id, type, affinity key and agent or capability name. */
  maxNameLength: number
  /** Longest attempt timeout, ms. */
  maxTimeoutMs: number
}

/** What the log accepts: any non-empty name, any timeout a timestamp can carry. */
const LOG_LIMITS: TaskSpecLimits = { maxNameLength: Number.POSITIVE_INFINITY, maxTimeoutMs: MAX_TIME_VALUE }

/**
 * The one rule set of a task spec, for the log (the codec, snapshot restore) and for the API (the agent
 * checks a submission against it, with its tighter `limits`, before anything is sent): no unknown fields,
 * plain JSON payload, a safe-integer priority, bounded numbers and lists. Returns what is wrong first, in
 * words fit for an `InvalidArgumentError`, or undefined for a valid spec.
 */
export function taskSpecProblem(value: unknown, limits: TaskSpecLimits = LOG_LIMITS): string | undefined {
  if (!isPlainRecord(value)) return 'task must be an object'
  const unknown = unknownKey(value, taskKeys)
  if (unknown !== undefined) return `unknown task field ${unknown}`
  const idProblem = nameProblem(value.id, 'task id', limits) ?? nameProblem(value.type, 'task type', limits)
  if (idProblem !== undefined) return idProblem
  if (!Number.isSafeInteger(value.priority)) return 'priority must be an integer'
  if (!isPlainRecord(value.payload) || !isJsonValue(value.payload)) {
    return 'payload must be a plain object of JSON data (no undefined, functions, NaN, cycles or classes)'
  }
  const constraintsProblem = constraintsSpecProblem(value.constraints, limits)
  if (constraintsProblem !== undefined) return constraintsProblem
  if (value.deadline !== undefined && !isBoundedCount(value.deadline)) {
    return 'deadline must be a valid Date after 1970'
  }
  if (value.runAt !== undefined && !isBoundedCount(value.runAt))
    return 'runAt must be a valid Date after 1970'
  if (value.dependsOn !== undefined && !(isIdList(value.dependsOn) && value.dependsOn.length > 0)) {
    return `dependsOn must be a non-empty array of at most ${MAX_LIST_LENGTH} task ids`
  }
  if (value.repeat !== undefined) {
    if (!isRepeatSpec(value.repeat)) {
      return `repeat must be { every: ms >= ${MIN_REPEAT_EVERY_MS} } or { cron, timezone? }, with an optional positive limit`
    }
    if (value.dependsOn !== undefined) return 'a repeating task cannot have dependsOn'
  }
  if (value.backoff !== undefined && !isBackoffSpec(value.backoff)) {
    return "backoff must be { type: 'fixed' | 'exponential', delay: ms, maxDelay?: ms }"
  }
  if (value.retention !== undefined && !isRetentionSpec(value.retention)) {
    return 'retention must be { completed?: ms, failed?: ms }'
  }
  return undefined
}

/** Exact shape check of a submitted task (see `taskSpecProblem`). */
export function isTaskSpec(value: unknown): value is TaskSpec {
  return taskSpecProblem(value) === undefined
}

function constraintsSpecProblem(value: unknown, limits: TaskSpecLimits): string | undefined {
  if (!isPlainRecord(value)) return 'constraints must be an object'
  const unknown = unknownKey(value, constraintKeys)
  if (unknown !== undefined) return `unknown constraint field ${unknown}`
  if (!isCount(value.maxRetries) || value.maxRetries > MAX_RETRIES) {
    return `maxRetries must be an integer from 0 to ${MAX_RETRIES}`
  }
  if (!isBoundedCount(value.timeout) || value.timeout > limits.maxTimeoutMs) {
    return `timeout must be a number of ms from 0 to ${limits.maxTimeoutMs}`
  }
  for (const list of ['requiredCapabilities', 'preferredAgents', 'excludeAgents'] as const) {
    if (list !== 'requiredCapabilities' && value[list] === undefined) continue
    const problem = nameListProblem(value[list], list, limits)
    if (problem !== undefined) return problem
  }
  return value.affinity === undefined ? undefined : nameProblem(value.affinity, 'affinity', limits)
}

function nameProblem(value: unknown, what: string, limits: TaskSpecLimits): string | undefined {
  if (!isId(value)) return `${what} must be a non-empty string`
  if (value.length > limits.maxNameLength) return `${what} is longer than ${limits.maxNameLength}`
  return undefined
}

function nameListProblem(value: unknown, what: string, limits: TaskSpecLimits): string | undefined {
  if (!Array.isArray(value) || value.length > MAX_LIST_LENGTH) {
    return `${what} must be an array of at most ${MAX_LIST_LENGTH} strings`
  }
  for (let i = 0; i < value.length; i++) {
    if (!isId(value[i]) || value[i].length > limits.maxNameLength) {
      return `${what} must hold non-empty strings of at most ${limits.maxNameLength}`
    }
  }
  return undefined
}

/** The first key of `value` with a defined value that is not in `allowed` (undefined is absent, as in JSON). */
function unknownKey(value: Record<string, unknown>, allowed: ReadonlySet<string>): string | undefined {
  for (const key in value) if (value[key] !== undefined && !allowed.has(key)) return key
  return undefined
}

/** A record whose prototype is Object's or null: what JSON gives, and no class instance. */
function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (!isRecord(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/** Exactly one of `every` (>= MIN_REPEAT_EVERY_MS) and `cron`; the cron text is parsed by the leader only. */
export function isRepeatSpec(value: unknown): value is RepeatSpec {
  if (!isRecord(value) || !onlyKeys(value, repeatKeys)) return false
  const { every, cron, timezone, limit } = value
  if ((every === undefined) === (cron === undefined)) return false
  if (every !== undefined && !(isBoundedCount(every) && every >= MIN_REPEAT_EVERY_MS)) return false
  if (cron !== undefined && !isId(cron)) return false
  if (timezone !== undefined && (!isId(timezone) || cron === undefined)) return false
  return limit === undefined || isPositive(limit)
}

export function isBackoffSpec(value: unknown): value is BackoffSpec {
  return (
    isRecord(value) &&
    onlyKeys(value, backoffKeys) &&
    (value.type === 'fixed' || value.type === 'exponential') &&
    isBoundedCount(value.delay) &&
    (value.maxDelay === undefined || isBoundedCount(value.maxDelay))
  )
}

export function isRetentionSpec(value: unknown): value is RetentionSpec {
  return (
    isRecord(value) &&
    onlyKeys(value, retentionKeys) &&
    (value.completed === undefined || isBoundedCount(value.completed)) &&
    (value.failed === undefined || isBoundedCount(value.failed))
  )
}

/** The tasks of a `submitTasks`: 1 to MAX_BATCH_OPS task specs. */
export function isTaskSpecList(value: unknown): value is TaskSpec[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_BATCH_OPS) return false
  for (let i = 0; i < value.length; i++) if (!isTaskSpec(value[i])) return false
  return true
}

const claimOpKeys = new Set(['op', 'taskId'])
const nextOpKeys = new Set(['op'])
const completeOpKeys = new Set(['op', 'taskId', 'attempt', 'fencingToken', 'result'])
const failOpKeys = new Set(['op', 'taskId', 'attempt', 'fencingToken', 'error', 'lapsed'])

function isRunTaskOp(value: unknown): boolean {
  if (!isRecord(value)) return false
  switch (value.op) {
    case 'claim':
      return onlyKeys(value, claimOpKeys) && isId(value.taskId)
    case 'next':
      return onlyKeys(value, nextOpKeys)
    case 'complete':
      return (
        onlyKeys(value, completeOpKeys) &&
        isId(value.taskId) &&
        isPositive(value.attempt) &&
        isPositive(value.fencingToken) &&
        isJsonValue(value.result)
      )
    case 'fail':
      return (
        onlyKeys(value, failOpKeys) &&
        isId(value.taskId) &&
        isPositive(value.attempt) &&
        isPositive(value.fencingToken) &&
        typeof value.error === 'string' &&
        (value.lapsed === undefined || value.lapsed === true)
      )
    default:
      return false
  }
}

/** The operations of a `runTasks`: 1 to MAX_BATCH_OPS of them, each of an exact shape. */
export function isRunTaskOps(value: unknown): value is RunTaskOp[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_BATCH_OPS) return false
  for (let i = 0; i < value.length; i++) if (!isRunTaskOp(value[i])) return false
  return true
}

/** The task ids of a `forgetTasks`: 1 to MAX_BATCH_OPS of them. */
export function isTaskIdBatch(value: unknown): value is string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_BATCH_OPS) return false
  for (let i = 0; i < value.length; i++) if (!isId(value[i])) return false
  return true
}
