/**
 * `npm run bench -- --compare`: conclave side by side with etcd 3.4 (key-value writes and reads,
 * transactions, prefix lists, locks, failover) and with BullMQ on Redis (tasks), on this machine, with the same workloads driven the same way.
 *
 * - etcd: 3 members in 3 processes on loopback, each with its own data directory (WAL fsynced before a
 *   write is acknowledged, etcd's default); conclave: 3 agents in 3 processes on loopback TCP with durable
 *   storage. Both clusters run side by side and the workloads alternate between them step by step.
 * - This process (the load generator) drives both through the processes that hold each system's client: a
 *   child process with the `etcd3` client for etcd, a follower agent's own process for conclave (an
 *   application embeds its agent). `--conclave-client ipc` runs conclave's loops here instead, one IPC
 *   round trip per call. docs/bench.md explains the choice.
 * - Tasks: 3 processes each running a worker of concurrency 50 (a BullMQ `Worker`, `agent.tasks.process`),
 *   the first also submitting; from the first submission to the end of the last handler.
 *
 * A system that is not installed is skipped with a message saying how to install it. Prints a Markdown
 * table and writes every figure, the ratios and the machine to bench/results.json.
 *
 * Options: --duration-ms N (per load, default 5000), --failover-runs N (default 5), --tasks N (default
 * 5000), --flow-pairs N (default 1000), --only kv,tasks,flow (or any of put,get,lock,txn,list,failover,tasks,flow), --skip etcd,bullmq, --conclave-client embedded|ipc, --redis-appendfsync
 * everysec|always, --etcd-call-timeout-ms N (a deadline on each etcd3 call, and no per-host circuit
 * breaker; default: etcd3's defaults), --etcd-election-ms N and --etcd-heartbeat-ms N (etcd's timing;
 * default 1000 and 100, etcd's own), --out FILE (default bench/results.json), --verbose (the servers' and
 * agents' stderr), --counters (conclave's Raft entries, fsyncs, messages and proposals per task, per agent,
 * on stderr; with --skip bullmq the least costly run of conclave's task side alone).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BenchChild } from './bench-compare/child.ts'
import { ConclaveCluster } from './bench-compare/conclave.ts'
import { type AgentCounters, perTask } from './bench-compare/conclave-counters.ts'
import { hostDriver } from './bench-compare/conclave-driver.ts'
import { EtcdCluster, etcdVersion } from './bench-compare/etcd.ts'
import { runFlows } from './bench-compare/flow-bench.ts'
import { type KvSystem, kvRuns, runKvComparison, skippedKv, VALUE_SIZE } from './bench-compare/kv-bench.ts'
import type { BenchRequest, BenchTarget } from './bench-compare/protocol.ts'
import { type AppendFsync, RedisServer, redisVersion } from './bench-compare/redis.ts'
import { makeRun, type Outcome, type Run, table } from './bench-compare/report.ts'
import { runTasks, TASK_WORKER_CONCURRENCY, TASK_WORKERS, WARM_UP_TASKS } from './bench-compare/task-bench.ts'
import { runWorkload } from './bench-compare/workloads.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const ETCD_RUNNER = join(HERE, 'bench-compare', 'etcd-runner.ts')
const BULLMQ_WORKER = join(HERE, 'bench-compare', 'bullmq-worker.ts')

const args = process.argv.slice(2)
function option(name: string, fallback: string): string {
  const at = args.indexOf(name)
  return at >= 0 && args[at + 1] !== undefined ? args[at + 1] : fallback
}
const only = new Set(
  option('--only', 'kv,tasks,flow').replace('kv', 'put,get,lock,txn,list,failover').split(','),
)
const settings = {
  durationMs: Number(option('--duration-ms', '5000')),
  failoverRuns: Number(option('--failover-runs', '5')),
  tasks: Number(option('--tasks', '5000')),
  flowPairs: Number(option('--flow-pairs', '1000')),
  conclaveClient: option('--conclave-client', 'embedded'),
  redisAppendfsync: option('--redis-appendfsync', 'everysec') as AppendFsync,
  /** A deadline on each etcd3 call, with etcd3's per-host circuit breaker off; etcd3's defaults if absent. */
  etcdCallTimeoutMs: args.includes('--etcd-call-timeout-ms')
    ? Number(option('--etcd-call-timeout-ms', '0'))
    : undefined,
  valueSize: VALUE_SIZE,
  workloads: (['put', 'get', 'lock', 'txn', 'list', 'failover'] as const).filter(workload =>
    only.has(workload),
  ),
  /** etcd's --election-timeout and --heartbeat-interval in ms; etcd's defaults (1000, 100) if absent. */
  etcdElectionMs: args.includes('--etcd-election-ms') ? Number(option('--etcd-election-ms', '0')) : undefined,
  etcdHeartbeatMs: args.includes('--etcd-heartbeat-ms')
    ? Number(option('--etcd-heartbeat-ms', '0'))
    : undefined,
  log,
}
const skip = option('--skip', '').split(',')
const outFile = option('--out', join('bench', 'results.json'))
const stderr = args.includes('--verbose') ? 'inherit' : 'ignore'

