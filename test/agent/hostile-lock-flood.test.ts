/**
 * A lock flood from one member, agents as separate processes on loopback TCP: 600 lock acquisitions at
 * once from a follower. Its lock operations are limited per right at the leader (`rateLimits.rights.lock`),
 * so they land at that rate (each waits at the leader for its turn) and all of them land. Another member's
 * write p50 during the flood is printed next to the one without it.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HostStatus } from '../../scripts/agent-host.ts'
import { AgentHost } from '../../scripts/lib/hosts.ts'

const FLOOD = 600

/** Lower than the default (1,000/s), to what this loaded test machine applies with room to spare. */
const LOCK_RATE = { perSecond: 100, burst: 100 }
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-lock-flood-'))
let hosts: AgentHost[] = []

beforeAll(async () => {
  hosts = await Promise.all(
    Array.from({ length: 3 }, (_, i) =>
      AgentHost.spawn({
        name: `f${i}`,
        dataDir: join(dataRoot, `f${i}`),
        operationTimeoutMs: 30_000,
        rateLimits: { rights: { lock: LOCK_RATE } },
      }),
    ),
  )
  await hosts[0].request('join', {})
  for (const host of hosts.slice(1)) await host.request('join', { bootstrap: hosts[0].addrs })
  const end = Date.now() + 30_000
  while (((await hosts[0].request('status', {})) as HostStatus).voters < 3) {
    if (Date.now() > end) throw new Error('no three voters')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}, 90_000)

afterAll(async () => {
  await Promise.all(hosts.map(host => host.stop()))
  rmSync(dataRoot, { recursive: true, force: true })
})

async function writeTimes(
  host: AgentHost,
  key: string,
  until: () => boolean,
  max: number,
): Promise<number[]> {
  const times: number[] = []
  for (let i = 0; i < max && !until(); i++) {
    const start = performance.now()
    await host.request('propose', { key, value: i })
    times.push(performance.now() - start)
  }
  return times
}

function p50(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

describe('a lock flood from one member', () => {
  it("is held to its right's rate, and every acquisition still lands", async () => {
    const statuses = (await Promise.all(hosts.map(host => host.request('status', {})))) as HostStatus[]
    const followers = hosts.filter((_, i) => !statuses[i].isLeader)
    const [flooder, writer] = followers
    await writeTimes(writer, 'warm', () => false, 50)
    const before = p50(await writeTimes(writer, 'before', () => false, 300))

    let done = false
    const started = performance.now()
    const flood = Promise.all(
      Array.from({ length: FLOOD }, (_, i) => flooder.request('acquire', { key: `flood/${i}`, ttl: 60_000 })),
    ).finally(() => {
      done = true
    })
    const during = await writeTimes(writer, 'during', () => done, 300)
    const locks = await flood
    const took = performance.now() - started
    expect(locks).toHaveLength(FLOOD)
    // Past the burst, at the rate.
    expect(took).toBeGreaterThan(((FLOOD - LOCK_RATE.burst) / LOCK_RATE.perSecond) * 1000 * 0.8)
    expect(during.length).toBeGreaterThanOrEqual(50)
    // The other member's writes, against the same run without the flood. Unlimited, 2,500 acquires/s took
    // its p50 from 1.5 ms to 100-200 ms; from this harness (about 570 acquires/s unlimited) 15 ms to 53 ms.
    // Limited, on the loaded 2-core machine this was written on, the ratio varied from run to run (24 ms vs
    // 9 ms, 13 ms vs 16 ms, 12 ms vs 11 ms): too noisy for 2x, so 3x, and never under 25 ms.
    const after = p50(during)
    console.log(
      `write p50 ${after.toFixed(1)} ms during the flood (${took.toFixed(0)} ms) vs ${before.toFixed(1)} ms`,
    )
    expect(after).toBeLessThan(Math.max(3 * before, 25))
  }, 180_000)
})
