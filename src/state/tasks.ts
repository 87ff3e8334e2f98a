import { NO_SHELL_BUGS, type ShellBugs } from '../shell-bugs.ts'
import type {
  CancelTaskCommand,
  ClaimTaskCommand,
  CompleteTaskCommand,
  CreateOccurrenceCommand,
  ExpireTaskCommand,
  FailTaskCommand,
  ForgetTasksCommand,
  PauseTasksCommand,
  ReleaseTaskCommand,
  ResumeTasksCommand,
  RetryDueCommand,
  RunTasksCommand,
  SetMaxFinishedTasksCommand,
  StealTaskCommand,
  SubmitTaskCommand,
  SubmitTasksCommand,
  TaskProgressCommand,
  TimeoutTaskCommand,
} from './commands.ts'
import type { ApplyContext } from './context.ts'
import type { TaskAttemptEndedEvent, TaskChange, TaskChangeType, TaskUnassignedEvent } from './events.ts'
import { isJsonValue, type JsonValue } from './json.ts'
import type { AgentDownReason, AgentListener, AgentRecord, MemberTable } from './members.ts'
import { type CommandResult, errorResult, NO_TASK, OK, UNCHANGED } from './results.ts'
import { classKeyOf, compareTasks, meetsConstraints, Scheduler, type SchedulerHost } from './scheduler.ts'
import { type SessionTable, sessionExpired } from './sessions.ts'
import { TaskHistory, type TaskHistoryResult } from './task-history.ts'
import { retentionOf } from './task-planner.ts'
import {
  type BackoffSpec,
  FINISHED_STATES,
  isIdList,
  isTaskSpec,
  isTaskState,
  MAX_LAPSED_ATTEMPTS,
  type RepeatSpec,
  type RetentionSpec,
  type TaskConstraintsSpec,
  type TaskSpec,
  type TaskState,
} from './task-spec.ts'
import { checkSnapshot, isCount, isId, isPositive, isRecord, snapshotArray } from './validate.ts'

/** A task as queries show it: the submitted task and its status. Payload and result are shared: read only. */
export interface TaskInfo {
  id: string
  type: string
  priority: number
  payload: { [key: string]: JsonValue }
  constraints: TaskConstraintsSpec
  /** State time of the submitting entry. */
  createdAt: number
  deadline?: number
  state: TaskState
  /** The agent it is assigned to or running on (assigned, running). */
  assignee?: string
  /** The agent of the latest attempt, once one started. */
  lastAgentId?: string
  /** Attempts started so far; the running one's number while running. */
  attempt: number
  /** Fencing token of the latest attempt (the index of the entry that started it); 0 before the first. */
  fencingToken: number
  /** State time the latest attempt started. */
  startedAt?: number
  /** While failed: state time from which it may be retried. */
  retryAt?: number
  /** The completing attempt's result. */
  result?: JsonValue
  /** The latest failure's message (also set when dead). */
  error?: string
  /** State time of the last change (for a finished task: when it finished). */
  updatedAt: number
  /** State time before which it does not start. */
  runAt?: number
  /** Still waiting for the leader to release its `runAt`. */
  delayed?: boolean
  /** Tasks it waits for (each completed or not yet finished, while it waits). */
  dependsOn?: string[]
  backoff?: BackoffSpec
  retention?: RetentionSpec
  /** The latest progress the running (or last) attempt reported. */
  progress?: JsonValue
  /** Why it was cancelled (the caller's reason, or the dependency that ended without success). */
  cancelReason?: string
  /** Attempts ended by a lapse of their agent's session lease, not counted against `maxRetries`. */
  lapsedAttempts?: number
}

/** A repeating task: the leader creates its occurrences, one task per slot. */
export interface RepeatInfo {
  id: string
  /** The task as submitted (with `repeat`): the template of every occurrence. */
  spec: TaskSpec & { repeat: RepeatSpec }
  /** State time of the submitting entry. */
  createdAt: number
  /** Where slots are counted from: `runAt` if given, else `createdAt`. */
  anchor: number
  /** The latest slot served (its occurrence created), if any. */
  lastSlot?: number
  /** Occurrences created so far. */
  count: number
}

/** What `TaskTable.list` matches; every field given must match. */
export interface TaskQuery {
  id?: string
  type?: string
  states?: ReadonlySet<TaskState>
  assignee?: string
}

/** A page of `list`: tasks in submission order, and whether more match after them. */
export interface TaskPage {
  tasks: TaskInfo[]
  more: boolean
}

/** The parts of the task state the leader's planner (`task-planner.ts`) reads. Read only. */
export interface TaskPlanView {
  /** Unfinished tasks with a deadline, running with a timeout, or failed (waiting out a back-off). */
  timed(): Iterable<Readonly<TaskInfo>>
  /** Tasks waiting for the release of their `runAt`. */
  delayed(): Iterable<Readonly<TaskInfo>>
  /** Repeating tasks that may still create occurrences. */
  repeats(): Iterable<Readonly<RepeatInfo>>
  /** Finished tasks still kept, oldest finished first. */
  finished(): Iterable<Readonly<TaskInfo>>
  /**
   * The retentions (ms, as `retentionOf` gives them) the finished tasks have. With it, the planner stops
   * looking at `finished()` once no more can be due; without it, it looks at every one.
   */
  finishedRetentions?(): Iterable<number>
  /** Retention of a finished task when it sets none. */
  readonly defaultRetentionMs: number
}

/** Running, assigned and slot counts of an agent: load is (running + assigned) / slots for scheduling. */
export interface AgentLoad {
  running: number
  assigned: number
  slots: number
}

/** What the leader should propose at some wall time for tasks (each re-checks against state time). */
export interface DueTaskActions {
  timeouts: { taskId: string; attempt: number }[]
  retries: string[]
  expiries: string[]
}

export interface TaskTableOptions {
  /** Back-off before the retry of a task whose attempt n failed: base * 2^(n-1), capped by maxMs. */
  retryBackoffBaseMs: number
  retryBackoffMaxMs: number
  /** Finished (completed, dead, expired) tasks kept for status queries; the oldest finished go first. */
  maxFinishedTasks: number
  /** Affinity keys remembered; the least recently used go first. */
  maxAffinityKeys: number
  /** Ms a finished task is kept when it sets no `retention`; the leader forgets it after that. */
  defaultRetentionMs: number
  /** Task changes retained for watches that resume from a revision. */
  taskHistorySize: number
}

interface TaskRecord extends TaskInfo {
  readonly seq: number
  /** `classKeyOf(constraints)`. Derived. */
  readonly classKey: string
  /** While waiting: parents not completed yet. Derived. */
  unmet: number
}

/** Task section of a snapshot. */
export interface TasksSnapshot {
  nextSeq: number
  /** In submission order. */
  tasks: (TaskInfo & { seq: number })[]
  /** Ids of finished tasks still kept, oldest finished first. */
  finished: string[]
  /** [affinity key, agent id], least recently used first. */
  affinity: [string, string][]
  /** Pauses in force (absent: none, as in snapshots from before pausing existed). */
  paused?: { all: boolean; types: string[] }
  /** Repeating tasks, in submission order. */
  repeats?: RepeatInfo[]
  /** The latest task changes and the revision of the last one. */
  history?: { revision: number; changes: TaskChange[] }
}

/** The tasks of one agent. Derived. */
interface AgentTasks {
  running: Set<TaskRecord>
  assigned: Set<TaskRecord>
}

const TERMINAL = FINISHED_STATES

