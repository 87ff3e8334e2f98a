import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HostMemberEvent, HostStatus } from '../../scripts/agent-host.ts'
import { AgentHost } from '../../scripts/lib/hosts.ts'
import { detectionBound } from '../../src/agent/cluster/swim-wire.ts'
import { resolveMembership } from '../../src/agent/options.ts'
import type { AgentOptions } from '../../src/index.ts'

// Real agent processes on loopback TCP, killed and paused with real signals.
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-membership-'))
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

interface HostMember {
  id: string
  role: 'voter' | 'nonvoter'
  status: string
  incarnation?: number
}

interface HostHealth {
  healthy: boolean
  memberCount: number
  healthyCount: number
  members: { id: string; healthy: boolean; lastSeen: number; load: number }[]
}

async function spawnCluster(prefix: string, size: number, options: AgentOptions): Promise<AgentHost[]> {
  const hosts = await Promise.all(
    Array.from({ length: size }, (_, i) =>
      AgentHost.spawn({ name: `${prefix}${i}`, dataDir: join(dataRoot, `${prefix}${i}`), ...options }),
    ),
  )
  await hosts[0].request('join', { voters: 3 })
  for (const host of hosts.slice(1)) await host.request('join', { bootstrap: hosts[0].addrs, voters: 3 })
  await until(async () => ((await hosts[0].request('status', {})) as HostStatus).voters === 3)
  // Every view holds every member alive.
  await until(async () => {
    for (const host of hosts) {
      const members = (await host.request('members', {})) as HostMember[]
      if (members.length !== size || members.some(member => member.status !== 'alive')) return false
    }
    return true
  })
  return hosts
}

