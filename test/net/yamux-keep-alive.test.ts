import type { Connection, Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'

const nodes: Libp2p<ConclaveServices>[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(node => node.stop()))
})

/** The yamux muxer of a connection (libp2p's private field): its keep-alive task and last ping round trip. */
function muxerOf(connection: Connection): { keepAlive?: unknown; getRTT(): number } {
  return (connection as unknown as { muxer: { keepAlive?: unknown; getRTT(): number } }).muxer
}

/** Two TCP nodes, connected, after one full round trip of another protocol over that connection. */
async function connectedPair(yamuxKeepAliveMs?: number): Promise<Connection> {
  const options = yamuxKeepAliveMs === undefined ? {} : { yamuxKeepAliveMs }
  const a = await createConclaveLibp2p({ transport: 'tcp', ...options })
  const b = await createConclaveLibp2p({ transport: 'tcp', ...options })
  nodes.push(a, b)
  const connection = await a.dial(b.getMultiaddrs())
  // A keep-alive pings at once on both sides; the remote's pong precedes its answer on the same connection,
  // so after this round trip a ping that was sent has been answered.
  await a.services.ping.ping(b.peerId)
  return connection
}

describe('yamux keep-alive', () => {
  it('is off: an idle connection is not pinged by the muxer', async () => {
    const muxer = muxerOf(await connectedPair())
    expect(muxer.keepAlive).toBeUndefined()
    expect(muxer.getRTT()).toBe(-1)
  })

  it('is on with yamuxKeepAliveMs', async () => {
    const muxer = muxerOf(await connectedPair(30_000))
    expect(muxer.keepAlive).toBeDefined()
    expect(muxer.getRTT()).toBeGreaterThanOrEqual(0)
  })
})
