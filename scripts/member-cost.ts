/**
 * `npm run bench:member-cost -- --agents 10`: what an agent costs at rest, by kind (leader, voters, standbys,
 * members), as users run it: N agents, each its own process over loopback TCP with durable storage, started
 * at once and joined to the first; once every view holds all N alive and a settling time has passed, CPU
 * and read/write system calls over `--idle` seconds (from /proc) and RSS at its end. `--memory` adds, for the leader and one member, what
 * their memory holds (`process.memoryUsage()`, V8's heap spaces and code statistics, after a full GC);
 * `--snapshot DIR` writes a V8 heap snapshot of that member there; `--profile DIR` a CPU profile of every
 * agent over the idle window (`<kind>-<i>.cpuprofile`, for Chrome DevTools). The last line of stdout is JSON.
 *
 * Lighter than `bench:scale` (no writes, no kills): for measuring a change to the idle cost. Agent processes
 * take Node flags from `CONCLAVE_AGENT_EXEC_ARGV` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`), and with
 * `CONCLAVE_AGENT_BUNDLE=1` run bundled, as `conclave agent` runs (`npm run build:bundle -- --agent-host` first).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { HostStatus } from './agent-host.ts'
import { AgentHost } from './lib/hosts.ts'

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10' },
    idle: { type: 'string', default: '20' },
    settle: { type: 'string', default: '5' },
    memory: { type: 'boolean', default: false },
    snapshot: { type: 'string' },
    profile: { type: 'string' },
  },
  strict: true,
})
const size = Number(values.agents)
const idleSeconds = Number(values.idle)
const settleSeconds = Number(values.settle)
if (!Number.isInteger(size) || size < 3) throw new RangeError('--agents must be an integer >= 3')
if (!(idleSeconds > 0) || !(settleSeconds >= 0)) throw new RangeError('--idle > 0 and --settle >= 0 seconds')

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const CLOCK_TICKS = 100 // USER_HZ on Linux
const MiB = 1024 * 1024

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function cpuSeconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/**
 * Read and write system calls so far (`/proc/PID/io`): an idle agent's are its sockets' (a message out is
 * about one write), so their rate counts what it sends and receives, without the noise of CPU time on a
 * shared machine.
 */
function syscalls(pid: number | undefined): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  const field = (name: string) => Number(new RegExp(`${name}: (\\d+)`).exec(io)?.[1] ?? Number.NaN)
  return { reads: field('syscr'), writes: field('syscw') }
}

/**
 * The main thread's voluntary context switches so far: each is the event loop going to sleep with nothing
 * to do, so their rate counts its wake-ups (timers and socket events), which cost an idle process more than
 * the work they run.
 */
function wakeups(pid: number | undefined): number {
  const match = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) : Number.NaN
}

/** RSS and its private part (`RssAnon`: heap, stacks); the rest is mostly the node binary's pages, shared. */
function rssMiB(pid: number | undefined, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) / 1024 : Number.NaN
}

type SwimStats = Record<'sent' | 'received' | 'published', number>

/** The agent's SWIM counters (`Membership.stats()`): messages sent, taken in, batches published. */
async function swimStats(host: AgentHost): Promise<SwimStats> {
  const stats = (await host.request('membershipStats', {})) as SwimStats
  return { sent: stats.sent, received: stats.received, published: stats.published }
}

async function appliedIndex(host: AgentHost | undefined): Promise<number> {
  return host === undefined ? Number.NaN : ((await host.request('appliedIndex', {})) as number)
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const start = performance.now()
  while (performance.now() - start < ms) {
    if (await check().catch(() => false)) return true
    await sleep(200)
  }
  return false
}

type Kind = 'leader' | 'voter' | 'standby' | 'member'
interface ViewMember {
  id: string
  status: string
  role: 'voter' | 'nonvoter'
  replica: boolean
}

interface MemoryReport {
  usage: Record<string, number>
  heap: Record<string, number>
  spaces: { name: string; size: number; used: number }[]
  code: Record<string, number>
}

