import { describe, expect, test } from 'vitest'
import { NotLeaderError, ProposalDroppedError } from '../../src/raft/errors.ts'
import { RaftNode } from '../../src/raft/raft.ts'
import type { AppendRequest, AppendResponse, Config, Message } from '../../src/raft/types.ts'
import { bytes, Cluster, founderState, logTerms, stateWithLog } from './harness.ts'

const appends = (messages: Message[]) => messages.filter((m): m is AppendRequest => m.type === 'append')

describe('log replication (§5.3)', () => {
  test('entries proposed on the leader are applied in order on every node', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    for (let i = 0; i < 20; i++) cluster.propose(`v${i}`)
    const expected = Array.from({ length: 20 }, (_, i) => `v${i}`)
    for (const id of ['a', 'b', 'c']) {
      expect(cluster.node(id).appliedData).toEqual(expected)
      expect(cluster.raft(id).status()).toMatchObject({ commit: 21, applied: 21, lastIndex: 21 })
    }
  })

  test('the commit notice to a caught-up follower asks for no answer, and gets none', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.raft('a').propose(bytes('x'))
    const withEntries = appends(cluster.collect())
    expect(withEntries.every(m => m.entries.length === 1 && m.commitOnly === undefined)).toBe(true)
    cluster.deliver(withEntries)
    const acks = cluster.collect()
    expect(acks.map(m => m.type)).toEqual(['appendResponse', 'appendResponse'])
    cluster.deliver(acks)
    const notices = appends(cluster.collect())
    expect(notices).toHaveLength(2)
    expect(notices.every(m => m.entries.length === 0 && m.commitOnly === true)).toBe(true)
    cluster.deliver(notices)
    expect(cluster.collect()).toEqual([])
    expect(cluster.raft('b').status().commit).toBe(cluster.raft('a').status().commit)
    // A notice that does not match the follower's log is still answered, with a rejection.
    cluster.raft('b').step({ ...notices[0], prevLogIndex: 9, prevLogTerm: 9, leaderCommit: 2 })
    const rejection = cluster.collect()
    expect(rejection).toMatchObject([{ type: 'appendResponse', success: false }])
  })

  test('propose on a follower throws NotLeaderError naming the leader; with no leader the hint is empty', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    expect(() => cluster.raft('b').propose(bytes('x'))).toThrow(NotLeaderError)
    cluster.elect('a')
    try {
      cluster.raft('b').propose(bytes('x'))
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(NotLeaderError)
      expect((error as NotLeaderError).leader).toBe('a')
      expect((error as NotLeaderError).name).toBe('NotLeaderError')
    }
  })

  test('a leader commits only what is durable on a majority; the follower applies only what it persisted', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.isolate('b', 'c')
    cluster.propose('x')
    expect(cluster.raft('a').status().commit).toBe(1)
    cluster.heal()
    cluster.tickAll(1)
    expect(cluster.raft('a').status().commit).toBe(2)
    // Every committed entry a node applied was in its stored log.
    for (const id of ['a', 'b', 'c']) {
      const node = cluster.node(id)
      for (const ready of node.readies) {
        for (const entry of ready.committed)
          expect(node.storage.entries.some(e => e.index === entry.index)).toBe(true)
      }
    }
  })

  test('a follower with a divergent tail is repaired by the new leader', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('common')
    cluster.isolate('a')
    // a keeps accepting proposals it can never commit.
    for (let i = 0; i < 5; i++) cluster.raft('a').propose(bytes(`lost${i}`))
    cluster.deliverAll()
    let leader = ''
    while (leader === '') {
      cluster.tickAll()
      leader = cluster.leaders().find(id => id !== 'a') ?? ''
    }
    cluster.propose('new1', leader)
    cluster.propose('new2', leader)
    cluster.heal()
    cluster.tickAll(3)
    expect(cluster.leader()).toBe(leader)
    const reference = logTerms(cluster.node(leader))
    for (const id of ['a', 'b', 'c']) expect(logTerms(cluster.node(id))).toEqual(reference)
    for (const id of ['a', 'b', 'c']) expect(cluster.node(id).appliedData).toEqual(['common', 'new1', 'new2'])
  })

  test('fast back-off: a long divergent tail is repaired in O(terms) round trips, not O(entries)', () => {
    const config: Config = { voters: ['l', 'f', 'g'], nonVoters: [] }
    const leaderTerms = [1, 1, 1, ...Array(150).fill(4)]
    const followerTerms = [1, 1, 1, ...Array(100).fill(2), ...Array(300).fill(3)]
    const cluster = new Cluster()
    cluster.add('l', stateWithLog(config, leaderTerms, 4, 3), { preVote: false })
    cluster.add('f', stateWithLog(config, followerTerms, 3, 3), { preVote: false })
    cluster.add('g', stateWithLog(config, leaderTerms, 4, 3), { preVote: false })
    cluster.elect('l')
    expect(cluster.leader()).toBe('l')
    const rejections = cluster.delivered.filter(
      (m): m is AppendResponse => m.type === 'appendResponse' && m.from === 'f' && !m.success,
    )
    expect(rejections.length).toBeGreaterThan(0)
    expect(rejections.length).toBeLessThanOrEqual(3)
    expect(logTerms(cluster.node('f'))).toEqual([...leaderTerms, 5])
    expect(cluster.raft('f').status().commit).toBe(154)
  })

  test('a short follower is found in one round trip', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.isolate('c')
    for (let i = 0; i < 50; i++) cluster.propose(`v${i}`)
    cluster.heal()
    cluster.delivered = []
    cluster.tickAll(1)
    const rejections = cluster.delivered.filter(
      m => m.type === 'appendResponse' && m.from === 'c' && !m.success,
    )
    expect(rejections.length).toBeLessThanOrEqual(1)
    expect(cluster.node('c').appliedData).toHaveLength(50)
  })

  test('a follower takes the leader commit only up to the entries the append proved to match', () => {
    const config: Config = { voters: ['l', 'f'], nonVoters: [] }
    const cluster = new Cluster()
    // f has a stale entry at index 2 from term 1 that the leader of term 2 does not have.
    const follower = cluster.add('f', stateWithLog(config, [1, 1], 2, 1)).raft
    follower.step({
      type: 'append',
      from: 'l',
      to: 'f',
      term: 2,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      leaderCommit: 10,
    })
    expect(follower.status().commit).toBe(1)
    follower.step({ type: 'heartbeat', from: 'l', to: 'f', term: 2, leaderCommit: 1, context: '' })
    expect(follower.status().commit).toBe(1)
  })

  test('a lost append is recovered: the leader probes again after a heartbeat answer', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('warm')
    const rule = cluster.addDropRule(m => m.type === 'append' && m.to === 'c')
    cluster.propose('x')
    cluster.removeDropRule(rule)
    expect(cluster.node('c').appliedData).toEqual(['warm'])
    expect(cluster.raft('a').status().progress?.c.state).toBe('replicate')
    cluster.tickAll(3)
    expect(cluster.node('c').appliedData).toEqual(['warm', 'x'])
  })
})

