import type {
  CancelTaskCommand,
  ClaimTaskCommand,
  CompleteTaskCommand,
  ExpireTaskCommand,
  FailTaskCommand,
  RetryDueCommand,
  RunTasksCommand,
  StealTaskCommand,
  SubmitTaskCommand,
  SubmitTasksCommand,
  TimeoutTaskCommand,
} from './commands.ts'
import type { ApplyContext } from './context.ts'
import type { TaskAttemptEndedEvent, TaskUnassignedEvent } from './events.ts'
import { isJsonValue, type JsonValue } from './json.ts'
import type { AgentDownReason, AgentListener, AgentRecord, MemberTable } from './members.ts'
import { type CommandResult, errorResult, NO_TASK, UNCHANGED } from './results.ts'
import { classKeyOf, compareTasks, meetsConstraints, Scheduler, type SchedulerHost } from './scheduler.ts'
import { type SessionTable, sessionExpired } from './sessions.ts'
import { isTaskSpec, type TaskConstraintsSpec, type TaskSpec, type TaskState } from './task-spec.ts'
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
  /** The latest failure's message (also set when dead or cancelled). */
  error?: string
  /** State time of the last change. */
  updatedAt: number
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
}

interface TaskRecord extends TaskInfo {
  readonly seq: number
  /** `classKeyOf(constraints)`. Derived. */
  readonly classKey: string
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
}

/** The tasks of one agent. Derived. */
interface AgentTasks {
  running: Set<TaskRecord>
  assigned: Set<TaskRecord>
}

const TERMINAL: ReadonlySet<TaskState> = new Set(['completed', 'dead', 'expired'])
const STATES: ReadonlySet<TaskState> = new Set([
  'pending',
  'assigned',
  'running',
  'completed',
  'failed',
  'dead',
  'expired',
])

/**
 * Task distribution: `pending → assigned → running → completed | failed → pending (retry) | dead`, plus
 * `expired` when the deadline passes first. Every transition is an entry; the scheduler (`scheduler.ts`)
 * places pending tasks at the end of every entry. An attempt is identified by (attempt, fencingToken), the
 * token being the index of the entry that started it, and only the running attempt may complete or fail.
 *
 * Time checks are lazy as well as proposed: a command touching a task whose deadline, timeout or retry time
 * has passed (by state time) first applies that, exactly as the leader's housekeeping entry would.
 */
export class TaskTable implements AgentListener, SchedulerHost<TaskRecord> {
  private readonly records = new Map<string, TaskRecord>()
  /** Tasks not finished, in submission order. Derived. */
  private readonly unfinished = new Map<string, TaskRecord>()
  /** Ids of finished tasks still kept, oldest finished first. */
  private readonly finished = new Set<string>()
  /**
   * Unfinished tasks that something may happen to with time alone: with a deadline, running with a timeout,
   * or failed (waiting for their retry). What the leader's housekeeping looks at. Derived.
   */
  private readonly timed = new Set<TaskRecord>()
  private readonly affinity = new Map<string, string>()
  private readonly byAgent = new Map<string, AgentTasks>()
  private readonly scheduler: Scheduler<TaskRecord>
  private readonly members: MemberTable
  private readonly sessions: SessionTable
  private readonly options: TaskTableOptions
  private nextSeq = 1

  constructor(members: MemberTable, sessions: SessionTable, options: TaskTableOptions) {
    this.members = members
    this.sessions = sessions
    this.options = options
    this.scheduler = new Scheduler(members, this)
  }

  get pendingCount(): number {
    return this.scheduler.pendingCount
  }

  task(taskId: string): TaskInfo | undefined {
    const record = this.records.get(taskId)
    return record === undefined ? undefined : toInfo(record)
  }

