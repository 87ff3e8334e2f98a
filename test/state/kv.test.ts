import { describe, expect, it } from 'vitest'
import { LogDriver } from './helpers.ts'

describe('KV store', () => {
  it('bumps one global revision per mutation and tracks create/mod revisions', () => {
    const log = new LogDriver()
    expect(log.result({ type: 'put', key: 'a', value: 1 })).toEqual({ type: 'revision', revision: 1 })
    expect(log.result({ type: 'put', key: 'b', value: { x: [1, 2] } })).toEqual({
      type: 'revision',
      revision: 2,
    })
    expect(log.result({ type: 'put', key: 'a', value: 'two' })).toEqual({ type: 'revision', revision: 3 })
    expect(log.machine.get('a')).toEqual({ value: 'two', createRevision: 1, modRevision: 3, version: 2 })
    expect(log.machine.get('b')).toEqual({
      value: { x: [1, 2] },
      createRevision: 2,
      modRevision: 2,
      version: 1,
    })
    expect(log.machine.revision).toBe(3)
    expect(log.machine.get('missing')).toBeUndefined()
  })

  it('emits a kv event with the entry timestamp', () => {
    const log = new LogDriver().at(5_000)
    const output = log.apply({ type: 'put', key: 'k', value: null })
    expect(output.events).toEqual([
      { type: 'kv', op: 'put', key: 'k', value: null, revision: 1, timestamp: 5_000 },
    ])
  })

  it('applies expectedRevision against the key modRevision, 0 meaning create-only', () => {
    const log = new LogDriver()
    expect(log.result({ type: 'put', key: 'k', value: 1, expectedRevision: 0 })).toEqual({
      type: 'revision',
      revision: 1,
    })
    const again = log.apply({ type: 'put', key: 'k', value: 2, expectedRevision: 0 })
    expect(again.result).toMatchObject({ type: 'error', code: 'RevisionMismatch' })
    expect(again.events).toEqual([])
    expect(log.machine.get('k')?.value).toBe(1)
    expect(log.machine.revision).toBe(1)

    expect(log.result({ type: 'put', key: 'other', value: 0 })).toEqual({ type: 'revision', revision: 2 })
    // The key is still at 1 although the store moved on to 2.
    expect(log.result({ type: 'put', key: 'k', value: 3, expectedRevision: 2 })).toMatchObject({
      code: 'RevisionMismatch',
    })
    expect(log.result({ type: 'put', key: 'k', value: 3, expectedRevision: 1 })).toEqual({
      type: 'revision',
      revision: 3,
    })
    expect(log.machine.get('k')).toEqual({ value: 3, createRevision: 1, modRevision: 3, version: 2 })
  })

  it('deletes, conditionally too, and recreates with a new createRevision', () => {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'k', value: 1 })
    expect(log.result({ type: 'delete', key: 'k', expectedRevision: 7 })).toMatchObject({
      code: 'RevisionMismatch',
    })
    expect(log.machine.get('k')).toBeDefined()
    const deleted = log.apply({ type: 'delete', key: 'k', expectedRevision: 1 })
    expect(deleted.result).toEqual({ type: 'revision', revision: 2 })
    expect(deleted.events).toEqual([
      { type: 'kv', op: 'delete', key: 'k', revision: 2, timestamp: 1_000, prevValue: 1 },
    ])
    expect(log.machine.get('k')).toBeUndefined()
    // Deleting an absent key changes nothing.
    const absent = log.apply({ type: 'delete', key: 'k' })
    expect(absent).toEqual({ result: { type: 'revision', revision: 2 }, events: [] })
    expect(log.result({ type: 'delete', key: 'k', expectedRevision: 2 })).toMatchObject({
      code: 'RevisionMismatch',
    })
    log.apply({ type: 'put', key: 'k', value: 'again' })
    expect(log.machine.get('k')).toEqual({ value: 'again', createRevision: 3, modRevision: 3, version: 1 })
  })

  it('replays history from a revision, filtered by prefix, in revision order', () => {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'app/a', value: 1 }) // 1
    log.apply({ type: 'put', key: 'other', value: 1 }) // 2
    log.apply({ type: 'put', key: 'app/b', value: 2 }) // 3
    log.apply({ type: 'delete', key: 'app/a' }) // 4
    log.apply({ type: 'put', key: 'app/a', value: 3 }) // 5
    const all = log.machine.eventsSince(1, 'app/')
    expect(all.type).toBe('events')
    if (all.type !== 'events') return
    expect(all.events.map(event => [event.revision, event.op, event.key])).toEqual([
      [1, 'put', 'app/a'],
      [3, 'put', 'app/b'],
      [4, 'delete', 'app/a'],
      [5, 'put', 'app/a'],
    ])
    const fromThree = log.machine.eventsSince(3, '')
    expect(fromThree.type === 'events' && fromThree.events.map(event => event.revision)).toEqual([3, 4, 5])
    const limited = log.machine.eventsSince(0, 'app/', 2)
    expect(limited.type === 'events' && limited.events.map(event => event.revision)).toEqual([1, 3])
    const future = log.machine.eventsSince(6, '')
    expect(future).toEqual({ type: 'events', events: [] })
  })

  it('answers compacted below the retained window', () => {
    const log = new LogDriver({ historySize: 3 })
    for (let i = 1; i <= 5; i++) log.apply({ type: 'put', key: `k${i}`, value: i })
    // Revisions 3..5 retained; 1 and 2 are gone.
    expect(log.machine.eventsSince(1, '')).toEqual({ type: 'compacted', compactedRevision: 2 })
    expect(log.machine.eventsSince(2, 'k')).toEqual({ type: 'compacted', compactedRevision: 2 })
    const retained = log.machine.eventsSince(3, '')
    expect(retained.type === 'events' && retained.events.map(event => event.key)).toEqual(['k3', 'k4', 'k5'])
    // Wrapped ring: later pushes keep order.
    log.apply({ type: 'put', key: 'k6', value: 6 })
    log.apply({ type: 'delete', key: 'k1' })
    const wrapped = log.machine.eventsSince(5, '')
    expect(wrapped.type === 'events' && wrapped.events.map(event => event.revision)).toEqual([5, 6, 7])
    expect(log.machine.eventsSince(4, '')).toEqual({ type: 'compacted', compactedRevision: 4 })
  })

  it('with no history retained, any past revision is compacted', () => {
    const log = new LogDriver({ historySize: 0 })
    log.apply({ type: 'put', key: 'k', value: 1 })
    expect(log.machine.eventsSince(1, '')).toEqual({ type: 'compacted', compactedRevision: 1 })
    expect(log.machine.eventsSince(2, '')).toEqual({ type: 'events', events: [] })
  })

  it('lists a prefix range in key order', () => {
    const log = new LogDriver()
    log.apply({ type: 'put', key: 'p/b', value: 2 })
    log.apply({ type: 'put', key: 'q', value: 0 })
    log.apply({ type: 'put', key: 'p/a', value: 1 })
    expect(log.machine.range('p/').map(([key, record]) => [key, record.value])).toEqual([
      ['p/a', 1],
      ['p/b', 2],
    ])
  })
})