/**
 * Task distribution: `pending → assigned → running → completed | failed → pending (retry) | dead`, plus
 * `expired` when the deadline passes first, `cancelled` on request (or when a dependency ends without
 * success), and `waiting` before `pending` for a delayed task (`runAt`) or one with dependencies. Every
 * transition is an entry; the scheduler (`scheduler.ts`) places pending tasks at the end of every entry. An
 * attempt is identified by (attempt, fencingToken), the token being the index of the entry that started it,
 * and only the running attempt may complete, fail or report progress.
 *
 * Nothing here happens because of an entry's timestamp: a deadline passing, an attempt timing out, a back-off
 * ending, a `runAt` coming, a repeat slot falling due and a retention ending are each an explicit command
 * the leader proposes when its monotonic clock says so (`task-planner.ts`); applying one checks only that
 * the task is still in the state it was planned for. Timestamps are recorded for display and for the plan.
 *
 * Each transition and progress update is also a `TaskChange`, numbered without gaps, kept in a bounded
 * history so that a watch resumes from a revision.
 */
export class TaskTable implements AgentListener, SchedulerHost<TaskRecord> {
  private readonly records = new Map<string, TaskRecord>()
  /** Tasks not finished, in submission order. Derived. */
  private readonly unfinished = new Map<string, TaskRecord>()
  /** Ids of finished tasks still kept, oldest finished first. */
  private readonly finishedIds = new Set<string>()
  /**
   * Where `trimFinished` takes the oldest kept id from. Every id before it in `finishedIds` was taken (and
   * deleted) through it, so its next value is the oldest one kept. `finishedIds.keys().next()` would give
   * the same, but V8 leaves a deleted entry as a hole until the table is rebuilt, and a fresh iterator walks
   * every hole at the front: used as a queue, the cap cost ~5 µs per finished task at 10,000 kept, on every
   * replica; the cursor walks each hole once. Derived (a fresh one is made when it runs out).
   */
  private finishedCursor?: SetIterator<string>
  /**
   * How many of the kept finished tasks have each retention (ms), so that the leader's planner can stop its
   * look at `finishedIds` once it has met a task not yet due of each one (`task-planner.ts`). Derived.
   */
  private readonly finishedRetentions = new Map<number, number>()
  /**
   * Unfinished tasks that something may happen to with time alone: with a deadline, running with a timeout,
   * or failed (waiting for their retry). What the leader's housekeeping looks at. Derived.
   */
  private readonly timedTasks = new Set<TaskRecord>()
  /** Waiting tasks whose `runAt` the leader has not released yet. Derived. */
  private readonly delayedTasks = new Set<TaskRecord>()
  /** Parent id → waiting tasks that wait for it. Derived. */
  private readonly children = new Map<string, Set<TaskRecord>>()
  /** Pending tasks of a paused type: out of the scheduler until resumed. Derived. */
  private readonly held = new Set<TaskRecord>()
  private pausedAll = false
  private readonly pausedTypes = new Set<string>()
  private readonly repeatRecords = new Map<string, RepeatInfo>()
  private readonly history: TaskHistory
  private readonly affinity = new Map<string, string>()
  private readonly byAgent = new Map<string, AgentTasks>()
  private readonly scheduler: Scheduler<TaskRecord>
  private readonly members: MemberTable
  private readonly sessions: SessionTable
  private readonly options: TaskTableOptions
  private nextSeq = 1
  /** Set by `setMaxFinishedTasks`; undefined until then, when `options.maxFinishedTasks` applies. */
  private maxFinishedValue: number | undefined
  /** Dependants to settle after a task finished, so long chains need no deep recursion. */
  private cascade: { child: TaskRecord; parent: TaskRecord }[] | undefined

  /** @internal Test-only switches (`src/shell-bugs.ts`). */
  private readonly bugs: ShellBugs

  constructor(members: MemberTable, sessions: SessionTable, options: TaskTableOptions)
  /** @internal With test-only switches (`src/shell-bugs.ts`). Stripped from the published declarations. */
  constructor(members: MemberTable, sessions: SessionTable, options: TaskTableOptions, bugs: ShellBugs)
  constructor(
    members: MemberTable,
    sessions: SessionTable,
    options: TaskTableOptions,
    bugs: ShellBugs = NO_SHELL_BUGS,
  ) {
    this.bugs = bugs
    this.members = members
    this.sessions = sessions
    this.options = options
    this.scheduler = new Scheduler(members, this)
    this.history = new TaskHistory(options.taskHistorySize)
  }

  /** Pending tasks, those held by a pause included. */
  get pendingCount(): number {
    return this.scheduler.pendingCount + this.held.size
  }

  /** Revision of the latest task change (0 before any). */
  get revision(): number {
    return this.history.revision
  }

  task(taskId: string): TaskInfo | undefined {
    const record = this.records.get(taskId)
    return record === undefined ? undefined : toInfo(record)
  }

  repeat(id: string): RepeatInfo | undefined {
    const record = this.repeatRecords.get(id)
    return record === undefined ? undefined : { ...record }
  }

  /** True if no new attempt of tasks of `type` may start. */
  isPaused(type: string): boolean {
    return this.pausedAll || this.pausedTypes.has(type)
  }

  /** The pauses in force. */
  pauses(): { all: boolean; types: string[] } {
    return { all: this.pausedAll, types: [...this.pausedTypes] }
  }

  /**
   * Tasks matching `query` in submission order, after the task `after` (the last one of the previous page),
   * at most `limit`; undefined if `after` names no task kept (it was forgotten: list again from the start).
   */
  list(query: TaskQuery, limit: number, after?: string): TaskPage | undefined {
    let afterSeq = 0
    if (after !== undefined) {
      const cursor = this.records.get(after)
      if (cursor === undefined) return undefined
      afterSeq = cursor.seq
    }
    const tasks: TaskInfo[] = []
    const matches = (record: TaskRecord): boolean =>
      record.seq > afterSeq &&
      (query.type === undefined || record.type === query.type) &&
      (query.states === undefined || query.states.has(record.state)) &&
      (query.assignee === undefined || record.assignee === query.assignee)
    if (query.id !== undefined) {
      const record = this.records.get(query.id)
      if (record !== undefined && matches(record) && limit > 0) tasks.push(toInfo(record))
      return { tasks, more: record !== undefined && matches(record) && limit === 0 }
    }
    // Unfinished ones only, when the states asked for are all unfinished: the usual "what is queued" query.
    const onlyUnfinished =
      query.states !== undefined && [...query.states].every(state => !TERMINAL.has(state))
    for (const record of (onlyUnfinished ? this.unfinished : this.records).values()) {
      if (!matches(record)) continue
      if (tasks.length === limit) return { tasks, more: true }
      tasks.push(toInfo(record))
    }
    return { tasks, more: false }
  }

  /** Task changes with revision >= `fromRevision` that `filter` accepts, or `compacted`. */
  changesSince(
    fromRevision: number,
    filter?: (change: TaskChange) => boolean,
    limit?: number,
  ): TaskHistoryResult {
    return this.history.since(fromRevision, filter, limit)
  }

  /** What the leader's planner reads. */
  planView(): TaskPlanView {
    const table = this
    return {
      timed: () => table.timedTasks,
      delayed: () => table.delayedTasks,
      repeats: () => [...table.repeatRecords.values()].filter(repeat => !repeatDone(repeat)),
      finished: function* () {
        for (const id of table.finishedIds) yield table.records.get(id)!
      },
      finishedRetentions: () => table.finishedRetentions.keys(),
      defaultRetentionMs: this.options.defaultRetentionMs,
    }
  }

