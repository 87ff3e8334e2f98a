import { describe, expect, test } from 'vitest'
import { RaftLog } from '../../src/raft/log.ts'
import type { Entry } from '../../src/raft/types.ts'

const entries = (terms: number[], start = 1, size = 1): Entry[] =>
  terms.map((term, i) => ({ term, index: start + i, type: 'normal', data: new Uint8Array(size) }))

describe('RaftLog', () => {
  test('indexes and terms around a snapshot base', () => {
    const log = new RaftLog(10, 3, entries([3, 4, 4], 11))
    expect(log.firstIndex()).toBe(11)
    expect(log.lastIndex()).toBe(13)
    expect(log.lastTerm()).toBe(4)
    expect(log.term(10)).toBe(3)
    expect(log.term(9)).toBeUndefined()
    expect(log.term(12)).toBe(4)
    expect(log.term(14)).toBeUndefined()
    expect(log.slice(11, 13).map(e => e.index)).toEqual([11, 12])
    expect(log.stableIndex).toBe(13)
    expect(log.hasUnstable()).toBe(false)
  })

  test('persisted entries must be contiguous', () => {
    expect(() => new RaftLog(0, 0, [entries([1])[0], entries([1], 3)[0]])).toThrow(RangeError)
  })

  test('unstable entries are handed out once and become stable when the shell confirms them', () => {
    const log = new RaftLog(0, 0, [])
    for (const entry of entries([1, 1])) log.append(entry)
    expect(log.takeUnstable().map(e => e.index)).toEqual([1, 2])
    expect(log.takeUnstable()).toEqual([])
    expect(log.stableIndex).toBe(0)
    log.stableTo(2, 1)
    expect(log.stableIndex).toBe(2)
  })

  test('a confirmation for entries replaced in the meantime is ignored', () => {
    const log = new RaftLog(0, 0, [])
    for (const entry of entries([1, 1, 1])) log.append(entry)
    log.takeUnstable()
    log.truncateFrom(2)
    log.appendFrom(entries([2, 2], 2), 0)
    log.stableTo(3, 1)
    expect(log.stableIndex).toBe(0)
    expect(log.takeUnstable().map(e => [e.index, e.term])).toEqual([
      [2, 2],
      [3, 2],
    ])
    log.stableTo(3, 2)
    expect(log.stableIndex).toBe(3)
  })

  test('findConflict skips entries already present and finds the first different one', () => {
    const log = new RaftLog(0, 0, entries([1, 1, 2]))
    expect(log.findConflict(entries([1, 1], 1))).toBe(-1)
    expect(log.findConflict(entries([1, 2, 3], 2))).toBe(2)
    expect(log.findConflict(entries([1, 3], 2))).toBe(1)
    expect(log.findConflict(entries([2, 2], 3))).toBe(1)
  })

  test('sliceBySize honours the byte limit but returns at least one entry', () => {
    const log = new RaftLog(0, 0, entries([1, 1, 1, 1, 1], 1, 10))
    expect(log.sliceBySize(1, 25).length).toBe(2)
    expect(log.sliceBytes).toBe(20)
    expect(log.sliceBySize(1, 5).length).toBe(1)
    expect(log.sliceBySize(4, 1000).length).toBe(2)
    expect(log.bytesBetween(1, 3)).toBe(20)
  })

  test('compact moves the base; restore keeps or drops the suffix', () => {
    const log = new RaftLog(0, 0, entries([1, 1, 2, 2, 3]))
    log.compact(3)
    expect([log.snapshotIndex, log.snapshotTerm, log.lastIndex()]).toEqual([3, 2, 5])
    expect(log.term(4)).toBe(2)
    log.restore(4, 2, true)
    expect([log.snapshotIndex, log.lastIndex(), log.unstableFrom]).toEqual([4, 5, 5])
    log.restore(9, 4, false)
    expect([log.snapshotIndex, log.snapshotTerm, log.lastIndex()]).toEqual([9, 4, 9])
  })

  test('term searches are binary and exact', () => {
    const log = new RaftLog(0, 0, entries([1, 1, 3, 3, 3, 5, 6]))
    expect(log.firstIndexWithTermAtLeast(3, 1, 7)).toBe(3)
    expect(log.firstIndexWithTermAtLeast(3, 4, 7)).toBe(4)
    expect(log.firstIndexWithTermAtLeast(4, 1, 7)).toBe(6)
    expect(log.lastIndexOfTerm(3)).toBe(5)
    expect(log.lastIndexOfTerm(1)).toBe(2)
    expect(log.lastIndexOfTerm(2)).toBe(-1)
    expect(log.lastIndexOfTerm(9)).toBe(-1)
  })

  test('isUpToDate compares last term, then last index', () => {
    const log = new RaftLog(0, 0, entries([1, 2, 2]))
    expect(log.isUpToDate(3, 2)).toBe(true)
    expect(log.isUpToDate(2, 2)).toBe(false)
    expect(log.isUpToDate(1, 3)).toBe(true)
    expect(log.isUpToDate(9, 1)).toBe(false)
  })
})
