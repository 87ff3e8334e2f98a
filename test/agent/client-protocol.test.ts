import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CLIENT_PROTOCOL,
  type ClientOp,
  type ClientOps,
  ClientProtocolServer,
  MAX_CLIENT_REQUEST_BYTES,
} from '../../src/agent/api/client-protocol.ts'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { type Rpc, rpc } from '../../src/net/rpc.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

// Two agents on loopback TCP, and a bare libp2p node (not a member) calling them as the CLI does.
let agents: Agent[]
let client: Libp2p<{ rpc: Rpc }>
const encoder = new TextEncoder()
const decoder = new TextDecoder()

beforeAll(async () => {
  agents = [await createAgent({ name: 'p0' }), await createAgent({ name: 'p1' })]
  await agents[0].join({})
  await agents[1].join({ bootstrap: agents[0].multiaddrs() })
  await until(
    async () => (await agents[0].members()).filter(member => member.status === 'alive').length === 2,
  )
  client = await createConclaveLibp2p({ listen: [], services: { rpc: rpc() } })
  await client.dial(multiaddr(agents[1].multiaddrs()[0]))
})

afterAll(async () => {
  await client?.stop()
  await Promise.all((agents ?? []).map(agent => agent.stop()))
})

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** One request over the real protocol to agent p1. */
async function call<Op extends ClientOp>(
  op: Op,
  args: ClientOps[Op]['args'] | Record<string, unknown>,
  waitMs = 0,
): Promise<ClientOps[Op]['result']> {
  const response = await client.services.rpc.callRpc(
    agents[1].id,
    CLIENT_PROTOCOL,
    encoder.encode(JSON.stringify({ op, args })),
    { timeoutMs: 15_000 + waitMs },
  )
  return JSON.parse(decoder.decode(response))
}

async function remoteErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    return (err as { remoteName?: string }).remoteName ?? (err as Error).name
  }
  throw new Error('expected a rejection')
}

/** A server on p1's API called directly, with a short grace period. */
function directServer(graceMs: number): { server: ClientProtocolServer; close(): void; call: typeof call } {
  const closed = new AbortController()
  const server = new ClientProtocolServer({
    api: agents[1],
    currentRevision: () => 0,
    closed: closed.signal,
    scheduler: systemScheduler,
    graceMs,
  })
  const direct = (async (op: string, args: unknown) =>
    JSON.parse(
      decoder.decode(await server.handle(encoder.encode(JSON.stringify({ op, args })))),
    )) as typeof call
  return { server, close: () => closed.abort(), call: direct }
}

