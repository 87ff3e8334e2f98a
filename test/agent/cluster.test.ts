import { afterEach, describe, expect, it } from 'vitest'
import type { Agent, ConsensusEvent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

const agents: Agent[] = []

async function start(count: number, options: Parameters<typeof createAgent>[0] = {}): Promise<Agent[]> {
  const started: Agent[] = []
  for (let i = 0; i < count; i++) {
    const agent = await createAgent({ name: `a${i}`, transport: 'tcp', ...options })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

describe('a cluster of in-process agents', () => {
  it('founds, joins, promotes to three voters and agrees on proposals from any agent', async () => {
    const [a, b, c] = await start(3)
    await until(async () => (await a.members()).filter(m => m.role === 'voter').length === 3)
    expect(a.isLeader()).toBe(true)
    const { revision } = await c.consensus.propose('config/x', { n: 1 })
    expect(revision).toBeGreaterThan(0)
    for (const agent of [a, b, c]) {
      expect(await agent.consensus.get('config/x')).toEqual({ n: 1 })
    }
    await expect(
      b.consensus.propose('config/x', 2, { expectedRevision: revision - 1 }),
    ).rejects.toMatchObject({
      name: 'RevisionMismatchError',
    })
    expect((await b.consensus.propose('config/x', 2, { expectedRevision: revision })).revision).toBe(
      revision + 1,
    )
  })

  it('streams the same watch sequence on every agent, replaying history from a revision', async () => {
    const cluster = await start(3)
    const seen: ConsensusEvent[][] = cluster.map(() => [])
    const controller = new AbortController()
    const done = cluster.map((agent, i) =>
      (async () => {
        for await (const event of agent.consensus.watch('w/', {
          signal: controller.signal,
          fromRevision: 1,
        })) {
          seen[i].push(event)
          if (seen[i].length === 30) break
        }
      })(),
    )
    for (let i = 0; i < 30; i++) await cluster[i % 3].consensus.propose(`w/${i % 4}`, i)
    await Promise.all(done)
    controller.abort()
    const revisions = seen.map(events => events.map(event => `${event.key}@${event.revision}=${event.value}`))
    expect(revisions[1]).toEqual(revisions[0])
    expect(revisions[2]).toEqual(revisions[0])
    expect(new Set(revisions[0]).size).toBe(30)
  })

  it('grants a contended lock to one holder at a time with increasing fencing tokens', async () => {
    const cluster = await start(3)
    let holders = 0
    let counter = 0
    const tokens: bigint[] = []
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (async () => {
          for (let round = 0; round < 3; round++) {
            const lock = await cluster[i % 3].locks.acquire('counter', 5000)
            holders++
            expect(holders).toBe(1)
            expect(lock.isHeld()).toBe(true)
            tokens.push(lock.fencingToken)
            const value = counter
            await new Promise(resolve => setTimeout(resolve, 2))
            counter = value + 1
            holders--
            await lock.release()
            expect(lock.isHeld()).toBe(false)
          }
        })(),
      ),
    )
    expect(counter).toBe(24)
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1])
    const { acquired } = await cluster[1].locks.tryAcquire('counter', 1000)
    expect(acquired).toBe(true)
  })

  it('rejects bad arguments with InvalidArgumentError and a stopped agent with ClosedError', async () => {
    const [a] = await start(1)
    await expect(a.consensus.propose('', 1)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.consensus.propose('k', undefined)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.consensus.propose('k', () => 1)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    // Values convert as JSON.stringify converts them (NaN is stored as null); a BigInt does not convert.
    await expect(a.consensus.propose('k', 10n)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.locks.acquire('k', 0)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.locks.acquire('k', -5)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.consensus.get('k', { bogus: true } as never)).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    await expect(a.consensus.delete('')).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.consensus.propose('k', 1, { expectedRevision: -1 })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    await expect(a.locks.tryAcquire('', 1000)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.locks.tryAcquire('k', Number.POSITIVE_INFINITY)).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    expect(() => a.elections('')).toThrow(expect.objectContaining({ name: 'InvalidArgumentError' }))
    expect(() => a.consensus.watch(42 as never)).toThrow(
      expect.objectContaining({ name: 'InvalidArgumentError' }),
    )
    await expect(a.join({ voters: 2 })).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    await expect(a.join({ bootstrap: ['not a multiaddr'] })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    await expect(a.join({ bootstrap: ['/ip4/127.0.0.1/tcp/1'] })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    // Nothing above reached the log: the store's revision is where it was, and nothing is locked.
    expect(await a.consensus.get('k')).toBeUndefined()
    const { revision } = await a.consensus.propose('probe', 1)
    expect(revision).toBe(1)
    expect((await a.locks.tryAcquire('k', 1000)).acquired).toBe(true)
    await a.stop()
    await expect(a.consensus.propose('k', 1)).rejects.toMatchObject({ name: 'ClosedError' })
    await a.stop()
  })
})
