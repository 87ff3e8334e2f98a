/**
 * What the clients saw, as the checkers need it: every operation with its invocation and completion time on
 * one clock (the parent's monotonic clock; every agent runs on this machine), its input and its outcome.
 */
import type { KvOperation } from '../../src/check/index.ts'
import { errorName } from './errors.ts'

/**
 * A strictly increasing clock in ms: two events never share a stamp, so operations that merely touch are
 * ordered as they happened (the checker treats equal stamps as concurrent).
 */
export class HistoryClock {
  private last = 0

  now(): number {
    const now = performance.now()
    this.last = now > this.last ? now : this.last + 1e-6
    return this.last
  }
}

/** How an operation ended: `ok`, refused for certain (`fail`), or `unknown` (it may still take effect). */
export type Outcome = 'ok' | 'fail' | 'unknown'

/** One grant attempt of a lock, and what its holder did with it. */
export interface LockGrant {
  client: number
  agent: string
  key: string
  call: number
  /** Completion of the acquire; undefined when no grant came back. */
  granted?: number
  token?: bigint
  outcome: Outcome
  /** `isHeld()` answers while holding: [call, return, answer]. */
  heldChecks: [number, number, boolean][]
  /** Release call; undefined if the holder never got that far. */
  released?: number
}

/** One task submission and its outcome. */
export interface TaskSubmission {
  id: string
  call: number
  return: number
  outcome: Outcome
  requiredCapabilities: string[]
}

/** A fault the nemesis made: when, what, and when it was undone. */
export interface FaultRecord {
  kind: string
  description: string
  start: number
  end?: number
}

/** Counts of operations by kind and outcome. */
export type OperationCounts = Record<string, Record<Outcome, number>>

export class History {
  readonly clock = new HistoryClock()
  readonly kv: KvOperation[] = []
  readonly grants: LockGrant[] = []
  readonly tasks: TaskSubmission[] = []
  readonly faults: FaultRecord[] = []
  /** Accepted task completions reported by the workers: task id -> attempts that completed. */
  readonly completions = new Map<string, number[]>()
  readonly counts: OperationCounts = {}
  /** Reads that failed: they had no effect and are left out of the history. */
  droppedReads = 0

  /** Errors clients saw, by operation kind and error name. */
  readonly errors: Record<string, Record<string, number>> = {}

  /** The first message seen of each error name: what the report shows as an example. */
  readonly errorExamples: Record<string, string> = {}

  error(kind: string, err: unknown): void {
    const name = errorName(err)
    this.errorExamples[name] ??= String((err as Error)?.message ?? err)
    const byName = this.errors[kind] ?? {}
    byName[name] = (byName[name] ?? 0) + 1
    this.errors[kind] = byName
  }

  count(kind: string, outcome: Outcome): void {
    const counts = this.counts[kind] ?? { ok: 0, fail: 0, unknown: 0 }
    counts[outcome]++
    this.counts[kind] = counts
  }

  /** Every operation recorded, of every kind. */
  get total(): number {
    let total = 0
    for (const counts of Object.values(this.counts)) total += counts.ok + counts.fail + counts.unknown
    return total
  }
}
