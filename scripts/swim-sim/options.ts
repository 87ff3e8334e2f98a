/** What a SWIM simulation run is made of, with defaults and checks. */

import type { SwimConfig } from '../../src/swim/types.ts'

/** How a slow member is slow: its inbox lags (ticks on time), or the whole process pauses. */
export type SlowMode = 'lag' | 'pause'

export type Preset = 'lan' | 'fast'

export interface SwimSimOptions {
  /** Simulated members. */
  members: number
  /** Probability that one delivery (direct message, or gossip to one subscriber) is lost. */
  loss: number
  /** Measured protocol periods (of the preset's probe interval), after joins and settling. */
  periods: number
  seed: number
  /** Members that crash (stop responding) at random times in the measured window. */
  crash: number
  /** Members that are slow for the whole measured window. */
  slow: number
  slowMode: SlowMode
  /** Lag: the most a message waits in a slow member's inbox. Pause: the length of each pause. */
  slowMs: number
  /** Pause mode: one pause starts every this many ms. */
  pauseEveryMs: number
  /** Members that leave gracefully at random times in the measured window. */
  leave: number
  preset: Preset
  /** Overrides of the preset. */
  config: Partial<SwimConfig>
  /** Direct message delay, uniform in [min, max] ms. */
  directDelayMs: readonly [number, number]
  /** Gossip delivery delay per subscriber, uniform in [min, max] ms (mesh hops). */
  gossipDelayMs: readonly [number, number]
  /** Member i starts and joins through member 0 at i × joinSpacingMs. */
  joinSpacingMs: number
  /** Time after the last join before measuring starts. */
  settleMs: number
}

export const DEFAULT_SIM_OPTIONS: Readonly<SwimSimOptions> = Object.freeze({
  members: 100,
  loss: 0,
  periods: 1000,
  seed: 1,
  crash: 0,
  slow: 0,
  slowMode: 'lag',
  slowMs: 2000,
  pauseEveryMs: 30_000,
  leave: 0,
  preset: 'lan',
  config: {},
  directDelayMs: [1, 5] as const,
  gossipDelayMs: [2, 20] as const,
  joinSpacingMs: 10,
  settleMs: 20_000,
})

/** Fills in defaults and checks the combination; throws RangeError. */
export function resolveSimOptions(overrides: Partial<SwimSimOptions>): SwimSimOptions {
  const options: SwimSimOptions = { ...DEFAULT_SIM_OPTIONS, ...overrides }
  const integer = (name: keyof SwimSimOptions, min: number) => {
    const value = options[name]
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new RangeError(`${name} must be an integer >= ${min}, got ${String(value)}`)
    }
  }
  integer('members', 2)
  integer('periods', 1)
  integer('seed', 0)
  integer('crash', 0)
  integer('slow', 0)
  integer('slowMs', 0)
  integer('pauseEveryMs', 1)
  integer('leave', 0)
  integer('joinSpacingMs', 0)
  integer('settleMs', 0)
  if (!(options.loss >= 0 && options.loss < 1))
    throw new RangeError(`loss must be in [0, 1), got ${options.loss}`)
  if (options.crash + options.slow + options.leave > options.members - 1) {
    throw new RangeError('crash + slow + leave must leave at least one healthy member besides member 0')
  }
  if (options.slowMode === 'pause' && options.slowMs >= options.pauseEveryMs) {
    throw new RangeError('slowMs must be shorter than pauseEveryMs')
  }
  for (const [name, [min, max]] of [
    ['directDelayMs', options.directDelayMs],
    ['gossipDelayMs', options.gossipDelayMs],
  ] as const) {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || max < min || max > 10_000) {
      throw new RangeError(`${name} must be integers 0 <= min <= max <= 10000`)
    }
  }
  return options
}
