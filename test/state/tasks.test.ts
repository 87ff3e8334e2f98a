import { describe, expect, it } from 'vitest'
import { decodeEnvelope } from '../../src/state/codec.ts'
import type { StateEvent } from '../../src/state/events.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { planTaskTransitions } from '../../src/state/task-planner.ts'
import { claim, LogDriver, placements, registerAgent, submit, taskSpec, textDecoder } from './helpers.ts'

const ofType = (events: readonly StateEvent[], type: StateEvent['type']) =>
  events.filter(event => event.type === type)

/** The output with its task changes left out: what the shell's per-attempt bookkeeping sees. */
const withoutChanges = <T extends { events: readonly StateEvent[] }>(output: T): T => ({
  ...output,
  events: output.events.filter(event => event.type !== 'taskChange'),
})
/** What the leader's planner proposes when its clock reads state time `now`. */
const planAt = (machine: StateMachine, now: number) =>
  planTaskTransitions({
    state: machine.taskPlanView(),
    monotonicNow: now,
    takeover: { monotonic: 0, stateTime: 0 },
  })

const typesOf = (events: readonly StateEvent[]) =>
  events.filter(event => event.type !== 'taskChange').map(event => event.type)

describe('task lifecycle', () => {
  it('submit → assigned → running → completed, with events and status', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 2 })
    const submitted = log.at(1_100).apply({
      type: 'submitTask',
      task: taskSpec('t1', { type: 'resize', priority: 2, payload: { image: 'x.png' } }),
    })
    expect(withoutChanges(submitted)).toEqual({
      result: { type: 'taskSubmitted', taskId: 't1', createdAt: 1_100 },
      events: [{ type: 'taskAssigned', taskId: 't1', agentId: 'a' }],
    })
    expect(log.machine.task('t1')).toEqual({
      id: 't1',
      type: 'resize',
      priority: 2,
      payload: { image: 'x.png' },
      constraints: { requiredCapabilities: [], maxRetries: 3, timeout: 0 },
      createdAt: 1_100,
      state: 'assigned',
      assignee: 'a',
      attempt: 0,
      fencingToken: 0,
      updatedAt: 1_100,
    })
    expect(log.machine.tasksAssignedTo('a').map(task => task.id)).toEqual(['t1'])
    expect(log.machine.agentLoad('a')).toEqual({ running: 0, assigned: 1, slots: 2 })
    expect(log.machine.bestTaskFor('a')?.id).toBe('t1')

    const claimed = log.at(1_200).apply({
      type: 'claimTask',
      taskId: 't1',
      agentId: 'a',
      sessionId: 'session-a',
    })
    const token = log.index
    expect(withoutChanges(claimed)).toEqual({
      result: { type: 'taskClaimed', taskId: 't1', attempt: 1, fencingToken: token },
      events: [{ type: 'taskStarted', taskId: 't1', agentId: 'a', attempt: 1, fencingToken: token }],
    })
    expect(log.machine.task('t1')).toMatchObject({ state: 'running', assignee: 'a', startedAt: 1_200 })
    expect(log.machine.agentLoad('a')).toEqual({ running: 1, assigned: 0, slots: 2 })

    const completed = log.at(1_300).apply({
      type: 'completeTask',
      taskId: 't1',
      attempt: 1,
      fencingToken: token,
      result: { width: 10 },
    })
    expect(withoutChanges(completed)).toEqual({
      result: { type: 'taskState', taskId: 't1', state: 'completed' },
      events: [
        {
          type: 'taskAttemptEnded',
          taskId: 't1',
          agentId: 'a',
          attempt: 1,
          fencingToken: token,
          reason: 'completed',
        },
        { type: 'taskCompleted', taskId: 't1', agentId: 'a', attempt: 1 },
      ],
    })
    expect(log.machine.task('t1')).toMatchObject({
      state: 'completed',
      result: { width: 10 },
      lastAgentId: 'a',
      attempt: 1,
      fencingToken: token,
      updatedAt: 1_300,
    })
    expect(log.machine.task('t1')?.assignee).toBeUndefined()
    expect(log.machine.agentLoad('a')).toEqual({ running: 0, assigned: 0, slots: 2 })
    // A second completion, even from the same attempt, is refused.
    expect(
      log.result({ type: 'completeTask', taskId: 't1', attempt: 1, fencingToken: token, result: 1 }),
    ).toMatchObject({ type: 'error', code: 'StaleAttempt' })
  })

  it('a duplicate id is refused, but a retried request is answered from the session', () => {
    const log = new LogDriver()
    log.open('client')
    const envelope = { session: 'client', seq: 1 }
    const first = log.apply({ type: 'submitTask', task: taskSpec('t1') }, envelope)
    expect(first.result).toEqual({ type: 'taskSubmitted', taskId: 't1', createdAt: 1_000 })
    expect(log.apply({ type: 'submitTask', task: taskSpec('t1') }, envelope).result).toEqual(first.result)
    // Other contents under the same id: a conflict; the same contents again: the same answer.
    expect(log.result({ type: 'submitTask', task: taskSpec('t1', { priority: 9 }) })).toMatchObject({
      type: 'error',
      code: 'Conflict',
    })
    expect(log.result({ type: 'submitTask', task: taskSpec('t1') })).toEqual(first.result)
    expect(log.machine.task('t1')?.priority).toBe(0)
    expect(log.machine.pendingCount).toBe(1)
  })

  it('the codec refuses malformed tasks', () => {
    const good = taskSpec('t', { deadline: 5, constraints: { affinity: 'k', excludeAgents: ['x'] } })
    const bad: unknown[] = [
      { ...good, extra: 1 },
      { ...good, id: '' },
      { ...good, priority: '1' },
      { ...good, payload: [] },
      { ...good, payload: 'x' },
      { ...good, payload: null },
      { ...good, deadline: -1 },
      { ...good, createdAt: 5 },
      { ...good, constraints: { ...good.constraints, maxRetries: -1 } },
      { ...good, constraints: { ...good.constraints, timeout: 1.5 } },
      { ...good, constraints: { ...good.constraints, requiredCapabilities: [1] } },
      { ...good, constraints: { ...good.constraints, unknown: true } },
      { ...good, constraints: { maxRetries: 3, timeout: 0 } },
    ]
    const encoder = new TextEncoder()
    const decode = (command: unknown) => decodeEnvelope(encoder.encode(JSON.stringify({ ts: 1, command })))
    expect(decode({ type: 'submitTask', task: good }).ok).toBe(true)
    for (const task of bad) expect(decode({ type: 'submitTask', task }).ok, JSON.stringify(task)).toBe(false)
    expect(
      decode({ type: 'completeTask', taskId: 't', attempt: 1, fencingToken: 1, result: undefined }).ok,
    ).toBe(false)
    expect(decode({ type: 'failTask', taskId: 't', attempt: 0, fencingToken: 1, error: 'x' }).ok).toBe(false)
  })
})