function log(message: string): void {
  process.stderr.write(`${message}\n`)
}

function packageVersion(name: string): string | undefined {
  try {
    const path = createRequire(import.meta.url).resolve(`${name}/package.json`)
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
  } catch {
    return undefined
  }
}

/** Why etcd cannot run here, or undefined if it can. */
function etcdMissing(): string | undefined {
  if (skip.includes('etcd')) return 'not run (--skip etcd)'
  if (etcdVersion() === undefined) return 'etcd not found: apt-get install etcd-server etcd-client'
  if (packageVersion('etcd3') === undefined) return 'the etcd3 npm package is missing: run npm install'
  return undefined
}

/** Why BullMQ cannot run here, or undefined if it can. */
function bullmqMissing(): string | undefined {
  if (skip.includes('bullmq')) return 'not run (--skip bullmq)'
  if (redisVersion() === undefined) return 'redis-server not found: apt-get install redis-server'
  for (const name of ['bullmq', 'ioredis']) {
    if (packageVersion(name) === undefined) return `the ${name} npm package is missing: run npm install`
  }
  return undefined
}

/** Where conclave's workloads run: inside agent `index`'s process, or here through its IPC requests. */
function conclaveTarget(cluster: ConclaveCluster, index: number): BenchTarget {
  if (settings.conclaveClient === 'embedded') return cluster.target(index)
  const driver = hostDriver(cluster.hosts[index])
  return {
    bench: async (request: BenchRequest) => {
      if (request.kind !== 'workload') throw new Error('only workloads run through IPC')
      return runWorkload(driver, request.spec)
    },
  }
}

function conclaveKvSystem(cluster: ConclaveCluster, leader: number): KvSystem {
  const followerOf = (leaderIndex: number): number => (leaderIndex === 0 ? 1 : 0)
  return {
    name: 'conclave',
    steady: conclaveTarget(cluster, followerOf(leader)),
    leaderIndex: () => cluster.leaderIndex(),
    kill: index => cluster.kill(index),
    restart: index => cluster.restart(index),
    failoverTarget: leaderIndex => conclaveTarget(cluster, followerOf(leaderIndex)),
  }
}

function etcdKvSystem(cluster: EtcdCluster, runner: BenchChild): KvSystem {
  return {
    name: 'etcd',
    steady: runner,
    leaderIndex: () => cluster.leaderIndex(),
    kill: index => cluster.kill(index),
    restart: index => cluster.restart(index),
    failoverTarget: () => runner,
  }
}

