/**
 * A member declared dead while it was not running (a stall: the death was gossiped while it could not hear)
 * must not stay dead in the views once it runs again: the first view that hears from it tells it.
 */
import { describe, expect, it } from 'vitest'
import { TestCluster } from './harness.ts'

// Push-pull every 10 minutes: the repair below must not wait for a random full sync.
const CONFIG = { pushPullInterval: 600_000 }

function stalledAndDeclaredDead(): TestCluster {
  const cluster = new TestCluster(CONFIG)
  cluster.add('a')
  for (const id of ['b', 'c', 'd', 'e']) cluster.add(id, ['a'])
  cluster.run(3_000)
  for (const id of ['a', 'b', 'c', 'd', 'e']) {
    for (const other of ['a', 'b', 'c', 'd', 'e']) expect(cluster.statusOf(id, other)).toBe('alive')
  }
  // `e` stops: it neither ticks nor hears anything, and what is sent to it meanwhile is lost.
  cluster.stopped.add('e')
  cluster.run(40_000)
  for (const id of ['a', 'b', 'c', 'd']) expect(cluster.statusOf(id, 'e')).toBe('dead')
  return cluster
}

describe('a member declared dead while it stalled', () => {
  it('is alive again in every view within a few probe periods of running again', () => {
    const cluster = stalledAndDeclaredDead()
    const incarnation = cluster.core('e').member('e')!.incarnation
    cluster.stopped.delete('e')
    cluster.run(5_000)
    for (const id of ['a', 'b', 'c', 'd']) expect(cluster.statusOf(id, 'e')).toBe('alive')
    // It refuted: its incarnation rose past the one it was declared dead at.
    expect(cluster.core('a').member('e')!.incarnation).toBeGreaterThan(incarnation)
  })

  it('is synced with at most once per five probe periods by each view that holds it dead', () => {
    const cluster = stalledAndDeclaredDead()
    // Its messages reach the others, nothing reaches it: it cannot refute, and keeps probing.
    cluster.drop = (_from, to) => to === 'e'
    const before = cluster.sends('pushPull').length
    cluster.stopped.delete('e')
    cluster.run(10_000)
    const syncs = cluster
      .sends('pushPull')
      .slice(before)
      .filter(sent => sent.to === 'e')
    for (const id of ['a', 'b', 'c', 'd']) {
      const times = syncs.filter(sent => sent.from === id).map(sent => sent.at)
      expect(times.length).toBeGreaterThan(0)
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(5_000)
    }
  })

  it('is synced with on its probes only, not on its gossip, which reaches every agent at once', () => {
    const cluster = stalledAndDeclaredDead()
    const before = cluster.sends('pushPull', 'a', 'e').length
    const incarnation = cluster.core('a').member('e')!.incarnation
    const own = { ...cluster.core('e').member('e')!, incarnation }
    const { status: _, lastSeen: __, statusChangedAt: ___, ...record } = own
    cluster.act('a', (core, now) =>
      core.receive('e', { type: 'gossip', updates: [{ type: 'alive', member: record }] }, now),
    )
    expect(cluster.sends('pushPull', 'a', 'e')).toHaveLength(before)
    cluster.act('a', (core, now) => core.receive('e', { type: 'ping', seq: 1, target: 'a' }, now))
    expect(cluster.sends('pushPull', 'a', 'e')).toHaveLength(before + 1)
  })
})