describe('scheduling', () => {
  it('higher priority first when capacity is short; equal priorities in submission order', () => {
    const log = new LogDriver()
    submit(log, 'low', { priority: 0 })
    submit(log, 'mid-1', { priority: 5 })
    submit(log, 'high', { priority: 9 })
    submit(log, 'mid-2', { priority: 5 })
    expect(log.machine.pendingCount).toBe(4)
    const order: string[] = []
    const registered = registerAgent(log, 'a', { concurrency: 1 })
    for (const event of ofType(registered.events, 'taskAssigned'))
      order.push((event as { taskId: string }).taskId)
    for (let i = 0; i < 4; i++) {
      const next = log.machine.bestTaskFor('a')!.id
      const { attempt, fencingToken } = claim(log, next, 'a')
      const done = log.apply({ type: 'completeTask', taskId: next, attempt, fencingToken, result: null })
      for (const event of ofType(done.events, 'taskAssigned'))
        order.push((event as { taskId: string }).taskId)
    }
    expect(order).toEqual(['high', 'mid-1', 'mid-2', 'low'])
    expect(log.machine.pendingCount).toBe(0)
  })

  it('spreads by load: (running + assigned) / slots, assigned counting against capacity', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 4 })
    registerAgent(log, 'b', { concurrency: 2 })
    for (let i = 0; i < 6; i++) submit(log, `t${i}`)
    expect(log.machine.agentLoad('a')).toEqual({ running: 0, assigned: 4, slots: 4 })
    expect(log.machine.agentLoad('b')).toEqual({ running: 0, assigned: 2, slots: 2 })
    submit(log, 'extra')
    expect(log.machine.task('extra')?.state).toBe('pending')
    // Each goes to the lower load: a 0/4 = b 0/2 (tie: id), b 0/2 < a 1/4, a 1/4 < b 1/2, a 2/4 = b 1/2,
    // b 1/2 < a 3/4, then only a has room.
    expect(placements(log.machine, ['t0', 't1', 't2', 't3', 't4', 't5'])).toEqual({
      t0: 'a',
      t1: 'b',
      t2: 'a',
      t3: 'a',
      t4: 'b',
      t5: 'a',
    })
  })

  it('never places a task on an agent lacking a required capability or excluded by id or name', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { capabilities: ['gpu'], concurrency: 10 })
    registerAgent(log, 'b', { capabilities: ['gpu', 'cuda'], name: 'bravo', concurrency: 10 })
    registerAgent(log, 'c', { capabilities: [], concurrency: 10 })
    submit(log, 'cuda', { constraints: { requiredCapabilities: ['cuda', 'gpu'] } })
    submit(log, 'gpu-not-a', { constraints: { requiredCapabilities: ['gpu'], excludeAgents: ['a'] } })
    submit(log, 'gpu-not-bravo', { constraints: { requiredCapabilities: ['gpu'], excludeAgents: ['bravo'] } })
    submit(log, 'nowhere', { constraints: { requiredCapabilities: ['cuda'], excludeAgents: ['bravo'] } })
    submit(log, 'tpu', { constraints: { requiredCapabilities: ['tpu'] } })
    expect(placements(log.machine, ['cuda', 'gpu-not-a', 'gpu-not-bravo', 'nowhere', 'tpu'])).toEqual({
      cuda: 'b',
      'gpu-not-a': 'b',
      'gpu-not-bravo': 'a',
      nowhere: undefined,
      tpu: undefined,
    })
    // Claims obey the same filters.
    expect(
      log.result({ type: 'claimTask', taskId: 'tpu', agentId: 'c', sessionId: 'session-c' }),
    ).toMatchObject({
      type: 'error',
      code: 'NotClaimable',
    })
    // A capability that appears later places the waiting task.
    const updated = log.apply({ type: 'updateAgent', agentId: 'c', capabilities: ['tpu'] })
    expect(ofType(updated.events, 'taskAssigned')).toEqual([
      { type: 'taskAssigned', taskId: 'tpu', agentId: 'c' },
    ])
  })

  it('preferred agents win while they have capacity, in list order', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 5 })
    registerAgent(log, 'b', { concurrency: 1, name: 'bravo' })
    registerAgent(log, 'c', { concurrency: 1 })
    submit(log, 'p1', { constraints: { preferredAgents: ['c', 'bravo'] } })
    submit(log, 'p2', { constraints: { preferredAgents: ['c', 'bravo'] } })
    submit(log, 'p3', { constraints: { preferredAgents: ['c', 'bravo'] } })
    expect(placements(log.machine, ['p1', 'p2', 'p3'])).toEqual({ p1: 'c', p2: 'b', p3: 'a' })
  })

  it('affinity sticks to the agent that started the last task of the key while it is eligible', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 3 })
    registerAgent(log, 'b', { concurrency: 3 })
    submit(log, 'k1', { constraints: { affinity: 'repo-x' } })
    const first = log.machine.task('k1')!.assignee!
    const other = first === 'a' ? 'b' : 'a'
    claim(log, 'k1', first)
    // Without affinity the next task would go to the idle agent; with it, to the same one.
    submit(log, 'k2', { constraints: { affinity: 'repo-x' } })
    submit(log, 'k3', { constraints: { affinity: 'repo-x' } })
    submit(log, 'plain')
    expect(placements(log.machine, ['k2', 'k3', 'plain'])).toEqual({ k2: first, k3: first, plain: other })
    // Full: the next one goes elsewhere rather than wait.
    submit(log, 'k4', { constraints: { affinity: 'repo-x' } })
    expect(log.machine.task('k4')?.assignee).toBe(other)
    // Once another agent started a task of the key, affinity follows it.
    claim(log, 'k4', other)
    submit(log, 'k5', { constraints: { affinity: 'repo-x' } })
    expect(log.machine.task('k5')?.assignee).toBe(other)
  })

  it('tasks that fit no live agent stay pending and cost nothing to later entries', () => {
    /** Ms per submit + claim + complete cycle with `waiting` tasks no agent can run. */
    const cycleCost = (waiting: number): number => {
      const log = new LogDriver()
      for (let i = 0; i < 10; i++) registerAgent(log, `agent-${i}`, { concurrency: 2 })
      for (let i = 0; i < waiting; i++)
        submit(log, `gpu-${i}`, { constraints: { requiredCapabilities: ['gpu'] } })
      expect(log.machine.pendingCount).toBe(waiting)
      const started = performance.now()
      for (let i = 0; i < 500; i++) {
        submit(log, `cpu-${i}`)
        const agentId = log.machine.task(`cpu-${i}`)!.assignee!
        const { attempt, fencingToken } = claim(log, `cpu-${i}`, agentId)
        log.apply({ type: 'completeTask', taskId: `cpu-${i}`, attempt, fencingToken, result: null })
      }
      expect(log.machine.pendingCount).toBe(waiting)
      return (performance.now() - started) / 500
    }
    cycleCost(0) // warm-up
    const baseline = Math.min(cycleCost(0), cycleCost(0))
    const loaded = Math.min(cycleCost(2_000), cycleCost(2_000))
    // Rescanning 2,000 waiting tasks against 10 agents at every entry would cost many times the baseline.
    expect(loaded).toBeLessThan(baseline * 2 + 0.05)
  })
})

