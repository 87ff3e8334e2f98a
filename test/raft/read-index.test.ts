import { describe, expect, test } from 'vitest'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import type { HeartbeatRequest } from '../../src/raft/types.ts'
import { bytes, Cluster, stateWithLog } from './harness.ts'

describe('ReadIndex (§6.4)', () => {
  test('on the leader: no ReadState before a quorum answers the heartbeat round that carries it', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.raft('a').readIndex('r1')
    const round = cluster.collect()
    const heartbeats = round.filter((m): m is HeartbeatRequest => m.type === 'heartbeat')
    expect(heartbeats.map(m => m.to).sort()).toEqual(['b', 'c'])
    expect(new Set(heartbeats.map(m => m.context)).size).toBe(1)
    expect(heartbeats[0].context).not.toBe('')
    expect(cluster.node('a').readStates).toEqual([])
    // One follower answers: with the leader itself that is a quorum of 3.
    cluster.deliver(round.filter(m => m.to === 'b'))
    const answers = cluster.collect()
    expect(cluster.node('a').readStates).toEqual([])
    cluster.deliver(answers)
    cluster.process('a')
    expect(cluster.node('a').readStates).toEqual([{ context: 'r1', index: 2 }])
  })

  test('many reads between two ready() calls share one heartbeat round', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    for (let i = 0; i < 10; i++) cluster.raft('a').readIndex(`r${i}`)
    const round = cluster.collect()
    expect(round.filter(m => m.type === 'heartbeat')).toHaveLength(2)
    cluster.deliver(round)
    cluster.deliverAll()
    expect(cluster.node('a').readStates.map(r => r.context)).toEqual(
      Array.from({ length: 10 }, (_, i) => `r${i}`),
    )
  })

  test('a single voter answers at once', () => {
    const cluster = Cluster.create(['a'])
    cluster.elect('a')
    cluster.raft('a').readIndex('solo')
    cluster.process('a')
    expect(cluster.node('a').readStates).toEqual([{ context: 'solo', index: 1 }])
  })

  test('a new leader answers only once an entry of its term is committed', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false, checkQuorum: false })
    cluster.elect('a')
    cluster.propose('x')
    cluster.crash('a')
    cluster.raft('b').campaign()
    cluster.deliver(cluster.collect())
    cluster.deliver(cluster.collect())
    expect(cluster.leader()).toBe('b')
    cluster.raft('b').readIndex('early')
    const sent = cluster.collect()
    expect(sent.filter(m => m.type === 'heartbeat' && m.context !== '')).toEqual([])
    cluster.deliver(sent)
    cluster.deliverAll()
    expect(cluster.node('b').readStates).toEqual([{ context: 'early', index: 3 }])
  })

  test('on a follower: relayed to the leader, which answers after confirming; the follower emits the ReadState', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.raft('c').readIndex('f1')
    cluster.deliverAll()
    const kinds = cluster.delivered.map(m => m.type)
    expect(kinds).toContain('readIndex')
    expect(kinds).toContain('readIndexResponse')
    expect(cluster.node('c').readStates).toEqual([{ context: 'f1', index: 2 }])
    expect(cluster.node('a').readStates).toEqual([])
  })

  test("with 3 voters a follower's request is its own acknowledgement: answered with no heartbeat round", () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.deliverAll()
    cluster.raft('c').readIndex('fast')
    const request = cluster.collect()
    expect(request.map(m => m.type)).toEqual(['readIndex'])
    cluster.deliver(request)
    const answer = cluster.collect()
    expect(answer.map(m => m.type)).toEqual(['readIndexResponse'])
    cluster.deliver(answer)
    cluster.process('c')
    expect(cluster.node('c').readStates).toEqual([{ context: 'fast', index: 2 }])
  })

  test('with 5 voters a follower and the leader are no quorum: the leader still confirms with a heartbeat round', () => {
    const cluster = Cluster.create(['a', 'b', 'c', 'd', 'e'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.deliverAll()
    cluster.raft('c').readIndex('slow')
    cluster.deliver(cluster.collect())
    const round = cluster.collect()
    expect(round.some(m => m.type === 'readIndexResponse')).toBe(false)
    expect(round.filter(m => m.type === 'heartbeat')).toHaveLength(4)
    cluster.deliver(round)
    cluster.deliverAll()
    expect(cluster.node('c').readStates).toEqual([{ context: 'slow', index: 2 }])
  })

  test('a request from a non-voter is no acknowledgement of the leader', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.deliverAll()
    cluster
      .raft('a')
      .step({ type: 'readIndex', from: 'z', to: 'a', term: cluster.raft('a').status().term, context: 'z1' })
    const round = cluster.collect()
    expect(round.some(m => m.type === 'readIndexResponse')).toBe(false)
    expect(round.filter(m => m.type === 'heartbeat')).toHaveLength(2)
  })

  test('with no known leader the request is dropped', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.raft('b').readIndex('nobody')
    expect(cluster.raft('b').hasReady()).toBe(false)
  })

  test('a partitioned old leader never completes a read', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.isolate('a')
    cluster.raft('a').readIndex('stale')
    for (let i = 0; i < 40; i++) cluster.tickAll()
    expect(cluster.raft('a').status().role).not.toBe('leader')
    const leader = cluster.leader()
    cluster.propose('y', leader)
    cluster.heal()
    cluster.tickAll(5)
    expect(cluster.node('a').readStates).toEqual([])
  })
})

