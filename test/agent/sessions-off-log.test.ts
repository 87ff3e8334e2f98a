import { afterEach, describe, expect, it } from 'vitest'
import { internalsOf } from '../../src/http/source.ts'
import type { Agent, Lock } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import type { StateEvent } from '../../src/state/index.ts'

// In-process agents over loopback TCP: keep-alives travel the real admin protocol to the leader.
const TTL = 2_000
const agents: Agent[] = []

async function start(count: number): Promise<Agent[]> {
  const started: Agent[] = []
  for (let i = 0; i < count; i++) {
    const agent = await createAgent({ name: `s${i}`, transport: 'tcp', sessionTtlMs: TTL })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs(), voters: 3 })
  await until(async () => (await started[0].members()).filter(m => m.role === 'voter').length === count)
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

function commitIndex(agent: Agent): number {
  return internalsOf(agent)!.raftStatus()!.commit
}

/** Session id of each agent, as `reader`'s replica holds the sessions. */
function sessionsOf(reader: Agent): Map<string, string> {
  const snapshot = JSON.parse(new TextDecoder().decode(internalsOf(reader)!.state()!.snapshot())) as {
    sessions: { sessionId: string; agentId: string }[]
  }
  return new Map(snapshot.sessions.map(session => [session.agentId, session.sessionId]))
}

function sessionEnds(agent: Agent): StateEvent[] {
  const seen: StateEvent[] = []
  internalsOf(agent)!.onStateEvent(event => {
    if (event.type === 'sessionExpired' || event.type === 'sessionClosed') seen.push(event)
  })
  return seen
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

describe('sessions off the log (over TCP)', () => {
  it('keeps every session alive for several ttls with no log entry at all', async () => {
    const cluster = await start(3)
    const locks: Lock[] = []
    for (const [i, agent] of cluster.entries()) locks.push(await agent.locks.acquire(`idle/${i}`, 60_000))
    const ends = sessionEnds(cluster[1])
    // Settle: the acquisitions and any join bookkeeping are committed everywhere.
    await until(() =>
      cluster.every(agent => internalsOf(agent)!.raftStatus()!.applied === commitIndex(cluster[0])),
    )
    const before = sessionsOf(cluster[1])
    expect(before.size).toBe(3)
    const commits = cluster.map(commitIndex)
    // Three ttls: with keep-alives in the log, 3 agents x 4 per ttl x 3 ttls = 36 entries.
    await sleep(3 * TTL)
    expect(cluster.map(commitIndex)).toEqual(commits)
    expect(sessionsOf(cluster[1])).toEqual(before)
    expect(ends).toEqual([])
    for (const lock of locks) expect(lock.isHeld()).toBe(true)
  })

  it("a stopped agent's session expires within its ttl and its lock reaches the waiter", async () => {
    const cluster = await start(3)
    const leader = cluster.find(agent => agent.isLeader())!
    const [holder, waiter] = cluster.filter(agent => agent !== leader)
    const held = await holder.locks.acquire('job', 60_000)
    expect(held.isHeld()).toBe(true)
    const holderSession = sessionsOf(leader).get(holder.id)
    const ends = sessionEnds(leader)
    const waiting = waiter.locks.acquire('job', 60_000)
    await sleep(200)
    // Stop without leave: no close entry, the session lapses at the leader's lessor.
    const stoppedAt = Date.now()
    await holder.stop()
    const lock = await waiting
    const elapsed = Date.now() - stoppedAt
    expect(lock.isHeld()).toBe(true)
    expect(ends).toEqual([
      expect.objectContaining({ type: 'sessionExpired', sessionId: holderSession, agentId: holder.id }),
    ])
    // The last keep-alive reached the leader before the stop: expired within a ttl of it, plus the
    // housekeeping round and the commit.
    expect(elapsed).toBeLessThan(TTL + 1_000)
    await lock.release()
  })

  it('a leader kill expires no live session', async () => {
    const cluster = await start(3)
    const leader = cluster.find(agent => agent.isLeader())!
    const survivors = cluster.filter(agent => agent !== leader)
    const locks = await Promise.all(survivors.map((agent, i) => agent.locks.acquire(`live/${i}`, 60_000)))
    const sessions = sessionsOf(survivors[0])
    const ends = sessionEnds(survivors[0])
    await leader.stop()
    await until(() => survivors.some(agent => agent.isLeader()))
    // The new leader grants a full ttl from its takeover; the survivors' keep-alives reach it well within.
    await sleep(2 * TTL)
    for (const agent of survivors) expect(sessionsOf(survivors[0]).get(agent.id)).toBe(sessions.get(agent.id))
    // Only the stopped leader's session may end.
    for (const event of ends) expect(event).toMatchObject({ agentId: leader.id })
    await until(() => locks.every(lock => lock.isHeld()), 2 * TTL)
    // Writes go on under the new leader.
    await survivors[0].consensus.propose('after/kill', 1)
  })
})
