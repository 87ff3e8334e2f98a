/**
 * `npm run bench`: conclave as users run it — 3 agents in 3 processes over loopback TCP with durable storage
 * (SQLite, fsync per Raft batch) — driven from a follower. Prints proposals/s and p50/p99 latency at 1, 16
 * and 64 concurrent proposers of 100-byte values (bench/propose.json), then the membership figure: time from
 * kill -9 to the last survivor marking the agent dead, with 25 agents (scripts/bench-membership.ts).
 *
 * Options: --duration-ms N (per concurrency level, default 5000), --json, --skip-membership.
 * `npm run bench -- --compare [...]` runs the side-by-side comparison with etcd and BullMQ instead
 * (scripts/bench-compare.ts, docs/bench.md), which writes bench/results.json.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HostStatus } from './agent-host.ts'
import { AgentHost } from './lib/hosts.ts'

interface LevelResult {
  concurrency: number
  proposals: number
  opsPerSecond: number
  p50Ms: number
  p99Ms: number
}

const args = process.argv.slice(2)
if (args.includes('--compare')) {
  const script = new URL('./bench-compare.ts', import.meta.url).pathname
  const rest = args.filter(arg => arg !== '--compare')
  const run = spawnSync(process.execPath, [script, ...rest], { stdio: 'inherit' })
  process.exit(run.status ?? 1)
}
const durationMs = Number(args[args.indexOf('--duration-ms') + 1] || 0) || 5000
const json = args.includes('--json')

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

async function main(): Promise<void> {
  const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-bench-'))
  const hosts: AgentHost[] = []
  try {
    for (let i = 0; i < 3; i++) {
      hosts.push(await AgentHost.spawn({ name: `bench${i}`, dataDir: join(dataRoot, `bench${i}`) }, 'ignore'))
    }
    await hosts[0].request('join', {})
    for (const host of hosts.slice(1)) await host.request('join', { bootstrap: hosts[0].addrs, voters: 3 })
    for (;;) {
      const status = (await hosts[0].request('status', {})) as HostStatus
      if (status.voters === 3) break
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    let follower = hosts[1]
    for (const host of hosts) {
      if (!((await host.request('status', {})) as HostStatus).isLeader) follower = host
    }
    // Warm up connections, JIT and the SQLite page cache.
    await follower.request('proposeMany', { prefix: 'warm/', count: 2000, concurrency: 16, size: 100 })
    const results: LevelResult[] = []
    for (const concurrency of [1, 16, 64]) {
      // Size the run so it lasts about durationMs: estimate from a short probe.
      const probe = (await follower.request('proposeMany', {
        prefix: `probe${concurrency}/`,
        count: concurrency * 20,
        concurrency,
        size: 100,
      })) as { elapsedMs: number }
      const rate = (concurrency * 20) / (probe.elapsedMs / 1000)
      const count = Math.max(concurrency * 20, Math.round((rate * durationMs) / 1000))
      const run = (await follower.request('proposeMany', {
        prefix: `c${concurrency}/`,
        count,
        concurrency,
        size: 100,
      })) as { elapsedMs: number; latencies: number[] }
      const sorted = run.latencies.sort((a, b) => a - b)
      results.push({
        concurrency,
        proposals: count,
        opsPerSecond: Math.round(count / (run.elapsedMs / 1000)),
        p50Ms: Number(percentile(sorted, 50).toFixed(3)),
        p99Ms: Number(percentile(sorted, 99).toFixed(3)),
      })
    }
    const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version }
    const report = {
      benchmark: 'propose from a follower, 3 agents, 3 processes, TCP, durable',
      machine,
      results,
    }
    mkdirSync('bench', { recursive: true })
    writeFileSync(join('bench', 'propose.json'), `${JSON.stringify(report, null, 2)}\n`)
    if (json) {
      console.log(JSON.stringify(report))
    } else {
      console.log(`conclave: ${report.benchmark}`)
      console.log(`machine: ${machine.cores} cores, ${machine.cpu}, Node ${machine.node}`)
      console.log('concurrency  proposals/s   p50 ms   p99 ms')
      for (const r of results) {
        console.log(
          `${String(r.concurrency).padStart(11)}  ${String(r.opsPerSecond).padStart(11)}  ${r.p50Ms.toFixed(2).padStart(7)}  ${r.p99Ms.toFixed(2).padStart(7)}`,
        )
      }
    }
  } finally {
    await Promise.all(hosts.map(host => host.stop()))
    rmSync(dataRoot, { recursive: true, force: true })
  }
}

async function membership(): Promise<void> {
  if (args.includes('--skip-membership')) return
  const script = new URL('./bench-membership.ts', import.meta.url).pathname
  const run = spawnSync(process.execPath, [script], { stdio: 'inherit' })
  if (run.status !== 0) throw new Error(`membership benchmark failed with ${run.status}`)
}

main()
  .then(membership)
  .catch(err => {
    console.error(err)
    process.exit(1)
  })
