/**
 * The deterministic simulator's command line: runs seeds start..start+N-1 of the real agent node stack
 * (Raft runner, state machine, proposer, sessions; scripts/sim/agent.ts) under crashes, partitions, message
 * faults, membership changes, transfers, disk faults and clock faults, checking Raft's invariants at every
 * step, linearizability of the client history and liveness after the faults stop.
 *
 *   npm run sim -- --seeds N [--start S] [--agents 3|5|7] [--bug NAME] [--json] [--fail-fast]
 *   npm run sim -- --seed S --verbose            (one seed with its full trace)
 *
 * Exits 1 if any seed found a violation. With --json the last line is
 * {"seeds":N,"violations":V,"firstFailingSeed":S|null,"ops":O,"elapsedMs":T}.
 */

import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { runBatch } from './sim/batch.ts'
import { BUG_NAMES, type BugName, runSeed } from './sim/runner.ts'
import { summarize, summaryLines, violationLines } from './sim/summary.ts'

/** Below this many seeds, starting worker threads costs more than it saves. */
const WORKER_THRESHOLD = 50

function fail(message: string): never {
  console.error(`sim: ${message}`)
  process.exit(2)
}

function integer(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value)) fail(`--${name} must be an integer, got ${text}`)
  return value
}

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    start: { type: 'string' },
    seed: { type: 'string' },
    nodes: { type: 'string' },
    agents: { type: 'string' },
    bug: { type: 'string' },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    'fail-fast': { type: 'boolean', default: false },
    workers: { type: 'string' },
    'check-timeout-ms': { type: 'string' },
    // On by default; `--no-tasks` leaves the task workload out.
    tasks: { type: 'boolean', default: true },
    help: { type: 'boolean', default: false },
  },
  strict: true,
  allowNegative: true,
})

if (values.help) {
  console.log(`usage: npm run sim -- [options]
  --seeds N            run seeds start..start+N-1 (default 100)
  --start S            first seed (default 1)
  --seed S             run seed S alone (same as --seeds 1 --start S)
  --agents 3|5|7       founding voters (default 3; one spare agent is always added); --nodes is an alias
  --bug NAME           plant a bug: ${BUG_NAMES.join(', ')}
  --verbose            print every seed's trace
  --json               end with {"seeds","violations","firstFailingSeed","ops","elapsedMs"}
  --fail-fast          stop at the first violation
  --workers K          worker threads (default: the cores, above ${WORKER_THRESHOLD} seeds)
  --check-timeout-ms T budget of each linearizability check (default 10000)
  --tasks              the task workload (submits, diamonds, repeats, cancels, workers: task-clients.ts), on
                       by default; --no-tasks leaves it out`)
  process.exit(0)
}

const single = values.seed !== undefined
const start = integer('start', values.seed ?? values.start, 1)
const count = single ? 1 : integer('seeds', values.seeds, 100)
const nodes = integer('agents', values.agents ?? values.nodes, 3)
if (nodes !== 3 && nodes !== 5 && nodes !== 7) fail('--agents must be 3, 5 or 7')
if (count < 1) fail('--seeds must be at least 1')
const bug = values.bug as BugName | undefined
if (bug !== undefined && !BUG_NAMES.includes(bug)) fail(`--bug must be one of ${BUG_NAMES.join(', ')}`)
const checkTimeoutMs = integer('check-timeout-ms', values['check-timeout-ms'], 10_000)

const started = performance.now()
let results: Awaited<ReturnType<typeof runBatch>>
if (values.verbose) {
  results = []
  for (let seed = start; seed < start + count; seed++) {
    const result = await runSeed({
      seed,
      nodes,
      bug,
      checkTimeoutMs,
      tasks: values.tasks,
      log: line => console.log(line),
    })
    results.push(result)
    console.log(JSON.stringify({ ...result, elapsedMs: undefined }))
    if (values['fail-fast'] && result.violation) break
  }
} else {
  const workers =
    count > WORKER_THRESHOLD
      ? integer('workers', values.workers, Math.min(availableParallelism(), 4))
      : integer('workers', values.workers, 1)
  results = await runBatch({
    start,
    count,
    nodes,
    bug,
    checkTimeoutMs,
    failFast: values['fail-fast'],
    tasks: values.tasks,
    workers,
  })
}
const elapsedMs = Math.round(performance.now() - started)
const summary = summarize(results)
for (const result of results) for (const line of violationLines(result)) console.log(line)
for (const line of summaryLines(summary, elapsedMs)) console.log(line)
if (values.json) {
  console.log(
    JSON.stringify({
      seeds: summary.seeds,
      violations: summary.violations,
      firstFailingSeed: summary.firstFailingSeed,
      ops: summary.ops,
      elapsedMs,
    }),
  )
}
process.exitCode = summary.violations > 0 ? 1 : 0
