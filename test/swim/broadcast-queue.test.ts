import { describe, expect, it } from 'vitest'
import { BroadcastQueue } from '../../src/swim/broadcast-queue.ts'
import { retransmitLimit, SWIM_LAN_CONFIG } from '../../src/swim/config.ts'
import type { Update } from '../../src/swim/types.ts'

const suspect = (id: string, incarnation: number): Update => ({ type: 'suspect', id, incarnation, from: 'x' })

describe('BroadcastQueue (transmit-limited)', () => {
  it('sends each update until it reaches the transmit limit', () => {
    const queue = new BroadcastQueue()
    queue.push(suspect('a', 1))
    const batches: Update[][] = []
    for (let i = 0; i < 5; i++) batches.push(queue.take(10, 3))
    expect(batches.map(batch => batch.length)).toEqual([1, 1, 1, 0, 0])
    expect(queue.size).toBe(0)
  })

  it('sends the least transmitted first, the newest first among equals, within the batch cap', () => {
    const queue = new BroadcastQueue()
    queue.push(suspect('a', 1))
    queue.push(suspect('b', 1))
    expect(queue.take(1, 5)).toEqual([suspect('b', 1)])
    queue.push(suspect('c', 1))
    // a and c have 0 transmissions; c is newer.
    expect(queue.take(2, 5)).toEqual([suspect('c', 1), suspect('a', 1)])
    expect(queue.take(5, 5)).toEqual([suspect('c', 1), suspect('b', 1), suspect('a', 1)])
  })

  it('replaces the queued update about the same member, and drops stale ones', () => {
    const queue = new BroadcastQueue()
    queue.push(suspect('a', 1))
    queue.push({ type: 'dead', id: 'a', incarnation: 1, from: 'y' })
    expect(queue.size).toBe(1)
    expect(queue.get('a')?.type).toBe('dead')
    queue.dropStale('a', 1)
    expect(queue.size).toBe(1)
    queue.dropStale('a', 2)
    expect(queue.size).toBe(0)
  })

  it('retransmits retransmitMult × ceil(log10(n + 1)) times', () => {
    expect(retransmitLimit(SWIM_LAN_CONFIG, 1)).toBe(4)
    expect(retransmitLimit(SWIM_LAN_CONFIG, 25)).toBe(8)
    expect(retransmitLimit(SWIM_LAN_CONFIG, 100)).toBe(12)
  })

  it("retransmits retransmitMult times at any size with retransmitScale 'none'", () => {
    const flat = { ...SWIM_LAN_CONFIG, retransmitMult: 1, retransmitScale: 'none' as const }
    for (const n of [1, 9, 20, 99, 1000]) expect(retransmitLimit(flat, n)).toBe(1)
  })
})
