/**
 * Lock leases under clock skew on a real in-process cluster (issue 15, the `lease-inline-expiry` hole).
 * Entries carry the proposing leader's wall clock; after a failover to a leader whose clock is 5 s ahead,
 * every new entry is stamped past a 4 s lease granted a moment ago. The lease must still hold until the new
 * leader has timed it out on its own monotonic clock: another agent's `tryAcquire` is refused while the
 * holder's `isHeld()` is true. Run both ways: with the bug switch the acquire's own timestamp expires the
 * lease inline, and the check fires.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { withScheduler, withShellBugs } from '../../src/agent/internal-options.ts'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { SkewedScheduler } from '../../src/time/skewed-scheduler.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

const OFFSETS = [0, 5_000, 0]
let agents: Agent[] = []

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function cluster(bug: boolean): Promise<Agent[]> {
  for (const [i, wallOffsetMs] of OFFSETS.entries()) {
    const scheduler = new SkewedScheduler(systemScheduler, { wallOffsetMs })
    // Sessions long enough that the session side (another part of the fix) plays no part here.
    let options = withScheduler(
      { name: `lease${i}`, transport: 'memory' as const, sessionTtlMs: 20_000 },
      scheduler,
    )
    if (bug) options = withShellBugs(options, ['lease-inline-expiry'])
    agents.push(await createAgent(options))
  }
  await agents[0].join({})
  for (const agent of agents.slice(1)) await agent.join({ bootstrap: agents[0].multiaddrs() })
  await until(async () => (await agents[0].members()).filter(member => member.role === 'voter').length === 3)
  return agents
}

afterEach(async () => {
  await Promise.all(agents.map(agent => agent.stop()))
  agents = []
})

describe('lock leases across a failover to a leader whose clock is ahead', () => {
  for (const bug of [false, true]) {
    const label = bug ? ' (bug switch lease-inline-expiry: the check fires)' : ''
    it(`refuses the lock to another agent while its holder's isHeld() is true${label}`, async () => {
      const [a0, ahead, holder] = await cluster(bug)
      await until(() => a0.isLeader())
      const held = await holder.locks.acquire('skew/lease', 4_000)
      // The leadership moves to the agent 5 s ahead: its entries are stamped past the lease at once.
      await ahead.election.campaign()
      expect(ahead.isLeader()).toBe(true)
      const attempt = await a0.locks.tryAcquire('skew/lease', 4_000)
      const heldThen = held.isHeld()
      expect(heldThen).toBe(true) // the holder trusts its lease for 3.6 s; this all took far less
      // Never two holders: the other agent got the lock while the holder still trusted its lease.
      const doubleHeld = attempt.acquired && heldThen
      expect(doubleHeld).toBe(bug)
      if (bug) return
      // The lease ends when the holder lets it go, or when the new leader timed it out on its own clock.
      await held.release()
      const next = await a0.locks.tryAcquire('skew/lease', 4_000)
      expect(next.acquired).toBe(true)
      expect(next.lock!.fencingToken).toBeGreaterThan(held.fencingToken)
      await next.lock!.release()
    })
  }

  it("expires an abandoned lease only after the new leader's full ttl on its monotonic clock", async () => {
    const [a0, ahead, holder] = await cluster(false)
    await until(() => a0.isLeader())
    const held = await holder.locks.acquire('skew/abandoned', 3_000)
    await ahead.election.campaign()
    const takeover = Date.now()
    // The holder neither extends nor releases (its process is wedged, say): the new leader expires it, but
    // not before a full ttl has passed on its own clock since it took over.
    const acquired = await a0.locks.acquire('skew/abandoned', 3_000)
    expect(Date.now() - takeover).toBeGreaterThanOrEqual(3_000)
    expect(held.isHeld()).toBe(false)
    expect(acquired.fencingToken).toBeGreaterThan(held.fencingToken)
    await acquired.release()
  })
})
