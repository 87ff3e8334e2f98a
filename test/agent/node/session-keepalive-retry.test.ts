/**
 * A keep-alive that found no leader in time is sent again after an election timeout, not a whole `ttl / 4`
 * later: the failed call already took `ttl / 4`, and the local lease (trusted `ttl / 2 - margin` after the
 * last acknowledged send) would lapse meanwhile on a cluster that has a leader again. An agent whose lease
 * is not trusted starts none of its assigned tasks (simulator, 5 agents, seed 36: a task waited for the
 * leader's stalled-assignment clock, 500 ms, at each step of a diamond).
 */

import { describe, expect, it } from 'vitest'
import { keepAliveRetryMs, SessionKeeper } from '../../../src/agent/node/session.ts'
import { resolveTiming } from '../../../src/agent/options.ts'
import { NoLeaderError } from '../../../src/errors.ts'
import { VirtualScheduler } from '../../../src/time/index.ts'

const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

describe('SessionKeeper keep-alives after one found no leader', () => {
  it('sends the next within an election timeout, so the lease is trusted again soon after the leader is back', async () => {
    const scheduler = new VirtualScheduler({ start: 1_000 })
    const timing = resolveTiming({ sessionTtlMs: 5_000 })
    // The leader is gone until 3_000: a keep-alive sent before then hangs to its deadline and fails.
    const leaderBackAt = 3_000
    const sends: number[] = []
    const session = new SessionKeeper(
      'a',
      timing,
      {
        submitRaw: async command => {
          if (command.type !== 'openSession') throw new Error('unexpected command')
          return { type: 'session', sessionId: command.sessionId, expiresAt: 0 }
        },
        keepAlive: (_sessionId, deadline) => {
          sends.push(scheduler.now())
          if (scheduler.now() >= leaderBackAt) return Promise.resolve({ status: 'renewed' as const })
          return new Promise((_resolve, reject) => {
            scheduler.after(deadline - scheduler.now(), () => reject(new NoLeaderError('no leader in time')))
          })
        },
      },
      log as never,
      scheduler,
    )
    await session.open(10_000)
    for (let now = 1_000; now < 4_600; now += 10) {
      scheduler.advance(10)
      await settle()
    }
    // The first keep-alive (at 2_250) failed at its deadline, 3_500; the next went an election timeout later.
    expect(sends[0]).toBe(2_250)
    expect(sends[1]).toBe(3_500 + keepAliveRetryMs(timing))
    // Trusted again from that answer on (without the retry, not before the next round at 4_750).
    expect(session.validUntil()).toBeGreaterThan(scheduler.now())
    await session.stop(false, 0)
  })
})
