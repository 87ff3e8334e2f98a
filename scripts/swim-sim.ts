/**
 * The SWIM membership simulator's command line: runs the pure core with many members under message loss,
 * crashes, slow members and graceful leaves, in virtual time, and reports detection times, false positives
 * and message rates. A seed replays exactly.
 *
 *   node scripts/swim-sim.ts --members 100 --loss 0.1 --periods 10000 --seed 1 [--crash K] [--slow K]
 *     [--slow-mode lag|pause] [--slow-ms X] [--leave K] [--preset lan|fast] [--seeds N] [--json]
 *
 * With --seeds N, runs seeds seed..seed+N-1 and adds a summary (medians over seeds). Exits 1 if any run had
 * a false positive, a crash some live member never detected, or a leave marked dead.
 */

import { parseArgs } from 'node:util'
import type { Preset, SlowMode, SwimSimOptions } from './swim-sim/options.ts'
import { maximum, median } from './swim-sim/report.ts'
import { runSwimSimulation } from './swim-sim/simulation.ts'

function fail(message: string): never {
  console.error(`swim-sim: ${message}`)
  process.exit(2)
}

function numberOption(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!Number.isFinite(value)) fail(`--${name} must be a number, got ${text}`)
  return value
}

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        members: { type: 'string' },
        loss: { type: 'string' },
        periods: { type: 'string' },
        seed: { type: 'string' },
        seeds: { type: 'string' },
        crash: { type: 'string' },
        slow: { type: 'string' },
        'slow-mode': { type: 'string' },
        'slow-ms': { type: 'string' },
        leave: { type: 'string' },
        preset: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    })
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err))
  }
}

const { values } = parseCommandLine()

const slowMode = values['slow-mode']
if (slowMode !== undefined && slowMode !== 'lag' && slowMode !== 'pause')
  fail('--slow-mode must be lag or pause')
const preset = values.preset
if (preset !== undefined && preset !== 'lan' && preset !== 'fast') fail('--preset must be lan or fast')

const base: Partial<SwimSimOptions> = {}
const assign = <K extends keyof SwimSimOptions>(key: K, value: SwimSimOptions[K] | undefined) => {
  if (value !== undefined) base[key] = value
}
assign('members', numberOption('members', values.members))
assign('loss', numberOption('loss', values.loss))
assign('periods', numberOption('periods', values.periods))
assign('crash', numberOption('crash', values.crash))
assign('slow', numberOption('slow', values.slow))
assign('slowMs', numberOption('slow-ms', values['slow-ms']))
assign('leave', numberOption('leave', values.leave))
assign('slowMode', slowMode as SlowMode | undefined)
assign('preset', preset as Preset | undefined)
const firstSeed = numberOption('seed', values.seed) ?? 1
const seedCount = numberOption('seeds', values.seeds) ?? 1

const runs = []
let bad = false
for (let seed = firstSeed; seed < firstSeed + seedCount; seed++) {
  const started = performance.now()
  let report: ReturnType<typeof runSwimSimulation>
  try {
    report = runSwimSimulation({ ...base, seed })
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err))
  }
  const wallMs = Math.round(performance.now() - started)
  const undetected = report.crashes.some(crash => crash.undetectedBy > 0)
  const leaveAsDead = report.leaves.some(leave => leave.markedDeadBy > 0)
  if (report.falsePositives > 0 || undetected || leaveAsDead) bad = true
  runs.push({ seed, wallMs, report })
  if (!values.json) {
    const { detection, messages } = report
    console.log(
      `seed ${seed}: ${report.options.members} members, loss ${report.options.loss}, ${report.options.periods} periods ` +
        `(${report.options.preset}) in ${wallMs} ms wall`,
    )
    console.log(`  false positives ${report.falsePositives}, false suspicions ${report.falseSuspicions}`)
    for (const crash of report.crashes) {
      console.log(
        `  crash ${crash.member} at ${crash.crashAt} ms: first dead after ${crash.firstDetectionMs} ms, ` +
          `last after ${crash.lastDetectionMs} ms, undetected by ${crash.undetectedBy}`,
      )
    }
    if (report.crashes.length > 0) {
      console.log(
        `  detection: first median ${detection.firstMedianMs} ms, last median ${detection.lastMedianMs} ms, ` +
          `last max ${detection.lastMaxMs} ms; memberlist LAN bound ${detection.memberlistBoundMs} ms`,
      )
    }
    for (const leave of report.leaves) {
      console.log(
        `  leave ${leave.member}: left at ${leave.markedLeftBy} members, dead at ${leave.markedDeadBy}`,
      )
    }
    console.log(
      `  messages/member/s: direct ${messages.directPerMemberPerSecond}, gossip published ` +
        `${messages.gossipPublishesPerMemberPerSecond}, gossip received ${messages.gossipDeliveriesPerMemberPerSecond}`,
    )
    console.log(
      `  final view: ${report.finalView.suspect} suspect, ${report.finalView.deadOrMissing} dead or missing; ` +
        `max local health ${report.maxLocalHealth}`,
    )
  }
}

const lasts = runs.flatMap(run =>
  run.report.detection.lastMedianMs === null ? [] : [run.report.detection.lastMedianMs],
)
const firsts = runs.flatMap(run =>
  run.report.detection.firstMedianMs === null ? [] : [run.report.detection.firstMedianMs],
)
const summary = {
  seeds: runs.length,
  falsePositives: runs.reduce((sum, run) => sum + run.report.falsePositives, 0),
  firstDetectionMedianMs: median(firsts),
  lastDetectionMedianMs: median(lasts),
  lastDetectionMaxMs: maximum(
    runs.flatMap(run => run.report.crashes.flatMap(crash => crash.lastDetectionMs ?? [])),
  ),
  memberlistBoundMs: runs[0]?.report.detection.memberlistBoundMs,
  wallMs: runs.reduce((sum, run) => sum + run.wallMs, 0),
}
if (values.json) {
  console.log(
    JSON.stringify(runs.length === 1 ? { ...runs[0].report, wallMs: runs[0].wallMs } : { runs, summary }),
  )
} else if (runs.length > 1) {
  console.log(`summary: ${JSON.stringify(summary)}`)
}
process.exit(bad ? 1 : 0)
