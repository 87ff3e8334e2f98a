import { afterEach, describe, expect, it } from 'vitest'
import type { Agent, ConsensusEvent, LeaderEvent, Lock } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

// In-process agents on real loopback TCP sockets: the v0.2 KV, election and semaphore facades end to end.
const agents: Agent[] = []
const SESSION_TTL_MS = 1_500

async function start(count: number): Promise<Agent[]> {
  const started: Agent[] = []
  for (let i = 0; i < count; i++) {
    const agent = await createAgent({ name: `k${i}`, transport: 'tcp', sessionTtlMs: SESSION_TTL_MS })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  await until(
    async () => (await started[0].members()).filter(m => m.role === 'voter').length === Math.min(3, count),
  )
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

describe('KV entries, lists and transactions', () => {
  it('reads entries and pages, converts values as JSON.stringify does, and refuses bad input writing nothing', async () => {
    const [a] = await start(1)
    const first = await a.consensus.propose('svc/b', { name: 'llama', v: undefined, at: new Date(0) })
    expect(await a.consensus.get('svc/b')).toEqual({ name: 'llama', at: '1970-01-01T00:00:00.000Z' })
    await a.consensus.propose('svc/b', Number.NaN)
    expect(await a.consensus.getEntry('svc/b')).toEqual({
      key: 'svc/b',
      value: null,
      revision: first.revision + 1,
      createRevision: first.revision,
      version: 2,
      ephemeral: false,
    })
    for (const key of ['svc/a', 'svc/c', 'svc/d', 'other']) await a.consensus.propose(key, key)
    const page = await a.consensus.list('svc/', { limit: 2 })
    expect(page.entries.map(entry => entry.key)).toEqual(['svc/a', 'svc/b'])
    expect(page.more).toBe(true)
    const rest = await a.consensus.list('svc/', { after: 'svc/b', consistency: 'local' })
    expect(rest.entries.map(entry => entry.key)).toEqual(['svc/c', 'svc/d'])
    expect(rest).toMatchObject({ more: false, revision: page.revision })
    // What the caller got is a copy.
    ;(rest.entries[0] as { value: unknown }).value = 'changed'
    expect(await a.consensus.get('svc/c')).toBe('svc/c')

    const revision = (await a.consensus.list('')).revision
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    const bad: (() => Promise<unknown>)[] = [
      () => a.consensus.propose('k', 10n),
      () => a.consensus.propose('k', cycle),
      () => a.consensus.propose('', 1, { ephemeral: true }),
      () => a.consensus.propose('k'.repeat(1025), 1),
      () => a.consensus.propose('k', 1, { ephemeral: 'yes' as never }),
      () => a.consensus.getEntry(''),
      () => a.consensus.list('p'.repeat(1025)),
      () => a.consensus.list('svc/', { limit: 0 }),
      () => a.consensus.list('svc/', { limit: 1.5 }),
      () => a.consensus.list('svc/', { after: '' }),
      () => a.consensus.transaction({ compare: [], success: [] }),
      () =>
        a.consensus.transaction({
          compare: [],
          success: Array.from({ length: 129 }, (_, i) => ({ type: 'delete' as const, key: `k${i}` })),
        }),
      () =>
        a.consensus.transaction({
          compare: [],
          success: [
            { type: 'put', key: 'k', value: 1 },
            { type: 'delete', key: 'k' },
          ],
        }),
      () =>
        a.consensus.transaction({
          compare: [{ key: 'k', target: 'lease' as never, op: '==', value: 1 }],
          success: [{ type: 'put', key: 'k', value: 1 }],
        }),
      () =>
        a.consensus.transaction({
          compare: [{ key: 'k', target: 'version', op: '>=' as never, value: 1 }],
          success: [{ type: 'put', key: 'k', value: 1 }],
        }),
      () => a.consensus.transaction({ compare: [], success: [{ type: 'put', key: 'k', value: 1n }] }),
      () => a.consensus.transaction({ compare: [], success: [{ type: 'deletePrefix', prefix: '' }] }),
      () => a.consensus.transaction({ compare: [], success: [], bogus: 1 } as never),
    ]
    for (const call of bad) {
      await expect(call(), call.toString()).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    }
    expect((await a.consensus.list('')).revision).toBe(revision)
  })

  it('transfers between two accounts from three agents, racing plain puts, never change the sum', async () => {
    const cluster = await start(3)
    await cluster[0].consensus.transaction({
      compare: [],
      success: [
        { type: 'put', key: 'acct/a', value: 100 },
        { type: 'put', key: 'acct/b', value: 100 },
      ],
    })
    const sums: number[] = []
    const controller = new AbortController()
    // Every revision a watcher sees: the sum after each whole transaction.
    const balances = new Map<string, number>()
    const watched = (async () => {
      let revision = 0
      for await (const event of cluster[1].consensus.watch('acct/', {
        signal: controller.signal,
        fromRevision: 1,
      })) {
        if (event.revision !== revision && revision !== 0) sums.push(sum(balances))
        revision = event.revision
        balances.set(event.key, event.value as number)
      }
    })()
    let moved = 0
    const transfer = async (agent: Agent, seed: number): Promise<void> => {
      for (let i = 0; i < 15; i++) {
        for (;;) {
          const [from, to] = (seed + i) % 2 === 0 ? ['acct/a', 'acct/b'] : ['acct/b', 'acct/a']
          const source = (await agent.consensus.getEntry(from))!
          const target = (await agent.consensus.getEntry(to))!
          const amount = 1 + ((seed * 7 + i) % 5)
          const { succeeded } = await agent.consensus.transaction({
            compare: [
              { key: from, target: 'revision', op: '==', value: source.revision },
              { key: to, target: 'revision', op: '==', value: target.revision },
            ],
            success: [
              { type: 'put', key: from, value: (source.value as number) - amount },
              { type: 'put', key: to, value: (target.value as number) + amount },
            ],
          })
          if (succeeded) {
            moved++
            break
          }
        }
      }
    }
    const noise = async (agent: Agent): Promise<void> => {
      for (let i = 0; i < 30; i++) await agent.consensus.propose(`acct-log/${agent.name}`, i)
    }
    await Promise.all(cluster.flatMap((agent, seed) => [transfer(agent, seed), noise(agent)]))
    expect(moved).toBe(45)
    const final = await cluster[2].consensus.list('acct/')
    expect(final.entries.map(entry => entry.value as number).reduce((x, y) => x + y)).toBe(200)
    await until(() => balances.size === 2 && sum(balances) === 200 && sums.length >= 44)
    controller.abort()
    await watched
    expect(sums.length).toBeGreaterThanOrEqual(44)
    expect(new Set(sums)).toEqual(new Set([200]))
  })
})

function sum(balances: Map<string, number>): number {
  let total = 0
  for (const value of balances.values()) total += value
  return total
}

describe('ephemeral keys and semaphores', () => {
  it('an agent that dies holding ephemeral keys and a permit: watchers see the deletes, a waiter gets the permit', async () => {
    const [a, b, c] = await start(3)
    const controller = new AbortController()
    const seen: ConsensusEvent[] = []
    const watching = (async () => {
      for await (const event of a.consensus.watch('presence/', {
        signal: controller.signal,
        prevValue: true,
      })) {
        seen.push(event)
      }
    })()
    await c.consensus.propose('presence/c', { addr: 'c:1' }, { ephemeral: true })
    await c.consensus.transaction({
      compare: [],
      success: [
        { type: 'put', key: 'presence/c-2', value: 2, ephemeral: true },
        { type: 'put', key: 'presence/plain', value: 'stays' },
      ],
    })
    expect(await a.consensus.getEntry('presence/c')).toMatchObject({
      ephemeral: true,
      owner: c.id,
      version: 1,
    })

    const permits = {
      a: a.locks.semaphore('pool', 2),
      c: c.locks.semaphore('pool', 2),
      b: b.locks.semaphore('pool', 2),
    }
    const heldByA = await permits.a.acquire(60_000)
    const heldByC = await permits.c.acquire(60_000)
    expect(heldByC.fencingToken).toBeGreaterThan(heldByA.fencingToken)
    expect(await permits.b.tryAcquire(60_000)).toEqual({ lock: undefined, acquired: false })
    await expect(b.locks.acquire('pool', 1_000)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(b.locks.semaphore('pool', 3).tryAcquire(1_000)).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    expect(() => b.locks.semaphore('pool', 0)).toThrow(
      expect.objectContaining({ name: 'InvalidArgumentError' }),
    )
    expect(() => b.locks.semaphore('pool', 1.5)).toThrow(
      expect.objectContaining({ name: 'InvalidArgumentError' }),
    )
    let granted: Lock | undefined
    const waiting = permits.b.acquire(60_000).then(lock => {
      granted = lock
    })

    const stoppedAt = performance.now()
    await c.stop()
    await waiting
    const waited = performance.now() - stoppedAt
    // The session bound: the leader expires a silent agent's session within its ttl plus housekeeping.
    expect(waited).toBeLessThan(SESSION_TTL_MS * 3)
    expect(granted!.fencingToken).toBeGreaterThan(heldByC.fencingToken)
    expect(granted!.isHeld()).toBe(true)
    expect(heldByA.isHeld()).toBe(true)
    await until(() => seen.filter(event => event.type === 'delete').length === 2)
    expect(seen.filter(event => event.type === 'delete').map(event => [event.key, event.prevValue])).toEqual([
      ['presence/c', { addr: 'c:1' }],
      ['presence/c-2', 2],
    ])
    expect((await b.consensus.list('presence/')).entries.map(entry => entry.key)).toEqual(['presence/plain'])
    controller.abort()
    await watching
    await granted!.release()
    await heldByA.release()
  })
})

describe('election values', () => {
  it('campaign with a value, proclaim by the leader, NotLeaderError for anyone else; watchers see the values', async () => {
    const [a, b] = await start(3)
    const controller = new AbortController()
    const events: LeaderEvent[] = []
    const watching = (async () => {
      for await (const event of b.elections('svc').watch({ signal: controller.signal })) events.push(event)
    })()
    await a.elections('svc').campaign({ value: { addr: 'a:1', extra: undefined } })
    const second = b.elections('svc').campaign({ value: 'b' })
    await expect(b.elections('svc').proclaim('not yet')).rejects.toMatchObject({ name: 'NotLeaderError' })
    await a.elections('svc').proclaim({ addr: 'a:2' })
    await expect(a.elections('svc').proclaim(10n)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await until(() => events.length >= 2)
    await a.elections('svc').resign()
    await second
    await until(() => events.length >= 3)
    controller.abort()
    await watching
    expect(events.map(event => [event.type, event.leaderId, event.term, event.value])).toEqual([
      ['elected', a.id, 1, { addr: 'a:1' }],
      ['changed', a.id, 1, { addr: 'a:2' }],
      ['changed', b.id, 2, 'b'],
    ])
    // A watch that starts now gets the current leader with its value.
    const late = b.elections('svc').watch()[Symbol.asyncIterator]()
    const first = await late.next()
    expect(first.value).toMatchObject({ type: 'elected', leaderId: b.id, value: 'b' })
    await late.return?.()
    // The cluster's own leadership has no value: a non-leader is told it does not lead, the leader why not.
    const raftLeader = [a, b].find(agent => agent.isLeader()) ?? a
    const follower = raftLeader === a ? b : a
    await expect(follower.election.proclaim(1)).rejects.toMatchObject({ name: 'NotLeaderError' })
    await expect(raftLeader.election.proclaim(1)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.election.campaign({ value: 1 })).rejects.toMatchObject({ name: 'InvalidArgumentError' })
  })
})
