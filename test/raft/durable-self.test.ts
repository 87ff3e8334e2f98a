/**
 * The leader's own copy of an entry counts toward a commit only once the shell says it is durable
 * (`advance`). The agent's runner relies on it: it sends a leader's appends before its own write and applies
 * committed entries before writing the next ones, so an entry it has not stored may be committed only by a
 * majority of other voters' durable copies.
 */
import { describe, expect, test } from 'vitest'
import { RaftNode } from '../../src/raft/raft.ts'
import type { Message } from '../../src/raft/types.ts'
import { bytes, founderState } from './harness.ts'

function ack(from: string, term: number, index: number): Message {
  return { type: 'appendResponse', from, to: 'a', term, success: true, index, hintIndex: 0, hintTerm: 0 }
}

/** `a`, leading voters a, b and c in term 1, with its no-op committed and applied. */
function leader(): RaftNode {
  const node = new RaftNode({
    id: 'a',
    state: founderState({ voters: ['a', 'b', 'c'], nonVoters: [] }),
    random: () => 0.5,
    options: { preVote: false },
  })
  node.campaign()
  node.advance(node.ready())
  node.step({ type: 'voteResponse', from: 'b', to: 'a', term: 1, granted: true })
  node.advance(node.ready())
  node.step(ack('b', 1, 1))
  node.advance(node.ready())
  expect(node.status()).toMatchObject({ role: 'leader', commit: 1, applied: 1 })
  return node
}

describe("the leader's own copy", () => {
  test('counts only once durable: one follower and the unwritten copy are no majority; the write makes one', () => {
    const node = leader()
    node.propose(bytes('x'))
    const unwritten = node.ready()
    expect(unwritten.entries.map(entry => entry.index)).toEqual([2])
    node.step(ack('b', 1, 2))
    expect(node.status().commit).toBe(1)
    node.advance(unwritten)
    expect(node.status().commit).toBe(2)
    expect(node.ready().committed.map(entry => entry.index)).toEqual([2])
  })

  test('is not needed when a majority of the other voters hold the entry durably', () => {
    const node = leader()
    node.propose(bytes('x'))
    const unwritten = node.ready()
    node.step(ack('b', 1, 2))
    node.step(ack('c', 1, 2))
    expect(node.status().commit).toBe(2)
    node.advance(unwritten)
  })
})
