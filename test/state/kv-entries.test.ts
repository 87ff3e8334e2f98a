import { describe, expect, it } from 'vitest'
import { decodeEnvelope, encodeEnvelope } from '../../src/state/codec.ts'
import type { Command, TxnCommand } from '../../src/state/commands.ts'
import type { KvEvent } from '../../src/state/events.ts'
import { compareKeys } from '../../src/state/keys.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver } from './helpers.ts'

function kvEvents(events: readonly { type: string }[]): KvEvent[] {
  return events.filter((event): event is KvEvent => event.type === 'kv')
}

describe('KV entries', () => {
  it('getEntry gives revision, createRevision, version, and the owner of an ephemeral key', () => {
    const log = new LogDriver()
    log.open('s', 10_000, 'agent-1')
    log.apply({ type: 'put', key: 'k', value: 1 }) // 1
    log.apply({ type: 'put', key: 'k', value: 2 }) // 2
    expect(log.machine.getEntry('k')).toEqual({
      key: 'k',
      value: 2,
      revision: 2,
      createRevision: 1,
      version: 2,
      ephemeral: false,
    })
    expect(log.result({ type: 'putEphemeral', key: 'e', value: 'x', sessionId: 's' })).toEqual({
      type: 'revision',
      revision: 3,
    })
    expect(log.machine.getEntry('e')).toEqual({
      key: 'e',
      value: 'x',
      revision: 3,
      createRevision: 3,
      version: 1,
      ephemeral: true,
      owner: 'agent-1',
    })
    expect(log.machine.getEntry('missing')).toBeUndefined()
  })

  it('lists in UTF-8 byte order, in pages after a key, at one revision, saying whether more follow', () => {
    const log = new LogDriver()
    // U+FF5E sorts before U+1F600 in UTF-8 but after its surrogates in UTF-16.
    const keys = ['p/b', 'p/a', 'p/\u{1F600}', 'p/\uFF5E', 'p/a/x', 'q', 'p']
    for (const key of keys) log.apply({ type: 'put', key, value: key })
    const utf8 = (key: string) => Buffer.from(key)
    const expected = keys.filter(key => key.startsWith('p/')).sort((a, b) => Buffer.compare(utf8(a), utf8(b)))
    expect(expected).toEqual(['p/a', 'p/a/x', 'p/b', 'p/\uFF5E', 'p/\u{1F600}'])
    const all = log.machine.list('p/')
    expect(all.entries.map(entry => entry.key)).toEqual(expected)
    expect(all).toMatchObject({ revision: 7, more: false })
    const first = log.machine.list('p/', { limit: 2 })
    expect(first.entries.map(entry => entry.key)).toEqual(['p/a', 'p/a/x'])
    expect(first.more).toBe(true)
    const second = log.machine.list('p/', { limit: 2, after: 'p/a/x' })
    expect(second.entries.map(entry => entry.key)).toEqual(['p/b', 'p/\uFF5E'])
    expect(second.more).toBe(true)
    const last = log.machine.list('p/', { limit: 2, after: 'p/\uFF5E' })
    expect(last.entries.map(entry => entry.key)).toEqual(['p/\u{1F600}'])
    expect(last.more).toBe(false)
    // Exactly `limit` left: no more.
    expect(log.machine.list('p/', { limit: 5 }).more).toBe(false)
    expect(log.machine.list('').entries.map(entry => entry.key)).toEqual(
      [...keys].sort((a, b) => Buffer.compare(utf8(a), utf8(b))),
    )
    // After a delete and a re-put, the order still holds and nothing is listed twice.
    log.apply({ type: 'delete', key: 'p/a' })
    log.apply({ type: 'put', key: 'p/a', value: 'again' })
    log.apply({ type: 'delete', key: 'p/b' })
    expect(log.machine.list('p/').entries.map(entry => entry.key)).toEqual(
      expected.filter(key => key !== 'p/b'),
    )
    expect(log.machine.list('p/').revision).toBe(10)
  })

  it('compareKeys is UTF-8 byte order', () => {
    const samples = [
      '',
      'a',
      'ab',
      'b',
      '\u007F',
      '\u0080',
      '\uD7FF',
      '\uE000',
      '\uFFFF',
      '\u{10000}',
      '\u{10FFFF}',
    ]
    for (const a of samples) {
      for (const b of samples) {
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))))
      }
    }
  })

  it('events carry the previous value of a put over an existing key and of a delete', () => {
    const log = new LogDriver()
    const created = log.apply({ type: 'put', key: 'k', value: { v: 1 } })
    expect(kvEvents(created.events)[0].prevValue).toBeUndefined()
    const updated = log.apply({ type: 'put', key: 'k', value: { v: 2 } })
    expect(kvEvents(updated.events)[0]).toMatchObject({ value: { v: 2 }, prevValue: { v: 1 } })
    const deleted = log.apply({ type: 'delete', key: 'k' })
    expect(kvEvents(deleted.events)[0]).toMatchObject({ op: 'delete', prevValue: { v: 2 } })
    const history = log.machine.eventsSince(1)
    expect(history.type === 'events' && history.events.map(event => event.prevValue)).toEqual([
      undefined,
      { v: 1 },
      { v: 2 },
    ])
  })
})

