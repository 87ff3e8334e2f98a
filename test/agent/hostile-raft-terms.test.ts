/**
 * A member that takes no part in elections cannot move a Raft term (least-privilege issue, attack 1): over real
 * libp2p streams, a non-voting member sends the leader and a follower Raft responses with forged terms, up to
 * 2^52 (the largest the codec still encodes, where a vote request at term + 1 no longer fits). Before the
 * fix the leader stepped down at each one, and after the 2^52 one the voters could never elect again.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { encodeRaftFrame } from '../../src/net/raft-codec.ts'
import { RAFT_PROTOCOL } from '../../src/net/raft-transport.ts'
import type { Message } from '../../src/raft/types.ts'

let voters: Agent[] = []
let member: Agent

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

function leaderOf(agents: Agent[]): Agent | undefined {
  return agents.find(agent => agent.isLeader())
}

beforeAll(async () => {
  for (let i = 0; i < 3; i++) voters.push(await createAgent({ name: `v${i}`, transport: 'memory' }))
  await voters[0].join({ voters: 3 })
  for (const agent of voters.slice(1)) await agent.join({ bootstrap: voters[0].multiaddrs() })
  await until(async () => {
    const members = await voters[0].members()
    return members.filter(m => m.role === 'voter' && m.status === 'alive').length === 3
  }, 'three voters')
  member = await createAgent({ name: 'member', transport: 'memory' })
  await member.join({ bootstrap: voters[0].multiaddrs() })
  await until(async () => {
    const info = (await voters[0].members()).find(m => m.id === member.id)
    return info?.role === 'nonvoter' && info.status === 'alive'
  }, 'the member as a non-voter')
}, 60_000)

afterAll(async () => {
  await Promise.all([...voters, member].map(agent => agent?.stop()))
  voters = []
})

/** Sends `messages` from the member to `target` on a Raft stream of the member's own node. */
async function sendFromMember(target: Agent, messages: Message[]): Promise<void> {
  const stream = await member.libp2p.dialProtocol(target.libp2p.peerId, RAFT_PROTOCOL)
  for (const message of messages) stream.send(encodeRaftFrame(message))
  await new Promise(resolve => setTimeout(resolve, 300))
  stream.abort(new Error('done'))
}

function forged(
  type: 'appendResponse' | 'heartbeatResponse' | 'readIndex',
  to: string,
  term: number,
): Message {
  const from = member.id
  if (type === 'appendResponse') {
    return { type, from, to, term, success: false, index: 0, hintIndex: 0, hintTerm: 0 }
  }
  return { type, from, to, term, context: '' }
}

describe('Raft terms from a member without the right to vote', () => {
  it('keeps the leader and its term under forged higher-term responses, up to 2^52', async () => {
    const leader = leaderOf(voters)
    expect(leader).toBeDefined()
    if (!leader) return
    const term = leader.election.term()
    const follower = voters.find(agent => agent !== leader) as Agent
    const terms = [term + 1, term + 100, 2 ** 40, 2 ** 52]
    for (const target of [leader, follower]) {
      await sendFromMember(
        target,
        terms.flatMap(t => [
          forged('appendResponse', target.id, t),
          forged('heartbeatResponse', target.id, t),
          forged('readIndex', target.id, t),
        ]),
      )
    }
    expect(leader.isLeader()).toBe(true)
    for (const agent of voters) expect(agent.election.term()).toBe(term)
    const { revision } = await member.consensus.propose('terms/after-forgery', 1)
    expect(revision).toBeGreaterThan(0)
  })

  it('still elects a new leader, at a sane term, when the leader then stops', async () => {
    const leader = leaderOf(voters) as Agent
    const term = leader.election.term()
    await sendFromMember(leader, [forged('appendResponse', leader.id, 2 ** 52)])
    const rest = voters.filter(agent => agent !== leader)
    await leader.stop()
    voters = rest
    await until(() => leaderOf(rest) !== undefined, 'a new leader among the two remaining voters')
    const next = leaderOf(rest) as Agent
    expect(next.election.term()).toBeGreaterThan(term)
    expect(next.election.term()).toBeLessThan(term + 100)
    await rest[0].consensus.propose('terms/after-failover', 2)
    expect(await rest[1].consensus.get('terms/after-failover')).toBe(2)
  })
})
