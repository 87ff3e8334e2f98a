/**
 * Regressions for bugs the deterministic simulator (scripts/sim) found in the Raft core. Each test replays the
 * essence of a failing seed by hand; the seed is named so the full run can be replayed too.
 */

import { describe, expect, test } from 'vitest'
import { Cluster } from './harness.ts'

describe('found by the simulator', () => {
  test('a leader cut off right after appending its own removal can still lead until the removal commits (seed 11230)', () => {
    // {a, b}; a appends "remove a" (config {b}) but cannot replicate it, and steps down (check-quorum).
    // Its log is now the most up to date, so b cannot win a's vote; a, not in its own latest config,
    // used to never campaign: no leader ever again. Until its removal commits, a must still campaign
    // (dissertation §4.2.2: a leader that steps down early "might still time out and become leader again").
    const cluster = Cluster.create(['a', 'b'])
    cluster.elect('a')
    cluster.propose('x')
    const cut = cluster.isolate('a')
    cluster.raft('a').proposeConfigChange({ type: 'removeVoter', node: 'a' })
    expect(cluster.raft('a').status().config.voters).toEqual(['b'])
    cluster.tickAll(30)
    expect(cluster.raft('a').status().role).not.toBe('leader')
    expect(cluster.leaders()).toEqual([])
    cluster.removeDropRule(cut)
    for (let i = 0; i < 200 && cluster.raft('b').status().role !== 'leader'; i++) cluster.tickAll()
    // a came back as leader of {b} long enough to commit its removal, then handed over to b.
    expect(cluster.leader()).toBe('b')
    expect(cluster.raft('b').status().config).toEqual({ voters: ['b'], nonVoters: [] })
    cluster.propose('y', 'b')
    expect(cluster.node('b').appliedData).toEqual(['x', 'y'])
    // Once its removal is committed, a stays quiet.
    const term = cluster.raft('a').status().term
    cluster.tickAll(60)
    expect(cluster.raft('a').status()).toMatchObject({ role: 'follower', term })
  })
})