  /** Tasks assigned to or running on the agent, in schedule order. */
  tasksAssignedTo(agentId: string): TaskInfo[] {
    const tasks = this.byAgent.get(agentId)
    if (tasks === undefined) return []
    return [...tasks.running, ...tasks.assigned].sort(compareTasks).map(toInfo)
  }

  /**
   * The tasks running on the agent, in no particular order and not copied: read them at once, never keep
   * them. What `next()`'s look for an orphan reads every time a worker wakes, where copying and sorting
   * `tasksAssignedTo` cost a follower ~2% of its CPU under the task benchmark.
   */
  runningOn(agentId: string): Iterable<Readonly<TaskInfo>> {
    return this.byAgent.get(agentId)?.running ?? []
  }

  agentLoad(agentId: string): AgentLoad | undefined {
    const agent = this.members.record(agentId)
    if (agent === undefined) return undefined
    const tasks = this.byAgent.get(agentId)
    return {
      running: tasks?.running.size ?? 0,
      assigned: tasks?.assigned.size ?? 0,
      slots: agent.concurrency,
    }
  }

  /** What `next()` should claim: the agent's best assigned task, else the best pending one it could take. */
  bestTaskFor(agentId: string): TaskInfo | undefined {
    const agent = this.members.record(agentId)
    if (agent === undefined || !agent.alive) return undefined
    const best = this.bestRecordFor(agent)
    return best === undefined ? undefined : toInfo(best)
  }

  /**
   * Timeouts, retries and expiries due at state time `now`, for a caller that checks time itself (the
   * service's housekeeping guards each with its monotonic clock); `task-planner.ts` plans every time-driven
   * task command from the leader's monotonic clock.
   */
  due(now: number): DueTaskActions {
    const due: DueTaskActions = { timeouts: [], retries: [], expiries: [] }
    for (const task of this.timedTasks) {
      if (task.deadline !== undefined && task.deadline <= now) due.expiries.push(task.id)
      else if (task.state === 'running' && timedOut(task, now)) {
        due.timeouts.push({ taskId: task.id, attempt: task.attempt })
      } else if (task.state === 'failed' && task.retryAt! <= now) due.retries.push(task.id)
    }
    return due
  }

  /**
   * Adds a task, or a repeating task. The same id with the same contents again answers as the first time
   * did (a retried submit); with other contents, `Conflict`. Dependencies must exist and not be the task.
   */
  submit(command: SubmitTaskCommand, context: ApplyContext): CommandResult {
    const spec = command.task
    const existing = this.records.get(spec.id)
    const repeat = this.repeatRecords.get(spec.id)
    if (existing !== undefined || repeat !== undefined) {
      const same =
        existing !== undefined
          ? canonical(specOf(existing)) === canonical(spec)
          : canonical(repeat!.spec) === canonical(spec)
      if (!same) return errorResult('Conflict', `task ${spec.id} exists with other contents`)
      return { type: 'taskSubmitted', taskId: spec.id, createdAt: (existing ?? repeat!).createdAt }
    }
    if (spec.repeat !== undefined) {
      this.repeatRecords.set(spec.id, {
        id: spec.id,
        spec: spec as RepeatInfo['spec'],
        createdAt: context.time,
        anchor: spec.runAt ?? context.time,
        count: 0,
      })
      return { type: 'taskSubmitted', taskId: spec.id, createdAt: context.time }
    }
    const parents: TaskRecord[] = []
    for (const parentId of spec.dependsOn ?? []) {
      if (parentId === spec.id) return errorResult('InvalidArgument', `task ${spec.id} depends on itself`)
      const parent = this.records.get(parentId)
      if (parent === undefined) {
        return errorResult(
          'InvalidArgument',
          `task ${spec.id} depends on task ${parentId}, which does not exist`,
        )
      }
      if (!parents.includes(parent)) parents.push(parent)
    }
    const record = this.create(spec, context)
    record.state = 'waiting'
    this.emit(record, 'submitted', context)
    const failedParent = parents.find(parent => TERMINAL.has(parent.state) && parent.state !== 'completed')
    if (failedParent !== undefined) {
      this.cancelNow(record, dependencyReason(failedParent), context)
      return { type: 'taskSubmitted', taskId: record.id, createdAt: record.createdAt }
    }
    for (const parent of parents) {
      if (parent.state === 'completed') continue
      record.unmet++
      this.childrenOf(parent.id).add(record)
    }
    if (record.delayed === true) this.delayedTasks.add(record)
    if (record.unmet > 0 || record.delayed === true) this.emit(record, 'waiting', context)
    else this.toPending(record, context)
    this.track(record)
    return { type: 'taskSubmitted', taskId: record.id, createdAt: record.createdAt }
  }

  /** Each task as its own `submitTask`, in order. */
  submitMany(command: SubmitTasksCommand, context: ApplyContext): CommandResult {
    const results: CommandResult[] = []
    for (const task of command.tasks) results.push(this.submit({ type: 'submitTask', task }, context))
    return { type: 'taskResults', results }
  }

  /** A worker's batch: each operation in order, answering for itself. */
  run(command: RunTasksCommand, context: ApplyContext): CommandResult {
    const { agentId, sessionId } = command
    const results: CommandResult[] = []
    for (const op of command.ops) {
      switch (op.op) {
        case 'claim':
          results.push(this.claim({ type: 'claimTask', taskId: op.taskId, agentId, sessionId }, context))
          break
        case 'next':
          results.push(this.next(agentId, sessionId, context))
          break
        case 'complete':
          results.push(
            this.complete(
              {
                type: 'completeTask',
                taskId: op.taskId,
                attempt: op.attempt,
                fencingToken: op.fencingToken,
                result: op.result,
                agentId,
              },
              context,
            ),
          )
          break
        case 'fail':
          results.push(
            this.fail(
              {
                type: 'failTask',
                taskId: op.taskId,
                attempt: op.attempt,
                fencingToken: op.fencingToken,
                error: op.error,
                agentId,
              },
              context,
              op.lapsed === true,
            ),
          )
          break
      }
    }
    return { type: 'taskResults', results }
  }

  /**
   * Starts the task `next()` would pick for the agent: its best assigned task, else the best pending one it
   * may take (its hard filters and a free slot).
   */
  next(agentId: string, sessionId: string, context: ApplyContext): CommandResult {
    const claimant = this.claimant(agentId, sessionId, context)
    if (claimant.ok === false) return claimant.error
    const agent = claimant.record
    const task = this.bestRecordFor(agent)
    if (task === undefined) return NO_TASK
    if (task.state === 'pending') this.scheduler.removePending(task)
    this.start(task, agent, context)
    return { type: 'taskClaimed', taskId: task.id, attempt: task.attempt, fencingToken: task.fencingToken }
  }

