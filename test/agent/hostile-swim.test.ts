/**
 * Forged SWIM claims over real sockets (TCP, SPIFFE identities on). Three agents with every right, a
 * member `m` whose SVID may only `join` (a non-voter of the Raft configuration, registered), and an
 * outsider whose SVID may only `join` but never joined. They forge what only others may say: a death at the
 * largest incarnation the codec encodes, `left` and `alive` about another member by push-pull and gossip,
 * and 70,000 ghost members by push-pull. The victim must stay (or become again) alive in every view, the
 * view must hold only real members, and what a member keeps and does for members it never saw stays bounded.
 */

import type { Libp2p } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SWIM_PROTOCOL } from '../../src/agent/cluster/swim-wire.ts'
import { SEED_DELAY_PERIODS } from '../../src/agent/cluster/unseen-members.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import { type Agent, createAgent } from '../../src/index.ts'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { Rpc } from '../../src/net/rpc.ts'
import { identityService } from '../../src/security/identity-protocol.ts'
import type { PolicyRule } from '../../src/security/policy.ts'
import { loadSvid, parseTrustBundle } from '../../src/security/svid.ts'
import { MAX_INCARNATION_LEAD } from '../../src/swim/claims.ts'
import { encodeSwimMessage } from '../../src/swim/codec.ts'
import type { MemberInfo, PushPullEntry, SwimMessage } from '../../src/swim/types.ts'
import { FAST, securityFor, TD, trustDomain, until } from '../security/agents.ts'
import { chainPem, leafSvid } from '../security/pki.ts'

const POLICY: PolicyRule[] = [
  { ids: [`spiffe://${TD}/agent/*`], allow: '*' },
  { ids: [`spiffe://${TD}/member/m`, `spiffe://${TD}/outsider`], allow: ['join'] },
]

const agents: Agent[] = []
let group: Agent[] = []
let m: Agent
let outsider: Libp2p<ConclaveServices>
const senders = new Map<Libp2p, Rpc>()

