import { NO_SHELL_BUGS, type ShellBugs } from '../shell-bugs.ts'
import type {
  DeleteCommand,
  PutCommand,
  PutEphemeralCommand,
  TxnCommand,
  TxnCompareSpec,
  TxnOpSpec,
} from './commands.ts'
import type { ApplyContext } from './context.ts'
import type { KvEvent } from './events.ts'
import { type HistoryResult, KvHistory } from './history.ts'
import { isJsonValue, type JsonValue, jsonEqual } from './json.ts'
import { compareKeys, SortedKeys } from './keys.ts'
import { type CommandResult, errorResult } from './results.ts'
import { type SessionEndListener, type SessionTable, sessionExpired } from './sessions.ts'
import { checkSnapshot, isCount, isId, isPositive, isRecord, snapshotArray } from './validate.ts'

/** A stored key. Records are replaced, never mutated, so a returned record stays as it was. */
export interface KeyValue {
  readonly value: JsonValue
  /** Revision of the put that created the key (since its last delete). */
  readonly createRevision: number
  /** Revision of the last put of the key. */
  readonly modRevision: number
  /** Puts since the key was created: 1 after the creating put. */
  readonly version: number
  /** For an ephemeral key: the session it is bound to, and that session's agent. */
  readonly sessionId?: string
  readonly owner?: string
}

/** A key as reads show it (the public `KvEntry`, with the value as stored). */
export interface KvEntryInfo {
  key: string
  value: JsonValue
  /** modRevision: the revision of the key's last put. */
  revision: number
  createRevision: number
  version: number
  ephemeral: boolean
  /** Agent id of an ephemeral key's session. */
  owner?: string
}

/** One page of a prefix listing, read at one revision. */
export interface KvListPage {
  entries: KvEntryInfo[]
  /** The store revision the page was read at. */
  revision: number
  /** More keys follow the last one listed. */
  more: boolean
}

/**
 * KV section of a snapshot: entries as [key, value, createRevision, modRevision, version] in store order,
 * followed by [sessionId, owner] for an ephemeral key. (Snapshots written before versions existed have only
 * the first four; their keys restore with version 1.)
 */
export interface KvSnapshot {
  revision: number
  entries: (
    | [string, JsonValue, number, number, number]
    | [string, JsonValue, number, number, number, string, string]
  )[]
  compactedRevision: number
  history: KvEvent[]
}

/**
 * The consensus KV store: a global revision bumped by every mutating entry (a transaction's writes share
 * one), a window of recent events, and keys bound to sessions (ephemeral) that go when the session ends.
 */
export class KvStore implements SessionEndListener {
  /** Revision of the last mutation; 0 for an empty history. */
  revision = 0
  private readonly entries = new Map<string, KeyValue>()
  private readonly order = new SortedKeys(key => this.entries.has(key))
  /** Ephemeral keys of each session. Derived; not in snapshots. */
  private readonly keysBySession = new Map<string, Set<string>>()
  private readonly history: KvHistory
  private readonly sessions: SessionTable
  /** @internal The `ephemeral-outlives-session` bug switch: a session's end deletes none of its keys. */
  private readonly keepEphemeral: boolean
  /** @internal The `txn-first-compare-only` bug switch: a transaction's later compares are ignored. */
  private readonly firstCompareOnly: boolean

  constructor(historySize: number, sessions: SessionTable)
  /** @internal With test-only switches (`src/shell-bugs.ts`). Stripped from the published declarations. */
  constructor(historySize: number, sessions: SessionTable, bugs: ShellBugs)
  constructor(historySize: number, sessions: SessionTable, bugs: ShellBugs = NO_SHELL_BUGS) {
    this.history = new KvHistory(historySize)
    this.sessions = sessions
    this.keepEphemeral = bugs.has('ephemeral-outlives-session')
    this.firstCompareOnly = bugs.has('txn-first-compare-only')
  }

