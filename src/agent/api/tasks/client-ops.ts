import type { TaskDistributor, TaskEvent, TaskFilter, TaskState } from '../../../api.ts'
import { InvalidArgumentError } from '../../../errors.ts'
import type { Scheduler } from '../../../time/scheduler.ts'
import { longPoll, type WireEvent } from '../long-poll.ts'

/** A `TaskFilter` as JSON. */
export interface TaskFilterWire {
  id?: string
  type?: string
  state?: TaskState | TaskState[]
  assignee?: string
}

/** Most task changes one `task.events` answer carries. */
export const MAX_TASK_EVENTS_PER_POLL = 1_000
/** An answer stops taking changes past this many bytes of JSON. */
const EVENT_BYTES_PER_POLL = 1024 * 1024

/** The filter of a client request; the task API checks its fields (an unknown state is refused there). */
export function taskFilter(value: unknown): TaskFilter {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError('filter must be an object')
  }
  return value as TaskFilter
}

/** `limit` and `after` of a `task.list` request (checked by the task API). */
export function taskListOptions(args: Record<string, unknown>): { limit?: number; after?: string } {
  const options: { limit?: number; after?: string } = {}
  if (args.limit !== undefined) options.limit = args.limit as number
  if (args.after !== undefined) options.after = args.after as string
  return options
}

export interface TaskEventsPoll {
  filter: TaskFilter
  fromRevision: number | undefined
  waitMs: number
  maxEvents: unknown
  /** The last task revision the serving replica applied. */
  currentRevision(): number
  scheduler: Scheduler
  /** Aborts when the client goes away. */
  closed: AbortSignal | undefined
}

/**
 * One long poll of a task watch (`task.events`). The watch delivers changes synchronously as the replica
 * applies them, so what it queued when the poll ends is everything up to the revision read at that instant:
 * the next poll may start after it even when no change matched the filter.
 */
export async function taskEvents(
  tasks: TaskDistributor,
  poll: TaskEventsPoll,
): Promise<{ events: WireEvent<TaskEvent>[]; nextRevision: number }> {
  const maxEvents = poll.maxEvents ?? MAX_TASK_EVENTS_PER_POLL
  if (
    !Number.isSafeInteger(maxEvents) ||
    (maxEvents as number) < 1 ||
    (maxEvents as number) > MAX_TASK_EVENTS_PER_POLL
  ) {
    throw new InvalidArgumentError(`maxEvents must be an integer from 1 to ${MAX_TASK_EVENTS_PER_POLL}`)
  }
  return longPoll({
    open: (fromRevision, signal) => tasks.watch(poll.filter, { fromRevision, signal }),
    fromRevision: Math.max(poll.fromRevision ?? poll.currentRevision() + 1, 1),
    currentRevision: poll.currentRevision,
    waitMs: poll.waitMs,
    maxEvents: maxEvents as number,
    maxBytes: EVENT_BYTES_PER_POLL,
    scheduler: poll.scheduler,
    closed: poll.closed,
  })
}
