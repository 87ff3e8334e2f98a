/**
 * Commits learned from peers: a follower that forwarded a proposal is named in the leader's appends to the
 * other followers (`notify`), they send it a copy of their answer once durable, and it commits an entry of the
 * current term held by a majority without waiting for the leader's commit notice.
 */
import { describe, expect, test } from 'vitest'
import type { AppendRequest, Config, Message } from '../../src/raft/types.ts'
import { bytes, Cluster, stateWithLog } from './harness.ts'

const isAppendWithEntries = (m: Message): m is AppendRequest => m.type === 'append' && m.entries.length > 0

/** a leads a, b, c; returns the cluster with everything settled. */
function threeNodes(options = {}): Cluster {
  const cluster = Cluster.create(['a', 'b', 'c'], options)
  cluster.elect('a')
  cluster.deliverAll()
  return cluster
}

/** The leader's own copy to an origin (an answer sent by the leader). */
const leaderCopy = (m: Message): boolean => m.type === 'appendResponse' && m.from === 'a'

describe('commits learned from peers', () => {
  test("the origin commits from the leader's copy and its own log, before the leader hears any answer", () => {
    const cluster = threeNodes()
    const { index } = cluster.raft('a').propose(bytes('x'), 'b')
    const sent = cluster.collect()
    // Sent after the leader's log write: its own acknowledgement, to b only.
    const copies = sent.filter(leaderCopy)
    expect(copies).toMatchObject([{ to: 'b', success: true, index }])
    cluster.deliver(sent.filter(m => m.to === 'b'))
    // b's own copy counts only once durable (found by the simulator, seed 12539: a commit index ahead of
    // what a majority holds on disk).
    expect(cluster.raft('b').status().commit).toBeLessThan(index)
    cluster.process('b')
    expect(cluster.raft('b').status().commit).toBe(index)
    cluster.collect()
    expect(cluster.node('b').appliedData).toContain('x')
    expect(cluster.raft('a').status().commit).toBeLessThan(index)
  })

  test("the origin commits from another follower's copy", () => {
    const cluster = threeNodes()
    const { index } = cluster.raft('a').propose(bytes('x'), 'b')
    const sent = cluster.collect()
    const toC = sent.find(m => m.to === 'c' && isAppendWithEntries(m)) as AppendRequest
    const toB = sent.find(m => m.to === 'b' && isAppendWithEntries(m)) as AppendRequest
    // Only the other follower is asked to notify b; b is not asked to notify itself.
    expect(toC.notify).toEqual(['b'])
    expect(toB.notify).toBeUndefined()
    cluster.deliver(sent.filter(m => !leaderCopy(m)))
    const answers = cluster.collect()
    const copy = answers.find(m => m.from === 'c' && m.to === 'b')
    expect(copy).toMatchObject({ type: 'appendResponse', success: true, index })
    // Deliver only the copy: the leader hears nothing, yet b commits and applies the entry.
    cluster.deliver([copy as Message])
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBe(index)
    expect(cluster.node('b').appliedData).toContain('x')
    expect(cluster.raft('a').status().commit).toBeLessThan(index)
  })

  test('a read at the leader waits for what a follower may have answered from copies', () => {
    // Found by the simulator (seed 41): b answered its write from the leader's copy, then a read through
    // the leader, at the leader's lower commit index, missed it.
    const cluster = threeNodes()
    const { index } = cluster.raft('a').propose(bytes('x'), 'b')
    const sent = cluster.collect()
    cluster.deliver(sent.filter(m => m.to === 'b'))
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBe(index)
    expect(cluster.raft('a').status().commit).toBeLessThan(index)
    cluster.raft('a').readIndex('after-write')
    cluster.deliverAll()
    const read = cluster.node('a').readStates.find(state => state.context === 'after-write')
    expect(read?.index).toBeGreaterThanOrEqual(index)
  })

  test('a follower left the only voter does not commit past what the leader was told of', () => {
    // Found by the simulator's read-index check (seed 5 with the shrink-to-one scenario): the leader a
    // removed itself, b, the one voter left, counted its own log as a majority and committed an entry a knew
    // nothing of, and a read through a got a read point below it.
    const cluster = Cluster.create(['a', 'b'])
    cluster.elect('a')
    cluster.raft('a').propose(bytes('x'), 'b') // b has had a copy from the leader: it counts peers now
    cluster.deliverAll()
    // b's answers to a are lost: a still leads, its removal not committed as far as it knows.
    const rule = cluster.addDropRule(m => m.from === 'b' && m.type === 'appendResponse')
    const { index } = cluster.raft('a').propose(bytes('y'))
    cluster.raft('a').proposeConfigChange({ type: 'removeVoter', node: 'a' })
    cluster.deliverAll()
    expect(cluster.raft('b').status().config.voters).toEqual(['b'])
    expect(cluster.raft('a').status()).toMatchObject({ role: 'leader' })
    expect(cluster.raft('a').status().commit).toBeLessThan(index)
    cluster.removeDropRule(rule)
    cluster.addDropRule(m => m.from === 'b' && m.type === 'appendResponse')
    cluster.raft('a').readIndex('after')
    cluster.deliverAll()
    const read = cluster.node('a').readStates.find(state => state.context === 'after')
    // Every read point is at least what any node knows committed when the read began.
    expect(read?.index).toBeGreaterThanOrEqual(cluster.raft('b').status().commit)
  })

  test('a proposal without an origin asks nobody to notify', () => {
    const cluster = threeNodes()
    cluster.raft('a').propose(bytes('x'))
    const sent = cluster.collect()
    expect(sent.filter(leaderCopy)).toEqual([])
    const appends = sent.filter(isAppendWithEntries)
    expect(appends.length).toBe(2)
    for (const append of appends) expect(append.notify).toBeUndefined()
  })

  test('with 5 voters the origin needs a majority: itself and two others', () => {
    const cluster = Cluster.create(['a', 'b', 'c', 'd', 'e'])
    cluster.elect('a')
    cluster.deliverAll()
    const { index } = cluster.raft('a').propose(bytes('x'), 'b')
    const sent = cluster.collect()
    cluster.deliver(sent.filter(m => !leaderCopy(m)))
    const copies = cluster.collect().filter(m => m.to === 'b' && m.type === 'appendResponse')
    expect(copies.map(m => m.from).sort()).toEqual(['c', 'd', 'e'])
    cluster.deliver([copies[0]])
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBeLessThan(index)
    cluster.deliver(sent.filter(leaderCopy))
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBe(index)
  })

  test('a copy from another term, or from a node that is not a voter, counts for nothing', () => {
    const cluster = threeNodes()
    const { index, term } = cluster.raft('a').propose(bytes('x'), 'b')
    cluster.deliver(cluster.collect().filter(m => !leaderCopy(m)))
    const copy = cluster.collect().find(m => m.from === 'c' && m.to === 'b') as Message
    cluster.deliver([{ ...copy, from: 'z' }])
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBeLessThan(index)
    cluster.deliver([{ ...copy, term: term - 1 }])
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBeLessThan(index)
    cluster.deliver([copy])
    cluster.collect()
    expect(cluster.raft('b').status().commit).toBe(index)
  })
  test('a follower with an unmatched suffix of an earlier term does not commit from copies', () => {
    // b holds entries of term 2 at 2..3 that the new leader (a) never had; a's first append to b matches at
    // 1 only. A copy from c saying it holds 3 must not make b commit its own, different, entries 2..3.
    const config: Config = { voters: ['a', 'b', 'c'], nonVoters: [] }
    const run = (peerCommitAnyTerm: boolean) => {
      const cluster = new Cluster()
      const options = { preVote: false, bugs: { peerCommitAnyTerm } }
      cluster.add('a', stateWithLog(config, [1, 1], 3, 1), options, 1)
      cluster.add('b', stateWithLog(config, [1, 2, 2], 3, 1), options, 2)
      cluster.add('c', stateWithLog(config, [1, 1], 3, 1), options, 3)
      cluster.raft('a').campaign()
      cluster.deliver(cluster.collect().filter(m => m.to !== 'b'))
      cluster.deliver(cluster.collect().filter(m => m.to !== 'b'))
      const leader = cluster.raft('a').status()
      expect(leader.role).toBe('leader')
      // b hears of the new leader through an entry-less append that matches at 1 only.
      cluster.deliver([
        {
          type: 'append',
          from: 'a',
          to: 'b',
          term: leader.term,
          prevLogIndex: 1,
          prevLogTerm: 1,
          entries: [],
          leaderCommit: 1,
        },
      ])
      cluster.collect()
      cluster.deliver([
        {
          type: 'appendResponse',
          from: 'c',
          to: 'b',
          term: leader.term,
          success: true,
          index: 3,
          hintIndex: 0,
          hintTerm: 0,
        },
      ])
      cluster.collect()
      return cluster.raft('b').status().commit
    }
    expect(run(false)).toBe(1)
    // The switch commits b's entries 2..3 of term 2, which the cluster has replaced: two different entries
    // committed at one index.
    expect(run(true)).toBe(3)
  })
})