function serviceOf(agent: Agent): ConclaveService {
  return (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
}

/** An Rpc endpoint on `node`, to send SWIM messages as that node (its peer key authenticates them). */
async function senderOn(node: Libp2p): Promise<Rpc> {
  const existing = senders.get(node)
  if (existing !== undefined) return existing
  const sender = new Rpc({
    registrar: {
      handle: (protocol, handler, opts) => node.handle(protocol, handler, opts),
      unhandle: protocol => node.unhandle(protocol),
    },
    connectionManager: { openStream: (peer, protocol, opts) => node.dialProtocol(peer, protocol, opts) },
    logger: defaultLogger(),
  })
  await sender.start()
  senders.set(node, sender)
  return sender
}

async function send(sender: Rpc, to: Agent, message: SwimMessage): Promise<void> {
  await sender.callRpc(to.id, SWIM_PROTOCOL, encodeSwimMessage(message), { timeoutMs: 10_000 })
}

function viewOf(agent: Agent, id: string): MemberInfo | undefined {
  return serviceOf(agent).membership.member(id)
}

const everyone = (): Agent[] => [...group, m]

/** Every agent's view holds exactly the four members, all alive. */
function allAlive(): boolean {
  const ids = everyone()
    .map(agent => agent.id)
    .sort()
  return everyone().every(agent => {
    const members = serviceOf(agent).membership.members()
    return (
      members
        .map(member => member.id)
        .sort()
        .join() === ids.join() && members.every(member => member.status === 'alive')
    )
  })
}

beforeAll(async () => {
  const td = trustDomain()
  for (const name of ['a0', 'a1', 'a2', 'm']) {
    const path = name === 'm' ? 'member/m' : `agent/${name}`
    const agent = await createAgent({
      ...FAST,
      transport: 'tcp',
      name,
      security: securityFor(td, path, { policy: POLICY }),
    })
    agents.push(agent)
  }
  group = agents.slice(0, 3)
  m = agents[3]
  await group[0].join({})
  for (const agent of agents.slice(1)) await agent.join({ bootstrap: group[0].multiaddrs() })
  const leaf = leafSvid(td.ca, `spiffe://${TD}/outsider`)
  outsider = await createConclaveLibp2p({
    transport: 'tcp',
    services: {
      identity: identityService({
        svid: loadSvid(chainPem(leaf, td.ca), leaf.keyPem),
        bundles: new Map([[TD, parseTrustBundle(td.root.pem)]]),
        retryAfterMs: 50,
      }),
    },
  })
  for (const agent of agents) {
    await outsider.peerStore.merge(agent.libp2p.peerId, { multiaddrs: agent.libp2p.getMultiaddrs() })
    await outsider.dial(agent.libp2p.peerId)
  }
  await until(allAlive, 'four alive members in every view', 20_000)
  await until(
    async () => (await group[0].members()).filter(member => member.role === 'voter').length === 3,
    'three voters',
    20_000,
  )
}, 60_000)

afterAll(async () => {
  for (const sender of senders.values()) await sender.stop()
  await outsider?.stop()
  await Promise.all(agents.map(agent => agent.stop()))
})

describe('forged SWIM claims', () => {
  it("refuses a death at the codec's largest incarnation, from a member and from an outsider", async () => {
    const victim = group[1]
    const fromMember = await senderOn(m.libp2p)
    const fromOutsider = await senderOn(outsider)
    const forged = (from: string): SwimMessage => ({
      type: 'gossip',
      updates: [{ type: 'dead', id: victim.id, incarnation: Number.MAX_SAFE_INTEGER, from }],
    })
    for (const agent of group) {
      await send(fromMember, agent, forged(m.id))
      await send(fromOutsider, agent, forged(outsider.peerId.toString()))
      await send(fromMember, agent, {
        type: 'ping',
        seq: 1,
        target: victim.id,
        suspectIncarnation: Number.MAX_SAFE_INTEGER,
      })
    }
    // And by gossip, signed by the member's own key.
    const pubsub = (m.libp2p as Libp2p<ConclaveServices>).services.pubsub
    const topic = pubsub.getTopics().find(name => name.endsWith('/swim/1.0.0'))!
    await pubsub.publish(topic, encodeSwimMessage(forged(m.id))).catch(() => {})
    // Longer than a suspicion would take to be believed and spread.
    await new Promise(resolve => setTimeout(resolve, 2_000))
    expect(allAlive()).toBe(true)
    for (const agent of everyone()) {
      expect(viewOf(agent, victim.id)!.incarnation).toBeLessThan(Date.now() + MAX_INCARNATION_LEAD + 10)
    }
    expect((await group[0].health()).healthy).toBe(true)
  })

  it("has a member's forged death refuted by its victim within the detection time", async () => {
    const victim = group[2]
    const fromMember = await senderOn(m.libp2p)
    // As high as the bound lets it go: the refutation, one above, still encodes.
    const incarnation = Date.now() + MAX_INCARNATION_LEAD - 1_000
    for (const agent of [...group].reverse()) {
      await send(fromMember, agent, {
        type: 'gossip',
        updates: [{ type: 'dead', id: victim.id, incarnation, from: m.id }],
      })
    }
    await until(
      () => everyone().every(agent => (viewOf(agent, victim.id)?.incarnation ?? 0) > incarnation),
      'the refutation everywhere',
    )
    await until(allAlive, 'the victim alive in every view')
  })

  it('ignores left and alive about another member, by push-pull and by gossip', async () => {
    const victim = group[1]
    const record = viewOf(group[0], victim.id)!
    const entry = (status: PushPullEntry['status'], name = record.name): PushPullEntry => ({
      id: victim.id,
      name,
      addrs: [],
      capabilities: ['everything'],
      labels: {},
      role: record.role,
      load: 1,
      incarnation: record.incarnation + 10,
      status,
    })
    for (const sender of [await senderOn(m.libp2p), await senderOn(outsider)]) {
      for (const agent of [group[0], group[2]]) {
        await send(sender, agent, { type: 'pushPull', reply: true, members: [entry('left')] })
        await send(sender, agent, { type: 'pushPull', reply: false, members: [entry('alive', 'mallory')] })
        await send(sender, agent, {
          type: 'gossip',
          updates: [{ type: 'left', id: victim.id, incarnation: record.incarnation + 10 }],
        })
      }
    }
    await new Promise(resolve => setTimeout(resolve, 500))
    for (const agent of [group[0], group[2]]) {
      const seen = viewOf(agent, victim.id)!
      expect(seen.status).toBe('alive')
      expect(seen.name).toBe(victim.name ?? 'a1')
      expect(seen.capabilities).toEqual(record.capabilities)
    }
    expect(allAlive()).toBe(true)
  })
})

describe('the bounded view', () => {
  /** What a member's SWIM shell holds for members it has not seen, by the shell's own bookkeeping. */
  function heldFor(agent: Agent): { unseen: number; named: number } {
    const shell = serviceOf(agent).membership as unknown as {
      unseen: { size: number }
      named: { entries: Map<string, unknown> }
    }
    return { unseen: shell.unseen.size, named: shell.named.entries.size }
  }

  /** Direct SWIM messages each agent of the group hands to the network over `ms`. */
  async function sentOver(ms: number): Promise<number[]> {
    const before = group.map(agent => serviceOf(agent).membership.stats().sent)
    await new Promise(resolve => setTimeout(resolve, ms))
    return group.map((agent, i) => serviceOf(agent).membership.stats().sent - before[i])
  }

  // Counts, not latencies: what ghosts could cost a member is state per ghost (the view, the members waiting
  // to be synced with, the members another named) and work per ghost (syncs, probes); both must stay within
  // the view's bound of pending members however many ghosts are offered.
  it('refuses 70,000 ghost members offered by push-pull; what a member keeps and sends for them is bounded', async () => {
    const leader = group.find(agent => agent.isLeader())!
    const { maxPendingMembers, probeInterval } = serviceOf(leader).membership.config
    // Long enough for a held ghost's first sync (after the seed delay and a random phase of a period).
    const window = (SEED_DELAY_PERIODS + 2) * probeInterval
    const quiet = await sentOver(window)
    const ghost = (i: number): PushPullEntry => ({
      id: `12D3KooWGhost${String(i).padStart(39, '0')}`,
      name: `ghost-${i}`,
      addrs: [],
      capabilities: [],
      labels: {},
      role: 'nonvoter',
      load: 0,
      incarnation: Date.now(),
      status: i % 2 === 0 ? 'alive' : 'suspect',
    })
    // From the member (an accuser) and from the outsider, 35,000 each, within the 16,384 entries a
    // push-pull may carry, to every agent.
    let offered = 0
    for (const sender of [await senderOn(m.libp2p), await senderOn(outsider)]) {
      for (let batch = 0; batch < 3; batch++) {
        const members: PushPullEntry[] = []
        for (let i = 0; i < 35_000 / 3; i++) members.push(ghost(offered++))
        for (const agent of group) await send(sender, agent, { type: 'pushPull', reply: true, members })
      }
    }
    expect(offered).toBeGreaterThanOrEqual(70_000)
    const flooded = await sentOver(window)
    for (const agent of group) {
      expect(serviceOf(agent).membership.members().length).toBe(4)
      const held = heldFor(agent)
      expect(held.unseen, 'members waiting to be synced with').toBeLessThanOrEqual(maxPendingMembers)
      expect(held.named, 'members another named').toBeLessThanOrEqual(maxPendingMembers)
    }
    // A held ghost is synced with at most once per seed delay (a failed dial retries after it): beyond the
    // quiet rate, at most that many sends a window, whatever the number of ghosts offered.
    const perWindow = Math.ceil(window / (SEED_DELAY_PERIODS * probeInterval))
    for (const [i, sent] of flooded.entries()) {
      expect(
        sent,
        `SWIM sends of ${group[i].name} in ${window} ms after the ghosts vs ${quiet[i]} before`,
      ).toBeLessThanOrEqual(2 * quiet[i] + maxPendingMembers * perWindow)
    }
    // Writes go on, and the view stays bounded while they do.
    for (let i = 0; i < 200; i++) await leader.consensus.propose('after', i)
    for (const agent of group) expect(serviceOf(agent).membership.members().length).toBe(4)
  }, 120_000)
})
