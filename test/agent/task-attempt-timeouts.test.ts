import { describe, expect, it } from 'vitest'
import { AttemptTimeoutClock } from '../../src/agent/cluster/attempt-timeouts.ts'
import { planLeaderDuties } from '../../src/agent/cluster/leader-duties.ts'
import { claim, LogDriver, registerAgent, submit } from '../state/helpers.ts'

/** A task with a 1,000 ms timeout whose attempt 1 started at state time 1,000. */
function running(): LogDriver {
  const log = new LogDriver().at(1_000)
  registerAgent(log, 'a')
  submit(log, 't', { constraints: { timeout: 1_000 } })
  claim(log, 't', 'a')
  return log
}

describe("AttemptTimeoutClock: the leader's attempt timing, on its monotonic clock only", () => {
  it('times an attempt out a full timeout after this leader first saw it, whatever the entry timestamps say', () => {
    const log = running()
    const clock = new AttemptTimeoutClock()
    const leadership = {}
    // A new leader whose wall clock is a day ahead stamps everything far past the timeout: no part in it.
    log.at(86_400_000).apply({ type: 'put', key: 'k', value: 1 })
    expect(clock.due(log.machine.taskPlanView(), leadership, 5_000)).toEqual([])
    expect(clock.due(log.machine.taskPlanView(), leadership, 5_999)).toEqual([])
    expect(clock.due(log.machine.taskPlanView(), leadership, 6_000)).toEqual([{ taskId: 't', attempt: 1 }])
    // The planner proposes that timeout, and no other (the start time would have timed it out at once).
    const duties = (taskTimeouts: { taskId: string; attempt: number }[]) =>
      planLeaderDuties({
        state: log.machine,
        selfId: 'leader',
        now: 86_400_000,
        elapsed: 1,
        takeoverStateTime: 86_400_000,
        sessionExpiries: [],
        taskTimeouts,
      }).map(duty => duty.command)
    expect(duties([])).toEqual([])
    expect(duties([{ taskId: 't', attempt: 1 }])).toEqual([{ type: 'timeoutTask', taskId: 't', attempt: 1 }])
  })

  it('starts over for a new attempt and for a new leadership (a new leader waits a full timeout)', () => {
    const log = running()
    const clock = new AttemptTimeoutClock()
    const first = {}
    clock.due(log.machine.taskPlanView(), first, 0)
    log.apply({ type: 'timeoutTask', taskId: 't', attempt: 1 })
    log.apply({ type: 'retryDue', taskId: 't' })
    claim(log, 't', 'a')
    expect(clock.due(log.machine.taskPlanView(), first, 900)).toEqual([]) // attempt 2 seen at 900
    expect(clock.due(log.machine.taskPlanView(), first, 1_899)).toEqual([])
    expect(clock.due(log.machine.taskPlanView(), first, 1_900)).toEqual([{ taskId: 't', attempt: 2 }])
    // Another leadership: nothing seen before counts.
    const second = {}
    expect(clock.due(log.machine.taskPlanView(), second, 2_000)).toEqual([])
    expect(clock.due(log.machine.taskPlanView(), second, 2_999)).toEqual([])
    expect(clock.due(log.machine.taskPlanView(), second, 3_000)).toEqual([{ taskId: 't', attempt: 2 }])
  })

  it('leaves attempts without a timeout alone', () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'a')
    submit(log, 'forever')
    claim(log, 'forever', 'a')
    const clock = new AttemptTimeoutClock()
    const leadership = {}
    expect(clock.due(log.machine.taskPlanView(), leadership, 0)).toEqual([])
    expect(clock.due(log.machine.taskPlanView(), leadership, 10_000_000)).toEqual([])
  })
})
