/**
 * Sockets that never finish their handshake, from one IP, must not starve the peers elsewhere: before the
 * per-IP cap, 70 of them filled libp2p's 64 places for inbound handshakes and the node refused every new
 * inbound connection. Real TCP sockets; the attacker dials from 127.0.0.2, the honest peer from 127.0.0.1.
 */

import { connect, type Socket } from 'node:net'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { type Agent, createAgent } from '../../src/index.ts'
import {
  CONCLAVE_LIBP2P_DEFAULTS,
  type ConclaveLibp2pOptions,
  type ConclaveServices,
  createConclaveLibp2p,
} from '../../src/net/libp2p-node.ts'
import { waitFor } from './nodes.ts'

const nodes: Libp2p<ConclaveServices>[] = []
const sockets: Socket[] = []
const agents: Agent[] = []

async function node(options: ConclaveLibp2pOptions = {}): Promise<Libp2p<ConclaveServices>> {
  const created = await createConclaveLibp2p({ transport: 'tcp', ...options })
  nodes.push(created)
  return created
}

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
  await Promise.all(nodes.splice(0).map(created => created.stop()))
})

/** `count` TCP sockets to `target` from 127.0.0.2 that send nothing; resolves once all are connected. */
async function halfOpen(target: Pick<Libp2p, 'getMultiaddrs'>, count: number): Promise<Socket[]> {
  const port = Number(
    target
      .getMultiaddrs()[0]!
      .getComponents()
      .find(c => c.name === 'tcp')!.value,
  )
  const opened = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () =>
            resolve(socket),
          )
          socket.on('error', () => {})
          socket.once('error', reject)
          sockets.push(socket)
        }),
    ),
  )
  return opened
}

function stillOpen(group: Socket[]): number {
  return group.filter(socket => !socket.destroyed && !socket.readableEnded).length
}

/** Whether `dialer` gets a connection to `target` (and a ping over it) within 5 s. */
async function connects(
  dialer: Libp2p<ConclaveServices>,
  target: Libp2p<ConclaveServices>,
): Promise<boolean> {
  try {
    await dialer.services.ping.ping(target.getMultiaddrs(), { signal: AbortSignal.timeout(5_000) })
    return true
  } catch {
    return false
  }
}

describe('inbound handshakes per IP', () => {
  it('70 half-open sockets from one IP leave room for an honest peer, and are closed at the handshake timeout', async () => {
    const target = await node({ connectionManager: { inboundUpgradeTimeout: 2_000 } })
    const attack = await halfOpen(target, 70)
    // Those over the cap are closed at once; the cap's worth wait for the handshake timeout.
    await waitFor(
      () => stillOpen(attack) === CONCLAVE_LIBP2P_DEFAULTS.maxPendingPerIp,
      'the sockets over the cap to close',
    )
    const honest = await node()
    expect(await connects(honest, target)).toBe(true)
    const another = await node()
    expect(await connects(another, target)).toBe(true)
    await waitFor(() => stillOpen(attack) === 0, 'the handshake timeout to close the rest', 5_000)
  })

  it('without the cap the same sockets lock every peer out (the attack this guards against)', async () => {
    const target = await node({ maxPendingPerIp: 1_000 })
    await halfOpen(target, 70)
    await new Promise(resolve => setTimeout(resolve, 200))
    const honest = await node()
    expect(await connects(honest, target)).toBe(false)
  })

  it('an agent under the same attack still lets an honest agent join its cluster', async () => {
    const founder = await createAgent({ name: 'a', transport: 'tcp', operationTimeoutMs: 10_000 })
    agents.push(founder)
    await founder.join({})
    const attack = await halfOpen(founder.libp2p, 70)
    await waitFor(
      () => stillOpen(attack) === CONCLAVE_LIBP2P_DEFAULTS.maxPendingPerIp,
      'the sockets over the cap to close',
    )
    const joiner = await createAgent({ name: 'b', transport: 'tcp', operationTimeoutMs: 10_000 })
    agents.push(joiner)
    await joiner.join({ bootstrap: founder.multiaddrs() })
    const { revision } = await joiner.consensus.propose('joined/under-attack', 1)
    expect(revision).toBeGreaterThan(0)
    expect((await founder.members()).map(member => member.id)).toContain(joiner.id)
  }, 60_000)

  it('refuses a cap that is not a positive integer', async () => {
    await expect(node({ maxPendingPerIp: 0 })).rejects.toThrow(RangeError)
  })
})
