import fc from 'fast-check'
import { expect, it } from 'vitest'
import type { Command } from '../../src/state/commands.ts'
import type { CommandResult } from '../../src/state/results.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { planTaskTransitions } from '../../src/state/task-planner.ts'
import { MAX_CATCH_UP_SLOTS } from '../../src/state/task-repeat.ts'
import type { TaskState } from '../../src/state/task-spec.ts'
import { LogDriver, registerAgent, taskSpec } from './helpers.ts'

/**
 * The v0.2 task model against a reference written for this test alone: random interleavings of submits
 * (with dependencies, delays, repeats), claims, completions, failures, cancels, pauses and steps of the
 * leader's clock (its planner's proposals applied) must give the same answers, the same states and the same
 * results as the reference, and never two live attempts of a task.
 *
 * One agent with more slots than there are tasks, so placement is never the question: a task the reference
 * calls `queued` is `assigned` to it, or `pending` while its type is paused.
 */

const taskIds = ['t0', 't1', 't2', 't3', 't4', 't5']
const repeatIds = ['r0', 'r1']
const types = ['x', 'y']
const BACKOFF_MS = 50

type Op =
  | {
      kind: 'submit'
      task: number
      type: number
      deps: number[]
      /** A dependency on an unknown task or on itself. */
      badDep: 'none' | 'unknown' | 'self'
      runAtIn: number | undefined
      maxRetries: number
    }
  | { kind: 'repeat'; repeat: number; every: number; limit: number | undefined; type: number }
  /** `ready`: the task-th task the reference holds queued, if any. */
  | { kind: 'claim'; task: number; occurrence: boolean; ready: boolean }
  /** `running`: the task-th task the reference holds running, if any. */
  | {
      kind: 'complete' | 'fail' | 'progress'
      task: number
      stale: boolean
      occurrence: boolean
      running: boolean
      value: number
    }
  | { kind: 'cancel'; task: number; occurrence: boolean }
  | { kind: 'cancelRepeat'; repeat: number }
  | { kind: 'pause' | 'resume'; type: number | undefined }
  | { kind: 'time'; advance: number }

const index = (length: number) => fc.nat({ max: length - 1 })
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('submit' as const),
      task: index(taskIds.length),
      type: index(types.length),
      deps: fc.uniqueArray(index(taskIds.length), { maxLength: 2 }),
      badDep: fc.constantFrom(
        'none' as const,
        'none' as const,
        'none' as const,
        'none' as const,
        'none' as const,
        'none' as const,
        'none' as const,
        'unknown' as const,
        'self' as const,
      ),
      runAtIn: fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined, freq: 3 }),
      maxRetries: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('repeat' as const),
      repeat: index(repeatIds.length),
      every: fc.integer({ min: 10, max: 400 }),
      limit: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      type: index(types.length),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('claim' as const),
      task: index(8),
      occurrence: fc.boolean(),
      ready: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constantFrom('complete' as const, 'fail' as const, 'fail' as const, 'progress' as const),
      task: index(8),
      stale: fc.boolean(),
      occurrence: fc.boolean(),
      running: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      value: fc.integer({ min: 0, max: 9 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('cancel' as const), task: index(8), occurrence: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('cancelRepeat' as const), repeat: index(repeatIds.length) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('pause' as const, 'resume' as const),
      type: fc.option(index(types.length), { nil: undefined }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('time' as const), advance: fc.integer({ min: 0, max: 500 }) }),
  },
)

/** The reference: what the API says, in the plainest terms. */
type ModelState = 'waiting' | 'queued' | 'running' | 'failed' | 'completed' | 'dead' | 'cancelled'
interface ModelTask {
  id: string
  type: string
  state: ModelState
  attempt: number
  /** Attempts that were started, as (attempt, fencing token) the real state handed out: for stale calls. */
  tokens: number[]
  maxRetries: number
  parents: string[]
  /** As submitted. */
  runAt?: number
  delayedUntil?: number
  retryAt?: number
  result?: number
  progress?: number
  cancelReason?: string
}
interface ModelRepeat {
  id: string
  type: string
  every: number
  anchor: number
  limit?: number
  lastSlot?: number
  count: number
}

