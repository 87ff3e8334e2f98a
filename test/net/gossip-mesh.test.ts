/**
 * Gossipsub's mesh is small (`CONCLAVE_LIBP2P_DEFAULTS.gossipMesh`): a message still reaches every subscriber,
 * and each receives it a few times, not once per peer of gossipsub's default mesh of 6 to 12.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CONCLAVE_LIBP2P_DEFAULTS,
  type ConclaveServices,
  createConclaveLibp2p,
} from '../../src/net/libp2p-node.ts'

const TOPIC = 'conclave/test/mesh'
const NODES = 7
const nodes: Libp2p<ConclaveServices>[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(node => node.stop()))
})

/** The node's mesh peers on the topic (gossipsub's class has them; its public interface does not). */
function meshOf(node: Libp2p<ConclaveServices>): string[] {
  return (node.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }).getMeshPeers(TOPIC)
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Counts the copies of each message that reach `node`'s gossipsub, duplicates included. */
function countCopies(node: Libp2p<ConclaveServices>): { copies: number } {
  const counter = { copies: 0 }
  const pubsub = node.services.pubsub as unknown as {
    handleReceivedMessage(from: PeerId, message: unknown): Promise<void>
  }
  const original = pubsub.handleReceivedMessage.bind(pubsub)
  pubsub.handleReceivedMessage = (from, message) => {
    counter.copies++
    return original(from, message)
  }
  return counter
}

describe('gossipsub mesh', () => {
  it('brings a message to every subscriber, each receiving it at most once per mesh peer and once from its publisher', async () => {
    for (let i = 0; i < NODES; i++) nodes.push(await createConclaveLibp2p({ transport: 'memory' }))
    // Every node connected to every other, as SWIM's probes leave them.
    await Promise.all(
      nodes.flatMap((node, i) => nodes.slice(i + 1).map(other => node.dial(other.getMultiaddrs()))),
    )
    const delivered = nodes.map(() => 0)
    nodes.forEach((node, i) => {
      node.services.pubsub.addEventListener('message', () => {
        delivered[i]++
      })
      node.services.pubsub.subscribe(TOPIC)
    })
    const { Dlo, Dhi } = CONCLAVE_LIBP2P_DEFAULTS.gossipMesh
    // Gossipsub accepts a graft from an outbound peer over Dhi and prunes back at its next heartbeat, so a
    // mesh may briefly be larger (seen on a loaded machine): wait for every mesh to settle within the bounds.
    const settled = () => nodes.every(node => meshOf(node).length >= Dlo && meshOf(node).length <= Dhi)
    await until(settled, 20_000, `meshes formed within ${Dlo}-${Dhi} peers`)
    const counters = nodes.map(countCopies)
    await nodes[0].services.pubsub.publish(TOPIC, new TextEncoder().encode('alive'))
    await until(() => delivered.slice(1).every(count => count === 1), 10_000, 'delivered everywhere')
    // Forwarding is done once every node handled its copies (a short settle for the last duplicates).
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(delivered.slice(1)).toEqual(Array(NODES - 1).fill(1))
    for (const counter of counters.slice(1)) expect(counter.copies).toBeLessThanOrEqual(Dhi + 1)
  }, 40_000)
})
