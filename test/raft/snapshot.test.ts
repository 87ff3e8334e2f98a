import { describe, expect, test } from 'vitest'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import { InvalidRequestError } from '../../src/raft/errors.ts'
import { RaftNode } from '../../src/raft/raft.ts'
import type { Config, Message, SnapshotRequest, SnapshotResponse } from '../../src/raft/types.ts'
import { bytes, Cluster, emptyState, seededRandom, stateWithLog } from './harness.ts'

const chunksTo = (cluster: Cluster, id: string) =>
  cluster.delivered.filter((m): m is SnapshotRequest => m.type === 'snapshot' && m.to === id)

/**
 * A 3-voter cluster whose voter c missed `entries` entries of `size` bytes that a and b then compacted away:
 * c can only catch up by snapshot, in chunks of `chunkBytes`.
 */
function behindBySnapshot(entries: number, size: number, options: Partial<RaftCoreOptions>): Cluster {
  const cluster = Cluster.create(['a', 'b', 'c'], options)
  cluster.elect('a')
  const rule = cluster.isolate('c')
  for (let i = 0; i < entries; i++) cluster.propose(`${i}`.padEnd(size, '.'))
  cluster.compact('a')
  cluster.compact('b')
  cluster.removeDropRule(rule)
  return cluster
}

/**
 * Drives the cluster in steps of one virtual ms (a tick every 10 ms, every message `latencyMs` one way, as
 * the simulator's calm links) until `id` has installed a snapshot; returns the ticks that took.
 */