const FINISHED: ReadonlySet<ModelState> = new Set(['completed', 'dead', 'cancelled'])

class Model {
  tasks = new Map<string, ModelTask>()
  repeats = new Map<string, ModelRepeat>()
  pausedAll = false
  pausedTypes = new Set<string>()

  paused(type: string): boolean {
    return this.pausedAll || this.pausedTypes.has(type)
  }

  /** The real state the reference predicts. */
  expected(task: ModelTask): TaskState {
    if (task.state === 'queued') return this.paused(task.type) ? 'pending' : 'assigned'
    return task.state
  }

  submit(spec: { id: string; type: string; parents: string[]; runAt?: number; maxRetries: number }): string {
    const existing = this.tasks.get(spec.id)
    if (existing !== undefined || this.repeats.has(spec.id)) {
      const same =
        existing !== undefined &&
        existing.type === spec.type &&
        existing.maxRetries === spec.maxRetries &&
        JSON.stringify([...existing.parents].sort()) === JSON.stringify([...new Set(spec.parents)].sort()) &&
        existing.runAt === spec.runAt
      return same ? 'taskSubmitted' : 'Conflict'
    }
    for (const parent of spec.parents) {
      if (parent === spec.id || !this.tasks.has(parent)) return 'InvalidArgument'
    }
    const task: ModelTask = {
      id: spec.id,
      type: spec.type,
      state: 'waiting',
      attempt: 0,
      tokens: [],
      maxRetries: spec.maxRetries,
      parents: [...new Set(spec.parents)],
      runAt: spec.runAt,
      delayedUntil: spec.runAt,
    }
    this.tasks.set(task.id, task)
    const failed = task.parents
      .map(id => this.tasks.get(id)!)
      .find(p => FINISHED.has(p.state) && p.state !== 'completed')
    if (failed !== undefined) this.cancel(task, `dependency ${failed.id} ended ${failed.state}`)
    else this.settle(task)
    return 'taskSubmitted'
  }

  /** Waiting → queued once released and every parent completed. */
  settle(task: ModelTask): void {
    if (task.state !== 'waiting' || task.delayedUntil !== undefined) return
    if (task.parents.every(id => this.tasks.get(id)?.state === 'completed' || !this.tasks.has(id))) {
      task.state = 'queued'
    }
  }

  cancel(task: ModelTask, reason: string): void {
    task.state = 'cancelled'
    task.cancelReason = reason
    task.retryAt = undefined
    this.finished(task)
  }

  /** Dependants settle breadth first: each one cancelled names the parent it was waiting for that ended. */
  finished(task: ModelTask): void {
    const queue = [task]
    while (queue.length > 0) {
      const parent = queue.shift()!
      for (const child of this.tasks.values()) {
        if (child.state !== 'waiting' || !child.parents.includes(parent.id)) continue
        if (parent.state === 'completed') this.settle(child)
        else {
          child.state = 'cancelled'
          child.cancelReason = `dependency ${parent.id} ended ${parent.state}`
          queue.push(child)
        }
      }
    }
  }

  claim(id: string): string {
    const task = this.tasks.get(id)
    if (task === undefined) return 'NotFound'
    if (!FINISHED.has(task.state) && task.state !== 'running' && this.paused(task.type)) return 'NotClaimable'
    if (task.state !== 'queued' && task.state !== 'failed') return 'NotClaimable'
    task.state = 'running'
    task.attempt++
    task.retryAt = undefined
    task.progress = undefined
    return 'taskClaimed'
  }

