import { afterEach, describe, expect, it } from 'vitest'
import type { Agent, ConsensusEvent } from '../../src/index.ts'
import { ConclaveService, conclave, createAgent } from '../../src/index.ts'
import { createConclaveLibp2p } from '../../src/net/libp2p-node.ts'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map(cleanup => cleanup()))
})

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

async function agent(options: Parameters<typeof createAgent>[0] = {}): Promise<Agent> {
  const created = await createAgent(options)
  cleanups.push(() => created.stop())
  return created
}

describe('the conclave() libp2p service', () => {
  it('embeds in a libp2p node the user builds, and joins agents made by createAgent', async () => {
    const node = await createConclaveLibp2p({ services: { conclave: conclave({ name: 'embedded' }) } })
    cleanups.push(async () => {
      await node.stop()
    })
    const service = node.services.conclave
    expect(service).toBeInstanceOf(ConclaveService)
    await service.join({})
    const other = await agent({ name: 'standalone' })
    await other.join({ bootstrap: service.multiaddrs() })
    await other.consensus.propose('from/standalone', 1)
    expect(await service.consensus.get('from/standalone')).toBe(1)
    const names = (await service.members()).map(member => member.name).sort()
    expect(names).toEqual(['embedded', 'standalone'])
  })
})

describe('replication edge cases', () => {
  it('a watch on a follower sees every revision once, in order, across a leader change', async () => {
    const group: Agent[] = []
    for (let i = 0; i < 3; i++) group.push(await agent({ name: `w${i}`, sessionTtlMs: 1500 }))
    await group[0].join({})
    for (const member of group.slice(1)) await member.join({ bootstrap: group[0].multiaddrs() })
    await until(async () => (await group[0].members()).filter(m => m.role === 'voter').length === 3)
    const leader = group.find(member => member.isLeader())!
    const [watcher, writer] = group.filter(member => member !== leader)
    const seen: ConsensusEvent[] = []
    const controller = new AbortController()
    const watching = (async () => {
      for await (const event of watcher.consensus.watch('x/', { signal: controller.signal })) seen.push(event)
    })()
    for (let i = 0; i < 20; i++) await writer.consensus.propose(`x/${i}`, i)
    await leader.stop()
    for (let i = 20; i < 40; i++) await writer.consensus.propose(`x/${i}`, i)
    await until(() => seen.length >= 40)
    controller.abort()
    await watching
    expect(seen.map(event => event.value)).toEqual(Array.from({ length: 40 }, (_, i) => i))
    for (let i = 1; i < seen.length; i++) expect(seen[i].revision).toBe(seen[i - 1].revision + 1)
  })

  it('a new agent joining after the log was compacted catches up from a snapshot', async () => {
    const first = await agent({ name: 's0', snapshotEntries: 50 })
    await first.join({})
    for (let i = 0; i < 200; i++) await first.consensus.propose(`snap/${i}`, { i })
    const late = await agent({ name: 's1', snapshotEntries: 50 })
    await late.join({ bootstrap: first.multiaddrs() })
    for (const i of [0, 99, 199]) expect(await late.consensus.get(`snap/${i}`)).toEqual({ i })
    expect(await late.consensus.get('snap/150', { consistency: 'local' })).toEqual({ i: 150 })
    const events: ConsensusEvent[] = []
    for await (const event of late.consensus.watch('snap/', {
      fromRevision: 190,
      signal: AbortSignal.timeout(500),
    })) {
      events.push(event)
      if (events.length === 10) break
    }
    // Revisions count KV mutations from 1: revision 190 is the 190th put, snap/189.
    expect(events.map(event => event.key)).toEqual(Array.from({ length: 10 }, (_, i) => `snap/${189 + i}`))
    expect(events[0].revision).toBe(190)
  })
})
