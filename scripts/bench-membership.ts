/**
 * Failure detection of the SWIM membership, as users run it: N agents (default 25), each in its own process,
 * over loopback TCP with durable storage. Each run kills one non-voter with SIGKILL and times how long until
 * the first and the last survivor mark it dead; the victim is then restarted on its data directory (it
 * refutes its death with a new incarnation) so every run sees N members. Prints the median of the runs next
 * to the bound memberlist's LAN defaults give for the same size (probe 1 s, suspicion 4 × log10(n) s), and
 * counts false positives (a live agent declared dead) and false suspicions (a live agent suspected).
 *
 *   node scripts/bench-membership.ts [--agents 25] [--runs 5] [--preset fast|lan]
 *
 * The last line of stdout is the figures as JSON. With BENCH_DEBUG=1 it also lists every suspicion and death
 * each agent saw, with its time since the start.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { detectionBound } from '../src/agent/cluster/swim-wire.ts'
import { type MembershipPreset, resolveMembership } from '../src/agent/options.ts'
import type { AgentOptions } from '../src/index.ts'
import type { HostMemberEvent, HostStatus } from './agent-host.ts'
import { AgentHost } from './lib/hosts.ts'

interface Run {
  victim: string
  firstMs: number
  lastMs: number
  medianMs: number
}

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '25' },
    runs: { type: 'string', default: '5' },
    preset: { type: 'string', default: 'fast' },
  },
  strict: true,
})
const agentCount = Number(values.agents)
const runCount = Number(values.runs)
const preset = values.preset as MembershipPreset
if (!Number.isInteger(agentCount) || agentCount < 5) throw new RangeError('--agents must be an integer >= 5')
if (!Number.isInteger(runCount) || runCount < 1) throw new RangeError('--runs must be a positive integer')
if (preset !== 'fast' && preset !== 'lan') throw new RangeError('--preset must be fast or lan')

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

async function until(
  check: () => Promise<boolean>,
  ms: number,
  what: string | (() => string),
): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
    await sleep(50)
  }
}

/** Every membership event each host reported so far, fetched incrementally. */
class EventLog {
  private readonly seen = new Map<AgentHost, HostMemberEvent[]>()

  async of(host: AgentHost): Promise<HostMemberEvent[]> {
    const known = this.seen.get(host) ?? []
    if (host.alive) {
      const fresh = (await host.request('memberEvents', { from: known.length })) as HostMemberEvent[]
      known.push(...fresh)
    }
    this.seen.set(host, known)
    return known
  }

  forget(host: AgentHost): void {
    this.seen.delete(host)
  }
}