  end(
    id: string,
    how: 'complete' | 'fail' | 'progress',
    current: boolean,
    value: number,
    now: number,
  ): string {
    const task = this.tasks.get(id)
    if (task === undefined) return 'NotFound'
    if (task.state !== 'running' || !current) return 'StaleAttempt'
    if (how === 'progress') {
      task.progress = value
      return 'taskState'
    }
    if (how === 'complete') {
      task.state = 'completed'
      task.result = value
      this.finished(task)
    } else if (task.attempt > task.maxRetries) {
      task.state = 'dead'
      this.finished(task)
    } else {
      task.state = 'failed'
      task.retryAt = now + BACKOFF_MS
    }
    return 'taskState'
  }

  /** The leader's clock reached `now`: releases, retries, occurrences (up to MAX_CATCH_UP_SLOTS due slots, else the latest). */
  time(now: number): void {
    for (const task of this.tasks.values()) {
      if (task.state === 'failed' && task.retryAt! <= now) {
        task.state = 'queued'
        task.retryAt = undefined
      }
    }
    for (const task of this.tasks.values()) {
      if (task.state === 'waiting' && task.delayedUntil !== undefined && task.delayedUntil <= now) {
        task.delayedUntil = undefined
        this.settle(task)
      }
    }
    for (const repeat of this.repeats.values()) {
      if (repeat.limit !== undefined && repeat.count >= repeat.limit) continue
      if (now < repeat.anchor) continue
      const latest = repeat.anchor + Math.floor((now - repeat.anchor) / repeat.every) * repeat.every
      const first = repeat.lastSlot === undefined ? repeat.anchor : repeat.lastSlot + repeat.every
      if (latest < first) continue
      // Up to MAX_CATCH_UP_SLOTS due (a round late): all, in order; more (not served for a while): the latest.
      const due = (latest - first) / repeat.every + 1
      const slots =
        due <= MAX_CATCH_UP_SLOTS ? Array.from({ length: due }, (_, i) => first + i * repeat.every) : [latest]
      for (const slot of slots) {
        if (repeat.limit !== undefined && repeat.count >= repeat.limit) break
        repeat.lastSlot = slot
        repeat.count++
        const id = `${repeat.id}:${slot}`
        // A repeat cancelled and submitted again may come to a slot whose occurrence exists: not made twice.
        if (this.tasks.has(id)) continue
        this.tasks.set(id, {
          id,
          type: repeat.type,
          state: 'queued',
          attempt: 0,
          tokens: [],
          maxRetries: 0,
          parents: [],
        })
      }
    }
  }
}