describe('ReadIndex on a sole voter', () => {
  // The sole voter b holds the write at index 2, acknowledged by the leader that removed itself, but its own
  // commit index still says 1. It must not serve a read at 1 before an entry of its own term commits.
  function soleVoter(options: Partial<RaftCoreOptions> = {}): Cluster {
    const cluster = new Cluster()
    cluster.add('b', stateWithLog({ voters: ['b'], nonVoters: [] }, [1, 1], 1, 1), options)
    cluster.raft('b').campaign()
    expect(cluster.raft('b').status().role).toBe('leader')
    return cluster
  }

  test('waits for an entry of its term to commit, then answers at or above every acknowledged write', () => {
    const cluster = soleVoter()
    cluster.raft('b').readIndex('r1')
    cluster.deliverAll()
    const reads = cluster.node('b').readStates
    expect(reads.map(read => read.context)).toEqual(['r1'])
    expect(reads[0].index).toBeGreaterThanOrEqual(2)
  })

  test('with the single-voter-read bug it answers below the acknowledged write', () => {
    const cluster = soleVoter({ bugs: { singleVoterRead: true } })
    cluster.raft('b').readIndex('r1')
    cluster.deliverAll()
    expect(cluster.node('b').readStates).toEqual([{ context: 'r1', index: 1 }])
  })
})

describe('the read point with forwarded entries in flight', () => {
  test('waits only for what a majority of voters was sent, not for the whole pipeline', () => {
    // One entry a message, one message in flight: the leader's log runs far ahead of what it has sent.
    const cluster = Cluster.create(['a', 'b', 'c'], { maxInflightMessages: 1, maxMessageBytes: 1 })
    cluster.elect('a')
    const commit = cluster.raft('a').status().commit
    // Entries b forwarded: the leader notifies b of its own durable copy (b may commit from notices).
    for (let i = 0; i < 10; i++) cluster.raft('a').propose(bytes(`w${i}`), 'b')
    const first = cluster.collect()
    expect(first.filter(m => m.type === 'append' && m.entries.length > 0)).toHaveLength(2)
    cluster.raft('a').readIndex('r')
    const round = cluster.collect().filter(m => m.type === 'heartbeat' && m.context !== '')
    cluster.deliver(round)
    cluster.deliver(cluster.collect().filter(m => m.type === 'heartbeatResponse'))
    cluster.process('a')
    // No follower can hold more than the one entry sent to it, so none can have committed past it: before,
    // the read point was the leader's last entry, and the read waited for all ten to commit.
    expect(cluster.node('a').readStates).toEqual([{ context: 'r', index: commit + 1 }])
  })
})