function formatMemory(kind: string, report: MemoryReport): string[] {
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)}`
  const { usage, heap } = report
  const lines = [
    `  ${kind}: rss ${mib(usage.rss)} MiB; V8 heap total ${mib(usage.heapTotal)}, used ${mib(usage.heapUsed)}; external ${mib(usage.external)} (array buffers ${mib(usage.arrayBuffers)}); malloced ${mib(heap.malloced_memory)} (peak ${mib(heap.peak_malloced_memory)}); contexts ${heap.number_of_native_contexts}`,
    `    spaces (used/size MiB): ${report.spaces.map(space => `${space.name.replace('_space', '')} ${mib(space.used)}/${mib(space.size)}`).join(', ')}`,
    `    code: bytecode+metadata ${mib(report.code.bytecode_and_metadata_size)}, code+metadata ${mib(report.code.code_and_metadata_size)}, external scripts ${mib(report.code.external_script_source_size)}`,
  ]
  return lines
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-member-cost-'))
  const hosts: AgentHost[] = []
  try {
    const loadStart = loadavg()[0]
    hosts.push(
      ...(await Promise.all(
        Array.from({ length: size }, (_, i) =>
          AgentHost.spawn({ name: `c${i}`, dataDir: join(dir, `c${i}`) }, 'ignore'),
        ),
      )),
    )
    await hosts[0].request('join', { voters: 3 })
    await Promise.all(hosts.slice(1).map(host => host.request('join', { bootstrap: hosts[0].addrs })))
    const converged = await until(async () => {
      for (const host of hosts) {
        const view = (await host.request('members', {})) as ViewMember[]
        if (view.filter(member => member.status === 'alive').length < size) return false
      }
      return true
    }, 300_000)
    // A machine loaded by other work may take minutes to bring 20 or more agent processes to one view.
    if (!converged) throw new Error('the views did not converge within 300 s')
    await sleep(settleSeconds * 1000)
    const view = (await hosts[0].request('members', {})) as ViewMember[]
    const statuses = (await Promise.all(hosts.map(host => host.request('status', {})))) as HostStatus[]
    const kinds: Kind[] = hosts.map((host, i) => {
      if (statuses[i].isLeader) return 'leader'
      const entry = view.find(member => member.id === host.id)
      if (entry?.role === 'voter') return 'voter'
      return entry?.replica === true ? 'standby' : 'member'
    })
    if (values.profile !== undefined)
      await Promise.all(hosts.map(host => host.request('cpuProfile', { action: 'start' })))
    const swimBefore = await Promise.all(hosts.map(host => swimStats(host)))
    const appliedBefore = await appliedIndex(hosts[kinds.indexOf('leader')])
    const before = hosts.map(host => cpuSeconds(host.pid))
    const ioBefore = hosts.map(host => syscalls(host.pid))
    const wakeupsBefore = hosts.map(host => wakeups(host.pid))
    await sleep(idleSeconds * 1000)
    const after = hosts.map(host => cpuSeconds(host.pid))
    const ioAfter = hosts.map(host => syscalls(host.pid))
    const wakeupsAfter = hosts.map(host => wakeups(host.pid))
    const swimAfter = await Promise.all(hosts.map(host => swimStats(host)))
    const appliedAfter = await appliedIndex(hosts[kinds.indexOf('leader')])
    const swimRate = (i: number, field: keyof SwimStats) =>
      (swimAfter[i][field] - swimBefore[i][field]) / idleSeconds
    if (values.profile !== undefined) {
      const dir = values.profile
      await Promise.all(
        hosts.map((host, i) =>
          host.request('cpuProfile', { action: 'stop', path: join(dir, `${kinds[i]}-${i}.cpuprofile`) }),
        ),
      )
      console.log(`  CPU profiles of the idle window in ${dir}`)
    }
    const rss = hosts.map(host => rssMiB(host.pid))
    const anon = hosts.map(host => rssMiB(host.pid, 'RssAnon'))
    const cpu = hosts.map((_, i) => (after[i] - before[i]) / idleSeconds)
    const writesPerSecond = hosts.map((_, i) => (ioAfter[i].writes - ioBefore[i].writes) / idleSeconds)
    const wakeupsPerSecond = hosts.map((_, i) => (wakeupsAfter[i] - wakeupsBefore[i]) / idleSeconds)
    const readsPerSecond = hosts.map((_, i) => (ioAfter[i].reads - ioBefore[i].reads) / idleSeconds)
    const byKind = (kind: Kind) => ({
      count: kinds.filter(k => k === kind).length,
      medianCpu: median(cpu.filter((_, i) => kinds[i] === kind)),
      medianRssMiB: median(rss.filter((_, i) => kinds[i] === kind)),
      medianAnonMiB: median(anon.filter((_, i) => kinds[i] === kind)),
      medianWritesPerSecond: median(writesPerSecond.filter((_, i) => kinds[i] === kind)),
      medianReadsPerSecond: median(readsPerSecond.filter((_, i) => kinds[i] === kind)),
      medianWakeupsPerSecond: median(wakeupsPerSecond.filter((_, i) => kinds[i] === kind)),
      swimPerSecond: {
        sent: median(hosts.map((_, i) => swimRate(i, 'sent')).filter((_, i) => kinds[i] === kind)),
        received: median(hosts.map((_, i) => swimRate(i, 'received')).filter((_, i) => kinds[i] === kind)),
        published: median(hosts.map((_, i) => swimRate(i, 'published')).filter((_, i) => kinds[i] === kind)),
      },
    })
    const report = {
      agents: size,
      idleSeconds,
      loadAverage: { start: loadStart, end: loadavg()[0] },
      totalCores: cpu.reduce((sum, share) => sum + share, 0),
      /** The Raft entries the leader applied per second while idle. */
      entriesPerSecond: (appliedAfter - appliedBefore) / idleSeconds,
      medianCpu: median(cpu),
      medianRssMiB: median(rss),
      medianAnonMiB: median(anon),
      leader: byKind('leader'),
      voter: byKind('voter'),
      standby: byKind('standby'),
      member: byKind('member'),
      memory: {} as Record<string, MemoryReport>,
    }
    const pct = (share: number) => `${(share * 100).toFixed(2)} %`
    console.log(
      `${size} agents, idle ${idleSeconds} s: all ${report.totalCores.toFixed(3)} cores, median ${pct(report.medianCpu)}, RSS median ${report.medianRssMiB.toFixed(1)} MiB (private ${report.medianAnonMiB.toFixed(1)}); load ${report.loadAverage.start.toFixed(1)} → ${report.loadAverage.end.toFixed(1)}`,
    )
    console.log(`  Raft entries applied at the leader: ${report.entriesPerSecond.toFixed(2)}/s`)
    for (const kind of ['leader', 'voter', 'standby', 'member'] as const) {
      const k = report[kind]
      if (k.count > 0)
        console.log(
          `  ${kind} ×${k.count}: CPU median ${pct(k.medianCpu)}, RSS median ${k.medianRssMiB.toFixed(1)} MiB (private ${k.medianAnonMiB.toFixed(1)}); CPU s per idle minute ${(k.medianCpu * 60).toFixed(2)}; wake-ups/s ${k.medianWakeupsPerSecond.toFixed(1)}; syscalls/s: ${k.medianWritesPerSecond.toFixed(1)} writes, ${k.medianReadsPerSecond.toFixed(1)} reads; SWIM messages/s: ${k.swimPerSecond.sent.toFixed(1)} sent, ${k.swimPerSecond.received.toFixed(1)} received, ${k.swimPerSecond.published.toFixed(2)} published`,
        )
    }
    const member = hosts[kinds.lastIndexOf('member')]
    if (values.memory) {
      for (const [kind, host] of [
        ['leader', hosts[kinds.indexOf('leader')]],
        ['member', member],
      ] as const) {
        if (host === undefined) continue
        const memory = (await host.request('memory', { gc: true })) as MemoryReport
        report.memory[kind] = memory
        for (const line of formatMemory(kind, memory)) console.log(line)
      }
    }
    if (values.snapshot !== undefined && member !== undefined) {
      const path = join(values.snapshot, `member-${member.pid}.heapsnapshot`)
      console.log(`  heap snapshot: ${await member.request('heapSnapshot', { path })}`)
    }
    console.log(JSON.stringify(report))
  } finally {
    await Promise.all(hosts.map(host => host.stop().catch(() => host.signal('SIGKILL'))))
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
