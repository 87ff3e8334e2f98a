import fc from 'fast-check'
import { expect, it } from 'vitest'
import type { Command, TxnCompareSpec, TxnOpSpec } from '../../src/state/commands.ts'
import type { KvEvent } from '../../src/state/events.ts'
import type { JsonValue } from '../../src/state/json.ts'
import type { CommandResult } from '../../src/state/results.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver } from './helpers.ts'

/**
 * Random interleavings of transactions, plain and ephemeral puts, session ends, semaphore acquires,
 * releases and cancels, applied to the state machine and to a reference model written here from the
 * contract (etcd's Txn, ephemeral keys bound to sessions, a FIFO semaphore with fenced permits): every
 * result, every KV event, and the state after every step must agree.
 */

const SESSIONS = ['s0', 's1', 's2']
const KEYS = ['a', 'b', 'c', 'p/a', 'p/b', 'p/c', 'p/\u{1F600}', 'p/\uFF5E']
const PREFIXES = ['p/', 'a']
const PERMITS = 3
const TTL = 5_000
const NOW = 1_000

type Op =
  | { kind: 'open'; session: number }
  | { kind: 'end'; session: number; how: 'close' | 'dead' }
  | { kind: 'put'; key: number; value: number }
  | { kind: 'delete'; key: number }
  | { kind: 'putEphemeral'; key: number; value: number; session: number }
  | { kind: 'txn'; compare: TxnCompareSpec[]; success: TxnOpSpec[]; failure: TxnOpSpec[]; session: number }
  | { kind: 'acquire'; session: number; request: number; wait: boolean }
  | { kind: 'release'; session: number; which: number }
  | { kind: 'cancel'; session: number; request: number }

const session = fc.nat({ max: SESSIONS.length - 1 })
const key = fc.nat({ max: KEYS.length - 1 })
const small = fc.integer({ min: 0, max: 3 })

const compare: fc.Arbitrary<TxnCompareSpec> = fc.oneof(
  fc.record({
    key: fc.constantFrom(...KEYS),
    target: fc.constant('value' as const),
    op: fc.constantFrom('==' as const, '!=' as const, '<' as const, '>' as const),
    value: small as fc.Arbitrary<JsonValue>,
  }),
  fc.record({
    key: fc.constantFrom(...KEYS),
    target: fc.constantFrom('revision' as const, 'createRevision' as const, 'version' as const),
    op: fc.constantFrom('==' as const, '!=' as const, '<' as const, '>' as const),
    value: fc.integer({ min: 0, max: 12 }) as fc.Arbitrary<JsonValue>,
  }),
  fc.record({
    key: fc.constantFrom(...KEYS),
    target: fc.constant('exists' as const),
    op: fc.constantFrom('==' as const, '!=' as const),
    value: fc.boolean() as fc.Arbitrary<JsonValue>,
  }),
)

const txnOp: fc.Arbitrary<TxnOpSpec> = fc.oneof(
  fc.record({
    type: fc.constant('put' as const),
    key: fc.constantFrom(...KEYS),
    value: small,
    ephemeral: fc.oneof(
      { weight: 3, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
  }),
  fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
  fc.record({ type: fc.constant('deletePrefix' as const), prefix: fc.constantFrom(...PREFIXES) }),
)

/** A valid branch: no key written twice, nothing under a deleted prefix, one deleted prefix at most. */
function validBranch(ops: TxnOpSpec[]): TxnOpSpec[] {
  const prefix = ops.find(op => op.type === 'deletePrefix')
  const seen = new Set<string>()
  const branch: TxnOpSpec[] = prefix === undefined ? [] : [prefix]
  for (const op of ops) {
    if (op.type === 'deletePrefix') continue
    if (seen.has(op.key) || (prefix !== undefined && op.key.startsWith(prefix.prefix))) continue
    seen.add(op.key)
    branch.push(op)
  }
  return branch
}

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('open' as const), session }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('end' as const),
      session,
      how: fc.constantFrom('close' as const, 'dead' as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value: small }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), key }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('putEphemeral' as const), key, value: small, session }),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({
        compare: fc.array(compare, { maxLength: 3 }),
        success: fc.array(txnOp, { maxLength: 4 }),
        failure: fc.array(txnOp, { maxLength: 3 }),
        session,
      })
      .map(({ compare, success, failure, session }) => ({
        kind: 'txn' as const,
        compare,
        success: validBranch(success),
        failure: validBranch(failure),
        session,
      }))
      .filter(txn => txn.success.length + txn.failure.length > 0),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      session,
      request: fc.nat({ max: 3 }),
      wait: fc.oneof(
        { weight: 4, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('release' as const), session, which: fc.nat({ max: 2 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('cancel' as const), session, request: fc.nat({ max: 2 }) }),
  },
)

