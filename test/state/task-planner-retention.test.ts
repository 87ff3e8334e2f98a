import { describe, expect, it } from 'vitest'
import type { StateMachine } from '../../src/state/state-machine.ts'
import { StateMachine as Machine } from '../../src/state/state-machine.ts'
import { planTaskTransitions } from '../../src/state/task-planner.ts'
import type { TaskPlanView } from '../../src/state/tasks.ts'
import { claim, LogDriver, registerAgent, submit } from './helpers.ts'

/** The planner's commands at `now`, and how many finished tasks it looked at to plan them. */
function plan(machine: StateMachine, now: number): { forget: string[]; looked: number } {
  const view = machine.taskPlanView()
  let looked = 0
  const counted: TaskPlanView = {
    ...view,
    finished: function* () {
      for (const task of view.finished()) {
        looked++
        yield task
      }
    },
  }
  const commands = planTaskTransitions({
    state: counted,
    monotonicNow: now,
    takeover: { monotonic: 0, stateTime: 0 },
  })
  const forget = commands.flatMap(command => (command.type === 'forgetTasks' ? command.taskIds : []))
  return { forget, looked }
}

/** Submits, claims and completes `id` at the log's time. */
function finish(log: LogDriver, id: string, retention?: number): void {
  submit(log, id, retention === undefined ? {} : { retention: { completed: retention } })
  const attempt = claim(log, id, 'a')
  log.apply({ type: 'completeTask', taskId: id, ...attempt, result: 1 })
}

describe("the leader's retention planning", () => {
  it('finds a due task of a short retention behind many kept ones, and looks no further than it must', () => {
    const log = new LogDriver({ defaultRetentionMs: 10_000 })
    registerAgent(log, 'a', { concurrency: 1 })
    for (let i = 0; i < 200; i++) finish(log, `long${i}`)
    log.at(2_000)
    finish(log, 'short', 100)
    finish(log, 'short-later', 100)
    log.at(3_000)
    finish(log, 'short-last', 100)
    // The short ones finished after 200 kept ones: they are due all the same.
    const at = plan(log.machine, 2_100)
    expect(at.forget).toEqual(['short', 'short-later'])
    // It stopped at short-last (not due, the last retention not passed yet): 200 + 3 looked at.
    expect(at.looked).toBe(203)
    log.at(2_100).apply({ type: 'forgetTasks', taskIds: at.forget })
    // short-last, not due yet, is the last of its retention: the look goes as far as it.
    expect(plan(log.machine, 3_050)).toEqual({ forget: [], looked: 201 })
    log.at(3_100).apply({ type: 'forgetTasks', taskIds: ['short-last'] })
    // Only the default retention is left, and its oldest task is not due: one look.
    expect(plan(log.machine, 3_100)).toEqual({ forget: [], looked: 1 })
    // Every default one is due at 1,000 + 10,000: all of them, in the order they finished.
    const due = plan(log.machine, 11_000)
    expect(due.forget).toEqual(Array.from({ length: 200 }, (_, i) => `long${i}`))
    // Restored from a snapshot, the same plan (the index of retentions is rebuilt).
    const restored = Machine.restore(log.machine.snapshot(), { defaultRetentionMs: 10_000 })
    expect(plan(restored, 3_100)).toEqual({ forget: [], looked: 1 })
    expect(plan(restored, 11_000)).toEqual(due)
  })

  it('a task forgotten by the finished-task cap leaves its retention too', () => {
    const log = new LogDriver({ defaultRetentionMs: 10_000, maxFinishedTasks: 2 })
    registerAgent(log, 'a', { concurrency: 1 })
    finish(log, 'short', 100)
    finish(log, 'b')
    finish(log, 'c')
    expect(log.machine.task('short')).toBeUndefined()
    // Only the default retention is left: the look ends at the first task, which is not due.
    expect(plan(log.machine, 1_200)).toEqual({ forget: [], looked: 1 })
  })
})
