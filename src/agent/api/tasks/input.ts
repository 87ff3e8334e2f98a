/**
 * The task API's shapes and the log's: a submission checked (by the state's rules) and turned into a
 * `TaskSpec`, and what the log holds turned back into `DistributedTask`s and `ClaimedTask`s.
 */

import type { ClaimedTask, DistributedTask, TaskConstraints } from '../../../api.ts'
import {
  AbortError,
  ClosedError,
  InvalidArgumentError,
  NotFoundError,
  StaleAttemptError,
} from '../../../errors.ts'
import {
  type CommandResult,
  convertJson,
  type TaskConstraintsSpec,
  type TaskInfo,
  type TaskSpec,
  type TaskSpecLimits,
  taskOptionsError,
  taskSpecProblem,
} from '../../../state/index.ts'
import { MAX_KEY_LENGTH, MAX_TTL_MS, MAX_VALUE_BYTES } from '../../validate.ts'
import { unexpected } from '../consensus.ts'

/** Longest failure message kept in the log; the rest is cut. */
export const MAX_ERROR_LENGTH = 8192

/** A DistributedTask from what the log holds (a copy: the caller may mutate it). */
export function toDistributedTask(
  task: Pick<TaskInfo, 'id' | 'type' | 'priority' | 'payload' | 'constraints' | 'createdAt' | 'deadline'>,
  ownPayload = false,
): DistributedTask {
  const distributed: DistributedTask = {
    id: task.id,
    type: task.type,
    priority: task.priority,
    // JSON data by construction (and with no -0, having come through JSON): a JSON round trip copies it
    // exactly, and faster than structuredClone for the small payloads tasks mostly carry.
    payload: ownPayload ? task.payload : (JSON.parse(JSON.stringify(task.payload)) as TaskSpec['payload']),
    constraints: toConstraints(task.constraints),
    createdAt: new Date(task.createdAt),
  }
  if (task.deadline !== undefined) distributed.deadline = new Date(task.deadline)
  return distributed
}

/** A ClaimedTask: the task, and the attempt this agent holds of it. */
export function toClaimedTask(
  info: TaskInfo,
  held: { attempt: number; fencingToken: number; controller: AbortController },
  progress: ClaimedTask['progress'],
): ClaimedTask {
  return {
    ...toDistributedTask(info),
    attempt: held.attempt,
    fencingToken: BigInt(held.fencingToken),
    signal: held.controller.signal,
    progress,
  }
}

function toConstraints(spec: TaskConstraintsSpec): TaskConstraints {
  const constraints: TaskConstraints = {
    requiredCapabilities: [...spec.requiredCapabilities],
    maxRetries: spec.maxRetries,
    timeout: spec.timeout,
  }
  if (spec.preferredAgents !== undefined) constraints.preferredAgents = [...spec.preferredAgents]
  if (spec.excludeAgents !== undefined) constraints.excludeAgents = [...spec.excludeAgents]
  if (spec.affinity !== undefined) constraints.affinity = spec.affinity
  return constraints
}

/**
 * Validates a TaskInput and applies the defaults (priority 0, payload {}, maxRetries 3, timeout 0, no
 * required capabilities): anything unknown or malformed is an InvalidArgumentError, before anything is sent.
 */
export function toTaskSpec(input: unknown): TaskSpec {
  return checkTaskInput(input).spec
}

/**
 * `toTaskSpec`, and the spec's size as JSON. The rules are the state's (`taskSpecProblem`), with the API's
 * tighter limits; here the API's shape becomes the log's: defaults, a `Date` deadline in ms, a copy of the
 * payload.
 */
export function checkTaskInput(input: unknown): { spec: TaskSpec; bytes: number } {
  if (!isPlainObject(input)) throw new InvalidArgumentError('task must be an object')
  const constraints = input.constraints ?? {}
  const candidate: Record<string, unknown> = {
    ...input,
    id: input.id === undefined ? crypto.randomUUID() : input.id,
    priority: input.priority ?? 0,
    payload: checkPayload(input.payload),
    constraints: isPlainObject(constraints) ? withDefaults(constraints) : constraints,
  }
  if (input.deadline !== undefined) {
    // Only a Date is a deadline here (the log's number of ms is not the API's shape).
    const deadline = input.deadline instanceof Date ? input.deadline.getTime() : Number.NaN
    candidate.deadline = Number.isSafeInteger(deadline) ? deadline : -1
  }
  addTaskOptions(input, candidate)
  const problem = taskSpecProblem(candidate, API_LIMITS)
  if (problem !== undefined) throw new InvalidArgumentError(problem)
  const spec = candidate as unknown as TaskSpec
  const bytes = Buffer.byteLength(JSON.stringify(spec))
  if (bytes > MAX_VALUE_BYTES) {
    throw new InvalidArgumentError(`task is larger than ${MAX_VALUE_BYTES} bytes as JSON`)
  }
  return { spec, bytes }
}

/**
 * The payload as JSON.stringify converts it (`toJSON` honoured, an undefined property left out): a copy, so
 * the caller keeps theirs and the log gets exactly what JSON carries.
 */