async function main(): Promise<void> {
  const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-bench-membership-'))
  const options = (i: number, port = 0): AgentOptions => ({
    name: `swim${i}`,
    dataDir: join(dataRoot, `swim${i}`),
    listen: [`/ip4/127.0.0.1/tcp/${port}`],
    membership: preset,
    // Joining 25 agents one after the other on 2 shared cores can take longer than the default 10 s.
    operationTimeoutMs: 30_000,
  })
  const hosts: AgentHost[] = []
  const log = new EventLog()
  try {
    const started = performance.now()
    const benchStart = Date.now()
    // In batches: 25 Node processes loading and dialling at once starve a small machine.
    for (let i = 0; i < agentCount; i += 5) {
      const batch = Array.from({ length: Math.min(5, agentCount - i) }, (_, j) =>
        AgentHost.spawn(options(i + j)),
      )
      hosts.push(...(await Promise.all(batch)))
    }
    await hosts[0].request('join', { voters: 3 })
    for (const host of hosts.slice(1)) await host.request('join', { bootstrap: hosts[0].addrs, voters: 3 })
    await until(
      async () => ((await hosts[0].request('status', {})) as HostStatus).voters === 3,
      60_000,
      'three voters',
    )
    let lastGap = ''
    const allAlive = async (): Promise<boolean> => {
      for (const host of hosts) {
        const members = (await host.request('members', {})) as { id: string; name: string; status: string }[]
        const notAlive = members.filter(member => member.status !== 'alive')
        if (members.length !== agentCount || notAlive.length > 0) {
          lastGap = `${host.options.name} sees ${members.length} members, not alive: ${notAlive
            .map(member => `${member.name}=${member.status}`)
            .join(' ')}`
          return false
        }
      }
      return true
    }
    await until(allAlive, 60_000, () => `every view to hold every member alive (${lastGap})`)
    console.log(
      `${agentCount} agent processes up in ${((performance.now() - started) / 1000).toFixed(1)} s ` +
        `(membership preset ${preset})`,
    )
    // Let the cluster settle: joins are over, probes are in their steady round.
    await sleep(3000)
    if (process.env.BENCH_DEBUG)
      console.log(`measuring from ${((Date.now() - benchStart) / 1000).toFixed(2)} s`)

    const runs: Run[] = []
    const victims = new Set<string>()
    for (let run = 0; run < runCount; run++) {
      let voters = new Set<string>()
      for (const host of hosts) {
        const status = (await host.request('status', {})) as HostStatus
        if (status.isLeader) {
          const members = (await host.request('members', {})) as { id: string; role: string }[]
          voters = new Set(members.filter(member => member.role === 'voter').map(member => member.id))
        }
      }
      const index = hosts.findIndex((host, i) => i > 0 && !voters.has(host.id) && !victims.has(host.id))
      const victim = hosts[index]
      const survivors = hosts.filter(host => host !== victim)
      const baseline = new Map<AgentHost, number>()
      for (const host of survivors) baseline.set(host, (await log.of(host)).length)
      const port = Number(victim.addrs[0].split('/')[4])
      const killedAt = Date.now()
      victim.signal('SIGKILL')
      await victim.exit
      const deadAt = new Map<AgentHost, number>()
      await until(
        async () => {
          for (const host of survivors) {
            if (deadAt.has(host)) continue
            const events = (await log.of(host)).slice(baseline.get(host))
            const dead = events.find(event => event.id === victim.id && event.type === 'dead')
            if (dead !== undefined) deadAt.set(host, dead.at)
          }
          return deadAt.size === survivors.length
        },
        60_000,
        'every survivor to mark the victim dead',
      )
      const times = [...deadAt.values()].map(at => at - killedAt).sort((a, b) => a - b)
      const result = { victim: victim.id, firstMs: times[0], lastMs: times.at(-1)!, medianMs: median(times) }
      runs.push(result)
      victims.add(victim.id)
      console.log(
        `run ${run + 1}: kill -9 of ${victim.options.name}: first survivor marked it dead after ` +
          `${result.firstMs} ms, median ${result.medianMs} ms, last ${result.lastMs} ms`,
      )
      // Back on the same data directory and port: it refutes its death and every run sees n members.
      log.forget(victim)
      hosts[index] = await AgentHost.spawn(options(index, port))
      await until(allAlive, 60_000, () => `the restarted agent to be alive in every view (${lastGap})`)
      await sleep(2000)
    }

    // Whoever was declared dead or suspected while it was running is a false positive or suspicion.
    let falsePositives = 0
    let falseSuspicions = 0
    const names = new Map(hosts.map(host => [host.id, host.options.name]))
    for (const host of hosts) {
      for (const event of await log.of(host)) {
        if (event.type === 'dead' && !victims.has(event.id)) falsePositives++
        if (event.type === 'suspect' && !victims.has(event.id)) falseSuspicions++
        if (process.env.BENCH_DEBUG && (event.type === 'dead' || event.type === 'suspect')) {
          console.log(
            `${((event.at - benchStart) / 1000).toFixed(2)} s: ${host.options.name} ${event.type} ${names.get(event.id)}`,
          )
        }
      }
    }
    const config = resolveMembership(preset)
    const memberlistBoundMs = Math.round(1000 + 4 * Math.log10(agentCount) * 1000)
    const figures = {
      bench: 'membership',
      agents: agentCount,
      mode: 'processes',
      preset,
      runs,
      medianFirstMs: median(runs.map(run => run.firstMs)),
      medianLastMs: median(runs.map(run => run.lastMs)),
      memberlistLanBoundMs: memberlistBoundMs,
      documentedBoundMs: detectionBound(config, agentCount),
      falsePositives,
      falseSuspicions,
    }
    console.log(
      `median of ${runCount} runs, kill -9 to the last survivor marking it dead: ${figures.medianLastMs} ms ` +
        `(first: ${figures.medianFirstMs} ms); memberlist LAN bound for ${agentCount}: ${memberlistBoundMs} ms; ` +
        `documented bound: ${figures.documentedBoundMs} ms; false positives: ${falsePositives}; ` +
        `false suspicions (refuted): ${falseSuspicions}`,
    )
    console.log(JSON.stringify(figures))
  } finally {
    await Promise.all(hosts.map(host => host.stop()))
    rmSync(dataRoot, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
