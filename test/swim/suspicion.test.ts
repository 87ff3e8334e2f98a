import { describe, expect, it } from 'vitest'
import { Awareness } from '../../src/swim/awareness.ts'
import { Suspicion, timeoutAfterConfirmations } from '../../src/swim/suspicion.ts'

describe('Suspicion (Lifeguard dynamic timeout)', () => {
  it('starts at the maximum and falls on a log scale to the minimum after k confirmations', () => {
    const suspicion = new Suspicion('a', 7, 2, 4000, 24_000, 1000)
    expect(suspicion.deadline).toBe(1000 + 24_000)
    expect(suspicion.confirm('b')).toBe(true)
    // max − log(2)/log(3) × (max − min)
    expect(suspicion.deadline).toBe(1000 + Math.floor(24_000 - (Math.log(2) / Math.log(3)) * 20_000))
    expect(suspicion.confirm('c')).toBe(true)
    expect(suspicion.deadline).toBe(1000 + 4000)
    // At the minimum, more confirmations change nothing.
    expect(suspicion.confirm('d')).toBe(false)
    expect(suspicion.deadline).toBe(5000)
  })

  it('counts each accuser once, and never the first one', () => {
    const suspicion = new Suspicion('a', 1, 3, 1000, 6000, 0)
    expect(suspicion.confirm('a')).toBe(false)
    expect(suspicion.confirm('b')).toBe(true)
    expect(suspicion.confirm('b')).toBe(false)
    expect(suspicion.confirmations).toBe(1)
  })

  it('starts at the minimum when no confirmations can be expected (k = 0)', () => {
    expect(new Suspicion('a', 1, 0, 4000, 24_000, 100).deadline).toBe(4100)
  })

  it('moves out by a stall', () => {
    const suspicion = new Suspicion('a', 1, 2, 4000, 24_000, 0)
    suspicion.postpone(3000)
    expect(suspicion.deadline).toBe(27_000)
    suspicion.confirm('b')
    suspicion.confirm('c')
    expect(suspicion.deadline).toBe(7000)
  })

  it('never returns less than the minimum', () => {
    for (let n = 0; n <= 10; n++)
      expect(timeoutAfterConfirmations(n, 3, 500, 3000)).toBeGreaterThanOrEqual(500)
  })
})

describe('Awareness (Lifeguard local health)', () => {
  it('clamps the score to 0..max-1 and scales timeouts by score + 1', () => {
    const awareness = new Awareness(8)
    awareness.apply(-1)
    expect(awareness.score).toBe(0)
    expect(awareness.scale(500)).toBe(500)
    awareness.apply(3)
    expect(awareness.scale(500)).toBe(2000)
    awareness.apply(100)
    expect(awareness.score).toBe(7)
    expect(awareness.scale(1000)).toBe(8000)
  })
})
