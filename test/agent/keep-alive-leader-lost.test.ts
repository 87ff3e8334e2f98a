/**
 * A member that holds no log learns who leads only from the replicas. When the leader's machine is lost (no
 * connection reset: calls to it hang) or its process dies, the member must find the new leader through any
 * other replica before the ttl the new leader gave its session runs out, and its feed must leave the lost
 * leader without waiting for the view to declare it dead. (Found by `sim:scale --silent-crashes`: a member
 * kept sending keep-alives to the dead leader it knew, round after round, and lost its session.)
 *
 * Virtual time: the keep-alive client, the leader tracker and the mirror run on a `VirtualScheduler`; the
 * replicas are scripted answers.
 */

import type { Logger } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { KeepAliveClient, learnLeader } from '../../src/agent/cluster/keep-alive.ts'
import type { KeepAliveAnswer } from '../../src/agent/cluster/keep-alive-answer.ts'
import { LeaderTracker } from '../../src/agent/node/leader-tracker.ts'
import { Mirror } from '../../src/agent/node/mirror.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import type { FeedAnswer } from '../../src/agent/node/replica-feed.ts'
import { NoLeaderError } from '../../src/errors.ts'
import { VirtualScheduler } from '../../src/time/index.ts'

const TTL = 5_000
/** The keeper's deadline for one keep-alive: the session keeper gives each `ttl / 4`. */
const WINDOW = TTL / 4
const REPLICAS = ['A', 'B', 'C', 'S1', 'S2']

/** Lets promise chains settle between virtual-time steps. */
const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

async function runFor(scheduler: VirtualScheduler, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await settle()
    scheduler.advance(step)
  }
  await settle()
}

/**
 * A call that never answers (a lost machine): it fails at its own timeout, or when its signal aborts, as the
 * RPC layer's does.
 */
function hang<T>(scheduler: VirtualScheduler, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((_resolve, reject) => {
    const cancel = scheduler.after(timeoutMs, () => reject(new Error('RpcTimeoutError: the call timed out')))
    signal?.addEventListener(
      'abort',
      () => {
        cancel()
        reject(new Error('AbortError: the call was aborted'))
      },
      { once: true },
    )
  })
}

function later<T>(scheduler: VirtualScheduler, ms: number, value: T): Promise<T> {
  return new Promise<T>(resolve => scheduler.after(ms, () => resolve(value)))
}

type Script = (peer: string, timeoutMs: number) => Promise<KeepAliveAnswer>

function keeper(makeScript: (scheduler: VirtualScheduler) => Script, options: { replicas?: boolean } = {}) {
  const scheduler = new VirtualScheduler({ start: 100_000 })
  const script = makeScript(scheduler)
  const tracker = new LeaderTracker(scheduler)
  tracker.update('A', 1)
  const asked: string[] = []
  const client = new KeepAliveClient({
    selfId: 'm1',
    leader: tracker,
    call: (peer, _sessionId, timeoutMs) => {
      asked.push(peer)
      return script(peer, timeoutMs)
    },
    local: { serve: async () => ({ status: 'notLeader', leader: '' }) },
    legacy: async () => {
      throw new Error('every leader runs the lessor here')
    },
    ...(options.replicas === false ? {} : { replicas: () => REPLICAS }),
    learn: (leader, term) => learnLeader(tracker, leader, term),
    scheduler,
    closed: new AbortController().signal,
  })
  /** One keep-alive: its outcome and the virtual ms it took. */
  const keepAlive = async () => {
    const start = scheduler.now()
    let outcome: Awaited<ReturnType<KeepAliveClient['keepAlive']>> | Error | undefined
    client.keepAlive('s', start + WINDOW).then(
      answer => {
        outcome = answer
      },
      (err: Error) => {
        outcome = err
      },
    )
    while (outcome === undefined && scheduler.now() - start <= WINDOW + 100) await runFor(scheduler, 10)
    return { outcome, tookMs: scheduler.now() - start }
  }
  return { scheduler, tracker, asked, keepAlive }
}

/** The leader A is lost; C leads in term 2, the other replicas know it. */
function newLeaderC(scheduler: VirtualScheduler, lost: 'silent' | 'reset'): Script {
  return (peer, timeoutMs) => {
    if (peer === 'A')
      return lost === 'silent' ? hang(scheduler, timeoutMs) : Promise.reject(new Error('connection reset'))
    if (peer === 'C') return later(scheduler, 60, { status: 'renewed', ttlMs: TTL, term: 2 })
    return later(scheduler, 5, { status: 'notLeader', leader: 'C', term: 2 })
  }
}