/** Runs one history against the state machine and the reference, step by step. */
function check(ops: Op[], see: (what: string) => void = () => {}): void {
  const log = new LogDriver({ retryBackoffBaseMs: BACKOFF_MS })
  registerAgent(log, 'a', { concurrency: 100, ttlMs: 10_000_000 })
  const model = new Model()
  const live = new Map<string, number>()
  let revision = log.machine.taskRevision
  /** Occurrence ids created so far, in order: ops name them by position. */
  const occurrences: string[] = []
  const pick = (task: number, occurrence: boolean) =>
    occurrence && occurrences.length > 0
      ? occurrences[task % occurrences.length]
      : taskIds[task % taskIds.length]
  /** The n-th task the reference holds in one of `states`, if there is one. */
  const among = (n: number, states: ModelState[]): string | undefined => {
    const ids = [...model.tasks.values()].filter(task => states.includes(task.state)).map(task => task.id)
    return ids.length === 0 ? undefined : ids[n % ids.length]
  }
  const code = (result: CommandResult): string => (result.type === 'error' ? result.code : result.type)
  const run = (command: Command): CommandResult => {
    const { result, events } = log.apply(command)
    see(`${command.type}:${code(result)}`)
    for (const event of events) {
      if (event.type === 'taskStarted') {
        expect(live.has(event.taskId), `two live attempts of ${event.taskId}`).toBe(false)
        live.set(event.taskId, event.attempt)
      } else if (event.type === 'taskAttemptEnded') {
        expect(live.get(event.taskId)).toBe(event.attempt)
        live.delete(event.taskId)
      } else if (event.type === 'taskChange') {
        // Numbered without gap, in order.
        expect(event.change.revision).toBe(++revision)
        see(`change:${event.change.type}`)
        if (event.change.error?.startsWith('dependency')) see('cancelled by a dependency')
      }
    }
    return result
  }
  for (const step of ops) {
    switch (step.kind) {
      case 'submit': {
        const id = taskIds[step.task]
        // Parents among the tasks submitted so far (the unknown and self cases are `badDep`'s).
        const known = taskIds.filter(other => model.tasks.has(other) && other !== id)
        const parents = known.length === 0 ? [] : [...new Set(step.deps.map(i => known[i % known.length]))]
        if (step.badDep === 'unknown') parents.push('ghost')
        if (step.badDep === 'self') parents.push(id)
        const runAt = step.runAtIn === undefined ? undefined : log.now + step.runAtIn
        const spec = taskSpec(id, {
          type: types[step.type],
          dependsOn: parents.length > 0 ? parents : undefined,
          runAt,
          backoff: { type: 'fixed', delay: BACKOFF_MS },
          constraints: { maxRetries: step.maxRetries },
        })
        const expected = model.submit({
          id,
          type: types[step.type],
          parents,
          runAt,
          maxRetries: step.maxRetries,
        })
        expect(code(run({ type: 'submitTask', task: spec })), `submit ${id}`).toBe(expected)
        break
      }
      case 'repeat': {
        const id = repeatIds[step.repeat]
        const repeat = { every: step.every, limit: step.limit }
        const spec = taskSpec(id, { type: types[step.type], repeat, constraints: { maxRetries: 0 } })
        const known = model.repeats.get(id)
        const result = code(run({ type: 'submitTask', task: spec }))
        if (known === undefined) {
          expect(result).toBe('taskSubmitted')
          model.repeats.set(id, {
            id,
            type: types[step.type],
            every: step.every,
            limit: step.limit,
            anchor: log.now,
            count: 0,
          })
        } else {
          const same =
            known.every === step.every && known.limit === step.limit && known.type === types[step.type]
          expect(result).toBe(same ? 'taskSubmitted' : 'Conflict')
        }
        break
      }
      case 'claim': {
        const ready = step.ready ? among(step.task, ['queued']) : undefined
        const id = ready ?? pick(step.task, step.occurrence)
        const expected = model.claim(id)
        const result = run({ type: 'claimTask', taskId: id, agentId: 'a', sessionId: 'session-a' })
        expect(code(result), `claim ${id}`).toBe(expected)
        if (result.type === 'taskClaimed') model.tasks.get(id)!.tokens.push(result.fencingToken)
        break
      }
      case 'complete':
      case 'fail':
      case 'progress': {
        const running = step.running ? among(step.task, ['running']) : undefined
        const id = running ?? pick(step.task, step.occurrence)
        const task = model.tasks.get(id)
        const tokens = task?.tokens ?? []
        // A stale call uses an earlier attempt's token, or a made-up one for a task never started.
        const stale = step.stale && tokens.length > 1
        const fencingToken = tokens.length === 0 ? 1 : stale ? tokens[0] : tokens[tokens.length - 1]
        const attempt = tokens.length === 0 ? 1 : stale ? 1 : tokens.length
        const expected = model.end(id, step.kind, !stale && tokens.length > 0, step.value, log.now)
        const command: Command =
          step.kind === 'complete'
            ? { type: 'completeTask', taskId: id, attempt, fencingToken, result: step.value }
            : step.kind === 'fail'
              ? { type: 'failTask', taskId: id, attempt, fencingToken, error: `e${step.value}` }
              : { type: 'taskProgress', taskId: id, attempt, fencingToken, progress: step.value }
        expect(code(run(command)), `${step.kind} ${id}`).toBe(expected)
        break
      }
      case 'cancel': {
        const id = pick(step.task, step.occurrence)
        const task = model.tasks.get(id)
        const expected =
          task === undefined ? 'NotFound' : FINISHED.has(task.state) ? 'unchanged' : 'taskState'
        if (task !== undefined && !FINISHED.has(task.state)) model.cancel(task, 'stop')
        expect(code(run({ type: 'cancelTask', taskId: id, reason: 'stop' })), `cancel ${id}`).toBe(expected)
        break
      }
      case 'cancelRepeat': {
        const id = repeatIds[step.repeat]
        const expected = model.repeats.delete(id) ? 'taskState' : 'NotFound'
        expect(code(run({ type: 'cancelTask', taskId: id })), `cancel ${id}`).toBe(expected)
        break
      }
      case 'pause':
      case 'resume': {
        const type = step.type === undefined ? undefined : types[step.type]
        if (step.kind === 'pause') {
          if (type === undefined) model.pausedAll = true
          else model.pausedTypes.add(type)
        } else if (type === undefined) {
          model.pausedAll = false
          model.pausedTypes.clear()
        } else model.pausedTypes.delete(type)
        run({ type: step.kind === 'pause' ? 'pauseTasks' : 'resumeTasks', taskType: type })
        break
      }
      case 'time': {
        const now = log.now + step.advance
        log.at(now)
        const plan = planTaskTransitions({
          state: log.machine.taskPlanView(),
          monotonicNow: now,
          takeover: { monotonic: 0, stateTime: 0 },
        })
        for (const command of plan) {
          const result = run(command)
          if (command.type === 'createOccurrence' && result.type === 'taskSubmitted')
            occurrences.push(result.taskId)
        }
        model.time(now)
        break
      }
    }
    // Same states, results, progress, attempts and reasons as the reference, for every task.
    for (const task of model.tasks.values()) {
      const real = log.machine.task(task.id)
      expect(real, task.id).toBeDefined()
      expect(
        {
          state: real?.state,
          attempt: real?.attempt,
          result: real?.result,
          progress: real?.progress,
          reason: real?.cancelReason,
        },
        task.id,
      ).toEqual({
        state: model.expected(task),
        attempt: task.attempt,
        result: task.result,
        progress: task.progress,
        reason: task.cancelReason,
      })
    }
    expect(log.machine.listTasks({}, 1_000)?.tasks.length).toBe(model.tasks.size)
    for (const task of model.tasks.values()) see(`state:${model.expected(task)}`)
  }
  // The state survives a snapshot unchanged.
  expect(StateMachine.restore(log.machine.snapshot(), { retryBackoffBaseMs: BACKOFF_MS }).snapshot()).toEqual(
    log.machine.snapshot(),
  )
}

