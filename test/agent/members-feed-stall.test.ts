/**
 * A member's feed that goes silent: a partition drops the answers of the replica feeding it without a reset,
 * and until the view declares that replica dead the member's copy does not move, so its own writes (answered
 * by the leader) do not show in it. Once the leader answered a write the copy has not applied, the mirror
 * gives the feed `FEED_STALL_MS` to bring anything, then resumes on another replica from its own index.
 * (Found by `sim:scale --member-writes`, seed 2.) Virtual time; the replicas are scripted answers.
 */

import type { Logger } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { LeaderTracker } from '../../src/agent/node/leader-tracker.ts'
import { FEED_STALL_MS, Mirror } from '../../src/agent/node/mirror.ts'
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
 * A member fed by S (a standby), B and V being other replicas. After its first answer S holds each long poll
 * (no answer: cut off, or nothing new) unless `sAnswersEntry`: then entry 1 comes 300 ms into the poll.
 */
function member(options: { sAnswersEntry?: boolean } = {}) {
  const scheduler = new VirtualScheduler({ start: 50_000 })
  const tracker = new LeaderTracker(scheduler)
  const replica = new Replica()
  const polls: { peer: string; fromIndex: number; at: number }[] = []
  const answer = (entries: FeedAnswer['entries'], applied: number): FeedAnswer => ({
    entries,
    snapshot: false,
    applied,
    leader: 'L',
    term: 1,
    config: { voters: ['B', 'L', 'V'], nonVoters: ['S'] },
  })
  const mirror = new Mirror({
    selfId: 'm1',
    replica,
    tracker,
    call: (peer, op, args, timeoutMs, signal) => {
      if (op !== 'replica.entries') return Promise.reject(new Error(`unexpected ${op}`))
      const fromIndex = args.fromIndex as number
      polls.push({ peer, fromIndex, at: scheduler.now() })
      return new Promise((resolve, reject) => {
        const cancel = scheduler.after(timeoutMs, () => reject(new Error('RpcTimeoutError')))
        signal?.addEventListener('abort', () => {
          cancel()
          reject(new Error('AbortError'))
        })
        if (polls.length === 1) {
          cancel()
          resolve(answer([], 0))
        } else if (peer === 'S' && options.sAnswersEntry === true && fromIndex === 1) {
          // S still feeds: an entry comes (an empty one, as a new leader commits), the copy moves.
          scheduler.after(300, () => {
            cancel()
            resolve(answer([encodeEntry({ index: 1, term: 1, type: 'normal', data: new Uint8Array() })], 1))
          })
        }
        // Otherwise the long poll waits (a silent S never answers).
      })
    },
    status: () => 'alive',
    onChosen: noop,
    operationTimeoutMs: 5_000,
    scheduler,
    closed: new AbortController().signal,
    log,
  })
  mirror.start(['S'])
  return {
    scheduler,
    mirror,
    polls,
    replica,
  }
}

describe('Mirror with a silent feed', () => {
  it('leaves a replica that brings nothing for FEED_STALL_MS after a write of ours committed, resuming from its own index', async () => {
    const m = member()
    await runFor(m.scheduler, 100)
    expect(m.polls.map(p => p.peer)).toEqual(['S', 'S'])
    // The leader answered one of our writes; the copy does not have it.
    m.mirror.expect()
    const at = m.scheduler.now()
    await runFor(m.scheduler, FEED_STALL_MS + 200)
    const after = m.polls.filter(p => p.at >= at)
    expect(after[0]?.peer).not.toBe('S')
    expect(after[0]?.fromIndex).toBe(1)
    expect(after[0]?.at).toBeGreaterThanOrEqual(at + FEED_STALL_MS)
    expect(after[0]?.at).toBeLessThan(at + FEED_STALL_MS + 200)
    m.mirror.stop()
  })

  it('stays on a replica that brings something in that time', async () => {
    const m = member({ sAnswersEntry: true })
    await runFor(m.scheduler, 100)
    m.mirror.expect()
    await runFor(m.scheduler, FEED_STALL_MS + 200)
    expect(m.replica.state.appliedIndex).toBe(1)
    expect(new Set(m.polls.map(p => p.peer))).toEqual(new Set(['S']))
    m.mirror.stop()
  })

  it('without a committed write it waits on the long poll (an idle cluster sends nothing)', async () => {
    const m = member()
    await runFor(m.scheduler, 100)
    await runFor(m.scheduler, FEED_STALL_MS * 3)
    expect(new Set(m.polls.map(p => p.peer))).toEqual(new Set(['S']))
    m.mirror.stop()
  })
})
