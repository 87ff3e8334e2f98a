import { describe, expect, test } from 'vitest'
import { majorityIndex, quorumSize, tallyVotes } from '../../src/raft/quorum.ts'

describe('quorum arithmetic', () => {
  test('quorum sizes', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(quorumSize)).toEqual([1, 2, 2, 3, 3, 4, 4])
  })

  test('majorityIndex is the highest index a majority has', () => {
    const match = (values: Record<string, number>) => (id: string) => values[id] ?? 0
    expect(majorityIndex(['a'], match({ a: 7 }))).toBe(7)
    expect(majorityIndex(['a', 'b', 'c'], match({ a: 9, b: 5, c: 2 }))).toBe(5)
    expect(majorityIndex(['a', 'b', 'c', 'd'], match({ a: 9, b: 5, c: 2, d: 8 }))).toBe(5)
    expect(majorityIndex(['a', 'b', 'c', 'd', 'e'], match({ a: 1, b: 2, c: 3, d: 4, e: 5 }))).toBe(3)
    expect(majorityIndex([], match({}))).toBe(0)
    const many = Array.from({ length: 20 }, (_, i) => `n${i}`)
    expect(majorityIndex(many, id => Number(id.slice(1)))).toBe(9)
  })

  test('tallyVotes counts only voters', () => {
    const votes = (entries: [string, boolean][]) => new Map(entries)
    expect(tallyVotes(['a', 'b', 'c'], votes([['a', true]]))).toBe('pending')
    expect(
      tallyVotes(
        ['a', 'b', 'c'],
        votes([
          ['a', true],
          ['b', true],
        ]),
      ),
    ).toBe('won')
    expect(
      tallyVotes(
        ['a', 'b', 'c'],
        votes([
          ['a', true],
          ['x', true],
          ['y', true],
        ]),
      ),
    ).toBe('pending')
    expect(
      tallyVotes(
        ['a', 'b', 'c'],
        votes([
          ['b', false],
          ['c', false],
        ]),
      ),
    ).toBe('lost')
  })
})