async function until(check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

async function events(host: AgentHost, about: string): Promise<HostMemberEvent[]> {
  return ((await host.request('memberEvents', {})) as HostMemberEvent[]).filter(event => event.id === about)
}

async function roles(host: AgentHost): Promise<Map<string, HostMember>> {
  const members = (await host.request('members', {})) as HostMember[]
  return new Map(members.map(member => [member.id, member]))
}

async function leaderOf(hosts: AgentHost[]): Promise<AgentHost> {
  let found: AgentHost | undefined
  await until(async () => {
    for (const host of hosts) {
      if (host.alive && ((await host.request('status', {})) as HostStatus).isLeader) found = host
    }
    return found !== undefined
  })
  return found!
}

describe('membership of 10 agent processes', () => {
  const size = 10
  // Sessions live 12 s: a lock freed within 8 s of a crash was freed by the membership, not the lease.
  const options: AgentOptions = { sessionTtlMs: 12_000 }
  let hosts: AgentHost[] = []
  let nonVoters: AgentHost[] = []

  beforeAll(async () => {
    hosts = await spawnCluster('ten', size, options)
    const leader = await leaderOf(hosts)
    const view = await roles(leader)
    nonVoters = hosts.filter(host => view.get(host.id)?.role === 'nonvoter')
    expect(nonVoters.length).toBe(7)
  }, 120_000)
  afterAll(async () => {
    await Promise.all(hosts.map(host => host.stop()))
  })

  it('suspects a paused agent, which refutes when it resumes and keeps its lock', async () => {
    const [paused, waiter] = nonVoters
    const others = hosts.filter(host => host !== paused)
    const held = (await paused.request('acquire', { key: 'paused-lock', ttl: 60_000 })) as {
      handle: number
      token: string
    }
    let granted = false
    const waiting = waiter.request('acquire', { key: 'paused-lock', ttl: 60_000 }).then(value => {
      granted = true
      return value
    })
    // 1.5 s is below the 2 s suspicion timeout of 10 members; a pause is not always long enough for a probe
    // to catch it, so pause again (after recovering) until some member suspected it.
    let suspectedBy = 0
    for (let attempt = 0; attempt < 5 && suspectedBy === 0; attempt++) {
      paused.signal('SIGSTOP')
      await sleep(1500)
      paused.signal('SIGCONT')
      await sleep(2500)
      suspectedBy = 0
      for (const host of others) {
        if ((await events(host, paused.id)).some(event => event.type === 'suspect')) suspectedBy++
      }
    }
    expect(suspectedBy).toBeGreaterThan(0)
    // Refuted everywhere: alive at a higher incarnation, never dead.
    await until(async () => {
      for (const host of others) if ((await roles(host)).get(paused.id)?.status !== 'alive') return false
      return true
    })
    let refutations = 0
    for (const host of others) {
      const seen = await events(host, paused.id)
      expect(seen.filter(event => event.type === 'dead')).toEqual([])
      if (seen.some(event => event.type === 'alive')) refutations++
    }
    expect(refutations).toBe(suspectedBy)
    // Nothing of it was released: it holds its lock, the waiter still waits.
    expect(await paused.request('isHeld', { handle: held.handle })).toBe(true)
    expect(granted).toBe(false)
    await paused.request('release', { handle: held.handle })
    await waiting
    console.log(`paused agent: suspected by ${suspectedBy} of ${others.length}, refuted, lock kept`)
  }, 60_000)

  it('marks a kill -9ed agent dead on every other agent within the bound; health counts it out; its lock goes to the waiter', async () => {
    const [, waiter, victim] = nonVoters
    const survivors = hosts.filter(host => host !== victim)
    const held = (await victim.request('acquire', { key: 'victim-lock', ttl: 60_000 })) as { token: string }
    const waiting = waiter.request('acquire', { key: 'victim-lock', ttl: 60_000 }) as Promise<{
      token: string
    }>
    await sleep(300)
    const killedAt = Date.now()
    victim.signal('SIGKILL')
    const bound = detectionBound(resolveMembership(undefined), size)
    const granted = await waiting
    const grantedAfter = Date.now() - killedAt
    await until(async () => {
      for (const host of survivors) {
        if (!(await events(host, victim.id)).some(event => event.type === 'dead')) return false
      }
      return true
    }, bound + 5000)
    const detected: number[] = []
    for (const host of survivors) {
      const dead = (await events(host, victim.id)).find(event => event.type === 'dead')!
      detected.push(dead.at - killedAt)
    }
    detected.sort((a, b) => a - b)
    console.log(
      `10 agents, kill -9: first marked dead after ${detected[0]} ms, last after ${detected.at(-1)} ms ` +
        `(bound ${bound} ms); lock granted to the waiter after ${grantedAfter} ms`,
    )
    for (const ms of detected) expect(ms).toBeLessThan(bound)
    expect(BigInt(granted.token)).toBeGreaterThan(BigInt(held.token))
    expect(grantedAfter).toBeLessThan(8000)
    for (const host of survivors) {
      const health = (await host.request('health', {})) as HostHealth
      expect(health).toMatchObject({ healthy: true, memberCount: size, healthyCount: size - 1 })
      expect(health.members.find(member => member.id === victim.id)?.healthy).toBe(false)
    }
    // No live agent was ever declared dead by anyone.
    for (const host of survivors) {
      const all = (await host.request('memberEvents', {})) as HostMemberEvent[]
      expect(all.filter(event => event.type === 'dead' && event.id !== victim.id)).toEqual([])
    }
  }, 60_000)
})

describe('voter replacement across processes', () => {
  let hosts: AgentHost[] = []
  afterAll(async () => {
    await Promise.all(hosts.map(host => host.stop()))
  })

  it('promotes a non-voter when a voter is killed in a 5-agent cluster with 3 voters; writes go on', async () => {
    hosts = await spawnCluster('five', 5, { voterReplaceAfterMs: 2000 })
    const leader = await leaderOf(hosts)
    const before = await roles(leader)
    const victim = leader // the hardest case: the voter that dies is the leader
    const survivors = hosts.filter(host => host !== victim)
    const acknowledged = new Map<string, number>()
    let stop = false
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await survivors[i % survivors.length].request('propose', { key: `w/${i}`, value: i })
          acknowledged.set(`w/${i}`, i)
        } catch {}
      }
    })()
    // The writer stops however the test ends: a failing assertion must not leave it spinning.
    let replacedAfter: number
    try {
      await until(async () => acknowledged.size >= 20)
      const killedAt = Date.now()
      victim.signal('SIGKILL')
      const newLeader = await leaderOf(survivors)
      await until(async () => {
        const view = await roles(newLeader)
        const voters = [...view.values()].filter(member => member.role === 'voter')
        return voters.length === 3 && voters.every(member => member.id !== victim.id)
      })
      replacedAfter = Date.now() - killedAt
      const after = await roles(newLeader)
      const promoted = [...after.values()].filter(
        member => member.role === 'voter' && before.get(member.id)?.role === 'nonvoter',
      )
      expect(promoted.length).toBe(1)
      // Removed from the configuration, not kept as a (dead) non-voter.
      expect(after.has(victim.id)).toBe(false)
      const atReplacement = acknowledged.size
      await until(async () => acknowledged.size >= atReplacement + 20)
    } finally {
      stop = true
      await writer
    }
    for (const [key, value] of [...acknowledged].slice(-30)) {
      expect(await survivors[0].request('get', { key })).toBe(value)
    }
    console.log(
      `5 agents, voter (leader) killed: voter set back to 3 after ${replacedAfter} ms; ` +
        `${acknowledged.size} writes acknowledged`,
    )
  }, 120_000)
})