async function kvComparison(root: string, conclave: ConclaveCluster): Promise<Run[]> {
  const etcdReason = etcdMissing()
  if (etcdReason !== undefined) log(`skipping etcd: ${etcdReason}`)
  let etcd: EtcdCluster | undefined
  let runner: BenchChild | undefined
  try {
    const systems = [conclaveKvSystem(conclave, await conclave.leaderIndex())]
    if (etcdReason === undefined) {
      log('etcd: starting 3 members')
      etcd = await EtcdCluster.start(join(root, 'etcd'), {
        electionMs: settings.etcdElectionMs,
        heartbeatMs: settings.etcdHeartbeatMs,
      })
      const clientOptions = { endpoints: etcd.endpoints, callTimeoutMs: settings.etcdCallTimeoutMs }
      runner = await BenchChild.spawn(ETCD_RUNNER, clientOptions, stderr)
      systems.unshift(etcdKvSystem(etcd, runner))
    }
    const figures = await runKvComparison(systems, settings)
    return kvRuns(figures.get('etcd') ?? skippedKv(etcdReason ?? ''), figures.get('conclave')!, settings)
  } finally {
    await runner?.stop()
    await etcd?.stop()
  }
}

async function bullmqTasks(root: string): Promise<Outcome> {
  const reason = bullmqMissing()
  if (reason !== undefined) {
    log(`skipping BullMQ: ${reason}`)
    return { skipped: reason }
  }
  log(`BullMQ: starting redis-server (appendonly yes, appendfsync ${settings.redisAppendfsync})`)
  const redis = await RedisServer.start(join(root, 'redis'), settings.redisAppendfsync)
  const workers: BenchChild[] = []
  try {
    for (let i = 0; i < TASK_WORKERS; i++) {
      workers.push(await BenchChild.spawn(BULLMQ_WORKER, { port: redis.port }, stderr))
    }
    return await runTasks('BullMQ', workers, `bench-${Date.now()}`, settings)
  } finally {
    await Promise.all(workers.map(worker => worker.stop()))
    await redis.stop()
  }
}

/** BullMQ's FlowProducer against conclave's dependsOn: parent/child pairs on the same 3 worker processes. */
async function flowComparison(root: string, cluster: ConclaveCluster): Promise<Run> {
  const flowSettings = { pairs: settings.flowPairs, log }
  let bullmq: Outcome
  const reason = bullmqMissing()
  if (reason !== undefined) bullmq = { skipped: reason }
  else {
    const redis = await RedisServer.start(join(root, 'redis-flow'), settings.redisAppendfsync)
    const workers: BenchChild[] = []
    try {
      for (let i = 0; i < TASK_WORKERS; i++) {
        workers.push(await BenchChild.spawn(BULLMQ_WORKER, { port: redis.port }, stderr))
      }
      bullmq = await runFlows('BullMQ', workers, `flow-${Date.now()}`, flowSettings)
    } finally {
      await Promise.all(workers.map(worker => worker.stop()))
      await redis.stop()
    }
  }
  const targets = cluster.hosts.map((_, index) => cluster.target(index))
  const ours = await runFlows('conclave', targets, 'flow', flowSettings)
  const label = `flows: ${settings.flowPairs} parent/child pairs, ${TASK_WORKERS} workers × ${TASK_WORKER_CONCURRENCY}`
  const params = {
    pairs: settings.flowPairs,
    workers: TASK_WORKERS,
    workerConcurrency: TASK_WORKER_CONCURRENCY,
    redisAppendfsync: settings.redisAppendfsync,
  }
  return makeRun('flow', label, params, 'bullmq', bullmq, ours)
}

