import type { TaskChange } from './events.ts'

/** Replay of task changes from a revision, or `compacted` if some of them are no longer retained. */
export type TaskHistoryResult =
  | { type: 'changes'; changes: TaskChange[] }
  /** Changes up to and including `compactedRevision` are gone; the next one retained follows it. */
  | { type: 'compacted'; compactedRevision: number }

/**
 * The last `capacity` task changes in revision order, for watches that resume from a revision. Revisions
 * are consecutive, so a change is found by arithmetic, not by search.
 */
export class TaskHistory {
  readonly capacity: number
  private buffer: TaskChange[] = []
  /** Position of the oldest change once the buffer is full. */
  private start = 0
  /** Revision of the last change pushed (0 before any). */
  private last = 0

  constructor(capacity: number) {
    this.capacity = capacity
  }

  /** Revision of the latest change. */
  get revision(): number {
    return this.last
  }

  /** Highest revision no longer retained (0 while none was dropped). */
  get compactedRevision(): number {
    return this.last - this.buffer.length
  }

  /** Numbers and keeps `change` (its `revision` is set here). */
  push(change: Omit<TaskChange, 'revision'>): TaskChange {
    const numbered = { ...change, revision: ++this.last } as TaskChange
    if (this.capacity === 0) return numbered
    if (this.buffer.length < this.capacity) this.buffer.push(numbered)
    else {
      this.buffer[this.start] = numbered
      this.start = (this.start + 1) % this.capacity
    }
    return numbered
  }

  /**
   * Changes with revision >= `fromRevision` that `filter` accepts, oldest first, at most `limit`; `compacted`
   * if a change at or after `fromRevision` is no longer retained.
   */
  since(
    fromRevision: number,
    filter: (change: TaskChange) => boolean = () => true,
    limit = Number.POSITIVE_INFINITY,
  ): TaskHistoryResult {
    const from = Math.max(fromRevision, 1)
    const compacted = this.compactedRevision
    if (from <= compacted) return { type: 'compacted', compactedRevision: compacted }
    const changes: TaskChange[] = []
    for (let i = from - compacted - 1; i < this.buffer.length && changes.length < limit; i++) {
      const change = this.at(i)
      if (filter(change)) changes.push(change)
    }
    return { type: 'changes', changes }
  }

  toSnapshot(): { revision: number; changes: TaskChange[] } {
    const changes: TaskChange[] = []
    for (let i = 0; i < this.buffer.length; i++) changes.push(this.at(i))
    return { revision: this.last, changes }
  }

  /** Loads what `toSnapshot` gave (checked by the caller): the latest changes, at most `capacity` kept. */
  restore(revision: number, changes: TaskChange[]): void {
    const kept = changes.slice(Math.max(0, changes.length - this.capacity))
    this.buffer = kept
    this.start = 0
    this.last = revision
  }

  private at(position: number): TaskChange {
    return this.buffer[(this.start + position) % this.buffer.length]
  }
}