function checkPayload(payload: unknown): unknown {
  if (payload === undefined) return {}
  if (!isPlainObject(payload)) throw new InvalidArgumentError('payload must be a plain object')
  const converted = convertJson(payload)
  if (!converted.ok) throw new InvalidArgumentError(`payload cannot be converted to JSON: ${converted.error}`)
  return converted.value
}

/**
 * The v0.2 task options (`runAt`, `dependsOn`, `repeat`, `backoff`, `retention`) in the log's shape: a `Date`
 * `runAt` in ms, an empty `dependsOn` left out, option objects copied with their known fields only. The
 * state's `taskOptionsError` says what is wrong with their values, in its own words.
 */
function addTaskOptions(input: Record<string, unknown>, candidate: Record<string, unknown>): void {
  if (input.runAt !== undefined) {
    candidate.runAt = input.runAt instanceof Date ? input.runAt.getTime() : Number.NaN
  }
  if (Array.isArray(input.dependsOn) && input.dependsOn.length === 0) delete candidate.dependsOn
  const repeat = optionObject(input.repeat, 'repeat', ['every', 'cron', 'timezone', 'limit'])
  if (repeat !== undefined) {
    if (repeat.cron !== undefined && typeof repeat.cron !== 'string') {
      throw new InvalidArgumentError('repeat.cron must be a string')
    }
    if (repeat.timezone !== undefined && typeof repeat.timezone !== 'string') {
      throw new InvalidArgumentError('repeat.timezone must be a string')
    }
    candidate.repeat = repeat
  }
  const backoff = optionObject(input.backoff, 'backoff', ['type', 'delay', 'maxDelay'])
  if (backoff !== undefined) candidate.backoff = backoff
  const retention = optionObject(input.retention, 'retention', ['completed', 'failed'])
  if (retention !== undefined) candidate.retention = retention
  const error = taskOptionsError(candidate as Parameters<typeof taskOptionsError>[0])
  if (error !== undefined) throw new InvalidArgumentError(error)
}

/** A copy of an options object with only known fields (undefined ones left out), or undefined if absent. */
function optionObject(
  value: unknown,
  what: string,
  fields: readonly string[],
): Record<string, unknown> | undefined {
  if (value === undefined) return undefined
  if (!isPlainObject(value)) throw new InvalidArgumentError(`${what} must be an object`)
  for (const key of Object.keys(value)) {
    if (!fields.includes(key)) throw new InvalidArgumentError(`unknown ${what} field ${key}`)
  }
  const copy: Record<string, unknown> = {}
  for (const field of fields) if (value[field] !== undefined) copy[field] = value[field]
  return copy
}

/** The API's bounds on a task: its key length for names, its longest ttl for a timeout. */
const API_LIMITS: TaskSpecLimits = { maxNameLength: MAX_KEY_LENGTH, maxTimeoutMs: MAX_TTL_MS }

/** The constraints with their defaults; a fractional timeout rounds up to whole ms. */
function withDefaults(input: Record<string, unknown>): Record<string, unknown> {
  const timeout = input.timeout ?? 0
  return {
    ...input,
    requiredCapabilities: input.requiredCapabilities ?? [],
    maxRetries: input.maxRetries ?? 3,
    timeout: typeof timeout === 'number' ? Math.ceil(timeout) : timeout,
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/** A failure as the log keeps it: the error's message, cut at `MAX_ERROR_LENGTH`. */
export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : String(error)
  return message.length > MAX_ERROR_LENGTH ? message.slice(0, MAX_ERROR_LENGTH) : message
}

/** Whether a stored task is the one `spec` describes (same id, type, priority, payload, constraints, deadline). */
export function sameSpec(existing: TaskSpec, spec: TaskSpec): boolean {
  const pick = (task: TaskSpec) =>
    JSON.stringify([task.id, task.type, task.priority, task.payload, task.constraints, task.deadline ?? null])
  return pick(existing) === pick(spec)
}

/** Names one attempt of a task: what `complete`/`fail` of an attempt need. */
export type AttemptRef = Pick<ClaimedTask, 'id' | 'attempt' | 'fencingToken'>

/** The answer to completeTask / failTask: the task's new state, or why the attempt was not current. */
export function settled(result: CommandResult): void {
  if (result.type === 'taskState') return
  if (result.type === 'error' && result.code === 'StaleAttempt') throw new StaleAttemptError(result.message)
  if (result.type === 'error' && result.code === 'NotFound') throw new NotFoundError(result.message)
  throw unexpected(result)
}

/** An error that is the cluster's (or the caller's) definite answer, which sending again cannot change. */
export function isAnswer(err: unknown): boolean {
  return (
    err instanceof StaleAttemptError ||
    err instanceof NotFoundError ||
    err instanceof InvalidArgumentError ||
    err instanceof ClosedError ||
    err instanceof AbortError
  )
}

export function attemptKey(task: AttemptRef): { taskId: string; attempt: number; fencingToken: number } {
  return { taskId: task.id, attempt: task.attempt, fencingToken: Number(task.fencingToken) }
}
