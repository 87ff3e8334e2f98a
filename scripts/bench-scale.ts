/**
 * `npm run bench:scale -- --agents 50`: how conclave behaves as agents are added, as users run it: N agents,
 * each its own process over loopback TCP with durable storage, all started at the same moment, next to a
 * 3-agent baseline measured the same way in the same run. Reports, for each size:
 *
 * - the time until every agent process is up, until every agent has joined, and until every view holds all N
 *   alive (all three from the start); join errors;
 * - idle CPU over `--idle` seconds (median agent, the leader, all agents together, in cores) and RSS;
 * - from a member (the last agent started, not a voter): single-writer p50/p99 and 64-concurrent throughput;
 * - the time until every survivor marks a killed member dead, next to memberlist's LAN bound for N (probe
 *   1 s, suspicion 4 × log10(N) s); the time for the killed member's lock to reach a waiter;
 * - the longest write stall (max latency) of 16 writers while the leader is killed with SIGKILL.
 *
 * `--join-only` stops each size once its views converged and reports what the start-up storm cost instead: the
 * CPU seconds all agents used, TCP connections per agent, and the SWIM messages sent, published and received;
 * then their idle CPU over `--idle` seconds (its window on the monotonic clock, for CPU profiles).
 *
 * The last line of stdout is JSON with every figure. A size whose agents never all join is reported with what
 * was reached (the benchmark goes on with the agents that did join).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { AgentOptions } from '../src/index.ts'
import type { HostStatus } from './agent-host.ts'
import { AgentHost } from './lib/hosts.ts'

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '50' },
    baseline: { type: 'string', default: '3' },
    idle: { type: 'string', default: '20' },
    'join-timeout': { type: 'string', default: '120' },
    json: { type: 'boolean', default: false },
    /** Stop each size once its views converged, reporting the start-up storm's cost instead of idle and writes. */
    'join-only': { type: 'boolean', default: false },
  },
  strict: true,
})
const sizes = [Number(values.baseline), Number(values.agents)]
const idleSeconds = Number(values.idle)
const joinTimeoutMs = Number(values['join-timeout']) * 1000
for (const size of sizes) {
  if (!Number.isInteger(size) || size < 3)
    throw new RangeError('--agents and --baseline must be integers >= 3')
}
if (!(idleSeconds > 0)) throw new RangeError('--idle must be > 0 seconds')

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const CLOCK_TICKS = 100 // USER_HZ on Linux

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) / 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** memberlist's LAN defaults for n members: probe every 1 s, suspicion 4 × log10(n) probe intervals. */
function memberlistLanBoundMs(n: number): number {
  return 1000 + 4 * Math.max(1, Math.log10(n)) * 1000
}

/** Established TCP connections by process id (`ss`), each libp2p connection counted once per end. */
function connectionsByPid(): Map<number, number> {
  const counts = new Map<number, number>()
  try {
    const out = execFileSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' })
    for (const match of out.matchAll(/pid=(\d+)/g)) {
      const pid = Number(match[1])
      counts.set(pid, (counts.get(pid) ?? 0) + 1)
    }
  } catch {}
  return counts
}

/** What the start-up storm cost, up to the views' convergence (`--join-only`). */
interface StormReport {
  /** CPU seconds all agents used from their start until every view converged (or the timeout). */
  agentCpuSeconds: number
  connections: { median: number; max: number; total: number }
  /** SWIM counters summed over the agents (`Membership.stats()`). */
  swim: {
    sent: number
    pushPulls: number
    directGossip: number
    published: number
    received: number
    sendFailures: number
    publishFallbacks: number
  }
}

interface Member {
  id: string
  status: string
  role: string
}

async function until(check: () => Promise<boolean>, ms: number): Promise<number | undefined> {
  const start = performance.now()
  while (performance.now() - start < ms) {
    if (await check().catch(() => false)) return performance.now() - start
    await sleep(100)
  }
  return undefined
}

