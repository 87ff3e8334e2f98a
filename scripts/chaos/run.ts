/**
 * One chaos run: agents as processes, the client workload, the nemesis; then every fault undone, the
 * tasks drained, final reads, and the checks on the recorded history. Used by `npm run chaos` and by the
 * short version in `npm test`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentOptions } from '../../src/index.ts'
import { AgentHost } from '../lib/hosts.ts'
import { Prng } from '../sim/prng.ts'
import {
  type CheckReport,
  checkKvLinearizable,
  checkLockSafety,
  checkRegister,
  checkTasks,
} from './checkers.ts'
import { Cluster, sleep } from './cluster.ts'
import { EventCollector } from './events.ts'
import { History, type OperationCounts } from './history.ts'
import type { TaskRecord } from './host-ops.ts'
import { type ChaosIdentities, chaosIdentities, type HostileStats } from './hostile.ts'
import { FAULT_KINDS, type FaultKind, Nemesis, type NemesisOptions } from './nemesis.ts'
import { REGISTER_KEY, Workload, type WorkloadOptions } from './workload.ts'

export interface ChaosOptions {
  agents: number
  voters: number
  durationMs: number
  seed: number
  faults: readonly FaultKind[]
  workload: Partial<WorkloadOptions>
  nemesis: Partial<NemesisOptions>
  /** Timing of every agent. */
  agentOptions: Partial<AgentOptions>
  /**
   * The agents' clocks: wall clocks set off by up to `skewMs` either way (spread evenly across the agents,
   * in a seeded order) and clocks running up to `rate` faster or slower (1 + r, |r| <= rate). Default none.
   */
  clocks?: { skewMs: number; rate: number }
  /** Shell bug switches every agent runs with (`src/shell-bugs.ts`): to see the checks catch them. */
  bugs?: string[]
  /** How long, after the faults end, the tasks may take to finish. */
  drainTimeoutMs: number
  /** Budget of the linearizability checker. */
  checkTimeoutMs: number
  /** Progress lines. */
  log: (line: string) => void
  stderr: 'inherit' | 'ignore'
  /** SPIFFE identities on every agent (each may do everything). Implied by `hostile`. */
  secure: boolean
  /** A member with few rights attacks the cluster for the whole run (`hostile.ts`). */
  hostile: boolean
}

export const DEFAULT_CHAOS: ChaosOptions = {
  agents: 5,
  voters: 5,
  durationMs: 60_000,
  seed: 1,
  faults: FAULT_KINDS,
  workload: {},
  nemesis: {},
  agentOptions: { sessionTtlMs: 3000 },
  drainTimeoutMs: 60_000,
  checkTimeoutMs: 60_000,
  log: () => {},
  stderr: 'ignore',
  secure: false,
  hostile: false,
}

/** Latency of the clients' writes (put, cas, delete) that completed, ms. */
export interface WriteLatency {
  count: number
  p50: number
  p99: number
}

export interface ChaosResult {
  ok: boolean
  seed: number
  agents: number
  /** Time under faults, ms. */
  durationMs: number
  /** The whole run, start to verdict, ms. */
  elapsedMs: number
  operations: number
  counts: OperationCounts
  /** Errors the clients saw, by operation kind and error name. */
  errors: Record<string, Record<string, number>>
  /** One message per error name. */
  errorExamples: Record<string, string>
  faults: Record<string, number>
  checks: CheckReport[]
  leaderChanges: number
  steals: number
  suspicions: number
  deaths: number
  /** Things that are not check failures but deserve a look: refused operations, slow recoveries. */
  notes: string[]
  writeLatency: WriteLatency
  /** What the hostile member sent and how it was answered, with `hostile`. */
  hostile?: HostileStats
}

const TERMINAL = new Set(['completed', 'dead', 'expired'])

