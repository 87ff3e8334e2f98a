import type { Scheduler } from '../time/scheduler.ts'
import { systemScheduler } from '../time/system-scheduler.ts'

/**
 * Test-only options of `createAgent` and `conclave()`, kept out of the public option types: they are set under
 * symbols that `src/index.ts` does not export, so no user reaches them by accident (or by a typo, which
 * `checkOptions` refuses), and the built declarations of the public types do not mention them.
 */

/** The scheduler (clocks and timers) an agent runs on. Default `systemScheduler`. */
export const SCHEDULER: unique symbol = Symbol('conclave.scheduler')

/**
 * The highest command-set version the agent supports (`src/state/versions.ts`). Default the current one;
 * a lower one stands for an older agent in tests of rolling upgrades.
 */
export const COMMAND_SET_VERSION_OPTION: unique symbol = Symbol('conclave.commandSetVersion')

export interface InternalOptions {
  [SCHEDULER]?: Scheduler
  [COMMAND_SET_VERSION_OPTION]?: number
}

/** `options` as an agent that supports the command set only up to `version`. */
export function withCommandSetVersion<T extends object>(options: T, version: number): T {
  return { ...options, [COMMAND_SET_VERSION_OPTION]: version }
}

/** The command-set version set on `options`, if any. */
export function commandSetVersionOf(options: object | undefined): number | undefined {
  return (options as InternalOptions | undefined)?.[COMMAND_SET_VERSION_OPTION]
}

/** `options` with the agent's scheduler set: `createAgent(withScheduler({ ... }, scheduler))`. */
export function withScheduler<T extends object>(options: T, scheduler: Scheduler): T {
  return { ...options, [SCHEDULER]: scheduler }
}

/** The scheduler set on `options`, or `systemScheduler`. */
export function schedulerOf(options: object | undefined): Scheduler {
  return (options as InternalOptions | undefined)?.[SCHEDULER] ?? systemScheduler
}
