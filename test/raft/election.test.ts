import { describe, expect, test } from 'vitest'
import { InvalidRequestError } from '../../src/raft/errors.ts'
import { RaftNode } from '../../src/raft/raft.ts'
import type { Message, VoteRequest, VoteResponse } from '../../src/raft/types.ts'
import { bytes, Cluster, founderState, seededRandom } from './harness.ts'

function voteRequest(
  from: string,
  to: string,
  term: number,
  lastLogIndex: number,
  lastLogTerm: number,
): VoteRequest {
  return { type: 'vote', from, to, term, lastLogIndex, lastLogTerm, transfer: false }
}

function responses(messages: Message[], type: 'voteResponse' | 'preVoteResponse'): VoteResponse[] {
  return messages.filter((m): m is VoteResponse => m.type === type)
}

describe('leader election (§5.2)', () => {
  test('a single voter elects itself on campaign and appends a no-op of its term', () => {
    const node = new RaftNode({
      id: 'a',
      state: founderState({ voters: ['a'], nonVoters: [] }),
      random: seededRandom(1),
    })
    node.campaign()
    const ready = node.ready()
    expect(node.status().role).toBe('leader')
    expect(ready.hardState).toEqual({ term: 1, vote: 'a', commit: 0 })
    expect(ready.entries).toEqual([{ term: 1, index: 1, type: 'normal', data: new Uint8Array(0) }])
    // The no-op commits once it is durable.
    expect(ready.committed).toEqual([])
    node.advance(ready)
    expect(node.ready().committed.map(e => e.index)).toEqual([1])
  })

  test('a single voter elects itself when its randomized election timeout expires', () => {
    const cluster = Cluster.create(['a'])
    let ticks = 0
    while (cluster.leaders().length === 0) {
      cluster.tickAll()
      ticks++
    }
    expect(ticks).toBeGreaterThanOrEqual(10)
    expect(ticks).toBeLessThan(20)
  })

  test.each([3, 5])('%i voters elect exactly one leader by ticking, and all follow it', size => {
    const ids = Array.from({ length: size }, (_, i) => `n${i}`)
    const cluster = Cluster.create(ids, {}, size)
    for (let i = 0; i < 100 && cluster.leaders().length === 0; i++) cluster.tickAll()
    const leader = cluster.leader()
    const term = cluster.raft(leader).status().term
    cluster.tickAll(3)
    for (const id of ids) {
      const status = cluster.raft(id).status()
      expect(status.leader).toBe(leader)
      expect(status.term).toBe(term)
    }
  })

  test('split votes resolve: two candidates in the same term, then randomized timeouts pick one', () => {
    const cluster = Cluster.create(['a', 'b', 'c', 'd'], { preVote: false }, 3)
    // a and b campaign at once in term 1; each gets half of the votes.
    cluster.partition(['a', 'c'], ['b', 'd'])
    cluster.raft('a').campaign()
    cluster.raft('b').campaign()
    cluster.deliverAll()
    expect(cluster.leaders()).toEqual([])
    expect(cluster.raft('a').status()).toMatchObject({ role: 'candidate', term: 1 })
    expect(cluster.raft('b').status()).toMatchObject({ role: 'candidate', term: 1 })
    cluster.heal()
    for (let i = 0; i < 100 && cluster.leaders().length === 0; i++) cluster.tickAll()
    const leader = cluster.leader()
    expect(cluster.raft(leader).status().term).toBeGreaterThan(1)
  })

  test('a candidate that learns of a leader in its term becomes its follower', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false, checkQuorum: false })
    cluster.elect('a')
    cluster.isolate('c')
    cluster.elect('c') // term 2, alone: stays candidate
    cluster.elect('b') // term 2 too, with a's vote
    expect(cluster.raft('c').status()).toMatchObject({ role: 'candidate', term: 2 })
    expect(cluster.leader()).toBe('b')
    cluster.heal()
    cluster.tickAll(1)
    expect(cluster.raft('c').status()).toMatchObject({ role: 'follower', leader: 'b', term: 2 })
  })

  test('non-voters never campaign, even when their timeout expires', () => {
    const cluster = Cluster.create(['a'])
    cluster.elect('a')
    cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'l' })
    cluster.add('l', { hardState: { term: 0, vote: '', commit: 0 }, entries: [] })
    cluster.deliverAll()
    cluster.tickAll(3)
    expect(cluster.raft('l').status().config.nonVoters).toEqual(['l'])
    cluster.crash('a')
    cluster.tickAll(50)
    expect(cluster.raft('l').status().role).toBe('follower')
    expect(cluster.raft('l').status().term).toBe(1)
  })
})

