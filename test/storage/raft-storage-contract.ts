import { describe, expect, it } from 'vitest'
import { ClosedError, InvalidArgumentError } from '../../src/errors.ts'
import type { Entry, EntryType, HardState, Snapshot } from '../../src/raft/types.ts'
import { StorageLockedError } from '../../src/storage/errors.ts'
import type { RaftStorage, StorageUpdate } from '../../src/storage/raft-storage.ts'

/** Opens the storage under test; `open()` again after `close()` models a restart on the same disk. */
export interface StorageHarness {
  open(): RaftStorage
  cleanup(): void
}

export function entry(index: number, term: number, type: EntryType = 'normal', size = 8): Entry {
  const data = new Uint8Array(size)
  for (let i = 0; i < size; i++) data[i] = (index * 31 + term * 7 + i) & 0xff
  return { index, term, type, data }
}

export function entries(from: number, to: number, term: number): Entry[] {
  const result: Entry[] = []
  for (let index = from; index <= to; index++) result.push(entry(index, term))
  return result
}

export function snapshot(index: number, term: number, data = [index & 0xff, term & 0xff]): Snapshot {
  return {
    meta: { index, term, config: { voters: ['a', 'b', 'c'], nonVoters: ['d'] } },
    data: new Uint8Array(data),
  }
}

export function hardState(term: number, vote: string, commit: number): HardState {
  return { term, vote, commit }
}

const empty = { hardState: hardState(0, '', 0), snapshot: undefined, entries: [] }

