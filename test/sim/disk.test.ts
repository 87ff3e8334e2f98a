import { describe, expect, it } from 'vitest'
import { SimDisk, StoredLog } from '../../scripts/sim/disk.ts'
import type { Entry } from '../../src/raft/types.ts'

const entry = (index: number, term: number, text = `${index}/${term}`): Entry => ({
  index,
  term,
  type: 'normal',
  data: new TextEncoder().encode(text),
})

const founding = () => ({
  hardState: { term: 0, vote: '', commit: 0 },
  snapshot: {
    meta: { index: 0, term: 0, config: { voters: ['a', 'b', 'c'], nonVoters: [] } },
    data: new Uint8Array(),
  },
  entries: [],
})

describe('SimDisk', () => {
  it('makes writes durable in order and loses the pending ones at a crash', () => {
    const disk = new SimDisk(founding())
    const first = disk.submit({
      entries: [entry(1, 1), entry(2, 1)],
      hardState: { term: 1, vote: 'a', commit: 0 },
    })
    disk.submit({ entries: [entry(3, 1)] })
    expect(disk.written.lastIndex).toBe(3)
    expect(disk.durable.lastIndex).toBe(0)
    disk.flush(first)
    expect(disk.durable.lastIndex).toBe(2)
    disk.crash()
    expect(disk.load().entries.map(e => e.index)).toEqual([1, 2])
    expect(disk.load().hardState).toEqual({ term: 1, vote: 'a', commit: 0 })
    expect(disk.written.lastIndex).toBe(2)
  })

  it('keeps the writes whose sync finished just before the crash', () => {
    const disk = new SimDisk(founding())
    disk.submit({ entries: [entry(1, 1)] })
    disk.submit({ entries: [entry(2, 1)] })
    disk.submit({ entries: [entry(3, 1)] })
    disk.crash(2)
    expect(disk.load().entries.map(e => e.index)).toEqual([1, 2])
  })

  it('truncates a conflicting suffix and refuses gaps', () => {
    const log = new StoredLog(founding())
    log.apply({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)] })
    log.apply({ entries: [entry(2, 2)] })
    expect(log.entries.map(e => `${e.index}/${e.term}`)).toEqual(['1/1', '2/2'])
    expect(() => log.apply({ entries: [entry(5, 2)] })).toThrow(/gap/)
  })

  it('installs a snapshot, keeping the suffix only when it matches', () => {
    const config = { voters: ['a'], nonVoters: [] }
    const log = new StoredLog(founding())
    log.apply({ entries: [entry(1, 1), entry(2, 1), entry(3, 2)] })
    log.apply({ entries: [], snapshot: { meta: { index: 2, term: 1, config }, data: new Uint8Array() } })
    expect(log.snapshotIndex).toBe(2)
    expect(log.entries.map(e => e.index)).toEqual([3])
    log.apply({ entries: [], snapshot: { meta: { index: 3, term: 3, config }, data: new Uint8Array() } })
    expect(log.lastIndex).toBe(3)
    expect(log.entries).toEqual([])
    expect(log.termAt(3)).toBe(3)
  })

  it('compacts up to the snapshot of the node', () => {
    const log = new StoredLog(founding())
    log.apply({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)] })
    log.apply({
      entries: [],
      compaction: {
        meta: { index: 2, term: 1, config: { voters: ['a'], nonVoters: [] } },
        data: new Uint8Array([1]),
      },
    })
    expect(log.snapshotIndex).toBe(2)
    expect(log.entryAt(3)?.term).toBe(1)
    expect(log.termAt(1)).toBeUndefined()
  })

  it('with the forget-vote fault, loses the vote (and only the vote) at a crash', () => {
    const disk = new SimDisk(founding())
    disk.forgetVoteOnCrash = true
    disk.flush(disk.submit({ entries: [], hardState: { term: 4, vote: 'b', commit: 0 } }))
    disk.crash()
    expect(disk.load().hardState).toEqual({ term: 4, vote: '', commit: 0 })
  })
})