interface SizeReport {
  agents: number
  joined: number
  joinErrors: number
  joinErrorExamples: string[]
  /** From the start until every agent process was up (loaded and listening), before any join. */
  spawnedMs?: number
  allJoinedMs?: number
  convergedMs?: number
  /**
   * Each joiner's `join()` from its request to its return (the founder's excluded), and the Raft entries the
   * founder applied from after its founding until every join returned, per successful join (membership
   * changes of the replicas and leader no-ops included).
   */
  join?: { medianMs: number; maxMs: number; raftEntries: number; entriesPerJoin: number }
  idle: { medianCpu: number; leaderCpu: number; totalCores: number; medianRssMiB: number; maxRssMiB: number }
  memberWrite: {
    p50Ms: number
    p99Ms: number
    opsPerSec: number
    concurrent64OpsPerSec: number
    error?: string
  }
  /** `error`: the lock could not be taken before the kill (an overloaded cluster); detection is not measured. */
  detection: { boundMs: number; allSurvivorsMs?: number; error?: string }
  lockHandoffMs?: number
  leaderKill: { maxStallMs?: number; error?: string }
  /** The machine's 1-minute load average when this size started and when it ended (others share it). */
  loadAverage: { start: number; end: number }
  storm?: StormReport
  /** What the joins wrote and how late the agents ran meanwhile (see `stormLog`). */
  storage?: StormLog
}

/**
 * What the join storm wrote to the founder's log (entries by command type, by term), the terms the joined
 * agents are in, and how late their event loops ran from their start until every join returned: counts that
 * say whether elections, session expiries or retries made the entries, independent of the machine's load.
 */
interface StormLog {
  founderLog: { byType: Record<string, number>; byTerm: Record<string, number> }
  terms: number[]
  loopDelay: { medianP99Ms: number; maxMs: number; founderP99Ms: number; founderMaxMs: number }
}

async function stormLog(hosts: AgentHost[], joined: AgentHost[]): Promise<StormLog> {
  const founderLog = (await hosts[0].request('logStats', {})) as StormLog['founderLog']
  const statuses = await Promise.all(
    joined.map(host => host.request('status', {}).catch(() => undefined) as Promise<HostStatus | undefined>),
  )
  const terms = [...new Set(statuses.map(status => status?.term ?? -1))].sort((a, b) => a - b)
  const delays = (await Promise.all(
    hosts.map(host => host.request('loopDelay', {}).catch(() => ({ p99Ms: Number.NaN, maxMs: Number.NaN }))),
  )) as { p99Ms: number; maxMs: number }[]
  return {
    founderLog,
    terms,
    loopDelay: {
      medianP99Ms: percentile(
        delays.map(delay => delay.p99Ms),
        50,
      ),
      maxMs: Math.max(...delays.map(delay => delay.maxMs)),
      founderP99Ms: delays[0].p99Ms,
      founderMaxMs: delays[0].maxMs,
    },
  }
}

