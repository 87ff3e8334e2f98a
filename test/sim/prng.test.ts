import { describe, expect, it } from 'vitest'
import { Prng } from '../../scripts/sim/prng.ts'

describe('Prng', () => {
  it('replays the same sequence for the same seed and label', () => {
    const a = new Prng(42, 'x')
    const b = new Prng(42, 'x')
    const drawsA = Array.from({ length: 100 }, () => a.nextUint32())
    const drawsB = Array.from({ length: 100 }, () => b.nextUint32())
    expect(drawsA).toEqual(drawsB)
  })

  it('gives unrelated sequences to different seeds and to different labels', () => {
    const draw = (prng: Prng) => Array.from({ length: 20 }, () => prng.nextUint32())
    expect(draw(new Prng(1))).not.toEqual(draw(new Prng(2)))
    expect(draw(new Prng(1, 'network'))).not.toEqual(draw(new Prng(1, 'disk')))
    // Seeds above 2^32 are distinct seeds, not aliases of their low word.
    expect(draw(new Prng(5))).not.toEqual(draw(new Prng(5 + 2 ** 32)))
  })

  it('derives streams from the seed, not from the position of the parent stream', () => {
    const parent = new Prng(7)
    const before = parent.stream('clients').nextUint32()
    for (let i = 0; i < 50; i++) parent.next()
    expect(parent.stream('clients').nextUint32()).toBe(before)
    expect(parent.stream('clients').stream('c1').nextUint32()).not.toBe(parent.stream('c1').nextUint32())
  })

  it('keeps draws within their ranges and spreads them', () => {
    const prng = new Prng(3)
    const seen = new Set<number>()
    for (let i = 0; i < 2000; i++) {
      const x = prng.next()
      expect(x).toBeGreaterThanOrEqual(0)
      expect(x).toBeLessThan(1)
      const n = prng.between(2, 5)
      expect(n).toBeGreaterThanOrEqual(2)
      expect(n).toBeLessThanOrEqual(5)
      seen.add(n)
    }
    expect([...seen].sort()).toEqual([2, 3, 4, 5])
    expect(() => prng.pick([])).toThrow(RangeError)
    expect(() => new Prng(1.5)).toThrow(RangeError)
  })

  it('draws weighted keys in proportion and never a zero weight', () => {
    const prng = new Prng(11)
    const counts = { a: 0, b: 0, c: 0 }
    for (let i = 0; i < 4000; i++) counts[prng.weighted({ a: 1, b: 3, c: 0 })]++
    expect(counts.c).toBe(0)
    expect(counts.b / counts.a).toBeGreaterThan(2.5)
    expect(counts.b / counts.a).toBeLessThan(3.5)
  })
})
