/**
 * The key-value comparison: the same sequence of workloads on each system (etcd, conclave), interleaved
 * step by step so that both meet the same background load on a shared machine, with the order of the two
 * alternating from one step to the next.
 */
import type { BenchTarget } from './protocol.ts'
import { makeRun, type Outcome, type Run } from './report.ts'
import { median, round, wallClock } from './stats.ts'
import type { WorkloadResult, WorkloadSpec } from './workloads.ts'

/** What the comparison needs from a running system, whichever it is. */
export interface KvSystem {
  name: 'etcd' | 'conclave'
  /** Where the steady workloads run. */
  steady: BenchTarget
  leaderIndex(): Promise<number>
  /** SIGKILL the member at `index`. */
  kill(index: number): Promise<void>
  /** Start it again on its data; resolves once the cluster serves again with all members. */
  restart(index: number): Promise<void>
  /** Where the failover load runs: never in the process about to be killed. */
  failoverTarget(leader: number): BenchTarget
}

export type KvWorkload = 'put' | 'get' | 'lock' | 'failover' | 'txn' | 'list'

export interface KvSettings {
  durationMs: number
  failoverRuns: number
  /** The workloads to run, in their fixed order. */
  workloads: KvWorkload[]
  log(message: string): void
}

/** Per system, per workload level, the figures (or why there are none). */
export interface KvFigures {
  put: Map<number, Outcome>
  get: Map<number, Outcome>
  lock: Map<number, Outcome>
  failover: Outcome
  txn: Map<number, Outcome>
  list: Map<number, Outcome>
}

export const VALUE_SIZE = 100
const PUT_CONCURRENCY = [1, 16, 64]
const GET_CONCURRENCY = [1, 16]
const LOCK_CONTENDERS = [1, 8]
const LOCK_TTL_MS = 10_000
const READ_KEYS = 1000
const TXN_CONCURRENCY = [1, 16]
/** Pairs of keys the transactions spread over (as the puts spread over 1,000 keys). */
const TXN_PAIRS = 500
const LIST_CONCURRENCY = [1, 16]
/** Keys under the listed prefix. */
const LIST_KEYS = 1000
/**
 * The failover write load: how many writers, when the leader is killed, how long the window lasts. 10 s
 * after the kill covers etcd's own request timeout (7 s), which a write caught in the crash can wait out.
 */
const FAILOVER = { writers: 16, killAfterMs: 2000, windowMs: 12_000 }

export function skippedKv(reason: string): KvFigures {
  const skipped: Outcome = { skipped: reason }
  const all = (levels: number[]): Map<number, Outcome> => new Map(levels.map(level => [level, skipped]))
  return {
    put: all(PUT_CONCURRENCY),
    get: all(GET_CONCURRENCY),
    lock: all(LOCK_CONTENDERS),
    failover: skipped,
    txn: all(TXN_CONCURRENCY),
    list: all(LIST_CONCURRENCY),
  }
}

