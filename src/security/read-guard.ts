/**
 * The `read` right on an agent's own reads of the consensus KV store: `get`, `getEntry`, `list` and `watch`
 * of the `consensus` facade check that this agent's identity may `read` first, and refuse with
 * `UnauthorizedError` (rejected for the async ones, thrown by `watch()` as its other refusals are).
 * Everything else of the facade passes through untouched.
 */

/** The reads of the consensus facade that need `read`. */
export const READ_METHODS = ['get', 'getEntry', 'list', 'watch'] as const

/** `consensus`, with `requireRead` (which throws `UnauthorizedError`) called before each read. */
export function guardReads<T extends object>(consensus: T, requireRead: () => void): T {
  const reads = new Set<PropertyKey>(READ_METHODS)
  return new Proxy(consensus, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver)
      if (!reads.has(property) || typeof value !== 'function') return value
      const method = value as (...args: unknown[]) => unknown
      if (property === 'watch') {
        return (...args: unknown[]) => {
          requireRead()
          return method.apply(target, args)
        }
      }
      return async (...args: unknown[]) => {
        requireRead()
        return method.apply(target, args)
      }
    },
  })
}
