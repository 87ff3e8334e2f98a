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
 * `value` as `JSON.stringify` converts it (an `undefined` property or array hole left out or `null`, a `Date`
 * as its ISO string, `toJSON` honoured; `undefined` itself as `null`), or why it cannot be (a `BigInt`, a
 * cycle, nesting deeper than `MAX_JSON_DEPTH`).
 */
export function toJsonValue(value: unknown): { ok: true; value: JsonValue } | { ok: false; error: string } {
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