function ticksToInstall(cluster: Cluster, id: string, latencyMs = 3, maxTicks = 1000): number {
  let inFlight: { at: number; message: Message }[] = []
  for (let ms = 0; ms < maxTicks * 10; ms++) {
    if (ms % 10 === 0) for (const node of cluster.nodes.values()) node.raft.tick()
    const due = inFlight.filter(m => m.at <= ms)
    inFlight = inFlight.filter(m => m.at > ms)
    cluster.deliver(due.map(m => m.message))
    for (const message of cluster.collect()) inFlight.push({ at: ms + latencyMs, message })
    if ((cluster.node(id).storage.snapshot?.meta.index ?? 0) > 1) return ms / 10
  }
  throw new Error(`${id} installed no snapshot in ${maxTicks} ticks`)
}

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

  test('the leader keeps a window of chunks in flight, not one chunk a round trip', () => {
    // About 10 KB in 64-byte chunks: one chunk a round trip made the simulator's lagging voters (whose
    // acknowledgement a commit needed) 100+ ticks late.
    const cluster = behindBySnapshot(100, 100, { snapshotChunkBytes: 64, maxInflightSnapshotChunks: 16 })
    const size = cluster.node('a').storage.snapshot!.data.length
    expect(size).toBeGreaterThan(10_000)
    // Round by round: every node handles its Ready, then every message sent goes one hop.
    let hops = 0
    let mostAhead = 0
    while ((cluster.node('c').storage.snapshot?.meta.index ?? 0) <= 1) {
      if (hops % 20 === 0) cluster.tick('a')
      const messages = cluster.collect()
      const chunks = messages.filter((m): m is SnapshotRequest => m.type === 'snapshot')
      const acked = Math.max(
        0,
        ...cluster.delivered
          .filter((m): m is SnapshotResponse => m.type === 'snapshotResponse')
          .map(m => m.offset),
      )
      for (const chunk of chunks) mostAhead = Math.max(mostAhead, Math.ceil((chunk.offset + 64 - acked) / 64))
      cluster.deliver(messages)
      hops++
      expect(hops).toBeLessThan(200)
    }
    const chunks = Math.ceil(size / 64)
    // The probe and the rejection that shows c needs the snapshot, then a round trip per window of 16.
    expect(hops).toBeLessThanOrEqual(4 + 2 * Math.ceil(chunks / 16))
    expect(mostAhead).toBe(16)
    expect(chunksTo(cluster, 'c')).toHaveLength(chunks) // none sent twice
    expect(cluster.node('c').appliedData).toEqual(cluster.node('a').appliedData)
  })

  test('a 10 KB snapshot in 64-byte chunks reaches a lagging voter within a few ticks', () => {
    const cluster = behindBySnapshot(100, 100, { snapshotChunkBytes: 64 })
    // With 3 ms each way: one chunk a round trip took 97.5 ticks; the default window of 16 chunks takes 7.5.
    expect(ticksToInstall(cluster, 'c')).toBeLessThanOrEqual(8)
    cluster.tickAll(2)
    expect(cluster.raft('a').status().progress?.c).toMatchObject({ state: 'replicate', match: 101 })
  })

  test('chunks that overtake an earlier one are kept until it arrives: none is sent again', () => {
    const cluster = behindBySnapshot(10, 20, { snapshotChunkBytes: 32, maxInflightSnapshotChunks: 8 })
    // Every chunk is held until the next Ready, and those of one Ready arrive in reverse order.
    let held: Message[] = []
    for (let round = 0; round < 40 && (cluster.node('c').storage.snapshot?.meta.index ?? 0) <= 1; round++) {
      if (round % 4 === 0) cluster.tick('a')
      const messages = cluster.collect()
      cluster.deliver(messages.filter(m => m.type !== 'snapshot'))
      cluster.deliver(held.reverse())
      held = messages.filter(m => m.type === 'snapshot')
    }
    cluster.deliver(held)
    cluster.deliverAll()
    const chunks = chunksTo(cluster, 'c')
    expect(chunks.length).toBeGreaterThan(4)
    expect(new Set(chunks.map(c => c.offset)).size).toBe(chunks.length)
    expect(cluster.node('c').appliedData).toEqual(cluster.node('a').appliedData)
  })

  test('a chunk lost inside the window is sent again from the first one unacknowledged', () => {
    const cluster = behindBySnapshot(10, 20, { snapshotChunkBytes: 32, maxInflightSnapshotChunks: 4 })
    const sent: number[] = []
    cluster.addDropRule(m => {
      if (m.type !== 'snapshot') return false
      sent.push(m.offset)
      return m.offset === 64 && sent.filter(offset => offset === 64).length === 1
    })
    cluster.tickAll(10)
    // The window 0..127 went out, then up to 160 as c acknowledged 64 bytes, and the chunks after the lost one
    // waited at c; two heartbeat intervals later the leader sent from 64 again.
    const again = sent.lastIndexOf(64)
    expect(again).toBeGreaterThan(sent.indexOf(64))
    expect(sent.slice(0, again)).toEqual([0, 32, 64, 96, 128, 160])
    expect(cluster.node('c').appliedData).toEqual(cluster.node('a').appliedData)
  })

  test('a follower that restarts mid-transfer is sent the snapshot again from the start', () => {
    const cluster = behindBySnapshot(20, 20, { snapshotChunkBytes: 32, maxInflightSnapshotChunks: 4 })
    // c takes the first window, then restarts (losing what it assembled) while the next window is out.
    let passed = 0
    const cut = cluster.addDropRule(m => m.type === 'snapshot' && ++passed > 4)
    cluster.tickAll(1)
    cluster.crash('c')
    cluster.restart('c')
    cluster.removeDropRule(cut)
    cluster.delivered = []
    cluster.tickAll(6)
    const offsets = chunksTo(cluster, 'c').map(c => c.offset)
    expect(offsets).toContain(0)
    expect(cluster.node('c').appliedData).toEqual(cluster.node('a').appliedData)
  })

  test('the window is bounded: at most maxInflightSnapshotChunks chunks ahead of the acknowledgement', () => {
    const cluster = behindBySnapshot(20, 20, { snapshotChunkBytes: 32, maxInflightSnapshotChunks: 3 })
    // Nothing reaches c's answers: the leader sends its window and waits.
    cluster.addDropRule(m => m.type === 'snapshotResponse')
    cluster.tickAll(1)
    expect(chunksTo(cluster, 'c').map(c => c.offset)).toEqual([0, 32, 64])
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
