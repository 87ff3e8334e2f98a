import { NO_SHELL_BUGS, type ShellBug, type ShellBugs, shellBugs } from '../shell-bugs.ts'
import type { RaftStorage } from '../storage/index.ts'
import type { Scheduler } from '../time/scheduler.ts'
import { systemScheduler } from '../time/system-scheduler.ts'

/**
 * Test-only options of `createAgent` and `conclave()`, kept out of the public option types: they are set under
 * symbols that `src/index.ts` does not export, so no user reaches them by accident (or by a typo, which
 * `checkOptions` refuses), and the built declarations of the public types do not mention them.
 */

/** The scheduler (clocks and timers) an agent runs on. Default `systemScheduler`. */
export const SCHEDULER: unique symbol = Symbol('conclave.scheduler')

/** The shell bug switches the agent runs with (`src/shell-bugs.ts`). Default none. */
export const SHELL_BUGS: unique symbol = Symbol('conclave.shellBugs')

/** Wraps the storage `createAgent` opens (tests inject disk faults with it). Default: the storage as is. */
export const STORAGE_WRAPPER: unique symbol = Symbol('conclave.storageWrapper')

/**
 * The highest command-set version the agent supports (`src/state/versions.ts`). Default the current one;
 * a lower one stands for an older agent in tests of rolling upgrades.
 */
export const COMMAND_SET_VERSION_OPTION: unique symbol = Symbol('conclave.commandSetVersion')

export interface InternalOptions {
  [SCHEDULER]?: Scheduler
  [SHELL_BUGS]?: ShellBugs
  [STORAGE_WRAPPER]?: (storage: RaftStorage) => RaftStorage
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

/**
 * `options` with shell bug switches on: `createAgent(withShellBugs({ ... }, ['no-fail-stop']))`. Every agent
 * of a cluster should get the same (the state machine's switches change what entries do). Unknown names are
 * a `RangeError`.
 */
export function withShellBugs<T extends object>(options: T, bugs: Iterable<ShellBug | string>): T {
  return { ...options, [SHELL_BUGS]: shellBugs(bugs) }
}

/** The shell bug switches set on `options`; none by default. */
export function shellBugsOf(options: object | undefined): ShellBugs {
  return (options as InternalOptions | undefined)?.[SHELL_BUGS] ?? NO_SHELL_BUGS
}

/** `options` with the opened storage passed through `wrap`: `createAgent(withStorageWrapper({ ... }, wrap))`. */
export function withStorageWrapper<T extends object>(
  options: T,
  wrap: (storage: RaftStorage) => RaftStorage,
): T {
  return { ...options, [STORAGE_WRAPPER]: wrap }
}

/** The storage `options` wrap `storage` into (itself by default). */
export function wrappedStorage(options: object | undefined, storage: RaftStorage): RaftStorage {
  const wrap = (options as InternalOptions | undefined)?.[STORAGE_WRAPPER]
  return wrap === undefined ? storage : wrap(storage)
}
