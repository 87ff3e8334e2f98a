import { describe, expect, it } from 'vitest'
import { LockLeaseClock } from '../../src/agent/cluster/lock-leases.ts'
import { LogDriver } from '../state/helpers.ts'

function withLock(ttlMs = 1_000): { log: LogDriver; token: number } {
  const log = new LogDriver()
  log.open('a', 60_000)
  log.apply({ type: 'lockAcquire', key: 'L', sessionId: 'a', requestId: 'r', ttlMs, wait: true })
  return { log, token: log.machine.lock('L')!.holder.fencingToken }
}

describe("LockLeaseClock: the leader's lease timing, on its monotonic clock only", () => {
  it('expires a lease a full ttl after this leader first saw it, whatever the entry timestamps say', () => {
    const { log, token } = withLock()
    const clock = new LockLeaseClock()
    const leadership = {}
    // A leader whose wall clock is a day ahead stamps everything far past the lease: that plays no part.
    log.at(86_400_000).apply({ type: 'put', key: 'k', value: 1 })
    expect(clock.due(log.machine, leadership, 5_000)).toEqual([])
    expect(clock.due(log.machine, leadership, 5_999)).toEqual([])
    expect(clock.due(log.machine, leadership, 6_000)).toEqual([
      { key: 'L', fencingToken: token, leaseIndex: token },
    ])
  })

  it('starts over for an extended lease and for a new leadership (a new leader waits a full ttl)', () => {
    const { log, token } = withLock()
    const clock = new LockLeaseClock()
    const first = {}
    clock.due(log.machine, first, 0)
    log.apply({ type: 'lockExtend', key: 'L', sessionId: 'a', fencingToken: token, ttlMs: 1_000 })
    const extended = log.index
    expect(clock.due(log.machine, first, 900)).toEqual([]) // seen extended at 900
    expect(clock.due(log.machine, first, 1_899)).toEqual([])
    expect(clock.due(log.machine, first, 1_900)).toEqual([
      { key: 'L', fencingToken: token, leaseIndex: extended },
    ])
    // Another leadership (this agent lost and regained it): nothing it saw before counts.
    const second = {}
    expect(clock.due(log.machine, second, 2_000)).toEqual([])
    expect(clock.due(log.machine, second, 2_999)).toEqual([])
    expect(clock.due(log.machine, second, 3_000)).toHaveLength(1)
  })

  it('forgets leases that ended', () => {
    const { log, token } = withLock()
    const clock = new LockLeaseClock()
    const leadership = {}
    clock.due(log.machine, leadership, 0)
    log.apply({ type: 'lockRelease', key: 'L', sessionId: 'a', fencingToken: token })
    log.apply({ type: 'lockAcquire', key: 'L', sessionId: 'a', requestId: 'r2', ttlMs: 1_000, wait: true })
    const next = log.machine.lock('L')!.holder.fencingToken
    // The new grant is timed from when it is seen, not from the old one's.
    expect(clock.due(log.machine, leadership, 900)).toEqual([])
    expect(clock.due(log.machine, leadership, 1_900)).toEqual([
      { key: 'L', fencingToken: next, leaseIndex: next },
    ])
  })
})