interface ModelKey {
  value: JsonValue
  create: number
  mod: number
  version: number
  session?: string
}

interface ModelPermit {
  session: string
  request: string
  token: number
}

type ModelEvent = Pick<KvEvent, 'op' | 'key' | 'revision' | 'value' | 'prevValue'>

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))
const sameJson = (a: JsonValue, b: JsonValue) => JSON.stringify(a) === JSON.stringify(b)

/** The contract, written plainly: maps and arrays, no indexes, no sharing with the implementation. */
class Model {
  revision = 0
  readonly kv = new Map<string, ModelKey>()
  readonly live = new Set<string>()
  holders: ModelPermit[] = []
  waiters: { session: string; request: string }[] = []
  lastToken = 0
  events: ModelEvent[] = []

  apply(op: Op, index: number): CommandResult {
    this.events = []
    switch (op.kind) {
      case 'open':
        this.live.add(SESSIONS[op.session])
        return { type: 'session', sessionId: SESSIONS[op.session], expiresAt: NOW + 60_000 }
      case 'end': {
        const id = SESSIONS[op.session]
        if (!this.live.delete(id)) return { type: 'unchanged' }
        this.waiters = this.waiters.filter(waiter => waiter.session !== id)
        for (const permit of this.holders.filter(holder => holder.session === id))
          this.releasePermit(permit, index)
        const mine = [...this.kv].filter(([, record]) => record.session === id).map(([k]) => k)
        if (mine.length > 0) {
          const revision = ++this.revision
          for (const k of mine.sort(utf8Order)) this.remove(k, revision)
        }
        return { type: 'ok' }
      }
      case 'put':
        this.write(KEYS[op.key], op.value, undefined, ++this.revision)
        return { type: 'revision', revision: this.revision }
      case 'delete':
        if (this.kv.has(KEYS[op.key])) this.remove(KEYS[op.key], ++this.revision)
        return { type: 'revision', revision: this.revision }
      case 'putEphemeral': {
        const id = SESSIONS[op.session]
        if (!this.live.has(id)) return expired(id)
        this.write(KEYS[op.key], op.value, id, ++this.revision)
        return { type: 'revision', revision: this.revision }
      }
      case 'txn': {
        const id = SESSIONS[op.session]
        if (hasEphemeral(op) && !this.live.has(id)) return expired(id)
        const succeeded = op.compare.every(c => this.holds(c))
        const ops = succeeded ? op.success : op.failure
        const revision = this.revision + 1
        let changed = false
        for (const o of ops) {
          if (o.type === 'put') {
            this.write(o.key, o.value, o.ephemeral === true ? id : undefined, revision)
            changed = true
          } else {
            const doomed =
              o.type === 'delete' ? [o.key] : [...this.kv.keys()].filter(k => k.startsWith(o.prefix))
            for (const k of doomed.sort(utf8Order)) {
              if (!this.kv.has(k)) continue
              this.remove(k, revision)
              changed = true
            }
          }
        }
        if (changed) this.revision = revision
        return { type: 'txn', succeeded, revision: this.revision }
      }
      case 'acquire': {
        const id = SESSIONS[op.session]
        const request = `${id}-r${op.request}`
        if (!this.live.has(id)) return expired(id)
        const held = this.holders.find(holder => holder.session === id && holder.request === request)
        if (held !== undefined) return { type: 'lockGranted', fencingToken: held.token, expiresAt: NOW + TTL }
        const waiting = this.waiters.findIndex(waiter => waiter.session === id && waiter.request === request)
        if (waiting >= 0) return { type: 'lockQueued', position: waiting + 1 }
        if (this.holders.length < PERMITS) {
          const token = this.grant(id, request, index)
          return { type: 'lockGranted', fencingToken: token, expiresAt: NOW + TTL }
        }
        if (!op.wait) return { type: 'error', code: 'Busy', message: '' }
        this.waiters.push({ session: id, request })
        return { type: 'lockQueued', position: this.waiters.length }
      }
      case 'release': {
        const id = SESSIONS[op.session]
        const permit = this.holders.filter(holder => holder.session === id)[op.which]
        if (permit === undefined) return { type: 'error', code: 'NotHolder', message: '' }
        this.releasePermit(permit, index)
        return { type: 'ok' }
      }
      case 'cancel': {
        const id = SESSIONS[op.session]
        const request = `${id}-r${op.request}`
        const permit = this.holders.find(holder => holder.session === id && holder.request === request)
        if (permit !== undefined) {
          this.releasePermit(permit, index)
          return { type: 'ok' }
        }
        const waiting = this.waiters.findIndex(waiter => waiter.session === id && waiter.request === request)
        if (waiting < 0) return { type: 'unchanged' }
        this.waiters.splice(waiting, 1)
        return { type: 'ok' }
      }
    }
  }

