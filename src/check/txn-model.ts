import { formatTime, type Model, type Operation } from './linearizability.ts'

/**
 * A few keys written together by multi-key transactions, as a sequential specification: etcd's Txn on a
 * key space where each key has a value and a version (writes since creation; 0 when absent). The keys of a
 * history are one partition (a transaction ties them together), so a history should stay on a handful of
 * keys. Written from etcd's documented semantics, not from `src/state`, so that it checks the state machine
 * rather than restating it.
 */

/** Values the model compares: numbers and strings (ordered among their own kind only). */
export type TxnValue = number | string

export interface TxnCompare {
  key: string
  target: 'value' | 'version' | 'exists'
  op: '==' | '!=' | '<' | '>'
  value: TxnValue | boolean
}

export type TxnWrite = { type: 'put'; key: string; value: TxnValue } | { type: 'delete'; key: string }

/**
 * `read`: an atomic read of `keys` (a `list` of their prefix, or a `getEntry` of one); `put` and `delete`:
 * plain single-key writes; `txn`: the compares pick `success` or `failure`, applied as one step.
 */
export type TxnInput =
  | { op: 'read'; keys: readonly string[] }
  | { op: 'put'; key: string; value: TxnValue }
  | { op: 'delete'; key: string }
  | {
      op: 'txn'
      compare: readonly TxnCompare[]
      success: readonly TxnWrite[]
      failure: readonly TxnWrite[]
    }

/** One key as a read saw it. */
export interface TxnEntry {
  value: TxnValue
  version: number
}

/** `entries` for a read (the keys read that exist), `succeeded` for a transaction, `{}` for put and delete. */
export interface TxnOutput {
  entries?: Readonly<Record<string, TxnEntry>>
  succeeded?: boolean
}

/** Key -> entry. Never mutated: a step that writes returns a copy. */
export type TxnState = ReadonlyMap<string, TxnEntry>

export type TxnOperation = Operation<TxnInput, TxnOutput>

export const txnModel: Model<TxnState, TxnInput, TxnOutput> = {
  init: () => new Map<string, TxnEntry>(),

  step(state, input, output) {
    switch (input.op) {
      case 'read':
        return { ok: output === undefined || readMatches(state, input.keys, output.entries ?? {}), state }
      case 'put':
      case 'delete':
        return { ok: true, state: applyWrites(state, [writeOf(input)]) }
      case 'txn': {
        const succeeded = input.compare.every(compare => holds(compare, state.get(compare.key)))
        const next = applyWrites(state, succeeded ? input.success : input.failure)
        // An unknown outcome accepts whichever branch the state picks.
        return { ok: output === undefined || output.succeeded === succeeded, state: next }
      }
    }
  },

  key(state) {
    const entries = [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return JSON.stringify(entries.map(([key, entry]) => [key, entry.value, entry.version]))
  },

  describeOperation: describeTxnOperation,
}

function writeOf(
  input: { op: 'put'; key: string; value: TxnValue } | { op: 'delete'; key: string },
): TxnWrite {
  return input.op === 'put'
    ? { type: 'put', key: input.key, value: input.value }
    : { type: 'delete', key: input.key }
}

function readMatches(
  state: TxnState,
  keys: readonly string[],
  seen: Readonly<Record<string, TxnEntry>>,
): boolean {
  for (const key of keys) {
    const actual = state.get(key)
    const observed = Object.hasOwn(seen, key) ? seen[key] : undefined
    if (actual === undefined || observed === undefined) {
      if (actual !== observed) return false
    } else if (actual.value !== observed.value || actual.version !== observed.version) return false
  }
  return true
}

/** etcd's compare: a value compare on an absent key fails; an absent key has version 0. */
function holds(compare: TxnCompare, entry: TxnEntry | undefined): boolean {
  const { op, value } = compare
  if (compare.target === 'exists') {
    const exists = entry !== undefined
    return op === '==' ? exists === value : exists !== value
  }
  let actual: TxnValue
  if (compare.target === 'version') actual = entry?.version ?? 0
  else if (entry === undefined) return false
  else actual = entry.value
  switch (op) {
    case '==':
      return actual === value
    case '!=':
      return actual !== value
    default:
      // Ordered between two numbers or two strings only.
      if (typeof actual !== typeof value || typeof value === 'boolean') return false
      return op === '<' ? actual < value : actual > value
  }
}

function applyWrites(state: TxnState, writes: readonly TxnWrite[]): TxnState {
  if (writes.length === 0) return state
  const next = new Map(state)
  for (const write of writes) {
    if (write.type === 'delete') next.delete(write.key)
    else next.set(write.key, { value: write.value, version: (next.get(write.key)?.version ?? 0) + 1 })
  }
  return next
}

/** `c2 txn(version(a) == 3 ... ? put(a, 7) put(b, 93)) -> true [3, 7]`; an unknown outcome shows `?`. */
export function describeTxnOperation(op: TxnOperation): string {
  const input = op.input
  const show = (write: TxnWrite): string =>
    write.type === 'put' ? `put(${write.key}, ${JSON.stringify(write.value)})` : `delete(${write.key})`
  let call: string
  let result: string
  switch (input.op) {
    case 'read': {
      call = `read(${input.keys.join(', ')})`
      const entries = op.output?.entries ?? {}
      result = `{${input.keys
        .filter(key => Object.hasOwn(entries, key))
        .map(key => `${key}: ${JSON.stringify(entries[key].value)} v${entries[key].version}`)
        .join(', ')}}`
      break
    }
    case 'put':
    case 'delete':
      call = show(writeOf(input))
      result = 'ok'
      break
    case 'txn': {
      const compares = input.compare
        .map(c => `${c.target}(${c.key}) ${c.op} ${JSON.stringify(c.value)}`)
        .join(' && ')
      call = `txn(${compares} ? ${input.success.map(show).join(' ')} : ${input.failure.map(show).join(' ')})`
      result = String(op.output?.succeeded)
      break
    }
  }
  if (op.output === undefined) result = '?'
  return `c${op.clientId} ${call} -> ${result} [${op.call}, ${formatTime(op.return)}]`
}
