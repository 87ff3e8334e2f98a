/**
 * A member (an agent that holds no log) as a real process on loopback TCP, paused and killed with real
 * signals: a pause shorter than its session ttl costs it nothing; its death releases its lock.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { AgentHost } from '../../scripts/lib/hosts.ts'

const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-members-processes-'))
const hosts: AgentHost[] = []
afterAll(async () => {
  await Promise.all(
    hosts.map(host => (host.alive ? host.stop().catch(() => host.signal('SIGKILL')) : undefined)),
  )
  rmSync(dataRoot, { recursive: true, force: true })
})

const TTL = 5_000
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`)
    await sleep(50)
  }
}

describe('a member process', () => {
  it('paused (SIGSTOP) for less than its session ttl keeps its lock; killed, its lock goes to the waiter', async () => {
    // 3 voters, 2 standbys, and the sixth agent is a member.
    for (let i = 0; i < 6; i++) {
      hosts.push(
        await AgentHost.spawn({ name: `p${i}`, dataDir: join(dataRoot, `p${i}`), sessionTtlMs: TTL }),
      )
    }
    await hosts[0].request('join', { voters: 3 })
    for (const host of hosts.slice(1)) await host.request('join', { bootstrap: hosts[0].addrs })
    const member = hosts[5]
    const waiter = hosts[1]
    const view = (await hosts[0].request('members', {})) as { id: string; replica: boolean }[]
    expect(view.find(info => info.id === member.id)?.replica).toBe(false)

    const { handle, token } = (await member.request('acquire', { key: 'paused/lock', ttl: 60_000 })) as {
      handle: number
      token: string
    }
    let grantedAt: number | undefined
    const waiting = waiter.request('acquire', { key: 'paused/lock', ttl: 60_000 }).then(granted => {
      grantedAt = Date.now()
      return granted as { token: string }
    })

    // Paused for 2 s of its 5 s ttl: when it runs again, its next keep-alive renews the session.
    member.signal('SIGSTOP')
    await sleep(2_000)
    member.signal('SIGCONT')
    await until(async () => (await member.request('isHeld', { handle })) === true, 5_000, 'held again')
    // Held past the end of the ttl the pause began in, and the waiter still waits.
    await sleep(TTL)
    expect(await member.request('isHeld', { handle })).toBe(true)
    expect(grantedAt).toBeUndefined()

    const killedAt = Date.now()
    member.signal('SIGKILL')
    const granted = await waiting
    // The session expires at most a ttl after its last keep-alive, plus the housekeeping round and the grant.
    expect(grantedAt! - killedAt).toBeLessThan(TTL + 3_000)
    expect(BigInt(granted.token)).toBeGreaterThan(BigInt(token))
  }, 120_000)
})