  /**
   * Starts an attempt of the task on the agent: one assigned to it, pending, assigned elsewhere, or failed and
   * waiting out its back-off (an explicit claim starts it at once: the back-off governs automatic scheduling).
   */
  claim(command: ClaimTaskCommand, context: ApplyContext): CommandResult {
    const { taskId, agentId } = command
    const claimant = this.claimant(agentId, command.sessionId, context)
    if (claimant.ok === false) return claimant.error
    const agent = claimant.record
    const task = this.records.get(taskId)
    if (task === undefined) return notFound(taskId)
    // One attempt per task and entry: a second would share the first's fencing token.
    if (task.fencingToken === context.index) return notClaimable(`task ${taskId} was started in this entry`)
    if (!TERMINAL.has(task.state) && task.state !== 'running' && this.isPaused(task.type)) {
      return notClaimable(`tasks of type ${task.type} are paused`)
    }
    switch (task.state) {
      case 'assigned': {
        const from = task.assignee!
        if (from === agentId) break
        if (!this.eligible(task, agent)) return notClaimable(`agent ${agentId} may not run task ${taskId}`)
        // An explicit claim by another eligible agent takes the assignment over, as a steal would.
        this.release(task)
        context.events.push({ type: 'taskStolen', taskId, from, to: agentId })
        break
      }
      case 'pending':
        if (!this.eligible(task, agent)) return notClaimable(`agent ${agentId} may not run task ${taskId}`)
        this.removePending(task)
        break
      case 'failed':
        if (!this.eligible(task, agent)) return notClaimable(`agent ${agentId} may not run task ${taskId}`)
        break
      case 'running':
        return notClaimable(`task ${taskId} is running on ${task.assignee}`)
      case 'waiting':
        return notClaimable(`task ${taskId} is waiting ${this.waitingFor(task)}`)
      default:
        return notClaimable(`task ${taskId} is ${task.state}`)
    }
    this.start(task, agent, context)
    return { type: 'taskClaimed', taskId, attempt: task.attempt, fencingToken: task.fencingToken }
  }