describe('transactions', () => {
  function seeded(): LogDriver {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'a', value: 10 }) // 1
    log.apply({ type: 'put', key: 'b', value: 'text' }) // 2
    log.apply({ type: 'put', key: 'a', value: 20 }) // 3: a at version 2, create 1, mod 3
    return log
  }

  it('applies success when every compare holds, all its writes at one revision', () => {
    const log = seeded()
    const output = log.apply({
      type: 'txn',
      compare: [
        { key: 'a', target: 'value', op: '==', value: 20 },
        { key: 'a', target: 'version', op: '==', value: 2 },
        { key: 'a', target: 'createRevision', op: '<', value: 2 },
        { key: 'a', target: 'revision', op: '>', value: 2 },
        { key: 'b', target: 'value', op: '>', value: 'tex' },
        { key: 'missing', target: 'exists', op: '==', value: false },
        { key: 'missing', target: 'version', op: '==', value: 0 },
      ],
      success: [
        { type: 'put', key: 'a', value: 21 },
        { type: 'delete', key: 'b' },
        { type: 'put', key: 'c', value: [1] },
      ],
      failure: [{ type: 'put', key: 'failed', value: true }],
    })
    expect(output.result).toEqual({ type: 'txn', succeeded: true, revision: 4 })
    expect(kvEvents(output.events)).toEqual([
      { type: 'kv', op: 'put', key: 'a', value: 21, prevValue: 20, revision: 4, timestamp: 1_000 },
      { type: 'kv', op: 'delete', key: 'b', prevValue: 'text', revision: 4, timestamp: 1_000 },
      { type: 'kv', op: 'put', key: 'c', value: [1], revision: 4, timestamp: 1_000 },
    ])
    expect(log.machine.getEntry('a')).toMatchObject({ value: 21, revision: 4, version: 3, createRevision: 1 })
    expect(log.machine.getEntry('c')).toMatchObject({ revision: 4, createRevision: 4, version: 1 })
    expect(log.machine.get('b')).toBeUndefined()
    expect(log.machine.get('failed')).toBeUndefined()
    // A watch from revision 4 replays the whole transaction.
    const history = log.machine.eventsSince(4)
    expect(history.type === 'events' && history.events.map(event => event.key)).toEqual(['a', 'b', 'c'])
  })

  it('applies failure when a compare fails; a value compare on an absent key always fails', () => {
    for (const op of ['==', '!=', '<', '>'] as const) {
      const log = seeded()
      const output = log.apply({
        type: 'txn',
        compare: [{ key: 'missing', target: 'value', op, value: 1 }],
        success: [{ type: 'put', key: 'ok', value: 1 }],
        failure: [{ type: 'put', key: 'failed', value: op }],
      })
      expect(output.result).toEqual({ type: 'txn', succeeded: false, revision: 4 })
      expect(log.machine.get('failed')?.value).toBe(op)
      expect(log.machine.get('ok')).toBeUndefined()
    }
  })

  it('compares values structurally, and orders only two numbers or two strings', () => {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'o', value: { x: 1, y: [true, null] } })
    const holds = (compare: TxnCommand['compare'][number]) =>
      log.result({ type: 'txn', compare: [compare], success: [{ type: 'put', key: 'hit', value: 1 }] })
    expect(holds({ key: 'o', target: 'value', op: '==', value: { y: [true, null], x: 1 } })).toMatchObject({
      succeeded: true,
    })
    expect(holds({ key: 'o', target: 'value', op: '!=', value: { x: 1 } })).toMatchObject({ succeeded: true })
    expect(holds({ key: 'o', target: 'value', op: '<', value: 5 })).toMatchObject({ succeeded: false })
    expect(holds({ key: 'o', target: 'value', op: '>', value: 'a' })).toMatchObject({ succeeded: false })
    expect(holds({ key: 'o', target: 'exists', op: '!=', value: false })).toMatchObject({ succeeded: true })
  })

  it('a branch that changes nothing keeps the revision; an empty branch is allowed if the other has ops', () => {
    const log = seeded()
    expect(log.result({ type: 'txn', compare: [], success: [{ type: 'delete', key: 'absent' }] })).toEqual({
      type: 'txn',
      succeeded: true,
      revision: 3,
    })
    expect(
      log.result({
        type: 'txn',
        compare: [{ key: 'a', target: 'value', op: '==', value: 0 }],
        success: [],
        failure: [{ type: 'put', key: 'x', value: 1 }],
      }),
    ).toEqual({ type: 'txn', succeeded: false, revision: 4 })
    expect(
      log.result({
        type: 'txn',
        compare: [{ key: 'a', target: 'value', op: '!=', value: 0 }],
        success: [],
        failure: [{ type: 'put', key: 'y', value: 1 }],
      }),
    ).toEqual({ type: 'txn', succeeded: true, revision: 4 })
  })

  it('deletePrefix deletes every key under the prefix in byte order at one revision', () => {
    const log = new LogDriver()
    for (const key of ['d/2', 'd/1', 'dx', 'e']) log.apply({ type: 'put', key, value: key })
    const output = log.apply({ type: 'txn', compare: [], success: [{ type: 'deletePrefix', prefix: 'd/' }] })
    expect(kvEvents(output.events).map(event => [event.op, event.key, event.revision])).toEqual([
      ['delete', 'd/1', 5],
      ['delete', 'd/2', 5],
    ])
    expect(log.machine.range('').map(([key]) => key)).toEqual(['dx', 'e'])
  })

  it('refuses bad transactions as InvalidCommand, writing nothing', () => {
    const key = 'k'
    const put = { type: 'put' as const, key, value: 1 }
    const ops = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: i }))
    const bad: [string, unknown][] = [
      ['no ops', { type: 'txn', compare: [], success: [] }],
      ['no ops in either branch', { type: 'txn', compare: [], success: [], failure: [] }],
      ['129 ops', { type: 'txn', compare: [], success: ops(129) }],
      [
        '129 compares',
        {
          type: 'txn',
          compare: Array.from({ length: 129 }, () => ({ key, target: 'version', op: '==', value: 0 })),
          success: [put],
        },
      ],
      ['two ops on one key', { type: 'txn', compare: [], success: [put, { type: 'delete', key }] }],
      [
        'a key under a deleted prefix',
        { type: 'txn', compare: [], success: [put, { type: 'deletePrefix', prefix: 'k' }] },
      ],
      [
        'nested deleted prefixes',
        {
          type: 'txn',
          compare: [],
          success: [
            { type: 'deletePrefix', prefix: 'a/' },
            { type: 'deletePrefix', prefix: 'a/b' },
          ],
        },
      ],
      ['an empty key', { type: 'txn', compare: [], success: [{ type: 'put', key: '', value: 1 }] }],
      ['an oversize key', { type: 'txn', compare: [], success: [{ type: 'delete', key: 'x'.repeat(1025) }] }],
      ['an empty prefix', { type: 'txn', compare: [], success: [{ type: 'deletePrefix', prefix: '' }] }],
      [
        'an unknown target',
        { type: 'txn', compare: [{ key, target: 'lease', op: '==', value: 0 }], success: [put] },
      ],
      [
        'an unknown operator',
        { type: 'txn', compare: [{ key, target: 'version', op: '>=', value: 0 }], success: [put] },
      ],
      [
        'an ordered exists',
        { type: 'txn', compare: [{ key, target: 'exists', op: '<', value: true }], success: [put] },
      ],
      [
        'a negative revision',
        { type: 'txn', compare: [{ key, target: 'revision', op: '==', value: -1 }], success: [put] },
      ],
      [
        'an object ordered',
        { type: 'txn', compare: [{ key, target: 'value', op: '<', value: {} }], success: [put] },
      ],
      ['an unknown op', { type: 'txn', compare: [], success: [{ type: 'increment', key }] }],
      [
        'an ephemeral put without session',
        { type: 'txn', compare: [], success: [{ ...put, ephemeral: true }] },
      ],
      ['an extra op field', { type: 'txn', compare: [], success: [{ ...put, lease: 1 }] }],
      ['an empty ephemeral key', { type: 'putEphemeral', key: '', value: 1, sessionId: 's' }],
      [
        'an ephemeral put with an extra field',
        { type: 'putEphemeral', key, value: 1, sessionId: 's', lease: 1 },
      ],
      ['an ephemeral put without a session', { type: 'putEphemeral', key, value: 1 }],
      ['a proclaim without a value', { type: 'proclaim', name: 'E', sessionId: 's' }],
      [
        'zero permits',
        { type: 'semaphoreAcquire', key, sessionId: 's', requestId: 'r', ttlMs: 1, wait: true, permits: 0 },
      ],
      [
        'fractional permits',
        { type: 'semaphoreAcquire', key, sessionId: 's', requestId: 'r', ttlMs: 1, wait: true, permits: 1.5 },
      ],
    ]
    for (const [what, command] of bad) {
      const log = new LogDriver()
      log.open('s')
      const before = log.machine.revision
      const output = log.apply(command as Command)
      expect(output.result, what).toMatchObject({ type: 'error', code: 'InvalidCommand' })
      expect(output.events, what).toEqual([])
      expect(log.machine.revision, what).toBe(before)
      expect(log.machine.range(''), what).toEqual([])
    }
    // A campaign value that would not survive a snapshot round trip (1e400 parses to Infinity).
    const raw =
      '{"ts":0,"command":{"type":"campaign","name":"E","sessionId":"s","agentId":"a","requestId":"r","value":1e400}}'
    expect(decodeEnvelope(new TextEncoder().encode(raw))).toMatchObject({ ok: false })
    // The limits themselves are accepted.
    expect(
      decodeEnvelope(encodeEnvelope({ ts: 0, command: { type: 'txn', compare: [], success: ops(128) } })).ok,
    ).toBe(true)
  })
})

