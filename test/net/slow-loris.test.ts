/**
 * Slow-loris over real TCP: 8 peer ids each open every inbound stream they may on two RPC protocols and
 * send nearly all of a 4 MiB frame, never the rest. Each such stream must be reset within the frame
 * timeout, no peer may make the server hold more than its budget, and an honest caller is served throughout.
 */

import type { Stream } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { writeVarint } from '../../src/net/frame.ts'
import { createTestNode, introduce, type TestNode } from './nodes.ts'

const ECHO = '/conclave/test-echo/1.0.0'
const OTHER = '/conclave/test-other/1.0.0'
const MiB = 1024 * 1024
const FRAME_TIMEOUT_MS = 1_000
const nodes: TestNode[] = []

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

/** Sends a prefix announcing `length` bytes and all but the last KiB of them, in 64 KiB writes. */
async function sendUnfinished(stream: Stream, length: number): Promise<void> {
  const prefix = new Uint8Array(5)
  const prefixLength = writeVarint(prefix, 0, length)
  stream.send(prefix.subarray(0, prefixLength))
  const chunk = new Uint8Array(64 * 1024).fill(0x41)
  for (let sent = 0; sent + chunk.byteLength < length - 1024; sent += chunk.byteLength) {
    if (stream.status !== 'open' || stream.writeStatus !== 'writable') return
    if (!stream.send(chunk)) {
      await new Promise<void>(resolve => {
        const done = (): void => {
          stream.removeEventListener('drain', done)
          stream.removeEventListener('close', done)
          resolve()
        }
        stream.addEventListener('drain', done)
        stream.addEventListener('close', done)
      })
    }
  }
}

describe('slow and unfinished frames', () => {
  it('resets streams whose frame never completes within the frame timeout, bounding what each peer holds', async () => {
    const server = await createTestNode({ transport: 'tcp', rpc: { frameTimeoutMs: FRAME_TIMEOUT_MS } })
    const honest = await createTestNode({ transport: 'tcp' })
    const attackers: TestNode[] = []
    for (let i = 0; i < 8; i++) attackers.push(await createTestNode({ transport: 'tcp' }))
    nodes.push(server, honest, ...attackers)
    await introduce([server, honest, ...attackers])
    await server.services.rpc.registerRpc(ECHO, async request => request)
    await server.services.rpc.registerRpc(OTHER, async request => request)
    const budget = 4 * 4 * MiB // the default: 4 frames of 4 MiB

    const rssBefore = process.memoryUsage().rss
    let peakBuffered = 0
    let peakOnePeer = 0
    let peakRss = rssBefore
    const sampler = setInterval(() => {
      const stats = server.services.rpc.stats()
      peakBuffered = Math.max(peakBuffered, stats.bufferedBytes)
      peakOnePeer = Math.max(peakOnePeer, stats.maxBufferedByOnePeer)
      peakRss = Math.max(peakRss, process.memoryUsage().rss)
    }, 20)

    // Each attacker: 4 streams on ECHO and 2 on OTHER, each with a frame of almost 4 MiB: 24 MiB, over
    // its budget, so some streams are reset at once; the others when the frame timeout passes.
    const closedAfter: number[] = []
    const attacks: Promise<void>[] = []
    for (const attacker of attackers) {
      for (const protocol of [ECHO, ECHO, ECHO, ECHO, OTHER, OTHER]) {
        const stream = await attacker.dialProtocol(server.peerId, protocol)
        const closed = new Promise<void>(resolve => stream.addEventListener('close', () => resolve()))
        attacks.push(
          sendUnfinished(stream, 4 * MiB - 64).then(async () => {
            const lastByte = performance.now()
            await closed
            closedAfter.push(performance.now() - lastByte)
          }),
        )
      }
    }
    // An honest caller is served meanwhile.
    const answer = await honest.services.rpc.callRpc(server.peerId.toString(), ECHO, new Uint8Array([7]))
    expect(Array.from(answer)).toEqual([7])
    const everyStreamClosed = Promise.all(attacks)
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error('slow streams still open')), 30_000),
    )
    await Promise.race([everyStreamClosed, timeout])
    clearInterval(sampler)

    expect(closedAfter).toHaveLength(48)
    // Closed within the frame timeout of their last byte (plus scheduling slack on a loaded machine).
    expect(Math.max(...closedAfter)).toBeLessThan(FRAME_TIMEOUT_MS + 1_500)
    expect(peakOnePeer).toBeLessThanOrEqual(budget)
    expect(peakBuffered).toBeLessThanOrEqual(8 * budget)
    expect(server.services.rpc.stats().bufferedBytes).toBe(0)
    expect(server.services.rpc.stats().resets).toBeGreaterThanOrEqual(48)
    // This process holds the 8 attackers too, so its peak is the server's budget (8 peers x 16 MiB) plus
    // what the attackers may have in flight (48 streams x a 4 MiB window) and garbage not yet collected:
    // 320 MiB at most, where the server alone grew to ~1 GiB before it bounded what a peer may hold.
    const grewMiB = (peakRss - rssBefore) / MiB
    expect(grewMiB, `RSS grew by ${grewMiB.toFixed(0)} MiB`).toBeLessThan(8 * 16 + 48 * 4)
    const again = await honest.services.rpc.callRpc(server.peerId.toString(), OTHER, new Uint8Array([8]))
    expect(Array.from(again)).toEqual([8])
  }, 60_000)
})