describe('client protocol', () => {
  it('status describes the members and the leader', async () => {
    const status = await call('status', {})
    expect(status.members.map(member => member.name).sort()).toEqual(['p0', 'p1'])
    expect([agents[0].id, agents[1].id]).toContain(status.leader)
    expect(status.agent.id).toBe(agents[1].id)
    expect(status.term).toBeGreaterThan(0)
    expect(status.healthy).toBe(true)
  })

  it('kv.events long-polls every change under a prefix, none skipped or repeated', async () => {
    const first = await call('kv.events', { prefix: 'ev/', waitMs: 0 })
    expect(first.events).toEqual([])
    let next = first.nextRevision
    const written: number[] = []
    const writing = (async () => {
      for (let i = 0; i < 60; i++) {
        const batch = [agents[0], agents[1], agents[0]].map((agent, j) =>
          agent.consensus.propose(j === 1 ? `other/${i}` : `ev/${i}-${j}`, i),
        )
        const revisions = await Promise.all(batch)
        written.push(revisions[0].revision, revisions[2].revision)
      }
    })()
    const seen: number[] = []
    let done = false
    let writtenAt = 0
    writing.then(() => {
      done = true
      writtenAt = Date.now()
    })
    while (!done || seen.length < written.length) {
      const answer = await call('kv.events', { prefix: 'ev/', fromRevision: next, waitMs: 200, maxEvents: 7 })
      expect(answer.events.length).toBeLessThanOrEqual(7)
      for (const event of answer.events) {
        expect(event.key.startsWith('ev/')).toBe(true)
        seen.push(event.revision)
      }
      expect(answer.nextRevision).toBeGreaterThanOrEqual(next)
      next = answer.nextRevision
      if (done && seen.length > written.length) break
      if (done && Date.now() > writtenAt + 10_000)
        throw new Error(`saw ${seen.length} of ${written.length} events`)
    }
    await writing
    expect(seen).toEqual([...written].sort((a, b) => a - b))
  })

  it('kv.events from an old revision replays the history first', async () => {
    const { revision } = await agents[0].consensus.propose('hist/a', 'x')
    await agents[0].consensus.propose('hist/b', 'y')
    // p1 may not have applied both yet: a poll answers as soon as it has one event.
    const seen: [string, unknown][] = []
    let next = revision
    while (seen.length < 2) {
      const answer = await call('kv.events', { prefix: 'hist/', fromRevision: next, waitMs: 1000 }, 1000)
      for (const event of answer.events) seen.push([event.key, event.value])
      next = answer.nextRevision
    }
    expect(seen).toEqual([
      ['hist/a', 'x'],
      ['hist/b', 'y'],
    ])
    expect(next).toBeGreaterThan(revision + 1)
  })

  it('answers kv.put, kv.get, kv.delete with conditional writes', async () => {
    const { revision } = await call('kv.put', { key: 'cas', value: { n: 1 } })
    expect(await call('kv.get', { key: 'cas' })).toEqual({ found: true, value: { n: 1 } })
    expect(
      await remoteErrorOf(call('kv.put', { key: 'cas', value: 2, expectedRevision: revision - 1 })),
    ).toBe('RevisionMismatchError')
    await call('kv.delete', { key: 'cas', expectedRevision: revision })
    expect(await call('kv.get', { key: 'cas', consistency: 'local' })).toEqual({ found: false })
  })

  it('rejects malformed and oversized requests with InvalidArgumentError', async () => {
    expect(await remoteErrorOf(call('frob' as ClientOp, {}))).toBe('InvalidArgumentError')
    expect(await remoteErrorOf(call('kv.get', { key: 5 }))).toBe('InvalidArgumentError')
    expect(await remoteErrorOf(call('kv.get', { key: 'a', extra: true }))).toBe('InvalidArgumentError')
    expect(await remoteErrorOf(call('kv.events', { waitMs: 10 ** 9 }))).toBe('InvalidArgumentError')
    expect(await remoteErrorOf(call('lock.acquire', { key: 'a', ttl: -1 }))).toBe('InvalidArgumentError')
    const big = 'x'.repeat(MAX_CLIENT_REQUEST_BYTES)
    expect(await remoteErrorOf(call('kv.put', { key: 'big', value: big }))).toBe('InvalidArgumentError')
    const notJson = client.services.rpc.callRpc(agents[1].id, CLIENT_PROTOCOL, encoder.encode('{op'))
    expect(await remoteErrorOf(notJson)).toBe('InvalidArgumentError')
    expect(await agents[0].consensus.get('big')).toBeUndefined()
  })

  it('lock.acquire waits first come first served, then extends and releases', async () => {
    const held = await agents[0].locks.acquire('proto-lock', 5000)
    const started = await call('lock.acquire', { key: 'proto-lock', ttl: 5000, waitMs: 100 }, 100)
    expect(started.acquired).toBe(false)
    await held.release()
    const polled = await call('lock.acquire', { handle: started.handle, waitMs: 5000 }, 5000)
    expect(polled.acquired).toBe(true)
    if (!polled.acquired) return
    expect(BigInt(polled.fencingToken)).toBeGreaterThan(held.fencingToken)
    await call('lock.extend', { handle: polled.handle, ttl: 5000 })
    expect((await agents[0].locks.tryAcquire('proto-lock', 1000)).acquired).toBe(false)
    await call('lock.release', { handle: polled.handle })
    const after = await agents[0].locks.tryAcquire('proto-lock', 1000)
    expect(after.acquired).toBe(true)
    await after.lock?.release()
    expect(await remoteErrorOf(call('lock.extend', { handle: polled.handle }))).toBe('LockLostError')
  })

  it('drops a pending acquisition whose client stops polling, and releases a lock granted meanwhile', async () => {
    const { server, close, call: direct } = directServer(300)
    try {
      const held = await agents[0].locks.acquire('abandoned', 5000)
      const started = await direct('lock.acquire', { key: 'abandoned', ttl: 10_000, waitMs: 50 })
      expect(started.acquired).toBe(false)
      await held.release()
      // Nobody polls again: within the grace the lock goes to the abandoned request, then back.
      const begin = Date.now()
      const next = await agents[0].locks.acquire('abandoned', 1000, { signal: AbortSignal.timeout(5000) })
      expect(Date.now() - begin).toBeLessThan(3000)
      await next.release()
      expect(server.leases.size).toBe(0)
    } finally {
      close()
    }
  })

  it('queues candidacies of one agent for the same election, and resigns an unrenewed leadership', async () => {
    const { call: direct, close } = directServer(300)
    try {
      const first = await direct('elect.campaign', { name: 'local-queue', ttl: 400, waitMs: 5000 })
      expect(first.elected).toBe(true)
      const second = await direct('elect.campaign', { name: 'local-queue', ttl: 10_000, waitMs: 150 })
      expect(second.elected).toBe(false)
      expect(await direct('elect.extend', { handle: first.handle })).toMatchObject({
        term: first.elected ? first.term : 0,
      })
      // The first client stops renewing: after its ttl the agent resigns it and the second leads.
      const won = await direct('elect.campaign', { handle: second.handle, waitMs: 5000 })
      expect(won.elected).toBe(true)
      if (!won.elected || !first.elected) return
      expect(won.term).toBeGreaterThan(first.term)
      expect(await remoteErrorOf(direct('elect.extend', { handle: first.handle }))).toBe(
        'LeadershipLostError',
      )
      await direct('elect.resign', { handle: won.handle })
      const other = agents[0].elections('local-queue')
      await other.campaign({ signal: AbortSignal.timeout(3000) })
      expect(other.term()).toBeGreaterThan(won.term)
      await other.resign()
    } finally {
      close()
    }
  })
})
