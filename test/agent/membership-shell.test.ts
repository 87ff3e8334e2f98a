/**
 * The membership shell (`src/agent/cluster/membership.ts`) on a virtual scheduler, with fake network parts:
 * what it sends while many agents join at once. Direct sends fail (no network) but are counted and their
 * recipients recorded (probes among them); the fake gossipsub records publishes.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, Stream } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { Membership } from '../../src/agent/cluster/membership.ts'
import { DIRECT_FANOUT, type MembershipPubSub } from '../../src/agent/cluster/swim-wire.ts'
import { SEED_DELAY_PERIODS } from '../../src/agent/cluster/unseen-members.ts'
import { resolveMembership } from '../../src/agent/options.ts'
import { encodeSwimMessage } from '../../src/swim/codec.ts'
import type { PushPullEntry, SwimMessage } from '../../src/swim/types.ts'
import { VirtualScheduler } from '../../src/time/index.ts'

const CONFIG = resolveMembership('fast')

async function peerIds(count: number): Promise<PeerId[]> {
  return Promise.all(
    Array.from({ length: count }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))),
  )
}

function entry(id: PeerId): PushPullEntry {
  return {
    id: id.toString(),
    name: '',
    addrs: [],
    capabilities: [],
    labels: {},
    role: 'nonvoter',
    load: 0,
    incarnation: 1,
    status: 'alive',
  }
}

interface Shell {
  membership: Membership
  scheduler: VirtualScheduler
  /** What the registry names (the refresh's `known`). */
  known: Set<string>
  /** Recipients of direct sends, in order. */
  dialled: string[]
  publishes: number
  /** Peers the fake gossipsub reports as subscribed (its flood reaches them). */
  subscribers: PeerId[]
  failPublish: boolean
  receive(from: PeerId, message: SwimMessage): Promise<void>
}

async function shell(seed: PeerId): Promise<Shell> {
  const scheduler = new VirtualScheduler({ wallStart: 1_700_000_000_000 })
  const self = (await peerIds(1))[0]
  const state = {
    known: new Set([seed.toString()]),
    dialled: [] as string[],
    publishes: 0,
    subscribers: [] as PeerId[],
    failPublish: false,
  }
  const pubsub: MembershipPubSub = {
    subscribe: () => {},
    unsubscribe: () => {},
    publish: async () => {
      state.publishes++
      if (state.failPublish) throw new Error('NoPeersSubscribedToTopic')
      return { recipients: [] }
    },
    addEventListener: () => {},
    removeEventListener: () => {},
    getSubscribers: () => state.subscribers,
  }
  const membership = new Membership({
    components: {
      peerId: self,
      registrar: { handle: async () => {}, unhandle: async () => {} },
      connectionManager: {
        openStream: async (peer: PeerId): Promise<Stream> => {
          state.dialled.push(peer.toString())
          throw new Error('no network in this test')
        },
      },
      logger: defaultLogger(),
      peerStore: { merge: async () => ({}) as never },
    },
    pubsub: () => pubsub,
    config: CONFIG,
    scheduler,
    random: () => 0.5,
    refresh: () => ({ known: [...state.known] }),
  })
  await membership.start({
    clusterId: 'c',
    self: {
      id: self.toString(),
      name: 'self',
      addrs: [],
      capabilities: [],
      labels: {},
      role: 'nonvoter',
      load: 0,
    },
    seeds: [seed.toString()],
  })
  const receive = async (from: PeerId, message: SwimMessage): Promise<void> => {
    ;(membership as unknown as { receive(from: string, bytes: Uint8Array, path: string): void }).receive(
      from.toString(),
      encodeSwimMessage(message),
      'direct',
    )
    // The shell learns the named members' addresses first (promises), then acts.
    for (let i = 0; i < 10; i++) await Promise.resolve()
  }
  return Object.assign(state, { membership, scheduler, receive })
}

