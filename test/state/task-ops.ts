import fc from 'fast-check'
import { expect } from 'vitest'
import type { Command, FailTaskCommand, RunTaskOp, SubmitTaskCommand } from '../../src/state/commands.ts'
import type { StateEvent } from '../../src/state/events.ts'
import type { RegisteredAgent } from '../../src/state/members.ts'
import type { StateMachine } from '../../src/state/state-machine.ts'
import type { TaskState } from '../../src/state/task-spec.ts'
import type { TaskInfo } from '../../src/state/tasks.ts'

/**
 * Random task-module operations for property tests. An operation names agents and tasks by position and is
 * resolved against the live state when applied (current attempt, current assignee, the agent's session), so
 * that most of them hit, while some are deliberately stale or wrong.
 */

export const agentIds = ['a1', 'a2', 'a3']
export const taskIds = ['t1', 't2', 't3', 't4', 't5', 't6']
const capabilities = ['gpu', 'cpu']
const names = ['n1', 'n2', 'n3']

export type TaskOp =
  | { kind: 'register'; session: number; agent: number; name: number; caps: string[]; concurrency: number }
  | {
      kind: 'update'
      agent: number
      caps: string[] | undefined
      concurrency: number | undefined
      name?: number
    }
  | { kind: 'deregister'; agent: number }
  | {
      kind: 'submit'
      task: number
      priority: number
      caps: string[]
      exclude: string[]
      preferred: string[]
      maxRetries: number
      timeout: number
      deadlineIn: number | undefined
      affinity: string | undefined
    }
  /** `own`: the agent the task is assigned to, if it is assigned. */
  | { kind: 'claim'; task: number; agent: number; own: boolean; wrongSession: boolean }
  /**
   * `running`: the task-th running task, if any runs. `stale`: 0 the current attempt, 1 an earlier one, 2 the
   * current attempt with a wrong token.
   */
  | { kind: 'complete' | 'fail'; task: number; running: boolean; stale: number }
  | { kind: 'steal'; task: number; to: number; fromAssignee: boolean; from: number }
  | { kind: 'timeout'; task: number; attemptDelta: number }
  | { kind: 'retryDue' | 'expireTask'; task: number }
  /** `running`: the task-th running task, if any runs. */
  | { kind: 'cancel'; task: number; running: boolean }
  /** A worker's batch (`runTasks`): its parts resolved against the state before the entry. */
  | { kind: 'run'; agent: number; wrongSession: boolean; parts: RunPart[] }
  /** Several submissions in one entry (`submitTasks`). */
  | { kind: 'submitMany'; tasks: Extract<TaskOp, { kind: 'submit' }>[] }

/** One operation of a `run` batch; `complete` and `fail` as the single ops, `claim` of any task. */
export type RunPart =
  | { part: 'next' }
  | { part: 'claim'; task: number; own: boolean }
  | { part: 'complete' | 'fail'; task: number; running: boolean; stale: number }

const weighted = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary })
const index = (length: number) => fc.nat({ max: length - 1 })
const caps = fc.subarray(capabilities)
const agentRef = fc.oneof(fc.constantFrom(...agentIds), fc.constantFrom(...names))

const submitOp = fc.record({
  kind: fc.constant('submit' as const),
  task: index(taskIds.length),
  priority: fc.integer({ min: 0, max: 2 }),
  caps,
  exclude: fc.oneof(
    weighted(3, fc.constant<string[]>([])),
    weighted(1, fc.array(agentRef, { maxLength: 2 })),
  ),
  preferred: fc.oneof(
    weighted(3, fc.constant<string[]>([])),
    weighted(1, fc.array(agentRef, { maxLength: 2 })),
  ),
  maxRetries: fc.integer({ min: 0, max: 2 }),
  timeout: fc.constantFrom(0, 0, 300),
  deadlineIn: fc.option(fc.integer({ min: 0, max: 2_000 }), { nil: undefined, freq: 3 }),
  affinity: fc.option(fc.constantFrom('k1', 'k2'), { nil: undefined, freq: 2 }),
})

const runPart: fc.Arbitrary<RunPart> = fc.oneof(
  weighted(3, fc.record({ part: fc.constant('next' as const) })),
  weighted(
    1,
    fc.record({
      part: fc.constant('claim' as const),
      task: index(taskIds.length),
      own: fc.boolean(),
    }),
  ),
  weighted(
    3,
    fc.record({
      part: fc.constantFrom('complete' as const, 'fail' as const),
      task: index(taskIds.length),
      running: fc.oneof(weighted(4, fc.constant(true)), weighted(1, fc.constant(false))),
      stale: fc.oneof(weighted(4, fc.constant(0)), weighted(1, fc.integer({ min: 1, max: 2 }))),
    }),
  ),
)

