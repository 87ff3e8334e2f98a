import type { GossipsubOpts } from '@libp2p/gossipsub'
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CONCLAVE_LIBP2P_DEFAULTS,
  type ConclaveLibp2pOptions,
  type ConclaveServices,
  createConclaveLibp2p,
} from '../../src/net/libp2p-node.ts'

const nodes: Libp2p<ConclaveServices>[] = []

async function node(options: ConclaveLibp2pOptions = {}): Promise<Libp2p<ConclaveServices>> {
  const created = await createConclaveLibp2p(options)
  nodes.push(created)
  return created
}

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(created => created.stop()))
})

/** Dials `target` from `count` fresh TCP nodes at once; how many got a connection. */
async function dialAtOnce(target: Libp2p<ConclaveServices>, count: number): Promise<number> {
  const dialers = await Promise.all(Array.from({ length: count }, () => node({ transport: 'tcp' })))
  const results = await Promise.allSettled(dialers.map(dialer => dialer.dial(target.getMultiaddrs())))
  return results.filter(result => result.status === 'fulfilled').length
}

/** The options gossipsub was built with (on the class, not its public interface). */
function optsOf(created: Libp2p<ConclaveServices>): GossipsubOpts {
  return (created.services.pubsub as unknown as { opts: GossipsubOpts }).opts
}

/** libp2p's private connection monitor, to read the setting it was built with; undefined when it runs none. */
function monitorOf(created: Libp2p<ConclaveServices>): { abortConnectionOnPingFailure: boolean } | undefined {
  try {
    return (
      created as unknown as { components: { connectionMonitor: { abortConnectionOnPingFailure: boolean } } }
    ).components.connectionMonitor
  } catch {
    // libp2p's components throw MissingServiceError for a component that was not configured.
    return undefined
  }
}

describe('libp2p defaults for many agents on one host', () => {
  it('accepts many inbound connections from one IP at once (libp2p refuses past 5/s)', async () => {
    const target = await node({ transport: 'tcp' })
    expect(await dialAtOnce(target, 12)).toBe(12)
    expect(CONCLAVE_LIBP2P_DEFAULTS.inboundConnectionThreshold).toBeGreaterThanOrEqual(50)
  })

  it('keeps the inbound connection rate overridable', async () => {
    const target = await node({ transport: 'tcp', connectionManager: { inboundConnectionThreshold: 2 } })
    const accepted = await dialAtOnce(target, 6)
    expect(accepted).toBeLessThan(6)
    expect(accepted).toBeGreaterThanOrEqual(2)
  })

  it('turns off the gossipsub IP colocation penalty, unless told otherwise', async () => {
    const plain = await node({ transport: 'memory' })
    expect(optsOf(plain).scoreParams.IPColocationFactorWeight).toBe(0)
    const tuned = await node({
      transport: 'memory',
      gossipsub: { scoreParams: { IPColocationFactorWeight: -2, IPColocationFactorThreshold: 3 } },
    })
    expect(optsOf(tuned).scoreParams.IPColocationFactorWeight).toBe(-2)
    expect(optsOf(tuned).scoreParams.IPColocationFactorThreshold).toBe(3)
    // The rest of gossipsub's options still apply.
    expect(optsOf(tuned).emitSelf).toBe(false)
  })

  it('runs gossipsub heartbeat and score decay every 3 s (one wake-up each), unless told otherwise', async () => {
    const plain = optsOf(await node({ transport: 'memory' }))
    expect(CONCLAVE_LIBP2P_DEFAULTS.gossipHeartbeatMs).toBe(3000)
    expect(plain.heartbeatInterval).toBe(3000)
    expect(plain.scoreParams.decayInterval).toBe(3000)
    // The behaviour penalty decays as fast in wall time as with gossipsub's default (0.2 a second).
    expect(plain.scoreParams.behaviourPenaltyDecay).toBeCloseTo(0.2 ** 3, 10)
    const tuned = optsOf(await node({ transport: 'memory', gossipsub: { heartbeatInterval: 700 } }))
    expect(tuned.heartbeatInterval).toBe(700)
    // Gossipsub refuses a decay interval under 1 s.
    expect(tuned.scoreParams.decayInterval).toBe(1000)
    expect(tuned.scoreParams.behaviourPenaltyDecay).toBeCloseTo(0.2, 10)
  })

  it('runs no connection monitor (no pings, no aborts), unless told otherwise', async () => {
    expect(monitorOf(await node({ transport: 'memory' }))).toBeUndefined()
    // Turned on, it still does not abort connections whose ping fails, unless told to.
    const monitored = await node({ transport: 'memory', connectionMonitor: { enabled: true } })
    expect(monitorOf(monitored)?.abortConnectionOnPingFailure).toBe(false)
    const strict = await node({
      transport: 'memory',
      connectionMonitor: { enabled: true, abortConnectionOnPingFailure: true },
    })
    expect(monitorOf(strict)?.abortConnectionOnPingFailure).toBe(true)
  })
})
