/**
 * The leader's time-driven task duties, as a pure function: given the task state and the leader's monotonic
 * clock, the commands to propose now. The service proposes them (each at most once in flight) and asks
 * again on its next housekeeping tick; applying one only checks that the task is still in the state it was
 * planned for, never the entry's timestamp, so the decision that time has come is this planner's alone.
 *
 * Time. The state records times in state time (the leader timestamps of entries). The leader maps its
 * monotonic clock onto state time from the moment it took over: `now = takeoverStateTime + (monotonicNow -
 * takeoverMonotonic)`, where `takeoverStateTime` is the state time when it took over, which is at or past
 * every predecessor's stamp. So a duration (a timeout, a back-off, a retention) started before the takeover
 * is never cut short by a new leader whose wall clock runs ahead, as a lease is not (see the service's
 * housekeeping); at worst it runs for its full length again from the takeover. Absolute times (`runAt`,
 * `deadline`, repeat slots) are compared with the same `now`.
 */

import type {
  CreateOccurrenceCommand,
  ExpireTaskCommand,
  ForgetTasksCommand,
  ReleaseTaskCommand,
  RetryDueCommand,
  TimeoutTaskCommand,
} from './commands.ts'
import { dueSlots } from './task-repeat.ts'
import { MAX_BATCH_OPS } from './task-spec.ts'
import type { TaskInfo, TaskPlanView } from './tasks.ts'

/** A time-driven task command the leader proposes. */
export type TaskTimeCommand =
  | TimeoutTaskCommand
  | RetryDueCommand
  | ExpireTaskCommand
  | ReleaseTaskCommand
  | CreateOccurrenceCommand
  | ForgetTasksCommand

export interface TaskPlanInput {
  /** The task state as the leader has applied it. */
  state: TaskPlanView
  /** The leader's monotonic clock now, in ms (`performance.now()` in the service). */
  monotonicNow: number
  /** When this node became leader: its monotonic clock, and the state time it had applied by then. */
  takeover: { monotonic: number; stateTime: number }
  /**
   * The attempts the leader's monotonic clock timed out: a full timeout after the leader first saw each one
   * running (the agent's `AttemptTimeoutClock`). When given, the planner times out these and no other;
   * absent, it times out an attempt once `startedAt + timeout` (state time) is reached, which a leader whose
   * wall clock runs ahead of the one that stamped the start reaches early.
   */
  timeouts?: readonly { taskId: string; attempt: number }[]
}

/** The leader's clock in state time: the state time at takeover, advanced by its monotonic clock since. */
export function leaderStateTime(input: Pick<TaskPlanInput, 'monotonicNow' | 'takeover'>): number {
  return input.takeover.stateTime + Math.max(0, input.monotonicNow - input.takeover.monotonic)
}

/**
 * What to propose now, in this order: expiries of tasks past their deadline, timeouts of attempts past
 * their timeout, retries whose back-off is over, releases of delayed tasks whose `runAt` came, the latest
 * due slot of each repeating task, and the finished tasks whose retention is over (in batches of at most
 * `MAX_BATCH_OPS`).
 */
export function planTaskTransitions(input: TaskPlanInput): TaskTimeCommand[] {
  const now = leaderStateTime(input)
  const state = input.state
  const commands: TaskTimeCommand[] = []
  const expired = new Set<string>()
  for (const task of state.timed()) {
    if (task.deadline !== undefined && task.deadline <= now) {
      commands.push({ type: 'expireTask', taskId: task.id })
      expired.add(task.id)
    } else if (
      input.timeouts === undefined &&
      task.state === 'running' &&
      task.constraints.timeout > 0 &&
      task.startedAt! + task.constraints.timeout <= now
    ) {
      commands.push({ type: 'timeoutTask', taskId: task.id, attempt: task.attempt })
    } else if (task.state === 'failed' && task.retryAt! <= now) {
      commands.push({ type: 'retryDue', taskId: task.id })
    }
  }
  for (const { taskId, attempt } of input.timeouts ?? []) {
    if (!expired.has(taskId)) commands.push({ type: 'timeoutTask', taskId, attempt })
  }
  for (const task of state.delayed()) {
    if (task.runAt! <= now) commands.push({ type: 'releaseTask', taskId: task.id })
  }
  for (const repeat of state.repeats()) {
    for (const slot of dueSlots(repeat.spec.repeat, repeat.anchor, repeat.lastSlot ?? -1, now))
      commands.push({ type: 'createOccurrence', scheduleId: repeat.id, slot })
  }
  let forget: string[] = []
  // Finished tasks come oldest finished first, and state time never goes back: of the tasks that have one
  // retention, those due come first. Once a task of a retention is not due, none after it of that retention
  // is, and once that holds for every retention present, the look ends (the leader plans every tick, and
  // keeps up to `maxFinishedTasks` of them, 10,000 by default).
  const open = new Set(state.finishedRetentions?.() ?? [])
  const bounded = state.finishedRetentions !== undefined
  for (const task of state.finished()) {
    const retention = retentionOf(task, state.defaultRetentionMs)
    if (bounded && !open.has(retention)) continue
    if (retention + task.updatedAt > now) {
      open.delete(retention)
      if (bounded && open.size === 0) break
      continue
    }
    forget.push(task.id)
    if (forget.length === MAX_BATCH_OPS) {
      commands.push({ type: 'forgetTasks', taskIds: forget })
      forget = []
    }
  }
  if (forget.length > 0) commands.push({ type: 'forgetTasks', taskIds: forget })
  return commands
}

/** Ms the finished task is kept: its `retention` for its outcome, else the default. */
export function retentionOf(task: Readonly<TaskInfo>, defaultMs: number): number {
  const retention = task.state === 'completed' ? task.retention?.completed : task.retention?.failed
  return retention ?? defaultMs
}
