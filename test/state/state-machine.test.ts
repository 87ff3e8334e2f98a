import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { UnsupportedVersionError } from '../../src/errors.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command, Envelope } from '../../src/state/commands.ts'
import type { JsonValue } from '../../src/state/json.ts'
import {
  type ApplyInput,
  type ApplyOutput,
  StateMachine,
  type StateMachineOptions,
} from '../../src/state/state-machine.ts'
import { LogDriver, textDecoder } from './helpers.ts'
import { AttemptLog, checkTaskInvariants, type TaskOp, taskCommand, taskOp } from './task-ops.ts'

const encoder = new TextEncoder()

describe('StateMachine.apply', () => {
  it("applies the leader's no-op and config entries as nothing but appliedIndex", () => {
    const machine = new StateMachine()
    expect(machine.apply({ index: 1, term: 1, data: new Uint8Array() })).toEqual({
      result: { type: 'ok' },
      events: [],
    })
    expect(
      machine.apply({ index: 2, term: 1, type: 'config', data: encoder.encode('{"voters":["a"]}') }),
    ).toEqual({
      result: { type: 'ok' },
      events: [],
    })
    expect(machine.appliedIndex).toBe(2)
    expect(machine.time).toBe(0)
    expect(machine.revision).toBe(0)
  })

  it('answers AlreadyApplied to a replayed index and changes nothing', () => {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'k', value: 1 })
    const replay = log.machine.apply({
      index: 1,
      term: 1,
      data: encodeEnvelope({ ts: 1, command: { type: 'put', key: 'k', value: 2 } }),
    })
    expect(replay.result).toMatchObject({ type: 'error', code: 'AlreadyApplied' })
    expect(log.machine.get('k')?.value).toBe(1)
    expect(log.machine.appliedIndex).toBe(1)
  })

  it('accepts gaps in indexes (entries the shell does not hand over)', () => {
    const machine = new StateMachine()
    machine.apply({
      index: 5,
      term: 2,
      data: encodeEnvelope({ ts: 1, command: { type: 'put', key: 'k', value: 1 } }),
    })
    expect(machine.appliedIndex).toBe(5)
  })

  it('answers InvalidCommand to garbage and changes nothing but appliedIndex', () => {
    const log = new LogDriver()
    log.open('s')
    log.apply({ type: 'put', key: 'k', value: 1 })
    const before = withoutAppliedIndex(log.machine.snapshot())
    const output = log.machine.apply({
      index: 10,
      term: 1,
      data: encoder.encode('{"ts":99999,"command":{}}'),
    })
    expect(output).toEqual({
      result: { type: 'error', code: 'InvalidCommand', message: 'unknown command type' },
      events: [],
    })
    expect(withoutAppliedIndex(log.machine.snapshot())).toEqual(before)
    expect(log.machine.appliedIndex).toBe(10)
  })

  it('garbage entries yield the same InvalidCommand on every replica', () => {
    const valid = encodeEnvelope({ ts: 5, command: { type: 'put', key: 'k', value: 'v' } })
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.jsonValue().map(value => encoder.encode(JSON.stringify(value))),
      fc.jsonValue().map(value => encoder.encode(JSON.stringify({ ts: 1, command: value }))),
      // Valid bytes with one byte changed or the tail cut off.
      fc
        .tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }))
        .map(([at, byte]) => valid.map((original, i) => (i === at ? byte : original))),
      fc.nat({ max: valid.length - 1 }).map(length => valid.slice(0, length)),
    )
    fc.assert(
      fc.property(fc.array(garbage, { minLength: 1, maxLength: 20 }), entries => {
        const replicas = [new StateMachine(), new StateMachine(), new StateMachine()]
        for (const [i, data] of entries.entries()) {
          // Garbage naming a command type no version knows stops every replica alike (it may be a newer
          // version's command): each throws, none applies it.
          const outputs = replicas.map(replica => {
            try {
              return replica.apply({ index: i + 1, term: 1, data })
            } catch (err) {
              return err
            }
          })
          expect(outputs[1]).toEqual(outputs[0])
          expect(outputs[2]).toEqual(outputs[0])
          if (outputs[0] instanceof UnsupportedVersionError) {
            for (const replica of replicas) expect(replica.appliedIndex).toBe(i)
            break
          }
          const result = (outputs[0] as ApplyOutput).result
          if (result.type === 'error') expect(result.code).toBe('InvalidCommand')
        }
        const snapshots = replicas.map(replica => replica.snapshot())
        expect(snapshots[1]).toEqual(snapshots[0])
        expect(snapshots[2]).toEqual(snapshots[0])
      }),
      { numRuns: 300 },
    )
  })
})