describe('claims', () => {
  it('claim rules: own assignment, eligible takeover of another assignment, never a running task', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 1 })
    registerAgent(log, 'b', { concurrency: 1 })
    registerAgent(log, 'gpu-less', { concurrency: 5 })
    submit(log, 't1', { constraints: { excludeAgents: ['gpu-less'] } })
    const assignee = log.machine.task('t1')!.assignee!
    const other = assignee === 'a' ? 'b' : 'a'
    expect(
      log.result({ type: 'claimTask', taskId: 't1', agentId: 'gpu-less', sessionId: 'session-gpu-less' }),
    ).toMatchObject({ type: 'error', code: 'NotClaimable' })
    // Wrong session for the agent.
    expect(
      log.result({ type: 'claimTask', taskId: 't1', agentId: other, sessionId: `session-${assignee}` }),
    ).toMatchObject({ type: 'error', code: 'NotClaimable' })
    expect(log.result({ type: 'claimTask', taskId: 't1', agentId: other, sessionId: 'nope' })).toMatchObject({
      type: 'error',
      code: 'SessionExpired',
    })
    expect(
      log.result({ type: 'claimTask', taskId: 'zz', agentId: other, sessionId: `session-${other}` }),
    ).toMatchObject({ type: 'error', code: 'NotFound' })
    // The other eligible agent with a free slot takes the assignment over.
    const takeover = log.apply({
      type: 'claimTask',
      taskId: 't1',
      agentId: other,
      sessionId: `session-${other}`,
    })
    expect(takeover.result).toMatchObject({ type: 'taskClaimed', attempt: 1 })
    expect(takeover.events.slice(0, 2)).toEqual([
      { type: 'taskStolen', taskId: 't1', from: assignee, to: other },
      { type: 'taskStarted', taskId: 't1', agentId: other, attempt: 1, fencingToken: log.index },
    ])
    // Running: nobody claims it, not even its own agent a second time.
    for (const agentId of [assignee, other]) {
      expect(
        log.result({ type: 'claimTask', taskId: 't1', agentId, sessionId: `session-${agentId}` }),
      ).toMatchObject({ type: 'error', code: 'NotClaimable' })
    }
    expect(log.machine.task('t1')).toMatchObject({ state: 'running', assignee: other, attempt: 1 })
  })

  it('a full agent cannot claim a task assigned elsewhere', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 1 })
    submit(log, 'mine')
    registerAgent(log, 'b', { concurrency: 1 })
    submit(log, 'theirs')
    expect(placements(log.machine, ['mine', 'theirs'])).toEqual({ mine: 'a', theirs: 'b' })
    expect(
      log.result({ type: 'claimTask', taskId: 'theirs', agentId: 'a', sessionId: 'session-a' }),
    ).toMatchObject({
      type: 'error',
      code: 'NotClaimable',
    })
  })

  it('complete and fail are accepted only from the current attempt', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 0 })
    registerAgent(log, 'a')
    submit(log, 't')
    const first = claim(log, 't', 'a')
    const stale = [
      { attempt: first.attempt + 1, fencingToken: first.fencingToken },
      { attempt: first.attempt, fencingToken: first.fencingToken + 1 },
    ]
    for (const attempt of stale) {
      expect(log.result({ type: 'completeTask', taskId: 't', ...attempt, result: 1 })).toMatchObject({
        type: 'error',
        code: 'StaleAttempt',
      })
      expect(log.result({ type: 'failTask', taskId: 't', ...attempt, error: 'x' })).toMatchObject({
        type: 'error',
        code: 'StaleAttempt',
      })
    }
    // No back-off: straight back to pending (the result tells the state the command left), and placed on
    // the free agent by the same entry.
    const failed = log.apply({ type: 'failTask', taskId: 't', ...first, error: 'boom' })
    expect(failed.result).toEqual({ type: 'taskState', taskId: 't', state: 'pending' })
    expect(typesOf(failed.events)).toEqual(['taskAttemptEnded', 'taskFailed', 'taskRetry', 'taskAssigned'])
    const second = claim(log, 't', 'a')
    expect(second.attempt).toBe(2)
    expect(log.result({ type: 'completeTask', taskId: 't', ...first, result: 'late' })).toMatchObject({
      type: 'error',
      code: 'StaleAttempt',
    })
    expect(log.result({ type: 'completeTask', taskId: 't', ...second, result: 'ok' })).toMatchObject({
      state: 'completed',
    })
    expect(log.machine.task('t')).toMatchObject({ result: 'ok', attempt: 2 })
    expect(log.result({ type: 'completeTask', taskId: 'nope', ...second, result: 1 })).toMatchObject({
      code: 'NotFound',
    })
  })
})

