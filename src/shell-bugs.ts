/**
 * Test-only switches that put back holes the agent's shell once had, so the simulator (`--bug NAME`) and the
 * tests can show that their checkers catch each one. Production code never sets them: they are reached only
 * through `withShellBugs` (a symbol option of `createAgent`) or the constructors of the parts that take a
 * `ShellBugs` set (the state machine, the Raft runner, the proposer's and elections' contexts).
 */

/** Every shell bug switch, by the name `--bug` takes. */
export const SHELL_BUG_NAMES = [
  /** Locks expire inline at an acquirer's entry timestamp, bypassing the leader's guarded expiry. */
  'lease-inline-expiry',
  /** A failed storage write does not stop the Raft runner: later Readies acknowledge what never reached disk. */
  'no-fail-stop',
  /** An aborted campaign's resign is keyed by session alone: a late retry resigns a newer candidacy. */
  'resign-any-candidacy',
  /** A retry outside the session's result window surfaces as `InvalidArgumentError` ("nothing written"). */
  'session-window',
  /** A session's end leaves its ephemeral keys in place. */
  'ephemeral-outlives-session',
  /** A transaction evaluates only its first compare. */
  'txn-first-compare-only',
  /** A semaphore of more than one permit grants one permit too many. */
  'semaphore-extra-permit',
  /** A cancel of a running task is answered as done, but its attempt runs on and its completion is accepted. */
  'cancel-keeps-attempt',
] as const

export type ShellBug = (typeof SHELL_BUG_NAMES)[number]

/** The switches that are on. */
export type ShellBugs = ReadonlySet<ShellBug>

/** No switch on: what production runs. */
export const NO_SHELL_BUGS: ShellBugs = new Set()

/** Whether `name` names a shell bug switch. */
export function isShellBug(name: string): name is ShellBug {
  return (SHELL_BUG_NAMES as readonly string[]).includes(name)
}

/** The set of `names`; a name that is no switch is a `RangeError` (a typo must not silently test nothing). */
export function shellBugs(names: Iterable<string>): ShellBugs {
  const set = new Set<ShellBug>()
  for (const name of names) {
    if (!isShellBug(name)) throw new RangeError(`unknown shell bug ${JSON.stringify(name)}`)
    set.add(name)
  }
  return set
}