export async function runChaos(partial: Partial<ChaosOptions> = {}): Promise<ChaosResult> {
  const options: ChaosOptions = { ...DEFAULT_CHAOS, ...partial }
  const { log } = options
  const began = performance.now()
  const rng = new Prng(options.seed, 'chaos')
  const notes: string[] = []
  log(`starting ${options.agents} agents (seed ${options.seed})`)
  const clocks = agentClocks(options.agents, options.clocks, rng.stream('clocks'))
  for (const [index, clock] of clocks.entries()) {
    if (clock !== undefined) log(`a${index}: wall clock ${clock.wallOffsetMs} ms off, rate ${clock.rate}`)
  }
  const identities = options.secure || options.hostile ? chaosIdentities() : undefined
  const cluster = await phase('forming the cluster', () =>
    Cluster.start({
      agents: options.agents,
      voters: options.voters,
      agentOptions: options.agentOptions,
      perAgent: index => ({
        ...(clocks[index] === undefined ? {} : { clock: clocks[index] }),
        ...(options.bugs === undefined ? {} : { bugs: options.bugs }),
        ...(identities === undefined ? {} : { security: identities.agent(index) }),
      }),
      prefix: 'a',
      stderr: options.stderr,
    }),
  )
  let hostile: Hostile | undefined
  try {
    await cluster.waitForVoters(60_000)
    const history = new History()
    const collector = new EventCollector(cluster, history)
    const startWorker = async (index: number): Promise<void> => {
      await cluster.chaos(index, { op: 'worker', durationMs: 150, concurrency: 2, steal: true }, 10_000)
    }
    await phase('starting the workers', () => Promise.all(cluster.slots.map(slot => startWorker(slot.index))))
    cluster.afterRestart = async index => {
      await startWorker(index).catch(err => {
        notes.push(`worker restart: ${err}`)
      })
    }
    collector.start()
    const workload = new Workload(cluster, history, rng.stream('workload'), options.workload)
    const nemesis = new Nemesis(
      cluster,
      history,
      rng.stream('nemesis'),
      { kinds: options.faults, ...options.nemesis },
      text => log(`  fault: ${text}`),
    )
    log(
      `cluster formed in ${Math.round(performance.now() - began)} ms; workload and faults for ${options.durationMs / 1000} s`,
    )
    if (options.hostile && identities !== undefined) {
      hostile = await phase('starting the hostile member', () => Hostile.start(cluster, identities, options))
      log('hostile member joined; attacking')
    }
    workload.start()
    nemesis.start()
    const faultsFrom = performance.now()
    for (;;) {
      const remaining = options.durationMs - (performance.now() - faultsFrom)
      if (remaining <= 0) break
      await sleep(Math.min(5000, remaining))
      log(`  ${Math.round((performance.now() - faultsFrom) / 1000)} s: ${history.total} operations`)
    }
    await nemesis.stop()
    const hostileStats = await hostile?.stop()
    log('faults over: resuming, healing, restarting')
    await cluster.recoverAll()
    await workload.stop()
    const recovered = performance.now()
    await cluster.waitForLeader(30_000)
    const leaderAfter = Math.round(performance.now() - recovered)
    if (leaderAfter > 5000) notes.push(`a leader took ${leaderAfter} ms to appear after the faults ended`)

    log('draining tasks')
    const records = await drainTasks(cluster, history, options.drainTimeoutMs, notes)
    log('final reads')
    for (const key of [...workload.kvKeys, REGISTER_KEY]) await finalRead(workload, cluster, key, notes)
    await collector.stop()
    notes.push(...workload.errors)

    log('checking')
    const kvHistory = history.kv
    const registerFinal = [...kvHistory]
      .reverse()
      .find(op => op.input.key === REGISTER_KEY && op.input.op === 'get' && op.output !== undefined)
    const checks = [
      checkKvLinearizable(kvHistory, options.checkTimeoutMs),
      checkLockSafety(history.grants),
      checkRegister(kvHistory, registerFinal?.output?.value),
      checkTasks(history.tasks, records, history.completions),
    ]
    return {
      ok: checks.every(check => check.ok),
      seed: options.seed,
      agents: options.agents,
      durationMs: options.durationMs,
      elapsedMs: Math.round(performance.now() - began),
      operations: history.total,
      counts: history.counts,
      errors: history.errors,
      errorExamples: history.errorExamples,
      faults: nemesis.counts,
      checks,
      leaderChanges: collector.leaderChanges,
      steals: collector.steals,
      suspicions: collector.suspicions,
      deaths: collector.deaths,
      notes,
      writeLatency: writeLatency(kvHistory),
      ...(hostileStats === undefined ? {} : { hostile: hostileStats }),
    }
  } finally {
    await hostile?.destroy()
    await cluster.destroy()
  }
}

/** `run`, its failure named by what it was doing. */
async function phase<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    throw new Error(`chaos run failed ${what}: ${err}`, { cause: err })
  }
}

/** p50 and p99 of the writes that completed (their outcome known), in the parent's clock. */
export function writeLatency(
  history: readonly { input: { op: string }; output: unknown; call: number; return: number }[],
): WriteLatency {
  const times = history
    .filter(op => op.input.op !== 'get' && op.output !== undefined && Number.isFinite(op.return))
    .map(op => op.return - op.call)
    .sort((a, b) => a - b)
  const at = (q: number): number =>
    times.length === 0 ? 0 : times[Math.min(times.length - 1, Math.floor(q * times.length))]
  return { count: times.length, p50: at(0.5), p99: at(0.99) }
}

