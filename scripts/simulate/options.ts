/** The command line of `npm run simulate`. */

export const SCENARIOS = ['full', 'failover', 'partition', 'steady'] as const
export type Scenario = (typeof SCENARIOS)[number]

export interface SimulateOptions {
  agents: number
  /** Length of the scenario itself (start-up and the final checks come on top), ms. */
  durationMs: number
  seed: number
  scenario: Scenario
  json: boolean
  /** The agents' own stderr (off by default: it would tear the live view). */
  verbose: boolean
  /** The live view: on when stdout is a terminal, unless `--plain`. */
  live: boolean
  /** `--web`: serve the web dashboard of one agent; 0 = a free port chosen at start. */
  webPort?: number
}

export const USAGE = `usage: npm run simulate -- [options]

  --agents N        agents, each its own process (default 5, at least 3)
  --duration S      seconds of scenario (default 40, at least 10)
  --seed N          seed of the workload's and the faults' choices (default: from the clock)
  --scenario NAME   full (default): kill the leader, partition a minority, heal, restart the dead
                    failover: kill the leader, restart it; partition: cut a minority off, heal;
                    steady: no faults
  --json            end with one JSON line: the verdict and its figures
  --plain           log lines even on a terminal
  --verbose         show the agents' stderr
  --web             serve the web dashboard of one agent and print its URL (live while the scenario runs)
  --web-port N      the dashboard's port on 127.0.0.1 (default: a free one; implies --web)
`

export function parseOptions(argv: string[], isTty: boolean): SimulateOptions {
  const options: SimulateOptions = {
    agents: 5,
    durationMs: 40_000,
    seed: Date.now() % 1_000_000,
    scenario: 'full',
    json: false,
    verbose: false,
    live: isTty,
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = (): string => {
      const next = argv[++i]
      if (next === undefined) throw new RangeError(`${arg} needs a value`)
      return next
    }
    const integer = (min: number): number => {
      const text = value()
      const number = Number(text)
      if (!Number.isSafeInteger(number) || number < min)
        throw new RangeError(`${arg} must be an integer >= ${min}`)
      return number
    }
    switch (arg) {
      case '--agents':
        options.agents = integer(3)
        break
      case '--duration':
        options.durationMs = integer(10) * 1000
        break
      case '--seed':
        options.seed = integer(0)
        break
      case '--scenario': {
        const scenario = value()
        if (!(SCENARIOS as readonly string[]).includes(scenario)) {
          throw new RangeError(`unknown scenario ${scenario}; one of ${SCENARIOS.join(', ')}`)
        }
        options.scenario = scenario as Scenario
        break
      }
      case '--json':
        options.json = true
        break
      case '--plain':
        options.live = false
        break
      case '--verbose':
        options.verbose = true
        break
      case '--web':
        options.webPort ??= 0
        break
      case '--web-port': {
        const port = integer(1)
        if (port > 65_535) throw new RangeError(`${arg} must be a port from 1 to 65535`)
        options.webPort = port
        break
      }
      case '--help':
      case '-h':
        throw new HelpRequested()
      default:
        throw new RangeError(`unknown option ${arg}`)
    }
  }
  return options
}

export class HelpRequested extends Error {}