async function conclaveTasks(cluster: ConclaveCluster): Promise<Outcome> {
  const targets = cluster.hosts.map((_, index) => cluster.target(index))
  try {
    // agent.tasks throws while task distribution is not built: say so instead of failing the whole run.
    await targets[0].bench({ kind: 'taskWorker', queue: 'probe', concurrency: 1 })
    await targets[0].bench({ kind: 'taskStop' })
  } catch (err) {
    const reason = `conclave tasks are not available: ${(err as Error).message}`
    log(`skipping ${reason}`)
    return { skipped: reason }
  }
  if (!args.includes('--counters')) return runTasks('conclave', targets, 'bench', settings)
  const before = (await Promise.all(
    targets.map(target => target.bench({ kind: 'counters' })),
  )) as AgentCounters[]
  const outcome = await runTasks('conclave', targets, 'bench', settings)
  const after = (await Promise.all(
    targets.map(target => target.bench({ kind: 'counters' })),
  )) as AgentCounters[]
  // The warm-up's tasks ran between the two readings too.
  const tasks = settings.tasks + Math.min(WARM_UP_TASKS, settings.tasks)
  for (let i = 0; i < targets.length; i++) {
    log(`conclave agent ${i}, per task: ${JSON.stringify(perTask(before[i], after[i], tasks))}`)
  }
  return outcome
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'conclave-compare-'))
  // Also on SIGINT or SIGTERM, which end the process without running the finally below.
  process.once('exit', () => rmSync(root, { recursive: true, force: true }))
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAverageAtStart: loadavg().map(load => Math.round(load * 100) / 100),
    etcd: etcdVersion() ?? 'missing',
    redis: redisVersion() ?? 'missing',
    etcd3: packageVersion('etcd3') ?? 'missing',
    bullmq: packageVersion('bullmq') ?? 'missing',
    ioredis: packageVersion('ioredis') ?? 'missing',
    fileSystem:
      spawnSync('df', ['-T', root], { encoding: 'utf8' }).stdout?.split('\n')[1]?.split(/\s+/)[1] ?? '',
  }
  const runs: Run[] = []
  let conclave: ConclaveCluster | undefined
  try {
    log('conclave: starting 3 agents')
    conclave = await ConclaveCluster.start(join(root, 'conclave'), TASK_WORKER_CONCURRENCY, stderr)
    if (settings.workloads.length > 0) runs.push(...(await kvComparison(root, conclave)))
    if (only.has('tasks')) {
      const bullmq = await bullmqTasks(root)
      const ours = await conclaveTasks(conclave)
      const label = `tasks submit → done, ${TASK_WORKERS} workers × ${TASK_WORKER_CONCURRENCY}`
      const params = {
        tasks: settings.tasks,
        workers: TASK_WORKERS,
        workerConcurrency: TASK_WORKER_CONCURRENCY,
        redisAppendfsync: settings.redisAppendfsync,
      }
      runs.push(makeRun('tasks', label, params, 'bullmq', bullmq, ours))
    }
    if (only.has('flow')) runs.push(await flowComparison(root, conclave))
  } finally {
    await conclave?.stop()
    rmSync(root, { recursive: true, force: true })
  }
  const { log: _log, ...recorded } = settings
  const report = {
    benchmark: 'conclave vs etcd 3.4 (KV, locks, failover) and BullMQ on Redis (tasks), on one machine',
    date: new Date().toISOString(),
    machine,
    // null rather than absent: an etcd option left at etcd's default is part of what was measured.
    settings: {
      ...recorded,
      etcdCallTimeoutMs: settings.etcdCallTimeoutMs ?? null,
      etcdElectionMs: settings.etcdElectionMs ?? null,
      etcdHeartbeatMs: settings.etcdHeartbeatMs ?? null,
    },
    runs,
  }
  mkdirSync(dirname(outFile), { recursive: true })
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`)
  console.log(
    `${machine.cores} cores (${machine.cpu}), Node ${machine.node}, etcd ${machine.etcd}, Redis ${machine.redis}, ` +
      `BullMQ ${machine.bullmq}; conclave client: ${settings.conclaveClient}`,
  )
  console.log(table(runs))
  const reasons = new Set<string>()
  for (const run of runs) {
    for (const outcome of [run.baselineResult, run.conclave])
      if ('skipped' in outcome) reasons.add(outcome.skipped)
  }
  for (const reason of reasons) console.log(`skipped: ${reason}`)
  console.log(`written to ${outFile}`)
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