  get(key: string): KeyValue | undefined {
    return this.entries.get(key)
  }

  get size(): number {
    return this.entries.size
  }

  entry(key: string): KvEntryInfo | undefined {
    const record = this.entries.get(key)
    return record === undefined ? undefined : toEntry(key, record)
  }

  /** Keys starting with `prefix` and their records, in byte order. */
  range(prefix: string): [string, KeyValue][] {
    const found: [string, KeyValue][] = []
    this.order.scan(prefix, undefined, key => {
      found.push([key, this.entries.get(key)!])
      return true
    })
    return found
  }

  /** At most `limit` keys starting with `prefix` and after `after`, in byte order. */
  list(prefix: string, limit = Number.POSITIVE_INFINITY, after?: string): KvListPage {
    const entries: KvEntryInfo[] = []
    let more = false
    this.order.scan(prefix, after, key => {
      if (entries.length >= limit) {
        more = true
        return false
      }
      entries.push(toEntry(key, this.entries.get(key)!))
      return true
    })
    return { entries, revision: this.revision, more }
  }

  eventsSince(fromRevision: number, prefix?: string, limit?: number): HistoryResult {
    return this.history.since(fromRevision, prefix, limit)
  }

  put(command: PutCommand, context: ApplyContext): CommandResult {
    const current = this.entries.get(command.key)
    const mismatch = checkExpected(command.key, current, command.expectedRevision)
    if (mismatch !== undefined) return mismatch
    const revision = ++this.revision
    this.write(command.key, command.value, undefined, revision, context)
    return { type: 'revision', revision }
  }

  putEphemeral(command: PutEphemeralCommand, context: ApplyContext): CommandResult {
    if (!this.sessions.isLive(command.sessionId, context)) return sessionExpired(command.sessionId)
    const current = this.entries.get(command.key)
    const mismatch = checkExpected(command.key, current, command.expectedRevision)
    if (mismatch !== undefined) return mismatch
    const revision = ++this.revision
    this.write(command.key, command.value, command.sessionId, revision, context)
    return { type: 'revision', revision }
  }

  delete(command: DeleteCommand, context: ApplyContext): CommandResult {
    const current = this.entries.get(command.key)
    const mismatch = checkExpected(command.key, current, command.expectedRevision)
    if (mismatch !== undefined) return mismatch
    // Deleting an absent key changes nothing, as in etcd: no revision, no event.
    if (current === undefined) return { type: 'revision', revision: this.revision }
    const revision = ++this.revision
    this.remove(command.key, current, revision, context)
    return { type: 'revision', revision }
  }

  /** Applies a (validated) transaction: the compares pick a branch, whose writes share one revision. */
  txn(command: TxnCommand, context: ApplyContext): CommandResult {
    const sessionId = command.sessionId
    if (sessionId !== undefined && !this.sessions.isLive(sessionId, context)) return sessionExpired(sessionId)
    let succeeded = true
    for (const compare of this.firstCompareOnly ? command.compare.slice(0, 1) : command.compare) {
      if (!compareHolds(compare, this.entries.get(compare.key))) {
        succeeded = false
        break
      }
    }
    const ops = succeeded ? command.success : (command.failure ?? [])
    // Assigned at the first change: a branch that changes nothing (deletes of absent keys) keeps the revision.
    let revision = 0
    const next = (): number => {
      if (revision === 0) revision = ++this.revision
      return revision
    }
    for (const op of ops) this.applyOp(op, sessionId, next, context)
    return { type: 'txn', succeeded, revision: this.revision }
  }

  /** The session ended: its ephemeral keys go, in byte order, at one revision, each a delete event. */
  onSessionEnd(sessionId: string, context: ApplyContext): void {
    const keys = this.keysBySession.get(sessionId)
    if (keys === undefined) return
    this.keysBySession.delete(sessionId)
    if (this.keepEphemeral) return
    const revision = ++this.revision
    // Sorted: the set's order depends on history (and is rebuilt on restore); events must not.
    for (const key of [...keys].sort(compareKeys)) this.remove(key, this.entries.get(key)!, revision, context)
  }

