import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { FaultLayer } from '../../scripts/chaos/fault-layer.ts'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'

// The chaos suite's partitions: what a fault layer in one node lets through, on real libp2p nodes.
type Node = Libp2p<ConclaveServices>
const nodes: Node[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(node => node.stop()))
})

async function node(layer?: FaultLayer): Promise<Node> {
  const created = await createConclaveLibp2p({ transport: 'memory', connectionGater: layer?.gater })
  layer?.attach(created)
  nodes.push(created)
  return created
}

async function reaches(from: Node, to: Node): Promise<boolean> {
  try {
    await from.services.ping.ping(to.getMultiaddrs()[0], { signal: AbortSignal.timeout(2000) })
    return true
  } catch {
    return false
  }
}

describe('the fault layer', () => {
  it('cuts both ways with deny and closes the connections already open; heals when cleared', async () => {
    const layer = new FaultLayer()
    const a = await node(layer)
    const b = await node()
    expect(await reaches(a, b)).toBe(true)
    await layer.apply({ deny: [b.peerId.toString()], dropOutbound: [] })
    expect(a.getConnections(b.peerId)).toHaveLength(0)
    expect(await reaches(a, b)).toBe(false)
    expect(await reaches(b, a)).toBe(false)
    await layer.apply({ deny: [], dropOutbound: [] })
    expect(await reaches(a, b)).toBe(true)
    expect(await reaches(b, a)).toBe(true)
  })

  it('cuts one way with dropOutbound: no stream from this node, the peer still reaches it', async () => {
    const layer = new FaultLayer()
    const a = await node(layer)
    const b = await node()
    const c = await node()
    expect(await reaches(a, b)).toBe(true)
    const open = await a.dialProtocol(b.peerId, '/ipfs/ping/1.0.0')
    await layer.apply({ deny: [], dropOutbound: [b.peerId.toString()] })
    expect(open.status).not.toBe('open')
    expect(await reaches(a, b)).toBe(false)
    expect(await reaches(b, a)).toBe(true)
    // Other peers are not affected, and connections set up later are hooked too.
    expect(await reaches(a, c)).toBe(true)
    await layer.apply({ deny: [], dropOutbound: [c.peerId.toString()] })
    expect(await reaches(a, c)).toBe(false)
    expect(await reaches(a, b)).toBe(true)
  })
})