describe('membership shell in a join storm', () => {
  it("does not sync at once with every member a seed's answer names: the registry introduces them", async () => {
    const [seed, ...others] = await peerIds(11)
    const s = await shell(seed)
    expect(s.membership.stats().pushPulls).toBe(1) // the start's sync with its seed
    await s.receive(seed, { type: 'pushPull', reply: true, members: [entry(seed), ...others.map(entry)] })
    expect(s.membership.stats().pushPulls).toBe(1)
    // The registry catches up on half of them: those enter the view at the next refresh, without a sync.
    for (const id of others.slice(0, 5)) s.known.add(id.toString())
    s.scheduler.advance(CONFIG.probeInterval)
    const alive = (id: PeerId) => s.membership.status(id.toString()) === 'alive'
    expect(others.slice(0, 5).every(alive)).toBe(true)
    expect(s.membership.stats().pushPulls).toBe(1)
    // The others, still unknown to the registry, are synced with once the seed delay has passed.
    s.scheduler.advance((SEED_DELAY_PERIODS + 2) * CONFIG.probeInterval)
    expect(s.membership.stats().pushPulls).toBe(1 + 5)
    await s.membership.stop()
  })

  it(`sends its own news directly to at most ${DIRECT_FANOUT} members, those the publish does not reach`, async () => {
    const [seed, ...others] = await peerIds(12)
    const s = await shell(seed)
    for (const id of others) s.known.add(id.toString())
    await s.receive(seed, { type: 'pushPull', reply: true, members: [entry(seed), ...others.map(entry)] })
    s.scheduler.advance(CONFIG.probeInterval)
    expect(s.membership.members().filter(member => member.status === 'alive')).toHaveLength(13)
    // The flood reaches the seed and 8 others; 3 are not connected.
    s.subscribers = [seed, ...others.slice(0, 8)]
    const before = s.membership.stats().directGossip
    s.dialled.length = 0
    s.membership.update({ labels: { zone: 'b' } })
    const gossiped = s.membership.stats().directGossip - before
    expect(gossiped).toBeGreaterThan(0)
    expect(gossiped).toBeLessThanOrEqual(DIRECT_FANOUT)
    const unreached = new Set(others.slice(8).map(id => id.toString()))
    expect(s.dialled.filter(id => !unreached.has(id))).toEqual([])
    expect(s.publishes).toBeGreaterThan(0)
    await s.membership.stop()
  })

  it('a publish that fails goes directly to a few members and is published again', async () => {
    const [seed, ...others] = await peerIds(12)
    const s = await shell(seed)
    for (const id of others) s.known.add(id.toString())
    await s.receive(seed, { type: 'pushPull', reply: true, members: [entry(seed), ...others.map(entry)] })
    s.scheduler.advance(CONFIG.probeInterval)
    s.failPublish = true
    s.subscribers = [seed, ...others]
    const before = s.membership.stats().directGossip
    const published = s.publishes
    s.membership.update({ labels: { zone: 'c' } })
    for (let i = 0; i < 10; i++) await Promise.resolve()
    expect(s.membership.stats().directGossip - before).toBeLessThanOrEqual(2 * DIRECT_FANOUT)
    s.failPublish = false
    for (let round = 0; round < 3; round++) {
      s.scheduler.advance(CONFIG.gossipInterval)
      for (let i = 0; i < 10; i++) await Promise.resolve()
    }
    expect(s.membership.stats().published).toBeGreaterThan(0)
    expect(s.publishes).toBeGreaterThan(published + 1)
    await s.membership.stop()
  })
})

describe('membership shell: refutations', () => {
  it('sends its refutation directly to the member that holds it dead, even one the flood reaches', async () => {
    const [seed, ...others] = await peerIds(12)
    const s = await shell(seed)
    for (const id of others) s.known.add(id.toString())
    await s.receive(seed, { type: 'pushPull', reply: true, members: [entry(seed), ...others.map(entry)] })
    s.scheduler.advance(CONFIG.probeInterval)
    // Every member is reached by the flood.
    s.subscribers = [seed, ...others]
    // The direct gossip sent, by recipient (probes and syncs aside).
    const sender = s.membership as unknown as { send(to: string, message: SwimMessage): void }
    const send = sender.send.bind(sender)
    const gossipTo: string[] = []
    sender.send = (to, message) => {
      if (message.type === 'gossip') gossipTo.push(to)
      send(to, message)
    }
    // Which members get a direct copy anyway (the same ones each time: the randomness is fixed).
    s.membership.update({ labels: { zone: 'b' } })
    const anyway = new Set(gossipTo)
    expect(anyway.size).toBeLessThanOrEqual(DIRECT_FANOUT)
    const accuser = others.find(id => !anyway.has(id.toString()))!
    gossipTo.length = 0
    const self = s.membership.member(s.membership.selfId)!
    const { status: _, lastSeen: __, statusChangedAt: ___, ...record } = self
    await s.receive(accuser, {
      type: 'pushPull',
      reply: true,
      members: [entry(accuser), { ...record, status: 'dead' }],
    })
    s.scheduler.advance(CONFIG.gossipInterval)
    await s.receive(accuser, { type: 'gossip', updates: [] })
    expect(s.membership.member(s.membership.selfId)!.incarnation).toBeGreaterThan(self.incarnation)
    expect(gossipTo).toContain(accuser.toString())
    await s.membership.stop()
  })

  it('sends its refutation directly to an accuser it holds dead itself', async () => {
    const [seed, ...others] = await peerIds(6)
    const s = await shell(seed)
    for (const id of others) s.known.add(id.toString())
    await s.receive(seed, { type: 'pushPull', reply: true, members: [entry(seed), ...others.map(entry)] })
    s.scheduler.advance(CONFIG.probeInterval)
    s.subscribers = [seed, ...others]
    const accuser = others[0]
    // The seed declares the accuser dead; this view takes it.
    await s.receive(seed, {
      type: 'gossip',
      updates: [{ type: 'dead', id: accuser.toString(), incarnation: 1, from: seed.toString() }],
    })
    expect(s.membership.status(accuser.toString())).toBe('dead')
    const sender = s.membership as unknown as { send(to: string, message: SwimMessage): void }
    const send = sender.send.bind(sender)
    const gossipTo: string[] = []
    sender.send = (to, message) => {
      if (message.type === 'gossip') gossipTo.push(to)
      send(to, message)
    }
    // The accuser, alive after all, holds this member dead (its push-pull says so).
    const self = s.membership.member(s.membership.selfId)!
    const { status: _, lastSeen: __, statusChangedAt: ___, ...record } = self
    await s.receive(accuser, {
      type: 'pushPull',
      reply: true,
      members: [entry(accuser), { ...record, status: 'dead' }],
    })
    s.scheduler.advance(CONFIG.gossipInterval)
    expect(s.membership.member(s.membership.selfId)!.incarnation).toBeGreaterThan(self.incarnation)
    expect(gossipTo).toContain(accuser.toString())
    await s.membership.stop()
  })
})