  toSnapshot(): KvSnapshot {
    const entries: KvSnapshot['entries'] = []
    for (const [key, record] of this.entries) {
      if (record.sessionId === undefined) {
        entries.push([key, record.value, record.createRevision, record.modRevision, record.version])
      } else {
        entries.push([
          key,
          record.value,
          record.createRevision,
          record.modRevision,
          record.version,
          record.sessionId,
          record.owner!,
        ])
      }
    }
    return {
      revision: this.revision,
      entries,
      compactedRevision: this.history.compactedRevision,
      history: this.history.toArray(),
    }
  }

  /** Loads a snapshot section into this (empty) store. */
  restore(data: unknown): void {
    checkSnapshot(isRecord(data), 'kv')
    checkSnapshot(isCount(data.revision), 'kv.revision')
    this.revision = data.revision
    for (const entry of snapshotArray(data.entries, 'kv.entries')) {
      checkSnapshot(
        Array.isArray(entry) &&
          (entry.length === 4 || entry.length === 5 || entry.length === 7) &&
          isId(entry[0]) &&
          isJsonValue(entry[1]) &&
          isCount(entry[2]) &&
          isCount(entry[3]) &&
          entry[2] <= entry[3] &&
          entry[3] <= this.revision &&
          (entry.length === 4 || isPositive(entry[4])) &&
          (entry.length !== 7 || (isId(entry[5]) && isId(entry[6]))),
        'kv.entries',
      )
      const key = entry[0]
      const record: KeyValue =
        entry.length === 7
          ? {
              value: entry[1],
              createRevision: entry[2],
              modRevision: entry[3],
              version: entry[4],
              sessionId: entry[5],
              owner: entry[6],
            }
          : { value: entry[1], createRevision: entry[2], modRevision: entry[3], version: entry[4] ?? 1 }
      this.entries.set(key, record)
      this.order.add(key)
      if (record.sessionId !== undefined) this.bind(record.sessionId, key)
    }
    checkSnapshot(isCount(data.compactedRevision), 'kv.compactedRevision')
    this.history.compactedRevision = data.compactedRevision
    let previous = data.compactedRevision
    for (const event of snapshotArray(data.history, 'kv.history')) {
      // Events of one entry share a revision, and the window may have dropped only some of them.
      checkSnapshot(
        isKvEvent(event) && event.revision >= Math.max(previous, 1) && event.revision <= this.revision,
        'kv.history',
      )
      previous = event.revision
      this.history.push(event)
    }
  }

  private applyOp(
    op: TxnOpSpec,
    sessionId: string | undefined,
    revision: () => number,
    context: ApplyContext,
  ): void {
    switch (op.type) {
      case 'put':
        this.write(op.key, op.value, op.ephemeral === true ? sessionId : undefined, revision(), context)
        return
      case 'delete': {
        const current = this.entries.get(op.key)
        if (current !== undefined) this.remove(op.key, current, revision(), context)
        return
      }
      case 'deletePrefix':
        for (const [key, current] of this.range(op.prefix)) this.remove(key, current, revision(), context)
        return
    }
  }

  /** Puts `value` at `revision`, bound to `sessionId` (ephemeral) or to none. */
  private write(
    key: string,
    value: JsonValue,
    sessionId: string | undefined,
    revision: number,
    context: ApplyContext,
  ): void {
    const current = this.entries.get(key)
    if (current?.sessionId !== undefined && current.sessionId !== sessionId)
      this.unbind(current.sessionId, key)
    const record: KeyValue =
      sessionId === undefined
        ? {
            value,
            createRevision: current === undefined ? revision : current.createRevision,
            modRevision: revision,
            version: current === undefined ? 1 : current.version + 1,
          }
        : {
            value,
            createRevision: current === undefined ? revision : current.createRevision,
            modRevision: revision,
            version: current === undefined ? 1 : current.version + 1,
            sessionId,
            owner: this.sessions.info(sessionId)?.agentId ?? sessionId,
          }
    this.entries.set(key, record)
    if (current === undefined) this.order.add(key)
    if (sessionId !== undefined) this.bind(sessionId, key)
    const event: KvEvent = { type: 'kv', op: 'put', key, value, revision, timestamp: context.time }
    if (current !== undefined) event.prevValue = current.value
    this.record(event, context)
  }

