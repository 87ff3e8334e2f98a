import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_MESSAGE_RATE } from '../../src/net/raft-transport.ts'
import { checkRateLimit, PeerRateLimiter } from '../../src/net/rate-limit.ts'
import { DEFAULT_REQUEST_RATE, RATE_LIMITED_ERROR, RpcRemoteError } from '../../src/net/rpc.ts'
import { smallAppend } from './arbitraries.ts'
import { introducedPair, type TestNode, type TestNodeOptions, waitFor } from './nodes.ts'

const ECHO = '/conclave/test-echo/1.0.0'
const OTHER = '/conclave/test-other/1.0.0'
const nodes: TestNode[] = []

const pair = (caller: TestNodeOptions, server: TestNodeOptions) => introducedPair(nodes, caller, server)

afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

describe('per-peer token buckets', () => {
  it('allows a burst, then the sustained rate, per peer', () => {
    let now = 0
    const limiter = new PeerRateLimiter({ perSecond: 10, burst: 3 }, () => now)
    expect([1, 2, 3, 4].map(() => limiter.take('a'))).toEqual([true, true, true, false])
    // Another peer has its own bucket.
    expect(limiter.take('b')).toBe(true)
    expect(limiter.waitMs('a')).toBe(100)
    now = 100
    expect(limiter.waitMs('a')).toBe(0)
    expect(limiter.take('a')).toBe(true)
    expect(limiter.take('a')).toBe(false)
    // A long quiet spell refills to the burst, no more.
    now = 60_000
    expect([1, 2, 3, 4].map(() => limiter.take('a'))).toEqual([true, true, true, false])
  })

  it('forgets refilled peers, so many peers cost bounded memory', () => {
    let now = 0
    const limiter = new PeerRateLimiter({ perSecond: 1000, burst: 10 }, () => now)
    for (let i = 0; i < 5000; i++) {
      limiter.take(`peer-${i}`)
      now += 1
    }
    expect(limiter.size).toBeLessThan(2100)
  })

  it('is off with an infinite rate, and validates its options', () => {
    const limiter = new PeerRateLimiter(
      checkRateLimit({ perSecond: Number.POSITIVE_INFINITY }, DEFAULT_REQUEST_RATE),
      () => 0,
    )
    let taken = 0
    for (let i = 0; i < 100_000; i++) if (limiter.take('a')) taken++
    expect(taken).toBe(100_000)
    expect(checkRateLimit(undefined, DEFAULT_REQUEST_RATE)).toEqual(DEFAULT_REQUEST_RATE)
    expect(checkRateLimit({ perSecond: 7 }, DEFAULT_REQUEST_RATE)).toEqual({ perSecond: 7, burst: 7 })
    expect(() => checkRateLimit({ perSecond: 0 }, DEFAULT_REQUEST_RATE)).toThrow(RangeError)
    expect(() => checkRateLimit({ perSecond: 5, burst: 0.5 }, DEFAULT_REQUEST_RATE)).toThrow(RangeError)
    expect(() => checkRateLimit({ perSecond: Number.NaN }, DEFAULT_REQUEST_RATE)).toThrow(RangeError)
  })

  it('defaults far above what a busy agent sends', () => {
    // conclave's benchmark forwards over 10,000 writes/s from one agent to the leader.
    expect(DEFAULT_REQUEST_RATE.perSecond).toBeGreaterThanOrEqual(20_000)
    expect(DEFAULT_MESSAGE_RATE.perSecond).toBeGreaterThanOrEqual(50_000)
  })
})

describe('rpc request rate per peer', () => {
  it('refuses requests over the rate with a retryable RateLimitedError, without running them', async () => {
    const [a, b] = await pair({}, { rpc: { requestRate: { perSecond: 20, burst: 5 } } })
    let ran = 0
    await b.services.rpc.registerRpc(ECHO, async request => {
      ran++
      return request
    })
    await b.services.rpc.registerRpc(OTHER, async request => request)
    const peer = b.peerId.toString()
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => a.services.rpc.callRpc(peer, ECHO, new Uint8Array([i]))),
    )
    const refused = results.filter(result => result.status === 'rejected')
    expect(results.length - refused.length).toBe(5)
    expect(ran).toBe(5)
    for (const result of refused) {
      const err = (result as PromiseRejectedResult).reason
      expect(err).toBeInstanceOf(RpcRemoteError)
      expect(err.remoteName).toBe(RATE_LIMITED_ERROR)
    }
    expect(b.services.rpc.stats().rateLimited).toBe(7)
    // The bucket is per protocol: another protocol of the same peer is unaffected.
    expect(Array.from(await a.services.rpc.callRpc(peer, OTHER, new Uint8Array([9])))).toEqual([9])
    // The stream stays up, and the peer is served again once its bucket refills.
    await sleep(120)
    expect(Array.from(await a.services.rpc.callRpc(peer, ECHO, new Uint8Array([7])))).toEqual([7])
    expect(b.services.rpc.stats().resets).toBe(0)
  })

  it('lets 15,000 requests from one peer through as fast as it makes them, with the default rate', async () => {
    const [a, b] = await pair({}, {})
    await b.services.rpc.registerRpc(ECHO, async request => request)
    const peer = b.peerId.toString()
    const body = new Uint8Array(64)
    let done = 0
    // 256 callers in parallel, like a busy agent forwarding its writes (about 16,000 calls/s here).
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (done < 15_000) {
          done++
          await a.services.rpc.callRpc(peer, ECHO, body)
        }
      }),
    )
    expect(b.services.rpc.stats()).toMatchObject({ rateLimited: 0, resets: 0 })
    expect(a.services.rpc.stats().callsFailed).toBe(0)
  })
})

describe('raft message rate per peer', () => {
  it('pauses a peer over the rate and delivers everything, in order, at that rate', async () => {
    const [a, b] = await pair({}, { raft: { messageRate: { perSecond: 1000, burst: 100 } } })
    const received: number[] = []
    b.services.raft.onMessage = msg => {
      if (msg.type === 'append') received.push(msg.entries[0].index)
    }
    const from = a.peerId.toString()
    const to = b.peerId.toString()
    const started = performance.now()
    for (let index = 1; index <= 400; index++) a.services.raft.send(to, smallAppend(from, to, index))
    await waitFor(() => received.length === 400, 'every message')
    const elapsed = performance.now() - started
    expect(received).toEqual(Array.from({ length: 400 }, (_, i) => i + 1))
    // 100 at once, then 300 at 1,000/s.
    expect(elapsed).toBeGreaterThanOrEqual(250)
    expect(b.services.raft.stats()).toMatchObject({ resets: 0, received: 400 })
    expect(b.services.raft.stats().throttled).toBeGreaterThan(0)
    expect(a.services.raft.stats().dropped).toBe(0)
  })
})
