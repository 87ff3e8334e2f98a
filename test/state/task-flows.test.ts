import { describe, expect, it } from 'vitest'
import type { Command } from '../../src/state/commands.ts'
import type { StateEvent, TaskChange } from '../../src/state/events.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { planTaskTransitions } from '../../src/state/task-planner.ts'
import { taskOptionsError } from '../../src/state/task-repeat.ts'
import type { TaskState } from '../../src/state/task-spec.ts'
import { claim, LogDriver, registerAgent, submit, taskSpec } from './helpers.ts'

/** The task changes among an entry's events. */
const changes = (events: readonly StateEvent[]): TaskChange[] =>
  events.flatMap(event => (event.type === 'taskChange' ? [event.change] : []))

/** What the leader's planner proposes when its clock reads state time `now`. */
const planAt = (machine: StateMachine, now: number) =>
  planTaskTransitions({
    state: machine.taskPlanView(),
    monotonicNow: now,
    takeover: { monotonic: 0, stateTime: 0 },
  })

/** Applies everything the planner proposes at `now` (as the leader would), stamped `now`. */
function runPlanner(log: LogDriver, now: number): Command[] {
  const commands = planAt(log.machine, now)
  log.at(now)
  for (const command of commands) log.apply(command)
  return commands
}

const stateOf = (log: LogDriver, id: string): TaskState | undefined => log.machine.task(id)?.state

/** The snapshot without appliedIndex: what a refused command must leave unchanged. */
function stateBytes(log: LogDriver): unknown {
  const parsed = JSON.parse(new TextDecoder().decode(log.machine.snapshot()))
  delete parsed.appliedIndex
  return parsed
}

describe('cancel', () => {
  it('pending, assigned, waiting and failed tasks are cancelled at once, with the reason', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 10_000 })
    registerAgent(log, 'a', { concurrency: 2 })
    submit(log, 'pending')
    submit(log, 'failed')
    const attempt = claim(log, 'failed', 'a')
    log.apply({ type: 'failTask', taskId: 'failed', ...attempt, error: 'x' })
    expect(stateOf(log, 'pending')).toBe('assigned')
    submit(log, 'waiting', { runAt: 99_000 })
    submit(log, 'queued', { constraints: { requiredCapabilities: ['none'] } })
    expect(stateOf(log, 'queued')).toBe('pending')
    for (const [id, before] of [
      ['pending', 'assigned'],
      ['queued', 'pending'],
      ['waiting', 'waiting'],
      ['failed', 'failed'],
    ] as const) {
      expect(stateOf(log, id)).toBe(before)
      const output = log.apply({ type: 'cancelTask', taskId: id, reason: `no ${id}` })
      expect(output.result).toEqual({ type: 'taskState', taskId: id, state: 'cancelled' })
      expect(changes(output.events)[0]).toMatchObject({ type: 'cancelled', taskId: id, error: `no ${id}` })
      expect(log.machine.task(id)).toMatchObject({ state: 'cancelled', cancelReason: `no ${id}` })
    }
    // The slot the assigned task held is free again; nothing is due for the cancelled ones.
    expect(log.machine.agentLoad('a')).toEqual({ running: 0, assigned: 0, slots: 2 })
    expect(planAt(log.machine, 1_000_000).filter(command => command.type !== 'forgetTasks')).toEqual([])
  })

  it("a running task is cancelled: its attempt ends (the agent's signal) and its completion is refused", () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't')
    const attempt = claim(log, 't', 'a')
    const output = log.apply({ type: 'cancelTask', taskId: 't' })
    expect(output.events[0]).toMatchObject({ type: 'taskAttemptEnded', taskId: 't', reason: 'cancelled' })
    expect(log.machine.task('t')).toMatchObject({ state: 'cancelled', cancelReason: 'cancelled' })
    for (const command of [
      { type: 'completeTask', taskId: 't', ...attempt, result: 1 },
      { type: 'failTask', taskId: 't', ...attempt, error: 'x' },
      { type: 'taskProgress', taskId: 't', ...attempt, progress: 50 },
    ] as const) {
      expect(log.result(command)).toMatchObject({ type: 'error', code: 'StaleAttempt' })
    }
    expect(stateOf(log, 't')).toBe('cancelled')
  })

  it('a finished task is left as it is; an unknown one is NotFound', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't')
    const attempt = claim(log, 't', 'a')
    log.apply({ type: 'completeTask', taskId: 't', ...attempt, result: { ok: true } })
    const before = stateBytes(log)
    expect(log.result({ type: 'cancelTask', taskId: 't' })).toEqual({ type: 'unchanged' })
    expect(stateBytes(log)).toEqual(before)
    expect(log.machine.task('t')).toMatchObject({ state: 'completed', result: { ok: true } })
    expect(log.result({ type: 'cancelTask', taskId: 'ghost' })).toMatchObject({ code: 'NotFound' })
  })
})

