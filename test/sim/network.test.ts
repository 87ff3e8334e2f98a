import { describe, expect, it } from 'vitest'
import { CALM_LINKS, Network } from '../../scripts/sim/network.ts'
import { Prng } from '../../scripts/sim/prng.ts'
import { Scheduler } from '../../scripts/sim/scheduler.ts'
import type { AppendRequest, Message } from '../../src/raft/types.ts'

const append = (from: string, to: string, index: number): AppendRequest => ({
  type: 'append',
  from,
  to,
  term: 1,
  prevLogIndex: index - 1,
  prevLogTerm: 1,
  entries: [{ index, term: 1, type: 'normal', data: new Uint8Array([index]) }],
  leaderCommit: 0,
})

function setup() {
  const scheduler = new Scheduler()
  const delivered: Message[] = []
  const network = new Network(scheduler, new Prng(9, 'network'), message => delivered.push(message))
  return { scheduler, delivered, network }
}

describe('Network', () => {
  it('delivers copies, within the latency range', () => {
    const { scheduler, delivered, network } = setup()
    network.faults = { ...CALM_LINKS, slowRate: 0 }
    const sent = append('a', 'b', 1)
    network.send(sent)
    scheduler.runUntil(CALM_LINKS.maxDelayMs)
    expect(delivered).toHaveLength(1)
    const got = delivered[0] as AppendRequest
    expect(got).toEqual(sent)
    expect(got).not.toBe(sent)
    expect(got.entries[0].data).not.toBe(sent.entries[0].data)
  })

  it('drops, duplicates and reorders as its faults say', () => {
    const { scheduler, delivered, network } = setup()
    network.faults = {
      dropRate: 0.3,
      duplicateRate: 0.3,
      minDelayMs: 1,
      maxDelayMs: 5,
      slowRate: 0.2,
      slowMaxDelayMs: 50,
    }
    for (let i = 1; i <= 400; i++) network.send(append('a', 'b', i))
    scheduler.runUntil(1000)
    const indexes = delivered.map(message => (message as AppendRequest).entries[0].index)
    expect(network.stats.dropped).toBeGreaterThan(60)
    expect(network.stats.duplicated).toBeGreaterThan(60)
    expect(delivered.length).toBe(400 - network.stats.dropped + network.stats.duplicated)
    expect(new Set(indexes).size).toBeLessThan(indexes.length)
    expect(indexes.some((index, i) => i > 0 && index < indexes[i - 1])).toBe(true)
  })

  it('loses what crosses a cut link, one way or both, including messages already in flight', () => {
    const { scheduler, delivered, network } = setup()
    network.send(append('a', 'b', 1))
    network.cut('a', 'b')
    network.send(append('b', 'a', 2))
    scheduler.runUntil(100)
    expect(delivered.map(m => m.from)).toEqual(['b'])
    expect(network.stats.cut).toBe(1)
    network.heal()
    network.partition(['a'], ['b', 'c'])
    expect(network.isCut('c', 'a') && network.isCut('a', 'c') && !network.isCut('b', 'c')).toBe(true)
  })
})