export const taskOp: fc.Arbitrary<TaskOp> = fc.oneof(
  weighted(
    3,
    fc.record({
      kind: fc.constant('register' as const),
      session: fc.nat({ max: 5 }),
      agent: index(agentIds.length),
      name: index(names.length),
      caps,
      concurrency: fc.integer({ min: 1, max: 3 }),
    }),
  ),
  weighted(
    1,
    fc.record({
      kind: fc.constant('update' as const),
      agent: index(agentIds.length),
      caps: fc.option(caps, { nil: undefined }),
      concurrency: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      name: fc.option(index(names.length), { nil: undefined }),
    }),
  ),
  weighted(2, fc.record({ kind: fc.constant('deregister' as const), agent: index(agentIds.length) })),
  weighted(5, submitOp),
  weighted(
    6,
    fc.record({
      kind: fc.constant('claim' as const),
      task: index(taskIds.length),
      agent: index(agentIds.length),
      own: fc.oneof(weighted(3, fc.constant(true)), weighted(1, fc.constant(false))),
      wrongSession: fc.oneof(weighted(5, fc.constant(false)), weighted(1, fc.constant(true))),
    }),
  ),
  weighted(
    5,
    fc.record({
      kind: fc.constantFrom('complete' as const, 'fail' as const),
      task: index(taskIds.length),
      running: fc.oneof(weighted(3, fc.constant(true)), weighted(1, fc.constant(false))),
      stale: fc.oneof(weighted(4, fc.constant(0)), weighted(1, fc.integer({ min: 1, max: 2 }))),
    }),
  ),
  weighted(
    4,
    fc.record({
      kind: fc.constant('steal' as const),
      task: index(taskIds.length),
      to: index(agentIds.length),
      fromAssignee: fc.oneof(weighted(3, fc.constant(true)), weighted(1, fc.constant(false))),
      from: index(agentIds.length),
    }),
  ),
  weighted(
    2,
    fc.record({
      kind: fc.constant('timeout' as const),
      task: index(taskIds.length),
      attemptDelta: fc.constantFrom(0, 0, 0, -1),
    }),
  ),
  weighted(
    3,
    fc.record({
      kind: fc.constantFrom('retryDue' as const, 'expireTask' as const),
      task: index(taskIds.length),
    }),
  ),
  weighted(
    1,
    fc.record({
      kind: fc.constant('cancel' as const),
      task: index(taskIds.length),
      running: fc.oneof(weighted(3, fc.constant(true)), weighted(1, fc.constant(false))),
    }),
  ),
  weighted(
    5,
    fc.record({
      kind: fc.constant('run' as const),
      agent: index(agentIds.length),
      wrongSession: fc.oneof(weighted(8, fc.constant(false)), weighted(1, fc.constant(true))),
      parts: fc.array(runPart, { minLength: 1, maxLength: 5 }),
    }),
  ),
  weighted(
    2,
    fc.record({
      kind: fc.constant('submitMany' as const),
      tasks: fc.array(submitOp, { minLength: 1, maxLength: 3 }),
    }),
  ),
)

/** Attempts ever started, per task: what stale completions are made of. Fed from apply events. */
export class AttemptLog {
  private readonly attempts = new Map<string, { attempt: number; fencingToken: number }[]>()

  record(events: readonly StateEvent[]): void {
    for (const event of events) {
      if (event.type !== 'taskStarted') continue
      let list = this.attempts.get(event.taskId)
      if (list === undefined) {
        list = []
        this.attempts.set(event.taskId, list)
      }
      list.push({ attempt: event.attempt, fencingToken: event.fencingToken })
    }
  }

  earlier(taskId: string): { attempt: number; fencingToken: number } | undefined {
    const list = this.attempts.get(taskId)
    return list === undefined || list.length < 2 ? undefined : list[list.length - 2]
  }
}

/**
 * The command for `op` in the current state. `sessionIds` are the sessions a registration may use; the
 * agent id is the session's own agent when it exists.
 */
