import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { AbortError, ClosedError, InvalidArgumentError } from '../../src/errors.ts'
import { encodeFrame, FrameDecoder, FrameError } from '../../src/net/frame.ts'
import { RpcConnectionError, RpcRemoteError, RpcTimeoutError } from '../../src/net/rpc.ts'
import { decodeRpcFrame, encodeRpcFrame, type RpcFrame } from '../../src/net/rpc-codec.ts'
import { introducedPair, type TestNode, type TestNodeOptions, waitFor } from './nodes.ts'

const ECHO = '/conclave/test-echo/1.0.0'
const nodes: TestNode[] = []
const text = new TextEncoder()
const untext = new TextDecoder()

const pair = (options: TestNodeOptions = {}) => introducedPair(nodes, options)

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

describe('rpc codec', () => {
  it('round-trips frames and throws only FrameError on random bytes', () => {
    const frameArb: fc.Arbitrary<RpcFrame> = fc.oneof(
      fc.record(
        {
          kind: fc.constantFrom('request' as const, 'response' as const),
          id: fc.maxSafeNat(),
          body: fc.uint8Array(),
        },
        { noNullPrototype: true },
      ),
      fc.record(
        {
          kind: fc.constant('error' as const),
          id: fc.maxSafeNat(),
          errorMessage: fc.string({ unit: 'grapheme' }),
          errorName: fc.string({ unit: 'grapheme' }),
        },
        { noNullPrototype: true },
      ),
    )
    fc.assert(
      fc.property(frameArb, frame => {
        const decoder = new FrameDecoder()
        decoder.push(encodeRpcFrame(frame))
        expect(decodeRpcFrame(decoder.next()!)).toStrictEqual(frame)
      }),
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), bytes => {
        try {
          decodeRpcFrame(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(FrameError)
        }
      }),
      { numRuns: 3000 },
    )
  })
})