describe('list', () => {
  it('filters by id, type, state and assignee, in submission order, a page at a time', () => {
    const log = new LogDriver()
    for (let i = 0; i < 6; i++) submit(log, `t${i}`, { type: i % 2 === 0 ? 'even' : 'odd', priority: i })
    // The two highest priorities are placed on a.
    registerAgent(log, 'a', { concurrency: 2 })
    expect(log.machine.listTasks({ assignee: 'a' }, 10)?.tasks.map(task => task.id)).toEqual(['t4', 't5'])
    const even = log.machine.listTasks({ type: 'even' }, 10)!
    expect(even).toMatchObject({ more: false })
    expect(even.tasks.map(task => task.id)).toEqual(['t0', 't2', 't4'])
    const pending = log.machine.listTasks({ states: new Set(['pending']) }, 2)!
    expect(pending.tasks.map(task => task.id)).toEqual(['t0', 't1'])
    expect(pending.more).toBe(true)
    const next = log.machine.listTasks({ states: new Set(['pending']) }, 2, 't1')!
    expect(next.tasks.map(task => task.id)).toEqual(['t2', 't3'])
    expect(next.more).toBe(false)
    const all = log.machine.listTasks({}, 4)!
    expect(all).toMatchObject({ more: true })
    expect(log.machine.listTasks({}, 4, all.tasks[3].id)?.tasks.map(task => task.id)).toEqual(['t4', 't5'])
    expect(log.machine.listTasks({ id: 't3' }, 10)?.tasks.map(task => task.id)).toEqual(['t3'])
    expect(log.machine.listTasks({ id: 't3', type: 'even' }, 10)?.tasks).toEqual([])
    expect(
      log.machine
        .listTasks({ states: new Set(['completed', 'pending']), type: 'odd' }, 10)
        ?.tasks.map(t => t.id),
    ).toEqual(['t1', 't3'])
    // A cursor naming no task kept: the caller must start again.
    expect(log.machine.listTasks({}, 10, 'ghost')).toBeUndefined()
  })
})

