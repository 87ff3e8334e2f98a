import { describe, expect, it } from 'vitest'
import type { KvInput, KvOperation, KvOutput } from '../../src/check/index.ts'
import {
  checkOperations,
  kvModel,
  type Model,
  type Operation,
  type SearchStrategy,
} from '../../src/check/index.ts'

const UNKNOWN = Number.POSITIVE_INFINITY
const STRATEGIES: SearchStrategy[] = ['auto', 'depth-first', 'sweep']

function op(clientId: number, input: KvInput, call: number, ret: number, output?: KvOutput): KvOperation {
  return { clientId, input, call, return: ret, output }
}
const put = (key: string, value: string): KvInput => ({ op: 'put', key, value })
const get = (key: string): KvInput => ({ op: 'get', key })
const del = (key: string): KvInput => ({ op: 'delete', key })
const cas = (key: string, expected: string | undefined, value: string): KvInput => ({
  op: 'cas',
  key,
  expected,
  value,
})
const read = (value: string | undefined): KvOutput => (value === undefined ? {} : { value })
const done: KvOutput = {}

/** The verdict, after checking that every search strategy reaches the same one. */
function check(history: KvOperation[]) {
  const verdicts = STRATEGIES.map(strategy => checkOperations(kvModel, history, { strategy }).result)
  expect(
    new Set(verdicts).size,
    `verdicts by strategy ${STRATEGIES.join(', ')}: ${verdicts.join(', ')}`,
  ).toBe(1)
  return verdicts[0]
}