describe('KeepAliveClient when the leader it knows is lost', () => {
  it('a silent leader (machine lost): asks the other replicas after a third of its time, renews at the new leader and learns it', async () => {
    const k = keeper(scheduler => newLeaderC(scheduler, 'silent'))
    const { outcome, tookMs } = await k.keepAlive()
    expect(outcome).toEqual({ status: 'renewed', ttlMs: TTL, term: 2 })
    expect(tookMs).toBeLessThan(WINDOW)
    expect(k.asked[0]).toBe('A')
    expect(k.asked.at(-1)).toBe('C')
    // The member's writes and next keep-alives go to C now.
    expect({ leader: k.tracker.leader, term: k.tracker.term }).toEqual({ leader: 'C', term: 2 })
    k.asked.length = 0
    expect((await k.keepAlive()).outcome).toEqual({ status: 'renewed', ttlMs: TTL, term: 2 })
    expect(k.asked).toEqual(['C'])
  })

  it('a leader whose process died (connection reset): asks another replica at once', async () => {
    const k = keeper(scheduler => newLeaderC(scheduler, 'reset'))
    const { outcome, tookMs } = await k.keepAlive()
    expect(outcome).toEqual({ status: 'renewed', ttlMs: TTL, term: 2 })
    expect(tookMs).toBeLessThan(200)
    expect(k.tracker.leader).toBe('C')
  })

  it('without the replicas to ask, it keeps asking the lost leader and finds no leader (the bug the above catch)', async () => {
    const k = keeper(scheduler => newLeaderC(scheduler, 'reset'), { replicas: false })
    const { outcome } = await k.keepAlive()
    expect(outcome).toBeInstanceOf(NoLeaderError)
    expect(new Set(k.asked)).toEqual(new Set(['A']))
    expect(k.tracker.leader).toBe('A')
  })

  it('a slow leader is not abandoned: its late answer renews the session', async () => {
    const k = keeper(
      scheduler => peer =>
        peer === 'A'
          ? later(scheduler, 700, { status: 'renewed', ttlMs: TTL, term: 1 })
          : later(scheduler, 5, { status: 'notLeader', leader: 'A', term: 1 }),
    )
    const { outcome, tookMs } = await k.keepAlive()
    expect(outcome).toEqual({ status: 'renewed', ttlMs: TTL, term: 1 })
    expect(tookMs).toBeGreaterThanOrEqual(700)
    expect(tookMs).toBeLessThan(800)
    expect(k.tracker.leader).toBe('A')
  })

  it('one lost message to a live leader: the others still name it, and it is asked again', async () => {
    let failures = 1
    const k = keeper(scheduler => peer => {
      if (peer === 'A') {
        if (failures-- > 0) return Promise.reject(new Error('connection broke'))
        return later(scheduler, 20, { status: 'renewed', ttlMs: TTL, term: 1 })
      }
      return later(scheduler, 5, { status: 'notLeader', leader: 'A', term: 1 })
    })
    const { outcome, tookMs } = await k.keepAlive()
    expect(outcome).toEqual({ status: 'renewed', ttlMs: TTL, term: 1 })
    expect(tookMs).toBeLessThan(300)
  })

  it('a replica that has not heard of the leader yet does not erase the one the member knows', () => {
    const scheduler = new VirtualScheduler()
    const tracker = new LeaderTracker(scheduler)
    tracker.update('C', 2)
    learnLeader(tracker, '', 2)
    learnLeader(tracker, 'A', 1)
    expect({ leader: tracker.leader, term: tracker.term }).toEqual({ leader: 'C', term: 2 })
    learnLeader(tracker, '', 3)
    expect({ leader: tracker.leader, term: tracker.term }).toEqual({ leader: '', term: 3 })
    learnLeader(tracker, 'B', 3)
    expect({ leader: tracker.leader, term: tracker.term }).toEqual({ leader: 'B', term: 3 })
  })
})

describe('Mirror when the replica feeding it was the leader and another now leads', () => {
  it('leaves the lost leader at once and resumes on another replica from its own applied index', async () => {
    const scheduler = new VirtualScheduler({ start: 100_000 })
    const tracker = new LeaderTracker(scheduler)
    const replica = new Replica()
    const polls: { peer: string; fromIndex: number; at: number }[] = []
    const noop = (): void => {}
    const log = Object.assign(noop, { error: noop, trace: noop, enabled: false }) as unknown as Logger
    let aLost = false
    const answer = (leader: string, term: number): FeedAnswer => ({
      entries: [],
      snapshot: false,
      applied: 0,
      leader,
      term,
      config: { voters: ['A', 'B', 'C'], nonVoters: [] },
    })
    const mirror = new Mirror({
      selfId: 'm1',
      replica,
      tracker,
      call: (peer, op, args, timeoutMs, signal) => {
        if (op !== 'replica.entries') return Promise.reject(new Error(`unexpected ${op}`))
        polls.push({ peer, fromIndex: args.fromIndex as number, at: scheduler.now() })
        // A first answers at once (the member learns the configuration), then its machine is lost.
        if (peer === 'A' && polls.length === 1) return Promise.resolve(answer('A', 1))
        if (peer === 'A' || aLost) return hang(scheduler, timeoutMs, signal)
        return later(scheduler, 5_000, answer('C', 2))
      },
      // The view never declares A dead in this test: only the leader change can move the feed.
      status: () => 'alive',
      onChosen: noop,
      operationTimeoutMs: 5_000,
      scheduler,
      closed: new AbortController().signal,
      log,
    })
    // Told of A only at join, as a member may be: its feed sits on the leader.
    mirror.start(['A'])
    await runFor(scheduler, 100)
    expect(polls.map(p => p.peer)).toEqual(['A', 'A'])
    aLost = true
    // The keep-alive client learns from another replica that C leads in term 2.
    learnLeader(tracker, 'C', 2)
    const learnedAt = scheduler.now()
    await runFor(scheduler, 300)
    const after = polls.filter(p => p.at >= learnedAt)
    expect(after.length).toBeGreaterThan(0)
    expect(after[0]?.peer).not.toBe('A')
    expect(after[0]?.fromIndex).toBe(1)
    expect(after[0]?.at).toBeLessThan(learnedAt + 200)
    mirror.stop()
  })
})
