import type { Command, CommandType, Envelope } from './commands.ts'
import { isJsonValue } from './json.ts'
import { isKey } from './keys.ts'
import { isMaxFinishedTasks } from './task-retention.ts'
import {
  isConcurrency,
  isIdList,
  isLabels,
  isRunTaskOps,
  isTaskIdBatch,
  isTaskSpec,
  isTaskSpecList,
} from './task-spec.ts'
import { txnComparesError, txnError, txnOpsError } from './txn.ts'
import { isBoundedCount, isCount, isId, isPositive, isRecord, isTtl } from './validate.ts'
import { isCommandSetVersion } from './versions.ts'

/** The outcome of decoding an entry: a typed error instead of an exception, so apply never throws. */
export type DecodeResult = { ok: true; envelope: Envelope } | { ok: false; error: string }

type FieldKind =
  | 'id'
  | 'json'
  | 'count'
  | 'positive'
  | 'ttl'
  | 'boolean'
  | 'expireReason'
  | 'string'
  | 'idList'
  | 'labels'
  | 'concurrency'
  | 'task'
  | 'tasks'
  | 'taskOps'
  | 'voterTarget'
  | 'key'
  | 'txnCompares'
  | 'txnOps'
  | 'permits'
  | 'taskIds'
  | 'commandSetVersion'
  | 'maxFinishedTasks'

interface FieldSpec {
  kind: FieldKind
  optional: boolean
}

function field(kind: FieldKind, optional = false): FieldSpec {
  return { kind, optional }
}

/** An agent's registration: `registerAgent`, and `openSessionAndRegister` with its session's ttl. */
const registrationFields: Readonly<Record<string, FieldSpec>> = {
  agentId: field('id'),
  name: field('id'),
  sessionId: field('id'),
  addrs: field('idList'),
  capabilities: field('idList'),
  labels: field('labels'),
  concurrency: field('concurrency'),
  spiffeId: field('id', true),
  runsTasks: field('boolean', true),
}

/** Every field each command may carry; anything else is rejected. Kept in a Map so `__proto__` is no type. */
const commandFields: ReadonlyMap<CommandType, Readonly<Record<string, FieldSpec>>> = new Map<
  CommandType,
  Record<string, FieldSpec>
