import { describe, expect, test } from 'vitest'
import { ConfigChangeError, ProposalDroppedError } from '../../src/raft/errors.ts'
import { bytes, Cluster, emptyState } from './harness.ts'

/** Whether the leader commits a new proposal while `cut` are isolated. */
function commitsWithout(cluster: Cluster, leader: string, ...cut: string[]): boolean {
  const rule = cluster.isolate(...cut)
  const { index } = cluster.raft(leader).propose(bytes(`probe-${cut.join('')}`))
  cluster.deliverAll()
  const committed = cluster.raft(leader).status().commit >= index
  cluster.removeDropRule(rule)
  cluster.tickAll(2)
  return committed
}

describe('membership changes, one server at a time (§4.1)', () => {
  test('add a non-voter: it catches up, never counts for quorum; promote it: the quorum grows', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('before')
    cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })
    cluster.add('d', emptyState())
    cluster.deliverAll()
    cluster.tickAll(2)
    expect(cluster.node('d').appliedData).toEqual(['before'])
    expect(cluster.raft('d').status().config).toEqual({ voters: ['a', 'b', 'c'], nonVoters: ['d'] })
    expect(Object.keys(cluster.raft('a').status().progress ?? {}).sort()).toEqual(['a', 'b', 'c', 'd'])
    // 3 voters: quorum 2. d's acknowledgement does not count.
    expect(commitsWithout(cluster, 'a', 'c')).toBe(true)
    expect(commitsWithout(cluster, 'a', 'b', 'c')).toBe(false)

    cluster.raft('a').proposeConfigChange({ type: 'promote', node: 'd' })
    cluster.deliverAll()
    expect(cluster.raft('d').status().config).toEqual({ voters: ['a', 'b', 'c', 'd'], nonVoters: [] })
    // 4 voters: quorum 3.
    expect(commitsWithout(cluster, 'a', 'd')).toBe(true)
    expect(commitsWithout(cluster, 'a', 'c', 'd')).toBe(false)
    cluster.tickAll(3)
    const applied = cluster.node('a').appliedData
    for (const id of ['b', 'c', 'd']) expect(cluster.node(id).appliedData).toEqual(applied)
  })

  test('a second change is refused while one is uncommitted', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.isolate('b', 'c')
    cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })
    expect(() => cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'e' })).toThrow(
      ConfigChangeError,
    )
    cluster.heal()
    cluster.deliverAll()
    expect(() => cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'e' })).not.toThrow()
  })

  test('a new leader accepts no change until an entry of its term commits', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.raft('a').campaign()
    cluster.deliver(cluster.collect())
    cluster.deliver(cluster.collect())
    expect(cluster.leader()).toBe('a')
    expect(() => cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })).toThrow(
      ConfigChangeError,
    )
    cluster.deliverAll()
    expect(() => cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })).not.toThrow()
  })

  test('invalid changes are refused, including one that would leave no voter', () => {
    const cluster = Cluster.create(['a'])
    cluster.elect('a')
    const leader = cluster.raft('a')
    expect(() => leader.proposeConfigChange({ type: 'removeVoter', node: 'a' })).toThrow(ConfigChangeError)
    expect(() => leader.proposeConfigChange({ type: 'addVoter', node: 'a' })).toThrow(ConfigChangeError)
    expect(() => leader.proposeConfigChange({ type: 'promote', node: 'x' })).toThrow(ConfigChangeError)
    expect(() => leader.proposeConfigChange({ type: 'removeNonVoter', node: 'x' })).toThrow(ConfigChangeError)
    expect(leader.status().lastIndex).toBe(1)
  })

  test('remove a follower: the quorum shrinks, and the removed node learns it and stops campaigning', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.raft('a').proposeConfigChange({ type: 'removeVoter', node: 'c' })
    cluster.deliverAll()
    cluster.tickAll(1)
    expect(Object.keys(cluster.raft('a').status().progress ?? {}).sort()).toEqual(['a', 'b'])
    expect(cluster.raft('c').status().config.voters).toEqual(['a', 'b'])
    // 2 voters: quorum 2.
    expect(commitsWithout(cluster, 'a', 'b')).toBe(false)
    const term = cluster.raft('c').status().term
    cluster.tickAll(60)
    expect(cluster.raft('c').status()).toMatchObject({ term, role: 'follower' })
    expect(cluster.leader()).toBe('a')
  })

  test('remove the leader: it leads until the removal commits, then steps down and hands over', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    const rule = cluster.isolate('c')
    cluster.raft('a').proposeConfigChange({ type: 'removeVoter', node: 'a' })
    cluster.deliverAll()
    // The new config {b, c} needs both: not committed yet, a still leads and replicates.
    expect(cluster.raft('a').status().role).toBe('leader')
    expect(() => cluster.raft('a').propose(bytes('y'))).toThrow(ProposalDroppedError)
    cluster.removeDropRule(rule)
    cluster.tickAll(1)
    expect(cluster.raft('a').status().role).toBe('follower')
    const leader = cluster.leader()
    expect(['b', 'c']).toContain(leader)
    cluster.propose('z', leader)
    const term = cluster.raft('a').status().term
    cluster.tickAll(60)
    for (const id of ['b', 'c']) expect(cluster.node(id).appliedData).toEqual(['x', 'z'])
    expect(cluster.raft('a').status().term).toBe(term)
    expect(cluster.raft('a').status().role).toBe('follower')
  })

  test('a configuration takes effect when appended and reverts when its entry is truncated away', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.isolate('a')
    cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })
    expect(cluster.raft('a').status().config.nonVoters).toEqual(['d'])
    let leader = ''
    while (leader === '') {
      cluster.tickAll()
      leader = cluster.leaders().find(id => id !== 'a') ?? ''
    }
    cluster.propose('y', leader)
    cluster.heal()
    cluster.tickAll(3)
    expect(cluster.raft('a').status().config).toEqual({ voters: ['a', 'b', 'c'], nonVoters: [] })
    expect(cluster.node('a').appliedData).toEqual(['x', 'y'])
  })

  test('a voter added directly takes part in elections', () => {
    const cluster = Cluster.create(['a'])
    cluster.elect('a')
    cluster.raft('a').proposeConfigChange({ type: 'addVoter', node: 'b' })
    cluster.add('b', emptyState())
    cluster.deliverAll()
    cluster.tickAll(2)
    expect(cluster.raft('b').status().config.voters).toEqual(['a', 'b'])
    cluster.crash('a')
    cluster.restart('a')
    for (let i = 0; i < 100 && cluster.leaders().length === 0; i++) cluster.tickAll()
    expect(cluster.leaders()).toHaveLength(1)
  })
})