async function measure(size: number, dir: string, log: (line: string) => void): Promise<SizeReport> {
  const options = (i: number): AgentOptions => ({
    name: `s${size}-${i}`,
    dataDir: join(dir, `s${size}-${i}`),
  })
  log(`${size} agents: starting ${size} processes at once`)
  const started = performance.now()
  const hosts = await Promise.all(
    Array.from({ length: size }, (_, i) => AgentHost.spawn(options(i), 'ignore')),
  )
  const report: SizeReport = {
    agents: size,
    joined: 0,
    joinErrors: 0,
    joinErrorExamples: [],
    idle: {
      medianCpu: Number.NaN,
      leaderCpu: Number.NaN,
      totalCores: Number.NaN,
      medianRssMiB: 0,
      maxRssMiB: 0,
    },
    memberWrite: {
      p50Ms: Number.NaN,
      p99Ms: Number.NaN,
      opsPerSec: Number.NaN,
      concurrent64OpsPerSec: Number.NaN,
    },
    detection: { boundMs: memberlistLanBoundMs(size) },
    leaderKill: {},
    loadAverage: { start: loadavg()[0], end: Number.NaN },
  }
  report.spawnedMs = Math.round(performance.now() - started)
  log(`  all ${size} processes up: ${report.spawnedMs} ms`)
  try {
    // With CONCLAVE_BENCH_PROFILE_DIR: CPU profiles of the founder (the leader) and the last agent (a member)
    // over the join storm, written there as <size>-founder.cpuprofile and <size>-member.cpuprofile.
    const profileDir = process.env.CONCLAVE_BENCH_PROFILE_DIR
    const profiled = profileDir === undefined ? [] : [hosts[0], hosts.at(-1)!]
    await Promise.all(profiled.map(host => host.request('cpuProfile', { action: 'start' })))
    await hosts[0].request('join', { voters: 3 })
    const indexBefore = (await hosts[0].request('appliedIndex', {})) as number
    const joinMs: number[] = []
    const results = await Promise.allSettled(
      hosts.slice(1).map(async host => {
        const asked = performance.now()
        await host.request('join', { bootstrap: hosts[0].addrs })
        joinMs.push(performance.now() - asked)
      }),
    )
    const indexAfter = (await hosts[0].request('appliedIndex', {})) as number
    const joined = [hosts[0]]
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') joined.push(hosts[i + 1])
      else {
        report.joinErrors++
        const text = `${(result.reason as Error).name}: ${(result.reason as Error).message}`
        if (report.joinErrorExamples.length < 3) report.joinErrorExamples.push(text)
      }
    })
    report.joined = joined.length
    if (report.joinErrors === 0) report.allJoinedMs = Math.round(performance.now() - started)
    log(
      `  ${report.joined} joined, ${report.joinErrors} errors, ${Math.round(performance.now() - started)} ms`,
    )
    const raftEntries = indexAfter - indexBefore
    await Promise.all(
      profiled.map((host, i) =>
        host.request('cpuProfile', {
          action: 'stop',
          path: join(profileDir ?? '', `${size}-${i === 0 ? 'founder' : 'member'}.cpuprofile`),
        }),
      ),
    )
    report.storage = await stormLog(hosts, joined)
    log(
      `  founder's log: ${JSON.stringify(report.storage.founderLog.byType)}; by term ${JSON.stringify(report.storage.founderLog.byTerm)}; terms seen ${report.storage.terms.join(',')}; event-loop delay p99 median ${report.storage.loopDelay.medianP99Ms.toFixed(0)} ms, max ${report.storage.loopDelay.maxMs.toFixed(0)} ms (founder p99 ${report.storage.loopDelay.founderP99Ms.toFixed(0)} ms, max ${report.storage.loopDelay.founderMaxMs.toFixed(0)} ms)`,
    )
    report.join = {
      medianMs: Math.round(percentile(joinMs, 50)),
      maxMs: Math.round(Math.max(...joinMs)),
      raftEntries,
      entriesPerJoin: joinMs.length === 0 ? Number.NaN : raftEntries / joinMs.length,
    }
    log(
      `  join(): median ${report.join.medianMs} ms, max ${report.join.maxMs} ms; ${raftEntries} Raft entries (${report.join.entriesPerJoin.toFixed(2)} per join)`,
    )

    // Every joined agent alive in every joined agent's view (not a count: an agent whose join failed may
    // still run and be alive in the views, and must not stand in for a joined one missing from them).
    const convergedIn = await until(async () => {
      for (const host of joined) {
        const members = (await host.request('members', {})) as Member[]
        const alive = new Set(members.filter(member => member.status === 'alive').map(member => member.id))
        if (!joined.every(other => alive.has(other.id))) return false
      }
      return true
    }, joinTimeoutMs)
    if (convergedIn !== undefined) report.convergedMs = Math.round(performance.now() - started)
    log(`  views converged: ${report.convergedMs ?? 'never'} ms`)
    if (convergedIn === undefined) log(`  not alive in some view: ${await viewGaps(joined)}`)
    if (values['join-only']) {
      report.storm = await stormCost(hosts)
      report.loadAverage.end = loadavg()[0]
      const { storm } = report
      // Then the idle cost, with the window on the monotonic clock CPU profiles are stamped with.
      const before = joined.map(host => cpuSeconds(host.pid))
      const idleFrom = process.hrtime.bigint() / 1000n
      await sleep(idleSeconds * 1000)
      const idleTo = process.hrtime.bigint() / 1000n
      const shares = joined.map((host, i) => (cpuSeconds(host.pid) - before[i]) / idleSeconds)
      report.idle.medianCpu = percentile(shares, 50)
      report.idle.totalCores = shares.reduce((sum, share) => sum + share, 0)
      log(
        `  idle after: median ${(report.idle.medianCpu * 100).toFixed(1)} %, total ${report.idle.totalCores.toFixed(2)} cores (monotonic µs ${idleFrom}-${idleTo})`,
      )
      log(
        `  storm: agents used ${storm.agentCpuSeconds.toFixed(1)} CPU s; connections per agent median ${storm.connections.median}, max ${storm.connections.max}; SWIM sent ${storm.swim.sent} (push-pulls ${storm.swim.pushPulls}, gossip ${storm.swim.directGossip}), publish fallbacks ${storm.swim.publishFallbacks}, published ${storm.swim.published}, received ${storm.swim.received}; load ${report.loadAverage.start.toFixed(1)} → ${report.loadAverage.end.toFixed(1)}`,
      )
      return report
    }

    const statuses = await Promise.all(
      joined.map(
        host => host.request('status', {}).catch(() => undefined) as Promise<HostStatus | undefined>,
      ),
    )
    const leader = joined.find((_, i) => statuses[i]?.isLeader === true)
    const members = (await joined[0].request('members', {})) as Member[]
    const nonVoters = joined.filter(host => members.find(m => m.id === host.id)?.role !== 'voter')

    // Idle: no client traffic for a while, then CPU over the window.
    await sleep(3000)
    const before = joined.map(host => cpuSeconds(host.pid))
    await sleep(idleSeconds * 1000)
    const after = joined.map(host => cpuSeconds(host.pid))
    const shares = joined.map((_, i) => (after[i] - before[i]) / idleSeconds)
    const rss = joined.map(host => rssMiB(host.pid))
    report.idle = {
      medianCpu: percentile(shares, 50),
      leaderCpu: leader === undefined ? Number.NaN : shares[joined.indexOf(leader)],
      totalCores: shares.reduce((sum, share) => sum + share, 0),
      medianRssMiB: percentile(rss, 50),
      maxRssMiB: Math.max(...rss),
    }
    log(
      `  idle: median ${(report.idle.medianCpu * 100).toFixed(1)} %, total ${report.idle.totalCores.toFixed(2)} cores`,
    )

    // Writes from a member (a non-voter when there is one).
    const writer = nonVoters.at(-1) ?? joined.at(-1)!
    try {
      const single = (await writer.request('proposeMany', {
        prefix: 'scale/single/',
        count: 300,
        concurrency: 1,
        size: 100,
      })) as { elapsedMs: number; latencies: number[] }
      const wide = (await writer.request('proposeMany', {
        prefix: 'scale/wide/',
        count: 3000,
        concurrency: 64,
        size: 100,
      })) as { elapsedMs: number; latencies: number[] }
      report.memberWrite = {
        p50Ms: percentile(single.latencies, 50),
        p99Ms: percentile(single.latencies, 99),
        opsPerSec: (single.latencies.length / single.elapsedMs) * 1000,
        concurrent64OpsPerSec: (wide.latencies.length / wide.elapsedMs) * 1000,
      }
      log(
        `  member writes: p50 ${report.memberWrite.p50Ms.toFixed(2)} ms, 64 at once ${Math.round(report.memberWrite.concurrent64OpsPerSec)}/s`,
      )
    } catch (err) {
      // A write that fails (NoLeaderError on an overloaded machine) is reported; the other figures go on.
      report.memberWrite.error = `${(err as Error).name}: ${(err as Error).message}`
      log(`  member writes failed: ${report.memberWrite.error}`)
    }

    // A member holding a lock is killed: every survivor must mark it dead, and a waiter gets its lock.
    const victim =
      nonVoters.find(host => host !== writer) ?? joined.find(host => host !== leader && host !== writer)
    // The lock before the kill fails on an overloaded cluster (NoLeaderError): reported, the run goes on.
    const locked =
      victim === undefined
        ? false
        : await victim.request('acquire', { key: 'scale/lock', ttl: 10_000 }).then(
            () => true,
            (err: Error) => {
              report.detection.error = `${err.name}: ${err.message}`
              log(`  lock before the kill failed: ${report.detection.error}`)
              return false
            },
          )
    if (victim !== undefined && locked) {
      const waiting = writer.request('acquire', { key: 'scale/lock', ttl: 10_000 })
      await sleep(200)
      const killedAt = performance.now()
      victim.signal('SIGKILL')
      const survivors = joined.filter(host => host !== victim)
      const lockAt = waiting.then(() => performance.now() - killedAt)
      const seen = await until(async () => {
        for (const host of survivors) {
          const view = (await host.request('members', {})) as Member[]
          const entry = view.find(member => member.id === victim.id)
          if (entry !== undefined && entry.status !== 'dead' && entry.status !== 'left') return false
        }
        return true
      }, 60_000)
      if (seen !== undefined) report.detection.allSurvivorsMs = Math.round(seen)
      report.lockHandoffMs = await Promise.race([
        lockAt.then(Math.round),
        sleep(60_000).then(() => undefined),
      ])
      // Back on its data directory, so the leader kill below leaves a quorum even with 3 voters.
      const back = await AgentHost.spawn(victim.options, 'ignore')
      hosts[hosts.indexOf(victim)] = back
      await back.request('join', { bootstrap: writer.addrs }).catch(() => {})
      await until(async () => ((await writer.request('status', {})) as HostStatus).leader !== '', 30_000)
      log(
        `  killed member dead everywhere: ${report.detection.allSurvivorsMs ?? 'never'} ms; lock after ${report.lockHandoffMs ?? 'never'} ms`,
      )
    }

    // The leader is killed under 16 writers from the member: the longest write.
    if (leader !== undefined && leader !== writer) {
      const load = writer.request('proposeMany', {
        prefix: 'scale/failover/',
        count: 2000,
        concurrency: 16,
        size: 100,
      })
      await sleep(1000)
      leader.signal('SIGKILL')
      try {
        const result = (await load) as { latencies: number[] }
        report.leaderKill.maxStallMs = Math.round(Math.max(...result.latencies))
      } catch (err) {
        report.leaderKill.error = `${(err as Error).name}: ${(err as Error).message}`
      }
      log(`  leader kill: longest write ${report.leaderKill.maxStallMs ?? report.leaderKill.error} ms`)
    }
    report.loadAverage.end = loadavg()[0]
    log(
      `  load average: ${report.loadAverage.start.toFixed(1)} at the start, ${report.loadAverage.end.toFixed(1)} at the end`,
    )
    return report
  } finally {
    await Promise.all(hosts.map(host => (host.alive ? stopHost(host) : undefined)))
  }
}

