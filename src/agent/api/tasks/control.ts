/**
 * The half of the task API that holds no attempt: a task's status, lists and watches of tasks, and the
 * controls any agent may send (cancel, pause, resume, an attempt's progress). `Tasks` adds the attempts.
 */

import type { Abortable, TaskEvent, TaskFilter, TaskStatus } from '../../../api.ts'
import { InvalidArgumentError, NotFoundError } from '../../../errors.ts'
import { convertJson, maxFinishedTasksError } from '../../../state/index.ts'
import type { Client } from '../../node/client.ts'
import type { Replica } from '../../node/replica.ts'
import { checkKey, checkOptions, checkValue } from '../../validate.ts'
import { unexpected } from '../consensus.ts'
import { type AttemptRef, attemptKey, MAX_ERROR_LENGTH, settled } from './input.ts'
import { toTaskQuery, toTaskStatus, watchTasks } from './views.ts'

/** Tasks one `list` call answers with by default, and at most. */
const DEFAULT_LIST_LIMIT = 100
const MAX_LIST_LIMIT = 1000

/** What the controls need from the agent. */
export interface TaskControlContext {
  client: Client
  replica: Replica
  closed: AbortSignal
}

export class TaskControls {
  private readonly controlContext: TaskControlContext

  constructor(context: TaskControlContext) {
    this.controlContext = context
  }

  async status(taskId: string, options?: Abortable): Promise<TaskStatus> {
    checkKey(taskId, 'task id')
    checkOptions(options, ['signal'])
    await this.controlContext.client.barrier(options?.signal)
    const task = this.controlContext.replica.state.task(taskId)
    if (task === undefined) throw new NotFoundError(`task ${taskId} does not exist`)
    return toTaskStatus(task)
  }

  async cancel(taskId: string, options?: Abortable & { reason?: string }): Promise<void> {
    checkKey(taskId, 'task id')
    checkOptions(options, ['signal', 'reason'])
    const reason = options?.reason
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_ERROR_LENGTH)) {
      throw new InvalidArgumentError(`reason must be a string of at most ${MAX_ERROR_LENGTH} characters`)
    }
    const result = await this.controlContext.client.submit(
      { type: 'cancelTask', taskId, reason },
      options?.signal,
    )
    if (result.type === 'taskState' || result.type === 'unchanged') return
    if (result.type === 'error' && result.code === 'NotFound') throw new NotFoundError(result.message)
    throw unexpected(result)
  }

  async list(
    filter?: TaskFilter,
    options?: Abortable & { limit?: number; after?: string },
  ): Promise<{ tasks: TaskStatus[]; more: boolean }> {
    const query = toTaskQuery(filter)
    checkOptions(options, ['signal', 'limit', 'after'])
    const limit = options?.limit ?? DEFAULT_LIST_LIMIT
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new InvalidArgumentError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}`)
    }
    const after = options?.after === undefined ? undefined : checkKey(options.after, 'after')
    await this.controlContext.client.barrier(options?.signal)
    const page = this.controlContext.replica.state.listTasks(query, limit, after)
    if (page === undefined) {
      throw new InvalidArgumentError(
        `task ${after} (the cursor) is no longer kept: list again from the start`,
      )
    }
    return { tasks: page.tasks.map(toTaskStatus), more: page.more }
  }

  /**
   * Every task change the filter accepts, in revision order, never skipping or repeating one: first the
   * retained changes from `fromRevision` (if given), then live ones as this agent applies them. Ends when the
   * signal aborts or the agent stops; throws `CompactedError` if the retained changes no longer reach back.
   */
  watch(
    filter?: TaskFilter,
    options?: Abortable & { fromRevision?: number; buffer?: number },
  ): AsyncIterable<TaskEvent> {
    return watchTasks(this.controlContext.replica, this.controlContext.closed, filter, options)
  }

  async pause(type?: string, options?: Abortable): Promise<void> {
    const taskType = type === undefined ? undefined : checkKey(type, 'task type')
    checkOptions(options, ['signal'])
    const result = await this.controlContext.client.submit({ type: 'pauseTasks', taskType }, options?.signal)
    if (result.type !== 'ok' && result.type !== 'unchanged') throw unexpected(result)
  }

  async resume(type?: string, options?: Abortable): Promise<void> {
    const taskType = type === undefined ? undefined : checkKey(type, 'task type')
    checkOptions(options, ['signal'])
    const result = await this.controlContext.client.submit({ type: 'resumeTasks', taskType }, options?.signal)
    if (result.type !== 'ok' && result.type !== 'unchanged') throw unexpected(result)
  }

  /**
   * Sets the cluster-wide cap on kept finished tasks (`setMaxFinishedTasks`, a replicated setting): every
   * replica forgets its oldest finished tasks past it in the same entry. `InvalidArgumentError` unless an
   * integer from 0 to 1,000,000, with nothing proposed.
   */
  async setMaxFinishedTasks(maxFinishedTasks: number, options?: Abortable): Promise<void> {
    const error = maxFinishedTasksError(maxFinishedTasks)
    if (error !== undefined) throw new InvalidArgumentError(error)
    checkOptions(options, ['signal'])
    const result = await this.controlContext.client.submit(
      { type: 'setMaxFinishedTasks', maxFinishedTasks },
      options?.signal,
    )
    if (result.type !== 'ok' && result.type !== 'unchanged') throw unexpected(result)
  }

  /** Progress of an attempt this agent runs: `ClaimedTask.progress`. */
  async progressAttempt(task: AttemptRef, value: unknown, options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    const converted = convertJson(value)
    if (!converted.ok)
      throw new InvalidArgumentError(`progress cannot be converted to JSON: ${converted.error}`)
    const progress = checkValue(converted.value)
    const { taskId, attempt, fencingToken } = attemptKey(task)
    const result = await this.controlContext.client.submit(
      { type: 'taskProgress', taskId, attempt, fencingToken, progress },
      options?.signal,
    )
    settled(result)
  }
}
