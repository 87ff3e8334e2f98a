/**
 * SPIFFE identities and authorization, enforced by real agents over libp2p (in-process memory transport):
 * who gets in, and what each identity may do. Certificates are made in memory (test/security/pki.ts).
 */

import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { CLIENT_PROTOCOL } from '../../src/agent/api/client-protocol.ts'
import type { Membership } from '../../src/agent/cluster/membership.ts'
import { SWIM_PROTOCOL, swimTopic } from '../../src/agent/cluster/swim-wire.ts'
import {
  type Agent,
  conclave,
  createAgent,
  InvalidArgumentError,
  type SecurityOptions,
  type SecurityRefusal,
  UnauthorizedError,
} from '../../src/index.ts'
import type { RaftTransport } from '../../src/net/raft-transport.ts'
import { parseSpiffeId } from '../../src/security/spiffe-id.ts'
import { loadSvid, parseTrustBundle, type X509Svid } from '../../src/security/svid.ts'
import { encodeSwimMessage } from '../../src/swim/codec.ts'
import {
  admin,
  cluster,
  disruptive,
  FAST,
  failure,
  forward,
  type Outsider,
  outsider,
  reach,
  securityFor,
  snapshot,
  TD,
  type TrustDomain,
  trustDomain,
  until,
  voters,
} from '../security/agents.ts'
import { RawIdentityStream } from '../security/nodes.ts'
import { chainPem, type Issued, issue, leafSvid } from '../security/pki.ts'

const HOUR = 3_600_000
const agents: Agent[] = []
const nodes: Libp2p[] = []
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function track(node: Promise<Outsider>): Promise<Outsider> {
  const created = await node
  nodes.push(created)
  return created
}

const POLICY = [
  { ids: [`spiffe://${TD}/voter/*`], allow: '*' as const },
  {
    ids: [`spiffe://${TD}/worker/*`],
    allow: ['join' as const, 'runTask' as const, 'lock' as const, 'write' as const],
  },
  { ids: [`spiffe://${TD}/reader/*`], allow: ['join' as const, 'read' as const] },
  { ids: [`spiffe://${TD}/ci/*`], allow: ['submitTask' as const] },
]

/** The agent's service, reached into as a modified agent would be (its TypeScript-private parts). */
function serviceOf(agent: Agent): {
  authorization: { authorizeOwn(command: unknown): void }
  transport: RaftTransport
  membership: Membership
  meta: { clusterId(): string | undefined }
} {
  return (agent.libp2p.services as Record<string, unknown>).conclave as ReturnType<typeof serviceOf>
}

/** Switches off an agent's check of its own calls, as a modified agent would: the leader must still refuse. */
function withoutOwnCheck(agent: Agent): void {
  serviceOf(agent).authorization.authorizeOwn = () => {}
}

async function clientCall(node: Outsider, agent: Agent, op: string, args: unknown): Promise<unknown> {
  const response = await node.services.rpc.callRpc(
    agent.id,
    CLIENT_PROTOCOL,
    new TextEncoder().encode(JSON.stringify({ op, args })),
  )
  return JSON.parse(new TextDecoder().decode(response))
}

function rogue(td: TrustDomain, leaf: Issued, uri: string): X509Svid {
  return { spiffeId: parseSpiffeId(uri), chain: [leaf.cert, td.ca.cert], privateKey: leaf.key }
}