describe('failures and time', () => {
  it('retries with exponential back-off, then dead after maxRetries', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 1_000 })
    registerAgent(log, 'a')
    submit(log, 't', { constraints: { maxRetries: 2 } })
    let now = 10_000
    const expectedDelays = [1_000, 2_000]
    for (const delay of expectedDelays) {
      const attempt = claim(log.at(now), 't', 'a')
      const failed = log.apply({ type: 'failTask', taskId: 't', ...attempt, error: 'boom' })
      expect(failed.result).toEqual({ type: 'taskState', taskId: 't', state: 'failed' })
      expect(ofType(failed.events, 'taskFailed')).toEqual([
        {
          type: 'taskFailed',
          taskId: 't',
          agentId: 'a',
          attempt: attempt.attempt,
          error: 'boom',
          retryAt: now + delay,
        },
      ])
      expect(log.machine.task('t')).toMatchObject({ state: 'failed', retryAt: now + delay, error: 'boom' })
      // Not placed during the back-off (the agent's next() finds nothing), not due before it.
      expect(log.machine.bestTaskFor('a')).toBeUndefined()
      expect(log.machine.dueExpiries(now + delay - 1).retries).toEqual([])
      expect(planAt(log.machine, now + delay - 1)).toEqual([])
      expect(log.machine.dueExpiries(now + delay).retries).toEqual(['t'])
      expect(planAt(log.machine, now + delay)).toEqual([{ type: 'retryDue', taskId: 't' }])
      now += delay
      const retried = log.at(now).apply({ type: 'retryDue', taskId: 't' })
      expect(withoutChanges(retried).events).toEqual([
        { type: 'taskRetry', taskId: 't', attempt: attempt.attempt },
        { type: 'taskAssigned', taskId: 't', agentId: 'a' },
      ])
    }
    const last = claim(log, 't', 'a')
    expect(last.attempt).toBe(3)
    const dead = log.apply({ type: 'failTask', taskId: 't', ...last, error: 'final' })
    expect(dead.result).toEqual({ type: 'taskState', taskId: 't', state: 'dead' })
    expect(ofType(dead.events, 'taskDead')).toEqual([
      { type: 'taskDead', taskId: 't', attempt: 3, error: 'final' },
    ])
    expect(log.machine.task('t')).toMatchObject({ state: 'dead', attempt: 3, error: 'final' })
    expect(log.machine.task('t')?.retryAt).toBeUndefined()
  })

  it('caps the back-off, and a claim after the back-off retries at once', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 1_000, retryBackoffMaxMs: 3_000 })
    registerAgent(log, 'a')
    submit(log, 't', { constraints: { maxRetries: 10 } })
    const delays: number[] = []
    for (let i = 0; i < 4; i++) {
      const attempt = claim(log, 't', 'a')
      log.apply({ type: 'failTask', taskId: 't', ...attempt, error: 'x' })
      const retryAt = log.machine.task('t')!.retryAt!
      delays.push(retryAt - log.now)
      // No retryDue entry needed: a claim once the time has come applies it first.
      log.at(retryAt)
    }
    expect(delays).toEqual([1_000, 2_000, 3_000, 3_000])
  })

  it('an attempt times out only when due, and only that attempt', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't', { constraints: { timeout: 5_000 } })
    const attempt = claim(log.at(2_000), 't', 'a')
    expect(log.machine.dueExpiries(6_999).timeouts).toEqual([])
    expect(planAt(log.machine, 6_999)).toEqual([])
    expect(log.machine.dueExpiries(7_000).timeouts).toEqual([{ taskId: 't', attempt: 1 }])
    expect(planAt(log.machine, 7_000)).toEqual([{ type: 'timeoutTask', taskId: 't', attempt: 1 }])
    expect(log.at(7_000).result({ type: 'timeoutTask', taskId: 't', attempt: 2 })).toEqual({
      type: 'unchanged',
    })
    const timedOut = log.apply({ type: 'timeoutTask', taskId: 't', attempt: 1 })
    expect(timedOut.result).toEqual({ type: 'taskState', taskId: 't', state: 'failed' })
    expect(timedOut.events[0]).toEqual({
      type: 'taskAttemptEnded',
      taskId: 't',
      agentId: 'a',
      attempt: 1,
      fencingToken: attempt.fencingToken,
      reason: 'timeout',
    })
    expect(log.machine.task('t')).toMatchObject({
      state: 'failed',
      error: 'attempt 1 timed out after 5000 ms',
    })
  })

  it("the leader's timeout decides, not the entry's timestamp: a completion before it counts, after it is refused", () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't', { constraints: { timeout: 100, maxRetries: 1 } })
    const first = claim(log, 't', 'a')
    log.apply({ type: 'timeoutTask', taskId: 't', attempt: 1 })
    expect(log.result({ type: 'completeTask', taskId: 't', ...first, result: 1 })).toMatchObject({
      type: 'error',
      code: 'StaleAttempt',
    })
    expect(log.machine.task('t')).toMatchObject({
      state: 'failed',
      error: 'attempt 1 timed out after 100 ms',
    })
    // Stamped long past the timeout, but no timeout entry came: the completion is the attempt's.
    const second = claim(log, 't', 'a')
    const late = log.at(log.now + 10_000).apply({ type: 'completeTask', taskId: 't', ...second, result: 2 })
    expect(late.result).toEqual({ type: 'taskState', taskId: 't', state: 'completed' })
  })

  it('a task not completed by its deadline expires, ending its attempt', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't', { deadline: 5_000 })
    const attempt = claim(log, 't', 'a')
    expect(log.machine.dueExpiries(4_999).expiries).toEqual([])
    expect(planAt(log.machine, 4_999)).toEqual([])
    expect(log.machine.dueExpiries(5_000).expiries).toEqual(['t'])
    expect(planAt(log.machine, 5_000)).toEqual([{ type: 'expireTask', taskId: 't' }])
    const expired = log.at(5_000).apply({ type: 'expireTask', taskId: 't' })
    expect(withoutChanges(expired)).toEqual({
      result: { type: 'taskState', taskId: 't', state: 'expired' },
      events: [
        {
          type: 'taskAttemptEnded',
          taskId: 't',
          agentId: 'a',
          attempt: 1,
          fencingToken: attempt.fencingToken,
          reason: 'expired',
        },
        { type: 'taskExpired', taskId: 't' },
      ],
    })
    expect(log.result({ type: 'completeTask', taskId: 't', ...attempt, result: 1 })).toMatchObject({
      code: 'StaleAttempt',
    })
    expect(log.result({ type: 'expireTask', taskId: 't' })).toEqual({ type: 'unchanged' })
    expect(log.machine.agentLoad('a')).toEqual({ running: 0, assigned: 0, slots: 1 })
  })

  it('a completed task never expires', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't', { deadline: 5_000 })
    const attempt = claim(log, 't', 'a')
    log.apply({ type: 'completeTask', taskId: 't', ...attempt, result: 1 })
    expect(log.machine.dueExpiries(9_000).expiries).toEqual([])
    expect(log.at(9_000).result({ type: 'expireTask', taskId: 't' })).toEqual({ type: 'unchanged' })
    expect(log.machine.task('t')?.state).toBe('completed')
  })

  it("a session's end fails its running attempts and re-queues its assigned tasks", () => {
    const log = new LogDriver({ retryBackoffBaseMs: 500 })
    registerAgent(log, 'a', { concurrency: 2, ttlMs: 5_000 })
    submit(log, 'run')
    submit(log, 'wait')
    const attempt = claim(log, 'run', 'a')
    registerAgent(log, 'b', { concurrency: 2 })
    expect(placements(log.machine, ['run', 'wait'])).toEqual({ run: 'a', wait: 'a' })
    const ended = log.at(7_000).apply({ type: 'expireSession', sessionId: 'session-a', reason: 'ttl' })
    expect(withoutChanges(ended).events).toEqual([
      { type: 'sessionExpired', sessionId: 'session-a', agentId: 'a', reason: 'ttl' },
      { type: 'agentChanged', agentId: 'a', change: 'down' },
      {
        type: 'taskAttemptEnded',
        taskId: 'run',
        agentId: 'a',
        attempt: 1,
        fencingToken: attempt.fencingToken,
        reason: 'session',
      },
      {
        type: 'taskFailed',
        taskId: 'run',
        agentId: 'a',
        attempt: 1,
        error: "agent a's session ended",
        retryAt: 7_500,
      },
      { type: 'taskUnassigned', taskId: 'wait', agentId: 'a', reason: 'agentDown' },
      { type: 'taskAssigned', taskId: 'wait', agentId: 'b' },
    ])
    expect(log.machine.task('run')).toMatchObject({ state: 'failed', attempt: 1 })
    // A down agent is never eligible.
    log.at(7_500).apply({ type: 'retryDue', taskId: 'run' })
    expect(log.machine.task('run')?.assignee).toBe('b')
  })

  it('re-registering with a new session ends the previous incarnation', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 0 })
    registerAgent(log, 'a', { concurrency: 2 })
    submit(log, 'run')
    submit(log, 'wait')
    const attempt = claim(log, 'run', 'a')
    const restarted = registerAgent(log, 'a', { concurrency: 2, sessionId: 'session-a-2' })
    expect(typesOf(restarted.events)).toEqual([
      'taskAttemptEnded',
      'taskFailed',
      'taskRetry',
      'taskUnassigned',
      'agentChanged',
      'taskAssigned',
      'taskAssigned',
    ])
    expect(log.result({ type: 'completeTask', taskId: 'run', ...attempt, result: 1 })).toMatchObject({
      code: 'StaleAttempt',
    })
    expect(log.machine.tasksAssignedTo('a').map(task => [task.id, task.state])).toEqual([
      ['run', 'assigned'],
      ['wait', 'assigned'],
    ])
  })

  it('fewer capabilities or slots send assignments that no longer fit back to pending', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 3, capabilities: ['gpu'] })
    submit(log, 'gpu', { constraints: { requiredCapabilities: ['gpu'] } })
    submit(log, 'high', { priority: 5 })
    submit(log, 'low')
    const updated = log.apply({ type: 'updateAgent', agentId: 'a', capabilities: [], concurrency: 1 })
    expect(ofType(updated.events, 'taskUnassigned')).toEqual([
      { type: 'taskUnassigned', taskId: 'gpu', agentId: 'a', reason: 'ineligible' },
      { type: 'taskUnassigned', taskId: 'low', agentId: 'a', reason: 'ineligible' },
    ])
    expect(log.machine.tasksAssignedTo('a').map(task => task.id)).toEqual(['high'])
    expect(log.machine.pendingCount).toBe(2)
  })

  it('cancel ends a task that has not finished', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't')
    const attempt = claim(log, 't', 'a')
    submit(log, 'queued')
    const cancelled = log.apply({ type: 'cancelTask', taskId: 't' })
    expect(cancelled.result).toEqual({ type: 'taskState', taskId: 't', state: 'cancelled' })
    expect(withoutChanges(cancelled).events).toEqual([
      {
        type: 'taskAttemptEnded',
        taskId: 't',
        agentId: 'a',
        attempt: 1,
        fencingToken: attempt.fencingToken,
        reason: 'cancelled',
      },
      { type: 'taskAssigned', taskId: 'queued', agentId: 'a' },
    ])
    expect(log.machine.task('t')).toMatchObject({ state: 'cancelled', cancelReason: 'cancelled' })
    expect(log.result({ type: 'completeTask', taskId: 't', ...attempt, result: 1 })).toMatchObject({
      code: 'StaleAttempt',
    })
    expect(log.result({ type: 'cancelTask', taskId: 't' })).toEqual({ type: 'unchanged' })
    expect(log.result({ type: 'cancelTask', taskId: 'nope' })).toMatchObject({ code: 'NotFound' })
  })

  it('forgets the oldest finished tasks beyond maxFinishedTasks', () => {
    const log = new LogDriver({ maxFinishedTasks: 2 })
    for (const id of ['t1', 't2', 't3']) {
      submit(log, id)
      log.apply({ type: 'cancelTask', taskId: id })
    }
    expect(log.machine.task('t1')).toBeUndefined()
    expect(log.machine.task('t2')?.state).toBe('cancelled')
    expect(log.machine.task('t3')?.state).toBe('cancelled')
    // A forgotten id may be used again.
    submit(log, 't1')
  })
})

