import { describe, expect, it } from 'vitest'
import { type DutyInput, planLeaderDuties } from '../../src/agent/cluster/leader-duties.ts'
import { LogDriver, submit } from '../state/helpers.ts'

/** A state with one session opened at state time 1000 with a 1000 ms ttl (it lapses at 2000). */
function oneSession(): LogDriver {
  const log = new LogDriver().at(1_000)
  log.open('s', 1_000, 'a')
  return log
}

function plan(log: LogDriver, input: Partial<Omit<DutyInput, 'state'>>): string[] {
  const duties = planLeaderDuties({
    state: log.machine,
    selfId: 'leader',
    now: 2_500,
    elapsed: 10_000,
    takeoverStateTime: 0,
    sessionExpiries: [],
    ...input,
  })
  return duties.map(duty => `${duty.id} ${JSON.stringify(duty.command)}`)
}

describe('planLeaderDuties: session leases', () => {
  it("proposes the lessor's session expiries, and none from the state's times", () => {
    // Long past the session's first lease end by the leader's wall clock: the lessor alone decides.
    expect(plan(oneSession(), { now: 1_000_000 })).toEqual([])
    expect(
      plan(oneSession(), {
        sessionExpiries: [
          { sessionId: 's', reason: 'ttl' },
          { sessionId: 'other', reason: 'dead' },
        ],
      }),
    ).toEqual([
      's:s {"type":"expireSession","sessionId":"s","reason":"ttl"}',
      's:other {"type":"expireSession","sessionId":"other","reason":"dead"}',
    ])
  })
})

describe('planLeaderDuties: time-driven task transitions', () => {
  it('reads the task clock from a state time the leader applied, not only the takeover (a new cluster)', () => {
    // A leader that took over at state time 0 (nothing applied yet); its own entries then stamp 50,000.
    const log = new LogDriver().at(50_000)
    submit(log, 'later', { runAt: 60_000 })
    const duties = (input: Partial<Omit<DutyInput, 'state'>>) =>
      plan(log, { now: 70_000, takeoverStateTime: 0, elapsed: 20_000, ...input })
    // On the takeover's clock alone it is state time 20,000: nothing is due.
    expect(duties({})).toEqual([])
    // Anchored at the applied state time 50,000, 9,999 ms later: still not due; 10,000 ms later: released.
    expect(duties({ taskClock: { stateTime: 50_000, elapsed: 9_999 } })).toEqual([])
    expect(duties({ taskClock: { stateTime: 50_000, elapsed: 10_000 } })).toEqual([
      'a:later {"type":"releaseTask","taskId":"later"}',
    ])
  })
})
