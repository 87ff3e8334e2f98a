import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import { timedStorage } from '../../src/metrics/storage-timing.ts'
import { MemoryRaftStorage } from '../../src/storage/memory-storage.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'
import { type StorageObservation, TimedStorage } from '../../src/storage/timed-storage.ts'
import { describeRaftStorageContract, entries, hardState, snapshot } from './raft-storage-contract.ts'

// The decorator keeps every promise of RaftStorage (observed, so the timed path is the one tested).
describeRaftStorageContract('TimedStorage over SqliteRaftStorage', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-timed-storage-'))
  const path = join(dir, 'raft.sqlite')
  return {
    open: () => {
      const storage = new TimedStorage(new SqliteRaftStorage(path), () => performance.now())
      storage.observe(() => {})
      return storage
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
})

describe('TimedStorage', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'conclave-timed-storage-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('times each transaction by operation and reports stored snapshots with their size', () => {
    const storage = timedStorage(new SqliteRaftStorage(join(dir, 'raft.sqlite')))
    const seen: StorageObservation[] = []
    storage.observe(observation => seen.push(observation))
    storage.load()
    storage.write({ hardState: hardState(1, 'a', 0), entries: entries(1, 6, 1) })
    storage.write({ hardState: hardState(1, 'a', 4), entries: [] })
    storage.write({ hardState: hardState(2, '', 4), entries: [] })
    storage.setMeta('name', new Uint8Array([1]))
    storage.compact(snapshot(3, 1, [1, 2, 3, 4, 5]))
    storage.close()
    const calls = seen.filter(item => item.kind === 'call')
    expect(calls.map(call => call.op)).toEqual(['append', 'commit', 'append', 'meta', 'compact'])
    for (const call of calls) {
      expect(call.failed).toBe(false)
      // A SQLite transaction with fsync takes measurable time, and less than a second here.
      expect(call.seconds).toBeGreaterThan(0)
      expect(call.seconds).toBeLessThan(1)
    }
    expect(seen.filter(item => item.kind === 'snapshot')).toEqual([
      { kind: 'snapshot', source: 'taken', bytes: 5, index: 3 },
    ])
  })

  it('reports an installed snapshot, and a refused call as failed without hiding its error', () => {
    const storage = new TimedStorage(new MemoryRaftStorage(), () => performance.now())
    const seen: StorageObservation[] = []
    const stop = storage.observe(observation => seen.push(observation))
    storage.write({ hardState: hardState(2, 'a', 9), entries: [], snapshot: snapshot(9, 2, [7, 7]) })
    expect(seen).toEqual([
      { kind: 'call', op: 'append', seconds: expect.any(Number), failed: false },
      { kind: 'snapshot', source: 'installed', bytes: 2, index: 9 },
    ])
    // Entries starting at the snapshot index are refused by the storage.
    expect(() => storage.write({ entries: entries(9, 10, 2) })).toThrow(InvalidArgumentError)
    expect(seen[2]).toEqual({ kind: 'call', op: 'append', seconds: expect.any(Number), failed: true })
    stop()
    storage.write({ entries: entries(10, 11, 2) })
    expect(seen).toHaveLength(3)
  })

  it('a throwing observer does not fail a write that succeeded', () => {
    const storage = new TimedStorage(new MemoryRaftStorage(), () => performance.now())
    storage.observe(() => {
      throw new Error('observer bug')
    })
    storage.write({ hardState: hardState(1, 'a', 0), entries: entries(1, 3, 1) })
    expect(storage.load().entries.map(entry => entry.index)).toEqual([1, 2, 3])
    expect(timedStorage(storage)).toBe(storage)
  })
})
