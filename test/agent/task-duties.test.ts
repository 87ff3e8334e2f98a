import { describe, expect, it } from 'vitest'
import { dueTaskDuties } from '../../src/agent/cluster/task-duties.ts'
import { claim, LogDriver, registerAgent, submit } from '../state/helpers.ts'

describe('the leader task duties', () => {
  it('plans from the monotonic clock since takeover, with one key per duty', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    submit(log, 'later', { runAt: 20_000 })
    submit(log, 'retry', { backoff: { type: 'fixed', delay: 5_000 } })
    const attempt = claim(log, 'retry', 'a')
    log.at(12_000).apply({ type: 'failTask', taskId: 'retry', ...attempt, error: 'x' }) // due at 17,000
    log.apply({ type: 'submitTask', task: { ...taskOf('tick'), repeat: { every: 500 } } })
    // Took over at state time 12,000 when its monotonic clock read 100.
    const takeover = { local: 100, stateTime: 12_000 }
    expect(dueTaskDuties(log.machine, takeover, 100)).toEqual([
      { key: 'o:tick:12000', command: { type: 'createOccurrence', scheduleId: 'tick', slot: 12_000 } },
    ])
    // 17 slots due (more than a round catches up on): the latest only.
    expect(dueTaskDuties(log.machine, takeover, 100 + 8_000).map(duty => duty.key)).toEqual([
      'r:retry',
      'a:later',
      'o:tick:20000',
    ])
  })
})

function taskOf(id: string) {
  return {
    id,
    type: 'test',
    priority: 0,
    payload: {},
    constraints: { requiredCapabilities: [], maxRetries: 3, timeout: 0 },
  }
}
