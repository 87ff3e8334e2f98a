import { InvalidArgumentError } from '../errors.ts'

/** A JSON value as it travels in commands and is stored in the KV: what `JSON.parse` can produce. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/**
 * Deepest nesting accepted in a stored value. The walk below is recursive, and a value nested deeper than
 * this could overflow the stack in the walk or in a later `JSON.stringify` of a snapshot.
 */
export const MAX_JSON_DEPTH = 64

/**
 * True if `value` is JSON that survives a round trip through `JSON.stringify`/`JSON.parse` unchanged:
 * no non-finite numbers (`1e400` parses to Infinity, which would come back from a snapshot as `null`),
 * no `undefined`, functions or class instances, and no nesting beyond `MAX_JSON_DEPTH`.
 */
export function isJsonValue(value: unknown, depth = 0): value is JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true
    case 'number':
      return Number.isFinite(value)
    case 'object': {
      if (value === null) return true
      if (depth >= MAX_JSON_DEPTH) return false
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!isJsonValue(value[i], depth + 1)) return false
        }
        return true
      }
      const prototype = Object.getPrototypeOf(value)
      if (prototype !== Object.prototype && prototype !== null) return false
      for (const key in value) {
        if (!isJsonValue((value as Record<string, unknown>)[key], depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

/**
 * `value` as `JSON.stringify` converts it, parsed back: an `undefined` property (or one holding a function)
 * is left out, an `undefined` array element becomes `null`, a `Date` becomes its ISO string (any `toJSON`
 * is honoured), a non-finite number becomes `null`. Throws `InvalidArgumentError` for what
 * `JSON.stringify` cannot convert (a `BigInt`, a cycle), for a value that converts to nothing at all
 * (`undefined`, a function), and for nesting deeper than `MAX_JSON_DEPTH`. The result is a fresh copy the caller cannot
 * change through the original. `maxBytes` bounds the UTF-8 size of the JSON text.
 */
export function toJsonValue(value: unknown, what = 'value', maxBytes = Number.POSITIVE_INFINITY): JsonValue {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    // TypeError for a BigInt or a cycle, RangeError for nesting that overflows the stack.
    throw new InvalidArgumentError(`${what} cannot be converted to JSON: ${(cause as Error).message}`, {
      cause,
    })
  }
  if (text === undefined)
    throw new InvalidArgumentError(`${what} converts to no JSON at all (undefined or a function)`)
  if (text.length > maxBytes / 3 && Buffer.byteLength(text) > maxBytes) {
    throw new InvalidArgumentError(`${what} is larger than ${maxBytes} bytes as JSON`)
  }
  const parsed = JSON.parse(text) as unknown
  if (!isJsonValue(parsed))
    throw new InvalidArgumentError(`${what} is nested deeper than ${MAX_JSON_DEPTH} levels`)
  return parsed
}

/** Structural equality of two JSON values (object keys in any order). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const aKeys = Object.keys(a)
  if (aKeys.length !== Object.keys(b).length) return false
  for (const key of aKeys) {
    if (!Object.hasOwn(b, key) || !jsonEqual(a[key], b[key])) return false
  }
  return true
}

/** A deep copy of a JSON value: for handing stored values out (much cheaper than `structuredClone`). */
export function copyJson<T extends JsonValue>(value: T): T {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(copyJson) as T
  const copy: Record<string, JsonValue> = {}
  for (const key in value) {
    const field = (value as Record<string, JsonValue>)[key]
    // `__proto__` as an own key must stay a plain own property.
    if (key === '__proto__')
      Object.defineProperty(copy, key, {
        value: copyJson(field),
        enumerable: true,
        writable: true,
        configurable: true,
      })
    else copy[key] = copyJson(field)
  }
  return copy as T
}

/**
 * `value` as `JSON.stringify` converts it (an `undefined` property or array hole left out or `null`, a `Date`
 * as its ISO string, `toJSON` honoured; `undefined` itself as `null`), or why it cannot be (a `BigInt`, a
 * cycle, nesting deeper than `MAX_JSON_DEPTH`).
 */
export function convertJson(value: unknown): { ok: true; value: JsonValue } | { ok: false; error: string } {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) }
  }
  if (text === undefined) return { ok: true, value: null }
  const parsed: unknown = JSON.parse(text)
  if (!isJsonValue(parsed)) return { ok: false, error: `it is nested deeper than ${MAX_JSON_DEPTH} levels` }
  return { ok: true, value: parsed }
}