export function taskCommand(
  op: TaskOp,
  machine: StateMachine,
  sessionIds: readonly string[],
  attempts: AttemptLog,
): Command {
  switch (op.kind) {
    case 'register': {
      const sessionId = sessionIds[op.session % sessionIds.length]
      const agentId = machine.session(sessionId)?.agentId ?? agentIds[op.agent]
      return {
        type: 'registerAgent',
        agentId,
        name: names[op.name],
        sessionId,
        addrs: [`/memory/${agentId}`],
        capabilities: op.caps,
        labels: {},
        concurrency: op.concurrency,
      }
    }
    case 'update':
      return {
        type: 'updateAgent',
        agentId: agentIds[op.agent],
        capabilities: op.caps,
        concurrency: op.concurrency,
        name: op.name === undefined ? undefined : names[op.name],
      }
    case 'deregister':
      return { type: 'deregisterAgent', agentId: agentIds[op.agent] }
    case 'submit':
      return {
        type: 'submitTask',
        task: {
          id: taskIds[op.task],
          type: 'job',
          priority: op.priority,
          payload: { n: op.task },
          constraints: {
            requiredCapabilities: op.caps,
            excludeAgents: op.exclude.length === 0 ? undefined : op.exclude,
            preferredAgents: op.preferred.length === 0 ? undefined : op.preferred,
            maxRetries: op.maxRetries,
            timeout: op.timeout,
            affinity: op.affinity,
          },
          deadline: op.deadlineIn === undefined ? undefined : machine.time + op.deadlineIn,
        },
      }
    case 'claim': {
      const taskId = op.own ? pick(machine, 'assigned', op.task) : taskIds[op.task]
      const task = machine.task(taskId)
      const agentId = op.own && task?.state === 'assigned' ? task.assignee! : agentIds[op.agent]
      const registered = machine.agent(agentId)?.sessionId
      const sessionId =
        op.wrongSession || registered === undefined ? sessionIds[op.agent % sessionIds.length] : registered
      return { type: 'claimTask', taskId, agentId, sessionId }
    }
    case 'complete':
    case 'fail': {
      const taskId = op.running ? pick(machine, 'running', op.task) : taskIds[op.task]
      const task = machine.task(taskId)
      let attempt = { attempt: task?.attempt || 1, fencingToken: task?.fencingToken || 1 }
      if (op.stale === 1) attempt = attempts.earlier(taskId) ?? attempt
      if (op.stale === 2) attempt = { ...attempt, fencingToken: attempt.fencingToken + 1 }
      return op.kind === 'complete'
        ? { type: 'completeTask', taskId, ...attempt, result: { by: attempt.attempt } }
        : { type: 'failTask', taskId, ...attempt, error: 'boom' }
    }
    case 'steal': {
      // Mostly as the protocol does it: an agent with a free slot takes an assignment from another.
      const taskId = op.fromAssignee ? pick(machine, 'assigned', op.task) : taskIds[op.task]
      const assignee = machine.task(taskId)?.assignee
      const fromAgentId = op.fromAssignee && assignee !== undefined ? assignee : agentIds[op.from]
      const idle = agentIds.filter(agentId => {
        const load = machine.agentLoad(agentId)
        return agentId !== fromAgentId && load !== undefined && load.running + load.assigned < load.slots
      })
      const toAgentId = op.fromAssignee && idle.length > 0 ? idle[op.to % idle.length] : agentIds[op.to]
      return { type: 'stealTask', taskId, fromAgentId, toAgentId }
    }
    case 'timeout': {
      const taskId = taskIds[op.task]
      const attempt = Math.max(1, (machine.task(taskId)?.attempt ?? 1) + op.attemptDelta)
      return { type: 'timeoutTask', taskId, attempt }
    }
    case 'retryDue':
      return { type: 'retryDue', taskId: taskIds[op.task] }
    case 'expireTask':
      return { type: 'expireTask', taskId: taskIds[op.task] }
    case 'cancel':
      return {
        type: 'cancelTask',
        taskId: op.running ? pick(machine, 'running', op.task) : taskIds[op.task],
      }
    case 'run': {
      const agentId = agentIds[op.agent]
      const registered = machine.agent(agentId)?.sessionId
      const sessionId =
        op.wrongSession || registered === undefined ? sessionIds[op.agent % sessionIds.length] : registered
      const ops = op.parts.map(part => runOp(part, machine, sessionIds, attempts))
      return { type: 'runTasks', agentId, sessionId, ops }
    }
    case 'submitMany':
      return {
        type: 'submitTasks',
        tasks: op.tasks.map(
          task => (taskCommand(task, machine, sessionIds, attempts) as SubmitTaskCommand).task,
        ),
      }
  }
}

