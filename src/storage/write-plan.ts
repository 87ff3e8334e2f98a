import { InvalidArgumentError } from '../errors.ts'
import type { Config, Entry, HardState, Snapshot, SnapshotMeta } from '../raft/types.ts'
import type { StorageUpdate } from './raft-storage.ts'

/**
 * What validation needs to know about the stored state. Both stores keep it in memory, so validating a
 * write reads the disk at most once (the term before a truncation point).
 */
export interface StoredLogView {
  readonly hardState: HardState
  /** Meta of the stored snapshot, if any. */
  readonly snapshotMeta: SnapshotMeta | undefined
  /** Index of the last entry, or the snapshot index when the log is empty (0 with neither). */
  readonly lastIndex: number
  /** Term at `lastIndex` (the snapshot's term when the log is empty, 0 with neither). */
  readonly lastTerm: number
  /** Term of the stored entry at `index`, which is strictly between the snapshot index and `lastIndex`. */
  termBetween(index: number): number
}

/** A validated update: applying it step by step cannot break the log's invariants. */
export interface WritePlan {
  /** Install first, replacing the stored snapshot. */
  snapshot?: Snapshot
  /** With `snapshot`: keep stored entries after its index (the log has its entry), else drop every entry. */
  keepEntriesAfterSnapshot: boolean
  /** Delete stored entries with index >= this before inserting `entries`; undefined for a pure append. */
  truncateFrom?: number
  entries: Entry[]
  hardState?: HardState
  /** The log's last index and term once the plan is applied. */
  lastIndex: number
  lastTerm: number
}

/** Validate `update` against the stored state (see `RaftStorage.write`); throws `InvalidArgumentError`. */
export function planWrite(view: StoredLogView, update: StorageUpdate): WritePlan {
  if (update === null || typeof update !== 'object') fail('write', 'update must be an object')
  const { snapshot, entries, hardState } = update
  if (!Array.isArray(entries)) fail('write', 'entries must be an array')
  if (hardState !== undefined) checkHardStateShape(hardState)
  const term = hardState?.term ?? view.hardState.term

  let baseIndex = view.snapshotMeta?.index ?? 0
  let baseTerm = view.snapshotMeta?.term ?? 0
  let lastIndex = view.lastIndex
  let lastTerm = view.lastTerm
  let keepEntriesAfterSnapshot = false
  if (snapshot !== undefined) {
    checkSnapshot('write', view, snapshot, term)
    const { index: snapshotIndex, term: snapshotTerm } = snapshot.meta
    keepEntriesAfterSnapshot = snapshotIndex <= view.lastIndex && termAt(view, snapshotIndex) === snapshotTerm
    if (!keepEntriesAfterSnapshot) {
      lastIndex = snapshotIndex
      lastTerm = snapshotTerm
    }
    baseIndex = snapshotIndex
    baseTerm = snapshotTerm
  }

  let truncateFrom: number | undefined
  if (entries.length > 0) {
    checkEntries(entries, term)
    const first = entries[0]
    if (first.index <= baseIndex) {
      fail('write', `entry ${first.index} is at or below the snapshot index ${baseIndex}`)
    }
    if (first.index > lastIndex + 1) {
      fail('write', `entry ${first.index} leaves a gap after the last stored index ${lastIndex}`)
    }
    const previousTerm = first.index - 1 === baseIndex ? baseTerm : termAt(view, first.index - 1)
    if (first.term < previousTerm) {
      fail(
        'write',
        `entry ${first.index} has term ${first.term} below the previous entry's term ${previousTerm}`,
      )
    }
    if (first.index <= lastIndex) {
      truncateFrom = first.index
      // Committed entries may be written again, but only as they are.
      const rewrittenCommitted = Math.min(view.hardState.commit, lastIndex, entries[entries.length - 1].index)
      for (let index = first.index; index <= rewrittenCommitted; index++) {
        const storedTerm = termAt(view, index)
        if (entries[index - first.index].term !== storedTerm) {
          fail('write', `entry ${index} is committed with term ${storedTerm}; it cannot be replaced`)
        }
      }
    }
    const last = entries[entries.length - 1]
    lastIndex = last.index
    lastTerm = last.term
  }

  if (hardState !== undefined) checkHardStateMove(view.hardState, hardState, lastIndex)
  else if (view.hardState.commit > lastIndex) {
    fail('write', `the stored commit index ${view.hardState.commit} would exceed the last index ${lastIndex}`)
  }
  return { snapshot, keepEntriesAfterSnapshot, truncateFrom, entries, hardState, lastIndex, lastTerm }
}

/** Validate an application snapshot for `RaftStorage.compact`; throws `InvalidArgumentError`. */
export function planCompact(view: StoredLogView, snapshot: Snapshot): WritePlan {
  checkSnapshot('compact', view, snapshot, view.hardState.term)
  const { index, term } = snapshot.meta
  if (index > view.lastIndex) {
    fail('compact', `snapshot index ${index} is beyond the last index ${view.lastIndex}`)
  }
  const storedTerm = termAt(view, index)
  if (storedTerm !== term) {
    fail('compact', `snapshot term ${term} differs from the stored term ${storedTerm} at index ${index}`)
  }
  return {
    snapshot,
    keepEntriesAfterSnapshot: true,
    entries: [],
    lastIndex: view.lastIndex,
    lastTerm: view.lastTerm,
  }
}

