/**
 * Views that stay wrong for good after a join storm (issue 16: at 30 and 50 agents started at once, a few
 * views held a live agent dead while every other view held it alive). In the agent, a member another's
 * push-pull names is introduced into a view at incarnation 0 (the claim gate and `NamedMembers`: only the
 * member itself may say more), and a joiner whose own announcement went out before this view existed is
 * never heard of at its real incarnation (about the wall clock in ms) until it changes its record. An
 * overloaded view that suspects it suspects it at 0, which the member took for a stale accusation and
 * ignored; and two such views that declared each other dead never spoke again: neither probes a member it
 * holds dead, push-pull picks live members only, and nobody else may vouch for a member (claims).
 *
 * The cores run behind the claim rules of the agent's gate (`vetMessage`).
 */
import { describe, expect, it } from 'vitest'
import { vetMessage } from '../../src/swim/claims.ts'
import type { PushPullEntry, SwimConfig } from '../../src/swim/types.ts'
import { localRecord, TestCluster } from './harness.ts'

/** Incarnations start at the start time in ms, as the agent's do. */
const T = 1_700_000_000_000
const WALL = T + 3_600_000

function vettedCluster(config: Partial<SwimConfig> = {}): TestCluster {
  const cluster = new TestCluster(config)
  cluster.vet = (from, to, message) => {
    const core = cluster.core(to)
    return vetMessage(message, from, {
      self: to,
      mayAccuse: () => true,
      incarnationOf: id => core.member(id)?.incarnation,
      wallNow: WALL,
    }).message
  }
  return cluster
}

/** What the agent's shell does when the registry names members a push-pull of `by` named: incarnation 0. */
function introduce(cluster: TestCluster, to: string, by: string, ids: string[]): void {
  const members: PushPullEntry[] = ids.map(id => ({ ...localRecord(id), incarnation: 0, status: 'alive' }))
  cluster.act(to, (core, now) => core.receive(by, { type: 'pushPull', reply: true, members }, now))
}

/**
 * a, b, c settled; p and q join in a storm: each knows the other only by introduction and hears nothing of
 * it, and both are too loaded for any probe to succeed (every ack and nack they get comes too late).
 */
function storm(): TestCluster {
  const cluster = vettedCluster()
  cluster.add('a', [], T)
  for (const id of ['b', 'c']) cluster.add(id, ['a'], T)
  cluster.run(3_000)
  const pair = new Set(['p', 'q'])
  cluster.drop = (from, to, message) =>
    (pair.has(from) && pair.has(to)) || (pair.has(to) && (message.type === 'ack' || message.type === 'nack'))
  cluster.add('p', ['a'], T + 3_000)
  cluster.add('q', ['a'], T + 3_000)
  cluster.run(500)
  introduce(cluster, 'p', 'a', ['b', 'c', 'q'])
  introduce(cluster, 'q', 'a', ['b', 'c', 'p'])
  cluster.run(60_000)
  return cluster
}

describe('a live member held dead in one view after a join storm', () => {
  it('is alive again in both views of a pair that declared each other dead', () => {
    const cluster = storm()
    expect(cluster.statusOf('p', 'q')).toBe('dead')
    expect(cluster.statusOf('q', 'p')).toBe('dead')
    for (const viewer of ['a', 'b', 'c']) {
      expect(cluster.statusOf(viewer, 'p')).toBe('alive')
      expect(cluster.statusOf(viewer, 'q')).toBe('alive')
    }
    cluster.drop = () => false
    cluster.run(120_000)
    expect(cluster.statusOf('p', 'q')).toBe('alive')
    expect(cluster.statusOf('q', 'p')).toBe('alive')
  })

  it('is never declared dead by a view that suspects it at incarnation 0 while it hears the suspicion', () => {
    // No push-pull within the run: p learns q's incarnation from q's answer to the suspicion, or never.
    const cluster = vettedCluster({ pushPullInterval: 600_000 })
    cluster.add('a', [], T)
    for (const id of ['b', 'c', 'q']) cluster.add(id, ['a'], T)
    cluster.run(3_000)
    // p joins after q announced itself: it knows q only by introduction, and is too loaded for its probes.
    cluster.drop = (_from, to, message) => to === 'p' && (message.type === 'ack' || message.type === 'nack')
    cluster.add('p', ['a'], T + 3_000)
    cluster.run(500)
    introduce(cluster, 'p', 'a', ['b', 'c', 'q'])
    cluster.run(60_000)
    expect(cluster.eventsAbout('q', 'suspect').some(seen => seen.observer === 'p')).toBe(true)
    expect(cluster.eventsAbout('q', 'dead')).toEqual([])
    expect(cluster.statusOf('p', 'q')).not.toBe('dead')
    // q told p its real incarnation (p goes on suspecting it there, being loaded, and q refutes that).
    expect(cluster.core('p').member('q')?.incarnation).toBeGreaterThanOrEqual(T)
  })

  it('a member that really died is pinged at doubling gaps, not every period', () => {
    const cluster = vettedCluster({ pushPullInterval: 600_000 })
    cluster.add('a', [], T)
    for (const id of ['b', 'c']) cluster.add(id, ['a'], T)
    cluster.run(3_000)
    cluster.stopped.add('c')
    cluster.run(60_000)
    expect(cluster.statusOf('a', 'c')).toBe('dead')
    const deadAt = cluster.eventsAbout('c', 'dead').find(seen => seen.observer === 'a')!.event.at
    cluster.run(600_000)
    const pings = cluster
      .sends('ping', 'a', 'c')
      .map(sent => sent.at)
      .filter(at => at > deadAt)
    // 5 s after the death (5 probe periods), then 10 s, 20 s... later: 7 pings in the first 10 minutes.
    expect(pings.length).toBe(7)
    for (let i = 2; i < pings.length; i++) {
      expect(pings[i] - pings[i - 1]).toBeGreaterThanOrEqual(2 * (pings[i - 1] - pings[i - 2]) - 1_000)
    }
  })
})