describe('task changes', () => {
  it('one numbered change per transition and progress update, resumable from any revision', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 0 })
    registerAgent(log, 'a')
    const all: TaskChange[] = []
    const record = (events: readonly StateEvent[]) => all.push(...changes(events))
    record(submit(log, 't', { type: 'job' }).events)
    let attempt = claim(log, 't', 'a')
    record(log.apply({ type: 'taskProgress', taskId: 't', ...attempt, progress: { done: 1 } }).events)
    record(log.apply({ type: 'failTask', taskId: 't', ...attempt, error: 'boom' }).events)
    attempt = claim(log, 't', 'a')
    record(log.apply({ type: 'completeTask', taskId: 't', ...attempt, result: 7 }).events)
    const types = ['submitted', 'assigned', 'progress', 'failed', 'retrying', 'assigned', 'completed']
    // The claims' `started` changes were not recorded above: the history has them.
    const history = log.machine.taskChangesSince(1)
    expect(history.type).toBe('changes')
    const kept = history.type === 'changes' ? history.changes : []
    expect(kept.map(change => change.type)).toEqual([
      'submitted',
      'assigned',
      'started',
      'progress',
      'failed',
      'retrying',
      'assigned',
      'started',
      'completed',
    ])
    expect(all.map(change => change.type)).toEqual(types)
    expect(kept.map(change => change.revision)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(kept[3]).toMatchObject({
      taskId: 't',
      taskType: 'job',
      attempt: 1,
      assignee: 'a',
      progress: { done: 1 },
    })
    expect(kept[4]).toMatchObject({ type: 'failed', error: 'boom', attempt: 1 })
    expect(kept[8]).toMatchObject({ type: 'completed', result: 7, attempt: 2, assignee: 'a' })
    // Resuming after revision r gives exactly the rest.
    for (let r = 0; r <= 9; r++) {
      const rest = log.machine.taskChangesSince(r + 1)
      expect(rest.type === 'changes' && rest.changes).toEqual(kept.slice(r))
    }
    expect(log.machine.taskRevision).toBe(9)
  })

  it('keeps a bounded history: an older revision is compacted; a snapshot keeps it and the numbering', () => {
    const log = new LogDriver({ taskHistorySize: 3 })
    for (let i = 0; i < 5; i++) submit(log, `t${i}`)
    expect(log.machine.taskChangesSince(2)).toEqual({ type: 'compacted', compactedRevision: 2 })
    const since3 = log.machine.taskChangesSince(3)
    expect(since3.type === 'changes' && since3.changes.map(change => change.taskId)).toEqual([
      't2',
      't3',
      't4',
    ])
    const restored = StateMachine.restore(log.machine.snapshot(), { taskHistorySize: 3 })
    expect(restored.taskChangesSince(3)).toEqual(since3)
    expect(restored.snapshot()).toEqual(log.machine.snapshot())
    const output = restored.apply({
      index: log.index + 1,
      term: 1,
      data: new TextEncoder().encode(
        JSON.stringify({ ts: 1, command: { type: 'submitTask', task: taskSpec('t5') } }),
      ),
    })
    expect(changes(output.events).map(change => change.revision)).toEqual([6])
  })
})

describe('pause and resume', () => {
  it('no new attempt starts of a paused type; running ones go on; resume places them again', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 4 })
    submit(log, 'run', { type: 'mail' })
    const attempt = claim(log, 'run', 'a')
    submit(log, 'assigned', { type: 'mail' })
    submit(log, 'other', { type: 'pdf' })
    expect(stateOf(log, 'assigned')).toBe('assigned')
    expect(log.result({ type: 'pauseTasks', taskType: 'mail' })).toEqual({ type: 'ok' })
    expect(log.result({ type: 'pauseTasks', taskType: 'mail' })).toEqual({ type: 'unchanged' })
    expect(log.machine.isTaskTypePaused('mail')).toBe(true)
    expect(stateOf(log, 'assigned')).toBe('pending')
    expect(stateOf(log, 'other')).toBe('assigned')
    submit(log, 'later', { type: 'mail' })
    expect(stateOf(log, 'later')).toBe('pending')
    expect(
      log.result({ type: 'claimTask', taskId: 'later', agentId: 'a', sessionId: 'session-a' }),
    ).toMatchObject({
      code: 'NotClaimable',
      message: 'tasks of type mail are paused',
    })
    const nextOne = log.apply({
      type: 'runTasks',
      agentId: 'a',
      sessionId: 'session-a',
      ops: [{ op: 'next' }],
    })
    expect(nextOne.result).toEqual({
      type: 'taskResults',
      results: [{ type: 'taskClaimed', taskId: 'other', attempt: 1, fencingToken: log.index }],
    })
    expect(
      log.result({ type: 'runTasks', agentId: 'a', sessionId: 'session-a', ops: [{ op: 'next' }] }),
    ).toEqual({
      type: 'taskResults',
      results: [{ type: 'noTask' }],
    })
    // The running attempt goes on.
    expect(log.result({ type: 'completeTask', taskId: 'run', ...attempt, result: 1 })).toMatchObject({
      state: 'completed',
    })
    // A snapshot keeps the pause.
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.isTaskTypePaused('mail')).toBe(true)
    expect(restored.snapshot()).toEqual(log.machine.snapshot())
    const resumed = log.apply({ type: 'resumeTasks', taskType: 'mail' })
    expect(resumed.result).toEqual({ type: 'ok' })
    expect([stateOf(log, 'assigned'), stateOf(log, 'later')]).toEqual(['assigned', 'assigned'])
  })

  it('pausing all types holds every type until a resume of all', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 4 })
    log.apply({ type: 'pauseTasks' })
    submit(log, 'x', { type: 'x' })
    submit(log, 'y', { type: 'y' })
    expect([stateOf(log, 'x'), stateOf(log, 'y')]).toEqual(['pending', 'pending'])
    // Resuming one type does not end the pause of all.
    expect(log.result({ type: 'resumeTasks', taskType: 'x' })).toEqual({ type: 'unchanged' })
    expect(stateOf(log, 'x')).toBe('pending')
    log.apply({ type: 'resumeTasks' })
    expect([stateOf(log, 'x'), stateOf(log, 'y')]).toEqual(['assigned', 'assigned'])
  })
})

