/**
 * One-way RPC messages (`Rpc.sendOneWay`): the handler runs and nothing is written back; the frame rules,
 * the rate and the send-failure signal hold; and both directions of a mixed-version cluster work (a new
 * server answers an old caller's request, an old server's answer to a one-way message is dropped).
 */

import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { ClosedError } from '../../src/errors.ts'
import { encodeFrame, FrameDecoder, FrameError } from '../../src/net/frame.ts'
import { RpcConnectionError } from '../../src/net/rpc.ts'
import { decodeRpcFrame, encodeRpcFrame, type RpcFrame } from '../../src/net/rpc-codec.ts'
import { introducedPair, type TestNode, type TestNodeOptions, waitFor } from './nodes.ts'

const ECHO = '/conclave/test-echo/1.0.0'
const nodes: TestNode[] = []
const pair = (options: TestNodeOptions = {}) => introducedPair(nodes, options)

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

/** Collects the frames a raw stream receives. */
function framesOf(stream: { addEventListener(type: 'message', cb: (evt: { data: never }) => void): void }) {
  const decoder = new FrameDecoder()
  const frames: RpcFrame[] = []
  stream.addEventListener('message', evt => {
    decoder.push(evt.data)
    for (let bytes = decoder.next(); bytes !== undefined; bytes = decoder.next())
      frames.push(decodeRpcFrame(bytes))
  })
  return frames
}

describe('one-way rpc codec', () => {
  it('adds one varint field (6) after the fields of a request, which earlier decoders skip', () => {
    const body = new Uint8Array([1, 2, 3])
    const plain = encodeRpcFrame({ kind: 'request', id: 0, body })
    const oneWay = encodeRpcFrame({ kind: 'request', id: 0, body, oneWay: true })
    // Same fields, then tag 6/varint (0x30) = 1: a proto2 decoder of the old schema skips an unknown field.
    expect(Array.from(oneWay.subarray(1))).toEqual([...plain.subarray(1), 0x30, 0x01])
    const decoder = new FrameDecoder()
    decoder.push(oneWay)
    expect(decodeRpcFrame(decoder.next()!)).toStrictEqual({ kind: 'request', id: 0, body, oneWay: true })
  })

  it('refuses one_way on an answer, and a one_way that is not a bool', () => {
    const response = encodeRpcFrame({ kind: 'response', id: 3, body: new Uint8Array(1) })
    expect(() => decodeRpcFrame(new Uint8Array([...response.subarray(1), 0x30, 0x01]))).toThrow(FrameError)
    const error = encodeRpcFrame({ kind: 'error', id: 3, errorMessage: 'm', errorName: 'n' })
    expect(() => decodeRpcFrame(new Uint8Array([...error.subarray(1), 0x30, 0x01]))).toThrow(FrameError)
    const request = encodeRpcFrame({ kind: 'request', id: 0, body: new Uint8Array(1) })
    expect(() => decodeRpcFrame(new Uint8Array([...request.subarray(1), 0x30, 0x02]))).toThrow(FrameError)
    expect(() => decodeRpcFrame(new Uint8Array([...request.subarray(1), 0x32, 0x00]))).toThrow(FrameError)
  })
})

