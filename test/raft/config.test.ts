import { describe, expect, test } from 'vitest'
import { applyConfigChange, ConfigHistory, decodeConfig, encodeConfig } from '../../src/raft/config.ts'
import { ConfigChangeError } from '../../src/raft/errors.ts'
import type { Config } from '../../src/raft/types.ts'

const base: Config = { voters: ['a', 'b'], nonVoters: ['l'] }

describe('config encoding', () => {
  test('round trips', () => {
    expect(decodeConfig(encodeConfig(base))).toEqual(base)
  })

  test.each([
    ['not json', new TextEncoder().encode('{')],
    ['not an object', new TextEncoder().encode('3')],
    ['bad lists', new TextEncoder().encode('{"voters":[1],"nonVoters":[]}')],
    ['duplicate member', new TextEncoder().encode('{"voters":["a"],"nonVoters":["a"]}')],
  ])('rejects %s', (_, data) => {
    expect(() => decodeConfig(data)).toThrow(ConfigChangeError)
  })
})

describe('single-server changes', () => {
  test('each change produces the expected configuration', () => {
    expect(applyConfigChange(base, { type: 'addVoter', node: 'c' })).toEqual({
      voters: ['a', 'b', 'c'],
      nonVoters: ['l'],
    })
    expect(applyConfigChange(base, { type: 'removeVoter', node: 'a' })).toEqual({
      voters: ['b'],
      nonVoters: ['l'],
    })
    expect(applyConfigChange(base, { type: 'addNonVoter', node: 'm' })).toEqual({
      voters: ['a', 'b'],
      nonVoters: ['l', 'm'],
    })
    expect(applyConfigChange(base, { type: 'removeNonVoter', node: 'l' })).toEqual({
      voters: ['a', 'b'],
      nonVoters: [],
    })
    expect(applyConfigChange(base, { type: 'promote', node: 'l' })).toEqual({
      voters: ['a', 'b', 'l'],
      nonVoters: [],
    })
    expect(base).toEqual({ voters: ['a', 'b'], nonVoters: ['l'] })
  })

  test.each([
    { type: 'addVoter', node: 'a' },
    { type: 'addVoter', node: 'l' },
    { type: 'removeVoter', node: 'l' },
    { type: 'addNonVoter', node: 'a' },
    { type: 'removeNonVoter', node: 'a' },
    { type: 'promote', node: 'a' },
    { type: 'addVoter', node: '' },
  ] as const)('refuses $type $node', change => {
    expect(() => applyConfigChange(base, change)).toThrow(ConfigChangeError)
  })

  test('refuses to remove the last voter', () => {
    expect(() =>
      applyConfigChange({ voters: ['a'], nonVoters: [] }, { type: 'removeVoter', node: 'a' }),
    ).toThrow(ConfigChangeError)
  })
})

describe('ConfigHistory', () => {
  test('tracks configs along the log, through truncation and compaction', () => {
    const one: Config = { voters: ['a'], nonVoters: [] }
    const two: Config = { voters: ['a', 'b'], nonVoters: [] }
    const three: Config = { voters: ['a', 'b', 'c'], nonVoters: [] }
    const history = new ConfigHistory(0, one)
    history.add(5, two)
    history.add(9, three)
    expect(history.current()).toBe(three)
    expect(history.at(7)).toBe(two)
    expect(history.at(4)).toBe(one)
    expect(history.truncateFrom(10)).toBe(false)
    expect(history.truncateFrom(9)).toBe(true)
    expect(history.current()).toBe(two)
    history.add(9, three)
    history.compact(6)
    expect(history.at(6)).toBe(two)
    expect(history.currentIndex()).toBe(9)
    expect(history.truncateFrom(1)).toBe(true)
    expect(history.current()).toBe(two) // the base survives
    history.restore(20, one, false)
    expect([history.current(), history.currentIndex()]).toEqual([one, 20])
  })
})