  complete(command: CompleteTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined) return notFound(command.taskId)
    if (!isCurrent(task, command.attempt, command.fencingToken)) return staleAttempt(task, command.attempt)
    if (!isAssignee(task, command.agentId)) return notAssignee(task, command.agentId)
    const agentId = this.endAttempt(task, 'completed', context)
    task.result = command.result
    task.error = undefined
    context.events.push({ type: 'taskCompleted', taskId: task.id, agentId, attempt: task.attempt })
    task.state = 'completed'
    this.emit(task, 'completed', context, { assignee: agentId, result: command.result })
    this.finish(task, 'completed', context)
    return taskState(task)
  }

  /** `lapsed`: its agent's session lease lapsed (see `RunTaskOp`): the attempt does not count, up to a cap. */
  fail(command: FailTaskCommand, context: ApplyContext, lapsed = false): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined) return notFound(command.taskId)
    if (!isCurrent(task, command.attempt, command.fencingToken)) return staleAttempt(task, command.attempt)
    if (!isAssignee(task, command.agentId)) return notAssignee(task, command.agentId)
    if (lapsed && (task.lapsedAttempts ?? 0) < MAX_LAPSED_ATTEMPTS)
      task.lapsedAttempts = (task.lapsedAttempts ?? 0) + 1
    this.failAttempt(task, 'failed', command.error, context)
    return taskState(task)
  }

  /** The running attempt's progress: kept on the task, and a `progress` change for watches. */
  progress(command: TaskProgressCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined) return notFound(command.taskId)
    if (!isCurrent(task, command.attempt, command.fencingToken)) return staleAttempt(task, command.attempt)
    task.progress = command.progress
    task.updatedAt = context.time
    this.emit(task, 'progress', context, { assignee: task.assignee, progress: command.progress })
    return taskState(task)
  }

  steal(command: StealTaskCommand, context: ApplyContext): CommandResult {
    const { taskId, fromAgentId, toAgentId } = command
    const task = this.records.get(taskId)
    if (
      task === undefined ||
      task.state !== 'assigned' ||
      task.assignee !== fromAgentId ||
      fromAgentId === toAgentId
    ) {
      return errorResult('NotStealable', `task ${taskId} is not assigned to ${fromAgentId}, waiting`)
    }
    const to = this.members.record(toAgentId)
    if (to === undefined || !this.eligible(task, to)) {
      return errorResult('NotStealable', `agent ${toAgentId} may not run task ${taskId}`)
    }
    this.release(task)
    context.events.push({ type: 'taskStolen', taskId, from: fromAgentId, to: toAgentId })
    this.assign(task, toAgentId, context, false)
    return { type: 'taskAssigned', taskId, agentId: toAgentId }
  }

  /** The leader's timeout of `attempt`: fails it if it still runs. */
  timeout(command: TimeoutTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || task.state !== 'running' || task.attempt !== command.attempt) return UNCHANGED
    if (task.constraints.timeout === 0) return UNCHANGED
    this.failAttempt(task, 'timeout', timeoutMessage(task), context)
    return taskState(task)
  }

  /** The leader's end of a back-off: a failed task is pending again. */
  retryDue(command: RetryDueCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || task.state !== 'failed') return UNCHANGED
    this.retry(task, context)
    return taskState(task)
  }

  /** The leader's expiry of a task past its deadline, if it has not finished. */
  expire(command: ExpireTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || TERMINAL.has(task.state) || task.deadline === undefined) return UNCHANGED
    this.expireNow(task, context)
    return taskState(task)
  }

  /** The leader's release of a delayed task whose `runAt` came. */
  releaseDelayed(command: ReleaseTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || task.state !== 'waiting' || task.delayed !== true) return UNCHANGED
    task.delayed = undefined
    this.delayedTasks.delete(task)
    task.updatedAt = context.time
    if (task.unmet === 0) this.wake(task, context)
    return taskState(task)
  }

  /** The leader's occurrence of a repeating task for a due slot, once per slot. */
  createOccurrence(command: CreateOccurrenceCommand, context: ApplyContext): CommandResult {
    const repeat = this.repeatRecords.get(command.scheduleId)
    const { slot } = command
    if (repeat === undefined || repeatDone(repeat)) return UNCHANGED
    if (repeat.lastSlot !== undefined && slot <= repeat.lastSlot) return UNCHANGED
    const every = repeat.spec.repeat.every
    // An `every` slot is checked exactly; a cron slot is the leader's to compute (see task-repeat.ts).
    if (every !== undefined && (slot < repeat.anchor || (slot - repeat.anchor) % every !== 0))
      return UNCHANGED
    repeat.lastSlot = slot
    repeat.count++
    const id = `${repeat.id}:${slot}`
    if (this.records.has(id)) return errorResult('AlreadyExists', `task ${id} exists`)
    const { repeat: _, runAt: __, deadline: ___, dependsOn: ____, ...template } = repeat.spec
    return this.submit({ type: 'submitTask', task: { ...template, id } }, context)
  }

  /** How many finished tasks are kept: the replicated cap if one was committed, else the option. */
  get maxFinishedTasks(): number {
    return this.maxFinishedValue ?? this.options.maxFinishedTasks
  }

  /** The replicated cap, if one was ever committed (what a snapshot keeps). */
  get maxFinishedSetting(): number | undefined {
    return this.maxFinishedValue
  }

  /**
   * `setMaxFinishedTasks`: the cluster-wide cap; a lower one forgets the oldest finished tasks past it now,
   * the same on every replica (the codec checked the range).
   */
  setMaxFinished(command: SetMaxFinishedTasksCommand): CommandResult {
    if (command.maxFinishedTasks === this.maxFinishedValue) return UNCHANGED
    this.maxFinishedValue = command.maxFinishedTasks
    this.trimFinished()
    return OK
  }

  /** Restores the replicated cap from a snapshot (undefined: none was committed). */
  restoreMaxFinished(value: number | undefined): void {
    this.maxFinishedValue = value
  }

  /** Files a finished task among the kept ones (`finishedIds`, `finishedRetentions`). */
  private keepFinished(task: TaskRecord): void {
    this.finishedIds.add(task.id)
    const retention = retentionOf(task, this.options.defaultRetentionMs)
    this.finishedRetentions.set(retention, (this.finishedRetentions.get(retention) ?? 0) + 1)
  }

  /** Takes a finished task out of the kept ones, before its record goes; false if it was not kept. */
  private dropFinished(id: string): boolean {
    if (!this.finishedIds.delete(id)) return false
    const retention = retentionOf(this.records.get(id)!, this.options.defaultRetentionMs)
    const left = (this.finishedRetentions.get(retention) ?? 1) - 1
    if (left === 0) this.finishedRetentions.delete(retention)
    else this.finishedRetentions.set(retention, left)
    return true
  }

  /** Forgets the oldest finished tasks past the cap. */
  private trimFinished(): void {
    const max = this.maxFinishedTasks
    while (this.finishedIds.size > max) {
      let next = this.finishedCursor?.next()
      // A set iterator that ran out stays done, whatever is added later.
      if (next === undefined || next.done === true) {
        this.finishedCursor = this.finishedIds.values()
        next = this.finishedCursor.next()
      }
      const oldest = next.value as string
      this.dropFinished(oldest)
      this.records.delete(oldest)
    }
  }

  /** The leader's end of retention: finished tasks are forgotten. */
  forget(command: ForgetTasksCommand): CommandResult {
    let forgotten = 0
    for (const id of command.taskIds) {
      if (!this.dropFinished(id)) continue
      this.records.delete(id)
      forgotten++
    }
    return forgotten === 0 ? UNCHANGED : OK
  }

  /**
   * Cancels a task that has not finished (a running attempt ends: its agent's signal aborts, its completion
   * is refused); tasks waiting for it are cancelled in turn. On a repeating task's id, the repeat ends.
   */
  cancel(command: CancelTaskCommand, context: ApplyContext): CommandResult {
    const reason = command.reason ?? 'cancelled'
    const task = this.records.get(command.taskId)
    if (task === undefined) {
      if (!this.repeatRecords.delete(command.taskId)) return notFound(command.taskId)
      return { type: 'taskState', taskId: command.taskId, state: 'cancelled' }
    }
    if (TERMINAL.has(task.state)) return UNCHANGED
    // `cancel-keeps-attempt` (test-only): a running task is answered cancelled, and runs on to its completion.
    if (this.bugs.has('cancel-keeps-attempt') && task.state === 'running')
      return { type: 'taskState', taskId: task.id, state: 'cancelled' }
    this.cancelNow(task, reason, context)
    return taskState(task)
  }

  /** No new attempts of the type (all types if absent); pending tasks are held, assigned ones go back. */
  pause(command: PauseTasksCommand, context: ApplyContext): CommandResult {
    const type = command.taskType
    if (type === undefined ? this.pausedAll : this.isPaused(type)) return UNCHANGED
    if (type === undefined) this.pausedAll = true
    else this.pausedTypes.add(type)
    for (const task of this.unfinished.values()) {
      if (type !== undefined && task.type !== type) continue
      if (task.state === 'pending' && !this.held.has(task)) {
        this.scheduler.removePending(task)
        this.held.add(task)
      } else if (task.state === 'assigned') this.unassign(task, 'ineligible', context)
    }
    return OK
  }

  /** Ends the pause of the type (every pause if absent); held tasks go back to the scheduler. */
  resume(command: ResumeTasksCommand): CommandResult {
    const type = command.taskType
    if (type === undefined) {
      if (!this.pausedAll && this.pausedTypes.size === 0) return UNCHANGED
      this.pausedAll = false
      this.pausedTypes.clear()
    } else if (!this.pausedTypes.delete(type)) return UNCHANGED
    for (const task of this.held) {
      if (this.isPaused(task.type)) continue
      this.held.delete(task)
      this.scheduler.addPending(task)
    }
    return OK
  }

  onAgentDown(agentId: string, reason: AgentDownReason, context: ApplyContext): void {
    const tasks = this.byAgent.get(agentId)
    if (tasks === undefined) return
    const message = reason === 'left' ? `agent ${agentId} left` : `agent ${agentId}'s session ended`
    for (const task of [...tasks.running].sort(compareTasks)) this.failAttempt(task, reason, message, context)
    for (const task of [...tasks.assigned].sort(compareTasks)) this.unassign(task, 'agentDown', context)
  }

  onAgentChanged(agentId: string, context: ApplyContext): void {
    const agent = this.members.record(agentId)
    if (agent === undefined || !agent.alive) return
    const tasks = this.byAgent.get(agentId)
    if (tasks !== undefined) {
      const assigned = [...tasks.assigned].sort(compareTasks)
      for (const task of assigned) {
        // Its worker went away: nobody there will start what was placed on it.
        if (!agent.runsTasks || !meetsConstraints(task.constraints, agent)) {
          this.unassign(task, 'ineligible', context)
        }
      }
      // Fewer slots than work: the least urgent assignments go back to pending.
      for (let i = assigned.length - 1; i >= 0 && this.used(agentId) > agent.concurrency; i--) {
        if (assigned[i].state === 'assigned') this.unassign(assigned[i], 'ineligible', context)
      }
    }
    this.scheduler.agentFreed(agentId)
  }

  /** The placement pass; the state machine runs it at the end of every entry. */
  schedule(context: ApplyContext): void {
    this.scheduler.schedule(context)
  }

  used(agentId: string): number {
    const tasks = this.byAgent.get(agentId)
    return tasks === undefined ? 0 : tasks.running.size + tasks.assigned.size
  }

  affinityAgent(key: string): string | undefined {
    return this.affinity.get(key)
  }

  /** Places a task that is out of the pending index on the agent; `announce` false: the caller reports it. */
  assign(task: TaskRecord, agentId: string, context: ApplyContext, announce = true): void {
    task.state = 'assigned'
    task.assignee = agentId
    task.updatedAt = context.time
    this.tasksOf(agentId).assigned.add(task)
    if (announce) context.events.push({ type: 'taskAssigned', taskId: task.id, agentId })
    this.emit(task, 'assigned', context, { assignee: agentId })
  }

  toSnapshot(): TasksSnapshot {
    const tasks: TasksSnapshot['tasks'] = []
    for (const record of this.records.values()) tasks.push({ ...toInfo(record), seq: record.seq })
    const snapshot: TasksSnapshot = {
      nextSeq: this.nextSeq,
      tasks,
      finished: [...this.finishedIds],
      affinity: [...this.affinity],
    }
    if (this.pausedAll || this.pausedTypes.size > 0) snapshot.paused = this.pauses()
    if (this.repeatRecords.size > 0) snapshot.repeats = [...this.repeatRecords.values()].map(r => ({ ...r }))
    if (this.history.revision > 0) snapshot.history = this.history.toSnapshot()
    return snapshot
  }

  /** Loads a snapshot section; the member table must be restored first. */
  restore(data: unknown): void {
    checkSnapshot(isRecord(data) && isPositive(data.nextSeq), 'tasks')
    this.nextSeq = data.nextSeq
    if (data.paused !== undefined) {
      const paused = data.paused
      checkSnapshot(
        isRecord(paused) && typeof paused.all === 'boolean' && isIdList(paused.types),
        'tasks.paused',
      )
      this.pausedAll = paused.all
      for (const type of paused.types) this.pausedTypes.add(type)
    }
    let previousSeq = 0
    for (const task of snapshotArray(data.tasks, 'tasks.tasks')) {
      const record = restoreTask(task)
      checkSnapshot(
        record.seq > previousSeq && record.seq < this.nextSeq && !this.records.has(record.id),
        'tasks.tasks',
      )
      previousSeq = record.seq
      this.records.set(record.id, record)
      if (TERMINAL.has(record.state)) continue
      this.unfinished.set(record.id, record)
      this.track(record)
      if (record.state === 'waiting') {
        checkSnapshot(record.dependsOn !== undefined || record.delayed === true, 'tasks.tasks waiting')
        if (record.delayed === true) this.delayedTasks.add(record)
        // A parent no longer kept was forgotten after completing: one that failed would have cancelled this.
        for (const parentId of record.dependsOn ?? []) {
          const parent = this.unfinished.get(parentId)
          if (parent === undefined) continue
          record.unmet++
          this.childrenOf(parentId).add(record)
        }
        checkSnapshot(record.unmet > 0 || record.delayed === true, 'tasks.tasks waiting')
      }
      if (record.state === 'pending') {
        if (this.isPaused(record.type)) this.held.add(record)
        else this.scheduler.restorePending(record)
      }
      if (record.assignee === undefined) continue
      // Only live agents hold tasks: a session end or a leave takes them back in the same entry.
      checkSnapshot(this.members.record(record.assignee)?.alive === true, 'tasks.tasks assignee')
      const tasks = this.tasksOf(record.assignee)
      if (record.state === 'assigned') tasks.assigned.add(record)
      else tasks.running.add(record)
    }
    for (const id of snapshotArray(data.finished, 'tasks.finished')) {
      checkSnapshot(
        isId(id) && TERMINAL.has(this.records.get(id)?.state as TaskState) && !this.finishedIds.has(id),
        'tasks.finished',
      )
      this.keepFinished(this.records.get(id)!)
    }
    checkSnapshot(this.finishedIds.size + this.unfinished.size === this.records.size, 'tasks.finished')
    for (const entry of snapshotArray(data.affinity, 'tasks.affinity')) {
      checkSnapshot(
        Array.isArray(entry) && entry.length === 2 && isId(entry[0]) && isId(entry[1]),
        'tasks.affinity',
      )
      this.affinity.set(entry[0], entry[1])
    }
    for (const value of data.repeats === undefined ? [] : snapshotArray(data.repeats, 'tasks.repeats')) {
      const repeat = restoreRepeat(value)
      checkSnapshot(!this.repeatRecords.has(repeat.id) && !this.records.has(repeat.id), 'tasks.repeats')
      this.repeatRecords.set(repeat.id, repeat)
    }
    if (data.history !== undefined) {
      const history = data.history
      checkSnapshot(isRecord(history) && isCount(history.revision), 'tasks.history')
      const revision = history.revision
      const changes = snapshotArray(history.changes, 'tasks.history.changes') as TaskChange[]
      checkSnapshot(
        changes.length <= revision &&
          changes.every(
            (change, i) =>
              isRecord(change) &&
              change.revision === revision - changes.length + i + 1 &&
              isId(change.taskId),
          ),
        'tasks.history.changes',
      )
      this.history.restore(revision, changes)
    }
  }

  private bestRecordFor(agent: AgentRecord): TaskRecord | undefined {
    let best: TaskRecord | undefined
    for (const task of this.byAgent.get(agent.agentId)?.assigned ?? []) {
      if (best === undefined || compareTasks(task, best) < 0) best = task
    }
    return best ?? this.scheduler.bestPendingFor(agent)
  }

  /** The agent, if it is alive and registered with the live session `sessionId`: who may start attempts. */
  private claimant(
    agentId: string,
    sessionId: string,
    context: ApplyContext,
  ): { ok: true; record: AgentRecord } | { ok: false; error: CommandResult } {
    if (!this.sessions.isLive(sessionId, context)) return { ok: false, error: sessionExpired(sessionId) }
    const record = this.members.record(agentId)
    if (record === undefined || !record.alive || record.sessionId !== sessionId) {
      return {
        ok: false,
        error: notClaimable(`agent ${agentId} is not registered with session ${sessionId}`),
      }
    }
    return { ok: true, record }
  }

  /** What a waiting task waits for, in words. */
  private waitingFor(task: TaskRecord): string {
    const parts: string[] = []
    if (task.delayed === true) parts.push(`for its run time ${new Date(task.runAt!).toISOString()}`)
    const parents = (task.dependsOn ?? []).filter(id => {
      const parent = this.records.get(id)
      return parent !== undefined && parent.state !== 'completed'
    })
    if (parents.length > 0) parts.push(`for task${parents.length > 1 ? 's' : ''} ${parents.join(', ')}`)
    return parts.join(' and ')
  }

  /** Hard filters for an agent that does not hold the task: alive, constraints, a free slot. */
  private eligible(task: TaskRecord, agent: AgentRecord): boolean {
    return (
      agent.alive && meetsConstraints(task.constraints, agent) && this.used(agent.agentId) < agent.concurrency
    )
  }

  /** A new task record from its spec, kept (not yet in any state's index). */
  private create(spec: TaskSpec, context: ApplyContext): TaskRecord {
    const record: TaskRecord = {
      id: spec.id,
      type: spec.type,
      // JSON has no -0; a snapshot would bring it back as 0.
      priority: spec.priority === 0 ? 0 : spec.priority,
      payload: spec.payload,
      constraints: spec.constraints,
      createdAt: context.time,
      deadline: spec.deadline,
      state: 'pending',
      attempt: 0,
      fencingToken: 0,
      updatedAt: context.time,
      runAt: spec.runAt,
      delayed: spec.runAt === undefined ? undefined : true,
      dependsOn: spec.dependsOn === undefined ? undefined : [...new Set(spec.dependsOn)],
      backoff: spec.backoff,
      retention: spec.retention,
      seq: this.nextSeq++,
      classKey: classKeyOf(spec.constraints),
      unmet: 0,
    }
    this.records.set(record.id, record)
    this.unfinished.set(record.id, record)
    return record
  }

  private start(task: TaskRecord, agent: AgentRecord, context: ApplyContext): void {
    const agentId = agent.agentId
    const tasks = this.tasksOf(agentId)
    tasks.assigned.delete(task)
    tasks.running.add(task)
    task.state = 'running'
    this.track(task)
    task.assignee = agentId
    task.lastAgentId = agentId
    task.attempt++
    task.fencingToken = context.index
    task.startedAt = context.time
    task.retryAt = undefined
    task.progress = undefined
    task.updatedAt = context.time
    const key = task.constraints.affinity
    if (key !== undefined) {
      // Re-inserted: Map order is the eviction order, least recently started first.
      this.affinity.delete(key)
      this.affinity.set(key, agentId)
      if (this.affinity.size > this.options.maxAffinityKeys) {
        this.affinity.delete(this.affinity.keys().next().value as string)
      }
    }
    context.events.push({
      type: 'taskStarted',
      taskId: task.id,
      agentId,
      attempt: task.attempt,
      fencingToken: task.fencingToken,
    })
    this.emit(task, 'started', context, { assignee: agentId })
  }

  /** Takes an assigned task off its agent and back to pending. */
  private unassign(task: TaskRecord, reason: TaskUnassignedEvent['reason'], context: ApplyContext): void {
    const agentId = this.release(task)
    context.events.push({ type: 'taskUnassigned', taskId: task.id, agentId, reason })
    this.toPending(task, context)
    this.emit(task, 'pending', context)
  }

  /** Takes an assigned task off its agent (which gains a slot); answers that agent. */
  private release(task: TaskRecord): string {
    const agentId = task.assignee!
    this.dropFromAgent(task, agentId)
    this.scheduler.agentFreed(agentId)
    task.assignee = undefined
    return agentId
  }

  /** Ends the running attempt; answers its agent. */
  private endAttempt(
    task: TaskRecord,
    reason: TaskAttemptEndedEvent['reason'],
    context: ApplyContext,
  ): string {
    const agentId = task.assignee!
    this.dropFromAgent(task, agentId)
    this.scheduler.agentFreed(agentId)
    task.assignee = undefined
    task.updatedAt = context.time
    context.events.push({
      type: 'taskAttemptEnded',
      taskId: task.id,
      agentId,
      attempt: task.attempt,
      fencingToken: task.fencingToken,
      reason,
    })
    return agentId
  }

  /**
   * A failed attempt: retried after the back-off, or dead once `maxRetries` retries are used (attempts ended
   * by a lease lapse of their agent do not count).
   */
  private failAttempt(
    task: TaskRecord,
    reason: 'failed' | 'timeout' | 'session' | 'left',
    error: string,
    context: ApplyContext,
  ): void {
    const agentId = this.endAttempt(task, reason, context)
    task.error = error
    if (task.attempt - (task.lapsedAttempts ?? 0) > task.constraints.maxRetries) {
      context.events.push({ type: 'taskDead', taskId: task.id, attempt: task.attempt, error })
      task.state = 'dead'
      this.emit(task, 'dead', context, { assignee: agentId, error })
      this.finish(task, 'dead', context)
      return
    }
    const backoff = this.backoffOf(task)
    task.state = 'failed'
    this.track(task)
    task.retryAt = context.time + backoff
    context.events.push({
      type: 'taskFailed',
      taskId: task.id,
      agentId,
      attempt: task.attempt,
      error,
      retryAt: task.retryAt,
    })
    this.emit(task, 'failed', context, { assignee: agentId, error })
    if (backoff === 0) this.retry(task, context)
  }

  /** Ms before the retry after the task's latest attempt failed. */
  private backoffOf(task: TaskRecord): number {
    const backoff = task.backoff
    const max = backoff?.maxDelay ?? this.options.retryBackoffMaxMs
    if (backoff?.type === 'fixed') return Math.min(backoff.delay, max)
    const base = backoff?.delay ?? this.options.retryBackoffBaseMs
    // The exponent is capped so the product stays finite; the cap applies anyway.
    return Math.min(max, base * 2 ** Math.min(task.attempt - 1, 52))
  }

  private retry(task: TaskRecord, context: ApplyContext): void {
    task.retryAt = undefined
    context.events.push({ type: 'taskRetry', taskId: task.id, attempt: task.attempt })
    this.toPending(task, context)
    this.emit(task, 'retrying', context)
  }

  private expireNow(task: TaskRecord, context: ApplyContext): void {
    this.detach(task, 'expired', context)
    context.events.push({ type: 'taskExpired', taskId: task.id })
    task.state = 'expired'
    this.emit(task, 'expired', context)
    this.finish(task, 'expired', context)
  }

  private cancelNow(task: TaskRecord, reason: string, context: ApplyContext): void {
    this.detach(task, 'cancelled', context)
    task.cancelReason = reason
    task.state = 'cancelled'
    this.emit(task, 'cancelled', context, { error: reason })
    this.finish(task, 'cancelled', context)
  }

  /** A waiting task whose wait is over becomes pending. */
  private wake(task: TaskRecord, context: ApplyContext): void {
    this.toPending(task, context)
    this.emit(task, 'pending', context)
  }

  /** Takes an unfinished task out of the pending index, its agent's assignments, or its running attempt. */
  private detach(task: TaskRecord, reason: 'expired' | 'cancelled', context: ApplyContext): void {
    switch (task.state) {
      case 'pending':
        this.removePending(task)
        break
      case 'assigned':
        this.release(task)
        break
      case 'running':
        this.endAttempt(task, reason, context)
        break
      default:
        break
    }
    task.retryAt = undefined
  }

  private toPending(task: TaskRecord, context: ApplyContext): void {
    task.state = 'pending'
    this.track(task)
    task.assignee = undefined
    task.updatedAt = context.time
    if (this.isPaused(task.type)) this.held.add(task)
    else this.scheduler.addPending(task)
  }

  private removePending(task: TaskRecord): void {
    if (!this.held.delete(task)) this.scheduler.removePending(task)
  }

  /**
   * Files a task that just reached a finished state (already set, its change emitted): out of the indexes,
   * kept among the finished (the oldest beyond the bound forgotten), and its dependants settled: pending once
   * every parent completed, cancelled if this one did not complete.
   */
  private finish(
    task: TaskRecord,
    state: 'completed' | 'dead' | 'expired' | 'cancelled',
    context: ApplyContext,
  ): void {
    task.state = state
    this.timedTasks.delete(task)
    this.delayedTasks.delete(task)
    for (const parentId of task.dependsOn ?? []) this.children.get(parentId)?.delete(task)
    task.unmet = 0
    task.delayed = undefined
    task.assignee = undefined
    task.updatedAt = context.time
    this.unfinished.delete(task.id)
    this.keepFinished(task)
    this.trimFinished()
    const dependants = this.children.get(task.id)
    if (dependants === undefined) return
    this.children.delete(task.id)
    const outer = this.cascade === undefined
    this.cascade ??= []
    for (const child of dependants) this.cascade.push({ child, parent: task })
    if (!outer) return
    // Breadth first, in order: every replica settles the same dependants in the same order.
    for (let i = 0; i < this.cascade.length; i++) {
      const { child, parent } = this.cascade[i]
      if (child.state !== 'waiting') continue
      if (parent.state === 'completed') {
        child.unmet--
        if (child.unmet === 0 && child.delayed !== true) this.wake(child, context)
      } else this.cancelNow(child, dependencyReason(parent), context)
    }
    this.cascade = undefined
  }

  /** Numbers the change, keeps it for watches, and reports it with the entry's events. */
  private emit(
    task: TaskRecord,
    type: TaskChangeType,
    context: ApplyContext,
    extra: { assignee?: string; progress?: JsonValue; result?: JsonValue; error?: string } = {},
  ): void {
    const change: Omit<TaskChange, 'revision'> = {
      type,
      taskId: task.id,
      taskType: task.type,
      attempt: task.attempt,
      timestamp: context.time,
    }
    if (extra.assignee !== undefined) change.assignee = extra.assignee
    if (extra.progress !== undefined) change.progress = extra.progress
    if (extra.result !== undefined) change.result = extra.result
    if (extra.error !== undefined) change.error = extra.error
    context.events.push({ type: 'taskChange', change: this.history.push(change) })
  }

  /** Keeps `timedTasks` up to date after a change of the unfinished task's state. */
  private track(task: TaskRecord): void {
    const timed =
      task.deadline !== undefined ||
      task.state === 'failed' ||
      (task.state === 'running' && task.constraints.timeout > 0)
    if (timed) this.timedTasks.add(task)
    else this.timedTasks.delete(task)
  }

  private childrenOf(parentId: string): Set<TaskRecord> {
    let children = this.children.get(parentId)
    if (children === undefined) {
      children = new Set()
      this.children.set(parentId, children)
    }
    return children
  }

  private tasksOf(agentId: string): AgentTasks {
    let tasks = this.byAgent.get(agentId)
    if (tasks === undefined) {
      tasks = { running: new Set(), assigned: new Set() }
      this.byAgent.set(agentId, tasks)
    }
    return tasks
  }

  private dropFromAgent(task: TaskRecord, agentId: string): void {
    const tasks = this.byAgent.get(agentId)
    if (tasks === undefined) return
    tasks.running.delete(task)
    tasks.assigned.delete(task)
    if (tasks.running.size === 0 && tasks.assigned.size === 0) this.byAgent.delete(agentId)
  }
}

