import { formatTime, type Model, type Operation } from './linearizability.ts'

/**
 * A key-value store as a sequential specification, for the simulator and the chaos tests. Keys are
 * independent, so the model partitions a history per key and each key is checked on its own.
 */

/** An operation on one key. `cas` sets `value` if the key holds `expected` (`undefined` = the key is absent). */
export type KvInput =
  | { op: 'put'; key: string; value: string }
  | { op: 'get'; key: string }
  | { op: 'cas'; key: string; expected: string | undefined; value: string }
  | { op: 'delete'; key: string }

/**
 * What the store answered: `{ value?: string }` for get (no `value` = the key is absent), `{}` for put and
 * delete, `{ ok }` for cas.
 */
export interface KvOutput {
  value?: string
  ok?: boolean
}

/** Key -> value. Never mutated: a step that writes returns a copy. */
export type KvState = ReadonlyMap<string, string>

export type KvOperation = Operation<KvInput, KvOutput>

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => new Map<string, string>(),

  step(state, input, output) {
    const current = state.get(input.key)
    switch (input.op) {
      case 'put':
        return { ok: true, state: withValue(state, input.key, input.value) }
      case 'delete':
        return { ok: true, state: withValue(state, input.key, undefined) }
      case 'get':
        return { ok: output === undefined || output.value === current, state }
      case 'cas': {
        const swapped = current === input.expected
        const next = swapped ? withValue(state, input.key, input.value) : state
        // An unknown outcome accepts whichever result the state dictates.
        return { ok: output === undefined || output.ok === swapped, state: next }
      }
    }
  },

  partition(history) {
    const byKey = new Map<string, KvOperation[]>()
    for (const op of history) {
      const ops = byKey.get(op.input.key)
      if (ops === undefined) byKey.set(op.input.key, [op])
      else ops.push(op)
    }
    return [...byKey.values()]
  },

  key(state) {
    if (state.size === 0) return '{}'
    // The common case under per-key partitions: one key.
    if (state.size === 1) for (const entry of state) return `[${JSON.stringify(entry)}]`
    // Sorted so that two maps with the same contents, written in different orders, share a key.
    return JSON.stringify([...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  },

  describeOperation: describeKvOperation,
}

function withValue(state: KvState, key: string, value: string | undefined): KvState {
  const next = new Map(state)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}

/** `c1 cas(k, "a" -> "b") -> true [3, 7]`; an unknown outcome shows `?` and a return of `∞`. */
export function describeKvOperation(op: KvOperation): string {
  const input = op.input
  const key = JSON.stringify(input.key)
  const show = (value: string | undefined): string => (value === undefined ? 'absent' : JSON.stringify(value))
  let call: string
  let result: string
  switch (input.op) {
    case 'put':
      call = `put(${key}, ${show(input.value)})`
      result = 'ok'
      break
    case 'delete':
      call = `delete(${key})`
      result = 'ok'
      break
    case 'get':
      call = `get(${key})`
      result = op.output === undefined ? '' : show(op.output.value)
      break
    case 'cas':
      call = `cas(${key}, ${show(input.expected)} -> ${show(input.value)})`
      result = String(op.output?.ok)
      break
  }
  if (op.output === undefined) result = '?'
  return `c${op.clientId} ${call} -> ${result} [${op.call}, ${formatTime(op.return)}]`
}
