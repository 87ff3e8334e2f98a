import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import { copyJson, jsonEqual, MAX_JSON_DEPTH, toJsonValue } from '../../src/state/json.ts'

describe('toJsonValue', () => {
  it('converts as JSON.stringify does', () => {
    const date = new Date('2026-01-02T03:04:05.000Z')
    expect(toJsonValue({ name: 'llama', v: undefined, f: () => 1, at: date, n: Number.NaN })).toEqual({
      name: 'llama',
      at: '2026-01-02T03:04:05.000Z',
      n: null,
    })
    expect(toJsonValue([undefined, 1, () => 0])).toEqual([null, 1, null])
    expect(toJsonValue({ toJSON: () => 'custom' })).toBe('custom')
    expect(toJsonValue(null)).toBeNull()
    const input = { a: { b: 1 } }
    const copy = toJsonValue(input)
    expect(copy).toEqual(input)
    expect(copy).not.toBe(input)
  })

  it('refuses what JSON.stringify cannot convert, with InvalidArgumentError', () => {
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    let deep: unknown = 0
    for (let i = 0; i <= MAX_JSON_DEPTH; i++) deep = [deep]
    for (const value of [10n, { big: 1n }, cycle, undefined, () => 1, Symbol('s'), deep]) {
      expect(() => toJsonValue(value)).toThrow(InvalidArgumentError)
    }
    expect(() => toJsonValue('x'.repeat(10), 'value', 5)).toThrow(/larger than 5 bytes/)
  })

  it('jsonEqual is structural, with object keys in any order', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 })).toBe(true)
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false)
    expect(jsonEqual([1, 2], [2, 1])).toBe(false)
    expect(jsonEqual({}, [])).toBe(false)
    expect(jsonEqual(null, {})).toBe(false)
    expect(jsonEqual('1', 1)).toBe(false)
  })
})

describe('copyJson', () => {
  it('copies deeply, keeping a __proto__ key an own property', () => {
    const value = JSON.parse('{"a":[1,{"b":null}],"__proto__":{"x":1},"s":"t"}')
    const copy = copyJson(value)
    expect(copy).toEqual(value)
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
    expect(Object.hasOwn(copy, '__proto__')).toBe(true)
    expect(copy.a).not.toBe(value.a)
    expect(copy.a[1]).not.toBe(value.a[1])
    expect(copyJson(5)).toBe(5)
  })
})
