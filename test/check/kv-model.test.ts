import { describe, expect, it } from 'vitest'
import { describeKvOperation, type KvOperation, type KvState, kvModel } from '../../src/check/index.ts'

const empty = kvModel.init()
const holding = (entries: [string, string][]): KvState => new Map(entries)

describe('kvModel.step', () => {
  it('put sets the value and accepts any acknowledgement', () => {
    const { ok, state } = kvModel.step(empty, { op: 'put', key: 'k', value: 'v' }, {})
    expect(ok).toBe(true)
    expect(state.get('k')).toBe('v')
    expect(kvModel.step(empty, { op: 'put', key: 'k', value: 'v' }, undefined).state.get('k')).toBe('v')
  })

  it('delete removes the key', () => {
    const { ok, state } = kvModel.step(holding([['k', 'v']]), { op: 'delete', key: 'k' }, {})
    expect(ok).toBe(true)
    expect(state.has('k')).toBe(false)
  })

  it('get must return the current value, and no value for a missing key', () => {
    const state = holding([['k', 'v']])
    expect(kvModel.step(state, { op: 'get', key: 'k' }, { value: 'v' }).ok).toBe(true)
    expect(kvModel.step(state, { op: 'get', key: 'k' }, { value: 'w' }).ok).toBe(false)
    expect(kvModel.step(state, { op: 'get', key: 'k' }, {}).ok).toBe(false)
    expect(kvModel.step(state, { op: 'get', key: 'other' }, {}).ok).toBe(true)
    expect(kvModel.step(state, { op: 'get', key: 'other' }, { value: 'v' }).ok).toBe(false)
    expect(kvModel.step(state, { op: 'get', key: 'k' }, undefined).ok).toBe(true)
  })

  it('cas swaps only on a match and must report whether it did', () => {
    const state = holding([['k', 'a']])
    const match = { op: 'cas', key: 'k', expected: 'a', value: 'b' } as const
    const mismatch = { op: 'cas', key: 'k', expected: 'z', value: 'b' } as const
    expect(kvModel.step(state, match, { ok: true })).toEqual({ ok: true, state: holding([['k', 'b']]) })
    expect(kvModel.step(state, match, { ok: false }).ok).toBe(false)
    expect(kvModel.step(state, mismatch, { ok: false })).toEqual({ ok: true, state })
    expect(kvModel.step(state, mismatch, { ok: true }).ok).toBe(false)
    // Unknown outcome: the state decides.
    expect(kvModel.step(state, match, undefined)).toEqual({ ok: true, state: holding([['k', 'b']]) })
    expect(kvModel.step(state, mismatch, undefined)).toEqual({ ok: true, state })
  })

  it('never mutates the state it is given', () => {
    const state = holding([['k', 'a']])
    kvModel.step(state, { op: 'put', key: 'k', value: 'b' }, {})
    kvModel.step(state, { op: 'delete', key: 'k' }, {})
    kvModel.step(state, { op: 'cas', key: 'k', expected: 'a', value: 'c' }, { ok: true })
    expect(state).toEqual(holding([['k', 'a']]))
  })
})

describe('kvModel.key', () => {
  it('is the same for equal contents written in different orders, and differs otherwise', () => {
    const ab = holding([
      ['a', '1'],
      ['b', '2'],
    ])
    const ba = holding([
      ['b', '2'],
      ['a', '1'],
    ])
    expect(kvModel.key(ab)).toBe(kvModel.key(ba))
    expect(kvModel.key(ab)).not.toBe(kvModel.key(holding([['a', '1']])))
    expect(kvModel.key(empty)).not.toBe(kvModel.key(holding([['a', '']])))
  })
})

describe('kvModel.partition', () => {
  it('groups operations by key, keeping their order', () => {
    const at = (key: string, call: number): KvOperation => ({
      clientId: 0,
      input: { op: 'get', key },
      call,
      return: call + 1,
      output: {},
    })
    const history = [at('a', 0), at('b', 1), at('a', 2), at('c', 3), at('b', 4)]
    expect(kvModel.partition!(history)).toEqual([
      [history[0], history[2]],
      [history[1], history[4]],
      [history[3]],
    ])
  })
})

describe('describeKvOperation', () => {
  it('names the call, the result and the times; an unknown outcome shows ? and ∞', () => {
    const base = { clientId: 3, call: 1, return: 2 }
    expect(describeKvOperation({ ...base, input: { op: 'get', key: 'k' }, output: {} })).toBe(
      'c3 get("k") -> absent [1, 2]',
    )
    expect(
      describeKvOperation({
        ...base,
        input: { op: 'cas', key: 'k', expected: undefined, value: 'v' },
        output: { ok: true },
      }),
    ).toBe('c3 cas("k", absent -> "v") -> true [1, 2]')
    expect(
      describeKvOperation({
        ...base,
        input: { op: 'put', key: 'k', value: 'v' },
        output: undefined,
        return: Number.POSITIVE_INFINITY,
      }),
    ).toBe('c3 put("k", "v") -> ? [1, ∞]')
  })
})
