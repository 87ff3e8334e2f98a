import type { TxnCompareSpec, TxnOpSpec } from './commands.ts'
import { isJsonValue } from './json.ts'
import { isKey } from './keys.ts'
import { isCount, isId, isRecord } from './validate.ts'

/** Most compares, and most ops in each branch, of one transaction (etcd's default `--max-txn-ops`). */
export const MAX_TXN_OPS = 128

const TARGETS: ReadonlySet<unknown> = new Set(['value', 'revision', 'createRevision', 'version', 'exists'])
const OPERATORS: ReadonlySet<unknown> = new Set(['==', '!=', '<', '>'])

/** Why `value` is not a valid compare list, or undefined. */
export function txnComparesError(value: unknown): string | undefined {
  if (!Array.isArray(value)) return 'compare must be an array'
  if (value.length > MAX_TXN_OPS) return `a transaction has at most ${MAX_TXN_OPS} compares`
  for (let i = 0; i < value.length; i++) {
    const error = compareError(value[i])
    if (error !== undefined) return `compare ${i}: ${error}`
  }
  return undefined
}

function compareError(compare: unknown): string | undefined {
  if (!isRecord(compare)) return 'not an object'
  for (const name in compare) {
    if (
      name !== 'key' &&
      name !== 'target' &&
      name !== 'op' &&
      name !== 'value' &&
      compare[name] !== undefined
    )
      return `unknown field ${name}`
  }
  const { key, target, op, value } = compare as Partial<TxnCompareSpec>
  if (!isKey(key)) return 'key must be a non-empty string of at most 1024 characters'
  if (!TARGETS.has(target)) return `unknown target ${String(target)}`
  if (!OPERATORS.has(op)) return `unknown operator ${String(op)}`
  if (target === 'exists') {
    if (typeof value !== 'boolean') return 'an exists compare takes a boolean'
    if (op !== '==' && op !== '!=') return 'an exists compare takes == or !='
    return undefined
  }
  if (target === 'value') {
    if (value === undefined || !isJsonValue(value)) return 'a value compare takes JSON data'
    if ((op === '<' || op === '>') && typeof value !== 'number' && typeof value !== 'string')
      return `a value compare with ${op} takes a number or a string`
    return undefined
  }
  if (!isCount(value)) return `a ${target} compare takes an integer >= 0`
  return undefined
}

/** Why `value` is not a valid op list for one branch, or undefined. */
export function txnOpsError(value: unknown): string | undefined {
  if (!Array.isArray(value)) return 'ops must be an array'
  if (value.length > MAX_TXN_OPS) return `a transaction branch has at most ${MAX_TXN_OPS} ops`
  const keys = new Set<string>()
  const prefixes: string[] = []
  for (let i = 0; i < value.length; i++) {
    const op: unknown = value[i]
    const error = opError(op)
    if (error !== undefined) return `op ${i}: ${error}`
    const spec = op as TxnOpSpec
    if (spec.type === 'deletePrefix') prefixes.push(spec.prefix)
    else {
      if (keys.has(spec.key)) return `op ${i}: key ${spec.key} is written twice`
      keys.add(spec.key)
    }
  }
  // etcd refuses overlapping writes in one branch: a key under a deleted prefix, or nested prefixes.
  for (let i = 0; i < prefixes.length; i++) {
    for (const key of keys) {
      if (key.startsWith(prefixes[i])) return `key ${key} is also under deleted prefix ${prefixes[i]}`
    }
    for (let j = 0; j < prefixes.length; j++) {
      if (i !== j && prefixes[j].startsWith(prefixes[i]))
        return `deleted prefixes ${prefixes[i]} and ${prefixes[j]} overlap`
    }
  }
  return undefined
}

function opError(op: unknown): string | undefined {
  if (!isRecord(op)) return 'not an object'
  const allowed =
    op.type === 'put'
      ? ['type', 'key', 'value', 'ephemeral']
      : op.type === 'delete'
        ? ['type', 'key']
        : op.type === 'deletePrefix'
          ? ['type', 'prefix']
          : undefined
  if (allowed === undefined) return `unknown op type ${String(op.type)}`
  for (const name in op) {
    if (!allowed.includes(name) && op[name] !== undefined) return `unknown field ${name}`
  }
  if (op.type === 'deletePrefix') {
    return isKey(op.prefix) ? undefined : 'prefix must be a non-empty string of at most 1024 characters'
  }
  if (!isKey(op.key)) return 'key must be a non-empty string of at most 1024 characters'
  if (op.type === 'put') {
    if (op.value === undefined || !isJsonValue(op.value)) return 'value must be JSON data'
    if (op.ephemeral !== undefined && typeof op.ephemeral !== 'boolean') return 'ephemeral must be a boolean'
  }
  return undefined
}

/**
 * Why a transaction command is invalid as a whole, or undefined: its lists each valid, at least one op,
 * a session given if an op is ephemeral.
 */
export function txnError(command: Record<string, unknown>): string | undefined {
  const error =
    txnComparesError(command.compare) ??
    txnOpsError(command.success) ??
    (command.failure === undefined ? undefined : txnOpsError(command.failure))
  if (error !== undefined) return error
  const success = command.success as TxnOpSpec[]
  const failure = (command.failure ?? []) as TxnOpSpec[]
  if (success.length + failure.length === 0) return 'a transaction needs at least one op'
  const ephemeral = [...success, ...failure].some(op => op.type === 'put' && op.ephemeral === true)
  if (ephemeral && !isId(command.sessionId)) return 'an ephemeral put needs the session it is bound to'
  return undefined
}