describe('the vote rule (§5.4.1)', () => {
  function nodeWithLog(): RaftNode {
    // Log: terms 1 1 2 2 2 (last index 5, last term 2), current term 2.
    const terms = [1, 1, 2, 2, 2]
    return new RaftNode({
      id: 'v',
      state: {
        hardState: { term: 2, vote: '', commit: 0 },
        snapshot: {
          meta: { index: 0, term: 0, config: { voters: ['v', 'x'], nonVoters: [] } },
          data: new Uint8Array(),
        },
        entries: terms.map((term, i) => ({ term, index: i + 1, type: 'normal', data: bytes(`e${i + 1}`) })),
      },
      random: seededRandom(2),
    })
  }

  test.each([
    [10, 1, false, 'older last term, longer log'],
    [4, 2, false, 'same last term, shorter log'],
    [5, 2, true, 'same last term, same length'],
    [6, 2, true, 'same last term, longer log'],
    [1, 3, true, 'newer last term, shorter log'],
  ])('candidate last (index %i, term %i): granted=%s (%s)', (lastIndex, lastTerm, granted) => {
    const node = nodeWithLog()
    node.step(voteRequest('x', 'v', 3, lastIndex, lastTerm))
    const ready = node.ready()
    expect(responses(ready.messages, 'voteResponse')).toEqual([
      { type: 'voteResponse', from: 'v', to: 'x', term: 3, granted },
    ])
    // Granting is recorded in the hard state of the same Ready as the response.
    expect(ready.hardState).toEqual({ term: 3, vote: granted ? 'x' : '', commit: 0 })
  })

  test('one vote per term: a second candidate in the same term is refused', () => {
    const node = nodeWithLog()
    node.step(voteRequest('x', 'v', 3, 5, 2))
    node.step(voteRequest('y', 'v', 3, 9, 9))
    const votes = responses(node.ready().messages, 'voteResponse')
    expect(votes.map(v => [v.to, v.granted])).toEqual([
      ['x', true],
      ['y', false],
    ])
  })

  test('a node with a stale log cannot win; an up-to-date one can', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.elect('a')
    cluster.isolate('c')
    cluster.propose('x')
    cluster.heal()
    cluster.crash('a')
    cluster.tickAll(0)
    // Let the lease lapse on b, then c asks for votes with a shorter log.
    cluster.tick('b', 10)
    cluster.elect('c')
    expect(cluster.raft('c').status().role).not.toBe('leader')
    cluster.elect('b')
    expect(cluster.leader()).toBe('b')
    cluster.tickAll(2)
    expect(cluster.node('c').appliedData).toEqual(['x'])
  })
})

describe('pre-vote (§9.6)', () => {
  test('a partitioned node does not raise its term, and does not disrupt the leader on its return', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    const term = cluster.raft('a').status().term
    cluster.isolate('c')
    cluster.tickAll(100) // many election timeouts for c
    expect(cluster.raft('c').status().term).toBe(term)
    expect(cluster.raft('c').status().role).toBe('preCandidate')
    cluster.heal()
    cluster.tickAll(5)
    expect(cluster.leader()).toBe('a')
    expect(cluster.raft('a').status().term).toBe(term)
    expect(cluster.raft('c').status()).toMatchObject({ role: 'follower', leader: 'a', term })
  })

  test('without pre-vote the same partition raises the term and the leader loses its leadership', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.elect('a')
    const term = cluster.raft('a').status().term
    cluster.isolate('c')
    cluster.tickAll(100)
    expect(cluster.raft('c').status().term).toBeGreaterThan(term + 3)
    cluster.heal()
    cluster.tickAll(1)
    expect(cluster.raft('a').status().term).toBeGreaterThan(term)
  })

  test('a pre-vote is granted for a future term without changing the voter’s term or vote', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.crash('a')
    cluster.tick('b', 10) // b's lease on a lapses
    cluster.raft('c').campaign()
    const requests = cluster.collect()
    expect(requests.filter(m => m.type === 'preVote').map(m => m.term)).toEqual([2, 2])
    cluster.deliver(requests.filter(m => m.to === 'b'))
    const answers = cluster.collect()
    expect(answers).toEqual([{ type: 'preVoteResponse', from: 'b', to: 'c', term: 2, granted: true }])
    expect(cluster.raft('b').status()).toMatchObject({ term: 1, vote: 'a' })
    cluster.deliver(answers)
    cluster.deliverAll()
    expect(cluster.leader()).toBe('c')
    expect(cluster.raft('c').status().term).toBe(2)
  })
})

