/**
 * Real agents (three, in process, over the memory transport) on one `VirtualScheduler`: every clock read and
 * timer of the agent wing goes through it. The test moves virtual time along with real time, then stops it:
 * with virtual time still, the agents stand still too (no Raft tick, no Ready batch, no keep-alive, no
 * expiry), however long real time runs on; moved again, they carry on where they were. Entries carry the
 * virtual wall clock. (The network is libp2p's, on real time: this is not yet the deterministic simulation of
 * the whole agent, only the proof that time reaches it from one place.)
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { withScheduler } from '../../src/agent/internal-options.ts'
import type { Agent, ConsensusEvent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

const WALL_START = Date.UTC(2001, 0, 1)
const SESSION_TTL_MS = 1_000
const clock = new VirtualScheduler({ start: 0, wallStart: WALL_START })
const agents: Agent[] = []
let running = true
let pump: NodeJS.Timeout | undefined

/** Moves virtual time along with real time while `running`; a pause leaves a gap real time never fills. */
function startPump(): void {
  let last = performance.now()
  pump = setInterval(() => {
    const now = performance.now()
    if (running) clock.advance(now - last)
    last = now
  }, 2)
}

const realSleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await realSleep(10)
  }
}

beforeAll(async () => {
  startPump()
  for (let i = 0; i < 3; i++) {
    const options = { name: `v${i}`, transport: 'memory' as const, sessionTtlMs: SESSION_TTL_MS }
    agents.push(await createAgent(withScheduler(options, clock)))
  }
  await agents[0].join({})
  for (const agent of agents.slice(1)) await agent.join({ bootstrap: agents[0].multiaddrs() })
  await until(async () => (await agents[0].members()).filter(member => member.role === 'voter').length === 3)
})

afterAll(async () => {
  running = true
  await Promise.all(agents.map(agent => agent.stop()))
  clearInterval(pump)
})

describe('real agents on a virtual clock', () => {
  it('stamps entries with the virtual wall clock', async () => {
    const [, follower, other] = agents
    const controller = new AbortController()
    const seen = (async () => {
      for await (const event of other.consensus.watch('v/', { signal: controller.signal })) return event
      throw new Error('watch ended')
    })()
    const before = clock.wallNow()
    await follower.consensus.propose('v/1', 1)
    const event: ConsensusEvent = await seen
    controller.abort()
    expect(event.timestamp.getTime()).toBeGreaterThanOrEqual(before)
    expect(event.timestamp.getTime()).toBeLessThanOrEqual(clock.wallNow())
    expect(event.timestamp.getUTCFullYear()).toBe(2001)
  })

  it('stands still while virtual time does, and carries on when it moves again', async () => {
    const [leader, follower] = agents
    expect(leader.isLeader()).toBe(true)
    const { term } = { term: leader.election.term() }
    const frozenAt = clock.now()
    running = false
    // A write during the pause: its Ready batch is a scheduler call, so it does not commit.
    let committed = false
    const write = follower.consensus.propose('v/paused', 2).then(() => {
      committed = true
    })
    // Three session ttls of real time: on a real clock every session would have lapsed by now.
    await realSleep(3 * SESSION_TTL_MS)
    expect(committed).toBe(false)
    expect(clock.now()).toBe(frozenAt)
    running = true
    await write
    expect(committed).toBe(true)
    // Nothing expired and nobody campaigned: to the agents, no time passed.
    expect(leader.isLeader()).toBe(true)
    expect(leader.election.term()).toBe(term)
    const members = await leader.members()
    expect(members.map(member => member.status)).toEqual(['alive', 'alive', 'alive'])
    for (const agent of agents) expect(await agent.consensus.get('v/paused')).toBe(2)
  })
})
