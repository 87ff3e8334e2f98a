import { afterEach, describe, expect, it } from 'vitest'
import type { Agent, LeaderEvent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

// In-process agents on real loopback TCP sockets.
const agents: Agent[] = []

async function start(count: number, voters = 3): Promise<Agent[]> {
  const started: Agent[] = []
  for (let i = 0; i < count; i++) {
    const agent = await createAgent({ name: `e${i}`, sessionTtlMs: 1500 })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({ voters })
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs(), voters })
  await until(
    async () =>
      (await started[0].members()).filter(m => m.role === 'voter').length === Math.min(voters, count),
  )
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

function leaderOf(group: Agent[]): Agent | undefined {
  return group.find(agent => agent.isLeader())
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

describe('leader election', () => {
  it('elects one leader among 5 voters and a new one when the leader stops', async () => {
    const group = await start(5, 5)
    await until(() => leaderOf(group) !== undefined)
    expect(group.filter(agent => agent.isLeader())).toHaveLength(1)
    const old = leaderOf(group)!
    const term = old.election.term()
    await old.stop()
    const rest = group.filter(agent => agent !== old)
    await until(() => leaderOf(rest) !== undefined)
    const fresh = leaderOf(rest)!
    expect(fresh.election.term()).toBeGreaterThan(term)
    await rest[0].consensus.propose('after-failover', 1)
    for (const agent of rest) expect(await agent.consensus.get('after-failover')).toBe(1)
  })

  it('campaign() transfers the Raft leadership; resign() hands it on; watch() reports both', async () => {
    const group = await start(3)
    const follower = group.find(agent => !agent.isLeader())!
    const events: LeaderEvent[] = []
    const controller = new AbortController()
    const watching = (async () => {
      for await (const event of follower.election.watch({ signal: controller.signal })) events.push(event)
    })()
    await follower.election.campaign()
    expect(follower.isLeader()).toBe(true)
    await follower.election.resign()
    expect(follower.isLeader()).toBe(false)
    await until(() => leaderOf(group) !== undefined)
    controller.abort()
    await watching
    expect(events[0]).toMatchObject({ type: 'elected' })
    expect(events.some(event => event.leaderId === follower.id)).toBe(true)
    const terms = events.map(event => event.term)
    for (let i = 1; i < terms.length; i++) expect(terms[i]).toBeGreaterThanOrEqual(terms[i - 1])
  })

  it('refuses campaign() from a non-voter with NotVoterError', async () => {
    const group = await start(4, 3)
    const members = await group[0].members()
    const nonVoter = group.find(agent => members.find(m => m.id === agent.id)?.role === 'nonvoter')!
    await expect(nonVoter.election.campaign()).rejects.toMatchObject({ name: 'NotVoterError' })
  })

  it('named elections: FIFO candidacy, increasing terms, and the next candidate takes over on resign', async () => {
    const [a, b, c] = await start(3)
    const election = (agent: Agent) => agent.elections('scheduler')
    await election(a).campaign()
    expect(election(c).term()).toBeGreaterThanOrEqual(0)
    const termA = election(a).term()
    let bLeads = false
    const bCampaign = election(b)
      .campaign()
      .then(() => {
        bLeads = true
      })
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(bLeads).toBe(false)
    await election(a).resign()
    await bCampaign
    // term() is a local read: the winner has applied its own election; others may lag a heartbeat.
    expect(election(b).term()).toBeGreaterThan(termA)
  })

  it('a named candidacy ends with its agent: the waiting candidate is elected after the session expires', async () => {
    const [a, b, c] = await start(3)
    const leaderAgent = leaderOf([a, b, c])!
    const [holder, waiter] = [a, b, c].filter(agent => agent !== leaderAgent)
    await holder.elections('singleton').campaign()
    const waiting = waiter.elections('singleton').campaign()
    await holder.stop()
    await waiting
    const events = waiter.elections('singleton').watch({ signal: AbortSignal.timeout(100) })
    for await (const event of events) {
      expect(event).toMatchObject({ type: 'elected', leaderId: waiter.id })
      break
    }
  })

  it('leave() removes the agent from the configuration', async () => {
    const group = await start(3)
    const leaving = leaderOf(group)!
    await leaving.leave()
    const rest = group.filter(agent => agent !== leaving)
    await until(async () => !(await rest[0].members()).some(member => member.id === leaving.id))
    await rest[1].consensus.propose('after-leave', true)
    expect(await rest[0].consensus.get('after-leave')).toBe(true)
  })
})
