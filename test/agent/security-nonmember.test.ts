/**
 * A peer that never joined speaks conclave's protocols to a cluster: Raft messages, forwarded commands,
 * administration. With and without SPIFFE identities, nothing it sends may change the cluster: Raft only
 * takes messages from members of its configuration.
 */

import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { type Agent, createAgent } from '../../src/index.ts'
import { loadSvid, parseTrustBundle } from '../../src/security/svid.ts'
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
  trustDomain,
  until,
  voters,
} from '../security/agents.ts'
import { chainPem, leafSvid } from '../security/pki.ts'

const agents: Agent[] = []
const nodes: Libp2p[] = []
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop()
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function threeVoters(options: Parameters<typeof cluster>[1]): Promise<Agent[]> {
  const started = await cluster(agents, options)
  await until(async () => (await voters(started[0])).length === 3, 'three voters')
  await started[0].consensus.propose('before', 1)
  return started
}

async function track(node: Promise<Outsider>): Promise<Outsider> {
  const created = await node
  nodes.push(created)
  return created
}

/** Everything an outsider can try, against every agent; then the cluster must be as it was. */
async function attack(group: Agent[], intruder: Outsider): Promise<void> {
  const before = await snapshot(group)
  const revision = (await group[0].consensus.get('before')) === 1
  expect(revision).toBe(true)
  const leader = group.find(agent => agent.isLeader())!
  const follower = group.find(agent => !agent.isLeader())!
  for (const agent of group) await reach(intruder, agent)

  // Raft: deposing messages to every agent, a few times over.
  for (let round = 0; round < 3; round++) {
    for (const agent of group) {
      for (const message of disruptive(intruder.peerId.toString(), agent.id, agent.election.term())) {
        intruder.services.raft.send(agent.id, message)
      }
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }

  // Forwarding: a write, to the leader (and to a follower, which only answers that it does not lead).
  const put = { type: 'put', key: 'intruder', value: 'was here' } as const
  const toLeader = await failure(forward(intruder, leader, put))
  expect(toLeader).toMatchObject({ name: 'RpcRemoteError', remoteName: 'UnauthorizedError' })
  expect(toLeader.message).toMatch(/not a member/)
  expect(await failure(forward(intruder, follower, put))).toMatchObject({ remoteName: 'NotLeaderError' })

  // Administration: removing a member, moving leadership, joining on behalf of another peer.
  for (const request of [
    { op: 'remove', agentId: follower.id },
    { op: 'transfer', to: follower.id },
    { op: 'join', agentId: group[2].id, addrs: group[2].multiaddrs() },
    { op: 'member', agentId: intruder.peerId.toString() },
  ]) {
    for (const agent of [leader, follower]) {
      expect(await failure(admin(intruder, agent, request)), JSON.stringify(request)).toMatchObject({
        remoteName: 'UnauthorizedError',
      })
    }
  }

  await new Promise(resolve => setTimeout(resolve, 300))
  expect(await snapshot(group)).toEqual(before)
  expect(await follower.consensus.get('intruder')).toBeUndefined()
  // The cluster still works.
  const { revision: after } = await follower.consensus.propose('after', 2)
  expect(after).toBeGreaterThan(0)
  expect(await leader.consensus.get('after')).toBe(2)
}

describe('a peer that never joined (security off)', () => {
  it('can neither disrupt Raft, nor forward writes, nor administer the cluster', async () => {
    const group = await threeVoters([{ name: 'a' }, { name: 'b' }, { name: 'c' }])
    await attack(group, await track(outsider()))
  })

  it('still lets a new agent join and replicate, and a member leave', async () => {
    const group = await threeVoters([{ name: 'a' }, { name: 'b' }, { name: 'c' }])
    const joiner = await createAgent({ ...FAST, name: 'late' })
    agents.push(joiner)
    await joiner.join({ bootstrap: group[1].multiaddrs() })
    await joiner.consensus.propose('from/joiner', 1)
    expect(await group[0].consensus.get('from/joiner')).toBe(1)
    const leaving = group.find(agent => !agent.isLeader())!
    await leaving.leave()
    await until(async () => !(await group[0].members()).some(member => member.id === leaving.id), 'removal')
  })

  it('vouches, member to member, for members only (how a follower whose log lags learns of a new one)', async () => {
    const group = await threeVoters([{ name: 'a' }, { name: 'b' }, { name: 'c' }])
    const stranger = await track(outsider())
    const follower = group.find(agent => !agent.isLeader())!
    const vouch = (peer: string): Promise<boolean> =>
      (
        (follower.libp2p.services as Record<string, unknown>).conclave as {
          joining: { vouch(peer: string, signal: AbortSignal): Promise<boolean> }
        }
      ).joining.vouch(peer, AbortSignal.timeout(2_000))
    for (const agent of group) expect(await vouch(agent.id)).toBe(true)
    expect(await vouch(stranger.peerId.toString())).toBe(false)
  })
})

describe('a peer with a valid SVID that never joined (security on)', () => {
  it('can neither disrupt Raft, nor forward writes, nor administer the cluster', async () => {
    const td = trustDomain()
    const group = await threeVoters(
      ['a', 'b', 'c'].map(name => ({ name, security: securityFor(td, `agent/${name}`) })),
    )
    const leaf = leafSvid(td.ca, `spiffe://${td.name}/agent/intruder`)
    const intruder = await track(
      outsider({
        svid: loadSvid(chainPem(leaf, td.ca), leaf.keyPem),
        bundles: new Map([[td.name, parseTrustBundle(td.root.pem)]]),
      }),
    )
    await attack(group, intruder)
    // Its SVID was accepted: it is refused as a non-member, not for its identity.
    expect(intruder.services.identity?.identity(group[0].id)?.spiffeId).toBe(`spiffe://${td.name}/agent/a`)
  })
})