describe('runAt', () => {
  it('a delayed task waits until the leader releases it when runAt comes on its clock', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    const output = submit(log, 't', { runAt: 5_000 })
    expect(changes(output.events).map(change => change.type)).toEqual(['submitted', 'waiting'])
    expect(log.machine.task('t')).toMatchObject({ state: 'waiting', runAt: 5_000, delayed: true })
    expect(
      log.result({ type: 'claimTask', taskId: 't', agentId: 'a', sessionId: 'session-a' }),
    ).toMatchObject({
      code: 'NotClaimable',
      message: 'task t is waiting for its run time 1970-01-01T00:00:05.000Z',
    })
    // A late timestamp decides nothing: only the release entry does.
    log.at(9_000).apply({ type: 'keepAlive', sessionId: 'session-a' })
    expect(stateOf(log, 't')).toBe('waiting')
    expect(planAt(log.machine, 4_999)).toEqual([])
    expect(runPlanner(log, 5_000)).toEqual([{ type: 'releaseTask', taskId: 't' }])
    expect(stateOf(log, 't')).toBe('assigned')
    // Released once: a second release changes nothing.
    expect(log.result({ type: 'releaseTask', taskId: 't' })).toEqual({ type: 'unchanged' })
  })
})

describe('dependencies', () => {
  it('a task waits for all its parents to complete, then runs', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 4 })
    submit(log, 'p1')
    submit(log, 'p2')
    submit(log, 'child', { dependsOn: ['p1', 'p2', 'p1'] })
    expect(log.machine.task('child')).toMatchObject({ state: 'waiting', dependsOn: ['p1', 'p2'] })
    expect(
      log.result({ type: 'claimTask', taskId: 'child', agentId: 'a', sessionId: 'session-a' }),
    ).toMatchObject({
      message: 'task child is waiting for tasks p1, p2',
    })
    for (const parent of ['p1', 'p2']) {
      expect(stateOf(log, 'child')).toBe('waiting')
      const attempt = claim(log, parent, 'a')
      log.apply({ type: 'completeTask', taskId: parent, ...attempt, result: null })
    }
    expect(stateOf(log, 'child')).toBe('assigned')
    // A parent completed before the child was submitted counts as done.
    submit(log, 'late', { dependsOn: ['p1'] })
    expect(stateOf(log, 'late')).toBe('assigned')
  })

  it('a parent ending dead, expired or cancelled cancels its dependants, down the chain', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 4 })
    submit(log, 'root', { constraints: { maxRetries: 0 } })
    submit(log, 'mid', { dependsOn: ['root'] })
    submit(log, 'leaf', { dependsOn: ['mid'] })
    submit(log, 'other', { dependsOn: ['leaf'], deadline: 50_000 })
    const attempt = claim(log, 'root', 'a')
    const output = log.apply({ type: 'failTask', taskId: 'root', ...attempt, error: 'broken' })
    expect(changes(output.events).map(change => [change.type, change.taskId, change.error])).toEqual([
      ['dead', 'root', 'broken'],
      ['cancelled', 'mid', 'dependency root ended dead'],
      ['cancelled', 'leaf', 'dependency mid ended cancelled'],
      ['cancelled', 'other', 'dependency leaf ended cancelled'],
    ])
    expect(log.machine.task('mid')).toMatchObject({
      state: 'cancelled',
      cancelReason: 'dependency root ended dead',
    })
    // Submitted after its parent failed: cancelled at once.
    submit(log, 'after', { dependsOn: ['root'] })
    expect(log.machine.task('after')).toMatchObject({
      state: 'cancelled',
      cancelReason: 'dependency root ended dead',
    })
    // An expired parent.
    submit(log, 'soon', { deadline: 2_000, runAt: 90_000 })
    submit(log, 'kid', { dependsOn: ['soon'] })
    log.apply({ type: 'expireTask', taskId: 'soon' })
    expect(log.machine.task('kid')).toMatchObject({
      state: 'cancelled',
      cancelReason: 'dependency soon ended expired',
    })
  })

  it('an unknown parent or the task itself is refused and nothing is written', () => {
    const log = new LogDriver()
    submit(log, 'p')
    const before = stateBytes(log)
    expect(log.result({ type: 'submitTask', task: taskSpec('c', { dependsOn: ['p', 'ghost'] }) })).toEqual({
      type: 'error',
      code: 'InvalidArgument',
      message: 'task c depends on task ghost, which does not exist',
    })
    expect(log.result({ type: 'submitTask', task: taskSpec('c', { dependsOn: ['c'] }) })).toEqual({
      type: 'error',
      code: 'InvalidArgument',
      message: 'task c depends on itself',
    })
    expect(stateBytes(log)).toEqual(before)
  })

  it('a snapshot restores what each waiting task still waits for', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 4 })
    submit(log, 'p1')
    submit(log, 'p2')
    submit(log, 'c', { dependsOn: ['p1', 'p2'] })
    const first = claim(log, 'p1', 'a')
    log.apply({ type: 'completeTask', taskId: 'p1', ...first, result: 1 })
    // p1 is forgotten: the restored child must still count it as done.
    log.apply({ type: 'forgetTasks', taskIds: ['p1'] })
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.snapshot()).toEqual(log.machine.snapshot())
    const second = claim(log, 'p2', 'a')
    const complete = { type: 'completeTask' as const, taskId: 'p2', ...second, result: 2 }
    const index = log.index
    const output = log.apply(complete)
    const replayed = restored.apply({
      index: index - 0,
      term: 1,
      data: new TextEncoder().encode(
        JSON.stringify({
          ts: log.now,
          command: { type: 'claimTask', taskId: 'p2', agentId: 'a', sessionId: 'session-a' },
        }),
      ),
    })
    expect(replayed.result).toMatchObject({ type: 'taskClaimed', fencingToken: second.fencingToken })
    expect(
      restored.apply({
        index: index + 1,
        term: 1,
        data: new TextEncoder().encode(JSON.stringify({ ts: log.now, command: complete })),
      }),
    ).toEqual(output)
    expect(restored.task('c')?.state).toBe('assigned')
  })
})