describe('one-way rpc', () => {
  it('runs the handler and writes nothing back; calls on the same stream are answered', async () => {
    const [a, b] = await pair()
    const got: number[] = []
    await b.services.rpc.registerRpc(ECHO, async request => {
      got.push(request[0])
      return request
    })
    const raw = await a.dialProtocol(b.peerId, ECHO)
    const frames = framesOf(raw as never)
    for (const n of [1, 2, 3])
      raw.send(encodeRpcFrame({ kind: 'request', id: 0, body: new Uint8Array([n]), oneWay: true }))
    raw.send(encodeRpcFrame({ kind: 'request', id: 7, body: new Uint8Array([4]) }))
    await waitFor(() => frames.length === 1 && got.length === 4, 'the answer to the call')
    // A moment for any stray answer to the one-way messages to arrive.
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(frames).toStrictEqual([{ kind: 'response', id: 7, body: new Uint8Array([4]) }])
    expect(got).toEqual([1, 2, 3, 4])
    expect(b.services.rpc.stats()).toMatchObject({ oneWayServed: 3, requestsServed: 4 })
  })

  it('delivers through sendOneWay, sharing the stream of calls', async () => {
    const [a, b] = await pair()
    const got: number[] = []
    await b.services.rpc.registerRpc(ECHO, async request => {
      got.push(request[0])
      // A handler's failure stays on the server: nobody is told.
      if (request[0] === 2) throw new Error('refused')
      return request
    })
    const peer = b.peerId.toString()
    await Promise.all([1, 2, 3].map(n => a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([n]))))
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([4])))).toEqual([4])
    await waitFor(() => got.length === 4, 'every message')
    expect(got.sort()).toEqual([1, 2, 3, 4])
    expect(a.services.rpc.stats()).toMatchObject({ oneWaySent: 3, oneWayFailed: 0, callsStarted: 1 })
  })

  it('rejects when the message cannot be sent: no such protocol, an unreachable peer, stopped, too large', async () => {
    const [a, b] = await pair({ rpc: { dialTimeoutMs: 1000, maxFrameBytes: 1024 } })
    await b.services.rpc.registerRpc(ECHO, async request => request)
    const peer = b.peerId.toString()
    await expect(a.services.rpc.sendOneWay(peer, '/nobody/1.0.0', new Uint8Array(1))).rejects.toBeInstanceOf(
      RpcConnectionError,
    )
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await expect(a.services.rpc.sendOneWay(ghost, ECHO, new Uint8Array(1))).rejects.toBeInstanceOf(
      RpcConnectionError,
    )
    await expect(a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array(2000))).rejects.toBeInstanceOf(
      FrameError,
    )
    expect(a.services.rpc.stats()).toMatchObject({ oneWaySent: 0, oneWayFailed: 2 })
    await a.services.rpc.stop()
    await expect(a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array(1))).rejects.toBeInstanceOf(ClosedError)
  })

  it('sends again on a new stream when the cached one closed before this side saw it', async () => {
    const [a, b] = await pair()
    const got: number[] = []
    await b.services.rpc.registerRpc(ECHO, async request => {
      got.push(request[0])
      return request
    })
    const peer = b.peerId.toString()
    await a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([1]))
    const channels = (
      a.services.rpc as unknown as { openChannels: Map<string, { stream: { close(): Promise<void> } }> }
    ).openChannels
    const [cached] = channels.values()
    void cached.stream.close()
    await a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([2]))
    await waitFor(() => got.length === 2, 'both messages')
  })

  it('resets only the stream of a bad one-way frame, and keeps serving', async () => {
    const [a, b] = await pair()
    const got: number[] = []
    await b.services.rpc.registerRpc(ECHO, async request => {
      got.push(request[0])
      return request
    })
    const peer = b.peerId.toString()
    await a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([1]))
    const raw = await a.dialProtocol(b.peerId, ECHO)
    const good = encodeRpcFrame({ kind: 'request', id: 0, body: new Uint8Array([9]) })
    // one_way = 2: not a bool.
    raw.send(encodeFrame(new Uint8Array([...good.subarray(1), 0x30, 0x02])))
    await waitFor(() => raw.status !== 'open', 'the stream to close')
    expect(raw.status).toBe('reset')
    expect(b.services.rpc.stats().resets).toBe(1)
    await a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([2]))
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([3])))).toEqual([3])
    await waitFor(() => got.length === 3, 'the messages on the healthy stream')
    expect(got).toEqual([1, 2, 3])
  })

  it('drops one-way messages over the rate, without a word back', async () => {
    const [a, b] = await pair({ rpc: { requestRate: { perSecond: 0.001, burst: 2 } } })
    let ran = 0
    await b.services.rpc.registerRpc(ECHO, async request => {
      ran++
      return request
    })
    const raw = await a.dialProtocol(b.peerId, ECHO)
    const frames = framesOf(raw as never)
    for (const n of [1, 2, 3, 4, 5])
      raw.send(encodeRpcFrame({ kind: 'request', id: 0, body: new Uint8Array([n]), oneWay: true }))
    raw.send(encodeRpcFrame({ kind: 'request', id: 8, body: new Uint8Array([6]) }))
    await waitFor(() => frames.length === 1, 'the refusal of the call')
    expect(frames[0]).toMatchObject({ kind: 'error', id: 8, errorName: 'RateLimitedError' })
    expect(ran).toBe(2)
    expect(b.services.rpc.stats().rateLimited).toBe(4)
    expect(raw.status).toBe('open')
  })
})

describe('one-way rpc across versions', () => {
  it('a caller drops the answer a server of an earlier version writes to a one-way message', async () => {
    const [a, b] = await pair()
    // The earlier server: skips field 6 and answers every request, with the request's id (0).
    const seen: RpcFrame[] = []
    await b.handle(ECHO, stream => {
      const decoder = new FrameDecoder()
      stream.addEventListener('message', evt => {
        decoder.push(evt.data)
        for (let bytes = decoder.next(); bytes !== undefined; bytes = decoder.next()) {
          const frame = decodeRpcFrame(bytes)
          if (frame.kind !== 'request') continue
          seen.push(frame)
          stream.send(encodeRpcFrame({ kind: 'response', id: frame.id, body: frame.body }))
        }
      })
    })
    const peer = b.peerId.toString()
    await a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([1]))
    await a.services.rpc.sendOneWay(peer, ECHO, new Uint8Array([2]))
    // The answers to both (id 0) arrive before this call's and name no call; the call gets its own.
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([3])))).toEqual([3])
    expect(seen.map(frame => frame.id)).toEqual([0, 0, 1])
    expect(a.services.rpc.stats()).toMatchObject({ resets: 0, callsSucceeded: 1, callsFailed: 0 })
  })
})