/** Agents profiled (`--cpu-prof` in CONCLAVE_AGENT_EXEC_ARGV) write their profile as they exit: slow under load. */
const PROFILING = (process.env.CONCLAVE_AGENT_EXEC_ARGV ?? '').includes('--cpu-prof')

async function stopHost(host: AgentHost): Promise<void> {
  if (!PROFILING) return host.stop().catch(() => host.signal('SIGKILL'))
  host.request('stop', {}).catch(() => {})
  await Promise.race([host.exit, sleep(120_000)])
  host.signal('SIGKILL')
}

interface MemberEventRecord {
  type: string
  id: string
  incarnation: number
  at: number
}

/**
 * Which joined agents some view does not hold alive, and as what (for a run whose views did not converge):
 * with each viewer, its last event about the agent (type, the incarnation it holds, seconds ago), and the
 * highest incarnation of the agent any view has seen (a view that holds it at 0 only had it introduced).
 */
async function viewGaps(joined: AgentHost[]): Promise<string> {
  // Each viewer's list and events asked together: under load, asked apart they describe different moments.
  const views = await Promise.all(
    joined.map(host =>
      Promise.all([
        host.request('members', {}).catch(() => []) as Promise<Member[]>,
        host.request('memberEvents', {}).catch(() => []) as Promise<MemberEventRecord[]>,
      ]),
    ),
  )
  const events = views.map(([, list]) => list)
  const highest = new Map<string, number>()
  for (const list of events) {
    for (const event of list) highest.set(event.id, Math.max(highest.get(event.id) ?? 0, event.incarnation))
  }
  const gaps = new Map<string, string[]>()
  for (const viewer of joined.keys()) {
    const members = views[viewer][0] ?? []
    for (const [subject, other] of joined.entries()) {
      const status = members.find(member => member.id === other.id)?.status ?? 'missing'
      if (status === 'alive') continue
      const key = `#${subject} ${status} (highest incarnation seen ${highest.get(other.id) ?? '-'})`
      const last = events[viewer].filter(event => event.id === other.id).at(-1)
      const seen =
        last === undefined
          ? `#${viewer}`
          : `#${viewer} (${last.type} at ${last.incarnation}, ${Math.round((Date.now() - last.at) / 1000)} s ago)`
      gaps.set(key, [...(gaps.get(key) ?? []), seen])
    }
  }
  return [...gaps].map(([key, viewers]) => `${key} in ${viewers.join(' ')}`).join('; ') || 'none'
}

