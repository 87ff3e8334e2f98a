/** Hostile and nonsensical input: `step` never throws and the node's invariants hold. */
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { encodeConfig } from '../../src/raft/config.ts'
import type { RaftNode } from '../../src/raft/raft.ts'
import type { Entry, Message } from '../../src/raft/types.ts'
import { Cluster } from './harness.ts'

const ids = ['a', 'b', 'c', 'stranger', '']
const id = fc.constantFrom(...ids)
// Mostly plausible numbers, sometimes absurd ones.
const num = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, Number.NaN, Number.MAX_SAFE_INTEGER, 1e300) },
)
const data = fc.uint8Array({ maxLength: 8 })
const config = fc.record({
  voters: fc.array(id, { maxLength: 3 }),
  nonVoters: fc.array(id, { maxLength: 2 }),
})
const entry: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ term: num, index: num, type: fc.constant('normal' as const), data }),
  fc.record({
    term: num,
    index: num,
    type: fc.constant('config' as const),
    data: fc.oneof(data, config.map(encodeConfig)),
  }),
)
/** Appends whose entries are consecutive (the plausible case) or arbitrary. */
const entries = fc.oneof(
  fc.array(entry, { maxLength: 4 }),
  fc
    .tuple(num, fc.integer({ min: 0, max: 4 }), num)
    .map(([start, count, term]) =>
      Array.from(
        { length: count },
        (_, i): Entry => ({ term, index: start + 1 + i, type: 'normal', data: new Uint8Array(1) }),
      ),
    ),
)
const base = { from: id, to: fc.constantFrom('a', 'a', 'a', 'b'), term: num }

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    ...base,
    type: fc.constantFrom('vote' as const, 'preVote' as const),
    lastLogIndex: num,
    lastLogTerm: num,
    transfer: fc.boolean(),
  }),
  fc.record({
    ...base,
    type: fc.constantFrom('voteResponse' as const, 'preVoteResponse' as const),
    granted: fc.boolean(),
  }),
  fc.record({
    ...base,
    type: fc.constant('append' as const),
    prevLogIndex: num,
    prevLogTerm: num,
    entries,
    leaderCommit: num,
  }),
  fc.record({
    ...base,
    type: fc.constant('appendResponse' as const),
    success: fc.boolean(),
    index: num,
    hintIndex: num,
    hintTerm: num,
  }),
  fc.record({
    ...base,
    type: fc.constant('heartbeat' as const),
    leaderCommit: num,
    context: fc.constantFrom('', 'read:1', 'read:x', 'zz'),
  }),
  fc.record({
    ...base,
    type: fc.constant('heartbeatResponse' as const),
    context: fc.constantFrom('', 'read:1', 'read:99', 'read:-1'),
  }),
  fc.record({
    ...base,
    type: fc.constant('snapshot' as const),
    meta: fc.record({ index: num, term: num, config }),
    offset: num,
    data,
    done: fc.boolean(),
  }),
  fc.record({
    ...base,
    type: fc.constant('snapshotResponse' as const),
    index: num,
    offset: num,
    done: fc.boolean(),
  }),
  fc.record({ ...base, type: fc.constant('timeoutNow' as const) }),
  fc.record({ ...base, type: fc.constant('readIndex' as const), context: fc.string({ maxLength: 3 }) }),
  fc.record({
    ...base,
    type: fc.constant('readIndexResponse' as const),
    context: fc.string({ maxLength: 3 }),
    index: num,
  }),
)

function checkInvariants(node: RaftNode, lastApplied: { index: number }): void {
  const ready = node.ready()
  for (const committed of ready.committed) {
    expect(committed.index).toBe(lastApplied.index + 1)
    lastApplied.index = committed.index
  }
  if (ready.snapshot) lastApplied.index = Math.max(lastApplied.index, ready.snapshot.meta.index)
  node.advance(ready)
  const status = node.status()
  expect(status.commit).toBeLessThanOrEqual(status.lastIndex)
  expect(status.applied).toBeLessThanOrEqual(status.commit)
  expect(Number.isSafeInteger(status.term)).toBe(true)
  expect(Number.isSafeInteger(status.lastIndex)).toBe(true)
}

type Setup = () => RaftNode

const setups: Record<string, Setup> = {
  follower: () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('b')
    cluster.propose('x', 'b')
    return cluster.raft('a')
  },
  leader: () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    cluster.propose('x')
    cluster.compact('a')
    cluster.propose('y')
    return cluster.raft('a')
  },
  candidate: () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { preVote: false })
    cluster.raft('a').campaign()
    cluster.collect()
    return cluster.raft('a')
  },
  preCandidate: () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.raft('a').campaign()
    cluster.collect()
    return cluster.raft('a')
  },
}

describe('robustness: arbitrary well-typed messages', () => {
  for (const [role, setup] of Object.entries(setups)) {
    test(`a ${role} never throws and keeps its invariants`, () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(message, fc.nat(3)), { maxLength: 40 }), steps => {
          const node = setup()
          const lastApplied = { index: node.status().applied }
          for (const [m, action] of steps) {
            node.step(m)
            if (action === 0) node.tick()
            if (action <= 1) checkInvariants(node, lastApplied)
          }
          checkInvariants(node, lastApplied)
        }),
        { numRuns: 150, seed: 42 },
      )
    })
  }

  test('duplicated and reordered traffic of a real run changes nothing', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    for (let i = 0; i < 5; i++) cluster.propose(`v${i}`)
    const history = [...cluster.delivered]
    // Replay everything, reversed, twice.
    for (let i = 0; i < 2; i++) cluster.deliver([...history].reverse())
    cluster.deliverAll()
    cluster.tickAll(3)
    expect(cluster.leader()).toBe('a')
    for (const n of ['a', 'b', 'c'])
      expect(cluster.node(n).appliedData).toEqual(['v0', 'v1', 'v2', 'v3', 'v4'])
  })
})