it('random interleavings of the v0.2 task operations match a reference model', () => {
  const seen = new Map<string, number>()
  const see = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1)
  fc.assert(
    fc.property(fc.array(op, { minLength: 10, maxLength: 120 }), ops => check(ops, see)),
    { numRuns: 400 },
  )
  // The generator must reach the interesting paths, or the property proves little.
  const wanted = [
    'submitTask:taskSubmitted',
    'submitTask:Conflict',
    'submitTask:InvalidArgument',
    'claimTask:taskClaimed',
    'claimTask:NotClaimable',
    'completeTask:taskState',
    'completeTask:StaleAttempt',
    'failTask:taskState',
    'taskProgress:taskState',
    'taskProgress:StaleAttempt',
    'cancelTask:taskState',
    'cancelTask:unchanged',
    'releaseTask:taskState',
    'retryDue:taskState',
    'createOccurrence:taskSubmitted',
    'pauseTasks:ok',
    'resumeTasks:ok',
    'change:waiting',
    'change:retrying',
    'change:dead',
    'cancelled by a dependency',
    'state:waiting',
    'state:pending',
    'state:running',
    'state:failed',
    'state:completed',
    'state:cancelled',
  ]
  if (process.env.SHOW_COVERAGE) console.log(Object.fromEntries([...seen].sort()))
  for (const what of wanted) expect(seen.get(what) ?? 0, what).toBeGreaterThan(10)
})