describe('ephemeral keys', () => {
  it('a session end deletes all its ephemeral keys in that one entry, each a delete event', () => {
    for (const end of [
      { type: 'closeSession', sessionId: 's' },
      { type: 'expireSession', sessionId: 's', reason: 'dead' },
    ] as Command[]) {
      const log = new LogDriver()
      log.open('s')
      log.open('t')
      log.apply({ type: 'putEphemeral', key: 'svc/b', value: 'b', sessionId: 's' }) // 1
      log.apply({ type: 'putEphemeral', key: 'svc/a', value: 'a', sessionId: 's' }) // 2
      log.apply({ type: 'putEphemeral', key: 'svc/t', value: 't', sessionId: 't' }) // 3
      log.apply({
        type: 'txn',
        compare: [],
        success: [{ type: 'put', key: 'svc/c', value: 'c', ephemeral: true }],
        sessionId: 's',
      }) // 4
      log.apply({ type: 'put', key: 'plain', value: 1 }) // 5
      const output = log.apply(end)
      expect(kvEvents(output.events)).toEqual([
        { type: 'kv', op: 'delete', key: 'svc/a', prevValue: 'a', revision: 6, timestamp: 1_000 },
        { type: 'kv', op: 'delete', key: 'svc/b', prevValue: 'b', revision: 6, timestamp: 1_000 },
        { type: 'kv', op: 'delete', key: 'svc/c', prevValue: 'c', revision: 6, timestamp: 1_000 },
      ])
      expect(log.machine.range('').map(([key]) => key)).toEqual(['plain', 'svc/t'])
    }
  })

  it('a plain put unbinds a key from its session; an ephemeral put by another session rebinds it', () => {
    const log = new LogDriver()
    log.open('s', 10_000, 'agent-s')
    log.open('t', 10_000, 'agent-t')
    log.apply({ type: 'putEphemeral', key: 'kept', value: 1, sessionId: 's' })
    log.apply({ type: 'put', key: 'kept', value: 2 })
    log.apply({ type: 'putEphemeral', key: 'moved', value: 1, sessionId: 's' })
    log.apply({ type: 'putEphemeral', key: 'moved', value: 2, sessionId: 't' })
    expect(log.machine.getEntry('moved')).toMatchObject({ ephemeral: true, owner: 'agent-t', version: 2 })
    const output = log.apply({ type: 'closeSession', sessionId: 's' })
    expect(kvEvents(output.events)).toEqual([])
    expect(log.machine.getEntry('kept')).toMatchObject({ value: 2, ephemeral: false })
    expect(log.machine.getEntry('kept')?.owner).toBeUndefined()
    expect(log.apply({ type: 'closeSession', sessionId: 't' }).events).toContainEqual(
      expect.objectContaining({ type: 'kv', op: 'delete', key: 'moved' }),
    )
  })

  it('an ephemeral put needs a live session: else SessionExpired and nothing written', () => {
    const log = new LogDriver()
    const output = log.apply({ type: 'putEphemeral', key: 'k', value: 1, sessionId: 'gone' })
    expect(output.result).toMatchObject({ type: 'error', code: 'SessionExpired' })
    const txn = log.apply({
      type: 'txn',
      compare: [],
      success: [
        { type: 'put', key: 'a', value: 1 },
        { type: 'put', key: 'k', value: 1, ephemeral: true },
      ],
      sessionId: 'gone',
    })
    expect(txn.result).toMatchObject({ type: 'error', code: 'SessionExpired' })
    expect(log.machine.revision).toBe(0)
    expect(log.machine.range('')).toEqual([])
  })

  it('honours expectedRevision on an ephemeral put', () => {
    const log = new LogDriver()
    log.open('s')
    expect(
      log.result({ type: 'putEphemeral', key: 'k', value: 1, sessionId: 's', expectedRevision: 0 }),
    ).toEqual({ type: 'revision', revision: 1 })
    expect(
      log.result({ type: 'putEphemeral', key: 'k', value: 2, sessionId: 's', expectedRevision: 0 }),
    ).toMatchObject({ code: 'RevisionMismatch' })
    expect(log.machine.get('k')?.value).toBe(1)
  })

  it('survives a snapshot: keys, owners and bindings, and the session end after restore still deletes them', () => {
    const log = new LogDriver({ historySize: 2 })
    log.open('s', 10_000, 'agent-s')
    log.apply({ type: 'put', key: 'a', value: 1 })
    log.apply({
      type: 'txn',
      compare: [],
      success: [
        { type: 'put', key: 'b', value: 2 },
        { type: 'put', key: 'c', value: 3 },
        { type: 'put', key: 'e', value: 4, ephemeral: true },
      ],
      sessionId: 's',
    })
    const restored = StateMachine.restore(log.machine.snapshot(), { historySize: 2 })
    expect(restored.list('')).toEqual(log.machine.list(''))
    expect(restored.snapshot()).toEqual(log.machine.snapshot())
    // The window kept only part of the transaction's revision: that revision is not served in part.
    expect(restored.eventsSince(2)).toEqual({ type: 'compacted', compactedRevision: 2 })
    const end = restored.apply({
      index: log.index + 1,
      term: 1,
      data: encodeEnvelope({ ts: 1_000, command: { type: 'closeSession', sessionId: 's' } }),
    })
    expect(kvEvents(end.events).map(event => event.key)).toEqual(['e'])
  })
})
