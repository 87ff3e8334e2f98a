import type { DeleteCommand, PutCommand } from './commands.ts'
import type { ApplyContext } from './context.ts'
import type { KvEvent } from './events.ts'
import { type HistoryResult, KvHistory } from './history.ts'
import { isJsonValue, type JsonValue } from './json.ts'
import { type CommandResult, errorResult } from './results.ts'
import { checkSnapshot, isCount, isId, isRecord, snapshotArray } from './validate.ts'

/** A stored key. Records are replaced, never mutated, so a returned record stays as it was. */
export interface KeyValue {
  readonly value: JsonValue
  /** Revision of the put that created the key (since its last delete). */
  readonly createRevision: number
  /** Revision of the last put of the key. */
  readonly modRevision: number
}

/** KV section of a snapshot: entries as [key, value, createRevision, modRevision] in store order. */
export interface KvSnapshot {
  revision: number
  entries: [string, JsonValue, number, number][]
  compactedRevision: number
  history: KvEvent[]
}

/** The consensus KV store: a global revision bumped by every mutation, and a window of recent events. */
export class KvStore {
  /** Revision of the last mutation; 0 for an empty history. */
  revision = 0
  private readonly entries = new Map<string, KeyValue>()
  private readonly history: KvHistory

  constructor(historySize: number) {
    this.history = new KvHistory(historySize)
  }

  get(key: string): KeyValue | undefined {
    return this.entries.get(key)
  }

  get size(): number {
    return this.entries.size
  }

  /** Keys starting with `prefix` and their records, in key order. */
  range(prefix: string): [string, KeyValue][] {
    const found: [string, KeyValue][] = []
    for (const entry of this.entries) if (entry[0].startsWith(prefix)) found.push(entry)
    return found.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  eventsSince(fromRevision: number, prefix?: string, limit?: number): HistoryResult {
    return this.history.since(fromRevision, prefix, limit)
  }

  put(command: PutCommand, context: ApplyContext): CommandResult {
    const current = this.entries.get(command.key)
    const mismatch = this.checkExpected(command.key, current, command.expectedRevision)
    if (mismatch !== undefined) return mismatch
    const revision = ++this.revision
    this.entries.set(command.key, {
      value: command.value,
      createRevision: current === undefined ? revision : current.createRevision,
      modRevision: revision,
    })
    this.record(
      {
        type: 'kv',
        op: 'put',
        key: command.key,
        value: command.value,
        revision,
        timestamp: context.time,
      },
      context,
    )
    return { type: 'revision', revision }
  }

  delete(command: DeleteCommand, context: ApplyContext): CommandResult {
    const current = this.entries.get(command.key)
    const mismatch = this.checkExpected(command.key, current, command.expectedRevision)
    if (mismatch !== undefined) return mismatch
    // Deleting an absent key changes nothing, as in etcd: no revision, no event.
    if (current === undefined) return { type: 'revision', revision: this.revision }
    const revision = ++this.revision
    this.entries.delete(command.key)
    this.record({ type: 'kv', op: 'delete', key: command.key, revision, timestamp: context.time }, context)
    return { type: 'revision', revision }
  }

  toSnapshot(): KvSnapshot {
    const entries: KvSnapshot['entries'] = []
    for (const [key, record] of this.entries) {
      entries.push([key, record.value, record.createRevision, record.modRevision])
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
          entry.length === 4 &&
          isId(entry[0]) &&
          isJsonValue(entry[1]) &&
          isCount(entry[2]) &&
          isCount(entry[3]) &&
          entry[2] <= entry[3] &&
          entry[3] <= this.revision,
        'kv.entries',
      )
      this.entries.set(entry[0], { value: entry[1], createRevision: entry[2], modRevision: entry[3] })
    }
    checkSnapshot(isCount(data.compactedRevision), 'kv.compactedRevision')
    this.history.compactedRevision = data.compactedRevision
    let previous = data.compactedRevision
    for (const event of snapshotArray(data.history, 'kv.history')) {
      checkSnapshot(
        isKvEvent(event) && event.revision > previous && event.revision <= this.revision,
        'kv.history',
      )
      previous = event.revision
      this.history.push(event)
    }
  }

  private checkExpected(
    key: string,
    current: KeyValue | undefined,
    expectedRevision: number | undefined,
  ): CommandResult | undefined {
    if (expectedRevision === undefined) return undefined
    const actual = current === undefined ? 0 : current.modRevision
    if (actual === expectedRevision) return undefined
    return errorResult('RevisionMismatch', `key ${key} is at revision ${actual}, not ${expectedRevision}`)
  }

  private record(event: KvEvent, context: ApplyContext): void {
    this.history.push(event)
    context.events.push(event)
  }
}

function isKvEvent(value: unknown): value is KvEvent {
  if (!isRecord(value) || value.type !== 'kv' || !isId(value.key)) return false
  if (!isCount(value.revision) || !isCount(value.timestamp)) return false
  if (value.op === 'put') return isJsonValue(value.value)
  return value.op === 'delete' && value.value === undefined
}
