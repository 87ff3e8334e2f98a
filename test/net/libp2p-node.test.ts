import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { waitFor } from './nodes.ts'

const nodes: Libp2p<ConclaveServices>[] = []

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

describe('createConclaveLibp2p', () => {
  it('starts a TCP node on loopback with the given identity, and pings another', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const a = await createConclaveLibp2p({ privateKey })
    const b = await createConclaveLibp2p({ transport: 'tcp' })
    nodes.push(a, b)
    expect(a.status).toBe('started')
    expect(a.peerId.equals(peerIdFromPrivateKey(privateKey))).toBe(true)
    expect(a.getMultiaddrs()[0].toString()).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    const rtt = await a.services.ping.ping(b.getMultiaddrs())
    expect(rtt).toBeGreaterThanOrEqual(0)
  })

  it('carries gossipsub messages between memory nodes', async () => {
    const a = await createConclaveLibp2p({ transport: 'memory' })
    const b = await createConclaveLibp2p({ transport: 'memory' })
    nodes.push(a, b)
    const topic = 'conclave/test'
    const received: string[] = []
    b.services.pubsub.addEventListener('message', evt => {
      if (evt.detail.topic === topic) received.push(new TextDecoder().decode(evt.detail.data))
    })
    b.services.pubsub.subscribe(topic)
    a.services.pubsub.subscribe(topic)
    await a.dial(b.getMultiaddrs())
    await waitFor(
      () => a.services.pubsub.getSubscribers(topic).some(peer => peer.equals(b.peerId)),
      'the subscription to reach a',
    )
    await a.services.pubsub.publish(topic, new TextEncoder().encode('hello'))
    await waitFor(() => received.length === 1, 'the message')
    expect(received).toEqual(['hello'])
  })

  it('rejects an unknown transport', async () => {
    await expect(createConclaveLibp2p({ transport: 'carrier-pigeon' as 'tcp' })).rejects.toThrow(TypeError)
  })
})