  /** The token the release command for this op would name (a made-up one when the session holds none). */
  token(op: Extract<Op, { kind: 'release' }>): number {
    return this.holders.filter(holder => holder.session === SESSIONS[op.session])[op.which]?.token ?? 999_999
  }

  private holds(c: TxnCompareSpec): boolean {
    const record = this.kv.get(c.key)
    if (c.target === 'exists') return (record !== undefined) === c.value ? c.op === '==' : c.op === '!='
    if (c.target === 'value') {
      if (record === undefined) return false
      if (c.op === '==') return sameJson(record.value, c.value)
      if (c.op === '!=') return !sameJson(record.value, c.value)
      if (typeof record.value !== 'number' || typeof c.value !== 'number') return false
      return c.op === '<' ? record.value < c.value : record.value > c.value
    }
    const actual =
      record === undefined
        ? 0
        : c.target === 'revision'
          ? record.mod
          : c.target === 'createRevision'
            ? record.create
            : record.version
    const expected = c.value as number
    return c.op === '=='
      ? actual === expected
      : c.op === '!='
        ? actual !== expected
        : c.op === '<'
          ? actual < expected
          : actual > expected
  }

  private write(k: string, value: JsonValue, sessionId: string | undefined, revision: number): void {
    const current = this.kv.get(k)
    this.kv.set(k, {
      value,
      create: current?.create ?? revision,
      mod: revision,
      version: (current?.version ?? 0) + 1,
      session: sessionId,
    })
    this.events.push({ op: 'put', key: k, revision, value, prevValue: current?.value })
  }

  private remove(k: string, revision: number): void {
    const current = this.kv.get(k)!
    this.kv.delete(k)
    this.events.push({ op: 'delete', key: k, revision, prevValue: current.value })
  }

  private grant(sessionId: string, request: string, index: number): number {
    const token = Math.max(index, this.lastToken + 1)
    this.lastToken = token
    this.holders.push({ session: sessionId, request, token })
    return token
  }

  private releasePermit(permit: ModelPermit, index: number): void {
    this.holders = this.holders.filter(holder => holder !== permit)
    while (this.holders.length < PERMITS && this.waiters.length > 0) {
      const next = this.waiters.shift()!
      this.grant(next.session, next.request, index)
    }
  }
}

function hasEphemeral(op: Extract<Op, { kind: 'txn' }>): boolean {
  return [...op.success, ...op.failure].some(o => o.type === 'put' && o.ephemeral === true)
}

function expired(sessionId: string): CommandResult {
  return {
    type: 'error',
    code: 'SessionExpired',
    message: `session ${sessionId} does not exist or has expired`,
  }
}

function toCommand(op: Op, model: Model): Command {
  switch (op.kind) {
    case 'open':
      return {
        type: 'openSession',
        sessionId: SESSIONS[op.session],
        agentId: `agent-${op.session}`,
        ttlMs: 60_000,
      }
    case 'end':
      return op.how === 'close'
        ? { type: 'closeSession', sessionId: SESSIONS[op.session] }
        : { type: 'expireSession', sessionId: SESSIONS[op.session], reason: 'dead' }
    case 'put':
      return { type: 'put', key: KEYS[op.key], value: op.value }
    case 'delete':
      return { type: 'delete', key: KEYS[op.key] }
    case 'putEphemeral':
      return { type: 'putEphemeral', key: KEYS[op.key], value: op.value, sessionId: SESSIONS[op.session] }
    case 'txn': {
      const command: Command = { type: 'txn', compare: op.compare, success: op.success, failure: op.failure }
      if (hasEphemeral(op)) command.sessionId = SESSIONS[op.session]
      return command
    }
    case 'acquire': {
      const sessionId = SESSIONS[op.session]
      return {
        type: 'semaphoreAcquire',
        key: 'S',
        sessionId,
        requestId: `${sessionId}-r${op.request}`,
        ttlMs: TTL,
        wait: op.wait,
        permits: PERMITS,
      }
    }
    case 'release':
      return { type: 'lockRelease', key: 'S', sessionId: SESSIONS[op.session], fencingToken: model.token(op) }
    case 'cancel':
      return {
        type: 'lockCancel',
        key: 'S',
        sessionId: SESSIONS[op.session],
        requestId: `${SESSIONS[op.session]}-r${op.request}`,
      }
  }
}