function timedOut(task: TaskRecord, time: number): boolean {
  const timeout = task.constraints.timeout
  return timeout > 0 && task.startedAt! + timeout <= time
}

function timeoutMessage(task: TaskRecord): string {
  return `attempt ${task.attempt} timed out after ${task.constraints.timeout} ms`
}

function isCurrent(task: TaskRecord, attempt: number, fencingToken: number): boolean {
  return task.state === 'running' && task.attempt === attempt && task.fencingToken === fencingToken
}

function taskState(task: TaskRecord): CommandResult {
  return { type: 'taskState', taskId: task.id, state: task.state }
}

function notFound(taskId: string): CommandResult {
  return errorResult('NotFound', `task ${taskId} does not exist`)
}

function notClaimable(message: string): CommandResult {
  return errorResult('NotClaimable', message)
}

/**
 * Whether `agentId` may end the task's running attempt: attempt and fencing token are readable by every
 * member, so they alone would let any worker complete another's task with a forged result.
 */
function isAssignee(task: TaskRecord, agentId: string | undefined): boolean {
  return agentId === undefined || task.assignee === agentId
}

function notAssignee(task: TaskRecord, agentId: string | undefined): CommandResult {
  return errorResult('NotAssignee', `task ${task.id} runs on ${task.assignee}, not on ${agentId}`)
}