describe('snapshots', () => {
  it('restore gives the same state, answers and retained history', () => {
    const log = new LogDriver({ historySize: 4 })
    log.open('a', 5_000)
    log.open('b', 5_000)
    for (let i = 0; i < 6; i++)
      log.apply({ type: 'put', key: `k${i % 3}`, value: { i } }, { session: 'a', seq: i })
    log.apply({ type: 'delete', key: 'k0' })
    log.apply({ type: 'lockAcquire', key: 'L', sessionId: 'a', requestId: 'r', ttlMs: 900, wait: true })
    log.apply({ type: 'lockAcquire', key: 'L', sessionId: 'b', requestId: 'r', ttlMs: 900, wait: true })
    log.apply({ type: 'campaign', name: 'E', sessionId: 'b', agentId: 'agent-b', requestId: 'x' })
    log.at(3_000).apply({ type: 'keepAlive', sessionId: 'b' })

    const bytes = log.machine.snapshot()
    const restored = StateMachine.restore(bytes, { historySize: 4 })
    expect(restored.snapshot()).toEqual(bytes)
    expect(restored.appliedIndex).toBe(log.machine.appliedIndex)
    expect(restored.time).toBe(3_000)
    expect(restored.revision).toBe(7)
    expect(restored.get('k1')).toEqual(log.machine.get('k1'))
    expect(restored.sessions()).toEqual(log.machine.sessions())
    expect(restored.lock('L')).toEqual(log.machine.lock('L'))
    expect(restored.election('E')).toEqual(log.machine.election('E'))
    expect(restored.eventsSince(4, '')).toEqual(log.machine.eventsSince(4, ''))
    expect(restored.eventsSince(3, '')).toEqual({ type: 'compacted', compactedRevision: 3 })
    expect(restored.dueExpiries(10_000)).toEqual(log.machine.dueExpiries(10_000))
    // The dedup table came along: a retry after restore is still answered, not applied.
    const retry = restored.apply({
      index: log.index + 1,
      term: 2,
      data: encodeEnvelope({
        ts: 3_000,
        session: 'a',
        seq: 5,
        command: { type: 'put', key: 'k2', value: { i: 5 } },
      }),
    })
    expect(retry).toEqual({
      result: { type: 'revision', revision: 6 },
      events: [],
      session: { id: 'a', seq: 5 },
    })
    expect(restored.revision).toBe(7)
  })

  it('a session ending after restore emits the same events in the same order as without restore', () => {
    // Order of involvement (L2 then L1, E2 then E1) differs from the order the records were created in
    // (L1, E1 first), which is all a restored replica can know.
    const log = new LogDriver()
    log.open('s')
    log.open('t')
    log.apply({ type: 'lockAcquire', key: 'L1', sessionId: 't', requestId: 'r', ttlMs: 60_000, wait: true })
    log.apply({ type: 'campaign', name: 'E1', sessionId: 't', agentId: 'agent-t', requestId: 'r' })
    log.apply({ type: 'lockAcquire', key: 'L2', sessionId: 's', requestId: 'r', ttlMs: 60_000, wait: true })
    log.apply({ type: 'campaign', name: 'E2', sessionId: 's', agentId: 'agent-s', requestId: 'r' })
    log.apply({ type: 'lockAcquire', key: 'L1', sessionId: 's', requestId: 'r', ttlMs: 60_000, wait: true })
    log.apply({ type: 'campaign', name: 'E1', sessionId: 's', agentId: 'agent-s', requestId: 'r' })
    log.apply({ type: 'closeSession', sessionId: 't' })
    const restored = StateMachine.restore(log.machine.snapshot())
    const end = {
      index: log.index + 1,
      term: 1,
      data: encodeEnvelope({ ts: 2_000, command: { type: 'closeSession', sessionId: 's' } }),
    }
    const expected = log.machine.apply(end)
    expect(restored.apply(end)).toEqual(expected)
    expect(expected.events.map(event => event.type)).toEqual([
      'sessionClosed',
      'lockReleased',
      'lockReleased',
      'electionChanged',
      'electionChanged',
    ])
  })

  it('restore with a smaller history keeps the newest events and reports the rest compacted', () => {
    const log = new LogDriver({ historySize: 10 })
    for (let i = 1; i <= 6; i++) log.apply({ type: 'put', key: 'k', value: i })
    const restored = StateMachine.restore(log.machine.snapshot(), { historySize: 2 })
    expect(restored.eventsSince(4, '')).toEqual({ type: 'compacted', compactedRevision: 4 })
    const kept = restored.eventsSince(5, '')
    expect(kept.type === 'events' && kept.events.map(event => event.revision)).toEqual([5, 6])
  })

  it('an empty snapshot is an empty state machine; anything else foreign is refused', () => {
    expect(StateMachine.restore(new Uint8Array()).appliedIndex).toBe(0)
    expect(() => StateMachine.restore(encoder.encode('nope'))).toThrow(/Invalid state snapshot/)
    expect(() => StateMachine.restore(encoder.encode('{"format":"other"}'))).toThrow(/format/)
    const snapshot = JSON.parse(textDecoder.decode(new StateMachine().snapshot()))
    expect(() => StateMachine.restore(encoder.encode(JSON.stringify({ ...snapshot, version: 99 })))).toThrow(
      /version/,
    )
    expect(() =>
      StateMachine.restore(
        encoder.encode(JSON.stringify({ ...snapshot, kv: { ...snapshot.kv, entries: [[1]] } })),
      ),
    ).toThrow(/kv.entries/)
  })
})

