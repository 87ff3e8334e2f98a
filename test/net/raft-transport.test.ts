import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeFrame, writeVarint } from '../../src/net/frame.ts'
import { encodeRaftFrame } from '../../src/net/raft-codec.ts'
import { RAFT_PROTOCOL } from '../../src/net/raft-transport.ts'
import type { Message } from '../../src/raft/types.ts'
import { smallAppend } from './arbitraries.ts'
import {
  createTestNode,
  introduce,
  introducedPair,
  type TestNode,
  type TestNodeOptions,
  waitFor,
} from './nodes.ts'

const nodes: TestNode[] = []

const pair = (options: TestNodeOptions = {}, receiverOptions = options) =>
  introducedPair(nodes, options, receiverOptions)

afterEach(async () => {
  // One at a time: memory connections closed from both ends at once wait out a 500 ms close timeout.
  for (const node of nodes.splice(0)) await node.stop()
})

/** Collects append indexes received by `node`, checking they only ever increase. */
function collect(node: TestNode): { indexes: number[]; from: string[] } {
  const received = { indexes: [] as number[], from: [] as string[] }
  node.services.raft.onMessage = (msg, from) => {
    if (msg.type !== 'append') throw new Error(`unexpected ${msg.type}`)
    received.indexes.push(msg.entries[0].index)
    received.from.push(from)
  }
  return received
}

function expectIncreasing(indexes: number[]): void {
  for (let i = 1; i < indexes.length; i++) {
    if (indexes[i] <= indexes[i - 1])
      throw new Error(`order broken at ${i}: ${indexes[i - 1]} then ${indexes[i]}`)
  }
}

/** Sends appends first..last from a to b, yielding to the event loop every `batch` messages. */
async function sendAppends(
  a: TestNode,
  b: TestNode,
  first: number,
  last: number,
  batch = 1000,
): Promise<void> {
  const from = a.peerId.toString()
  const to = b.peerId.toString()
  for (let index = first; index <= last; index++) {
    expect(a.services.raft.send(to, smallAppend(from, to, index))).toBe(true)
    if (index % batch === 0) await new Promise(resolve => setImmediate(resolve))
  }
}