describe('rpc', () => {
  it('answers calls, including empty and large bodies', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, async (request, from) =>
      text.encode(`${from === a.peerId.toString() ? 'a' : '?'}:${untext.decode(request)}`),
    )
    const peer = b.peerId.toString()
    expect(untext.decode(await a.services.rpc.callRpc(peer, ECHO, text.encode('hi')))).toBe('a:hi')
    expect(untext.decode(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array(0)))).toBe('a:')
    const big = 'x'.repeat(1_000_000)
    expect(untext.decode(await a.services.rpc.callRpc(peer, ECHO, text.encode(big)))).toBe(`a:${big}`)
  })

  it('runs concurrent calls on one stream and pairs every answer with its request', async () => {
    const [a, b] = await pair()
    let running = 0
    let mostRunning = 0
    await b.services.rpc.registerRpc(ECHO, async request => {
      running++
      mostRunning = Math.max(mostRunning, running)
      // Answers come back out of order.
      await sleep(request[0] % 7)
      running--
      return request
    })
    const peer = b.peerId.toString()
    const calls = Array.from({ length: 300 }, (_, i) =>
      a.services.rpc.callRpc(peer, ECHO, new Uint8Array([i & 255, i >> 8])),
    )
    const answers = await Promise.all(calls)
    expect(answers.map(answer => Array.from(answer))).toEqual(calls.map((_, i) => [i & 255, i >> 8]))
    expect(mostRunning).toBeGreaterThan(1)
    expect(mostRunning).toBeLessThanOrEqual(64)
    expect(a.services.rpc.stats()).toMatchObject({ callsStarted: 300, callsSucceeded: 300, callsFailed: 0 })
  })

  it('holds back callers once a stream has maxConcurrentRequests handlers running', async () => {
    const [a, b] = await pair({ rpc: { maxConcurrentRequests: 3 } })
    let running = 0
    let mostRunning = 0
    await b.services.rpc.registerRpc(ECHO, async request => {
      running++
      mostRunning = Math.max(mostRunning, running)
      await sleep(2)
      running--
      return request
    })
    const peer = b.peerId.toString()
    await Promise.all(Array.from({ length: 40 }, () => a.services.rpc.callRpc(peer, ECHO, new Uint8Array(1))))
    expect(mostRunning).toBe(3)
  })

  it('reports handler errors as RpcRemoteError with the remote name', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, async request => {
      if (request.length === 0) {
        const err = new Error('not the leader; try 12D3')
        err.name = 'NotLeaderError'
        throw err
      }
      // A handler that throws synchronously is handled the same way.
      throw new TypeError('bad request')
    })
    const peer = b.peerId.toString()
    const err = await a.services.rpc.callRpc(peer, ECHO, new Uint8Array(0)).catch(e => e)
    expect(err).toBeInstanceOf(RpcRemoteError)
    expect(err).toMatchObject({
      name: 'RpcRemoteError',
      remoteName: 'NotLeaderError',
      message: 'not the leader; try 12D3',
    })
    await expect(a.services.rpc.callRpc(peer, ECHO, new Uint8Array(1))).rejects.toMatchObject({
      remoteName: 'TypeError',
    })
  })

  it('times out, ignores the late answer, and keeps the stream usable', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, async request => {
      if (request[0] === 1) await sleep(300)
      return request
    })
    const peer = b.peerId.toString()
    const started = Date.now()
    await expect(
      a.services.rpc.callRpc(peer, ECHO, new Uint8Array([1]), { timeoutMs: 50 }),
    ).rejects.toBeInstanceOf(RpcTimeoutError)
    expect(Date.now() - started).toBeLessThan(250)
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([2])))).toEqual([2])
    await sleep(300) // the late answer arrives and is dropped
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([3])))).toEqual([3])
  })

  it('honours an abort signal', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, () => new Promise(() => {}))
    const peer = b.peerId.toString()
    const controller = new AbortController()
    const call = a.services.rpc.callRpc(peer, ECHO, new Uint8Array(1), { signal: controller.signal })
    setTimeout(() => controller.abort(), 20)
    await expect(call).rejects.toBeInstanceOf(AbortError)
    await expect(
      a.services.rpc.callRpc(peer, ECHO, new Uint8Array(1), { signal: AbortSignal.abort() }),
    ).rejects.toBeInstanceOf(AbortError)
  })

  it('fails with RpcConnectionError for an unknown protocol or an unreachable peer', async () => {
    const [a, b] = await pair({ rpc: { dialTimeoutMs: 1000 } })
    await expect(
      a.services.rpc.callRpc(b.peerId.toString(), '/nobody/1.0.0', new Uint8Array(1)),
    ).rejects.toBeInstanceOf(RpcConnectionError)
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await expect(a.services.rpc.callRpc(ghost, ECHO, new Uint8Array(1))).rejects.toBeInstanceOf(
      RpcConnectionError,
    )
  })

  it('fails pending calls when the serving node stops, and reconnects once it is back', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, () => new Promise(() => {}))
    const call = a.services.rpc.callRpc(b.peerId.toString(), ECHO, new Uint8Array(1))
    await waitFor(
      () => b.services.rpc.stats().requestsServed === 0 && a.services.rpc.stats().callsStarted === 1,
      'call',
    )
    await sleep(20)
    await b.services.rpc.stop()
    await expect(call).rejects.toBeInstanceOf(RpcConnectionError)
    await b.services.rpc.registerRpc(ECHO, async request => request)
    await b.services.rpc.start()
    expect(Array.from(await a.services.rpc.callRpc(b.peerId.toString(), ECHO, new Uint8Array([9])))).toEqual([
      9,
    ])
  })

  it('sends a call again on a new stream when the cached one closed before this side saw it (nothing was sent)', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, async request => request)
    const peer = b.peerId.toString()
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([1])))).toEqual([1])
    // The state a stopped or restarted server leaves on a loaded caller: the cached stream can no longer be
    // written, and its close event has not been handled yet.
    const channels = (
      a.services.rpc as unknown as { openChannels: Map<string, { stream: { close(): Promise<void> } }> }
    ).openChannels
    const [cached] = channels.values()
    void cached.stream.close()
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([2])))).toEqual([2])
  })

  it('fails calls with ClosedError once the calling side stops', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, () => new Promise(() => {}))
    const call = a.services.rpc.callRpc(b.peerId.toString(), ECHO, new Uint8Array(1))
    await sleep(50)
    await a.services.rpc.stop()
    await expect(call).rejects.toBeInstanceOf(ClosedError)
    await expect(a.services.rpc.callRpc(b.peerId.toString(), ECHO, new Uint8Array(1))).rejects.toBeInstanceOf(
      ClosedError,
    )
  })

  it('refuses a request over the frame limit, or with a bad timeout, before sending it', async () => {
    const [a, b] = await pair({ rpc: { maxFrameBytes: 1024 } })
    await b.services.rpc.registerRpc(ECHO, async request => request)
    const peer = b.peerId.toString()
    await expect(a.services.rpc.callRpc(peer, ECHO, new Uint8Array(2000))).rejects.toBeInstanceOf(FrameError)
    for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(
        a.services.rpc.callRpc(peer, ECHO, new Uint8Array(1), { timeoutMs }),
      ).rejects.toBeInstanceOf(InvalidArgumentError)
    }
    expect(a.services.rpc.stats().callsStarted).toBe(0)
  })

  it('resets a stream carrying garbage and keeps serving', async () => {
    const [a, b] = await pair()
    await b.services.rpc.registerRpc(ECHO, async request => request)
    const raw = await a.dialProtocol(b.peerId, ECHO)
    raw.send(encodeFrame(new Uint8Array([0x08, 0x01, 0x10, 0x09])))
    await waitFor(() => raw.status !== 'open', 'the stream to close')
    expect(raw.status).toBe('reset')
    expect(b.services.rpc.stats().resets).toBe(1)
    expect(Array.from(await a.services.rpc.callRpc(b.peerId.toString(), ECHO, new Uint8Array([4])))).toEqual([
      4,
    ])
  })
})