describe('work stealing', () => {
  it('a steal is conditional: it succeeds once, and a duplicate or a steal of a running task changes nothing', () => {
    const log = new LogDriver()
    registerAgent(log, 'busy', { concurrency: 3 })
    for (const id of ['t1', 't2', 't3']) submit(log, id)
    registerAgent(log, 'idle', { concurrency: 3 })
    expect(log.machine.agentLoad('busy')).toEqual({ running: 0, assigned: 3, slots: 3 })
    const steal = { type: 'stealTask' as const, taskId: 't2', fromAgentId: 'busy', toAgentId: 'idle' }
    const stolen = log.apply(steal)
    expect(withoutChanges(stolen)).toEqual({
      result: { type: 'taskAssigned', taskId: 't2', agentId: 'idle' },
      events: [{ type: 'taskStolen', taskId: 't2', from: 'busy', to: 'idle' }],
    })
    expect(placements(log.machine, ['t1', 't2', 't3'])).toEqual({ t1: 'busy', t2: 'idle', t3: 'busy' })

    const unchanged = (command: typeof steal) => {
      const before = withoutAppliedIndex(log.machine.snapshot())
      const output = log.apply(command)
      expect(output).toMatchObject({ result: { type: 'error', code: 'NotStealable' }, events: [] })
      expect(withoutAppliedIndex(log.machine.snapshot())).toEqual(before)
    }
    unchanged(steal) // the duplicate
    claim(log, 't1', 'busy')
    unchanged({ ...steal, taskId: 't1' }) // running
    unchanged({ ...steal, taskId: 't3', toAgentId: 'busy' }) // to itself
    unchanged({ ...steal, taskId: 't3', toAgentId: 'ghost' }) // unknown agent
    unchanged({ ...steal, taskId: 'ghost' })
    log.apply({ type: 'updateAgent', agentId: 'idle', capabilities: ['x'] })
    submit(log, 'needs-y', { constraints: { requiredCapabilities: ['y'] } })
    unchanged({ ...steal, taskId: 'needs-y', fromAgentId: 'idle' }) // pending, not assigned
  })

  it('a steal to an ineligible or full agent changes nothing', () => {
    const log = new LogDriver()
    registerAgent(log, 'busy', { concurrency: 2, capabilities: ['gpu'] })
    submit(log, 'gpu', { constraints: { requiredCapabilities: ['gpu'] } })
    submit(log, 'plain')
    registerAgent(log, 'cpu', { concurrency: 1 })
    submit(log, 'fills-cpu')
    expect(log.machine.task('fills-cpu')?.assignee).toBe('cpu')
    for (const taskId of ['gpu', 'plain']) {
      expect(log.result({ type: 'stealTask', taskId, fromAgentId: 'busy', toAgentId: 'cpu' })).toMatchObject({
        code: 'NotStealable',
      })
    }
    expect(placements(log.machine, ['gpu', 'plain'])).toEqual({ gpu: 'busy', plain: 'busy' })
  })
})