describe('repeat', () => {
  it('every N ms: the leader creates one occurrence per slot, each exactly once, up to the limit', () => {
    const log = new LogDriver()
    log.at(1_000)
    const output = log.apply({
      type: 'submitTask',
      task: taskSpec('tick', { repeat: { every: 100, limit: 5 } }),
    })
    expect(output.result).toEqual({ type: 'taskSubmitted', taskId: 'tick', createdAt: 1_000 })
    expect(log.machine.task('tick')).toBeUndefined()
    expect(runPlanner(log, 1_000)).toEqual([{ type: 'createOccurrence', scheduleId: 'tick', slot: 1_000 }])
    expect(stateOf(log, 'tick:1000')).toBe('pending')
    expect(planAt(log.machine, 1_099)).toEqual([])
    // A duplicate proposal (a new leader proposing the same slot again) changes nothing.
    const before = stateBytes(log)
    expect(log.result({ type: 'createOccurrence', scheduleId: 'tick', slot: 1_000 })).toEqual({
      type: 'unchanged',
    })
    // Neither does a slot that is not one of the schedule's.
    expect(log.result({ type: 'createOccurrence', scheduleId: 'tick', slot: 1_150 })).toEqual({
      type: 'unchanged',
    })
    expect(stateBytes(log)).toEqual(before)
    // A round late, with two slots due: both are created, each once.
    expect(runPlanner(log, 1_230)).toEqual([
      { type: 'createOccurrence', scheduleId: 'tick', slot: 1_100 },
      { type: 'createOccurrence', scheduleId: 'tick', slot: 1_200 },
    ])
    // Missed slots (more than MAX_CATCH_UP_SLOTS due) are skipped: the latest due one runs.
    expect(runPlanner(log, 2_350)).toEqual([{ type: 'createOccurrence', scheduleId: 'tick', slot: 2_300 }])
    runPlanner(log, 2_400)
    expect(log.machine.listTasks({}, 10)?.tasks.map(task => task.id)).toEqual([
      'tick:1000',
      'tick:1100',
      'tick:1200',
      'tick:2300',
      'tick:2400',
    ])
    expect(log.machine.repeatingTask('tick')).toMatchObject({ count: 5, lastSlot: 2_400 })
    expect(planAt(log.machine, 10_000)).toEqual([])
  })

  it('a cron expression in a time zone, from explicit dates; cancel ends the repeat', () => {
    const log = new LogDriver()
    const start = Date.UTC(2026, 0, 1, 0, 0, 0)
    log.at(start)
    log.apply({
      type: 'submitTask',
      task: taskSpec('daily', { repeat: { cron: '0 9 * * *', timezone: 'Europe/Paris' } }),
    })
    expect(planAt(log.machine, start + 7 * 3_600_000)).toEqual([])
    const nine = Date.UTC(2026, 0, 1, 8, 0, 0) // 09:00 in Paris (UTC+1)
    expect(planAt(log.machine, nine)).toEqual([{ type: 'createOccurrence', scheduleId: 'daily', slot: nine }])
    runPlanner(log, nine)
    expect(stateOf(log, `daily:${nine}`)).toBe('pending')
    expect(log.result({ type: 'cancelTask', taskId: 'daily' })).toEqual({
      type: 'taskState',
      taskId: 'daily',
      state: 'cancelled',
    })
    expect(planAt(log.machine, nine + 86_400_000)).toEqual([])
    // The occurrence already created is a task of its own.
    expect(stateOf(log, `daily:${nine}`)).toBe('pending')
  })

  it('survives a snapshot: the restored state refuses a slot already served', () => {
    const log = new LogDriver()
    log.apply({ type: 'submitTask', task: taskSpec('tick', { repeat: { every: 10 } }) })
    runPlanner(log, 1_000)
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.snapshot()).toEqual(log.machine.snapshot())
    expect(
      planTaskTransitions({
        state: restored.taskPlanView(),
        monotonicNow: 1_005,
        takeover: { monotonic: 0, stateTime: 0 },
      }),
    ).toEqual([])
  })
})

