/**
 * A term is learned only from those who take part in elections, and never moves far in one message
 * (issue: one forged Raft response stopped a cluster for good). Each test fails without `mayRaiseTerm`.
 */
import { describe, expect, test } from 'vitest'
import { MAX_TERM, MAX_TERM_ADVANCE } from '../../src/raft/messages.ts'
import type { Message } from '../../src/raft/types.ts'
import { Cluster, emptyState } from './harness.ts'

function withNonVoter(): Cluster {
  const cluster = Cluster.create(['a', 'b', 'c'])
  cluster.elect('a')
  cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })
  cluster.add('d', emptyState())
  cluster.deliverAll()
  cluster.tickAll(2)
  return cluster
}

function response(from: string, term: number): Message {
  return { type: 'appendResponse', from, to: 'a', term, success: true, index: 0, hintIndex: 0, hintTerm: 0 }
}

describe('who may raise a term', () => {
  test('a non-voter answering with a higher term does not depose the leader', () => {
    const cluster = withNonVoter()
    const term = cluster.raft('a').status().term
    for (const type of ['appendResponse', 'heartbeatResponse', 'snapshotResponse', 'readIndex'] as const) {
      const forged = { ...response('d', term + 100), type, context: '', offset: -1 } as Message
      cluster.raft('a').step(forged)
      expect(cluster.raft('a').status()).toMatchObject({ role: 'leader', term })
    }
    // A vote request or response from a non-voter moves nobody either.
    cluster.raft('b').step({
      type: 'vote',
      from: 'd',
      to: 'b',
      term: term + 5,
      lastLogIndex: 99,
      lastLogTerm: term,
      transfer: false,
    })
    expect(cluster.raft('b').status().term).toBe(term)
    // Nor does one from a stranger outside the configuration.
    cluster.raft('a').step(response('stranger', term + 1))
    expect(cluster.raft('a').status()).toMatchObject({ role: 'leader', term })
    // The cluster goes on committing.
    const { index } = cluster.propose('after')
    cluster.deliverAll()
    expect(cluster.raft('a').status().commit).toBeGreaterThanOrEqual(index)
  })

  test('a voter answering with a higher term still makes a stale leader step down', () => {
    const cluster = withNonVoter()
    const term = cluster.raft('a').status().term
    cluster.raft('a').step(response('b', term + 1))
    expect(cluster.raft('a').status()).toMatchObject({ role: 'follower', term: term + 1 })
  })

  test('no message moves a term more than MAX_TERM_ADVANCE, nor past MAX_TERM', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    const term = cluster.raft('a').status().term
    // 2^52 is what the codecs still encode; such a term must never be adopted, or no vote request fits.
    for (const forged of [2 ** 52, term + MAX_TERM_ADVANCE + 1, MAX_TERM + 1]) {
      cluster.raft('a').step(response('b', forged))
      cluster.raft('b').step({
        type: 'heartbeat',
        from: 'c',
        to: 'b',
        term: forged,
        leaderCommit: 0,
        context: '',
      })
      expect(cluster.raft('a').status()).toMatchObject({ role: 'leader', term })
      expect(cluster.raft('b').status().term).toBe(term)
    }
    // A follower that missed many elections still learns the leader's term in one step.
    cluster.raft('a').step(response('b', term + MAX_TERM_ADVANCE))
    expect(cluster.raft('a').status().term).toBe(term + MAX_TERM_ADVANCE)
  })

  test('after forged terms the voters still elect a leader and commit', () => {
    const cluster = withNonVoter()
    const term = cluster.raft('a').status().term
    for (let i = 0; i < 50; i++) {
      for (const id of ['b', 'c']) {
        cluster.raft(id).step({ ...response('d', 2 ** 52), to: id })
        cluster.raft(id).step({ ...response('d', term + 1 + i), to: id })
      }
    }
    cluster.crash('a')
    cluster.tickAll(30)
    cluster.deliverAll()
    const leader = cluster.leader()
    expect(['b', 'c']).toContain(leader)
    expect(cluster.raft(leader).status().term).toBeLessThan(term + 10)
    const { index } = cluster.propose('still writing', leader)
    cluster.deliverAll()
    expect(cluster.raft(leader).status().commit).toBeGreaterThanOrEqual(index)
  })

  test('a node whose term is at MAX_TERM does not campaign (its vote requests could not grow)', () => {
    const cluster = new Cluster()
    const state = emptyState()
    const founder = Cluster.create(['a']).node('a').storage
    cluster.add('a', {
      ...state,
      snapshot: founder.snapshot,
      hardState: { term: MAX_TERM, vote: '', commit: 0 },
    })
    cluster.tickAll(50)
    cluster.deliverAll()
    expect(cluster.raft('a').status()).toMatchObject({ role: 'follower', term: MAX_TERM })
  })
})