/** The hostile member's process: joined as a member with few rights, attacking until stopped. */
class Hostile {
  private readonly host: AgentHost
  private readonly dataDir: string

  private constructor(host: AgentHost, dataDir: string) {
    this.host = host
    this.dataDir = dataDir
  }

  static async start(cluster: Cluster, identities: ChaosIdentities, options: ChaosOptions): Promise<Hostile> {
    const dataDir = mkdtempSync(join(tmpdir(), 'conclave-hostile-'))
    const host = await AgentHost.spawn(
      { ...options.agentOptions, name: 'hostile', dataDir, security: identities.hostile, concurrency: 1 },
      options.stderr,
    )
    const hostile = new Hostile(host, dataDir)
    try {
      const bootstrap = cluster.slots.flatMap(slot => slot.host?.addrs ?? [])
      // Joining goes through the leader, which a loaded machine may keep busy past one join's deadline.
      const giveUpAt = performance.now() + 180_000
      for (;;) {
        try {
          await host.request('join', { bootstrap })
          break
        } catch (err) {
          if (performance.now() > giveUpAt) throw err
          await sleep(1_000)
        }
      }
      await host.request('chaos', { op: 'hostile', action: 'start', roundMs: 200, lockFlood: 32 })
    } catch (err) {
      await hostile.destroy()
      throw err
    }
    return hostile
  }

  async stop(): Promise<HostileStats | undefined> {
    try {
      return (await this.host.request('chaos', { op: 'hostile', action: 'stop' })) as HostileStats
    } catch {
      return undefined
    }
  }

  async destroy(): Promise<void> {
    await this.host.stop().catch(() => {})
    rmSync(this.dataDir, { recursive: true, force: true })
  }
}

/** Waits until every task that exists is completed, dead or expired; returns the final records. */
async function drainTasks(
  cluster: Cluster,
  history: History,
  timeoutMs: number,
  notes: string[],
): Promise<Map<string, TaskRecord | undefined>> {
  // Refused submissions too: the check makes sure they created nothing.
  const ids = history.tasks.map(task => task.id)
  const records = new Map<string, TaskRecord | undefined>()
  const end = performance.now() + timeoutMs
  for (;;) {
    const leader = await cluster.leader()
    if (leader !== undefined) {
      try {
        const answer = (await cluster.chaos(leader, { op: 'tasks', ids, timeoutMs: 5000 }, 10_000)) as (
          | TaskRecord
          | undefined
          | null
        )[]
        for (const [i, id] of ids.entries()) records.set(id, answer[i] ?? undefined)
        const open = [...records.values()].filter(
          record => record !== undefined && !TERMINAL.has(record.state),
        )
        if (open.length === 0) return records
        if (performance.now() > end) {
          notes.push(`${open.length} tasks still open ${timeoutMs} ms after the faults ended`)
          return records
        }
      } catch {}
    }
    if (performance.now() > end && records.size > 0) return records
    await sleep(500)
  }
}

/** A last linearizable read of `key`, recorded like any other, retried on other agents until one answers. */
async function finalRead(workload: Workload, cluster: Cluster, key: string, notes: string[]): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const agent = cluster.slots[attempt % cluster.size]
    if (!agent.responsive) continue
    if ((await workload.read(-1, agent.index, key)) !== undefined) return
  }
  notes.push(`no final read of ${key} succeeded`)
}

/** Each agent's clock skew: offsets spread evenly over [-skewMs, +skewMs] and rates over [1-rate, 1+rate], shuffled by the seed. */
function agentClocks(
  agents: number,
  clocks: ChaosOptions['clocks'],
  rng: Prng,
): ({ wallOffsetMs: number; rate: number } | undefined)[] {
  if (clocks === undefined || (clocks.skewMs === 0 && clocks.rate === 0))
    return Array.from({ length: agents }, () => undefined)
  const spread = (index: number): number => (agents === 1 ? 0 : (2 * index) / (agents - 1) - 1)
  const shuffled = (): number[] => {
    const order = Array.from({ length: agents }, (_, index) => index)
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1)
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    return order
  }
  const offsets = shuffled()
  const rates = shuffled()
  return Array.from({ length: agents }, (_, index) => ({
    wallOffsetMs: Math.round(clocks.skewMs * spread(offsets[index])),
    rate: 1 + clocks.rate * spread(rates[index]),
  }))
}
