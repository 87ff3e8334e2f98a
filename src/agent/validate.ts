import { InvalidArgumentError, LimitExceededError } from '../errors.ts'
import { isJsonValue, type JsonValue } from '../state/index.ts'

/** Longest key, election or lock name, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024
/** Largest value, as JSON text. Raft entries carry it whole; big blobs belong in a blob store. */
export const MAX_VALUE_BYTES = 1024 * 1024
/** Longest lease: about 24 days, far below the state machine's time cap. */
export const MAX_TTL_MS = 2 ** 31 - 1
/**
 * Watch streams open at once on one agent: `consensus.watch` and named-election `watch` iterators, each
 * client `kv.events` poll while it waits. Each holds a listener that runs for every applied change.
 */
export const MAX_WATCHERS = 10_000
/**
 * Calls waiting at once on one agent for the cluster to grant something: lock acquisitions and
 * named-election campaigns in progress, a client's pending ones included.
 */
export const MAX_WAITERS = 10_000

/**
 * How many of something are held at once, up to `limit`: `take()` one before starting, call the function
 * it returns when done. Over the limit, `take()` throws `LimitExceededError` and nothing is counted.
 */
export class Quota {
  readonly what: string
  /** The limit; lowering it affects only later `take()` calls. */
  limit: number
  private held = 0

  constructor(what: string, limit: number) {
    this.what = what
    this.limit = limit
  }

  /** How many are held now. */
  get size(): number {
    return this.held
  }

  /** Counts one more; the returned function gives it back (calling it again does nothing). */
  take(): () => void {
    if (this.held >= this.limit) {
      throw new LimitExceededError(`${this.what}: at most ${this.limit} at once on this agent`)
    }
    this.held++
    let released = false
    return () => {
      if (released) return
      released = true
      this.held--
    }
  }
}

export function checkKey(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidArgumentError(`${what} must be a non-empty string`)
  }
  if (key.length > MAX_KEY_LENGTH) throw new InvalidArgumentError(`${what} is longer than ${MAX_KEY_LENGTH}`)
  return key
}

export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string') throw new InvalidArgumentError('prefix must be a string')
  if (prefix.length > MAX_KEY_LENGTH)
    throw new InvalidArgumentError(`prefix is longer than ${MAX_KEY_LENGTH}`)
  return prefix
}

/** A JSON value that survives a round trip unchanged, within the size limit; copied so the caller keeps theirs. */
export function checkValue(value: unknown): JsonValue {
  if (!isJsonValue(value)) {
    throw new InvalidArgumentError(
      'value must be JSON data (no undefined, functions, NaN, cycles or classes)',
    )
  }
  const text = JSON.stringify(value)
  if (Buffer.byteLength(text) > MAX_VALUE_BYTES) {
    throw new InvalidArgumentError(`value is larger than ${MAX_VALUE_BYTES} bytes as JSON`)
  }
  return JSON.parse(text) as JsonValue
}

/** A lease in ms: a positive finite number, rounded up to whole ms. */
export function checkTtl(ttl: unknown): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
    throw new InvalidArgumentError('ttl must be a positive number of milliseconds')
  }
  if (ttl > MAX_TTL_MS) throw new InvalidArgumentError(`ttl must be at most ${MAX_TTL_MS} ms`)
  return Math.ceil(ttl)
}

export function checkRevision(revision: unknown, what = 'expectedRevision'): number | undefined {
  if (revision === undefined) return undefined
  if (!Number.isSafeInteger(revision) || (revision as number) < 0) {
    throw new InvalidArgumentError(`${what} must be an integer >= 0`)
  }
  return revision as number
}

/** Rejects options the call does not know: a typo must not silently change semantics. */
export function checkOptions(options: unknown, allowed: readonly string[]): void {
  if (options === undefined) return
  if (typeof options !== 'object' || options === null)
    throw new InvalidArgumentError('options must be an object')
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new InvalidArgumentError(`unknown option ${key}`)
  }
}
