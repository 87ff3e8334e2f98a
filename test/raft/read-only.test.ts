import { describe, expect, test } from 'vitest'
import { ReadOnlyQueue } from '../../src/raft/read-only.ts'

describe('ReadOnlyQueue', () => {
  test('a round completes with a quorum of acknowledgements, and completes every earlier round with it', () => {
    const queue = new ReadOnlyQueue()
    const voters = ['a', 'b', 'c', 'd', 'e']
    queue.add({ from: 'a', context: 'r1' })
    const first = queue.startRound(5)
    queue.add({ from: 'b', context: 'r2' })
    const second = queue.startRound(7)
    queue.ack('b', second)
    expect(queue.takeConfirmed(voters, 'a')).toEqual([])
    queue.ack('c', first) // only the first round: a, b, c
    expect(queue.takeConfirmed(voters, 'a').map(r => r.index)).toEqual([5])
    queue.ack('d', second)
    expect(queue.takeConfirmed(voters, 'a').map(r => r.requests)).toEqual([[{ from: 'b', context: 'r2' }]])
    expect(queue.hasRounds()).toBe(false)
  })

  test('acknowledgements from non-voters and unknown contexts are ignored; reset drops everything', () => {
    const queue = new ReadOnlyQueue()
    queue.add({ from: 'a', context: 'r' })
    const context = queue.startRound(1)
    queue.ack('x', context)
    queue.ack('b', 'garbage')
    expect(queue.takeConfirmed(['a', 'b', 'c'], 'a')).toEqual([])
    queue.reset()
    queue.ack('b', context)
    expect(queue.takeConfirmed(['a', 'b', 'c'], 'a')).toEqual([])
  })

  test('the leader does not count itself when it is not a voter', () => {
    const queue = new ReadOnlyQueue()
    queue.add({ from: 'a', context: 'r' })
    const context = queue.startRound(1)
    queue.ack('b', context)
    expect(queue.takeConfirmed(['b', 'c'], '')).toEqual([])
    queue.ack('c', context)
    expect(queue.takeConfirmed(['b', 'c'], '')).toHaveLength(1)
  })
})
