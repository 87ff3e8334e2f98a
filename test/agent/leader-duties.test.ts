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
    down: new Set(),
    ...input,
  })
  return duties.map(duty => `${duty.id} ${JSON.stringify(duty.command)}`)
}

describe('planLeaderDuties: session leases', () => {
  it('expires a lapsed session once the leader has led long enough', () => {
    expect(plan(oneSession(), {})).toEqual(['s:s {"type":"expireSession","sessionId":"s","reason":"ttl"}'])
    // Not lapsed at the leader's wall time: nothing, however long it has led.
    expect(plan(oneSession(), { now: 1_900 })).toEqual([])
  })

  it('gives a session stamped by a predecessor up to its ttl after the takeover, never more', () => {
    // Took over at state time 1000, the session's last stamp: it may still have its whole ttl (1000 ms).
    const table: [elapsed: number, expired: boolean][] = [
      [0, false],
      [999, false],
      [1_000, true],
    ]
    for (const [elapsed, expired] of table) {
      expect(plan(oneSession(), { takeoverStateTime: 1_000, elapsed }).length, `${elapsed}`).toBe(
        expired ? 1 : 0,
      )
    }
    // Took over at state time 1600: 400 ms were left at most.
    expect(plan(oneSession(), { takeoverStateTime: 1_600, elapsed: 399 })).toEqual([])
    expect(plan(oneSession(), { takeoverStateTime: 1_600, elapsed: 400 })).toHaveLength(1)
  })

  it('expires the session of an agent the view holds dead after half its ttl without a keep-alive', () => {
    const dead = { down: new Set(['a']), takeoverStateTime: 1_000 }
    // Renewed at 1000: before 1500 the agent may still be renewing it, whatever the view says.
    expect(plan(oneSession(), { ...dead, now: 1_499, elapsed: 10_000 })).toEqual([])
    expect(plan(oneSession(), { ...dead, now: 1_500, elapsed: 10_000 })).toEqual([
      's:s {"type":"expireSession","sessionId":"s","reason":"dead"}',
    ])
    // A new leader waits out the half ttl on its own clock too.
    expect(plan(oneSession(), { ...dead, now: 1_500, elapsed: 499 })).toEqual([])
    // Its own session is never expired that way.
    expect(plan(oneSession(), { ...dead, selfId: 'a', now: 1_500 })).toEqual([])
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