describe('agents with SPIFFE identities', () => {
  it('admits agents with valid SVIDs of one trust domain: they work together and show their SPIFFE IDs', async () => {
    const td = trustDomain()
    const group = await cluster(
      agents,
      ['a', 'b', 'c'].map(name => ({ name, security: securityFor(td, `agent/${name}`) })),
    )
    await until(async () => (await voters(group[0])).length === 3, 'three voters')
    const follower = group.find(agent => !agent.isLeader())!
    await follower.consensus.propose('config/x', { n: 1 })
    for (const agent of group) expect(await agent.consensus.get('config/x')).toEqual({ n: 1 })
    const lock = await follower.locks.acquire('lock/x', 2_000)
    expect(lock.fencingToken).toBeGreaterThan(0n)
    await lock.release()
    // Joining through a member that is not the leader: it passes the request on, the leader checks the joiner.
    const late = await createAgent({ ...FAST, name: 'd', security: securityFor(td, 'agent/d') })
    agents.push(late)
    await late.join({ bootstrap: follower.multiaddrs() })
    group.push(late)
    expect(await late.consensus.get('config/x')).toEqual({ n: 1 })
    const expected = group.map(agent => [agent.id, `spiffe://${TD}/agent/${agent.name}`]).sort()
    for (const agent of group) {
      await until(async () => (await agent.members()).every(member => member.spiffeId !== undefined), 'ids')
      const shown = (await agent.members()).map(member => [member.id, member.spiffeId]).sort()
      expect(shown).toEqual(expected)
    }
  })

  it('refuses an agent of another trust domain: it never joins, and is disconnected', async () => {
    const refusals: SecurityRefusal[] = []
    const td = trustDomain()
    const [founder] = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'agent/a', { refusals }) },
    ])
    const before = await snapshot([founder])
    // The stranger trusts the cluster's trust domain (federation), but not the other way round.
    const stranger = await createAgent({
      ...FAST,
      name: 'x',
      security: {
        ...securityFor(trustDomain('other.org'), 'agent/x'),
        federatedBundles: { [TD]: td.root.pem },
      },
    })
    agents.push(stranger)
    const error = await failure(stranger.join({ bootstrap: founder.multiaddrs() }))
    expect(error).toBeInstanceOf(UnauthorizedError)
    expect(error.message).toMatch(/trust-domain/)
    expect(
      refusals.some(refusal => refusal.peer === stranger.id && /trust-domain/.test(refusal.reason)),
    ).toBe(true)
    expect(await snapshot([founder])).toEqual(before)
    expect(await founder.consensus.get('anything')).toBeUndefined()
    await until(() => founder.libp2p.getConnections(stranger.libp2p.peerId).length === 0, 'disconnection')
  })

  const rogues: [string, (td: TrustDomain) => X509Svid, string][] = [
    [
      'an expired SVID',
      td => {
        const uri = `spiffe://${TD}/agent/old`
        const leaf = leafSvid(td.ca, uri, {
          notBefore: new Date(Date.now() - 3 * HOUR),
          notAfter: new Date(Date.now() - HOUR),
        })
        return rogue(td, leaf, uri)
      },
      'expired',
    ],
    [
      'a CA certificate used as a leaf',
      td => {
        const uri = `spiffe://${TD}/agent/ca`
        const leaf = issue({
          subject: 'rogue CA',
          issuer: td.ca,
          ca: true,
          keyUsage: ['digitalSignature', 'keyCertSign'],
          uris: [uri],
        })
        return rogue(td, leaf, uri)
      },
      'leaf-is-ca',
    ],
    [
      'an SVID with two URI SANs',
      td => {
        const uri = `spiffe://${TD}/agent/two`
        return rogue(td, leafSvid(td.ca, uri, { uris: [uri, `spiffe://${TD}/voter/admin`] }), uri)
      },
      'uri-san-count',
    ],
  ]

  for (const [what, makeSvid, reason] of rogues) {
    it(`refuses a peer presenting ${what}: it can neither join nor reach Raft or the state`, async () => {
      const td = trustDomain()
      const refusals: SecurityRefusal[] = []
      // Connections kept open, so that every refusal comes back as an answer the test can read.
      const security = { ...securityFor(td, 'agent/a', { refusals }), closeUnauthenticated: false }
      const [leader] = await cluster(agents, [{ name: 'a', security }])
      await leader.consensus.propose('before', 1)
      const before = await snapshot([leader])
      const intruder = await track(
        outsider({ svid: makeSvid(td), bundles: new Map([[TD, parseTrustBundle(td.root.pem)]]) }),
      )
      const intruderId = intruder.peerId.toString()
      await reach(intruder, leader)
      await until(() => refusals.some(refusal => refusal.peer === intruderId), 'the refusal')
      expect(refusals.find(refusal => refusal.peer === intruderId)?.reason).toContain(`(${reason})`)

      const join = { op: 'join', agentId: intruderId, addrs: intruder.getMultiaddrs().map(String) }
      const refusal = await failure(admin(intruder, leader, join))
      expect(refusal).toMatchObject({ remoteName: 'UnauthorizedError' })
      expect(refusal.message).toMatch(/identity not established/)
      for (const message of disruptive(intruderId, leader.id, leader.election.term())) {
        intruder.services.raft.send(leader.id, message)
      }
      expect(await failure(forward(intruder, leader, { type: 'put', key: 'x', value: 1 }))).toMatchObject({
        remoteName: 'UnauthorizedError',
      })
      await new Promise(resolve => setTimeout(resolve, 200))
      expect(await snapshot([leader])).toEqual(before)
      expect(await leader.consensus.get('x')).toBeUndefined()
    })
  }

  it("refuses a peer relaying a member's proof of identity: it cannot join", async () => {
    const td = trustDomain()
    const refusals: SecurityRefusal[] = []
    const [leader, member] = await cluster(agents, [
      { name: 'a', security: { ...securityFor(td, 'agent/a', { refusals }), closeUnauthenticated: false } },
      { name: 'b', security: securityFor(td, 'agent/b') },
    ])
    const before = await snapshot([leader, member])
    const attacker = await track(outsider())
    await reach(attacker, leader)
    await reach(attacker, member)
    // The attacker takes the leader's challenge to the member, as its own, and presents the member's proof.
    const toLeader = await RawIdentityStream.open(attacker, leader.libp2p.peerId)
    await toLeader.send({ nonce: crypto.getRandomValues(new Uint8Array(32)) })
    const challenge = await toLeader.receive()
    const toMember = await RawIdentityStream.open(attacker, member.libp2p.peerId)
    await toMember.send({ nonce: challenge.nonce })
    const memberProof = await toMember.receive()
    toMember.stream.abort(new Error('done'))
    await toLeader.send({ certificates: memberProof.certificates, signature: memberProof.signature })
    expect((await toLeader.receive()).error).toMatch(/^proof: /)
    const attackerId = attacker.peerId.toString()
    expect(refusals.some(refusal => refusal.peer === attackerId && /\(proof\)/.test(refusal.reason))).toBe(
      true,
    )

    const join = { op: 'join', agentId: attackerId, addrs: attacker.getMultiaddrs().map(String) }
    expect(await failure(admin(attacker, leader, join))).toMatchObject({ remoteName: 'UnauthorizedError' })
    // Nor may it ask for the member it impersonated.
    const asMember = { op: 'join', agentId: member.id, addrs: member.multiaddrs() }
    expect(await failure(admin(attacker, leader, asMember))).toMatchObject({
      remoteName: 'UnauthorizedError',
    })
    expect(await snapshot([leader, member])).toEqual(before)
  })

  it('an SVID without submitTask cannot submit a task, through any agent, nor by forwarding', async () => {
    const td = trustDomain()
    const [leader, worker] = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'voter/a', { policy: POLICY }) },
      { name: 'w', security: securityFor(td, 'worker/w', { policy: POLICY }) },
    ])
    expect(leader.isLeader()).toBe(true)
    // Its own agent refuses at once...
    await expect(worker.tasks.submit({ id: 't1', type: 'job' })).rejects.toBeInstanceOf(UnauthorizedError)
    // ...and the leader refuses the forwarded command of an agent that skips that check.
    withoutOwnCheck(worker)
    const refused = await failure(worker.tasks.submit({ id: 't2', type: 'job' }))
    expect(refused).toBeInstanceOf(UnauthorizedError)
    expect(refused.message).toMatch(/may not submitTask/)
    // A client (the CLI's protocol) whose SVID may not submit tasks, through either agent.
    const bundles = new Map([[TD, parseTrustBundle(td.root.pem)]])
    const svid = (path: string): X509Svid => {
      const leaf = leafSvid(td.ca, `spiffe://${TD}/${path}`)
      return loadSvid(chainPem(leaf, td.ca), leaf.keyPem)
    }
    const reader = await track(outsider({ svid: svid('reader/r'), bundles }))
    for (const agent of [leader, worker]) {
      await reach(reader, agent)
      expect(
        await failure(clientCall(reader, agent, 'task.submit', { task: { id: 't3', type: 'job' } })),
      ).toMatchObject({
        remoteName: 'UnauthorizedError',
      })
    }
    for (const id of ['t1', 't2', 't3']) {
      await expect(leader.tasks.status(id)).rejects.toMatchObject({ name: 'NotFoundError' })
    }
    // Allowed: the voter, and a CI client through the voter (the worker's own identity may not submit).
    await leader.tasks.submit({ id: 't4', type: 'job' })
    const ci = await track(outsider({ svid: svid('ci/pipeline'), bundles }))
    await reach(ci, leader)
    await reach(ci, worker)
    expect(await clientCall(ci, leader, 'task.submit', { task: { id: 't5', type: 'job' } })).toMatchObject({
      id: 't5',
    })
    expect(
      await failure(clientCall(ci, worker, 'task.submit', { task: { id: 't6', type: 'job' } })),
    ).toMatchObject({
      remoteName: 'UnauthorizedError',
    })
    expect((await leader.tasks.status('t5')).state).not.toBe('dead')
  })

  it('an SVID without write cannot put or delete, even by forwarding', async () => {
    const td = trustDomain()
    const [leader, reader] = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'voter/a', { policy: POLICY }) },
      { name: 'r', security: securityFor(td, 'reader/r', { policy: POLICY }) },
    ])
    const { revision } = await leader.consensus.propose('k', 'v')
    await expect(reader.consensus.propose('k', 'mine')).rejects.toBeInstanceOf(UnauthorizedError)
    await expect(reader.consensus.delete('k')).rejects.toBeInstanceOf(UnauthorizedError)
    withoutOwnCheck(reader)
    await expect(reader.consensus.propose('k', 'mine')).rejects.toBeInstanceOf(UnauthorizedError)
    await expect(reader.consensus.delete('k')).rejects.toBeInstanceOf(UnauthorizedError)
    expect(await reader.consensus.get('k')).toBe('v')
    // No write got in between: the next one takes the next revision.
    expect((await leader.consensus.propose('other', 1)).revision).toBe(revision + 1)
  })

  it('an SVID without vote is never promoted to voter', async () => {
    const td = trustDomain()
    // Joined second, the worker would be the first non-voter promoted (with b) if it could vote.
    const group = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'voter/a', { policy: POLICY }) },
      { name: 'w', security: securityFor(td, 'worker/w', { policy: POLICY }) },
      { name: 'b', security: securityFor(td, 'voter/b', { policy: POLICY }) },
      { name: 'c', security: securityFor(td, 'voter/c', { policy: POLICY }) },
    ])
    const [a, w, b, c] = group
    await until(async () => (await voters(a)).length === 3, 'three voters')
    await new Promise(resolve => setTimeout(resolve, 500))
    expect(await voters(a)).toEqual([a.id, b.id, c.id].sort())
    expect((await a.members()).find(member => member.id === w.id)).toMatchObject({
      role: 'nonvoter',
      spiffeId: `spiffe://${TD}/worker/w`,
    })
    // The worker works as a member all the same.
    await w.consensus.propose('from/worker', 1)
    expect(await a.consensus.get('from/worker')).toBe(1)
    // A member, but not a voter: what only candidates and leaders send never reaches Raft from it.
    const before = await snapshot(group)
    const transport = serviceOf(w).transport
    for (let round = 0; round < 3; round++) {
      for (const agent of [a, b, c]) {
        for (const message of disruptive(w.id, agent.id, agent.election.term()))
          transport.send(agent.id, message)
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    expect(await snapshot(group)).toEqual(before)
  })

  it('an SVID without join takes no part in the membership, directly or by gossip', async () => {
    const td = trustDomain()
    const [leader, member] = await cluster(agents, [
      { name: 'a', security: securityFor(td, 'voter/a', { policy: POLICY }) },
      { name: 'b', security: securityFor(td, 'voter/b', { policy: POLICY }) },
    ])
    const leaf = leafSvid(td.ca, `spiffe://${TD}/ci/pipeline`)
    const ci = await track(
      outsider({
        svid: loadSvid(chainPem(leaf, td.ca), leaf.keyPem),
        bundles: new Map([[TD, parseTrustBundle(td.root.pem)]]),
      }),
    )
    const ciId = ci.peerId.toString()
    await reach(ci, leader)
    await reach(ci, member)
    const record = {
      id: ciId,
      name: 'ci',
      addrs: ci.getMultiaddrs().map(String),
      capabilities: [],
      labels: {},
      role: 'nonvoter' as const,
      load: 0,
      incarnation: Date.now(),
    }
    const pushPull = encodeSwimMessage({
      type: 'pushPull',
      reply: false,
      members: [{ ...record, status: 'alive' }],
    })
    expect(await failure(ci.services.rpc.callRpc(leader.id, SWIM_PROTOCOL, pushPull))).toMatchObject({
      remoteName: 'UnauthorizedError',
    })
    // Gossip it publishes itself, and a forged death of a member, are not taken either.
    const topic = swimTopic(serviceOf(leader).meta.clusterId()!)
    ci.services.pubsub.subscribe(topic)
    await until(() => ci.services.pubsub.getSubscribers(topic).length === 2, 'the members on the topic')
    const gossip = encodeSwimMessage({
      type: 'gossip',
      updates: [
        { type: 'alive', member: record },
        { type: 'dead', id: member.id, incarnation: Number.MAX_SAFE_INTEGER, from: ciId },
      ],
    })
    await ci.services.pubsub.publish(topic, gossip).catch(() => {})
    await new Promise(resolve => setTimeout(resolve, 300))
    for (const agent of [leader, member]) {
      expect(serviceOf(agent).membership.member(ciId)).toBeUndefined()
      expect(serviceOf(agent).membership.status(member.id)).toBe('alive')
    }
  })

  it('refuses bad security options when the agent starts', async () => {
    const td = trustDomain()
    const other = trustDomain('other.org')
    const good = securityFor(td, 'agent/a')
    const bad = [
      { ...good, svid: { certificate: '/nonexistent/svid.pem', key: '/nonexistent/svid.key' } },
      { ...good, trustBundle: other.root.pem },
      { ...good, policy: [{ ids: [`spiffe://${TD}/*`], allow: ['fly'] }] },
      { ...good, unknown: true },
    ]
    for (const security of bad) {
      await expect(createAgent({ ...FAST, security: security as SecurityOptions })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      )
      expect(() => conclave({ security: security as SecurityOptions })).toThrow(InvalidArgumentError)
    }
  })
})
