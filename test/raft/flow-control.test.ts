import { describe, expect, test } from 'vitest'
import { ProposalDroppedError } from '../../src/raft/errors.ts'
import { Cluster } from './harness.ts'

const CAP = 400
const SMALL = 60

/**
 * A leader under a steady stream of small proposals (`writers` of them, each retrying every round, ahead of
 * the large one) and one proposal of `size` bytes retried each round; the network moves one hop a round, so
 * commits free the room a little at a time. Returns the round the large one was admitted in (or -1), how many
 * small ones were admitted, and the most uncommitted bytes seen.
 */
function race(size: number, rounds: number, writers = 6) {
  const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: CAP })
  cluster.elect('a')
  const leader = cluster.raft('a')
  const sizes = new Map<number, number>()
  const tryPropose = (bytes: number): boolean => {
    try {
      sizes.set(leader.propose(new Uint8Array(bytes)).index, bytes)
      return true
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err
      return false
    }
  }
  const uncommitted = () => {
    const commit = leader.status().commit
    let total = 0
    for (const [index, bytes] of sizes) if (index > commit) total += bytes
    return total
  }
  let admittedAt = -1
  let small = 0
  let most = 0
  for (let round = 0; round < rounds; round++) {
    for (let w = 0; w < writers; w++) if (tryPropose(SMALL)) small++
    if (admittedAt < 0 && tryPropose(size)) admittedAt = round
    most = Math.max(most, uncommitted())
    cluster.deliver(cluster.collect())
  }
  cluster.deliverAll()
  return { admittedAt, small, most, cluster }
}

describe('maxUncommittedBytes flow control is fair to a large proposal', () => {
  test('a large proposal competing with a stream of small ones is admitted within a few rounds', () => {
    const { admittedAt, small, most } = race(300, 200)
    // Refused once, it waits in line: small ones are admitted only beside its room, so it gets in as soon as
    // what was uncommitted at its refusal commits (two hops here), instead of never.
    expect(admittedAt).toBeGreaterThanOrEqual(0)
    expect(admittedAt).toBeLessThanOrEqual(4)
    // The small writers keep going before and after it.
    expect(small).toBeGreaterThan(200)
    expect(most).toBeLessThanOrEqual(CAP)
  })

  test('a proposal larger than the cap gets in alone once the stream drains, and the stream goes on', () => {
    const { admittedAt, small, most, cluster } = race(CAP + 100, 200)
    expect(admittedAt).toBeGreaterThanOrEqual(0)
    expect(admittedAt).toBeLessThanOrEqual(4)
    expect(small).toBeGreaterThan(200)
    // The bound: the cap, or one oversize entry alone.
    expect(most).toBeLessThanOrEqual(CAP + 100)
    expect(cluster.raft('a').status().commit).toBe(cluster.raft('a').status().lastIndex)
  })

  test('an oversize proposal is still admitted at once when nothing is uncommitted, and only then', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: CAP })
    cluster.elect('a')
    cluster.isolate('a')
    const leader = cluster.raft('a')
    expect(() => leader.propose(new Uint8Array(CAP * 2))).not.toThrow()
    expect(() => leader.propose(new Uint8Array(1))).toThrow(ProposalDroppedError)
    expect(() => leader.propose(new Uint8Array(CAP * 2))).toThrow(ProposalDroppedError)
  })

  test('a refused proposal that is never retried holds its room for at most an election timeout', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: CAP, electionTicks: 10 })
    cluster.elect('a')
    const leader = cluster.raft('a')
    leader.propose(new Uint8Array(200))
    expect(() => leader.propose(new Uint8Array(300))).toThrow(ProposalDroppedError)
    cluster.deliverAll()
    // Its room is kept: 150 would fit under the cap but not beside the 300 waiting.
    expect(() => leader.propose(new Uint8Array(150))).toThrow(ProposalDroppedError)
    cluster.deliverAll()
    // The 300 never comes back; after the election timeout the room is given up.
    cluster.tickAll(11)
    expect(() => leader.propose(new Uint8Array(150))).not.toThrow()
  })

  test('waiters are served first come, first served', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: CAP })
    cluster.elect('a')
    cluster.isolate('a')
    const leader = cluster.raft('a')
    leader.propose(new Uint8Array(350))
    expect(() => leader.propose(new Uint8Array(300))).toThrow(ProposalDroppedError)
    expect(() => leader.propose(new Uint8Array(200))).toThrow(ProposalDroppedError)
    cluster.heal()
    cluster.deliverAll()
    // Nothing uncommitted, but the 300 refused first goes first: the 200 does not fit beside it.
    expect(() => leader.propose(new Uint8Array(200))).toThrow(ProposalDroppedError)
    expect(() => leader.propose(new Uint8Array(300))).not.toThrow()
    cluster.deliverAll()
    expect(() => leader.propose(new Uint8Array(200))).not.toThrow()
  })

  test('only the first waiter keeps room: waiters whose sizes sum past the cap do not stall the rest', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: CAP })
    cluster.elect('a')
    cluster.isolate('a')
    const leader = cluster.raft('a')
    leader.propose(new Uint8Array(350))
    for (const size of [300, 250, 200])
      expect(() => leader.propose(new Uint8Array(size))).toThrow(ProposalDroppedError)
    cluster.heal()
    cluster.deliverAll()
    // 100 fits beside the first waiter (300), though not beside all three.
    expect(() => leader.propose(new Uint8Array(100))).not.toThrow()
    expect(() => leader.propose(new Uint8Array(250))).toThrow(ProposalDroppedError)
    expect(() => leader.propose(new Uint8Array(300))).not.toThrow()
  })

  test('a waiter known by its key keeps its place: a retry of another size is it, a stranger of its size is not', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { maxUncommittedBytes: CAP })
    cluster.elect('a')
    cluster.isolate('a')
    const leader = cluster.raft('a')
    leader.propose(new Uint8Array(350))
    expect(() => leader.propose(new Uint8Array(300), undefined, 's#1')).toThrow(ProposalDroppedError)
    cluster.heal()
    cluster.deliverAll()
    // Another proposal of the same size does not take the first waiter's place (known by size, it did).
    expect(() => leader.propose(new Uint8Array(300), undefined, 's#2')).toThrow(ProposalDroppedError)
    // The retry, a byte longer (its timestamp and acknowledgements changed), is the waiter and goes first.
    expect(() => leader.propose(new Uint8Array(301), undefined, 's#1')).not.toThrow()
    cluster.deliverAll()
    expect(() => leader.propose(new Uint8Array(300), undefined, 's#2')).not.toThrow()
  })
})