async function stormCost(hosts: AgentHost[]): Promise<StormReport> {
  const byPid = connectionsByPid()
  const connections = hosts.map(host => byPid.get(host.pid ?? -1) ?? 0)
  const swim = {
    sent: 0,
    pushPulls: 0,
    directGossip: 0,
    published: 0,
    received: 0,
    sendFailures: 0,
    publishFallbacks: 0,
  }
  for (const host of hosts) {
    const stats = (await host.request('membershipStats', {}).catch(() => undefined)) as
      | Partial<typeof swim>
      | undefined
    for (const key of Object.keys(swim) as (keyof typeof swim)[]) swim[key] += stats?.[key] ?? 0
  }
  return {
    agentCpuSeconds: hosts.reduce((sum, host) => sum + (cpuSeconds(host.pid) || 0), 0),
    connections: {
      median: percentile(connections, 50),
      max: Math.max(...connections),
      total: connections.reduce((sum, n) => sum + n, 0),
    },
    swim,
  }
}

async function main(): Promise<void> {
  const log = values.json ? (line: string) => console.error(line) : (line: string) => console.log(line)
  const reports: SizeReport[] = []
  for (const size of sizes) {
    const dir = mkdtempSync(join(tmpdir(), `conclave-scale-${size}-`))
    try {
      reports.push(await measure(size, dir, log))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const [baseline, scaled] = reports
  if (values['join-only']) {
    console.log(JSON.stringify({ machine: `${(await import('node:os')).cpus().length} cores`, reports }))
    return
  }
  const ratios = {
    singleWriteP50: scaled.memberWrite.p50Ms / baseline.memberWrite.p50Ms,
    concurrent64: scaled.memberWrite.concurrent64OpsPerSec / baseline.memberWrite.concurrent64OpsPerSec,
  }
  console.log(
    JSON.stringify({ machine: `${(await import('node:os')).cpus().length} cores`, reports, ratios }),
  )
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
