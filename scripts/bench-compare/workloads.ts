/**
 * The key-value, lock and failover workloads, written once over a small driver interface so that etcd and
 * conclave run exactly the same loops. A workload runs in whichever process holds the driver's client; the
 * figures it returns are taken there, around each call.
 */
import { type LoadSummary, round, summarize, wallClock } from './stats.ts'

/** What a workload needs from a system: one implementation per system compared. */
export interface KvDriver {
  /** A durable, replicated write (etcd `put`, conclave `propose`). */
  put(key: string, value: string): Promise<void>
  /** A linearizable read. */
  get(key: string): Promise<unknown>
  /** Waits until this caller holds the lock on `key` (a lease of `ttlMs`); resolves with its release. */
  lock(key: string, ttlMs: number): Promise<() => Promise<void>>
  /**
   * One transaction: compares that both keys exist (version > 0), then puts `value` to both, all at one
   * revision (etcd `Txn`, conclave `transaction`); resolves with whether the compares held.
   */
  txn(keys: [string, string], value: string): Promise<boolean>
  /** Every key under `prefix` with its value, linearizable (etcd range get, conclave `list`): how many. */
  list(prefix: string): Promise<number>
}

export type WorkloadSpec =
  | { type: 'put'; concurrency: number; durationMs: number; valueSize: number; keyPrefix: string }
  /** Writes `keys` keys of `valueSize` bytes under `keyPrefix`, for the reads to find. */
  | { type: 'fill'; keys: number; valueSize: number; keyPrefix: string }
  | { type: 'get'; concurrency: number; durationMs: number; keys: number; keyPrefix: string }
  | { type: 'lock'; contenders: number; durationMs: number; key: string; ttlMs: number }
  /** Transactions of 2 compares + 2 puts over `pairs` pairs of keys filled under `keyPrefix`. */
  | {
      type: 'txn'
      concurrency: number
      durationMs: number
      valueSize: number
      keyPrefix: string
      pairs: number
    }
  /** Lists of the `keys` keys filled under `keyPrefix`, each checked to have them all. */
  | { type: 'list'; concurrency: number; durationMs: number; keys: number; keyPrefix: string }
  /** A write load whose gaps between successes are the figure: the leader is killed while it runs. */
  | { type: 'writeGaps'; concurrency: number; durationMs: number; valueSize: number; keyPrefix: string }

/** The longest stretch without a successful write, in wall-clock ms (comparable across processes). */
export interface GapSummary {
  successes: number
  errors: number
  longestGapMs: number
  /** Wall-clock ms of the last success before the longest gap. */
  gapStartedAt: number
  /** The longest gaps (at most 5, longest first), to tell the failover's from any other. */
  longGaps: { startedAt: number; ms: number }[]
  firstErrorAt?: number
  lastErrorAt?: number
  /** Failed calls by error name and message (the first 80 characters). */
  errorKinds: Record<string, number>
}

export type WorkloadResult =
  | { type: 'load'; summary: LoadSummary }
  | { type: 'gaps'; gaps: GapSummary }
  | { type: 'done' }

/** A pause after a failed call, so that a dead endpoint does not turn the loop into a busy spin. */
const ERROR_PAUSE_MS = 10

