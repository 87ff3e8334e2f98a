import fc from 'fast-check'
import { expect, it } from 'vitest'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command } from '../../src/state/commands.ts'
import { type ApplyInput, StateMachine, type StateMachineOptions } from '../../src/state/state-machine.ts'
import {
  AttemptLog,
  agentIds,
  checkTaskInvariants,
  placementsOf,
  type TaskOp,
  taskCommand,
  taskIds,
  taskOp,
} from './task-ops.ts'

/** Two sessions per agent, so agents restart (re-register with a new session) as well as die. */
const sessionIds = agentIds.flatMap(agentId => [`${agentId}-0`, `${agentId}-1`])
const ownerOf = (sessionId: string) => sessionId.split('-')[0]

type SessionOp =
  | { kind: 'open'; session: number; ttlMs: number }
  | { kind: 'keepAlive'; session: number }
  | { kind: 'end'; session: number; how: 'close' | 'ttl' | 'dead' }

interface Step {
  op: { task: TaskOp } | { session: SessionOp }
  advance: number
}

const weighted = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary })
const session = fc.nat({ max: sessionIds.length - 1 })
const sessionOp: fc.Arbitrary<SessionOp> = fc.oneof(
  weighted(
    2,
    fc.record({
      kind: fc.constant('open' as const),
      session,
      ttlMs: fc.integer({ min: 1_000, max: 20_000 }),
    }),
  ),
  weighted(3, fc.record({ kind: fc.constant('keepAlive' as const), session })),
  weighted(
    2,
    fc.record({
      kind: fc.constant('end' as const),
      session,
      how: fc.constantFrom('close' as const, 'ttl' as const, 'dead' as const),
    }),
  ),
)
const step: fc.Arbitrary<Step> = fc.record({
  op: fc.oneof(
    weighted(
      4,
      taskOp.map(task => ({ task })),
    ),
    weighted(
      1,
      sessionOp.map(session => ({ session })),
    ),
  ),
  advance: fc.integer({ min: -100, max: 300 }),
})

function sessionCommand(op: SessionOp): Command {
  const sessionId = sessionIds[op.session]
  switch (op.kind) {
    case 'open':
      return { type: 'openSession', sessionId, agentId: ownerOf(sessionId), ttlMs: op.ttlMs }
    case 'keepAlive':
      return { type: 'keepAlive', sessionId }
    case 'end':
      return op.how === 'close'
        ? { type: 'closeSession', sessionId }
        : { type: 'expireSession', sessionId, reason: op.how }
  }
}

const options: StateMachineOptions = { retryBackoffBaseMs: 200, retryBackoffMaxMs: 1_000 }

/**
 * Applies the history, checking after every entry that no task has two live attempts, that only the live
 * attempt completes or fails, that nothing completes twice, and the invariants of `checkTaskInvariants`.
 * With `replay`, replicas must answer exactly the same: one restored from a snapshot at entry `cut`, one
 * rebuilt from its own snapshot before every entry. `see` counts what happened.
 */
