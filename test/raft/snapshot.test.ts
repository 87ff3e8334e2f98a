import { describe, expect, test } from 'vitest'
import { InvalidRequestError } from '../../src/raft/errors.ts'
import { RaftNode } from '../../src/raft/raft.ts'
import type { Config, SnapshotRequest, SnapshotResponse } from '../../src/raft/types.ts'
import { bytes, Cluster, emptyState, seededRandom, stateWithLog } from './harness.ts'

const chunksTo = (cluster: Cluster, id: string) =>
  cluster.delivered.filter((m): m is SnapshotRequest => m.type === 'snapshot' && m.to === id)

describe('snapshots and InstallSnapshot (§7)', () => {
  test('compact discards the log up to the index; it cannot go past applied', () => {
    const cluster = Cluster.create(['a'])
    cluster.elect('a')
    for (let i = 0; i < 5; i++) cluster.propose(`v${i}`)
    const node = cluster.raft('a')
    expect(() => node.compact(10, new Uint8Array())).toThrow(InvalidRequestError)
    const snapshot = node.compact(4, bytes('state'))
    expect(snapshot?.meta).toEqual({ index: 4, term: 1, config: { voters: ['a'], nonVoters: [] } })
    expect(node.compact(3, bytes('older'))).toBeUndefined()
    cluster.propose('after')
    expect(node.status()).toMatchObject({ commit: 7, applied: 7, lastIndex: 7 })
  })

  test('a far-behind follower receives the snapshot in several chunks, then replicates normally', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { snapshotChunkBytes: 64 })
    cluster.elect('a')
    const rule = cluster.isolate('c')
    for (let i = 0; i < 30; i++) cluster.propose(`value-${i}`)
    cluster.compact('a')
    cluster.compact('b')
    cluster.removeDropRule(rule)
    cluster.tickAll(2)
    const chunks = chunksTo(cluster, 'c')
    const size = cluster.node('a').storage.snapshot?.data.length ?? 0
    expect(chunks.length).toBe(Math.ceil(size / 64))
    expect(chunks.length).toBeGreaterThan(3)
    expect(chunks.map(c => c.offset)).toEqual(chunks.map((_, i) => i * 64))
    expect(chunks.filter(c => c.done)).toHaveLength(1)
    const answers = cluster.delivered.filter((m): m is SnapshotResponse => m.type === 'snapshotResponse')
    expect(answers.map(m => m.offset)).toEqual(chunks.map(c => Math.min(c.offset + 64, size)))
    expect(cluster.node('c').storage.snapshot?.meta.index).toBe(31)
    expect(cluster.raft('a').status().progress?.c).toMatchObject({ state: 'replicate', match: 31 })
    cluster.delivered = []
    cluster.propose('after')
    expect(cluster.delivered.some(m => m.type === 'append' && m.to === 'c' && m.entries.length === 1)).toBe(
      true,
    )
    const expected = [...Array.from({ length: 30 }, (_, i) => `value-${i}`), 'after']
    expect(cluster.node('c').appliedData).toEqual(expected)
  })

  test('a new non-voter joining after compaction is caught up by snapshot', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { snapshotChunkBytes: 100 })
    cluster.elect('a')
    for (let i = 0; i < 10; i++) cluster.propose(`v${i}`)
    cluster.raft('a').proposeConfigChange({ type: 'addNonVoter', node: 'd' })
    cluster.deliverAll()
    cluster.compact('a')
    cluster.add('d', emptyState(), { snapshotChunkBytes: 100 })
    cluster.tickAll(3)
    expect(chunksTo(cluster, 'd').length).toBeGreaterThan(0)
    expect(cluster.node('d').appliedData).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`))
    expect(cluster.raft('d').status().config.nonVoters).toEqual(['d'])
  })

  test('a lost chunk is sent again', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { snapshotChunkBytes: 32 })
    cluster.elect('a')
    const rule = cluster.isolate('c')
    for (let i = 0; i < 10; i++) cluster.propose(`value-number-${i}`)
    cluster.compact('a')
    cluster.removeDropRule(rule)
    let dropped = 0
    cluster.addDropRule(m => m.type === 'snapshot' && m.offset === 64 && dropped++ === 0)
    cluster.tickAll(10)
    expect(dropped).toBeGreaterThan(1)
    expect(cluster.node('c').appliedData).toEqual(Array.from({ length: 10 }, (_, i) => `value-number-${i}`))
  })

  test('a transfer under way finishes with its snapshot when the leader compacts again meanwhile', () => {
    // Starting over at every compaction never ends when a transfer takes longer than the log takes to grow
    // by the snapshot interval (the simulator's 5-agent seed 100: a follower stuck 90 entries behind).
    const cluster = Cluster.create(['a', 'b', 'c'], { snapshotChunkBytes: 32 })
    cluster.elect('a')
    const rule = cluster.isolate('c')
    for (let i = 0; i < 10; i++) cluster.propose(`value-number-${i}`)
    cluster.compact('a')
    const first = cluster.node('a').storage.snapshot!.meta.index
    cluster.removeDropRule(rule)
    // Two chunks reach c; the rest of this round is cut.
    let passed = 0
    const cut = cluster.addDropRule(m => m.type === 'snapshot' && ++passed > 2)
    cluster.tickAll(1)
    cluster.removeDropRule(cut)
    cluster.addDropRule(m => m.to === 'c' && m.type === 'append')
    for (let i = 10; i < 15; i++) cluster.propose(`value-number-${i}`)
    cluster.compact('a')
    expect(cluster.node('a').storage.snapshot!.meta.index).toBeGreaterThan(first)
    cluster.delivered = []
    cluster.tickAll(6)
    const resumed = chunksTo(cluster, 'c').filter(m => m.meta.index === first)
    expect(resumed.length).toBeGreaterThan(0)
    expect(resumed[0].offset).toBeGreaterThan(0)
    expect(resumed.some(m => m.done)).toBe(true)
    cluster.heal()
    cluster.tickAll(6)
    expect(cluster.node('c').appliedData).toEqual(Array.from({ length: 15 }, (_, i) => `value-number-${i}`))
  })

  test('a new leader sends the snapshot again from offset 0', () => {
    const cluster = Cluster.create(['a', 'b', 'c'], { snapshotChunkBytes: 32 })
    cluster.elect('a')
    const rule = cluster.isolate('c')
    for (let i = 0; i < 10; i++) cluster.propose(`value-number-${i}`)
    cluster.compact('a')
    cluster.compact('b')
    cluster.removeDropRule(rule)
    // Let two chunks from a through, then a crashes.
    let passed = 0
    const cut = cluster.addDropRule(m => m.type === 'snapshot' && ++passed > 2)
    cluster.tickAll(1)
    cluster.crash('a')
    cluster.removeDropRule(cut)
    cluster.delivered = []
    for (let i = 0; i < 100 && cluster.leaders().length === 0; i++) cluster.tickAll()
    cluster.tickAll(3)
    expect(cluster.leader()).toBe('b')
    const fromB = chunksTo(cluster, 'c').filter(m => m.from === 'b')
    expect(fromB[0].offset).toBe(0)
    expect(cluster.node('c').appliedData).toEqual(Array.from({ length: 10 }, (_, i) => `value-number-${i}`))
  })

  test('a follower with the entry at the snapshot index keeps the suffix after it; otherwise its log is reset', () => {
    const config: Config = { voters: ['l', 'f'], nonVoters: [] }
    const make = () =>
      new RaftNode({ id: 'f', state: stateWithLog(config, [1, 1, 1, 1, 1], 1), random: seededRandom(1) })
    const chunk = (term: number): SnapshotRequest => ({
      type: 'snapshot',
      from: 'l',
      to: 'f',
      term: 2,
      meta: { index: 3, term, config },
      offset: 0,
      data: bytes('["s"]'),
      done: true,
    })
    const keeps = make()
    keeps.step(chunk(1))
    const kept = keeps.ready()
    expect(kept.snapshot?.meta.index).toBe(3)
    expect(kept.entries.map(e => e.index)).toEqual([4, 5])
    expect(kept.messages).toContainEqual({
      type: 'snapshotResponse',
      from: 'f',
      to: 'l',
      term: 2,
      index: 3,
      offset: 5,
      done: true,
    })
    expect(keeps.status()).toMatchObject({ commit: 3, lastIndex: 5 })

    const resets = make()
    resets.step(chunk(2)) // same index, other term: our entry 3 is not the snapshot's
    expect(resets.ready().entries).toEqual([])
    expect(resets.status()).toMatchObject({ commit: 3, lastIndex: 3 })
  })

  test('a restarted node honours the persisted snapshot and the applied index', () => {
    const cluster = Cluster.create(['a', 'b', 'c'])
    cluster.elect('a')
    for (let i = 0; i < 5; i++) cluster.propose(`v${i}`)
    cluster.compact('b')
    cluster.crash('b')
    const node = cluster.restart('b')
    expect(node.raft.status()).toMatchObject({ applied: 6, commit: 6, lastIndex: 6 })
    cluster.propose('after')
    expect(cluster.node('b').appliedData).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'after'])
  })
})
