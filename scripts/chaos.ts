/**
 * `npm run chaos`: 5 agents as processes on loopback TCP with durable state, a client workload (KV writes
 * and linearizable reads, a lock-protected counter, tasks) and a seeded nemesis (kill -9 and restart,
 * SIGSTOP/SIGCONT, isolating the leader, 2/3 splits, one-way partitions). At the end the recorded history
 * is checked: KV linearizability per key, lock safety through fencing tokens, the protected counter, and
 * task exactly-once completion. Exits 1 if a check fails.
 *
 * Options: --duration S (default 60), --seed N (default: from the clock, printed), --agents N (default 5),
 * --faults kill,pause,isolate-leader,split,one-way (default all), --session-ttl MS (the agents' session
 * ttl, default 3000: shorter than the longest pause), --clock-skew MS (the agents' wall clocks set off by
 * up to MS either way, default 0), --clock-rate R (their clocks running up to R faster or slower, e.g.
 * 0.001, default 0), --bug NAME (a shell bug switch every agent runs with, src/shell-bugs.ts: the checks
 * should then fail), --json (last line a summary), --verbose (the agents' stderr).
 *
 * --hostile: two clusters side by side, both with SPIFFE identities, the same seed and faults; in one, a
 * member with only `join`, `runTask` and `lock` keeps sending forged Raft responses, SWIM claims, foreign
 * task completions and floods (`chaos/hostile.ts`). Both must pass their checks, and the hostile run's write
 * p99 must stay within 2x of the other's (`HOSTILE_P99_RATIO`); the ratio is reported.
 */
import { isShellBug, SHELL_BUG_NAMES } from '../src/shell-bugs.ts'
import { killChildrenOnExit } from './chaos/cluster.ts'
import { FAULT_KINDS, type FaultKind } from './chaos/nemesis.ts'
import { formatReport } from './chaos/report.ts'
import { type ChaosOptions, type ChaosResult, runChaos } from './chaos/run.ts'

/** The hostile run's write p99 may be at most this many times the same run's without the hostile member. */
const HOSTILE_P99_RATIO = 2

function option(name: string): string | undefined {
  const args = process.argv.slice(2)
  const at = args.indexOf(`--${name}`)
  return at === -1 ? undefined : args[at + 1]
}

function numberOption(name: string, fallback: number): number {
  const text = option(name)
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < 0) {
    console.error(`--${name} must be a number`)
    process.exit(2)
  }
  return value
}

async function main(): Promise<void> {
  killChildrenOnExit()
  const json = process.argv.includes('--json')
  const faults = (option('faults')?.split(',') ?? [...FAULT_KINDS]) as FaultKind[]
  for (const fault of faults) {
    if (!FAULT_KINDS.includes(fault)) {
      console.error(`unknown fault ${fault}; known: ${FAULT_KINDS.join(', ')}`)
      process.exit(2)
    }
  }
  const bug = option('bug')
  if (bug !== undefined && !isShellBug(bug)) {
    console.error(`unknown bug ${bug}; known: ${SHELL_BUG_NAMES.join(', ')}`)
    process.exit(2)
  }
  const options: Partial<ChaosOptions> = {
    durationMs: numberOption('duration', 60) * 1000,
    seed: numberOption('seed', Date.now() % 1_000_000),
    agents: numberOption('agents', 5),
    faults,
    agentOptions: { sessionTtlMs: numberOption('session-ttl', 3000) },
    clocks: { skewMs: numberOption('clock-skew', 0), rate: numberOption('clock-rate', 0) },
    bugs: bug === undefined ? undefined : [bug],
    stderr: process.argv.includes('--verbose') ? 'inherit' : 'ignore',
    log: line => console.log(line),
  }
  options.voters = Math.min(
    7,
    (options.agents as number) % 2 === 0 ? (options.agents as number) - 1 : (options.agents as number),
  )
  if (process.argv.includes('--hostile')) {
    await hostileRuns(options, json)
    return
  }
  const result = await runChaos(options)
  console.log(formatReport(result))
  if (json) {
    console.log(
      JSON.stringify({
        ok: result.ok,
        seed: result.seed,
        durationMs: result.durationMs,
        elapsedMs: result.elapsedMs,
        operations: result.operations,
        faults: result.faults,
        checks: Object.fromEntries(result.checks.map(check => [check.name, check.ok])),
        leaderChanges: result.leaderChanges,
      }),
    )
  }
  process.exitCode = result.ok ? 0 : 1
}

/** The same run twice at once, with and without the hostile member, and the ratio of their write p99. */
async function hostileRuns(options: Partial<ChaosOptions>, json: boolean): Promise<void> {
  const prefixed = (tag: string) => (line: string) => console.log(`[${tag}] ${line}`)
  const [base, hostile]: ChaosResult[] = await Promise.all([
    runChaos({ ...options, secure: true, hostile: false, log: prefixed('baseline') }),
    runChaos({ ...options, secure: true, hostile: true, log: prefixed('hostile') }),
  ])
  console.log('\n=== baseline (same run, no hostile member) ===')
  console.log(formatReport(base))
  console.log('\n=== with the hostile member ===')
  console.log(formatReport(hostile))
  const ratio = base.writeLatency.p99 > 0 ? hostile.writeLatency.p99 / base.writeLatency.p99 : Infinity
  const within = ratio <= HOSTILE_P99_RATIO
  console.log(
    `\nwrite p99: ${hostile.writeLatency.p99.toFixed(1)} ms with the hostile member vs ${base.writeLatency.p99.toFixed(1)} ms without: ${ratio.toFixed(2)}x (${within ? 'within' : 'OVER'} ${HOSTILE_P99_RATIO}x)`,
  )
  const ok = base.ok && hostile.ok && within
  console.log(ok ? 'hostile verdict: PASS' : 'hostile verdict: FAIL')
  if (json) {
    console.log(
      JSON.stringify({
        ok,
        seed: hostile.seed,
        p99Ratio: ratio,
        baseline: { ok: base.ok, writeLatency: base.writeLatency },
        hostile: { ok: hostile.ok, writeLatency: hostile.writeLatency, stats: hostile.hostile },
      }),
    )
  }
  process.exitCode = ok ? 0 : 1
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
