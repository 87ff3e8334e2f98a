/**
 * Durable write throughput of the Raft storage: `node scripts/bench-storage.ts [--seconds N] [--dir PATH]`.
 * Each write is one Ready's durable part (entries plus a hard state) committed and fsync'd before the next,
 * as the Raft shell does; the log is compacted every 10,000 entries as a running node would.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { parseArgs } from 'node:util'
import type { Entry } from '../src/raft/types.ts'
import { MemoryRaftStorage } from '../src/storage/memory-storage.ts'
import type { RaftStorage } from '../src/storage/raft-storage.ts'
import { SqliteRaftStorage } from '../src/storage/sqlite-storage.ts'

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, dir: { type: 'string', default: tmpdir() } },
})
const seconds = Number(values.seconds)
const entryBytes = 100
const compactEvery = 10_000

interface Result {
  writes: number
  entries: number
  elapsedMs: number
  latenciesMs: number[]
}

function run(storage: RaftStorage, entriesPerWrite: number): Result {
  const data = new Uint8Array(entryBytes).fill(7)
  storage.write({ hardState: { term: 1, vote: 'bench', commit: 0 }, entries: [] })
  let lastIndex = 0
  let compactedTo = 0
  const latenciesMs: number[] = []
  const start = performance.now()
  const deadline = start + seconds * 1000
  let now = start
  while (now < deadline) {
    const entries: Entry[] = []
    for (let i = 1; i <= entriesPerWrite; i++)
      entries.push({ index: lastIndex + i, term: 1, type: 'normal', data })
    const before = now
    // The commit index trails the log, as on a follower acknowledging the leader.
    storage.write({ entries, hardState: { term: 1, vote: 'bench', commit: lastIndex } })
    lastIndex += entriesPerWrite
    if (lastIndex - compactedTo >= compactEvery) {
      compactedTo = lastIndex - entriesPerWrite
      storage.compact({
        meta: { index: compactedTo, term: 1, config: { voters: ['bench'], nonVoters: [] } },
        data,
      })
    }
    now = performance.now()
    latenciesMs.push(now - before)
  }
  return { writes: latenciesMs.length, entries: lastIndex, elapsedMs: now - start, latenciesMs }
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]
}

function report(name: string, result: Result): void {
  const sorted = [...result.latenciesMs].sort((a, b) => a - b)
  const perSecond = (count: number) => Math.round((count / result.elapsedMs) * 1000).toLocaleString('en-US')
  console.log(
    `${name.padEnd(34)} ${perSecond(result.writes).padStart(9)} writes/s ${perSecond(result.entries).padStart(10)} entries/s` +
      `   latency p50 ${percentile(sorted, 0.5).toFixed(3)} ms, p99 ${percentile(sorted, 0.99).toFixed(3)} ms,` +
      ` max ${sorted[sorted.length - 1].toFixed(3)} ms`,
  )
}

const sqliteVersion = new DatabaseSync(':memory:')
  .prepare('SELECT sqlite_version() AS version')
  .get()?.version
console.log(
  `machine: ${cpus()[0]?.model ?? 'unknown cpu'} x${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
    `${platform()} ${release()}; Node ${process.version}, SQLite ${String(sqliteVersion)}; ` +
    `files in ${values.dir}; ${seconds} s per case, ${entryBytes}-byte entries; load average ${loadavg()[0].toFixed(2)}`,
)
for (const entriesPerWrite of [1, 64]) {
  const dir = mkdtempSync(join(values.dir, 'conclave-bench-'))
  try {
    const storage = new SqliteRaftStorage(join(dir, 'raft.sqlite'))
    report(
      `sqlite, ${entriesPerWrite} entr${entriesPerWrite === 1 ? 'y' : 'ies'}/write (fsync'd)`,
      run(storage, entriesPerWrite),
    )
    storage.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
for (const entriesPerWrite of [1, 64]) {
  const storage = new MemoryRaftStorage()
  report(
    `memory, ${entriesPerWrite} entr${entriesPerWrite === 1 ? 'y' : 'ies'}/write`,
    run(storage, entriesPerWrite),
  )
  storage.close()
}
