/**
 * What the task API shows of the log's tasks: statuses, change events, and the filter that selects them
 * (`status`, `list`, `watch`).
 */

import type { Abortable, TaskEvent, TaskFilter, TaskStatus } from '../../../api.ts'
import { CompactedError, InvalidArgumentError } from '../../../errors.ts'
import {
  isTaskState,
  type TaskChange,
  type TaskInfo,
  type TaskQuery,
  type TaskState,
} from '../../../state/index.ts'
import type { Replica } from '../../node/replica.ts'
import { checkKey, checkOptions } from '../../validate.ts'
import { BoundedWatch, checkWatchBuffer } from '../bounded-watch.ts'

/** A TaskStatus from what the log holds (a copy: the caller may mutate it). */
export function toTaskStatus(task: TaskInfo): TaskStatus {
  const status: TaskStatus = {
    id: task.id,
    type: task.type,
    priority: task.priority,
    state: task.state,
    attempt: task.attempt,
    createdAt: new Date(task.createdAt),
    updatedAt: new Date(task.updatedAt),
  }
  const assignee = task.assignee ?? task.lastAgentId
  if (assignee !== undefined) status.assignee = assignee
  if (task.result !== undefined) status.result = structuredClone(task.result)
  if (task.error !== undefined) status.error = task.error
  if (task.progress !== undefined) status.progress = structuredClone(task.progress)
  if (task.runAt !== undefined) status.runAt = new Date(task.runAt)
  if (task.dependsOn !== undefined) status.dependsOn = [...task.dependsOn]
  if (task.cancelReason !== undefined) status.cancelReason = task.cancelReason
  return status
}

function toTaskEvent(change: TaskChange): TaskEvent {
  const event: TaskEvent = {
    type: change.type,
    taskId: change.taskId,
    taskType: change.taskType,
    attempt: change.attempt,
    revision: change.revision,
    timestamp: new Date(change.timestamp),
  }
  if (change.assignee !== undefined) event.assignee = change.assignee
  if (change.progress !== undefined) event.progress = structuredClone(change.progress)
  if (change.result !== undefined) event.result = structuredClone(change.result)
  if (change.error !== undefined) event.error = change.error
  return event
}

const FILTER_FIELDS = ['id', 'type', 'state', 'assignee']

/** A TaskFilter checked (unknown fields and states are InvalidArgumentError) and turned into a query. */
export function toTaskQuery(filter: unknown): TaskQuery {
  if (filter === undefined) return {}
  if (!isPlainObject(filter)) throw new InvalidArgumentError('filter must be an object')
  for (const key of Object.keys(filter)) {
    if (!FILTER_FIELDS.includes(key)) throw new InvalidArgumentError(`unknown filter field ${key}`)
  }
  const query: TaskQuery = {}
  if (filter.id !== undefined) query.id = checkKey(filter.id, 'filter id')
  if (filter.type !== undefined) query.type = checkKey(filter.type, 'filter type')
  if (filter.assignee !== undefined) query.assignee = checkKey(filter.assignee, 'filter assignee')
  if (filter.state !== undefined) {
    const states = Array.isArray(filter.state) ? filter.state : [filter.state]
    for (const state of states) {
      if (!isTaskState(state)) throw new InvalidArgumentError(`unknown task state ${JSON.stringify(state)}`)
    }
    query.states = new Set(states as TaskState[])
  }
  return query
}

/**
 * The state a change leaves its task in, for a watch filtered by state: `submitted` is the entry into
 * `pending` or `waiting` (a delayed or dependent task's `waiting` change follows it).
 */
const STATE_AFTER: Record<TaskChange['type'], TaskState[]> = {
  submitted: ['pending', 'waiting'],
  waiting: ['waiting'],
  pending: ['pending'],
  assigned: ['assigned'],
  started: ['running'],
  progress: ['running'],
  completed: ['completed'],
  failed: ['failed'],
  retrying: ['pending'],
  dead: ['dead'],
  expired: ['expired'],
  cancelled: ['cancelled'],
}

function changeMatches(change: TaskChange, query: TaskQuery): boolean {
  const states = query.states
  return (
    (query.id === undefined || change.taskId === query.id) &&
    (query.type === undefined || change.taskType === query.type) &&
    (query.assignee === undefined || change.assignee === query.assignee) &&
    (states === undefined || STATE_AFTER[change.type].some(state => states.has(state)))
  )
}

/**
 * Every task change the filter accepts, in revision order, never skipping or repeating one: first the
 * retained changes from `fromRevision` (if given), then live ones as this agent applies them. Ends when the
 * signal aborts or the agent stops (`closed`); throws `CompactedError` if the retained changes no longer
 * reach back. At most `buffer` changes wait for the consumer (`BoundedWatch`): one that falls behind reads
 * on from the retained changes, and one that falls behind those gets `CompactedError` naming the revision
 * to resume from.
 */
export function watchTasks(
  replica: Replica,
  closed: AbortSignal,
  filter?: TaskFilter,
  options?: Abortable & { fromRevision?: number; buffer?: number },
): AsyncIterable<TaskEvent> {
  const query = toTaskQuery(filter)
  checkOptions(options, ['signal', 'fromRevision', 'buffer'])
  const from = options?.fromRevision
  if (from !== undefined && (!Number.isSafeInteger(from) || from < 1)) {
    throw new InvalidArgumentError('fromRevision must be an integer >= 1')
  }
  const capacity = checkWatchBuffer(options?.buffer)
  const signal = options?.signal
  // Every change up to `lastRevision` was taken or did not match (task revisions are consecutive).
  let lastRevision = from === undefined ? replica.state.taskRevision : from - 1
  const matches = (change: TaskChange): boolean => changeMatches(change, query)
  const cleanups: (() => void)[] = [replica.watchers.take()]
  const watch = new BoundedWatch<TaskChange, TaskEvent>({
    capacity,
    replay: max => {
      const history = replica.state.taskChangesSince(lastRevision + 1, matches, max)
      if (history.type === 'compacted') {
        throw new CompactedError(
          `the task watch fell behind the retained changes: task revisions ${lastRevision + 1} to ` +
            `${history.compactedRevision} are no longer kept; watch again from ${history.compactedRevision + 1}`,
          { compactedRevision: history.compactedRevision },
        )
      }
      const changes = history.changes
      const caughtUp = changes.length < max
      if (caughtUp) lastRevision = Math.max(lastRevision, replica.state.taskRevision)
      else lastRevision = changes[changes.length - 1].revision
      return { items: changes, caughtUp }
    },
    convert: toTaskEvent,
    onClose: () => {
      for (const cleanup of cleanups) cleanup()
    },
  })
  cleanups.push(
    replica.onEvent(event => {
      if (event.type !== 'taskChange') return
      const change = event.change
      if (change.revision <= lastRevision || watch.behind) return
      if (!matches(change) || watch.offer(change)) lastRevision = change.revision
    }),
  )
  // A snapshot replaced the state: its changes in between were never emitted here; read the history.
  cleanups.push(replica.onRestore(() => watch.fallBehind()))
  const stop = (): void => watch.end()
  signal?.addEventListener('abort', stop, { once: true })
  closed.addEventListener('abort', stop, { once: true })
  cleanups.push(() => signal?.removeEventListener('abort', stop))
  cleanups.push(() => closed.removeEventListener('abort', stop))
  if (signal?.aborted || closed.aborted) watch.end()
  else if (from !== undefined) watch.fallBehind()
  return watch
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}
