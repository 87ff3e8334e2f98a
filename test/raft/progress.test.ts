import { describe, expect, test } from 'vitest'
import { Inflights, PeerProgress } from '../../src/raft/progress.ts'

describe('Inflights', () => {
  test('fills by message count and frees by acknowledged index, wrapping around', () => {
    const inflights = new Inflights(3, 1000)
    for (let round = 0; round < 4; round++) {
      const base = round * 10
      inflights.add(base + 1, 10)
      inflights.add(base + 2, 10)
      expect(inflights.full()).toBe(false)
      inflights.add(base + 3, 10)
      expect(inflights.full()).toBe(true)
      inflights.freeLE(base + 2)
      expect([inflights.count, inflights.bytes]).toEqual([1, 10])
      inflights.freeLE(base + 3)
      expect([inflights.count, inflights.bytes]).toEqual([0, 0])
    }
  })

  test('fills by bytes', () => {
    const inflights = new Inflights(100, 25)
    inflights.add(1, 10)
    inflights.add(2, 10)
    expect(inflights.full()).toBe(false)
    inflights.add(3, 10)
    expect(inflights.full()).toBe(true)
    inflights.freeLE(1)
    expect(inflights.full()).toBe(false)
  })
})

describe('PeerProgress', () => {
  test('probe sends one message at a time; replicate pipelines up to the window', () => {
    const progress = new PeerProgress(5, 2, 1000)
    expect(progress.canSendEntries(10)).toBe(true)
    progress.sentEntries(3, 30)
    expect(progress.next).toBe(5) // probe does not move next optimistically
    expect(progress.canSendEntries(10)).toBe(false)
    progress.maybeUpdate(7)
    progress.becomeReplicate()
    expect(progress.next).toBe(8)
    progress.sentEntries(1, 10)
    progress.sentEntries(1, 10)
    expect(progress.next).toBe(10)
    expect(progress.canSendEntries(20)).toBe(false)
    progress.inflights.freeLE(8)
    expect(progress.canSendEntries(20)).toBe(true)
  })

  test('maybeUpdate ignores stale acknowledgements', () => {
    const progress = new PeerProgress(1, 4, 1000)
    expect(progress.maybeUpdate(3)).toBe(true)
    expect(progress.maybeUpdate(2)).toBe(false)
    expect([progress.match, progress.next]).toEqual([3, 4])
  })

  test('becomeProbe never goes at or below match', () => {
    const progress = new PeerProgress(1, 4, 1000)
    progress.maybeUpdate(5)
    progress.becomeProbe(2)
    expect(progress.next).toBe(6)
  })

  test('commit propagation is tracked below next', () => {
    const progress = new PeerProgress(1, 4, 1000)
    progress.maybeUpdate(5)
    progress.becomeReplicate()
    expect(progress.canBumpCommit(5)).toBe(true)
    progress.sentCommit(9)
    expect(progress.pendingCommit).toBe(5)
    expect(progress.canBumpCommit(9)).toBe(false)
  })
})
