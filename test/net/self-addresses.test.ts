/**
 * `SelfAddresses`: libp2p's address list is worked out again only when libp2p reports a change or the answer
 * is older than its age bound, and the answer is libp2p's own.
 */

import type { Libp2pEvents, TypedEventTarget } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { SelfAddresses } from '../../src/net/self-addresses.ts'
import { createTestNode, type TestNode } from './nodes.ts'

type Events = Pick<TypedEventTarget<Libp2pEvents>, 'addEventListener' | 'removeEventListener'>

const nodes: TestNode[] = []
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
})

function counted() {
  let now = 0
  let calls = 0
  const events = new EventTarget()
  const cache = new SelfAddresses({
    source: () => [`/ip4/10.0.0.1/tcp/${++calls}`],
    events: events as unknown as Events,
    clock: () => now,
    maxAgeMs: 1000,
  })
  return {
    cache,
    events,
    calls: () => calls,
    advance: (ms: number) => {
      now += ms
    },
  }
}

describe('SelfAddresses', () => {
  it('computes once while nothing changes, again after an address event', () => {
    const { cache, events, calls, advance } = counted()
    const first = cache.get()
    for (let i = 0; i < 10; i++) {
      advance(50)
      expect(cache.get()).toBe(first)
    }
    expect(calls()).toBe(1)
    for (const type of ['self:peer:update', 'transport:listening', 'transport:close']) {
      events.dispatchEvent(new Event(type))
      expect(cache.get()).toEqual([`/ip4/10.0.0.1/tcp/${calls()}`])
    }
    expect(calls()).toBe(4)
  })

  it('computes again once the answer is older than maxAgeMs, with no event', () => {
    const { cache, calls, advance } = counted()
    cache.get()
    advance(999)
    cache.get()
    expect(calls()).toBe(1)
    advance(1)
    cache.get()
    expect(calls()).toBe(2)
  })

  it('stops listening once closed', () => {
    const { cache, events, calls } = counted()
    cache.get()
    cache.close()
    cache.get()
    expect(calls()).toBe(2)
    events.dispatchEvent(new Event('self:peer:update'))
    cache.get()
    expect(calls()).toBe(2)
  })

  it("answers libp2p's own addresses, and sees a listener added later", async () => {
    const node = await createTestNode({ transport: 'tcp' })
    nodes.push(node)
    const cache = new SelfAddresses({
      source: () => node.getMultiaddrs(),
      events: node,
      clock: () => performance.now(),
      maxAgeMs: 3_600_000,
    })
    const text = (addrs: { toString(): string }[]) => addrs.map(String).sort()
    expect(text(cache.get())).toEqual(text(node.getMultiaddrs()))
    const before = cache.get().length
    // A second listener, as libp2p adds one: it reports it with its events.
    const { components } = node as unknown as {
      components: {
        transportManager: { listen(addrs: Multiaddr[]): Promise<void> }
        addressManager: { getListenAddrs(): Multiaddr[] }
      }
    }
    await components.transportManager.listen([
      ...components.addressManager.getListenAddrs(),
      multiaddr('/ip4/127.0.0.1/tcp/0'),
    ])
    expect(node.getMultiaddrs().length).toBeGreaterThan(before)
    expect(text(cache.get())).toEqual(text(node.getMultiaddrs()))
    cache.close()
  })
})