describe('back-off, explicit claims and retention', () => {
  it('a fixed or exponential back-off per task; an explicit claim starts a failed task at once', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 2 })
    submit(log, 'fixed', { backoff: { type: 'fixed', delay: 700 }, constraints: { maxRetries: 5 } })
    submit(log, 'exp', {
      backoff: { type: 'exponential', delay: 100, maxDelay: 250 },
      constraints: { maxRetries: 5 },
    })
    const delays = (id: string) => {
      const seen: number[] = []
      for (let i = 0; i < 3; i++) {
        const attempt = claim(log, id, 'a')
        log.apply({ type: 'failTask', taskId: id, ...attempt, error: 'x' })
        seen.push(log.machine.task(id)!.retryAt! - log.now)
        expect(stateOf(log, id)).toBe('failed')
      }
      return seen
    }
    expect(delays('fixed')).toEqual([700, 700, 700])
    expect(delays('exp')).toEqual([100, 200, 250])
  })

  it('the leader forgets a finished task once its retention is over; an unfinished one stays', () => {
    const log = new LogDriver({ defaultRetentionMs: 10_000 })
    registerAgent(log, 'a', { concurrency: 3 })
    submit(log, 'short', { retention: { completed: 100 } })
    submit(log, 'default')
    submit(log, 'open')
    for (const id of ['short', 'default']) {
      const attempt = claim(log, id, 'a')
      log.apply({ type: 'completeTask', taskId: id, ...attempt, result: 1 })
    }
    const finishedAt = log.now
    expect(planAt(log.machine, finishedAt + 99)).toEqual([])
    expect(runPlanner(log, finishedAt + 100)).toEqual([{ type: 'forgetTasks', taskIds: ['short'] }])
    expect(log.machine.task('short')).toBeUndefined()
    expect(runPlanner(log, finishedAt + 10_000)).toEqual([{ type: 'forgetTasks', taskIds: ['default'] }])
    expect(log.result({ type: 'forgetTasks', taskIds: ['open'] })).toEqual({ type: 'unchanged' })
    expect(stateOf(log, 'open')).toBe('assigned')
  })
})

