/**
 * `npm run simulate`: N agents (default 5) as separate processes on loopback TCP with durable state in a
 * temporary directory, with different capabilities, running a scenario (tasks through workers, lock
 * contention, proposals and watches; then kill -9 the leader, cut a minority off, heal, restart the dead)
 * under a live view, and ending with a verdict it checks. Exits 1 if a check fails; every process it
 * started is killed on the way out, also on Ctrl-C. See `--help` and docs/simulate.md.
 */
import { type AddressInfo, createServer } from 'node:net'
import { killChildrenOnExit } from './chaos/cluster.ts'
import { HelpRequested, parseOptions, type SimulateOptions, USAGE } from './simulate/options.ts'
import { type SimulationResult, simulate, webAgentOf } from './simulate/scenario.ts'
import { LiveReporter, PlainReporter, type Reporter } from './simulate/view.ts'

function formatVerdict(result: SimulationResult): string {
  const lines = ['', `verdict (seed ${result.seed}, scenario ${result.scenario}, ${result.agents} agents):`]
  for (const check of result.checks) {
    lines.push(`  ${check.ok ? 'PASS' : 'FAIL'} ${check.name}: ${check.summary}`)
    for (const violation of check.violations) lines.push(`       ${violation.replaceAll('\n', '\n       ')}`)
  }
  lines.push(
    `  first leader after ${(result.firstLeaderMs / 1000).toFixed(1)} s; ${result.leaderChanges} leader changes, ${result.suspicions} suspicions, ${result.deaths} deaths declared, ${result.steals} steals; ${(result.elapsedMs / 1000).toFixed(1)} s in all`,
  )
  for (const note of result.notes) lines.push(`  note: ${note}`)
  lines.push(result.ok ? 'PASS' : 'FAIL')
  return lines.join('\n')
}

/** A port free on loopback right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function main(): Promise<void> {
  let options: SimulateOptions
  try {
    options = parseOptions(process.argv.slice(2), process.stdout.isTTY === true)
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(USAGE)
      return
    }
    process.stderr.write(`${(err as Error).message}\n${USAGE}`)
    process.exitCode = 2
    return
  }
  if (options.webPort !== undefined) {
    // A fixed port for the whole run: the agent serving it keeps its URL across a kill and restart.
    if (options.webPort === 0) options.webPort = await freePort()
    console.log(
      `dashboard of agent${webAgentOf(options)}: http://127.0.0.1:${options.webPort}/ (live while the scenario runs)`,
    )
  }
  const reporter: Reporter = options.live
    ? new LiveReporter(
        `conclave simulate: ${options.agents} agents, seed ${options.seed}, scenario ${options.scenario}`,
      )
    : new PlainReporter(line => console.log(line))
  // Ctrl-C: the agents die with us, and the terminal gets its cursor back.
  killChildrenOnExit(() => reporter.close())
  let result: SimulationResult
  try {
    result = await simulate(options, reporter)
  } finally {
    reporter.close()
  }
  console.log(formatVerdict(result))
  if (options.json) {
    console.log(
      JSON.stringify({
        ok: result.ok,
        seed: result.seed,
        scenario: result.scenario,
        agents: result.agents,
        firstLeaderMs: result.firstLeaderMs,
        failovers: result.failovers,
        proposals: result.proposals,
        tasks: result.tasks,
        lockGrants: result.locks.grants,
        steals: result.steals,
        leaderChanges: result.leaderChanges,
        checks: Object.fromEntries(result.checks.map(check => [check.name, check.ok])),
        elapsedMs: result.elapsedMs,
      }),
    )
  }
  process.exitCode = result.ok ? 0 : 1
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