/** Runs every key-value workload on every system given; returns each system's figures by name. */
export async function runKvComparison(
  systems: KvSystem[],
  settings: KvSettings,
): Promise<Map<KvSystem['name'], KvFigures>> {
  const figures = new Map(systems.map(system => [system.name, skippedKv('not run')]))
  let step = 0
  const eachSystem = async (label: string, body: (system: KvSystem) => Promise<void>): Promise<void> => {
    const order = step++ % 2 === 0 ? systems : [...systems].reverse()
    for (const system of order) {
      settings.log(`${system.name}: ${label}`)
      await body(system)
    }
  }
  const { durationMs } = settings
  await eachSystem('warming up', async system => {
    await workload(system.steady, {
      type: 'put',
      concurrency: 16,
      durationMs: 1000,
      valueSize: VALUE_SIZE,
      keyPrefix: 'warm/',
    })
  })
  const selected = new Set(settings.workloads)
  for (const concurrency of selected.has('put') ? PUT_CONCURRENCY : []) {
    await eachSystem(`put, ${concurrency} concurrent`, async system => {
      const spec: WorkloadSpec = {
        type: 'put',
        concurrency,
        durationMs,
        valueSize: VALUE_SIZE,
        keyPrefix: `put${concurrency}/`,
      }
      figures.get(system.name)!.put.set(concurrency, await loadFigures(system.steady, spec))
    })
  }
  if (selected.has('get')) {
    await eachSystem('writing the keys to read', async system => {
      await workload(system.steady, {
        type: 'fill',
        keys: READ_KEYS,
        valueSize: VALUE_SIZE,
        keyPrefix: 'read/',
      })
    })
  }
  for (const concurrency of selected.has('get') ? GET_CONCURRENCY : []) {
    await eachSystem(`linearizable get, ${concurrency} concurrent`, async system => {
      const spec: WorkloadSpec = { type: 'get', concurrency, durationMs, keys: READ_KEYS, keyPrefix: 'read/' }
      figures.get(system.name)!.get.set(concurrency, await loadFigures(system.steady, spec))
    })
  }
  for (const contenders of selected.has('lock') ? LOCK_CONTENDERS : []) {
    await eachSystem(`lock cycles, ${contenders} contender(s)`, async system => {
      const spec: WorkloadSpec = {
        type: 'lock',
        contenders,
        durationMs,
        key: `lock${contenders}`,
        ttlMs: LOCK_TTL_MS,
      }
      figures.get(system.name)!.lock.set(contenders, await loadFigures(system.steady, spec))
    })
  }
  if (selected.has('txn')) {
    await eachSystem('writing the keys of the transactions', async system => {
      await workload(system.steady, {
        type: 'fill',
        keys: 2 * TXN_PAIRS,
        valueSize: VALUE_SIZE,
        keyPrefix: 'txn/',
      })
    })
  }
  for (const concurrency of selected.has('txn') ? TXN_CONCURRENCY : []) {
    await eachSystem(`transaction (2 compares + 2 puts), ${concurrency} concurrent`, async system => {
      const spec: WorkloadSpec = {
        type: 'txn',
        concurrency,
        durationMs,
        valueSize: VALUE_SIZE,
        keyPrefix: 'txn/',
        pairs: TXN_PAIRS,
      }
      figures.get(system.name)!.txn.set(concurrency, await loadFigures(system.steady, spec))
    })
  }
  if (selected.has('list')) {
    await eachSystem(`writing the ${LIST_KEYS} keys to list`, async system => {
      await workload(system.steady, {
        type: 'fill',
        keys: LIST_KEYS,
        valueSize: VALUE_SIZE,
        keyPrefix: 'list/',
      })
    })
  }
  for (const concurrency of selected.has('list') ? LIST_CONCURRENCY : []) {
    await eachSystem(`list ${LIST_KEYS} keys, ${concurrency} concurrent`, async system => {
      const spec: WorkloadSpec = {
        type: 'list',
        concurrency,
        durationMs,
        keys: LIST_KEYS,
        keyPrefix: 'list/',
      }
      figures.get(system.name)!.list.set(concurrency, await loadFigures(system.steady, spec))
    })
  }
  const gaps = new Map(systems.map(system => [system.name, [] as { ms: number; detail: string }[]]))
  for (let run = 0; selected.has('failover') && run < settings.failoverRuns; run++) {
    await eachSystem(`failover run ${run + 1}`, async system => {
      const gap = await failoverOnce(system, run)
      settings.log(`${system.name}: longest gap ${gap.detail}`)
      gaps.get(system.name)!.push(gap)
    })
  }
  for (const system of systems) {
    const runs = gaps.get(system.name)!
    figures.get(system.name)!.failover =
      runs.length === 0
        ? { skipped: 'no failover runs' }
        : {
            figures: {
              longestGapMs: round(median(runs.map(gap => gap.ms))),
              runsMs: runs.map(gap => gap.ms),
              runs: runs.map(gap => gap.detail).join('; '),
            },
          }
  }
  return figures
}