  /** Tasks assigned to or running on the agent, in schedule order. */
  tasksAssignedTo(agentId: string): TaskInfo[] {
    const tasks = this.byAgent.get(agentId)
    if (tasks === undefined) return []
    return [...tasks.running, ...tasks.assigned].sort(compareTasks).map(toInfo)
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

  due(now: number): DueTaskActions {
    const due: DueTaskActions = { timeouts: [], retries: [], expiries: [] }
    for (const task of this.timed) {
      if (task.deadline !== undefined && task.deadline <= now) due.expiries.push(task.id)
      else if (task.state === 'running' && timedOut(task, now)) {
        due.timeouts.push({ taskId: task.id, attempt: task.attempt })
      } else if (task.state === 'failed' && task.retryAt! <= now) due.retries.push(task.id)
    }
    return due
  }

  submit(command: SubmitTaskCommand, context: ApplyContext): CommandResult {
    const spec = command.task
    if (this.records.has(spec.id)) return errorResult('AlreadyExists', `task ${spec.id} exists`)
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
      seq: this.nextSeq++,
      classKey: classKeyOf(spec.constraints),
    }
    this.records.set(record.id, record)
    this.unfinished.set(record.id, record)
    this.track(record)
    this.scheduler.addPending(record)
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
            ),
          )
          break
      }
    }
    return { type: 'taskResults', results }
  }

  /**
   * Starts the task `next()` would pick for the agent: its best assigned task, else the best pending one it
   * may take (its hard filters and a free slot), settling each candidate's due time first.
   */
  next(agentId: string, sessionId: string, context: ApplyContext): CommandResult {
    const claimant = this.claimant(agentId, sessionId, context)
    if (claimant.ok === false) return claimant.error
    const agent = claimant.record
    for (;;) {
      const task = this.bestRecordFor(agent)
      if (task === undefined) return NO_TASK
      // A candidate whose deadline passed expires here instead, and the next one is looked at.
      this.settle(task, context)
      if (task.state === 'pending') this.scheduler.removePending(task)
      else if (task.state !== 'assigned' || task.assignee !== agentId) continue
      this.start(task, agent, context)
      return { type: 'taskClaimed', taskId: task.id, attempt: task.attempt, fencingToken: task.fencingToken }
    }
  }

  claim(command: ClaimTaskCommand, context: ApplyContext): CommandResult {
    const { taskId, agentId } = command
    const claimant = this.claimant(agentId, command.sessionId, context)
    if (claimant.ok === false) return claimant.error
    const agent = claimant.record
    const task = this.records.get(taskId)
    if (task === undefined) return notFound(taskId)
    this.settle(task, context)
    // One attempt per task and entry: a second would share the first's fencing token.
    if (task.fencingToken === context.index) return notClaimable(`task ${taskId} was started in this entry`)
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
        this.scheduler.removePending(task)
        break
      case 'running':
        return notClaimable(`task ${taskId} is running on ${task.assignee}`)
      case 'failed':
        return notClaimable(`task ${taskId} may be retried from ${task.retryAt}`)
      default:
        return notClaimable(`task ${taskId} is ${task.state}`)
    }
    this.start(task, agent, context)
    return { type: 'taskClaimed', taskId, attempt: task.attempt, fencingToken: task.fencingToken }
  }

  complete(command: CompleteTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined) return notFound(command.taskId)
    this.settle(task, context)
    if (!isCurrent(task, command.attempt, command.fencingToken)) return staleAttempt(task, command.attempt)
    if (!isAssignee(task, command.agentId)) return notAssignee(task, command.agentId)
    const agentId = this.endAttempt(task, 'completed', context)
    task.result = command.result
    task.error = undefined
    context.events.push({ type: 'taskCompleted', taskId: task.id, agentId, attempt: task.attempt })
    this.finish(task, 'completed', context)
    return taskState(task)
  }

  fail(command: FailTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined) return notFound(command.taskId)
    this.settle(task, context)
    if (!isCurrent(task, command.attempt, command.fencingToken)) return staleAttempt(task, command.attempt)
    if (!isAssignee(task, command.agentId)) return notAssignee(task, command.agentId)
    this.failAttempt(task, 'failed', command.error, context)
    return taskState(task)
  }

  steal(command: StealTaskCommand, context: ApplyContext): CommandResult {
    const { taskId, fromAgentId, toAgentId } = command
    const task = this.records.get(taskId)
    // No lazy time checks here: a refused steal changes nothing.
    if (
      task === undefined ||
      task.state !== 'assigned' ||
      task.assignee !== fromAgentId ||
      fromAgentId === toAgentId ||
      (task.deadline !== undefined && task.deadline <= context.time)
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

  timeout(command: TimeoutTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || task.state !== 'running' || task.attempt !== command.attempt) return UNCHANGED
    if (!timedOut(task, context.time)) return UNCHANGED
    this.failAttempt(task, 'timeout', timeoutMessage(task), context)
    return taskState(task)
  }

  retryDue(command: RetryDueCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || task.state !== 'failed' || task.retryAt! > context.time) return UNCHANGED
    this.retry(task, context)
    return taskState(task)
  }

  expire(command: ExpireTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined || TERMINAL.has(task.state)) return UNCHANGED
    if (task.deadline === undefined || task.deadline > context.time) return UNCHANGED
    this.expireNow(task, context)
    return taskState(task)
  }

  cancel(command: CancelTaskCommand, context: ApplyContext): CommandResult {
    const task = this.records.get(command.taskId)
    if (task === undefined) return notFound(command.taskId)
    this.settle(task, context)
    if (TERMINAL.has(task.state)) return UNCHANGED
    this.detach(task, 'cancelled', context)
    task.error = 'cancelled'
    context.events.push({ type: 'taskDead', taskId: task.id, attempt: task.attempt, error: 'cancelled' })
    this.finish(task, 'dead', context)
    return taskState(task)
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
        if (!meetsConstraints(task.constraints, agent)) this.unassign(task, 'ineligible', context)
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
  }

  toSnapshot(): TasksSnapshot {
    const tasks: TasksSnapshot['tasks'] = []
    for (const record of this.records.values()) tasks.push({ ...toInfo(record), seq: record.seq })
    return {
      nextSeq: this.nextSeq,
      tasks,
      finished: [...this.finished],
      affinity: [...this.affinity],
    }
  }

  /** Loads a snapshot section; the member table must be restored first. */
  restore(data: unknown): void {
    checkSnapshot(isRecord(data) && isPositive(data.nextSeq), 'tasks')
    this.nextSeq = data.nextSeq
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
      if (record.state === 'pending') this.scheduler.restorePending(record)
      if (record.assignee === undefined) continue
      // Only live agents hold tasks: a session end or a leave takes them back in the same entry.
      checkSnapshot(this.members.record(record.assignee)?.alive === true, 'tasks.tasks assignee')
      const tasks = this.tasksOf(record.assignee)
      if (record.state === 'assigned') tasks.assigned.add(record)
      else tasks.running.add(record)
    }
    for (const id of snapshotArray(data.finished, 'tasks.finished')) {
      checkSnapshot(
        isId(id) && TERMINAL.has(this.records.get(id)?.state as TaskState) && !this.finished.has(id),
        'tasks.finished',
      )
      this.finished.add(id)
    }
    checkSnapshot(this.finished.size + this.unfinished.size === this.records.size, 'tasks.finished')
    for (const entry of snapshotArray(data.affinity, 'tasks.affinity')) {
      checkSnapshot(
        Array.isArray(entry) && entry.length === 2 && isId(entry[0]) && isId(entry[1]),
        'tasks.affinity',
      )
      this.affinity.set(entry[0], entry[1])
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

  /** Applies what state time says already happened: deadline passed, attempt timed out, retry due. */
  private settle(task: TaskRecord, context: ApplyContext): void {
    if (TERMINAL.has(task.state)) return
    if (task.deadline !== undefined && task.deadline <= context.time) this.expireNow(task, context)
    else if (task.state === 'running' && timedOut(task, context.time)) {
      this.failAttempt(task, 'timeout', timeoutMessage(task), context)
    } else if (task.state === 'failed' && task.retryAt! <= context.time) this.retry(task, context)
  }

  /** Hard filters for an agent that does not hold the task: alive, constraints, a free slot. */
  private eligible(task: TaskRecord, agent: AgentRecord): boolean {
    return (
      agent.alive && meetsConstraints(task.constraints, agent) && this.used(agent.agentId) < agent.concurrency
    )
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
  }

  /** Takes an assigned task off its agent and back to pending. */
  private unassign(task: TaskRecord, reason: TaskUnassignedEvent['reason'], context: ApplyContext): void {
    const agentId = this.release(task)
    context.events.push({ type: 'taskUnassigned', taskId: task.id, agentId, reason })
    this.toPending(task, context)
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

  /** A failed attempt: retried after the back-off, or dead once `maxRetries` retries are used. */
  private failAttempt(
    task: TaskRecord,
    reason: 'failed' | 'timeout' | 'session' | 'left',
    error: string,
    context: ApplyContext,
  ): void {
    const agentId = this.endAttempt(task, reason, context)
    task.error = error
    if (task.attempt > task.constraints.maxRetries) {
      context.events.push({ type: 'taskDead', taskId: task.id, attempt: task.attempt, error })
      this.finish(task, 'dead', context)
      return
    }
    const { retryBackoffBaseMs, retryBackoffMaxMs } = this.options
    // The exponent is capped so the product stays finite; the cap applies anyway.
    const backoff = Math.min(retryBackoffMaxMs, retryBackoffBaseMs * 2 ** Math.min(task.attempt - 1, 52))
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
    if (backoff === 0) this.retry(task, context)
  }

  private retry(task: TaskRecord, context: ApplyContext): void {
    task.retryAt = undefined
    context.events.push({ type: 'taskRetry', taskId: task.id, attempt: task.attempt })
    this.toPending(task, context)
  }

  private expireNow(task: TaskRecord, context: ApplyContext): void {
    this.detach(task, 'expired', context)
    context.events.push({ type: 'taskExpired', taskId: task.id })
    this.finish(task, 'expired', context)
  }

  /** Takes an unfinished task out of the pending index, its agent's assignments, or its running attempt. */
  private detach(task: TaskRecord, reason: 'expired' | 'cancelled', context: ApplyContext): void {
    switch (task.state) {
      case 'pending':
        this.scheduler.removePending(task)
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
    this.scheduler.addPending(task)
  }

  private finish(task: TaskRecord, state: 'completed' | 'dead' | 'expired', context: ApplyContext): void {
    task.state = state
    this.timed.delete(task)
    task.assignee = undefined
    task.updatedAt = context.time
    this.unfinished.delete(task.id)
    this.finished.add(task.id)
    while (this.finished.size > this.options.maxFinishedTasks) {
      const oldest = this.finished.keys().next().value as string
      this.finished.delete(oldest)
      this.records.delete(oldest)
    }
  }

  /** Keeps `timed` up to date after a change of the unfinished task's state. */
  private track(task: TaskRecord): void {
    const timed =
      task.deadline !== undefined ||
      task.state === 'failed' ||
      (task.state === 'running' && task.constraints.timeout > 0)
    if (timed) this.timed.add(task)
    else this.timed.delete(task)
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
  return info
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
  }
  const state = value.state as TaskState
  const holds = state === 'assigned' || state === 'running'
  checkSnapshot(
    isTaskSpec(spec) &&
      isPositive(value.seq) &&
      isCount(value.createdAt) &&
      STATES.has(state) &&
      (holds ? isId(value.assignee) : value.assignee === undefined) &&
      optional(value.lastAgentId, isId) &&
      isCount(value.attempt) &&
      isCount(value.fencingToken) &&
      optional(value.startedAt, isCount) &&
      (state === 'failed' ? isCount(value.retryAt) : value.retryAt === undefined) &&
      optional(value.result, isJsonValue) &&
      optional(value.error, isString) &&
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
    seq: value.seq,
    classKey: classKeyOf(spec.constraints),
  }
}