describe('check-quorum', () => {
  test('an isolated leader steps down within an election timeout', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.isolate('a')
    let ticks = 0
    while (cluster.raft('a').status().role === 'leader') {
      cluster.tickAll()
      ticks++
      expect(ticks).toBeLessThanOrEqual(20)
    }
    expect(ticks).toBeLessThanOrEqual(2 * 10)
    expect(cluster.raft('a').status().leader).toBe('')
    // The majority side elects a new leader meanwhile.
    cluster.tickAll(30)
    expect(cluster.leaders().filter(id => id !== 'a')).toHaveLength(1)
  })

  test('a leader that hears from a quorum keeps leading indefinitely', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.isolate('c')
    cluster.tickAll(200)
    expect(cluster.leaders()).toEqual(['a'])
  })

  test('followers with a live leader ignore a disruptive candidate: no term change, no vote', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.elect('a')
    cluster.tickAll(2)
    cluster.raft('c').campaign()
    const requests = cluster.collect()
    expect(requests.filter(m => m.type === 'vote')).toHaveLength(2)
    cluster.deliver(requests)
    expect(cluster.collect().filter(m => m.type === 'voteResponse')).toEqual([])
    expect(cluster.raft('b').status()).toMatchObject({ term: 1, vote: 'a', leader: 'a' })
    expect(cluster.raft('a').status()).toMatchObject({ role: 'leader', term: 1 })
  })

  test('a vote request marked as transfer bypasses the lease', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster
      .raft('b')
      .step({ type: 'vote', from: 'c', to: 'b', term: 2, lastLogIndex: 1, lastLogTerm: 1, transfer: true })
    expect(cluster.raft('b').status()).toMatchObject({ term: 2, vote: 'c' })
  })
})

describe('restart from persisted state', () => {
  test('term, vote and log survive a crash of every node', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.propose('y')
    const before = ['a', 'b', 'c'].map(id => cluster.raft(id).status())
    for (const id of ['a', 'b', 'c']) cluster.crash(id)
    for (const id of ['a', 'b', 'c']) cluster.restart(id)
    ;['a', 'b', 'c'].forEach((id, i) => {
      const status = cluster.raft(id).status()
      expect(status).toMatchObject({ role: 'follower', term: before[i].term, vote: before[i].vote })
      expect(status.lastIndex).toBe(before[i].lastIndex)
    })
    for (let i = 0; i < 100 && cluster.leaders().length === 0; i++) cluster.tickAll()
    cluster.propose('z')
    for (const id of ['a', 'b', 'c']) expect(cluster.node(id).appliedData).toEqual(['x', 'y', 'z'])
  })

  test('a node never votes twice in a term, across a restart', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.raft('b').step(voteRequest('a', 'b', 5, 0, 0))
    cluster.process('b')
    expect(cluster.node('b').storage.hardState).toEqual({ term: 5, vote: 'a', commit: 0 })
    cluster.crash('b')
    cluster.restart('b')
    cluster.raft('b').step(voteRequest('c', 'b', 5, 0, 0))
    cluster.raft('b').step(voteRequest('a', 'b', 5, 0, 0))
    const votes = responses(cluster.raft('b').ready().messages, 'voteResponse')
    expect(votes.map(v => [v.to, v.granted])).toEqual([
      ['c', false],
      ['a', true],
    ])
  })

  test('entries not persisted before a crash are lost, persisted ones are kept', () => {
    const cluster = Cluster.create(['a'])
    cluster.elect('a')
    cluster.raft('a').propose(bytes('durable'))
    cluster.process('a')
    cluster.raft('a').propose(bytes('lost'))
    cluster.crash('a')
    const node = cluster.restart('a')
    expect(node.raft.status().lastIndex).toBe(2)
    cluster.tickAll(25)
    expect(cluster.node('a').appliedData).toEqual(['durable'])
  })
})

describe('options', () => {
  test.each([
    { electionTicks: 0 },
    { heartbeatTicks: 10 },
    { maxInflightMessages: 0 },
    { snapshotChunkBytes: 1.5 },
  ])('invalid %o is refused at construction', options => {
    expect(
      () =>
        new RaftNode({
          id: 'a',
          state: founderState({ voters: ['a'], nonVoters: [] }),
          random: seededRandom(1),
          options,
        }),
    ).toThrow(InvalidRequestError)
  })
})
