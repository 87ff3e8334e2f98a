/** Shape checks shared by the envelope decoder and snapshot restore. */

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A non-empty string: keys, session ids, agent ids, request ids, election names. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0
}

/** A safe integer >= 0: revisions, indexes, sequence numbers, timestamps. */
export function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

/**
 * Bound for timestamps, ttls and seqs taken from entries, so that `time + ttl` and `seq + 1` stay safe
 * integers (and a snapshot of them restores). 2^50 ms is about 35,000 years.
 */
export const MAX_TIME_VALUE = 2 ** 50

/** An integer in [0, MAX_TIME_VALUE]: timestamps, seqs. */
export function isBoundedCount(value: unknown): value is number {
  return isCount(value) && value <= MAX_TIME_VALUE
}

/** An integer in [1, MAX_TIME_VALUE]: ttls. */
export function isTtl(value: unknown): value is number {
  return isBoundedCount(value) && value > 0
}

/** A safe integer > 0: fencing tokens. */
export function isPositive(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0
}

/** Restore of a snapshot that is not one this version wrote fails loudly: the shell must not run on it. */
export function checkSnapshot(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`Invalid state snapshot: ${what}`)
}

/** The array at `value`, or a thrown snapshot error naming `what`. */
export function snapshotArray(value: unknown, what: string): unknown[] {
  checkSnapshot(Array.isArray(value), what)
  return value
}
