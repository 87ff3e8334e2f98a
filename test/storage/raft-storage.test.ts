import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { Entry, PersistedState } from '../../src/raft/types.ts'
import { MemoryDisk, MemoryRaftStorage } from '../../src/storage/memory-storage.ts'
import type { RaftStorage } from '../../src/storage/raft-storage.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'
import { entry, snapshot } from './raft-storage-contract.ts'

// Operations with parameters relative to the current state, so that random sequences mix valid and
// invalid calls near every boundary the validation draws.
type Operation =
  | {
      kind: 'write'
      start: number
      count: number
      entryTerm: number
      hardState?: { term: number; vote: string; commit: number }
      snapshot?: { index: number; term: number }
    }
  | { kind: 'compact'; index: number; term: number }
  | { kind: 'meta'; key: string; value: Uint8Array }
  | { kind: 'reopen' }

/** Mostly `usual`, sometimes anything in [min, max]: sequences stay mostly valid and reach deep states. */
function mostly(usual: number, min: number, max: number): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(usual) },
    { weight: 1, arbitrary: fc.integer({ min, max }) },
  )
}

function sometimes<T>(arbitrary: fc.Arbitrary<T>, weight: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: 10 - weight, arbitrary: fc.constant(undefined) }, { weight, arbitrary })
}

const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      start: mostly(0, -4, 1),
      count: fc.integer({ min: 0, max: 5 }),
      entryTerm: mostly(0, -1, 1),
      hardState: sometimes(
        fc.record({
          term: mostly(0, -1, 2),
          vote: fc.oneof({ weight: 4, arbitrary: fc.constant('same') }, fc.constantFrom('', 'a', 'b')),
          commit: fc.integer({ min: -1, max: 3 }),
        }),
        5,
      ),
      snapshot: sometimes(fc.record({ index: fc.integer({ min: -3, max: 4 }), term: mostly(0, -1, 1) }), 2),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('compact' as const),
      index: fc.integer({ min: -6, max: 1 }),
      term: mostly(0, -1, 0),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('meta' as const),
      key: fc.constantFrom('a', 'b', ''),
      value: fc.uint8Array({ maxLength: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
)

function lastOf(state: PersistedState): { index: number; term: number } {
  const last = state.entries.at(-1)
  if (last !== undefined) return { index: last.index, term: last.term }
  return { index: state.snapshot?.meta.index ?? 0, term: state.snapshot?.meta.term ?? 0 }
}

function termAt(state: PersistedState, index: number): number {
  if (index === (state.snapshot?.meta.index ?? 0)) return state.snapshot?.meta.term ?? 0
  return state.entries.find(candidate => candidate.index === index)?.term ?? 1
}

/** Applies the operation, returning 'ok' or the name of the error it threw. */
function perform(storage: RaftStorage, state: PersistedState, operation: Operation): string {
  const last = lastOf(state)
  const term = state.hardState.term
  try {
    if (operation.kind === 'write') {
      const start = last.index + 1 + operation.start
      const entries: Entry[] = []
      for (let i = 0; i < operation.count; i++) {
        entries.push(entry(start + i, Math.max(last.term, 1) + operation.entryTerm))
      }
      const hardState = operation.hardState && {
        term: term + operation.hardState.term,
        vote: operation.hardState.vote === 'same' ? state.hardState.vote : operation.hardState.vote,
        commit: state.hardState.commit + operation.hardState.commit,
      }
      const snapshotIndex = last.index + (operation.snapshot?.index ?? 0)
      const installed =
        operation.snapshot && snapshot(snapshotIndex, termAt(state, snapshotIndex) + operation.snapshot.term)
      storage.write({ entries, hardState, snapshot: installed })
    } else if (operation.kind === 'compact') {
      const index = last.index + operation.index
      storage.compact(snapshot(index, termAt(state, index) + operation.term))
    } else if (operation.kind === 'meta') {
      storage.setMeta(operation.key, operation.value)
    }
    return 'ok'
  } catch (error) {
    return (error as Error).name
  }
}

function expectInvariants(state: PersistedState): void {
  const base = state.snapshot?.meta.index ?? 0
  let previousTerm = state.snapshot?.meta.term ?? 0
  state.entries.forEach((stored, position) => {
    expect(stored.index).toBe(base + 1 + position)
    expect(stored.term).toBeGreaterThanOrEqual(previousTerm)
    expect(stored.term).toBeLessThanOrEqual(state.hardState.term)
    previousTerm = stored.term
  })
  expect(state.hardState.commit).toBeLessThanOrEqual(lastOf(state).index)
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'conclave-storage-model-'))
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

it('memory and SQLite agree on every random sequence; refused calls change nothing; invariants hold', () => {
  let run = 0
  fc.assert(
    fc.property(fc.array(operationArbitrary, { minLength: 1, maxLength: 30 }), operations => {
      const path = join(dir, `run-${run++}.sqlite`)
      const disk = new MemoryDisk()
      let memory: RaftStorage = new MemoryRaftStorage(disk)
      let sqlite: RaftStorage = new SqliteRaftStorage(path)
      // Start from a term with something to vote in, like a node that has been running.
      for (const storage of [memory, sqlite])
        storage.write({ hardState: { term: 1, vote: '', commit: 0 }, entries: [] })
      try {
        for (const operation of operations) {
          if (operation.kind === 'reopen') {
            memory.close()
            sqlite.close()
            memory = new MemoryRaftStorage(disk)
            sqlite = new SqliteRaftStorage(path)
            continue
          }
          const before = memory.load()
          const memoryResult = perform(memory, before, operation)
          const sqliteResult = perform(sqlite, before, operation)
          expect(sqliteResult).toBe(memoryResult)
          expect(['ok', InvalidArgumentError.name]).toContain(memoryResult)
          const after = memory.load()
          expect(sqlite.load()).toEqual(after)
          if (memoryResult !== 'ok') expect(after).toEqual(before)
          expectInvariants(after)
          for (const key of ['a', 'b']) expect(sqlite.getMeta(key)).toEqual(memory.getMeta(key))
        }
      } finally {
        memory.close()
        sqlite.close()
      }
    }),
    { numRuns: 150 },
  )
})