describe('checkOperations on a KV store', () => {
  it('accepts an empty history', () => {
    expect(check([])).toBe('ok')
  })

  it('accepts sequential operations that follow the specification', () => {
    const history = [
      op(0, get('x'), 0, 1, read(undefined)),
      op(0, put('x', '1'), 2, 3, done),
      op(1, get('x'), 4, 5, read('1')),
      op(1, del('x'), 6, 7, done),
      op(0, get('x'), 8, 9, read(undefined)),
    ]
    expect(check(history)).toBe('ok')
  })

  it('rejects a sequential read that returns a deleted value', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(0, del('x'), 2, 3, done),
      op(1, get('x'), 4, 5, read('1')),
    ]
    expect(check(history)).toBe('illegal')
  })

  it('accepts concurrent writes seen in either order by reads that overlap them', () => {
    const writes = [op(0, put('x', '1'), 0, 10, done), op(1, put('x', '2'), 0, 10, done)]
    // Both reads complete before the writes do: 1 then 2 is the order put 1, read, put 2, read.
    expect(check([...writes, op(2, get('x'), 1, 2, read('1')), op(2, get('x'), 3, 4, read('2'))])).toBe('ok')
    expect(check([...writes, op(2, get('x'), 1, 2, read('2')), op(2, get('x'), 3, 4, read('1'))])).toBe('ok')
    // After both writes complete, either one may be the last.
    expect(check([...writes, op(2, get('x'), 11, 12, read('1'))])).toBe('ok')
    expect(check([...writes, op(2, get('x'), 11, 12, read('2'))])).toBe('ok')
  })

  it('rejects reads after concurrent writes completed that disagree on which write was last', () => {
    const history = [
      op(0, put('x', '1'), 0, 10, done),
      op(1, put('x', '2'), 0, 10, done),
      op(2, get('x'), 11, 12, read('2')),
      op(3, get('x'), 13, 14, read('1')),
    ]
    expect(check(history)).toBe('illegal')
  })

  it('rejects a stale read after a completed write', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(0, put('x', '2'), 2, 3, done),
      op(1, get('x'), 4, 5, read('1')),
    ]
    expect(check(history)).toBe('illegal')
  })

  it('rejects a read of a value that was never written', () => {
    const history = [op(0, put('x', '1'), 0, 10, done), op(1, get('x'), 2, 3, read('7'))]
    expect(check(history)).toBe('illegal')
  })

  it('rejects a write that un-happens: the new value is read, then the old one', () => {
    const afterWrite = [
      op(0, put('x', '1'), 0, 1, done),
      op(1, get('x'), 2, 3, read('1')),
      op(2, get('x'), 4, 5, read(undefined)),
    ]
    expect(check(afterWrite)).toBe('illegal')
    // Still illegal while the write is in flight: once a read saw it, a later read cannot miss it.
    const duringWrite = [
      op(0, put('x', '1'), 0, 10, done),
      op(1, get('x'), 2, 3, read('1')),
      op(2, get('x'), 4, 5, read(undefined)),
    ]
    expect(check(duringWrite)).toBe('illegal')
    // The same reads in the other order are fine: the write took effect between them.
    const reordered = [
      op(0, put('x', '1'), 0, 10, done),
      op(1, get('x'), 2, 3, read(undefined)),
      op(2, get('x'), 4, 5, read('1')),
    ]
    expect(check(reordered)).toBe('ok')
  })

  it('accepts one winner among concurrent compare-and-sets with the same expected value', () => {
    const history = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'a', 'b'), 2, 5, { ok: true }),
      op(2, cas('x', 'a', 'c'), 2, 5, { ok: false }),
      op(0, get('x'), 6, 7, read('b')),
    ]
    expect(check(history)).toBe('ok')
  })

  it('rejects two winners among compare-and-sets with the same expected value', () => {
    const history = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'a', 'b'), 2, 5, { ok: true }),
      op(2, cas('x', 'a', 'c'), 2, 5, { ok: true }),
    ]
    expect(check(history)).toBe('illegal')
  })

  it('rejects a compare-and-set result that contradicts the value it compared', () => {
    const failedButMatched = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'a', 'b'), 2, 3, { ok: false }),
    ]
    expect(check(failedButMatched)).toBe('illegal')
    const succeededButDiffered = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'z', 'b'), 2, 3, { ok: true }),
    ]
    expect(check(succeededButDiffered)).toBe('illegal')
    // A successful cas must be visible to a later read.
    const lostSwap = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'a', 'b'), 2, 3, { ok: true }),
      op(2, get('x'), 4, 5, read('a')),
    ]
    expect(check(lostSwap)).toBe('illegal')
  })

  it('treats a compare-and-set expecting undefined as create-if-absent', () => {
    const history = [
      op(0, cas('x', undefined, 'a'), 0, 1, { ok: true }),
      op(1, cas('x', undefined, 'b'), 2, 3, { ok: false }),
      op(0, get('x'), 4, 5, read('a')),
    ]
    expect(check(history)).toBe('ok')
  })

  it('accepts an unknown-outcome put whose value is later read', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(1, put('x', '2'), 2, UNKNOWN),
      op(0, get('x'), 5, 6, read('2')),
    ]
    expect(check(history)).toBe('ok')
  })

  it('accepts an unknown-outcome put whose value is never read', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(1, put('x', '2'), 2, UNKNOWN),
      op(0, get('x'), 5, 6, read('1')),
      op(0, get('x'), 7, 8, read('1')),
    ]
    expect(check(history)).toBe('ok')
  })

  it('rejects an unknown-outcome put whose value is read and then un-read', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(1, put('x', '2'), 2, UNKNOWN),
      op(0, get('x'), 5, 6, read('2')),
      op(0, get('x'), 7, 8, read('1')),
    ]
    expect(check(history)).toBe('illegal')
  })

  it('rejects an unknown-outcome put that would have to take effect before its call', () => {
    const history = [op(0, get('x'), 0, 1, read('1')), op(1, put('x', '1'), 5, UNKNOWN)]
    expect(check(history)).toBe('illegal')
  })

  it('accepts an unknown-outcome cas either way, but not both ways', () => {
    const took = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'a', 'b'), 2, UNKNOWN),
      op(0, get('x'), 3, 4, read('b')),
    ]
    expect(check(took)).toBe('ok')
    const didNotTake = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'a', 'b'), 2, UNKNOWN),
      op(0, get('x'), 3, 4, read('a')),
    ]
    expect(check(didNotTake)).toBe('ok')
    // An unknown cas cannot succeed against a value the key never held when it could run.
    const impossible = [
      op(0, put('x', 'a'), 0, 1, done),
      op(1, cas('x', 'z', 'b'), 2, UNKNOWN),
      op(0, get('x'), 3, 4, read('b')),
    ]
    expect(check(impossible)).toBe('illegal')
  })

  it('finds where lost operations must go when several could serve and each is used once', () => {
    // Legal: the lost cas creates "b" first, the completed cas then fails on it, the read sees it, the
    // lost delete empties the key and the last cas creates "c"; the lost put never happens. A search
    // that took a dead end with more lost operations placed as proof for fewer would call it illegal.
    const history = [
      op(2, put('x', 'a'), 1, UNKNOWN),
      op(1, cas('x', undefined, 'b'), 2, UNKNOWN),
      op(0, cas('x', undefined, 'b'), 3, 5, { ok: false }),
      op(3, cas('x', undefined, 'c'), 7, 12, { ok: true }),
      op(2, get('x'), 8, 12, read('b')),
      op(0, del('x'), 9, UNKNOWN),
    ]
    expect(check(history)).toBe('ok')
    // Without the lost delete, nothing can empty the key for cas 3.
    expect(check(history.slice(0, 5))).toBe('illegal')
  })

  it('isolates keys and reports the illegal key as the failing partition', () => {
    const keyA = [
      op(0, put('a', '1'), 0, 1, done),
      op(1, get('a'), 2, 3, read('1')),
      op(2, put('a', '2'), 2, 6, done),
    ]
    const keyB = [
      op(0, put('b', '1'), 0, 1, done),
      op(1, put('b', '2'), 2, 3, done),
      op(2, get('b'), 4, 5, read('1')),
    ]
    // Interleave the two keys in the history.
    const history = [keyA[0], keyB[0], keyA[1], keyB[1], keyA[2], keyB[2]]
    const outcome = checkOperations(kvModel, history)
    expect(outcome.result).toBe('illegal')
    expect(outcome.failingPartition).toEqual(keyB)
    // Without the bad key, the rest is fine: keys do not constrain one another.
    expect(check(keyA)).toBe('ok')
    // A read of b that would be stale with respect to a write of a is not a violation.
    const crossKey = [op(0, put('a', '1'), 0, 1, done), op(1, get('b'), 2, 3, read(undefined))]
    expect(check(crossKey)).toBe('ok')
  })

  it('explains an illegal history with the longest prefix and the operations that could not be placed', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(0, put('x', '2'), 2, 3, done),
      op(1, get('x'), 4, 5, read('1')),
      op(1, put('x', '3'), 6, 7, done),
    ]
    for (const strategy of STRATEGIES) {
      const outcome = checkOperations(kvModel, history, { strategy })
      expect(outcome.result).toBe('illegal')
      const explanation = outcome.explanation ?? ''
      expect(explanation).toContain('Longest linearizable prefix found: 2 of 4 operations.')
      expect(explanation).toContain('1. c0 put("x", "1") -> ok [0, 1]')
      expect(explanation).toContain('2. c0 put("x", "2") -> ok [2, 3]')
      expect(explanation).toContain('State after it: [["x","2"]]')
      expect(explanation).toContain('c1 get("x") -> "1" [4, 5]: rejected by the model in this state')
      expect(explanation).toContain('Completed operations not placed: 2.')
    }
  })

  it('explains a history with unknown outcomes, which may be left out', () => {
    const history = [
      op(0, put('x', '1'), 0, 1, done),
      op(1, put('x', '2'), 2, UNKNOWN),
      op(0, get('x'), 3, 4, read('2')),
      op(0, get('x'), 5, 6, read('3')),
    ]
    for (const strategy of STRATEGIES) {
      const outcome = checkOperations(kvModel, history, { strategy })
      expect(outcome.result).toBe('illegal')
      const explanation = outcome.explanation ?? ''
      expect(explanation).toContain(
        '(1 of unknown outcome, each tried at every point after its call and left out)',
      )
      expect(explanation).toContain('Longest linearizable prefix found: 3 of 4 operations.')
      expect(explanation).toContain('2. c1 put("x", "2") -> ? [2, ∞]')
      expect(explanation).toContain('c0 get("x") -> "3" [5, 6]: rejected by the model in this state')
    }
  })

  it('treats operations whose return and call share a timestamp as concurrent', () => {
    // The read's call and the write's return are both at 5: their real-time order is unknown.
    const touching = [op(0, put('x', '1'), 0, 5, done), op(1, get('x'), 5, 6, read(undefined))]
    expect(check(touching)).toBe('ok')
    // One tick later the write has certainly completed, and the read is stale.
    const after = [op(0, put('x', '1'), 0, 5, done), op(1, get('x'), 6, 7, read(undefined))]
    expect(check(after)).toBe('illegal')
    // An instantaneous operation (call equals return) is valid.
    const instantaneous = [op(0, put('x', '1'), 3, 3, done), op(1, get('x'), 4, 4, read('1'))]
    expect(check(instantaneous)).toBe('ok')
  })

  it('rejects operations whose return precedes their call', () => {
    expect(() => check([op(0, put('x', '1'), 5, 4, done)])).toThrow(RangeError)
    expect(() => check([op(0, put('x', '1'), Number.NaN, 4, done)])).toThrow(RangeError)
    expect(() => check([op(0, put('x', '1'), UNKNOWN, UNKNOWN)])).toThrow(RangeError)
  })

  it('returns unknown when the search outlives its timeout', () => {
    // 22 concurrent writes, then a read of a value none wrote: proving it illegal means visiting every
    // subset of the writes in every state, about 90 million configurations.
    const history: KvOperation[] = []
    for (let i = 0; i < 22; i++) history.push(op(i, put('x', `v${i}`), 0, 10, done))
    history.push(op(99, get('x'), 11, 12, read('never')))
    for (const strategy of STRATEGIES) {
      const started = performance.now()
      const outcome = checkOperations(kvModel, history, { timeoutMs: 50, strategy })
      const elapsed = performance.now() - started
      expect(outcome.result).toBe('unknown')
      expect(outcome.failingPartition).toBeUndefined()
      expect(elapsed).toBeLessThan(2_000)
    }
  })

  it('finds the illegal key even when another key times out', () => {
    const history: KvOperation[] = []
    for (let i = 0; i < 22; i++) history.push(op(i, put('slow', `v${i}`), 0, 10, done))
    history.push(op(99, get('slow'), 11, 12, read('never')))
    const bad = [op(0, put('fast', '1'), 0, 1, done), op(1, get('fast'), 2, 3, read('2'))]
    const outcome = checkOperations(kvModel, [...history, ...bad], { timeoutMs: 50 })
    expect(outcome.result).toBe('illegal')
    expect(outcome.failingPartition).toEqual(bad)
  })
})

