/**
 * The injected scheduler reaches every part of a real agent: three in-process agents (memory transport), each
 * on its own scheduler whose wall clock is set off from the machine's (+3 s on one). What the leader stamps
 * into entries, the events an agent makes and its membership view carry that agent's clock, exactly; and
 * writes, reads and locks stay correct across the skew and a leader change.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { withScheduler } from '../../src/agent/internal-options.ts'
import type { Agent, ConsensusEvent, LeaderEvent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { SkewedScheduler } from '../../src/time/skewed-scheduler.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

const OFFSETS = [0, 3_000, -1_500]
const agents: Agent[] = []

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

beforeAll(async () => {
  for (const [i, wallOffsetMs] of OFFSETS.entries()) {
    const scheduler = new SkewedScheduler(systemScheduler, { wallOffsetMs })
    agents.push(
      await createAgent(withScheduler({ name: `skew${i}`, transport: 'memory' as const }, scheduler)),
    )
  }
  await agents[0].join({})
  for (const agent of agents.slice(1)) await agent.join({ bootstrap: agents[0].multiaddrs() })
  await until(async () => (await agents[0].members()).filter(member => member.role === 'voter').length === 3)
})

afterAll(async () => {
  await Promise.all(agents.map(agent => agent.stop()))
})

/** Writes `key` through `writer` and returns the event `watcher` saw, with the machine's clock around it. */
async function stamped(
  writer: Agent,
  watcher: Agent,
  key: string,
): Promise<{ event: ConsensusEvent; before: number; after: number }> {
  const controller = new AbortController()
  const seen = (async () => {
    for await (const event of watcher.consensus.watch(key, { signal: controller.signal })) {
      if (event.key === key) return event
    }
    throw new Error('watch ended')
  })()
  const before = Date.now()
  await writer.consensus.propose(key, key)
  const event = await seen
  const after = Date.now()
  controller.abort()
  return { event, before, after }
}

describe('agents on skewed clocks (the scheduler plumbing)', () => {
  it("stamps entries with the leader's own wall clock, and writes and reads correctly through every agent", async () => {
    const [a0, a1, a2] = agents
    expect(a0.isLeader()).toBe(true)
    // a0 (on the machine's clock) leads: the entry carries its time, whoever wrote it.
    const first = await stamped(a2, a1, 'skew/1')
    expect(first.event.timestamp.getTime()).toBeGreaterThanOrEqual(first.before)
    expect(first.event.timestamp.getTime()).toBeLessThanOrEqual(first.after)

    // a1 (3 s ahead) takes over: its clock now stamps the entries.
    const watched: LeaderEvent[] = []
    const controller = new AbortController()
    const watching = (async () => {
      for await (const event of a1.election.watch({ signal: controller.signal })) watched.push(event)
    })()
    await a1.election.campaign()
    expect(a1.isLeader()).toBe(true)
    const second = await stamped(a0, a2, 'skew/2')
    expect(second.event.timestamp.getTime()).toBeGreaterThanOrEqual(second.before + 3_000)
    expect(second.event.timestamp.getTime()).toBeLessThanOrEqual(second.after + 3_000)
    // a1's own events carry a1's clock.
    await until(() => watched.some(event => event.leaderId === a1.id))
    const elected = watched.find(event => event.leaderId === a1.id)!
    expect(elected.timestamp.getTime() - Date.now()).toBeGreaterThan(2_000)
    controller.abort()
    await watching

    for (const agent of agents) {
      expect(await agent.consensus.get('skew/1')).toBe('skew/1')
      expect(await agent.consensus.get('skew/2')).toBe('skew/2')
    }
  })

  it('gives each agent its own clock in its membership view', async () => {
    for (const [i, agent] of agents.entries()) {
      const before = Date.now()
      const self = (await agent.members()).find(member => member.id === agent.id)!
      const after = Date.now()
      // Its own lastSeen is "now" on its membership clock: the scheduler's, set off by its wall offset.
      expect(self.lastSeen.getTime()).toBeGreaterThanOrEqual(before + OFFSETS[i] - 50)
      expect(self.lastSeen.getTime()).toBeLessThanOrEqual(after + OFFSETS[i] + 50)
    }
  })

  it('keeps a lock exclusive across the skewed agents and a leader on a clock ahead', async () => {
    const [a0, a1, a2] = agents
    expect(a1.isLeader()).toBe(true)
    const held = await a2.locks.acquire('skew/lock', 3_000)
    expect(held.isHeld()).toBe(true)
    for (const other of [a0, a1]) {
      const attempt = await other.locks.tryAcquire('skew/lock', 3_000)
      expect(attempt.acquired).toBe(false)
    }
    expect(held.isHeld()).toBe(true)
    await held.release()
    const next = await a0.locks.tryAcquire('skew/lock', 3_000)
    expect(next.acquired).toBe(true)
    expect(next.lock!.fencingToken).toBeGreaterThan(held.fencingToken)
    await next.lock!.release()
  })
})