  private remove(key: string, current: KeyValue, revision: number, context: ApplyContext): void {
    this.entries.delete(key)
    this.order.remove(key)
    if (current.sessionId !== undefined) this.unbind(current.sessionId, key)
    this.record(
      { type: 'kv', op: 'delete', key, revision, timestamp: context.time, prevValue: current.value },
      context,
    )
  }

  private bind(sessionId: string, key: string): void {
    let keys = this.keysBySession.get(sessionId)
    if (keys === undefined) {
      keys = new Set()
      this.keysBySession.set(sessionId, keys)
    }
    keys.add(key)
  }

  private unbind(sessionId: string, key: string): void {
    const keys = this.keysBySession.get(sessionId)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) this.keysBySession.delete(sessionId)
  }

  private record(event: KvEvent, context: ApplyContext): void {
    this.history.push(event)
    context.events.push(event)
  }
}

function checkExpected(
  key: string,
  current: KeyValue | undefined,
  expectedRevision: number | undefined,
): CommandResult | undefined {
  if (expectedRevision === undefined) return undefined
  const actual = current === undefined ? 0 : current.modRevision
  if (actual === expectedRevision) return undefined
  return errorResult('RevisionMismatch', `key ${key} is at revision ${actual}, not ${expectedRevision}`)
}

/** Whether a (validated) compare holds for the key's record, as etcd evaluates it. */
export function compareHolds(compare: TxnCompareSpec, record: KeyValue | undefined): boolean {
  const { op, value } = compare
  switch (compare.target) {
    case 'exists': {
      const exists = record !== undefined
      return op === '==' ? exists === value : exists !== value
    }
    case 'value': {
      // etcd: a value compare on an absent key fails, whatever the operator.
      if (record === undefined) return false
      if (op === '==') return jsonEqual(record.value, value)
      if (op === '!=') return !jsonEqual(record.value, value)
      const stored = record.value
      let order: number
      if (typeof stored === 'number' && typeof value === 'number') order = stored - value
      else if (typeof stored === 'string' && typeof value === 'string') order = compareKeys(stored, value)
      else return false // ordering is defined between two numbers or two strings only
      return op === '<' ? order < 0 : order > 0
    }
    default: {
      const actual =
        record === undefined
          ? 0
          : compare.target === 'revision'
            ? record.modRevision
            : compare.target === 'createRevision'
              ? record.createRevision
              : record.version
      const expected = value as number
      switch (op) {
        case '==':
          return actual === expected
        case '!=':
          return actual !== expected
        case '<':
          return actual < expected
        case '>':
          return actual > expected
      }
    }
  }
}

function toEntry(key: string, record: KeyValue): KvEntryInfo {
  const entry: KvEntryInfo = {
    key,
    value: record.value,
    revision: record.modRevision,
    createRevision: record.createRevision,
    version: record.version,
    ephemeral: record.sessionId !== undefined,
  }
  if (record.owner !== undefined) entry.owner = record.owner
  return entry
}

function isKvEvent(value: unknown): value is KvEvent {
  if (!isRecord(value) || value.type !== 'kv' || !isId(value.key)) return false
  if (!isCount(value.revision) || !isCount(value.timestamp)) return false
  if (value.prevValue !== undefined && !isJsonValue(value.prevValue)) return false
  if (value.op === 'put') return isJsonValue(value.value)
  return value.op === 'delete' && value.value === undefined
}