function checkHistory(steps: Step[], see: (what: string) => void, replay?: { cut: number }): void {
  const machine = new StateMachine(options)
  let replica = new StateMachine(options)
  let reborn = new StateMachine(options)
  const apply = (entry: ApplyInput) => {
    const output = machine.apply(entry)
    if (replay !== undefined) {
      expect(replica.apply(entry)).toEqual(output)
      reborn = StateMachine.restore(reborn.snapshot(), options)
      expect(reborn.apply(entry)).toEqual(output)
    }
    return output
  }
  const attempts = new AttemptLog()
  /** The live attempt of each task, as the events tell it. */
  const live = new Map<string, { attempt: number; fencingToken: number; agentId: string }>()
  const completed = new Set<string>()
  let now = 10_000
  let index = 0
  steps.forEach((step, i) => {
    if (i === replay?.cut) replica = StateMachine.restore(replica.snapshot(), options)
    now = Math.max(0, now + step.advance)
    if ('task' in step.op && step.op.task.kind === 'register' && i % 4 !== 0) {
      // Mostly an agent opens its session right before registering.
      const sessionId = sessionIds[step.op.task.session % sessionIds.length]
      if (machine.session(sessionId) === undefined) {
        const open: Command = { type: 'openSession', sessionId, agentId: ownerOf(sessionId), ttlMs: 10_000 }
        apply({ index: ++index, term: 1, data: encodeEnvelope({ ts: now, command: open }) })
      }
    }
    const command =
      'task' in step.op
        ? taskCommand(step.op.task, machine, sessionIds, attempts)
        : sessionCommand(step.op.session)
    const before =
      command.type === 'completeTask' || command.type === 'failTask' ? live.get(command.taskId) : undefined
    const liveBefore = new Map(live)
    const { result, events } = apply({ index: ++index, term: 1, data: encodeEnvelope({ ts: now, command }) })
    attempts.record(events)
    see(result.type === 'error' ? result.code : result.type)

    if ((command.type === 'completeTask' || command.type === 'failTask') && result.type === 'taskState') {
      // Accepted: it was the live attempt when the entry began.
      expect(before).toMatchObject({ attempt: command.attempt, fencingToken: command.fencingToken })
    }
    if (command.type === 'runTasks' || command.type === 'submitTasks') {
      const parts = command.type === 'runTasks' ? command.ops : command.tasks
      if (result.type === 'taskResults') {
        expect(result.results.length).toBe(parts.length)
        for (const part of result.results) see(`batch:${part.type === 'error' ? part.code : part.type}`)
      }
      if (command.type === 'runTasks' && result.type === 'taskResults') {
        const startedHere = events.filter(event => event.type === 'taskStarted')
        command.ops.forEach((op, i) => {
          if ((op.op !== 'complete' && op.op !== 'fail') || result.results[i].type !== 'taskState') return
          // Accepted: the live attempt when the entry began, or one an earlier op of it started.
          const attempt = { attempt: op.attempt, fencingToken: op.fencingToken }
          const wasLive = liveBefore.get(op.taskId)
          const matches =
            (wasLive?.attempt === op.attempt && wasLive.fencingToken === op.fencingToken) ||
            startedHere.some(event => event.taskId === op.taskId && event.attempt === op.attempt)
          expect(matches, `${op.op} of ${op.taskId} ${JSON.stringify(attempt)}`).toBe(true)
        })
      }
    }
    for (const event of events) {
      see(event.type === 'taskAttemptEnded' ? `ended:${event.reason}` : event.type)
      if (event.type === 'taskStarted') {
        expect(live.has(event.taskId), `second live attempt of ${event.taskId}`).toBe(false)
        live.set(event.taskId, {
          attempt: event.attempt,
          fencingToken: event.fencingToken,
          agentId: event.agentId,
        })
      } else if (event.type === 'taskAttemptEnded') {
        expect(live.get(event.taskId)).toEqual({
          attempt: event.attempt,
          fencingToken: event.fencingToken,
          agentId: event.agentId,
        })
        live.delete(event.taskId)
      } else if (event.type === 'taskCompleted') {
        expect(completed.has(event.taskId), `${event.taskId} completed twice`).toBe(false)
        completed.add(event.taskId)
      }
    }
    for (const taskId of taskIds) {
      const task = machine.task(taskId)
      const attempt = live.get(taskId)
      if (task?.state === 'running') {
        expect(attempt).toEqual({
          attempt: task.attempt,
          fencingToken: task.fencingToken,
          agentId: task.assignee,
        })
      } else {
        expect(attempt).toBeUndefined()
      }
      if (completed.has(taskId)) expect(task?.state).toBe('completed')
    }
    checkTaskInvariants(machine, placementsOf(events))
  })
  if (replay === undefined) return
  const bytes = machine.snapshot()
  expect(replica.snapshot()).toEqual(bytes)
  expect(reborn.snapshot()).toEqual(bytes)
  expect(StateMachine.restore(bytes, options).snapshot()).toEqual(bytes)
}

/** The seed of the histories whose coverage the first property checks (any seed that reaches every path). */
const COVERAGE_SEED = 20261208

const history = fc.array(step, { minLength: 20, maxLength: 200, size: 'max' })

it('random interleavings never run a task twice, accept a stale attempt, complete twice or misplace a task', () => {
  const seen = new Map<string, number>()
  const see = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1)
  fc.assert(
    fc.property(history, steps => checkHistory(steps, see)),
    // 400 runs: with 200, steals (about 25 per 200 runs, clustered in few histories) fell to 10 about one run
    // in a dozen, and the coverage check below failed by chance. With 400 it still did now and then (a CI run
    // saw 'ended:timeout' exactly 10 times), so these histories are fixed by a seed: the coverage below is
    // then a fact about them, not a draw. New histories are explored by the run after this one.
    { numRuns: 400, seed: COVERAGE_SEED },
  )
  // Fresh histories every run, for the property alone (their coverage is what chance gives).
  fc.assert(
    fc.property(history, steps => checkHistory(steps, () => {})),
    { numRuns: 200 },
  )
  // The generator must reach the interesting paths, or the property proves little.
  const wanted = [
    'taskSubmitted',
    'taskClaimed',
    'taskAssigned',
    'taskState',
    'Conflict',
    'NotClaimable',
    'StaleAttempt',
    'NotStealable',
    'NameTaken',
    'taskStolen',
    'taskUnassigned',
    'taskCompleted',
    'taskFailed',
    'taskRetry',
    'taskDead',
    'taskExpired',
    'ended:completed',
    'ended:failed',
    'ended:timeout',
    'ended:session',
    'ended:left',
    'ended:expired',
    'ended:cancelled',
    'taskResults',
    'batch:taskSubmitted',
    'batch:Conflict',
    'batch:taskClaimed',
    'batch:noTask',
    'batch:taskState',
    'batch:StaleAttempt',
    'batch:NotClaimable',
  ]
  for (const what of wanted) expect(seen.get(what) ?? 0, what).toBeGreaterThan(10)
})

it('random task histories replay identically on replicas restored from snapshots', () => {
  const seen = new Map<string, number>()
  const see = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1)
  fc.assert(
    fc.property(history, fc.nat(), (steps, cutSeed) =>
      checkHistory(steps, see, { cut: cutSeed % steps.length }),
    ),
    // 200 runs: steals come about 25 per 200 histories, clustered in few of them; with 50 runs a full
    // suite saw none, and the coverage check below failed by chance.
    { numRuns: 200 },
  )
  for (const what of ['taskClaimed', 'taskStolen', 'taskRetry', 'ended:session']) {
    expect(seen.get(what) ?? 0, what).toBeGreaterThan(0)
  }
})
