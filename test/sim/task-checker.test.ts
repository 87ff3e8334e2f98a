/**
 * The task checker fires on bad observations (each property once), and stays quiet on a good history. The
 * simulator's own runs with the task workload are in `test/sim/tasks.test.ts`.
 */

import { describe, expect, it } from 'vitest'
import { Violation } from '../../scripts/sim/invariants.ts'
import { type FinalTasks, TaskChecker } from '../../scripts/sim/task-checker.ts'
import type { TaskInfo } from '../../src/state/index.ts'

function property(fn: () => void): string | undefined {
  try {
    fn()
  } catch (error) {
    if (error instanceof Violation) return error.property
    throw error
  }
  return undefined
}

function final(tasks: Record<string, Partial<TaskInfo>>): FinalTasks {
  const full = (id: string): TaskInfo | undefined =>
    tasks[id] === undefined
      ? undefined
      : ({ id, attempt: 1, constraints: { maxRetries: 8 }, ...tasks[id] } as unknown as TaskInfo)
  return { task: full, ids: () => Object.keys(tasks) }
}

describe('TaskChecker', () => {
  it('accepts a good history: a parent completes, then its child', () => {
    const checker = new TaskChecker()
    checker.submitting('a', { parents: [], maxRetries: 8 })
    checker.submitting('b', { parents: ['a'], maxRetries: 8 })
    checker.started('a', 10n, 1, 'n1', 100)
    checker.returned('a', 10n, 120)
    checker.completionAccepted('a', 10n, 125)
    checker.started('b', 20n, 1, 'n2', 130)
    checker.returned('b', 20n, 140)
    checker.completionAccepted('b', 20n, 145)
    expect(
      property(() =>
        checker.finish(
          final({
            a: { state: 'completed', result: { token: '10' } },
            b: { state: 'completed', result: { token: '20' } },
          }),
          200,
          true,
        ),
      ),
    ).toBeUndefined()
  })

  it('fires on a task completed twice', () => {
    const checker = new TaskChecker()
    checker.started('a', 10n, 1, 'n1', 100)
    checker.returned('a', 10n, 110)
    checker.completionAccepted('a', 10n, 115)
    checker.started('a', 20n, 2, 'n2', 300)
    checker.returned('a', 20n, 310)
    expect(property(() => checker.completionAccepted('a', 20n, 315))).toBe('task-once')
  })

  it('fires on two live attempts at one instant', () => {
    const checker = new TaskChecker()
    checker.started('a', 10n, 1, 'n1', 100)
    checker.started('a', 20n, 2, 'n2', 150)
    expect(property(() => checker.alive('a', 10n, 'n1', 160, true))).toBe('task-live')
  })

  it('fires on a signal not aborted although the replica shows the attempt ended', () => {
    const checker = new TaskChecker()
    checker.started('a', 10n, 1, 'n1', 100)
    expect(property(() => checker.alive('a', 10n, 'n1', 120, false))).toBe('task-signal')
  })

  it('fires on a child started before its parent returned', () => {
    const checker = new TaskChecker()
    checker.submitting('b', { parents: ['a'], maxRetries: 8 })
    checker.started('a', 10n, 1, 'n1', 100)
    expect(property(() => checker.started('b', 20n, 1, 'n2', 105))).toBe('task-dependency')
  })

  it('fires on an attempt started after an acknowledged cancel, and a completion accepted after it', () => {
    const checker = new TaskChecker()
    checker.cancelSent('a', false)
    checker.cancelAcknowledged('a', 100, 30)
    expect(property(() => checker.started('a', 31n, 1, 'n1', 90))).toBe('task-cancel')
    const other = new TaskChecker()
    other.started('b', 10n, 1, 'n1', 50)
    other.cancelAcknowledged('b', 60, 30)
    other.returned('b', 10n, 70)
    expect(property(() => other.completionAccepted('b', 10n, 80))).toBe('task-cancel')
  })

  it('fires on an occurrence started over at attempt 1 (a slot created twice)', () => {
    const checker = new TaskChecker()
    checker.started('r:100', 10n, 1, 'n1', 100)
    expect(property(() => checker.started('r:100', 20n, 1, 'n2', 300))).toBe('task-once')
  })

  it('fires on a repeat slot missed in the window, and an occurrence off the slots', () => {
    const checker = new TaskChecker()
    checker.repeat('r', 50, 1000)
    expect(property(() => checker.checkRepeatWindow('r', 1100, 1260, new Set(['r:1150', 'r:1250']), 5))).toBe(
      'task-repeat',
    )
    expect(
      property(() => checker.checkRepeatWindow('r', 1100, 1260, new Set(['r:1150', 'r:1200', 'r:1250']), 5)),
    ).toBeUndefined()
    expect(property(() => checker.finish(final({ 'r:1175': { state: 'completed' } }), 5, false))).toBe(
      'task-repeat',
    )
  })

  it('fires on a task left unfinished after the faults, unless an agent gone for good holds it', () => {
    const checker = new TaskChecker()
    checker.submitting('a', { parents: [], maxRetries: 8 })
    expect(property(() => checker.finish(final({ a: { state: 'pending' } }), 5, true))).toBe('task-liveness')
    expect(
      property(() =>
        checker.finish(final({ a: { state: 'assigned', assignee: 'n4' } }), 5, true, new Set(['n4'])),
      ),
    ).toBeUndefined()
    expect(property(() => checker.finish(final({ a: { state: 'cancelled' } }), 5, true))).toBe(
      'task-liveness',
    )
  })

  it('fires on a task dead before its retries were spent: attempts a lease lapse ended do not count', () => {
    const checker = new TaskChecker()
    checker.submitting('a', { parents: [], maxRetries: 8 })
    expect(
      property(() => checker.finish(final({ a: { state: 'dead', attempt: 9 } }), 5, true)),
    ).toBeUndefined()
    expect(
      property(() => checker.finish(final({ a: { state: 'dead', attempt: 9, lapsedAttempts: 1 } }), 5, true)),
    ).toBe('task-liveness')
    expect(
      property(() =>
        checker.finish(final({ a: { state: 'dead', attempt: 10, lapsedAttempts: 1 } }), 5, true),
      ),
    ).toBeUndefined()
  })
})