/** One failover: a write load, the leader killed `killAfterMs` into it, then restarted once it is over. */
async function failoverOnce(system: KvSystem, run: number): Promise<{ ms: number; detail: string }> {
  const leader = await system.leaderIndex()
  const running = workload(system.failoverTarget(leader), {
    type: 'writeGaps',
    concurrency: FAILOVER.writers,
    durationMs: FAILOVER.windowMs,
    valueSize: VALUE_SIZE,
    keyPrefix: `failover${run}/`,
  })
  await sleep(FAILOVER.killAfterMs)
  const killedAt = wallClock()
  await system.kill(leader)
  const result = await running
  if (result.type !== 'gaps') throw new Error(`unexpected workload result ${result.type}`)
  const { longestGapMs, gapStartedAt, errors } = result.gaps
  const offset = Math.round(gapStartedAt - killedAt)
  await system.restart(leader)
  // Let the restarted member catch up before anything else is measured.
  await sleep(1000)
  return {
    ms: longestGapMs,
    detail: `${Math.round(longestGapMs)} ms, from ${offset} ms after the kill, ${errors} errors`,
  }
}

/** The comparison records of the key-value workloads, etcd as the baseline. */
export function kvRuns(etcd: KvFigures, conclave: KvFigures, settings: KvSettings): Run[] {
  const { durationMs } = settings
  const selected = new Set(settings.workloads)
  const runs: Run[] = []
  for (const concurrency of selected.has('put') ? PUT_CONCURRENCY : []) {
    const label = `put ${VALUE_SIZE} B, ${concurrency} concurrent`
    const params = { concurrency, valueSize: VALUE_SIZE, durationMs }
    runs.push(
      makeRun('put', label, params, 'etcd', etcd.put.get(concurrency)!, conclave.put.get(concurrency)!),
    )
  }
  for (const concurrency of selected.has('get') ? GET_CONCURRENCY : []) {
    const label = `linearizable get, ${concurrency} concurrent`
    const params = { concurrency, keys: READ_KEYS, durationMs }
    runs.push(
      makeRun('get', label, params, 'etcd', etcd.get.get(concurrency)!, conclave.get.get(concurrency)!),
    )
  }
  for (const contenders of selected.has('lock') ? LOCK_CONTENDERS : []) {
    const label =
      contenders === 1 ? 'lock + unlock, uncontended' : `lock + unlock, ${contenders} contenders, 1 key`
    const params = { contenders, ttlMs: LOCK_TTL_MS, durationMs }
    runs.push(
      makeRun('lock', label, params, 'etcd', etcd.lock.get(contenders)!, conclave.lock.get(contenders)!),
    )
  }
  for (const concurrency of selected.has('txn') ? TXN_CONCURRENCY : []) {
    const label = `txn 2 compares + 2 puts ${VALUE_SIZE} B, ${concurrency} concurrent`
    const params = { concurrency, pairs: TXN_PAIRS, valueSize: VALUE_SIZE, durationMs }
    runs.push(
      makeRun('txn', label, params, 'etcd', etcd.txn.get(concurrency)!, conclave.txn.get(concurrency)!),
    )
  }
  for (const concurrency of selected.has('list') ? LIST_CONCURRENCY : []) {
    const label = `list ${LIST_KEYS} keys (range get), ${concurrency} concurrent`
    const params = { concurrency, keys: LIST_KEYS, valueSize: VALUE_SIZE, durationMs }
    runs.push(
      makeRun('list', label, params, 'etcd', etcd.list.get(concurrency)!, conclave.list.get(concurrency)!),
    )
  }
  if (selected.has('failover')) {
    const params = { runs: settings.failoverRuns, ...FAILOVER }
    const label = `kill -9 the leader, ${FAILOVER.writers} writers`
    runs.push(makeRun('failover', label, params, 'etcd', etcd.failover, conclave.failover))
  }
  return runs
}

async function workload(target: BenchTarget, spec: WorkloadSpec): Promise<WorkloadResult> {
  return (await target.bench({ kind: 'workload', spec })) as WorkloadResult
}

async function loadFigures(target: BenchTarget, spec: WorkloadSpec): Promise<Outcome> {
  const result = await workload(target, spec)
  if (result.type !== 'load') throw new Error(`unexpected workload result ${result.type}`)
  return { figures: { ...result.summary } }
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