export async function runWorkload(driver: KvDriver, spec: WorkloadSpec): Promise<WorkloadResult> {
  switch (spec.type) {
    case 'put': {
      const value = 'x'.repeat(spec.valueSize)
      return load(spec.concurrency, spec.durationMs, n => driver.put(`${spec.keyPrefix}${n % 1000}`, value))
    }
    case 'fill': {
      const value = 'x'.repeat(spec.valueSize)
      let next = 0
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < spec.keys) await driver.put(`${spec.keyPrefix}${next++}`, value)
        }),
      )
      return { type: 'done' }
    }
    case 'get':
      return load(spec.concurrency, spec.durationMs, async n => {
        if ((await driver.get(`${spec.keyPrefix}${n % spec.keys}`)) === undefined) {
          throw new Error('a filled key read as missing')
        }
      })
    case 'lock':
      return load(spec.contenders, spec.durationMs, async () => {
        const release = await driver.lock(spec.key, spec.ttlMs)
        await release()
      })
    case 'txn': {
      const value = 'x'.repeat(spec.valueSize)
      return load(spec.concurrency, spec.durationMs, async n => {
        const pair = n % spec.pairs
        const keys: [string, string] = [`${spec.keyPrefix}${2 * pair}`, `${spec.keyPrefix}${2 * pair + 1}`]
        if (!(await driver.txn(keys, value)))
          throw new Error('a transaction on filled keys failed its compares')
      })
    }
    case 'list':
      return load(spec.concurrency, spec.durationMs, async () => {
        const count = await driver.list(spec.keyPrefix)
        if (count !== spec.keys) throw new Error(`listed ${count} keys of ${spec.keys}`)
      })
    case 'writeGaps':
      return { type: 'gaps', gaps: await writeGaps(driver, spec) }
  }
}

/** `concurrency` callers looping on `operation` for `durationMs`; each call's latency is one sample. */
async function load(
  concurrency: number,
  durationMs: number,
  operation: (n: number) => Promise<void>,
): Promise<WorkloadResult> {
  const latencies: number[] = []
  let errors = 0
  let issued = 0
  const started = performance.now()
  const end = started + durationMs
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const begin = performance.now()
        try {
          await operation(issued++)
          latencies.push(performance.now() - begin)
        } catch {
          errors++
          await sleep(ERROR_PAUSE_MS)
        }
      }
    }),
  )
  return { type: 'load', summary: summarize(latencies, errors, performance.now() - started) }
}

async function writeGaps(
  driver: KvDriver,
  spec: Extract<WorkloadSpec, { type: 'writeGaps' }>,
): Promise<GapSummary> {
  const value = 'x'.repeat(spec.valueSize)
  const end = performance.now() + spec.durationMs
  const windowEnd = wallClock() + spec.durationMs
  // Gaps count from the first success on: connecting a fresh client is not a failover.
  let lastSuccess: number | undefined
  const longGaps: { startedAt: number; ms: number }[] = []
  let successes = 0
  let errors = 0
  const errorKinds: Record<string, number> = {}
  let firstErrorAt: number | undefined
  let lastErrorAt: number | undefined
  let issued = 0
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (performance.now() < end) {
        try {
          await driver.put(`${spec.keyPrefix}${issued++ % 1000}`, value)
          // Completions are observed in order on one event loop, so this is the gap between successes.
          // Only within the window: past it, a few stragglers would make a gap of their own.
          if (performance.now() > end) continue
          const now = wallClock()
          if (lastSuccess !== undefined) noteGap(longGaps, lastSuccess, now - lastSuccess)
          lastSuccess = now
          successes++
        } catch (err) {
          errors++
          const kind = `${(err as Error).name}: ${(err as Error).message}`.slice(0, 80)
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1
          lastErrorAt = wallClock()
          firstErrorAt ??= lastErrorAt
          await sleep(ERROR_PAUSE_MS)
        }
      }
    }),
  )
  // A stall still going on when the window closes counts up to the window's end.
  if (lastSuccess !== undefined) noteGap(longGaps, lastSuccess, Math.max(0, windowEnd - lastSuccess))
  const longest = longGaps[0] ?? { startedAt: 0, ms: spec.durationMs }
  return {
    successes,
    errors,
    longestGapMs: round(longest.ms),
    gapStartedAt: longest.startedAt,
    longGaps: longGaps.map(gap => ({ startedAt: gap.startedAt, ms: round(gap.ms) })),
    firstErrorAt,
    lastErrorAt,
    errorKinds,
  }
}

/** Keeps the 5 longest gaps, longest first. */
function noteGap(longGaps: { startedAt: number; ms: number }[], startedAt: number, ms: number): void {
  if (longGaps.length === 5 && ms <= longGaps[4].ms) return
  longGaps.push({ startedAt, ms })
  longGaps.sort((a, b) => b.ms - a.ms)
  longGaps.length = Math.min(longGaps.length, 5)
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