/** Resolves once the stream has closed; fails the test after 5 s rather than hanging. */
async function closed(stream: {
  addEventListener(type: 'close', listener: () => void): void
  status: string
}) {
  if (stream.status === 'reset' || stream.status === 'aborted' || stream.status === 'closed') return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('stream still open after 5 s')), 5_000)
    stream.addEventListener('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

describe('raft transport', () => {
  it('delivers 10,000 messages in order over one stream (memory transport)', async () => {
    const [a, b] = await pair()
    const received = collect(b)
    await sendAppends(a, b, 1, 10_000)
    await waitFor(() => received.indexes.length === 10_000, 'all messages')
    expect(received.indexes).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1))
    expect(new Set(received.from)).toEqual(new Set([a.peerId.toString()]))
    const sent = a.services.raft.stats()
    expect(sent).toMatchObject({ sent: 10_000, dropped: 0, streamsOpened: 1, dialFailures: 0 })
    expect(b.services.raft.stats()).toMatchObject({ received: 10_000, resets: 0 })
    expect(b.services.raft.stats().bytesReceived).toBe(sent.bytesSent)
  })

  it('delivers 10,000 messages in order over TCP loopback', async () => {
    const [a, b] = await pair({ transport: 'tcp' })
    const received = collect(b)
    await sendAppends(a, b, 1, 10_000)
    await waitFor(() => received.indexes.length === 10_000, 'all messages')
    expect(received.indexes).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1))
    expect(a.services.raft.stats()).toMatchObject({ sent: 10_000, dropped: 0, streamsOpened: 1 })
  })

  it('coalesces the messages sent in one turn into one write after the first', async () => {
    const [a, b] = await pair()
    const received = collect(b)
    await sendAppends(a, b, 1, 1)
    await waitFor(() => received.indexes.length === 1, 'the stream to open')
    const before = a.services.raft.stats().writes
    // All in one synchronous run: the first goes at once, the other 1,999 in one write.
    await sendAppends(a, b, 2, 2_000, Number.POSITIVE_INFINITY)
    await waitFor(() => received.indexes.length === 2_000, 'all messages')
    expectIncreasing(received.indexes)
    expect(a.services.raft.stats().writes - before).toBe(2)
  })

  it('keeps order and loses nothing with a slow reader', async () => {
    const [a, b] = await pair()
    const indexes: number[] = []
    b.services.raft.onMessage = async msg => {
      if (msg.type === 'append') indexes.push(msg.entries[0].index)
      // Slow: every 50th message waits for a timer, and the stream stays paused meanwhile.
      if (indexes.length % 50 === 0) await new Promise(resolve => setTimeout(resolve, 2))
    }
    const total = 10_000
    await sendAppends(a, b, 1, total, 2_500)
    await waitFor(() => indexes.length === total, 'all messages', 20_000)
    expect(indexes).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    expect(a.services.raft.stats().dropped).toBe(0)
  })

  it('holds the writer back while the reader is paused, through the muxer flow control', async () => {
    const [a, b] = await pair()
    const indexes: number[] = []
    const gate = Promise.withResolvers<void>()
    b.services.raft.onMessage = msg => {
      if (msg.type === 'append') indexes.push(msg.entries[0].index)
      if (indexes.length === 1) return gate.promise
    }
    const to = b.peerId.toString()
    // Small turns (about 20 KB each), so only the reader can make the stream ask to drain.
    const total = 5_000
    await sendAppends(a, b, 1, total, 100)
    await waitFor(() => a.services.raft.queuedBytes(to) > 0, 'the writer to queue')
    expect(a.services.raft.stats().drainWaits).toBeGreaterThan(0)
    expect(indexes).toEqual([1])
    gate.resolve()
    await waitFor(() => indexes.length === total, 'all messages')
    expect(indexes).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    expect(a.services.raft.stats().dropped).toBe(0)
  })

  it('bounds the queue by dropping the oldest messages, and still keeps order', async () => {
    const limits = { raft: { maxFrameBytes: 8 * 1024, maxQueueBytes: 32 * 1024 } }
    const [a, b] = await pair(limits)
    const indexes: number[] = []
    const gate = Promise.withResolvers<void>()
    b.services.raft.onMessage = msg => {
      if (msg.type === 'append') indexes.push(msg.entries[0].index)
      // The first message holds the stream paused until the gate opens.
      if (indexes.length === 1) return gate.promise
    }
    const to = b.peerId.toString()
    const total = 20_000
    await sendAppends(a, b, 1, total, 500)
    await waitFor(() => a.services.raft.stats().dropped > 0, 'drops')
    expect(a.services.raft.queuedBytes(to)).toBeLessThanOrEqual(32 * 1024)
    gate.resolve()
    await waitFor(() => indexes.at(-1) === total, 'the newest message')
    await new Promise(resolve => setTimeout(resolve, 50))
    expectIncreasing(indexes)
    const stats = a.services.raft.stats()
    // Every message was either written or dropped, and everything written arrived.
    expect(stats.sent + stats.dropped).toBe(total)
    expect(indexes.length).toBe(stats.sent)
    expect(stats.dropped).toBeGreaterThan(total / 2)
  })

  it('resets a stream carrying garbage, logs it, and keeps serving new streams', async () => {
    const [a, b] = await pair()
    const received = collect(b)
    const raw = await a.dialProtocol(b.peerId, RAFT_PROTOCOL)
    raw.send(encodeFrame(new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02])))
    await closed(raw)
    expect(raw.status).toBe('reset')
    expect(b.services.raft.stats().resets).toBe(1)
    expect(received.indexes).toEqual([])

    // A fresh raw stream of the protocol works.
    const from = a.peerId.toString()
    const to = b.peerId.toString()
    const fresh = await a.dialProtocol(b.peerId, RAFT_PROTOCOL)
    fresh.send(encodeRaftFrame(smallAppend(from, to, 1)))
    await waitFor(() => received.indexes.length === 1, 'message on the fresh stream')
    // And so does the transport's own stream.
    await sendAppends(a, b, 2, 100)
    await waitFor(() => received.indexes.length === 100, 'transport messages')
    expectIncreasing(received.indexes)
    expect(b.services.raft.stats().resets).toBe(1)
  })

  it('resets a stream announcing a frame over the size limit', async () => {
    const [a, b] = await pair({ raft: { maxFrameBytes: 1024 } })
    const raw = await a.dialProtocol(b.peerId, RAFT_PROTOCOL)
    const prefix = new Uint8Array(2)
    writeVarint(prefix, 0, 1025)
    raw.send(prefix)
    await closed(raw)
    expect(raw.status).toBe('reset')
    expect(b.services.raft.stats().resets).toBe(1)
  })

  it('rejects a frame whose from is another peer', async () => {
    const [a, b] = await pair()
    const received = collect(b)
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const raw = await a.dialProtocol(b.peerId, RAFT_PROTOCOL)
    raw.send(encodeRaftFrame(smallAppend(other, b.peerId.toString(), 1)))
    await closed(raw)
    expect(raw.status).toBe('reset')
    expect(received.indexes).toEqual([])
    expect(b.services.raft.stats()).toMatchObject({ resets: 1, received: 0 })
    // A message addressed to another node is refused as well.
    const misaddressed = await a.dialProtocol(b.peerId, RAFT_PROTOCOL)
    misaddressed.send(encodeRaftFrame(smallAppend(a.peerId.toString(), other, 1)))
    await closed(misaddressed)
    expect(b.services.raft.stats()).toMatchObject({ resets: 2, received: 0 })
  })

  it('reconnects after closePeer on either side', async () => {
    const [a, b] = await pair()
    const received = collect(b)
    await sendAppends(a, b, 1, 10)
    await waitFor(() => received.indexes.length === 10, 'first messages')

    a.services.raft.closePeer(b.peerId.toString())
    await sendAppends(a, b, 11, 20)
    await waitFor(() => received.indexes.length === 20, 'messages after the sender closed')
    expect(a.services.raft.stats().streamsOpened).toBe(2)

    // The receiver cuts the stream: the sender notices and reopens (after a short backoff).
    b.services.raft.closePeer(a.peerId.toString())
    await waitFor(() => a.services.raft.queuedBytes(b.peerId.toString()) === 0, 'idle sender')
    await new Promise(resolve => setTimeout(resolve, 20))
    let next = 21
    await waitFor(() => {
      a.services.raft.send(b.peerId.toString(), smallAppend(a.peerId.toString(), b.peerId.toString(), next++))
      return received.indexes.length > 20
    }, 'messages after the receiver closed')
    expectIncreasing(received.indexes)
    expect(a.services.raft.stats().streamsOpened).toBe(3)
  })

  it('drops messages for an unreachable peer and backs off without throwing', async () => {
    const [a] = await pair({ raft: { dialTimeoutMs: 500 } }, { raft: { dialTimeoutMs: 500 } })
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const msg: Message = { type: 'timeoutNow', from: a.peerId.toString(), to: ghost, term: 1 }
    expect(a.services.raft.send(ghost, msg)).toBe(true)
    await waitFor(() => a.services.raft.stats().dialFailures === 1, 'the dial failure')
    expect(a.services.raft.stats().dropped).toBe(1)
    // Within the backoff the message waits; it is not dialled again at once.
    a.services.raft.send(ghost, msg)
    expect(a.services.raft.stats().dialFailures).toBe(1)
    expect(a.services.raft.send('not a peer id', msg)).toBe(false)
    expect(a.services.raft.send(ghost, { ...msg, term: -1 })).toBe(false)
  })

  it('drops sends after stop and leaves the other node serving', async () => {
    const [a, b] = await pair()
    const received = collect(b)
    await a.services.raft.stop()
    expect(
      a.services.raft.send(b.peerId.toString(), smallAppend(a.peerId.toString(), b.peerId.toString(), 1)),
    ).toBe(false)
    const c = await createTestNode()
    nodes.push(c)
    await introduce([b, c])
    await sendAppends(c, b, 1, 5)
    await waitFor(() => received.indexes.length === 5, 'messages from another node')
  })
})
