import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { HostStatus } from '../../scripts/agent-host.ts'
import { AgentHost } from '../../scripts/lib/hosts.ts'

// Real processes on loopback TCP with durable storage: what users run.
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-proc-'))
const hosts: AgentHost[] = []
const timing = { sessionTtlMs: 2000, tickMs: 20 }

afterEach(async () => {
  await Promise.all(hosts.splice(0).map(host => host.stop()))
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

async function spawn(name: string, port = 0): Promise<AgentHost> {
  const host = await AgentHost.spawn({
    name,
    dataDir: join(dataRoot, name),
    listen: [`/ip4/127.0.0.1/tcp/${port}`],
    ...timing,
  })
  hosts.push(host)
  return host
}

async function cluster(size: number, prefix: string): Promise<AgentHost[]> {
  const started = await Promise.all(Array.from({ length: size }, (_, i) => spawn(`${prefix}${i}`)))
  await started[0].request('join', {})
  for (const host of started.slice(1)) await host.request('join', { bootstrap: started[0].addrs, voters: 3 })
  await until(
    async () => ((await started[0].request('status', {})) as HostStatus).voters === Math.min(size, 3),
  )
  return started
}

async function status(host: AgentHost): Promise<HostStatus> {
  return (await host.request('status', {})) as HostStatus
}

async function until(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function leaderOf(group: AgentHost[]): Promise<AgentHost> {
  let found: AgentHost | undefined
  await until(async () => {
    for (const host of group) {
      if (host.alive && (await status(host)).isLeader) {
        found = host
        return true
      }
    }
    return false
  })
  return found!
}

describe('agents in separate processes over TCP', () => {
  it('elects a new leader when the leader is killed, and loses no acknowledged write', async () => {
    const group = await cluster(3, 'kill')
    const leader = await leaderOf(group)
    const followers = group.filter(host => host !== leader)
    const acknowledged = new Map<string, number>()
    let stop = false
    const writers = followers.map((host, w) =>
      (async () => {
        for (let i = 0; !stop; i++) {
          const key = `acked/${w}/${i}`
          try {
            await host.request('propose', { key, value: i })
            acknowledged.set(key, i)
          } catch {}
        }
      })(),
    )
    await until(async () => acknowledged.size >= 50)
    const killedAt = Date.now()
    leader.signal('SIGKILL')
    await leader.exit
    const before = acknowledged.size
    await until(async () => acknowledged.size >= before + 50)
    const failover = Date.now() - killedAt
    stop = true
    await Promise.all(writers)
    const newLeader = await leaderOf(followers)
    expect(newLeader).not.toBe(leader)
    for (const host of followers) {
      for (const [key, value] of acknowledged) {
        expect(await host.request('get', { key })).toBe(value)
      }
    }
    console.log(
      `failover: writes resumed ${failover} ms after kill -9; ${acknowledged.size} acknowledged writes all present`,
    )
  })

  it('releases the locks of a killed agent once its session expires, to the next waiter', async () => {
    const group = await cluster(3, 'lock')
    const leader = await leaderOf(group)
    const [victim, waiter] = group.filter(host => host !== leader)
    const held = (await victim.request('acquire', { key: 'resource', ttl: 60_000 })) as { token: string }
    const waiting = waiter.request('acquire', { key: 'resource', ttl: 60_000 }) as Promise<{ token: string }>
    await new Promise(resolve => setTimeout(resolve, 300))
    const killedAt = Date.now()
    victim.signal('SIGKILL')
    const granted = await waiting
    const waited = Date.now() - killedAt
    expect(BigInt(granted.token)).toBeGreaterThan(BigInt(held.token))
    // The lock's own ttl is a minute: only the session's expiry (2 s here) can have freed it.
    expect(waited).toBeLessThan(15_000)
    console.log(`lock of the killed agent granted to the waiter ${waited} ms after kill -9`)
  })

  it('comes back with all its state after every agent restarts on the same dataDir', async () => {
    const group = await cluster(3, 'restart')
    for (let i = 0; i < 20; i++) await group[i % 3].request('propose', { key: `durable/${i}`, value: { i } })
    const ports = group.map(host => Number(host.addrs[0].split('/')[4]))
    await Promise.all(group.map(host => host.stop()))
    hosts.length = 0
    const restarted = await Promise.all(group.map((_, i) => spawn(`restart${i}`, ports[i])))
    expect(restarted.map(host => host.id)).toEqual(group.map(host => host.id))
    await leaderOf(restarted)
    for (const host of restarted) {
      for (let i = 0; i < 20; i++) expect(await host.request('get', { key: `durable/${i}` })).toEqual({ i })
    }
    await restarted[1].request('propose', { key: 'after-restart', value: true })
    expect(await restarted[2].request('get', { key: 'after-restart' })).toBe(true)
  })
})
