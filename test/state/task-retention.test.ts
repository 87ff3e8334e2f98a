import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { StateMachine } from '../../src/state/state-machine.ts'
import { MAX_FINISHED_TASKS_LIMIT } from '../../src/state/task-retention.ts'
import { LogDriver, submit } from './helpers.ts'

/** Submits and cancels each task, so each is finished, in this order. */
function finish(log: LogDriver, ids: string[]): void {
  for (const id of ids) {
    submit(log, id)
    expect(log.result({ type: 'cancelTask', taskId: id })).toMatchObject({ state: 'cancelled' })
  }
}

function kept(machine: StateMachine, ids: string[]): string[] {
  return ids.filter(id => machine.task(id) !== undefined)
}

const ids = ['t1', 't2', 't3', 't4', 't5']

describe('maxFinishedTasks, the replicated cap on kept finished tasks', () => {
  it('a committed cap replaces the option, and lowering it forgets the oldest finished in that entry', () => {
    const log = new LogDriver({ maxFinishedTasks: 10 })
    finish(log, ids)
    expect(log.machine.maxFinishedTasks).toBe(10)
    expect(log.result({ type: 'setMaxFinishedTasks', maxFinishedTasks: 2 })).toEqual({ type: 'ok' })
    expect(log.machine.maxFinishedTasks).toBe(2)
    expect(kept(log.machine, ids)).toEqual(['t4', 't5'])
    // Later finishes keep to it too.
    finish(log, ['t6'])
    expect(kept(log.machine, [...ids, 't6'])).toEqual(['t5', 't6'])
    // The same value again changes nothing.
    expect(log.result({ type: 'setMaxFinishedTasks', maxFinishedTasks: 2 }).type).toBe('unchanged')
  })

  it('refuses a cap that is no integer in range, and changes nothing', () => {
    const log = new LogDriver({ maxFinishedTasks: 3 })
    finish(log, ids)
    const before = log.machine.snapshot()
    for (const bad of [-1, 1.5, MAX_FINISHED_TASKS_LIMIT + 1, Number.NaN, '2', null, undefined]) {
      const result = log.result({ type: 'setMaxFinishedTasks', maxFinishedTasks: bad as number })
      expect(result).toMatchObject({ type: 'error', code: 'InvalidCommand' })
      expect(log.machine.maxFinishedTasks).toBe(3)
      expect(kept(log.machine, ids)).toEqual(['t3', 't4', 't5'])
    }
    // Only appliedIndex moved.
    const strip = (bytes: Uint8Array) => ({ ...JSON.parse(new TextDecoder().decode(bytes)), appliedIndex: 0 })
    expect(strip(log.machine.snapshot())).toEqual(strip(before))
  })

  it('a replica restored from a snapshot keeps the committed cap', () => {
    const log = new LogDriver()
    expect(log.result({ type: 'setMaxFinishedTasks', maxFinishedTasks: 2 })).toEqual({ type: 'ok' })
    finish(log, ids)
    // Restored with a different option: the committed cap wins, it is the cluster's.
    const restored = StateMachine.restore(log.machine.snapshot(), { maxFinishedTasks: 100 })
    expect(restored.maxFinishedTasks).toBe(2)
    expect(kept(restored, ids)).toEqual(['t4', 't5'])
    // And it keeps trimming to it as the log goes on.
    const follower = new LogDriver()
    Object.assign(follower, { machine: restored, index: log.index, now: log.now })
    finish(follower, ['t6'])
    expect(kept(restored, [...ids, 't6'])).toEqual(['t5', 't6'])
  })

  it('a snapshot of a state where none was committed has no field, and restores with the default', () => {
    const log = new LogDriver()
    finish(log, ['t1'])
    const parsed = JSON.parse(new TextDecoder().decode(log.machine.snapshot()))
    expect(parsed).not.toHaveProperty('maxFinishedTasks')
    expect(StateMachine.restore(log.machine.snapshot()).maxFinishedTasks).toBe(10_000)
  })

  it('refuses a snapshot with a malformed cap', () => {
    const log = new LogDriver()
    const parsed = JSON.parse(new TextDecoder().decode(log.machine.snapshot()))
    parsed.maxFinishedTasks = -3
    expect(() => StateMachine.restore(new TextEncoder().encode(JSON.stringify(parsed)))).toThrow(
      /maxFinishedTasks/,
    )
  })

  it('two replicas applying the same log agree, whatever their options', () => {
    const a = new LogDriver({ maxFinishedTasks: 1 })
    const b = new LogDriver({ maxFinishedTasks: 50 })
    for (const log of [a, b]) {
      log.result({ type: 'setMaxFinishedTasks', maxFinishedTasks: 3 })
      finish(log, ids)
    }
    expect(kept(a.machine, ids)).toEqual(['t3', 't4', 't5'])
    expect(a.machine.snapshot()).toEqual(b.machine.snapshot())
  })

  it('keeps exactly the newest finished tasks, oldest going first, across forgets, reused ids, cap changes and restores', () => {
    // The cap takes the oldest kept id from a cursor over the kept ids (tasks.ts, `finishedCursor`): checked
    // here against a plain list, with ids forgotten anywhere and finished again (a new place at the end).
    type Step = { kind: 'finish' | 'forget'; id: string } | { kind: 'cap'; cap: number } | { kind: 'restore' }
    const pool = Array.from({ length: 8 }, (_, i) => `p${i}`)
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...pool).map(id => ({ kind: 'finish' as const, id })) },
      { weight: 2, arbitrary: fc.constantFrom(...pool).map(id => ({ kind: 'forget' as const, id })) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 6 }).map(cap => ({ kind: 'cap' as const, cap })) },
      { weight: 1, arbitrary: fc.constant({ kind: 'restore' as const }) },
    )
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), steps => {
        let log = new LogDriver({ maxFinishedTasks: 3 })
        let cap = 3
        let model: string[] = []
        for (const next of steps) {
          if (next.kind === 'finish') {
            if (log.machine.task(next.id) !== undefined) continue
            finish(log, [next.id])
            model.push(next.id)
          } else if (next.kind === 'forget') {
            log.result({ type: 'forgetTasks', taskIds: [next.id] })
            model = model.filter(id => id !== next.id)
          } else if (next.kind === 'cap') {
            log.result({ type: 'setMaxFinishedTasks', maxFinishedTasks: next.cap })
            cap = next.cap
          } else {
            const restored = new LogDriver()
            Object.assign(restored, {
              machine: StateMachine.restore(log.machine.snapshot(), { maxFinishedTasks: 3 }),
              index: log.index,
              now: log.now,
            })
            log = restored
          }
          model = model.slice(Math.max(0, model.length - cap))
          const finished = JSON.parse(new TextDecoder().decode(log.machine.snapshot())).tasks.finished
          expect(finished).toEqual(model)
          expect(kept(log.machine, pool).sort()).toEqual([...model].sort())
        }
      }),
      { numRuns: 300, seed: 18 },
    )
  })
})
