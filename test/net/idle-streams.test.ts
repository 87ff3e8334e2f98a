/**
 * Streams bounded in time, both ways, over real TCP: an inbound RPC or Raft stream that is opened and never
 * written is closed within the idle timeout (it held one of the peer's few inbound places for good
 * before), an honest caller whose idle stream was closed is served on a new one, and a caller stops waiting
 * for an answer that trickles in (it waited for the whole call timeout, however long, before).
 */

import type { Stream } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { writeVarint } from '../../src/net/frame.ts'
import { RAFT_PROTOCOL } from '../../src/net/raft-transport.ts'
import { RpcConnectionError } from '../../src/net/rpc.ts'
import type { Message } from '../../src/raft/types.ts'
import { createTestNode, introduce, type TestNode, waitFor } from './nodes.ts'

const ECHO = '/conclave/test-echo/1.0.0'
const IDLE_MS = 600
const nodes: TestNode[] = []

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

async function pair(options: Parameters<typeof createTestNode>[0]): Promise<[TestNode, TestNode]> {
  const server = await createTestNode({ transport: 'tcp', ...options })
  const client = await createTestNode({ transport: 'tcp' })
  nodes.push(server, client)
  await introduce([server, client])
  return [server, client]
}

/** Resolves with the ms from now until `stream` is closed by the other side (remote write end or close). */
function closedBy(stream: Stream): Promise<number> {
  const start = performance.now()
  return new Promise(resolve => {
    const done = (): void => resolve(performance.now() - start)
    stream.addEventListener('remoteCloseWrite', done, { once: true })
    stream.addEventListener('close', done, { once: true })
  })
}

describe('idle inbound streams', () => {
  it('closes RPC streams that are opened and never written within the idle timeout', async () => {
    const [server, attacker] = await pair({ rpc: { idleTimeoutMs: IDLE_MS, frameTimeoutMs: 500 } })
    await server.services.rpc.registerRpc(ECHO, async request => request)
    const streams = await Promise.all([0, 1, 2, 3].map(() => attacker.dialProtocol(server.peerId, ECHO)))
    const closedAfter = await Promise.all(streams.map(closedBy))
    for (const ms of closedAfter) {
      expect(ms).toBeGreaterThan(IDLE_MS * 0.8)
      expect(ms).toBeLessThan(IDLE_MS + 2_000)
    }
    // The attacker never ends its side: the server resets the streams one frame timeout later.
    await waitFor(
      () => streams.every(stream => stream.status !== 'open'),
      'the idle streams to be reset',
      3_000,
    )
    expect(server.services.rpc.stats().idleClosed).toBe(4)
    // The places are free again: a fifth stream may open and is served.
    const echoed = await attacker.services.rpc.callRpc(server.peerId.toString(), ECHO, new Uint8Array([7]))
    expect([...echoed]).toEqual([7])
  })

  it('serves an honest caller whose stream went idle, on a new stream, without failing its calls', async () => {
    const [server, client] = await pair({ rpc: { idleTimeoutMs: IDLE_MS } })
    await server.services.rpc.registerRpc(ECHO, async request => request)
    const target = server.peerId.toString()
    let failures = 0
    // Calls at irregular gaps around the idle timeout, some racing the server's close.
    for (const gap of [0, IDLE_MS + 200, IDLE_MS - 5, IDLE_MS, IDLE_MS + 3, IDLE_MS * 2]) {
      await new Promise(resolve => setTimeout(resolve, gap))
      const calls = [1, 2, 3].map(n =>
        client.services.rpc.callRpc(target, ECHO, new Uint8Array([n])).catch(() => {
          failures++
        }),
      )
      await Promise.all(calls)
    }
    expect(failures).toBe(0)
    expect(server.services.rpc.stats().idleClosed).toBeGreaterThanOrEqual(2)
  })

  it('closes a Raft stream that is opened and never written, and later messages still arrive', async () => {
    const [server, client] = await pair({ raft: { idleTimeoutMs: IDLE_MS } })
    const received: Message[] = []
    server.services.raft.onMessage = msg => {
      received.push(msg)
    }
    const silent = await client.dialProtocol(server.peerId, RAFT_PROTOCOL)
    const ms = await closedBy(silent)
    expect(ms).toBeGreaterThan(IDLE_MS * 0.8)
    expect(ms).toBeLessThan(IDLE_MS + 2_000)
    const from = client.peerId.toString()
    const to = server.peerId.toString()
    const timeoutNow = (term: number): Message => ({ type: 'timeoutNow', from, to, term })
    client.services.raft.send(to, timeoutNow(1))
    await waitFor(() => received.length === 1, 'the first message')
    // Its stream goes idle and is closed; the next message goes on a new one.
    await waitFor(() => server.services.raft.stats().idleClosed >= 2, 'the idle close', 5_000)
    client.services.raft.send(to, timeoutNow(2))
    await waitFor(() => received.length === 2, 'the message after the idle close', 5_000)
  })
})

describe('answers that trickle in', () => {
  it('fails the call within the frame timeout, not the call timeout', async () => {
    const [caller, server] = await pair({ rpc: { frameTimeoutMs: 500 } })
    // A hostile server: answers every request with the start of a 1,000-byte frame, and never the rest.
    await server.handle(ECHO, stream => {
      stream.addEventListener('message', () => {
        const prefix = new Uint8Array(5)
        const length = writeVarint(prefix, 0, 1_000)
        stream.send(prefix.subarray(0, length))
        stream.send(new Uint8Array(10))
      })
    })
    const start = performance.now()
    const call = caller.services.rpc.callRpc(server.peerId.toString(), ECHO, new Uint8Array([1]), {
      timeoutMs: 20_000,
    })
    await expect(call).rejects.toBeInstanceOf(RpcConnectionError)
    const took = performance.now() - start
    expect(took).toBeGreaterThan(400)
    expect(took).toBeLessThan(3_000)
    expect(caller.services.rpc.stats().resets).toBe(1)
  })
})