describe('task snapshots', () => {
  it('restore reproduces tasks, indexes, affinity and the same behaviour afterwards', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 100 })
    registerAgent(log, 'a', { concurrency: 2, capabilities: ['gpu'] })
    registerAgent(log, 'b', { concurrency: 1 })
    submit(log, 'aff', { constraints: { affinity: 'k' } })
    claim(log, 'aff', log.machine.task('aff')!.assignee!)
    submit(log, 'failing', { constraints: { timeout: 50 } })
    claim(log, 'failing', log.machine.task('failing')!.assignee!)
    log.at(2_000).apply({ type: 'timeoutTask', taskId: 'failing', attempt: 1 })
    for (let i = 0; i < 5; i++) submit(log, `p${i}`, { priority: i % 2, deadline: 9_000 })
    submit(log, 'done')
    submit(log, 'gpu', { constraints: { requiredCapabilities: ['gpu', 'tpu'] } })

    const bytes = log.machine.snapshot()
    const snapshot = JSON.parse(textDecoder.decode(bytes))
    expect(snapshot.version).toBe(2)
    const restored = StateMachine.restore(bytes, { retryBackoffBaseMs: 100 })
    expect(restored.snapshot()).toEqual(bytes)
    for (const id of ['aff', 'failing', 'p0', 'p3', 'gpu'])
      expect(restored.task(id)).toEqual(log.machine.task(id))
    expect(restored.pendingCount).toBe(log.machine.pendingCount)
    expect(restored.agentLoad('a')).toEqual(log.machine.agentLoad('a'))
    expect(restored.tasksAssignedTo('b')).toEqual(log.machine.tasksAssignedTo('b'))
    expect(restored.bestTaskFor('b')).toEqual(log.machine.bestTaskFor('b'))
    expect(restored.dueExpiries(10_000)).toEqual(log.machine.dueExpiries(10_000))

    // The same entries give the same outputs: completions, retries, session end, expiries.
    const follow = (machine: StateMachine) => {
      const outputs = []
      let index = log.index
      const apply = (ts: number, command: Parameters<LogDriver['apply']>[0]) =>
        machine.apply({
          index: ++index,
          term: 2,
          data: new TextEncoder().encode(JSON.stringify({ ts, command })),
        })
      const aff = machine.task('aff')!
      outputs.push(
        apply(3_000, {
          type: 'completeTask',
          taskId: 'aff',
          attempt: 1,
          fencingToken: aff.fencingToken,
          result: 1,
        }),
      )
      outputs.push(apply(3_000, { type: 'retryDue', taskId: 'failing' }))
      outputs.push(
        apply(3_100, { type: 'submitTask', task: taskSpec('aff2', { constraints: { affinity: 'k' } }) }),
      )
      outputs.push(apply(3_200, { type: 'expireSession', sessionId: 'session-b', reason: 'dead' }))
      outputs.push(apply(9_000, { type: 'expireTask', taskId: 'p1' }))
      return outputs
    }
    expect(follow(restored)).toEqual(follow(log.machine))
  })

  it('restores a version 1 snapshot as a state without agents or tasks', () => {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'k', value: 1 })
    const snapshot = JSON.parse(textDecoder.decode(log.machine.snapshot()))
    delete snapshot.agents
    delete snapshot.tasks
    snapshot.version = 1
    const restored = StateMachine.restore(new TextEncoder().encode(JSON.stringify(snapshot)))
    expect(restored.get('k')?.value).toBe(1)
    expect(restored.agents()).toEqual([])
    expect(restored.pendingCount).toBe(0)
  })

  it('refuses snapshots whose task state is inconsistent', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 't')
    const snapshot = JSON.parse(textDecoder.decode(log.machine.snapshot()))
    const corrupt = (mutate: (copy: typeof snapshot) => void) => {
      const copy = structuredClone(snapshot)
      mutate(copy)
      return () => StateMachine.restore(new TextEncoder().encode(JSON.stringify(copy)))
    }
    expect(corrupt(copy => (copy.tasks.tasks[0].state = 'flying'))).toThrow(/tasks/)
    expect(corrupt(copy => delete copy.tasks.tasks[0].assignee)).toThrow(/tasks/)
    expect(corrupt(copy => (copy.tasks.tasks[0].assignee = 'ghost'))).toThrow(/assignee/)
    expect(corrupt(copy => (copy.agents[0].concurrency = 0))).toThrow(/agents/)
    expect(corrupt(copy => copy.tasks.finished.push('t'))).toThrow(/finished/)
  })
})