/** The behaviour every `RaftStorage` shares, run against each implementation. */
export function describeRaftStorageContract(name: string, makeHarness: () => StorageHarness): void {
  describe(`${name}: RaftStorage contract`, () => {
    function withStorage(test: (storage: RaftStorage, harness: StorageHarness) => void): () => void {
      return () => {
        const harness = makeHarness()
        const storage = harness.open()
        try {
          test(storage, harness)
        } finally {
          storage.close()
          harness.cleanup()
        }
      }
    }

    it(
      'loads an empty state from a new store',
      withStorage(storage => {
        expect(storage.load()).toEqual(empty)
      }),
    )

    it(
      'round-trips entries of both types, the hard state and a founding snapshot',
      withStorage(storage => {
        const founding: Snapshot = {
          meta: { index: 0, term: 0, config: { voters: ['n1'], nonVoters: [] } },
          data: new Uint8Array(),
        }
        storage.write({ snapshot: founding, entries: [], hardState: hardState(0, '', 0) })
        const log = [entry(1, 1, 'config', 40), entry(2, 1, 'normal', 0), entry(3, 2, 'normal', 1000)]
        storage.write({ hardState: hardState(2, 'n1', 2), entries: log })
        expect(storage.load()).toEqual({ hardState: hardState(2, 'n1', 2), snapshot: founding, entries: log })
      }),
    )

    it(
      'keeps what it stored when the caller reuses its buffers',
      withStorage(storage => {
        const written = entry(1, 1)
        const meta = new Uint8Array([1, 2, 3])
        storage.write({ hardState: hardState(1, '', 0), entries: [written] })
        storage.setMeta('key', meta)
        written.data.fill(0)
        meta.fill(0)
        expect(storage.load().entries).toEqual([entry(1, 1)])
        expect(storage.getMeta('key')).toEqual(new Uint8Array([1, 2, 3]))
        storage.load().entries[0].data.fill(9)
        expect(storage.load().entries).toEqual([entry(1, 1)])
      }),
    )

    it(
      'deletes the stored suffix from the first written index',
      withStorage(storage => {
        storage.write({ hardState: hardState(1, 'a', 0), entries: entries(1, 5, 1) })
        storage.write({ hardState: hardState(2, 'b', 2), entries: entries(3, 4, 2) })
        expect(storage.load().entries).toEqual([...entries(1, 2, 1), ...entries(3, 4, 2)])
        // Rewriting an identical prefix entry is allowed and keeps the log as it is up to that point.
        storage.write({ entries: [entry(2, 1)] })
        expect(storage.load().entries).toEqual(entries(1, 2, 1))
        storage.write({ entries: entries(3, 6, 2) })
        expect(storage.load().entries).toEqual([...entries(1, 2, 1), ...entries(3, 6, 2)])
      }),
    )

    it(
      'installs a snapshot that matches the log and keeps the entries after it',
      withStorage(storage => {
        storage.write({
          hardState: hardState(2, 'a', 4),
          entries: [...entries(1, 4, 1), ...entries(5, 8, 2)],
        })
        storage.write({ snapshot: snapshot(6, 2), entries: [] })
        expect(storage.load()).toEqual({
          hardState: hardState(2, 'a', 4),
          snapshot: snapshot(6, 2),
          entries: entries(7, 8, 2),
        })
        storage.write({ entries: entries(9, 9, 2) })
        expect(storage.load().entries).toEqual(entries(7, 9, 2))
      }),
    )

    it(
      'installs a snapshot that conflicts with the log, or is beyond it, by dropping every entry',
      withStorage(storage => {
        storage.write({ hardState: hardState(3, 'a', 2), entries: entries(1, 6, 1) })
        storage.write({ snapshot: snapshot(4, 3), entries: [] })
        expect(storage.load()).toEqual({
          hardState: hardState(3, 'a', 2),
          snapshot: snapshot(4, 3),
          entries: [],
        })
        storage.write({ hardState: hardState(3, 'a', 5), entries: entries(5, 6, 3) })
        storage.write({
          snapshot: snapshot(20, 3),
          entries: entries(21, 22, 3),
          hardState: hardState(3, 'a', 21),
        })
        expect(storage.load()).toEqual({
          hardState: hardState(3, 'a', 21),
          snapshot: snapshot(20, 3),
          entries: entries(21, 22, 3),
        })
      }),
    )

    it(
      're-installing the stored snapshot replaces its data and keeps the log',
      withStorage(storage => {
        storage.write({ hardState: hardState(1, '', 0), snapshot: snapshot(3, 1), entries: entries(4, 5, 1) })
        storage.write({ snapshot: snapshot(3, 1, [42]), entries: [] })
        expect(storage.load()).toEqual({
          hardState: hardState(1, '', 0),
          snapshot: snapshot(3, 1, [42]),
          entries: entries(4, 5, 1),
        })
      }),
    )

    it(
      'compacts: stores the snapshot and deletes entries up to its index',
      withStorage(storage => {
        storage.write({
          hardState: hardState(2, 'a', 7),
          entries: [...entries(1, 3, 1), ...entries(4, 8, 2)],
        })
        storage.compact(snapshot(3, 1))
        expect(storage.load()).toEqual({
          hardState: hardState(2, 'a', 7),
          snapshot: snapshot(3, 1),
          entries: entries(4, 8, 2),
        })
        storage.compact(snapshot(8, 2))
        expect(storage.load()).toEqual({
          hardState: hardState(2, 'a', 7),
          snapshot: snapshot(8, 2),
          entries: [],
        })
        storage.write({ entries: entries(9, 10, 2) })
        storage.compact(snapshot(9, 2))
        expect(storage.load().entries).toEqual(entries(10, 10, 2))
      }),
    )

    it(
      'writes a hard state alone',
      withStorage(storage => {
        storage.write({ hardState: hardState(1, '', 0), entries: [] })
        storage.write({ hardState: hardState(1, 'x', 0), entries: [] })
        storage.write({ hardState: hardState(5, '', 0), entries: [] })
        expect(storage.load()).toEqual({ hardState: hardState(5, '', 0), snapshot: undefined, entries: [] })
        storage.write({ entries: [] })
        expect(storage.load().hardState).toEqual(hardState(5, '', 0))
      }),
    )

    it(
      'stores meta keys apart from Raft state',
      withStorage(storage => {
        expect(storage.getMeta('peerKey')).toBeUndefined()
        storage.setMeta('peerKey', new Uint8Array([1, 2, 3]))
        storage.setMeta('clusterId', new TextEncoder().encode('c-1'))
        storage.setMeta('empty', new Uint8Array())
        storage.setMeta('peerKey', new Uint8Array([4]))
        expect(storage.getMeta('peerKey')).toEqual(new Uint8Array([4]))
        expect(new TextDecoder().decode(storage.getMeta('clusterId'))).toBe('c-1')
        expect(storage.getMeta('empty')).toEqual(new Uint8Array())
        expect(storage.load()).toEqual(empty)
        expect(() => storage.getMeta('')).toThrow(InvalidArgumentError)
        expect(() => storage.setMeta('', new Uint8Array())).toThrow(InvalidArgumentError)
        expect(() => storage.setMeta('k', 'text' as unknown as Uint8Array)).toThrow(InvalidArgumentError)
        expect(storage.getMeta('k')).toBeUndefined()
      }),
    )

    it(
      'returns the same state after close and reopen',
      withStorage((first, harness) => {
        first.write({ hardState: hardState(3, 'b', 5), entries: [...entries(1, 2, 1), ...entries(3, 9, 3)] })
        first.compact(snapshot(4, 3))
        first.write({ entries: [entry(8, 3, 'config', 30)] })
        first.setMeta('name', new Uint8Array([7]))
        const before = first.load()
        first.close()
        const second = harness.open()
        try {
          expect(second.load()).toEqual(before)
          expect(second.getMeta('name')).toEqual(new Uint8Array([7]))
          // The reopened store validates against what it found.
          expect(() => second.write({ entries: entries(10, 10, 3) })).toThrow(InvalidArgumentError)
          second.write({ entries: entries(9, 9, 3) })
          expect(second.load().entries.at(-1)).toEqual(entry(9, 3))
        } finally {
          second.close()
        }
      }),
    )

    it(
      'refuses a second open while the first is open',
      withStorage((storage, harness) => {
        expect(() => harness.open()).toThrow(StorageLockedError)
        storage.write({ hardState: hardState(1, '', 0), entries: [] })
        storage.close()
        const reopened = harness.open()
        expect(reopened.load().hardState).toEqual(hardState(1, '', 0))
        reopened.close()
      }),
    )

    it(
      'throws ClosedError after close, and close is idempotent',
      withStorage(storage => {
        storage.close()
        storage.close()
        expect(() => storage.load()).toThrow(ClosedError)
        expect(() => storage.write({ entries: [] })).toThrow(ClosedError)
        expect(() => storage.compact(snapshot(0, 0))).toThrow(ClosedError)
        expect(() => storage.getMeta('k')).toThrow(ClosedError)
        expect(() => storage.setMeta('k', new Uint8Array())).toThrow(ClosedError)
      }),
    )

    describe('refuses invalid input and changes nothing', () => {
      // Stored before each case: snapshot at 3 (term 1), entries 4..6 term 1 and 7..8 term 2, term 2, commit 5.
      function prepare(storage: RaftStorage): void {
        storage.write({
          hardState: hardState(2, 'a', 5),
          entries: [...entries(1, 6, 1), ...entries(7, 8, 2)],
        })
        storage.compact(snapshot(3, 1))
        storage.setMeta('k', new Uint8Array([1]))
      }
      const e = entry
      const cases: Array<[string, (storage: RaftStorage) => void]> = [
        ['non-contiguous entries', s => s.write({ entries: [e(9, 2), e(11, 2)] })],
        ['entries in reverse', s => s.write({ entries: [e(9, 2), e(8, 2)] })],
        ['a gap after the log', s => s.write({ entries: [e(10, 2)] })],
        ['entries at or below the snapshot', s => s.write({ entries: [e(3, 1), e(4, 1)] })],
        ['entry index 0', s => s.write({ entries: [e(0, 1)] })],
        ['a fractional index', s => s.write({ entries: [e(8.5, 2)] })],
        ['entry term 0', s => s.write({ entries: [e(9, 0)] })],
        ['terms that decrease in the batch', s => s.write({ entries: [e(9, 2), e(10, 1)] })],
        ['a term below the previous stored entry', s => s.write({ entries: [e(8, 1)] })],
        ['an entry term above the current term', s => s.write({ entries: [e(9, 3)] })],
        ['an unknown entry type', s => s.write({ entries: [{ ...e(9, 2), type: 'other' as EntryType }] })],
        [
          'entry data that is not bytes',
          s => s.write({ entries: [{ ...e(9, 2), data: [1] as unknown as Uint8Array }] }),
        ],
        ['entries that are not an array', s => s.write({ entries: undefined } as unknown as StorageUpdate)],
        ['a decreasing term', s => s.write({ hardState: hardState(1, 'a', 5), entries: [] })],
        ['a changed vote in the same term', s => s.write({ hardState: hardState(2, 'b', 5), entries: [] })],
        ['a withdrawn vote in the same term', s => s.write({ hardState: hardState(2, '', 5), entries: [] })],
        ['a decreasing commit', s => s.write({ hardState: hardState(2, 'a', 4), entries: [] })],
        ['a commit beyond the log', s => s.write({ hardState: hardState(2, 'a', 9), entries: [] })],
        ['a truncation below the stored commit', s => s.write({ entries: [e(5, 2)] })],
        ['a negative term', s => s.write({ hardState: hardState(-1, '', 5), entries: [] })],
        [
          'a vote that is not a string',
          s => s.write({ hardState: { term: 2, vote: 1, commit: 5 } as unknown as HardState, entries: [] }),
        ],
        ['a snapshot older than the stored one', s => s.write({ snapshot: snapshot(2, 1), entries: [] })],
        [
          'the stored snapshot index with another term',
          s => s.write({ snapshot: snapshot(3, 2), entries: [] }),
        ],
        ['a snapshot term above the current term', s => s.write({ snapshot: snapshot(20, 3), entries: [] })],
        ['a snapshot term 0 above index 0', s => s.write({ snapshot: snapshot(20, 0), entries: [] })],
        [
          'a snapshot listing a node twice',
          s =>
            s.write({
              snapshot: {
                ...snapshot(9, 2),
                meta: { index: 9, term: 2, config: { voters: ['a'], nonVoters: ['a'] } },
              },
              entries: [],
            }),
        ],
        [
          'snapshot data that is not bytes',
          s => s.write({ snapshot: { ...snapshot(9, 2), data: 'x' as unknown as Uint8Array }, entries: [] }),
        ],
        [
          'a valid snapshot with invalid entries',
          s => s.write({ snapshot: snapshot(9, 2), entries: [e(11, 2)] }),
        ],
        [
          'valid entries with an invalid hard state',
          s => s.write({ entries: [e(9, 2)], hardState: hardState(1, '', 9) }),
        ],
        ['compact older than the stored snapshot', s => s.compact(snapshot(2, 1))],
        ['compact beyond the log', s => s.compact(snapshot(9, 2))],
        ['compact with the wrong term', s => s.compact(snapshot(7, 1))],
      ]
      for (const [caseName, act] of cases) {
        it(
          caseName,
          withStorage((storage, harness) => {
            prepare(storage)
            const before = storage.load()
            expect(() => act(storage)).toThrow(InvalidArgumentError)
            expect(storage.load()).toEqual(before)
            // Still usable, and nothing half-written surfaces after a restart either.
            storage.write({ entries: [entry(9, 2)] })
            storage.close()
            const reopened = harness.open()
            expect(reopened.load()).toEqual({ ...before, entries: [...before.entries, entry(9, 2)] })
            expect(reopened.getMeta('k')).toEqual(new Uint8Array([1]))
            reopened.close()
          }),
        )
      }
    })
  })
}
