import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { type RunOptions, runSeed } from '../../scripts/sim/runner.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

async function traced(options: RunOptions) {
  const lines: string[] = []
  const { elapsedMs: _, ...result } = await runSeed({ ...options, log: line => lines.push(line) })
  const hash = createHash('sha256').update(lines.join('\n')).digest('hex')
  return { lines, result, hash }
}

/** Runs the CLI; returns its stdout and exit code. */
function cli(args: string[]): { stdout: string; code: number } {
  try {
    return {
      stdout: execFileSync(process.execPath, ['scripts/sim.ts', ...args], { cwd: root, encoding: 'utf8' }),
      code: 0,
    }
  } catch (error) {
    const failed = error as { stdout: string; status: number }
    return { stdout: failed.stdout, code: failed.status }
  }
}

let firstFailing: number | undefined

/** The first seed at which the simulator catches `--bug vote-ignores-log` (a few seeds in). */
async function firstFailingSeed(): Promise<number> {
  for (let seed = 1; firstFailing === undefined && seed <= 30; seed++) {
    if ((await runSeed({ seed, bug: 'vote-ignores-log' })).violation) firstFailing = seed
  }
  if (firstFailing === undefined) throw new Error('vote-ignores-log not caught in 30 seeds')
  return firstFailing
}

describe('replay', () => {
  it('a seed replays exactly: same trace (hash), same result, many agents in one process', async () => {
    // stale-read at seed 8: the read-index check catches it within a few ticks on earlier seeds, whose
    // traces are too short to say much.
    for (const options of [{ seed: 17 }, { seed: 3, nodes: 5 }, { seed: 8, bug: 'stale-read' as const }]) {
      const first = await traced(options)
      const second = await traced(options)
      expect(second.hash).toBe(first.hash)
      expect(second.lines).toEqual(first.lines)
      expect(second.result).toEqual(first.result)
      expect(first.lines.length).toBeGreaterThan(100)
    }
  }, 60_000)

  it('different seeds run differently', async () => {
    expect((await traced({ seed: 1 })).hash).not.toBe((await traced({ seed: 2 })).hash)
  })

  it('the printed replay command reproduces a failing seed, with the same output twice', async () => {
    const seed = await firstFailingSeed()
    const failing = await runSeed({ seed, bug: 'vote-ignores-log' })
    const args = [
      '--seeds',
      '1',
      '--start',
      `${seed}`,
      '--nodes',
      '3',
      '--bug',
      'vote-ignores-log',
      // runSeed runs no task workload unless asked; `npm run sim` runs it unless told not to.
      '--no-tasks',
      '--verbose',
    ]
    const first = cli(args)
    const second = cli(args)
    expect(first.code).toBe(1)
    // Everything but the wall-clock line is the same.
    const stable = (stdout: string) => stdout.split('\n').filter(line => !line.startsWith('seeds: '))
    expect(stable(second.stdout)).toEqual(stable(first.stdout))
    expect(first.stdout).toContain(failing.violation!.message.split('\n')[0])
    expect(first.stdout).toContain(`replay: npm run sim -- ${args.join(' ')}`)
  })

  it('--json ends with the summary line and the exit code tells whether anything broke', async () => {
    const clean = cli(['--seeds', '3', '--json'])
    expect(clean.code).toBe(0)
    const cleanSummary = JSON.parse(clean.stdout.trim().split('\n').at(-1)!)
    expect(Object.keys(cleanSummary)).toEqual(['seeds', 'violations', 'firstFailingSeed', 'ops', 'elapsedMs'])
    expect(cleanSummary).toMatchObject({ seeds: 3, violations: 0, firstFailingSeed: null })
    expect(cleanSummary.ops).toBeGreaterThan(0)

    const seed = await firstFailingSeed()
    const broken = cli(['--seeds', `${seed + 1}`, '--start', '1', '--bug', 'vote-ignores-log', '--json'])
    expect(broken.code).toBe(1)
    const brokenSummary = JSON.parse(broken.stdout.trim().split('\n').at(-1)!)
    expect(brokenSummary.violations).toBeGreaterThan(0)
    expect(brokenSummary.firstFailingSeed).toBe(seed)
  })
})

describe('worker threads', () => {
  it('spreading seeds over threads changes nothing but the time', () => {
    const summary = (args: string[]) => {
      const run = cli([...args, '--json'])
      return JSON.parse(run.stdout.trim().split('\n').at(-1)!)
    }
    const threaded = summary(['--seeds', '4', '--start', '300', '--workers', '2'])
    const single = summary(['--seeds', '4', '--start', '300', '--workers', '1'])
    expect(threaded.seeds).toBe(4)
    expect({ ...threaded, elapsedMs: 0 }).toEqual({ ...single, elapsedMs: 0 })
  })
})