describe('determinism', () => {
  const options: StateMachineOptions = { historySize: 16, maxResultsPerSession: 4 }
  const sessionIds = ['s1', 's2', 's3']
  const keys = ['k1', 'k2', 'app/k3']
  const lockKeys = ['L1', 'L2']
  const names = ['E1', 'E2']

  // Commands whose tokens refer to the live state are resolved when applied, so they often hit.
  type Op =
    | { kind: 'command'; command: Command }
    | {
        kind: 'holder'
        action: 'release' | 'extend' | 'expire' | 'expireLease' | 'cancel'
        key: string
        ttlMs: number
      }
    | { kind: 'garbage'; data: Uint8Array }
    | { kind: 'noop' }
    | { kind: 'task'; op: TaskOp }
  interface Step {
    op: Op
    advance: number
    session?: { session: string; seq: number; ackedBelow?: number }
  }

  const session = fc.constantFrom(...sessionIds)
  const ttl = fc.integer({ min: 200, max: 8_000 })
  const weighted = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary })
  const command: fc.Arbitrary<Command> = fc.oneof(
    weighted(
      3,
      fc.record({
        type: fc.constant('put' as const),
        key: fc.constantFrom(...keys),
        // fast-check's JsonValue type admits `undefined` members; the values it generates are plain JSON.
        value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue>,
        expectedRevision: fc.option(fc.nat({ max: 20 }), { nil: undefined }),
      }),
    ),
    weighted(
      1,
      fc.record({
        type: fc.constant('delete' as const),
        key: fc.constantFrom(...keys),
        expectedRevision: fc.option(fc.nat({ max: 20 }), { nil: undefined }),
      }),
    ),
    weighted(
      4,
      fc.record({
        type: fc.constant('openSession' as const),
        sessionId: session,
        agentId: fc.constantFrom('a1', 'a2'),
        ttlMs: ttl,
      }),
    ),
    weighted(3, fc.record({ type: fc.constant('keepAlive' as const), sessionId: session })),
    weighted(1, fc.record({ type: fc.constant('closeSession' as const), sessionId: session })),
    weighted(
      1,
      fc.record({
        type: fc.constant('expireSession' as const),
        sessionId: session,
        reason: fc.constantFrom('ttl' as const, 'dead' as const),
      }),
    ),
    weighted(
      5,
      fc.record({
        type: fc.constant('lockAcquire' as const),
        key: fc.constantFrom(...lockKeys),
        sessionId: session,
        requestId: fc.constantFrom('r1', 'r2'),
        ttlMs: ttl,
        wait: fc.boolean(),
      }),
    ),
    weighted(
      1,
      fc.record({
        type: fc.constant('lockRelease' as const),
        key: fc.constantFrom(...lockKeys),
        sessionId: session,
        fencingToken: fc.integer({ min: 1, max: 40 }),
      }),
    ),
    weighted(
      3,
      fc.record({
        type: fc.constant('campaign' as const),
        name: fc.constantFrom(...names),
        sessionId: session,
        agentId: fc.constantFrom('a1', 'a2'),
        requestId: fc.constantFrom('r1', 'r2'),
      }),
    ),
    weighted(
      1,
      fc.record({
        type: fc.constant('resign' as const),
        name: fc.constantFrom(...names),
        sessionId: session,
      }),
    ),
  )
  const op: fc.Arbitrary<Op> = fc.oneof(
    weighted(
      12,
      command.map(command => ({ kind: 'command' as const, command })),
    ),
    weighted(
      4,
      fc.record({
        kind: fc.constant('holder' as const),
        action: fc.constantFrom(
          'release' as const,
          'extend' as const,
          'expire' as const,
          'expireLease' as const,
          'cancel' as const,
        ),
        key: fc.constantFrom(...lockKeys),
        ttlMs: ttl,
      }),
    ),
    weighted(
      1,
      fc.uint8Array({ maxLength: 16 }).map(data => ({ kind: 'garbage' as const, data })),
    ),
    weighted(1, fc.constant({ kind: 'noop' as const })),
    weighted(
      6,
      taskOp.map(op => ({ kind: 'task' as const, op })),
    ),
  )
  // A third of the entries are exactly-once requests, with seqs small enough to collide (retries).
  const requestSession = fc
    .tuple(session, fc.nat({ max: 8 }), fc.option(fc.nat({ max: 8 }), { nil: undefined }))
    .map(([id, seq, acked]) => ({
      session: id,
      seq,
      ackedBelow: acked === undefined ? undefined : Math.min(acked, seq),
    }))
  const step: fc.Arbitrary<Step> = fc.record({
    op,
    // Mostly forward, sometimes a leader with a slower clock.
    advance: fc.integer({ min: -200, max: 400 }),
    session: fc.oneof(weighted(2, fc.constant(undefined)), weighted(1, requestSession)),
  })

  function toEntry(
    step: Step,
    index: number,
    now: number,
    state: StateMachine,
    attempts = new AttemptLog(),
  ): ApplyInput {
    const { op } = step
    if (op.kind === 'noop') return { index, term: 1, data: new Uint8Array() }
    if (op.kind === 'garbage') return { index, term: 1, data: op.data }
    let command: Command
    if (op.kind === 'task') {
      command = taskCommand(op.op, state, sessionIds, attempts)
      // An agent opens its session before it registers: do that first when the session is missing.
      if (command.type === 'registerAgent' && state.session(command.sessionId) === undefined) {
        command = {
          type: 'openSession',
          sessionId: command.sessionId,
          agentId: command.agentId,
          ttlMs: 8_000,
        }
      }
    } else if (op.kind === 'command') {
      command = op.command
    } else {
      const lock = state.lock(op.key)
      const holder = lock?.holder ?? { sessionId: 's1', requestId: 'r1', fencingToken: 1 }
      const { sessionId, requestId, fencingToken } = holder
      const key = op.key
      command =
        op.action === 'release'
          ? { type: 'lockRelease', key, sessionId, fencingToken }
          : op.action === 'extend'
            ? { type: 'lockExtend', key, sessionId, fencingToken, ttlMs: op.ttlMs }
            : op.action === 'expire'
              ? { type: 'lockExpire', key, fencingToken }
              : op.action === 'expireLease'
                ? // The leader's expiry on its monotonic clock names the lease (sometimes one extended since).
                  { type: 'lockExpire', key, fencingToken, leaseIndex: lock?.holder.leaseIndex ?? 1 }
                : { type: 'lockCancel', key, sessionId, requestId }
    }
    // Task commands go mostly without a client session: the seqs here are small so that requests collide as
    // retries, which would answer most task commands from the dedup table. Sometimes they go with a live one.
    const withSession =
      op.kind !== 'task' ||
      (step.session !== undefined &&
        step.session.seq % 4 === 0 &&
        state.session(step.session.session) !== undefined)
    const envelope: Envelope = { ts: now, ...(withSession ? step.session : {}), command }
    return { index, term: 1, data: encodeEnvelope(envelope) }
  }

  it('random histories: a replica restored from a snapshot midway ends byte-identical', () => {
    const seen = new Map<string, number>()
    const see = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1)
    fc.assert(
      fc.property(fc.array(step, { maxLength: 150, size: 'max' }), fc.nat(), (steps, cutSeed) => {
        const original = new StateMachine(options)
        let replica = new StateMachine(options)
        // A harsher replica, rebuilt from its own snapshot before every entry: any state that a snapshot
        // loses, or any behaviour that depends on history a snapshot does not keep (e.g. iteration order
        // of derived indexes), shows up as a different output.
        let reborn = new StateMachine(options)
        const cut = cutSeed % (steps.length + 1)
        let now = 10_000
        let index = 0
        const attempts = new AttemptLog()
        steps.forEach((step, i) => {
          if (i === cut) replica = StateMachine.restore(replica.snapshot(), options)
          now = Math.max(0, now + step.advance)
          index += 1 + (i % 7 === 0 ? 1 : 0) // the odd gap, as config entries leave
          const entry = toEntry(step, index, now, original, attempts)
          const expected = original.apply(entry)
          attempts.record(expected.events)
          expect(replica.apply(entry)).toEqual(expected)
          reborn = StateMachine.restore(reborn.snapshot(), options)
          expect(reborn.apply(entry)).toEqual(expected)
          checkInvariants(original)
          see(expected.result.type === 'error' ? expected.result.code : expected.result.type)
          for (const event of expected.events)
            see(event.type === 'lockReleased' ? `released:${event.reason}` : event.type)
        })
        const finalBytes = original.snapshot()
        expect(replica.snapshot()).toEqual(finalBytes)
        expect(reborn.snapshot()).toEqual(finalBytes)
        expect(StateMachine.restore(finalBytes, options).snapshot()).toEqual(finalBytes)
      }),
      { numRuns: 200 },
    )
    // The generator must reach the interesting paths, or the property proves little.
    const wanted = [
      'revision',
      'RevisionMismatch',
      'lockGranted',
      'lockQueued',
      'lockExtended',
      'Busy',
      'NotHolder',
      'LockLost',
      'elected',
      'candidate',
      'SessionExpired',
      'StaleRequest',
      'InvalidCommand',
      'released:released',
      'released:expired',
      'released:session',
      'sessionExpired',
      'sessionClosed',
      'electionChanged',
      'kv',
      // Task paths this history reaches often; deep task histories (retries, steals, timeouts) are driven,
      // with the same restore checks, by tasks-property.test.ts.
      'taskSubmitted',
      'taskState',
      'taskAssigned',
      'StaleAttempt',
      'NotClaimable',
      'NotStealable',
      'agentChanged',
      'taskUnassigned',
      'taskExpired',
    ]
    for (const what of wanted) expect(seen.get(what) ?? 0, what).toBeGreaterThan(10)
  })

  /** What must hold between any two entries, whatever the history. */
  function checkInvariants(state: StateMachine): void {
    const live = new Set(state.sessions().map(session => session.sessionId))
    for (const key of lockKeys) {
      const lock = state.lock(key)
      if (lock === undefined) continue
      expect(live.has(lock.holder.sessionId)).toBe(true)
      expect(lock.holder.fencingToken).toBeLessThanOrEqual(state.appliedIndex)
      for (const waiter of lock.waiters) expect(live.has(waiter.sessionId)).toBe(true)
    }
    checkTaskInvariants(state)
    for (const name of names) {
      const election = state.election(name)
      if (election === undefined) continue
      const seen = new Set<string>()
      for (const candidate of election.candidates) {
        expect(live.has(candidate.sessionId)).toBe(true)
        expect(seen.has(candidate.sessionId)).toBe(false)
        seen.add(candidate.sessionId)
      }
    }
  }

  it('fencing tokens of a key strictly increase across any history', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 150, size: 'max' }), steps => {
        const machine = new StateMachine(options)
        const lastToken = new Map<string, number>()
        let now = 10_000
        steps.forEach((step, i) => {
          now = Math.max(0, now + step.advance)
          const { events } = machine.apply(toEntry(step, i + 1, now, machine))
          for (const event of events) {
            if (event.type !== 'lockGranted') continue
            expect(event.fencingToken).toBe(i + 1)
            expect(event.fencingToken).toBeGreaterThan(lastToken.get(event.key) ?? 0)
            lastToken.set(event.key, event.fencingToken)
          }
        })
      }),
      { numRuns: 200 },
    )
  })
})

function withoutAppliedIndex(bytes: Uint8Array): unknown {
  const parsed = JSON.parse(textDecoder.decode(bytes))
  delete parsed.appliedIndex
  return parsed
}
