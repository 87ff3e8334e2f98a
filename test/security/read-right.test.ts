/**
 * The `read` right, and nothing readable before the identity exchange completes, over real TCP with SPIFFE
 * identities. A member whose SVID may `join` and `write` but not `read` gets `UnauthorizedError` from `get`,
 * `getEntry`, `list` and `watch` (reads were open to every identity before); one that may `read` reads.
 * An outsider that connects and subscribes to the SWIM topic receives no gossip while the agent does not
 * know who it is (it read a member's record there during the identity grace window before).
 */

import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { swimTopic } from '../../src/agent/cluster/swim-wire.ts'
import { UnauthorizedError } from '../../src/errors.ts'
import { type Agent, createAgent } from '../../src/index.ts'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import type { PolicyRule } from '../../src/security/policy.ts'
import { cluster, FAST, securityFor, TD, trustDomain, until } from './agents.ts'

const POLICY: PolicyRule[] = [
  { ids: [`spiffe://${TD}/agent/*`], allow: '*' },
  { ids: [`spiffe://${TD}/writer/*`], allow: ['join', 'write'] },
  { ids: [`spiffe://${TD}/reader/*`], allow: ['join', 'read'] },
]

const agents: Agent[] = []
const nodes: Libp2p[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(node => node.stop()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

function serviceOf(agent: Agent): { meta: { clusterId(): string | undefined } } {
  return (agent.libp2p.services as Record<string, unknown>).conclave as ReturnType<typeof serviceOf>
}

describe('the read right', () => {
  it('refuses get, getEntry, list and watch to a member without it, and allows them to one with it', async () => {
    const td = trustDomain()
    const [admin, writer, reader] = await cluster(agents, [
      { name: 'a', transport: 'tcp', security: securityFor(td, 'agent/a', { policy: POLICY }) },
      { name: 'w', transport: 'tcp', security: securityFor(td, 'writer/w', { policy: POLICY }) },
      { name: 'r', transport: 'tcp', security: securityFor(td, 'reader/r', { policy: POLICY }) },
    ])
    await writer.consensus.propose('k', 'v')
    await expect(writer.consensus.get('k')).rejects.toBeInstanceOf(UnauthorizedError)
    await expect(writer.consensus.getEntry('k')).rejects.toBeInstanceOf(UnauthorizedError)
    await expect(writer.consensus.list('')).rejects.toBeInstanceOf(UnauthorizedError)
    expect(() => writer.consensus.watch('')).toThrow(UnauthorizedError)
    // The one with `read`, and the one with every right, read what was written.
    await until(async () => (await reader.consensus.get('k').catch(() => undefined)) === 'v', 'the read')
    expect(await admin.consensus.get('k')).toBe('v')
    expect((await reader.consensus.list('')).entries.map(entry => entry.key)).toContain('k')
    const controller = new AbortController()
    const events = reader.consensus.watch('k', { fromRevision: 1, signal: controller.signal })
    for await (const event of events) {
      expect(event.key).toBe('k')
      controller.abort()
    }
    // Writes are refused to the reader, as before.
    await expect(reader.consensus.propose('k', 'mine')).rejects.toBeInstanceOf(UnauthorizedError)
  }, 60_000)
})

describe('before the identity exchange completes', () => {
  it('an outsider subscribed to the SWIM topic receives no gossip', async () => {
    const td = trustDomain()
    const [first] = await cluster(agents, [
      { name: 'a', transport: 'tcp', security: securityFor(td, 'agent/a', { policy: POLICY }) },
      { name: 'b', transport: 'tcp', security: securityFor(td, 'agent/b', { policy: POLICY }) },
    ])
    const topic = swimTopic(serviceOf(first).meta.clusterId()!)
    // No identity service: to the agent, it stays a peer whose identity is not known yet.
    const outsider: Libp2p<ConclaveServices> = await createConclaveLibp2p({ transport: 'tcp' })
    nodes.push(outsider)
    const heard: Uint8Array[] = []
    outsider.services.pubsub.addEventListener('message', evt => {
      if (evt.detail.topic === topic) heard.push(evt.detail.data)
    })
    outsider.services.pubsub.subscribe(topic)
    await outsider.dial(first.multiaddrs().map(address => multiaddr(address)))
    await until(() => outsider.services.pubsub.getSubscribers(topic).length >= 1, 'the agent on the topic')
    // News to gossip while the outsider listens: a member joins, another leaves.
    const joiner = await createAgent({
      ...FAST,
      name: 'c',
      transport: 'tcp',
      security: securityFor(td, 'agent/c', { policy: POLICY }),
    })
    agents.push(joiner)
    await joiner.join({ bootstrap: first.multiaddrs() })
    await until(
      async () => (await first.members()).some(member => member.id === joiner.id),
      'the joiner in the view',
    )
    await new Promise(resolve => setTimeout(resolve, 1_000))
    expect(heard).toHaveLength(0)
  }, 60_000)
})