function staleAttempt(task: TaskRecord, attempt: number): CommandResult {
  return errorResult(
    'StaleAttempt',
    `attempt ${attempt} of task ${task.id} is not current (task ${task.state}, attempt ${task.attempt})`,
  )
}

/** A copy with only defined optional fields, so a view equals its snapshot round trip. */
function toInfo(record: TaskRecord): TaskInfo {
  const info: TaskInfo = {
    id: record.id,
    type: record.type,
    priority: record.priority,
    payload: record.payload,
    constraints: record.constraints,
    createdAt: record.createdAt,
    state: record.state,
    attempt: record.attempt,
    fencingToken: record.fencingToken,
    updatedAt: record.updatedAt,
  }
  if (record.deadline !== undefined) info.deadline = record.deadline
  if (record.assignee !== undefined) info.assignee = record.assignee
  if (record.lastAgentId !== undefined) info.lastAgentId = record.lastAgentId
  if (record.startedAt !== undefined) info.startedAt = record.startedAt
  if (record.retryAt !== undefined) info.retryAt = record.retryAt
  if (record.result !== undefined) info.result = record.result
  if (record.error !== undefined) info.error = record.error
  if (record.runAt !== undefined) info.runAt = record.runAt
  if (record.delayed !== undefined) info.delayed = record.delayed
  if (record.dependsOn !== undefined) info.dependsOn = record.dependsOn
  if (record.backoff !== undefined) info.backoff = record.backoff
  if (record.retention !== undefined) info.retention = record.retention
  if (record.progress !== undefined) info.progress = record.progress
  if (record.cancelReason !== undefined) info.cancelReason = record.cancelReason
  if (record.lapsedAttempts !== undefined) info.lapsedAttempts = record.lapsedAttempts
  return info
}

