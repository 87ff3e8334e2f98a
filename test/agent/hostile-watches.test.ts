/**
 * Watch and waiter slots per client peer, over real TCP: 42 peer ids (not members, security off) each open
 * every client-protocol stream they may and start as many 60 s `kv.events` long polls as the streams run. Before per-client limits they filled the agent's 10,000 watches (its own
 * `watch()` failed with `LimitExceededError`) and the slots stayed taken after they disconnected.
 */

import type { Libp2p, Stream } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_POLLS_PER_CLIENT } from '../../src/agent/api/client-protocol.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import { type Agent, createAgent } from '../../src/index.ts'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { encodeRpcFrame } from '../../src/net/rpc-codec.ts'

const PEERS = 42
/** Per stream: more than the 64 requests an RPC stream runs at once. */
const REQUESTS_PER_STREAM = 70
const STREAMS_PER_PEER = 4

let agent: Agent
const clients: Libp2p<ConclaveServices>[] = []

interface Quotas {
  watchers: { size: number }
}

function quotas(): Quotas {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { replica: Quotas }).replica
}

async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

beforeAll(async () => {
  agent = await createAgent({ name: 'w', transport: 'tcp' })
  await agent.join({})
  await agent.consensus.propose('k', 0)
  for (let i = 0; i < PEERS; i++) clients.push(await createConclaveLibp2p({ transport: 'tcp' }))
}, 60_000)

afterAll(async () => {
  await Promise.all(clients.map(client => client.stop()))
  await agent?.stop()
})

function request(id: number, op: string, args: Record<string, unknown>): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify({ op, args }))
  return encodeRpcFrame({ kind: 'request', id, body })
}

describe('client slots per peer', () => {
  it("keep 42 peer ids from filling the agent's watches, and are freed when they disconnect", async () => {
    const { watchers } = quotas()
    const streams: Stream[] = []
    let id = 0
    for (const client of clients) {
      for (let s = 0; s < STREAMS_PER_PEER; s++) {
        const stream = await client.dialProtocol(agent.libp2p.getMultiaddrs(), '/conclave/client/1.0.0')
        streams.push(stream)
        for (let r = 0; r < REQUESTS_PER_STREAM; r++) {
          const frame = request(++id, 'kv.events', { prefix: 'k', waitMs: 60_000 })
          stream.send(frame)
        }
      }
    }
    // Every peer has as many long polls running as it may (before the limits: 4 x 64 each, 10,752).
    await until(() => watchers.size >= PEERS * MAX_POLLS_PER_CLIENT, 'the long polls to run')
    await new Promise(resolve => setTimeout(resolve, 1_000))
    expect(watchers.size).toBe(PEERS * MAX_POLLS_PER_CLIENT)
    // The agent's own watches still open.
    const controller = new AbortController()
    const own = agent.consensus.watch('k', { signal: controller.signal })[Symbol.asyncIterator]()
    const first = own.next()
    await agent.consensus.propose('k', 1)
    expect((await first).value?.value).toBe(1)
    controller.abort()
    await own.return?.()

    // They go away: their watches end at once.
    const heldBefore = watchers.size
    expect(heldBefore).toBeGreaterThan(0)
    for (const stream of streams) stream.abort(new Error('gone'))
    await until(() => watchers.size === 0, 'the watches to be freed', 3_000)
  }, 120_000)
})
