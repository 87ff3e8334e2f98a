import type { Command, CommandType } from './commands.ts'

/**
 * Versions of the replicated command set, for rolling upgrades. Every agent supports the command set up to
 * some version; the cluster version (in the replicated state, `setClusterVersion`) is the highest version
 * every replica was seen to support, and only ever rises. The leader refuses to propose a command above the
 * cluster version (`UnsupportedVersionError`), so an older replica never meets one; an agent that does meet
 * an entry above its own version (a downgrade, or a replica added after the cluster version rose) stops
 * applying rather than skip it.
 *
 * Adding a command type raises `COMMAND_SET_VERSION` and lists the type in `INTRODUCED` below. A change to
 * what an existing command may carry (a new field, a new transaction op) raises it too, and `commandVersion`
 * then answers the new version for the commands that use it. Either way an older replica never meets one:
 * the leader proposes them only above the cluster version, and a replica below the cluster version stopped
 * at the `setClusterVersion` entry that raised it (or refused the snapshot holding it).
 */

/** The command set every conclave agent supports: what a cluster runs until all its replicas agree on more. */
export const BASE_COMMAND_SET_VERSION = 1

/**
 * The highest command-set version this code applies. Version 3: a `runTasks` failure marked `lapsed` (its
 * agent's session lease lapsed), which does not count against `maxRetries`; campaigns of one session ordered
 * by their request sequence (`REQUEST_ORDER_VERSION`). Version 4: `openSessionAndRegister`
 * (`JOIN_IN_ONE_ENTRY_VERSION`).
 */
export const COMMAND_SET_VERSION = 4

/** The version that opens a member's session and registers it in one entry (`openSessionAndRegister`). */
export const JOIN_IN_ONE_ENTRY_VERSION = 4

/**
 * The version that introduced each command type newer than the base set. Version 2: multi-key
 * transactions, ephemeral keys, semaphores, `proclaim`, pausing task types, task progress, delayed
 * release, repeating tasks and task retention.
 */
const INTRODUCED: ReadonlyMap<CommandType, number> = new Map<CommandType, number>([
  ['txn', 2],
  ['putEphemeral', 2],
  ['semaphoreAcquire', 2],
  ['proclaim', 2],
  ['pauseTasks', 2],
  ['resumeTasks', 2],
  ['taskProgress', 2],
  ['releaseTask', 2],
  ['createOccurrence', 2],
  ['forgetTasks', 2],
  ['setMaxFinishedTasks', 2],
  ['openSessionAndRegister', JOIN_IN_ONE_ENTRY_VERSION],
])

/**
 * The version from which a session's campaigns are ordered by the proposer's sequence number: a late retry
 * of an aborted campaign no longer takes the candidacy back from a newer campaign of the same session.
 */
export const REQUEST_ORDER_VERSION = 3

/** The version that lets a `runTasks` failure say `lapsed` (not counted against `maxRetries`). */
export const LAPSED_FAILURE_VERSION = 3

/** The command-set version an agent needs to apply `command`. */
export function commandVersion(command: Command | Pick<Command, 'type'>): number {
  if ('ops' in command && hasLapsedFailure(command)) return LAPSED_FAILURE_VERSION
  return INTRODUCED.get(command.type) ?? BASE_COMMAND_SET_VERSION
}

/** A `runTasks` with a failure marked `lapsed` (version 3). */
function hasLapsedFailure(command: Command): boolean {
  return command.type === 'runTasks' && command.ops.some(op => op.op === 'fail' && op.lapsed === true)
}

/** A command-set version: an integer from `BASE_COMMAND_SET_VERSION` up (bounded, as every entry field is). */
export function isCommandSetVersion(value: unknown): value is number {
  return (
    Number.isInteger(value) && (value as number) >= BASE_COMMAND_SET_VERSION && (value as number) <= 1_000_000
  )
}