describe('checkOperations with a model of its own', () => {
  // A counter whose `inc` returns the value after incrementing: a model without partition or describe.
  type CounterOp = Operation<'inc' | 'read', number>
  const counter: Model<number, 'inc' | 'read', number> = {
    init: () => 0,
    step: (state, input, output) => {
      const next = input === 'inc' ? state + 1 : state
      return { ok: output === undefined || output === next, state: next }
    },
    key: state => String(state),
  }
  const counterOp = (input: 'inc' | 'read', call: number, ret: number, output?: number): CounterOp => ({
    clientId: 0,
    input,
    call,
    return: ret,
    output,
  })

  it('checks the whole history as one partition', () => {
    const legal = [counterOp('inc', 0, 10, 2), counterOp('inc', 1, 9, 1), counterOp('read', 11, 12, 2)]
    expect(checkOperations(counter, legal).result).toBe('ok')
    const illegal = [counterOp('inc', 0, 1, 1), counterOp('inc', 2, 3, 1)]
    const outcome = checkOperations(counter, illegal)
    expect(outcome.result).toBe('illegal')
    expect(outcome.failingPartition).toEqual(illegal)
    expect(outcome.explanation).toContain('client 0: "inc" -> 1 [2, 3]: rejected by the model in this state')
  })
})