describe('the commit rule (figure 8)', () => {
  const config: Config = { voters: ['s1', 's2', 's3', 's4', 's5'], nonVoters: [] }

  /** S1 leads term 4 with [1, 2(t2)]; its entry 2 reaches S3, so a majority (S1, S2, S3) holds it. */
  function figure8(bugs = {}) {
    const cluster = new Cluster()
    const options = { preVote: false, bugs }
    cluster.add('s1', stateWithLog(config, [1, 2], 3, 1), options, 1)
    cluster.add('s2', stateWithLog(config, [1, 2], 3, 1), options, 2)
    cluster.add('s3', stateWithLog(config, [1], 3, 1), options, 3)
    cluster.add('s4', stateWithLog(config, [1], 3, 1), options, 4)
    cluster.add('s5', stateWithLog(config, [1, 3], 3, 1), options, 5)
    cluster.raft('s1').campaign()
    cluster.deliver(cluster.collect()) // vote requests
    cluster.deliver(cluster.collect()) // votes
    expect(cluster.leader()).toBe('s1')
    expect(cluster.raft('s1').status().term).toBe(4)
    // s1's first appends: let only entry 2 (not its term-4 no-op) reach s3, via a probe and its answer.
    const deliverOnlyEntry2ToS3 = () => {
      for (const message of cluster.collect()) {
        if (message.type === 'append' && message.to === 's3') {
          cluster.deliver([{ ...message, entries: message.entries.filter(e => e.index <= 2) }])
        } else if (message.type === 'appendResponse' && message.to === 's1') {
          cluster.deliver([message])
        }
      }
    }
    for (let i = 0; i < 4; i++) deliverOnlyEntry2ToS3()
    expect(logTerms(cluster.node('s3'))).toEqual([1, 2])
    return cluster
  }

  test('an entry of an earlier term is not committed by counting replicas', () => {
    const cluster = figure8()
    expect(cluster.raft('s1').status().progress?.s3.match).toBe(2)
    expect(cluster.raft('s1').status().commit).toBe(1)
    // Indeed it must not be: s5 can still win term 5 (votes of s2, s3, s4) and overwrite index 2.
    cluster.crash('s1')
    cluster.elect('s5')
    expect(cluster.leader()).toBe('s5')
    cluster.tickAll(2)
    expect(logTerms(cluster.node('s3')).slice(0, 2)).toEqual([1, 3])
    expect(cluster.raft('s5').status().commit).toBeGreaterThanOrEqual(2)
  })

  test('it commits once an entry of the current term is replicated on a majority', () => {
    const cluster = figure8()
    cluster.deliverAll()
    cluster.tickAll(2)
    const status = cluster.raft('s1').status()
    expect(status.commit).toBe(3)
    for (const id of ['s1', 's2', 's3', 's4', 's5']) expect(logTerms(cluster.node(id))).toEqual([1, 2, 4])
  })
})