/** Error messages are the implementation's to word: results compare on everything else. */
function comparable(result: CommandResult): unknown {
  return result.type === 'error' ? { type: 'error', code: result.code } : result
}

function checkSameState(machine: StateMachine, model: Model): void {
  expect(machine.revision).toBe(model.revision)
  const expected = [...model.kv]
    .sort(([a], [b]) => utf8Order(a, b))
    .map(([k, record]) => {
      const entry: Record<string, unknown> = {
        key: k,
        value: record.value,
        revision: record.mod,
        createRevision: record.create,
        version: record.version,
        ephemeral: record.session !== undefined,
      }
      if (record.session !== undefined) entry.owner = `agent-${SESSIONS.indexOf(record.session)}`
      return entry
    })
  expect(machine.list('').entries).toEqual(expected)
  const semaphore = machine.semaphore('S')
  expect(
    semaphore?.holders.map(holder => [holder.sessionId, holder.requestId, holder.fencingToken]) ?? [],
  ).toEqual(model.holders.map(holder => [holder.session, holder.request, holder.token]))
  expect(semaphore?.waiters.map(waiter => [waiter.sessionId, waiter.requestId]) ?? []).toEqual(
    model.waiters.map(waiter => [waiter.session, waiter.request]),
  )
  expect(
    machine
      .sessions()
      .map(info => info.sessionId)
      .sort(),
  ).toEqual([...model.live].sort())
}

function run(ops: Op[]): void {
  const log = new LogDriver({ historySize: 10_000 })
  const model = new Model()
  for (const op of ops) {
    const command = toCommand(op, model)
    const index = log.index + 1
    const output = log.apply(command)
    const expected = model.apply(op, index)
    const actual = output.result
    if (op.kind === 'open') expect(actual.type).toBe('session')
    else expect(comparable(actual), JSON.stringify(command)).toEqual(comparable(expected))
    const events = output.events
      .filter((event): event is KvEvent => event.type === 'kv')
      .map(event => {
        const plain: ModelEvent = { op: event.op, key: event.key, revision: event.revision }
        if (event.value !== undefined) plain.value = event.value
        if (event.prevValue !== undefined) plain.prevValue = event.prevValue
        return plain
      })
    const modelEvents = model.events.map(event => {
      const plain: ModelEvent = { op: event.op, key: event.key, revision: event.revision }
      if (event.value !== undefined) plain.value = event.value
      if (event.prevValue !== undefined) plain.prevValue = event.prevValue
      return plain
    })
    expect(events, JSON.stringify(command)).toEqual(modelEvents)
    checkSameState(log.machine, model)
  }
  // And a replica restored from a snapshot is the same state.
  const restored = StateMachine.restore(log.machine.snapshot(), { historySize: 10_000 })
  checkSameState(restored, model)
  expect(restored.snapshot()).toEqual(log.machine.snapshot())
}

/** Every run starts with all sessions open, so ephemeral keys and permits pile up before sessions end. */
const opened: Op[] = SESSIONS.map((_, session) => ({ kind: 'open', session }))
it('transactions, ephemeral keys, session ends and semaphores agree with the reference model', () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 50, size: 'max' }), ops => {
      run([...opened, ...ops])
    }),
    { numRuns: 300 },
  )
})

/** Only sessions and permits: sessions that end holding several permits with several waiters queued. */
const semaphoreOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('open' as const), session }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('end' as const),
      session,
      how: fc.constantFrom('close' as const, 'dead' as const),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      session,
      request: fc.nat({ max: 3 }),
      wait: fc.constant(true),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('release' as const), session, which: fc.nat({ max: 3 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('putEphemeral' as const), key, value: small, session }),
  },
)

it('semaphore permits of ending sessions pass to waiters as the reference model says', () => {
  fc.assert(
    fc.property(fc.array(semaphoreOp, { minLength: 1, maxLength: 40, size: 'max' }), ops => {
      run([...opened, ...ops])
    }),
    { numRuns: 300 },
  )
})