describe('resubmission', () => {
  it('the same contents again is answered as the first time; other contents are a Conflict', () => {
    const log = new LogDriver()
    const spec = taskSpec('t', { payload: { a: 1, b: [1, 2] }, dependsOn: undefined })
    log.apply({ type: 'submitTask', task: spec })
    // Keys in another order are the same contents.
    const reordered = {
      constraints: { timeout: 0, maxRetries: 3, requiredCapabilities: [] },
      payload: { b: [1, 2], a: 1 },
      priority: -0,
      type: 'test',
      id: 't',
    }
    const before = stateBytes(log)
    expect(log.result({ type: 'submitTask', task: reordered })).toEqual({
      type: 'taskSubmitted',
      taskId: 't',
      createdAt: 1_000,
    })
    expect(stateBytes(log)).toEqual(before)
    expect(log.result({ type: 'submitTask', task: { ...spec, payload: { a: 2 } } })).toMatchObject({
      code: 'Conflict',
    })
    log.apply({ type: 'submitTask', task: taskSpec('r', { repeat: { every: 50 } }) })
    expect(log.result({ type: 'submitTask', task: taskSpec('r', { repeat: { every: 50 } }) })).toMatchObject({
      type: 'taskSubmitted',
    })
    expect(log.result({ type: 'submitTask', task: taskSpec('r', { repeat: { every: 60 } }) })).toMatchObject({
      code: 'Conflict',
    })
    expect(log.result({ type: 'submitTask', task: taskSpec('r') })).toMatchObject({ code: 'Conflict' })
  })
})

describe('progress', () => {
  it('the current attempt reports progress; an attempt no longer current is StaleAttempt', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 0 })
    registerAgent(log, 'a')
    submit(log, 't')
    const first = claim(log, 't', 'a')
    const output = log.apply({ type: 'taskProgress', taskId: 't', ...first, progress: { pct: 10 } })
    expect(output.result).toEqual({ type: 'taskState', taskId: 't', state: 'running' })
    expect(changes(output.events)).toMatchObject([
      { type: 'progress', progress: { pct: 10 }, assignee: 'a', attempt: 1 },
    ])
    expect(log.machine.task('t')?.progress).toEqual({ pct: 10 })
    log.apply({ type: 'failTask', taskId: 't', ...first, error: 'x' })
    claim(log, 't', 'a')
    expect(log.machine.task('t')?.progress).toBeUndefined()
    const before = stateBytes(log)
    expect(log.result({ type: 'taskProgress', taskId: 't', ...first, progress: 99 })).toMatchObject({
      code: 'StaleAttempt',
    })
    expect(stateBytes(log)).toEqual(before)
  })
})

