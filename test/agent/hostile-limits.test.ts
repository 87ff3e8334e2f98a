/**
 * The per-agent limits of docs/limits.md, each made to fire on a real agent: key and value sizes, open
 * watches, waiting lock acquisitions and campaigns; and the retry of a write refused for the request rate. A refused call changes nothing, and the agent keeps
 * serving.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { propose } from '../../src/agent/node/proposer.ts'
import type { Replica } from '../../src/agent/node/replica.ts'
import { MAX_KEY_LENGTH, MAX_VALUE_BYTES, MAX_WAITERS, MAX_WATCHERS } from '../../src/agent/validate.ts'
import type { Agent } from '../../src/index.ts'
import { createAgent, InvalidArgumentError, LimitExceededError } from '../../src/index.ts'
import { RATE_LIMITED_ERROR, type Rpc, RpcRemoteError } from '../../src/net/rpc.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

let agent: Agent

beforeAll(async () => {
  agent = await createAgent({ name: 'limits', transport: 'memory' })
  await agent.join({})
}, 30_000)

afterAll(async () => {
  await agent?.stop()
})

/** The agent's replica, which holds its watch and waiter quotas (lowered here to keep the test small). */
function replicaOf(target: Agent): Replica {
  return (target.libp2p.services as unknown as { conclave: { replica: Replica } }).conclave.replica
}

async function revision(): Promise<number> {
  const { revision } = await agent.consensus.propose('limits/probe', Date.now())
  return revision
}

describe('per-agent limits', () => {
  it('refuses keys and values over their size limits, writing nothing', async () => {
    const before = await revision()
    await expect(agent.consensus.propose('k'.repeat(MAX_KEY_LENGTH + 1), 1)).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
    await expect(agent.consensus.propose('big', 'v'.repeat(MAX_VALUE_BYTES))).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
    await expect(agent.locks.acquire('k'.repeat(MAX_KEY_LENGTH + 1), 1000)).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
    // At the limits, both are accepted.
    const key = 'k'.repeat(MAX_KEY_LENGTH)
    await agent.consensus.propose(key, 'v'.repeat(MAX_VALUE_BYTES - 2))
    expect(((await agent.consensus.get(key)) as string).length).toBe(MAX_VALUE_BYTES - 2)
    expect(await revision()).toBe(before + 2)
    expect(await agent.consensus.get('big')).toBeUndefined()
  })

  it('refuses a watch past the open-watch limit until one ends', async () => {
    expect(MAX_WATCHERS).toBe(10_000)
    const quota = replicaOf(agent).watchers
    const saved = quota.limit
    quota.limit = quota.size + 20
    const controller = new AbortController()
    try {
      const watches = Array.from({ length: 20 }, (_, i) =>
        agent.consensus.watch(`w${i}/`, { signal: controller.signal })[Symbol.asyncIterator](),
      )
      let err: unknown
      try {
        agent.consensus.watch('one-too-many/')
      } catch (caught) {
        err = caught
      }
      expect(err).toBeInstanceOf(LimitExceededError)
      expect((err as LimitExceededError).code).toBe('ERR_LIMIT_EXCEEDED')
      expect(() => agent.elections('e').watch()).toThrow(LimitExceededError)
      // The watches that are open still work.
      const next = watches[3].next()
      await agent.consensus.propose('w3/x', 1)
      expect((await next).value).toMatchObject({ key: 'w3/x', value: 1 })
      // Ending one frees its place.
      await watches[0].return?.()
      const replacement = agent.consensus.watch('w0/', { signal: controller.signal })[Symbol.asyncIterator]()
      expect(() => agent.consensus.watch('again/')).toThrow(LimitExceededError)
      await replacement.return?.()
    } finally {
      controller.abort()
      quota.limit = saved
    }
    expect(quota.size).toBe(0)
  })

  it('refuses a lock acquisition or campaign past the waiter limit until one ends', async () => {
    expect(MAX_WAITERS).toBe(10_000)
    const quota = replicaOf(agent).waiters
    const saved = quota.limit
    quota.limit = 3
    const held = await agent.locks.acquire('contended', 30_000)
    const controllers = [new AbortController(), new AbortController(), new AbortController()]
    try {
      const waiting = controllers.map(controller =>
        agent.locks.acquire('contended', 30_000, { signal: controller.signal }),
      )
      for (const pending of waiting) pending.catch(() => {})
      expect(quota.size).toBe(3)
      await expect(agent.locks.acquire('contended', 1000)).rejects.toBeInstanceOf(LimitExceededError)
      await expect(agent.locks.tryAcquire('other', 1000)).rejects.toBeInstanceOf(LimitExceededError)
      await expect(agent.elections('e').campaign()).rejects.toBeInstanceOf(LimitExceededError)
      // One gives up: its place is free again.
      controllers[0].abort()
      await expect(waiting[0]).rejects.toMatchObject({ name: 'AbortError' })
      expect(quota.size).toBe(2)
      const { acquired, lock } = await agent.locks.tryAcquire('other', 1000)
      expect(acquired).toBe(true)
      await lock?.release()
    } finally {
      for (const controller of controllers) controller.abort()
      await held.release()
      quota.limit = saved
    }
    await expect.poll(() => quota.size).toBe(0)
  })

  it('serves each peer at most its rateLimits; a follower over it retries, and every write lands', async () => {
    const leader = await createAgent({
      name: 'rated',
      transport: 'memory',
      rateLimits: { requests: { perSecond: 50, burst: 5 } },
    })
    const follower = await createAgent({ name: 'rated-follower', transport: 'memory' })
    try {
      await leader.join({})
      await follower.join({ bootstrap: leader.multiaddrs() })
      await Promise.all(Array.from({ length: 40 }, (_, i) => follower.consensus.propose(`rated/${i}`, i)))
      for (let i = 0; i < 40; i++) expect(await leader.consensus.get(`rated/${i}`)).toBe(i)
      const rpc = (leader.libp2p.services as unknown as { conclave: { rpc: Rpc } }).conclave.rpc
      expect(rpc.stats().rateLimited).toBeGreaterThan(0)
    } finally {
      await Promise.all([follower.stop(), leader.stop()])
    }
    await expect(createAgent({ rateLimits: { requests: { perSecond: 0 } } })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
    await expect(
      createAgent({ rateLimits: { raftMessages: { perSecond: 10, burst: 0 } } }),
    ).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(createAgent({ rateLimits: { replies: {} } as never })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
  })

  it('retries a forwarded write the leader refused for its request rate', async () => {
    let calls = 0
    const result = await propose(
      {
        selfId: 'follower',
        leader: () => 'leader',
        proposeLocal: async () => ({}),
        forward: async () => {
          calls++
          if (calls < 3) throw new RpcRemoteError('Over the rate: retry later', RATE_LIMITED_ERROR)
          return new TextEncoder().encode(JSON.stringify({ type: 'revision', revision: 7 }))
        },
        leaderChange: ms => new Promise(resolve => setTimeout(resolve, Math.min(ms, 5))),
        scheduler: systemScheduler,
        closed: false,
      },
      { type: 'put', key: 'k', value: 1 },
      { deadline: performance.now() + 5_000 },
    )
    expect(result).toEqual({ type: 'revision', revision: 7 })
    expect(calls).toBe(3)
  })
})