>([
  ['put', { key: field('id'), value: field('json'), expectedRevision: field('count', true) }],
  ['delete', { key: field('id'), expectedRevision: field('count', true) }],
  ['openSession', { sessionId: field('id'), agentId: field('id'), ttlMs: field('ttl') }],
  ['keepAlive', { sessionId: field('id') }],
  ['closeSession', { sessionId: field('id') }],
  ['expireSession', { sessionId: field('id'), reason: field('expireReason') }],
  [
    'lockAcquire',
    {
      key: field('id'),
      sessionId: field('id'),
      requestId: field('id'),
      ttlMs: field('ttl'),
      wait: field('boolean'),
    },
  ],
  ['lockRelease', { key: field('id'), sessionId: field('id'), fencingToken: field('positive') }],
  [
    'lockExtend',
    { key: field('id'), sessionId: field('id'), fencingToken: field('positive'), ttlMs: field('ttl') },
  ],
  ['lockCancel', { key: field('id'), sessionId: field('id'), requestId: field('id') }],
  ['lockExpire', { key: field('id'), fencingToken: field('positive'), leaseIndex: field('positive', true) }],
  [
    'campaign',
    {
      name: field('id'),
      sessionId: field('id'),
      agentId: field('id'),
      requestId: field('id'),
      value: field('json', true),
    },
  ],
  ['resign', { name: field('id'), sessionId: field('id'), requestId: field('id', true) }],
  ['registerAgent', registrationFields],
  ['openSessionAndRegister', { ...registrationFields, ttlMs: field('ttl') }],
  [
    'updateAgent',
    {
      agentId: field('id'),
      name: field('id', true),
      addrs: field('idList', true),
      capabilities: field('idList', true),
      labels: field('labels', true),
      concurrency: field('concurrency', true),
      runsTasks: field('boolean', true),
    },
  ],
  ['deregisterAgent', { agentId: field('id') }],
  ['submitTask', { task: field('task') }],
  ['claimTask', { taskId: field('id'), agentId: field('id'), sessionId: field('id') }],
  [
    'completeTask',
    {
      taskId: field('id'),
      attempt: field('positive'),
      fencingToken: field('positive'),
      result: field('json'),
      agentId: field('id', true),
    },
  ],
  [
    'failTask',
    {
      taskId: field('id'),
      attempt: field('positive'),
      fencingToken: field('positive'),
      error: field('string'),
      agentId: field('id', true),
    },
  ],
  ['stealTask', { taskId: field('id'), fromAgentId: field('id'), toAgentId: field('id') }],
  ['timeoutTask', { taskId: field('id'), attempt: field('positive') }],
  ['retryDue', { taskId: field('id') }],
  ['expireTask', { taskId: field('id') }],
  ['cancelTask', { taskId: field('id'), reason: field('string', true) }],
  ['submitTasks', { tasks: field('tasks') }],
  ['runTasks', { agentId: field('id'), sessionId: field('id'), ops: field('taskOps') }],
  ['setVoterTarget', { voters: field('voterTarget') }],
  [
    'putEphemeral',
    {
      key: field('key'),
      value: field('json'),
      sessionId: field('id'),
      expectedRevision: field('count', true),
    },
  ],
  [
    'txn',
    {
      compare: field('txnCompares'),
      success: field('txnOps'),
      failure: field('txnOps', true),
      sessionId: field('id', true),
    },
  ],
  [
    'semaphoreAcquire',
    {
      key: field('key'),
      sessionId: field('id'),
      requestId: field('id'),
      ttlMs: field('ttl'),
      wait: field('boolean'),
      permits: field('permits'),
    },
  ],
  ['proclaim', { name: field('id'), sessionId: field('id'), value: field('json') }],
  ['pauseTasks', { taskType: field('id', true) }],
  ['resumeTasks', { taskType: field('id', true) }],
  [
    'taskProgress',
    {
      taskId: field('id'),
      attempt: field('positive'),
      fencingToken: field('positive'),
      progress: field('json'),
    },
  ],
  ['releaseTask', { taskId: field('id') }],
  ['createOccurrence', { scheduleId: field('id'), slot: field('count') }],
  ['forgetTasks', { taskIds: field('taskIds') }],
  ['setClusterVersion', { version: field('commandSetVersion') }],
  ['setMaxFinishedTasks', { maxFinishedTasks: field('maxFinishedTasks') }],
])

/** Checks across the fields of a command, after each field was found valid on its own. */
const commandChecks: ReadonlyMap<CommandType, (command: Record<string, unknown>) => string | undefined> =
  new Map([['txn', txnError]])

function fieldValid(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case 'id':
      return isId(value)
    case 'json':
      return isJsonValue(value)
    case 'count':
      return isCount(value)
    case 'positive':
      return isPositive(value)
    case 'ttl':
      return isTtl(value)
    case 'boolean':
      return typeof value === 'boolean'
    case 'expireReason':
      return value === 'ttl' || value === 'dead'
    case 'string':
      return typeof value === 'string'
    case 'idList':
      return isIdList(value)
    case 'labels':
      return isLabels(value)
    case 'concurrency':
      return isConcurrency(value)
    case 'task':
      return isTaskSpec(value)
    case 'tasks':
      return isTaskSpecList(value)
    case 'taskOps':
      return isRunTaskOps(value)
    case 'voterTarget':
      return isVoterTarget(value)
    case 'key':
      return isKey(value)
    case 'txnCompares':
      return txnComparesError(value) === undefined
    case 'txnOps':
      return txnOpsError(value) === undefined
    case 'permits':
      return isPositive(value)
    case 'taskIds':
      return isTaskIdBatch(value)
    case 'commandSetVersion':
      return isCommandSetVersion(value)
    case 'maxFinishedTasks':
      return isMaxFinishedTasks(value)
  }
}