function termAt(view: StoredLogView, index: number): number {
  const snapshotIndex = view.snapshotMeta?.index ?? 0
  if (index === snapshotIndex) return view.snapshotMeta?.term ?? 0
  if (index === view.lastIndex) return view.lastTerm
  return view.termBetween(index)
}

function checkSnapshot(operation: string, view: StoredLogView, snapshot: Snapshot, term: number): void {
  if (snapshot === null || typeof snapshot !== 'object') fail(operation, 'snapshot must be an object')
  const { meta, data } = snapshot
  if (meta === null || typeof meta !== 'object') fail(operation, 'snapshot.meta must be an object')
  if (!isIndex(meta.index)) fail(operation, `snapshot index ${String(meta.index)} is not an integer >= 0`)
  if (!isIndex(meta.term)) fail(operation, `snapshot term ${String(meta.term)} is not an integer >= 0`)
  if ((meta.index === 0) !== (meta.term === 0)) {
    fail(operation, `snapshot at index ${meta.index} with term ${meta.term}: only index 0 has term 0`)
  }
  if (meta.term > term) fail(operation, `snapshot term ${meta.term} is above the current term ${term}`)
  checkConfig(operation, meta.config)
  if (!(data instanceof Uint8Array)) fail(operation, 'snapshot.data must be a Uint8Array')
  const stored = view.snapshotMeta
  if (stored !== undefined) {
    if (meta.index < stored.index) {
      fail(operation, `snapshot at index ${meta.index} is older than the stored snapshot at ${stored.index}`)
    }
    if (meta.index === stored.index && meta.term !== stored.term) {
      fail(operation, `snapshot at index ${meta.index} has term ${meta.term}, the stored one ${stored.term}`)
    }
  }
}

function checkConfig(operation: string, config: Config): void {
  if (config === null || typeof config !== 'object') fail(operation, 'snapshot.meta.config must be an object')
  const { voters, nonVoters } = config
  if (!isStringArray(voters) || !isStringArray(nonVoters)) {
    fail(operation, 'snapshot config voters and nonVoters must be arrays of strings')
  }
  const members = new Set([...voters, ...nonVoters])
  if (members.size !== voters.length + nonVoters.length) {
    fail(operation, 'snapshot config lists a node twice')
  }
}

function checkEntries(entries: Entry[], term: number): void {
  let previous: Entry | undefined
  for (const entry of entries) {
    if (entry === null || typeof entry !== 'object') fail('write', 'every entry must be an object')
    const { index, term: entryTerm, type, data } = entry
    if (!isIndex(index) || index < 1) fail('write', `entry index ${String(index)} is not an integer >= 1`)
    if (!isIndex(entryTerm) || entryTerm < 1) {
      fail('write', `entry ${index} has term ${String(entryTerm)}, not an integer >= 1`)
    }
    if (type !== 'normal' && type !== 'config')
      fail('write', `entry ${index} has unknown type ${String(type)}`)
    if (!(data instanceof Uint8Array)) fail('write', `entry ${index} data must be a Uint8Array`)
    if (entryTerm > term) fail('write', `entry ${index} has term ${entryTerm} above the current term ${term}`)
    if (previous !== undefined) {
      if (index !== previous.index + 1) {
        fail('write', `entries are not contiguous: index ${index} follows ${previous.index}`)
      }
      if (entryTerm < previous.term) {
        fail('write', `entry ${index} has term ${entryTerm} below the previous entry's term ${previous.term}`)
      }
    }
    previous = entry
  }
}

function checkHardStateShape(hardState: HardState): void {
  if (hardState === null || typeof hardState !== 'object') fail('write', 'hardState must be an object')
  const { term, vote, commit } = hardState
  if (!isIndex(term)) fail('write', `hardState.term ${String(term)} is not an integer >= 0`)
  if (typeof vote !== 'string') fail('write', 'hardState.vote must be a string')
  if (!isIndex(commit)) fail('write', `hardState.commit ${String(commit)} is not an integer >= 0`)
}

function checkHardStateMove(stored: HardState, next: HardState, lastIndex: number): void {
  if (next.term < stored.term)
    fail('write', `hardState.term ${next.term} is below the stored term ${stored.term}`)
  if (next.term === stored.term && stored.vote !== '' && next.vote !== stored.vote) {
    fail(
      'write',
      `hardState.vote changes from ${stored.vote} to ${next.vote || "''"} within term ${next.term}`,
    )
  }
  if (next.commit < stored.commit) {
    fail('write', `hardState.commit ${next.commit} is below the stored commit ${stored.commit}`)
  }
  if (next.commit > lastIndex)
    fail('write', `hardState.commit ${next.commit} exceeds the last index ${lastIndex}`)
}

function isIndex(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

function fail(operation: string, reason: string): never {
  throw new InvalidArgumentError(`RaftStorage.${operation}: ${reason}; nothing was written`)
}