describe('batching and pipelining', () => {
  test('100 proposals between two ready() calls go out as one append per follower', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('warm')
    for (let i = 0; i < 100; i++) cluster.raft('a').propose(bytes(`p${i}`))
    cluster.process('a')
    const sent = appends(cluster.queue)
    expect(sent.map(m => m.to).sort()).toEqual(['b', 'c'])
    for (const append of sent) expect(append.entries).toHaveLength(100)
    cluster.deliverAll()
    expect(cluster.node('c').appliedData).toHaveLength(101)
  })

  test('appends are split by maxMessageBytes, at least one entry each', () => {
    const cluster = Cluster.create(['a', 'b'], { maxMessageBytes: 25 })
    cluster.elect('a')
    cluster.propose('warm')
    for (let i = 0; i < 10; i++) cluster.raft('a').propose(new Uint8Array(10))
    cluster.raft('a').propose(new Uint8Array(100))
    cluster.process('a')
    expect(appends(cluster.queue).map(m => m.entries.length)).toEqual([2, 2, 2, 2, 2, 1])
  })

  test('the inflight message limit stops sending, and acknowledgements resume it', () => {
    const cluster = Cluster.create(['a', 'b'], { maxInflightMessages: 2, maxMessageBytes: 10 })
    cluster.elect('a')
    cluster.propose('warm')
    for (let i = 0; i < 10; i++) cluster.raft('a').propose(new Uint8Array(10))
    const first = cluster.collect()
    expect(appends(first).map(m => m.entries[0].index)).toEqual([3, 4])
    // Nothing more goes out while both are unacknowledged.
    cluster.raft('a').propose(new Uint8Array(10))
    expect(appends(cluster.collect())).toEqual([])
    cluster.deliver(first)
    cluster.deliver(cluster.collect()) // b's acknowledgements
    const second = cluster.collect()
    expect(appends(second).map(m => m.entries[0].index)).toEqual([5, 6])
    cluster.deliver(second)
    cluster.deliverAll()
    expect(cluster.raft('b').status().lastIndex).toBe(13)
  })

  test('the inflight byte limit stops sending too', () => {
    const cluster = Cluster.create(['a', 'b'], { maxInflightBytes: 25, maxMessageBytes: 10 })
    cluster.elect('a')
    cluster.propose('warm')
    for (let i = 0; i < 10; i++) cluster.raft('a').propose(new Uint8Array(10))
    expect(appends(cluster.collect())).toHaveLength(3)
  })

  test('maxUncommittedBytes drops proposals until the backlog commits', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: 100 })
    cluster.elect('a')
    cluster.isolate('a')
    const leader = cluster.raft('a')
    leader.propose(new Uint8Array(60))
    expect(() => leader.propose(new Uint8Array(60))).toThrow(ProposalDroppedError)
    cluster.heal()
    cluster.deliverAll()
    expect(leader.status().commit).toBe(2)
    expect(() => leader.propose(new Uint8Array(60))).not.toThrow()
  })
})

describe('the Ready contract', () => {
  test('committed entries are handed out once, only when durable, and status().applied follows advance()', () => {
    const node = new RaftNode({
      id: 'a',
      state: founderState({ voters: ['a'], nonVoters: [] }),
      random: () => 0.5,
    })
    node.campaign()
    const first = node.ready()
    expect(first.entries.map(e => e.index)).toEqual([1])
    expect(first.committed).toEqual([])
    node.advance(first)
    node.propose(bytes('x'))
    const second = node.ready()
    expect(second.entries.map(e => e.index)).toEqual([2])
    expect(second.committed.map(e => e.index)).toEqual([1])
    expect(node.status().applied).toBe(0)
    node.advance(second)
    expect(node.status().applied).toBe(1)
    const third = node.ready()
    expect(third.entries).toEqual([])
    expect(third.committed.map(e => e.index)).toEqual([2])
    node.advance(third)
    expect(node.hasReady()).toBe(false)
    expect(node.status()).toMatchObject({ applied: 2, commit: 2 })
  })

  test('a term change or vote is in the hard state of the Ready whose messages depend on it', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.raft('a').campaign()
    const ready = cluster.raft('a').ready()
    expect(ready.messages.filter(m => m.type === 'vote')).toHaveLength(2)
    expect(ready.hardState).toMatchObject({ term: 1, vote: 'a' })
    expect(ready.softState).toEqual({ role: 'candidate', leader: '' })
  })
})
