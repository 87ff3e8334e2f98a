/**
 * A member's feed moves off the leader once another replica may answer (issue 16, join at scale): a member
 * joins knowing only the replicas its join answer named, not who leads, and in a join storm the first
 * members began on the founder, the only replica then and the leader, and stayed there. At 50 agents the
 * leader answered most members' long polls (every committed entry one answer and one new poll each) on
 * top of its work as leader. Virtual time; the replicas are scripted answers.
 */

import type { Logger } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { LeaderTracker } from '../../src/agent/node/leader-tracker.ts'
import { Mirror } from '../../src/agent/node/mirror.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import { encodeEntry, type FeedAnswer } from '../../src/agent/node/replica-feed.ts'
import { VirtualScheduler } from '../../src/time/index.ts'

const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

async function runFor(scheduler: VirtualScheduler, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await settle()
    scheduler.advance(step)
  }
  await settle()
}

const noop = (): void => {}
const log = Object.assign(noop, { error: noop, trace: noop, enabled: false }) as unknown as Logger

/**
 * A member that joined through the founder L when L was the only replica. Each replica answers a poll at
 * once with the next entry while there are `entries`, then holds it. `config`: the replicas the answers name.
 */
function member(config: { voters: string[]; nonVoters: string[] }, entries = 3) {
  const scheduler = new VirtualScheduler({ start: 50_000 })
  const tracker = new LeaderTracker(scheduler)
  const replica = new Replica()
  const polls: string[] = []
  const mirror = new Mirror({
    selfId: 'm1',
    replica,
    tracker,
    call: (peer, op, args, timeoutMs, signal) => {
      if (op !== 'replica.entries') return Promise.reject(new Error(`unexpected ${op}`))
      const fromIndex = args.fromIndex as number
      polls.push(peer)
      return new Promise((resolve, reject) => {
        const cancel = scheduler.after(timeoutMs, () => reject(new Error('RpcTimeoutError')))
        signal?.addEventListener('abort', () => {
          cancel()
          reject(new Error('AbortError'))
        })
        if (fromIndex > entries) return
        cancel()
        const entry = encodeEntry({ index: fromIndex, term: 1, type: 'normal', data: new Uint8Array() })
        const answer: FeedAnswer = {
          entries: [entry],
          snapshot: false,
          applied: fromIndex,
          leader: 'L',
          term: 1,
          config,
        }
        resolve(answer)
      })
    },
    status: () => 'alive',
    onChosen: noop,
    operationTimeoutMs: 5_000,
    scheduler,
    closed: new AbortController().signal,
    log,
  })
  mirror.start(['L'])
  return { scheduler, mirror, polls, replica }
}

describe("a member's feed and the leader", () => {
  it('leaves the leader for a standby once an answer names the replicas and who leads', async () => {
    const m = member({ voters: ['L', 'V1', 'V2'], nonVoters: ['S1', 'S2'] })
    await runFor(m.scheduler, 200)
    expect(m.replica.state.appliedIndex).toBe(3)
    // The first poll could only go to L; every later one goes to a standby, from the member's own index.
    expect(m.polls[0]).toBe('L')
    expect(m.polls.slice(1).length).toBeGreaterThan(0)
    expect(m.polls.slice(1).every(peer => peer === 'S1' || peer === 'S2')).toBe(true)
    m.mirror.stop()
  })

  it('stays on the leader while it is the only replica', async () => {
    const m = member({ voters: ['L'], nonVoters: [] })
    await runFor(m.scheduler, 200)
    expect(m.replica.state.appliedIndex).toBe(3)
    expect(new Set(m.polls)).toEqual(new Set(['L']))
    m.mirror.stop()
  })
})
