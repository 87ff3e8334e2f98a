/**
 * `npm run sim:scale -- [--agents 10,30,100,300,1000] [--seconds 60] [--loss 0.01] [--seed 1]
 * [--mesh-degree 6] [--silent-crashes] [--member-writes] [--trace] [--json]`: one scale run per agent count (`scale-run.ts`), a table of the
 * figures, and with `--json` their JSON as the last line. Exits 1 if any run broke a check.
 */

import { InvalidArgumentError } from '../../src/errors.ts'
import { formatTable } from './report.ts'
import { runScale, type ScaleReport } from './scale-run.ts'

interface Args {
  agents: number[]
  seconds: number
  loss: number
  seed: number
  meshDegree: number
  trace: boolean
  json: boolean
  silentCrashes: boolean
  memberWrites: boolean
}

export function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    agents: [10, 30, 100, 300, 1000],
    seconds: 60,
    loss: 0.01,
    seed: 1,
    meshDegree: 6,
    trace: false,
    json: false,
    silentCrashes: false,
    memberWrites: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = (): string => {
      const next = argv[++i]
      if (next === undefined) throw new InvalidArgumentError(`${flag} needs a value`)
      return next
    }
    const number = (low: number, high: number): number => {
      const parsed = Number(value())
      if (!Number.isFinite(parsed) || parsed < low || parsed > high)
        throw new InvalidArgumentError(`${flag} must be a number from ${low} to ${high}`)
      return parsed
    }
    switch (flag) {
      case '--agents':
        args.agents = value()
          .split(',')
          .map(text => {
            const count = Number(text)
            if (!Number.isSafeInteger(count) || count < 8 || count > 5000)
              throw new InvalidArgumentError('--agents takes counts from 8 to 5000, comma-separated')
            return count
          })
        break
      case '--seconds':
        args.seconds = number(30, 3600)
        break
      case '--loss':
        args.loss = number(0, 0.5)
        break
      case '--seed':
        args.seed = Math.floor(number(0, 2 ** 31))
        break
      case '--mesh-degree':
        args.meshDegree = Math.floor(number(2, 50))
        break
      case '--trace':
        args.trace = true
        break
      case '--silent-crashes':
        args.silentCrashes = true
        break
      case '--member-writes':
        args.memberWrites = true
        break
      case '--json':
        args.json = true
        break
      default:
        throw new InvalidArgumentError(`unknown option ${flag}`)
    }
  }
  return args
}

async function main(): Promise<void> {
  let args: Args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    process.exit(2)
  }
  const reports: ScaleReport[] = []
  for (const agents of args.agents) {
    const report = await runScale({
      agents,
      seed: args.seed,
      seconds: args.seconds,
      loss: args.loss,
      meshDegree: args.meshDegree,
      silentCrashes: args.silentCrashes,
      memberWrites: args.memberWrites,
      log: args.trace ? line => console.log(`[N=${agents}] ${line}`) : undefined,
    })
    reports.push(report)
    console.log(
      `N=${agents}: ${report.violations.length === 0 ? 'ok' : `${report.violations.length} violation(s)`}, ${report.events} events, ${(report.wallMs / 1000).toFixed(1)} s wall, ${(report.cpuMs / 1000).toFixed(1)} s CPU`,
    )
    if (report.memberWrites !== undefined) {
      const w = report.memberWrites
      console.log(
        `  member writes: ${w.writers} writers, ${w.answered} answered, ${w.failed} failed, ${w.lost} lost, ${w.ownCopyLate} late in the writer's copy; latency p50 ${w.latencyP50Ms} ms, p99 ${w.latencyP99Ms} ms; own copy held ${Math.round(w.ownCopyAtAnswer * 100)} % at the answer`,
      )
    }
    for (const violation of report.violations.slice(0, 10))
      console.log(`  ${violation.check} at ${violation.at} ms: ${violation.message}`)
  }
  console.log(formatTable(reports))
  if (args.json) console.log(JSON.stringify(reports))
  if (reports.some(report => report.violations.length > 0)) process.exitCode = 1
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