/** Checks a parsed command against its field list; returns an error message or undefined. */
function commandError(value: unknown): string | undefined {
  if (!isRecord(value)) return 'command is not an object'
  const type = value.type
  const fields = typeof type === 'string' ? commandFields.get(type as CommandType) : undefined
  if (fields === undefined) return 'unknown command type'
  let present = 1 // `type`
  for (const name in fields) {
    const spec = fields[name]
    const fieldValue = value[name]
    if (fieldValue === undefined) {
      if (spec.optional) continue
      return `command ${type} lacks ${name}`
    }
    if (!fieldValid(spec.kind, fieldValue)) return `command ${type} has an invalid ${name}`
    present++
  }
  // Every key was matched above unless there are more keys than matches. Keys holding `undefined` count as
  // absent, as `JSON.stringify` drops them: a command built in JS validates as it will decode.
  let keys = 0
  for (const name in value) if (value[name] !== undefined) keys++
  if (keys !== present) return `command ${type} has unknown fields`
  const check = commandChecks.get(type as CommandType)
  if (check !== undefined) {
    const error = check(value)
    if (error !== undefined) return `command ${type}: ${error}`
  }
  return undefined
}

/** Whether `type` is a command type this code knows (of any command-set version). */
export function isKnownCommandType(type: string): type is CommandType {
  return commandFields.has(type as CommandType)
}

/** Largest voter target a `setVoterTarget` may set. */
export const MAX_VOTER_TARGET = 9

/** A voter-set size: an integer from 1 to `MAX_VOTER_TARGET`. */
export function isVoterTarget(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_VOTER_TARGET
}

const envelopeKeys = new Set(['ts', 'session', 'seq', 'ackedBelow', 'command'])

/**
 * Validates an already parsed envelope: exact shapes, no unknown fields. The result's envelope is `value`
 * itself (no copy), typed.
 */
export function validateEnvelope(value: unknown): DecodeResult {
  if (!isRecord(value)) return { ok: false, error: 'envelope is not an object' }
  for (const key in value) {
    if (!envelopeKeys.has(key) && value[key] !== undefined)
      return { ok: false, error: 'envelope has unknown fields' }
  }
  if (!isBoundedCount(value.ts)) return { ok: false, error: 'envelope has an invalid ts' }
  const { session, seq, ackedBelow } = value
  if (session !== undefined && !isId(session)) return { ok: false, error: 'envelope has an invalid session' }
  if (seq !== undefined && (!isBoundedCount(seq) || session === undefined)) {
    return { ok: false, error: 'envelope has an invalid seq' }
  }
  if (ackedBelow !== undefined && (!isBoundedCount(ackedBelow) || seq === undefined)) {
    return { ok: false, error: 'envelope has an invalid ackedBelow' }
  }
  const error = commandError(value.command)
  if (error !== undefined) return { ok: false, error }
  return { ok: true, envelope: value as unknown as Envelope }
}

const encoder = new TextEncoder()
// fatal: malformed UTF-8 is an error, not silently replaced, so a corrupted entry is never half-understood.
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The entry data for `envelope`: UTF-8 JSON. Does not validate; use `validateEnvelope` where input is untrusted. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return encoder.encode(JSON.stringify(envelope))
}

/** Shorthand for the common case of a command without a client session. */
export function encodeCommand(command: Command, ts: number): Uint8Array {
  return encodeEnvelope({ ts, command })
}

/**
 * Decodes and strictly validates entry data. Never throws. Error messages are fixed strings of this module
 * (not the JSON parser's, which vary between engine versions), so every replica reports the same.
 */
export function decodeEnvelope(data: Uint8Array): DecodeResult {
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(data))
  } catch {
    return { ok: false, error: 'entry is not UTF-8 JSON' }
  }
  return validateEnvelope(parsed)
}
