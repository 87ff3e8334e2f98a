import { describe, expect, test } from 'vitest'
import { InvalidRequestError, NotLeaderError, ProposalDroppedError } from '../../src/raft/errors.ts'
import { bytes, Cluster } from './harness.ts'

describe('leadership transfer (§3.10)', () => {
  test('to a caught-up follower: TimeoutNow at once, the target wins the next term without pre-vote', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.raft('a').transferLeadership('b')
    expect(cluster.raft('a').status().transferee).toBe('b')
    expect(() => cluster.raft('a').propose(bytes('y'))).toThrow(ProposalDroppedError)
    const sent = cluster.collect()
    expect(sent.filter(m => m.type === 'timeoutNow').map(m => m.to)).toEqual(['b'])
    cluster.deliver(sent)
    const campaign = cluster.collect()
    // b skips pre-vote, and marks its requests so that followers with a live leader still answer.
    expect(
      campaign.filter(m => m.type === 'vote').every(m => m.type === 'vote' && m.transfer && m.term === 2),
    ).toBe(true)
    expect(campaign.some(m => m.type === 'preVote')).toBe(false)
    cluster.deliver(campaign)
    cluster.deliverAll()
    expect(cluster.leader()).toBe('b')
    expect(cluster.raft('a').status()).toMatchObject({ role: 'follower', leader: 'b', term: 2 })
    cluster.propose('y', 'b')
    for (const id of ['a', 'b', 'c']) expect(cluster.node(id).appliedData).toEqual(['x', 'y'])
  })

  test('to a lagging follower: it is caught up first, then told to campaign', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    const rule = cluster.isolate('c')
    for (let i = 0; i < 20; i++) cluster.propose(`v${i}`)
    cluster.raft('a').transferLeadership('c')
    expect(cluster.collect().some(m => m.type === 'timeoutNow')).toBe(false)
    cluster.removeDropRule(rule)
    cluster.tickAll(1)
    expect(cluster.leader()).toBe('c')
    expect(cluster.node('c').appliedData).toHaveLength(20)
  })

  test('aborts when it does not finish within an election timeout; proposals resume', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.isolate('c')
    cluster.raft('a').transferLeadership('c')
    cluster.tickAll(9)
    expect(cluster.raft('a').status().transferee).toBe('c')
    cluster.tickAll(1)
    expect(cluster.raft('a').status().transferee).toBeUndefined()
    expect(cluster.leader()).toBe('a')
    expect(() => cluster.propose('after')).not.toThrow()
    expect(cluster.node('b').appliedData).toEqual(['after'])
  })

  test('transfer needs a leader and a voter target; to itself it is a no-op', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    expect(() => cluster.raft('b').transferLeadership('c')).toThrow(NotLeaderError)
    expect(() => cluster.raft('a').transferLeadership('zz')).toThrow(InvalidRequestError)
    cluster.raft('a').transferLeadership('a')
    expect(cluster.raft('a').status().transferee).toBeUndefined()
  })
})