/** The `runTasks` operation for `part` in the current state. */
function runOp(
  part: RunPart,
  machine: StateMachine,
  sessionIds: readonly string[],
  attempts: AttemptLog,
): RunTaskOp {
  if (part.part === 'next') return { op: 'next' }
  if (part.part === 'claim') {
    return { op: 'claim', taskId: part.own ? pick(machine, 'assigned', part.task) : taskIds[part.task] }
  }
  const single = taskCommand({ ...part, kind: part.part }, machine, sessionIds, attempts)
  if (single.type === 'completeTask') {
    const { taskId, attempt, fencingToken, result } = single
    return { op: 'complete', taskId, attempt, fencingToken, result }
  }
  const { taskId, attempt, fencingToken, error } = single as FailTaskCommand
  return { op: 'fail', taskId, attempt, fencingToken, error }
}

/** The n-th task (cyclically) in `state`, or the n-th task if none is. */
function pick(machine: StateMachine, state: TaskState, n: number): string {
  const found = taskIds.filter(taskId => machine.task(taskId)?.state === state)
  return found.length > 0 ? found[n % found.length] : taskIds[n]
}

/**
 * What must hold between entries whatever the history: tasks only on live agents, assignments (and the
 * placements of this entry: `placed`, task id to agent) only on agents that pass their filters, load
 * accounting, capacity, and the scheduler's invariant (no pending task fits an agent with a free slot).
 * A running attempt may outlive a change of its agent's capabilities: work already started is not recalled.
 */
export function checkTaskInvariants(
  machine: StateMachine,
  placed: ReadonlyMap<string, string> = new Map(),
): void {
  const agents = machine.agents()
  const byId = new Map(agents.map(agent => [agent.agentId, agent]))
  const tasks = new Map(taskIds.map(taskId => [taskId, machine.task(taskId)]))
  const counted = new Map<string, { running: number; assigned: number }>()
  let pending = 0
  const fits = (task: TaskInfo, agent: RegisteredAgent): boolean => {
    const { requiredCapabilities, excludeAgents = [] } = task.constraints
    return (
      requiredCapabilities.every(capability => agent.capabilities.includes(capability)) &&
      !excludeAgents.includes(agent.agentId) &&
      !excludeAgents.includes(agent.name)
    )
  }
  for (const [taskId, task] of tasks) {
    if (task === undefined) continue
    if (task.state === 'pending') pending++
    if (task.state !== 'assigned' && task.state !== 'running') {
      expect(task.assignee, `${taskId} ${task.state}`).toBeUndefined()
      continue
    }
    const agent = byId.get(task.assignee!)
    expect(agent?.alive, `${taskId} on ${task.assignee}`).toBe(true)
    if (task.state === 'assigned' || placed.get(taskId) === agent!.agentId) {
      expect(fits(task, agent!), `${taskId} ${task.state} on ineligible ${agent!.agentId}`).toBe(true)
    }
    const count = counted.get(agent!.agentId) ?? { running: 0, assigned: 0 }
    count[task.state]++
    counted.set(agent!.agentId, count)
  }
  expect(machine.pendingCount).toBe(pending)
  const free: RegisteredAgent[] = []
  for (const agent of agents) {
    const count = counted.get(agent.agentId) ?? { running: 0, assigned: 0 }
    expect(machine.agentLoad(agent.agentId)).toEqual({ ...count, slots: agent.concurrency })
    // Running attempts may outnumber slots that shrank; assignments never push an agent past its slots.
    if (count.assigned > 0) expect(count.running + count.assigned).toBeLessThanOrEqual(agent.concurrency)
    if (agent.alive && count.running + count.assigned < agent.concurrency) free.push(agent)
  }
  for (const [taskId, task] of tasks) {
    if (task?.state !== 'pending') continue
    for (const agent of free) expect(fits(task, agent), `pending ${taskId} fits ${agent.agentId}`).toBe(false)
  }
}

/** Task id to agent for every placement (assignment, steal, start) among `events`. */
export function placementsOf(events: readonly StateEvent[]): Map<string, string> {
  const placed = new Map<string, string>()
  for (const event of events) {
    if (event.type === 'taskAssigned' || event.type === 'taskStarted') placed.set(event.taskId, event.agentId)
    else if (event.type === 'taskStolen') placed.set(event.taskId, event.to)
  }
  return placed
}