function withoutAppliedIndex(bytes: Uint8Array): unknown {
  const parsed = JSON.parse(textDecoder.decode(bytes))
  delete parsed.appliedIndex
  return parsed
}

describe('batched task commands', () => {
  it('submitTasks answers each task in order, as its own submitTask would, in one entry', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 2 })
    submit(log, 'old')
    const before = log.index
    const output = log.at(2_000).apply({
      type: 'submitTasks',
      tasks: [
        taskSpec('t1', { priority: 1 }),
        taskSpec('old', { priority: 1 }),
        taskSpec('t2', { priority: 5 }),
        taskSpec('t1'),
      ],
    })
    expect(log.index).toBe(before + 1)
    expect(output.result).toEqual({
      type: 'taskResults',
      results: [
        { type: 'taskSubmitted', taskId: 't1', createdAt: 2_000 },
        { type: 'error', code: 'Conflict', message: 'task old exists with other contents' },
        { type: 'taskSubmitted', taskId: 't2', createdAt: 2_000 },
        { type: 'error', code: 'Conflict', message: 'task t1 exists with other contents' },
      ],
    })
    // The entry's placement pass sees the batch whole: the higher priority takes the last free slot.
    expect(ofType(output.events, 'taskAssigned')).toEqual([
      { type: 'taskAssigned', taskId: 't2', agentId: 'a' },
    ])
    expect(log.machine.task('t1')).toMatchObject({ state: 'pending', priority: 1 })
    expect(log.machine.task('old')?.priority).toBe(0)
  })

  it('runTasks completes and starts the next task in one entry: assigned first, then the best pending', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 2 })
    submit(log, 'first')
    submit(log, 'second')
    submit(log, 'low', { priority: 0 })
    submit(log, 'high', { priority: 3 })
    const running = claim(log, 'first', 'a')
    const run = (ops: unknown[]) =>
      log.apply({ type: 'runTasks', agentId: 'a', sessionId: 'session-a', ops } as never)
    const output = run([
      { op: 'complete', taskId: 'first', ...running, result: 'done' },
      { op: 'next' },
      { op: 'next' },
      { op: 'next' },
    ])
    const token = log.index
    expect(output.result).toEqual({
      type: 'taskResults',
      results: [
        { type: 'taskState', taskId: 'first', state: 'completed' },
        { type: 'taskClaimed', taskId: 'second', attempt: 1, fencingToken: token },
        { type: 'taskClaimed', taskId: 'high', attempt: 1, fencingToken: token },
        { type: 'noTask' },
      ],
    })
    expect(ofType(output.events, 'taskStarted').map(event => (event as { taskId: string }).taskId)).toEqual([
      'second',
      'high',
    ])
    expect(log.machine.task('first')).toMatchObject({ state: 'completed', result: 'done' })
    expect(log.machine.agentLoad('a')).toEqual({ running: 2, assigned: 0, slots: 2 })
    expect(log.machine.task('low')?.state).toBe('pending')
  })

  it('runTasks ops answer for themselves: stale, unknown, refused and claimed side by side', () => {
    const log = new LogDriver({ retryBackoffBaseMs: 0 })
    registerAgent(log, 'a', { concurrency: 3 })
    registerAgent(log, 'b', { concurrency: 1, capabilities: ['gpu'] })
    submit(log, 'x')
    submit(log, 'gpu', { constraints: { requiredCapabilities: ['gpu'] } })
    const token = log.index + 1
    const output = log.apply({
      type: 'runTasks',
      agentId: 'a',
      sessionId: 'session-a',
      ops: [
        { op: 'claim', taskId: 'x' },
        { op: 'complete', taskId: 'x', attempt: 1, fencingToken: token + 1, result: 1 },
        { op: 'claim', taskId: 'missing' },
        { op: 'claim', taskId: 'gpu' },
        // Failed with no back-off, x is pending again: its next attempt waits for another entry, so that no
        // two attempts share a fencing token.
        { op: 'fail', taskId: 'x', attempt: 1, fencingToken: token, error: 'boom' },
        { op: 'claim', taskId: 'x' },
        { op: 'next' },
      ],
    })
    expect(output.result).toMatchObject({
      type: 'taskResults',
      results: [
        { type: 'taskClaimed', taskId: 'x', attempt: 1, fencingToken: token },
        { type: 'error', code: 'StaleAttempt' },
        { type: 'error', code: 'NotFound' },
        { type: 'error', code: 'NotClaimable' },
        { type: 'taskState', taskId: 'x', state: 'pending' },
        { type: 'error', code: 'NotClaimable', message: 'task x was started in this entry' },
        { type: 'noTask' },
      ],
    })
    // Placed by the entry's pass instead, and claimed in the next one with its own token.
    expect(log.machine.task('x')).toMatchObject({ state: 'assigned', assignee: 'a', attempt: 1 })
    expect(claim(log, 'x', 'a')).toEqual({ attempt: 2, fencingToken: log.index })
    // An agent acting under a session that is not its registered one starts nothing.
    submit(log, 'y')
    log.open('stray', 60_000, 'a')
    const stray = log.apply({
      type: 'runTasks',
      agentId: 'a',
      sessionId: 'stray',
      ops: [{ op: 'next' }, { op: 'claim', taskId: 'y' }],
    })
    expect(stray.result).toMatchObject({
      type: 'taskResults',
      results: [
        { type: 'error', code: 'NotClaimable' },
        { type: 'error', code: 'NotClaimable' },
      ],
    })
    expect(stray.events).toEqual([])
    expect(log.machine.task('y')?.state).toBe('assigned')
  })

  it('a retried batch is answered from the session: nothing starts or completes twice', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 1 })
    submit(log, 't1')
    submit(log, 't2')
    const attempt = claim(log, 't1', 'a')
    const command = {
      type: 'runTasks' as const,
      agentId: 'a',
      sessionId: 'session-a',
      ops: [{ op: 'complete' as const, taskId: 't1', ...attempt, result: null }, { op: 'next' as const }],
    }
    const first = log.apply(command, { session: 'session-a', seq: 7 })
    expect(first.result).toMatchObject({ results: [{ state: 'completed' }, { taskId: 't2', attempt: 1 }] })
    const again = log.apply(command, { session: 'session-a', seq: 7 })
    expect(again).toEqual({ result: first.result, events: [], session: { id: 'session-a', seq: 7 } })
    expect(log.machine.task('t2')).toMatchObject({ state: 'running', attempt: 1 })
  })

  it('the codec refuses malformed batches, which then change nothing', () => {
    const op = { op: 'complete', taskId: 't', attempt: 1, fencingToken: 1, result: null }
    const bad: unknown[] = [
      { type: 'submitTasks', tasks: [] },
      { type: 'submitTasks', tasks: [taskSpec('t'), { ...taskSpec('u'), id: '' }] },
      { type: 'submitTasks', tasks: taskSpec('t') },
      { type: 'submitTasks', tasks: Array.from({ length: 4097 }, (_, i) => taskSpec(`t${i}`)) },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [] },
      {
        type: 'runTasks',
        agentId: 'a',
        sessionId: 's',
        ops: Array.from({ length: 4097 }, () => ({ op: 'next' })),
      },
      { type: 'runTasks', agentId: '', sessionId: 's', ops: [{ op: 'next' }] },
      { type: 'runTasks', agentId: 'a', ops: [{ op: 'next' }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ op: 'next', taskId: 't' }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ op: 'start' }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ op: 'claim' }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ ...op, attempt: 0 }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ ...op, result: undefined }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ ...op, op: 'fail' }] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ op: 'next' }, null] },
      { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ op: 'next' }], extra: 1 },
    ]
    const encoder = new TextEncoder()
    const decode = (command: unknown) => decodeEnvelope(encoder.encode(JSON.stringify({ ts: 1, command })))
    expect(decode({ type: 'submitTasks', tasks: [taskSpec('t')] }).ok).toBe(true)
    expect(decode({ type: 'runTasks', agentId: 'a', sessionId: 's', ops: [op, { op: 'next' }] }).ok).toBe(
      true,
    )
    for (const command of bad) expect(decode(command).ok, JSON.stringify(command).slice(0, 200)).toBe(false)

    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 1 })
    submit(log, 't')
    const before = textDecoder.decode(log.machine.snapshot())
    for (const command of bad) {
      expect(log.apply(command as never)).toMatchObject({
        result: { type: 'error', code: 'InvalidCommand' },
        events: [],
      })
    }
    const after = JSON.parse(textDecoder.decode(log.machine.snapshot()))
    expect({ ...after, appliedIndex: 0 }).toEqual({ ...JSON.parse(before), appliedIndex: 0 })
  })
})