describe('bad input', () => {
  it('the codec refuses malformed new task fields, which then change nothing', () => {
    const log = new LogDriver()
    const bad = [
      { repeat: { every: 9 } },
      { repeat: { every: 100, cron: '* * * * *' } },
      { repeat: {} },
      { repeat: { every: 100, timezone: 'UTC' } },
      { repeat: { every: 100, limit: 0 } },
      { backoff: { type: 'fixed', delay: -1 } },
      { backoff: { type: 'linear', delay: 1 } },
      { retention: { completed: -1 } },
      { retention: { failed: 1.5 } },
      { runAt: -5 },
      { dependsOn: [] },
      { dependsOn: [''] },
    ]
    for (const fields of bad) {
      const before = stateBytes(log)
      const output = log.apply({ type: 'submitTask', task: { ...taskSpec('t'), ...fields } as never })
      expect(output.result, JSON.stringify(fields)).toMatchObject({ type: 'error', code: 'InvalidCommand' })
      expect(stateBytes(log)).toEqual(before)
    }
    expect(log.result({ type: 'pauseTasks', taskType: '' } as never)).toMatchObject({
      code: 'InvalidCommand',
    })
    expect(log.result({ type: 'forgetTasks', taskIds: [] })).toMatchObject({ code: 'InvalidCommand' })
  })

  it('taskOptionsError explains each refusal before anything is proposed', () => {
    expect(taskOptionsError({ runAt: Number.NaN })).toBe('runAt must be a valid Date')
    expect(taskOptionsError({ repeat: {} })).toBe('repeat needs exactly one of every and cron')
    expect(taskOptionsError({ repeat: { every: 5, cron: '* * * * *' } })).toBe(
      'repeat needs exactly one of every and cron',
    )
    expect(taskOptionsError({ repeat: { every: 9 } })).toBe(
      'repeat.every must be an integer of at least 10 ms (got 9)',
    )
    expect(taskOptionsError({ repeat: { cron: 'every day' } })).toMatch(
      /^cron expression "every day" does not parse: /,
    )
    expect(taskOptionsError({ repeat: { cron: '* * * * *', timezone: 'Mars/Olympus' } })).toMatch(
      /^cron expression "\* \* \* \* \*" in time zone "Mars\/Olympus" does not parse/,
    )
    expect(taskOptionsError({ backoff: { type: 'fixed', delay: -1 } })).toBe(
      'backoff.delay must be an integer number of ms >= 0 (got -1)',
    )
    expect(taskOptionsError({ retention: { failed: -3 } })).toBe(
      'retention.failed must be an integer number of ms >= 0 (got -3)',
    )
    expect(taskOptionsError({ repeat: { every: 10 }, dependsOn: ['x'] })).toBe(
      'a repeating task cannot have dependsOn',
    )
    expect(
      taskOptionsError({ repeat: { cron: '*/5 * * * *', timezone: 'Asia/Tokyo', limit: 3 }, runAt: 5 }),
    ).toBeUndefined()
  })
})

describe('the leader planner after a takeover', () => {
  // The new leader took over at state time 10,000 (monotonic 500); its wall clock may say anything.
  const takeover = { monotonic: 500, stateTime: 10_000 }
  const cases: { what: string; setup: (log: LogDriver) => void; dueAfterMs: number }[] = [
    {
      what: 'a back-off started before the takeover runs out on the new clock, never earlier',
      setup: log => {
        registerAgent(log, 'a')
        submit(log, 't', { backoff: { type: 'fixed', delay: 3_000 } })
        const attempt = claim(log, 't', 'a')
        log.at(9_000).apply({ type: 'failTask', taskId: 't', ...attempt, error: 'x' }) // retry at 12,000
      },
      dueAfterMs: 2_000,
    },
    {
      what: 'a runAt in the future of the takeover',
      setup: log => void submit(log, 't', { runAt: 10_700 }),
      dueAfterMs: 700,
    },
    {
      what: 'a deadline already past at takeover is due at once',
      setup: log => void submit(log, 't', { deadline: 9_999 }),
      dueAfterMs: 0,
    },
  ]
  for (const { what, setup, dueAfterMs } of cases) {
    it(what, () => {
      const log = new LogDriver()
      setup(log)
      log.at(10_000).apply({ type: 'keepAlive', sessionId: 'nobody' })
      const plan = (elapsed: number) =>
        planTaskTransitions({
          state: log.machine.taskPlanView(),
          monotonicNow: takeover.monotonic + elapsed,
          takeover,
        })
      if (dueAfterMs > 0) expect(plan(dueAfterMs - 1)).toEqual([])
      expect(plan(dueAfterMs)).toHaveLength(1)
    })
  }
})