/** The spec a task was submitted with, as far as it is kept: what a resubmission is compared with. */
function specOf(record: TaskRecord): TaskSpec {
  return {
    id: record.id,
    type: record.type,
    priority: record.priority,
    payload: record.payload,
    constraints: record.constraints,
    deadline: record.deadline,
    runAt: record.runAt,
    dependsOn: record.dependsOn,
    backoff: record.backoff,
    retention: record.retention,
  }
}

/**
 * JSON with keys sorted and undefined left out, so that two specs with the same contents compare equal
 * whatever order their proposers wrote the keys in; dependencies compare as sets.
 */
function canonical(spec: TaskSpec): string {
  const normalized = { ...spec, priority: spec.priority === 0 ? 0 : spec.priority }
  if (spec.dependsOn !== undefined) normalized.dependsOn = [...new Set(spec.dependsOn)].sort()
  return JSON.stringify(sortKeys(normalized))
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (typeof value !== 'object' || value === null) return value
  const sorted: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) {
    const field = (value as Record<string, unknown>)[key]
    if (field !== undefined) sorted[key] = sortKeys(field)
  }
  return sorted
}

function dependencyReason(parent: TaskRecord): string {
  return `dependency ${parent.id} ended ${parent.state}`
}

function repeatDone(repeat: RepeatInfo): boolean {
  const limit = repeat.spec.repeat.limit
  return limit !== undefined && repeat.count >= limit
}

function restoreRepeat(value: unknown): RepeatInfo {
  checkSnapshot(
    isRecord(value) &&
      isTaskSpec(value.spec) &&
      value.spec.repeat !== undefined &&
      value.id === value.spec.id &&
      isCount(value.createdAt) &&
      isCount(value.anchor) &&
      (value.lastSlot === undefined || isCount(value.lastSlot)) &&
      isCount(value.count),
    'tasks.repeats',
  )
  const repeat: RepeatInfo = {
    id: value.id as string,
    spec: value.spec as RepeatInfo['spec'],
    createdAt: value.createdAt,
    anchor: value.anchor,
    count: value.count,
  }
  if (value.lastSlot !== undefined) repeat.lastSlot = value.lastSlot as number
  return repeat
}

const optional = <T>(value: unknown, check: (value: unknown) => value is T): boolean =>
  value === undefined || check(value)
const isString = (value: unknown): value is string => typeof value === 'string'

function restoreTask(value: unknown): TaskRecord {
  checkSnapshot(isRecord(value), 'tasks.tasks')
  const spec: TaskSpec = {
    id: value.id as string,
    type: value.type as string,
    priority: value.priority as number,
    payload: value.payload as TaskSpec['payload'],
    constraints: value.constraints as TaskConstraintsSpec,
    deadline: value.deadline as number | undefined,
    runAt: value.runAt as number | undefined,
    dependsOn: value.dependsOn as string[] | undefined,
    backoff: value.backoff as BackoffSpec | undefined,
    retention: value.retention as RetentionSpec | undefined,
  }
  const state = value.state as TaskState
  const holds = state === 'assigned' || state === 'running'
  checkSnapshot(
    isTaskSpec(spec) &&
      isPositive(value.seq) &&
      isCount(value.createdAt) &&
      isTaskState(state) &&
      (value.delayed === undefined ||
        (value.delayed === true && state === 'waiting' && spec.runAt !== undefined)) &&
      optional(value.progress, isJsonValue) &&
      optional(value.cancelReason, isString) &&
      (state === 'cancelled') === (value.cancelReason !== undefined) &&
      (holds ? isId(value.assignee) : value.assignee === undefined) &&
      optional(value.lastAgentId, isId) &&
      isCount(value.attempt) &&
      isCount(value.fencingToken) &&
      optional(value.startedAt, isCount) &&
      (state === 'failed' ? isCount(value.retryAt) : value.retryAt === undefined) &&
      optional(value.result, isJsonValue) &&
      optional(value.error, isString) &&
      optional(value.lapsedAttempts, isPositive) &&
      isCount(value.updatedAt),
    'tasks.tasks',
  )
  return {
    ...spec,
    createdAt: value.createdAt,
    state,
    assignee: value.assignee as string | undefined,
    lastAgentId: value.lastAgentId as string | undefined,
    attempt: value.attempt,
    fencingToken: value.fencingToken,
    startedAt: value.startedAt as number | undefined,
    retryAt: value.retryAt as number | undefined,
    result: value.result as JsonValue | undefined,
    error: value.error as string | undefined,
    updatedAt: value.updatedAt,
    delayed: value.delayed as true | undefined,
    progress: value.progress as JsonValue | undefined,
    cancelReason: value.cancelReason as string | undefined,
    lapsedAttempts: value.lapsedAttempts as number | undefined,
    seq: value.seq,
    classKey: classKeyOf(spec.constraints),
    unmet: 0,
  }
}
