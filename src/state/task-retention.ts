/**
 * The cluster-wide cap on finished tasks (completed, dead, expired, cancelled) the task table keeps for
 * status queries; past it the oldest finished go first. A replicated setting, not an agent option: the cap
 * decides which records a replica holds, so two replicas with different caps would answer differently.
 * Committed by `setMaxFinishedTasks` (the founder's `join({ maxFinishedTasks })`, or an admin call later);
 * a state where none was ever committed keeps `StateMachineOptions.maxFinishedTasks` (default 10,000).
 */

/** Largest cap `setMaxFinishedTasks` may set: each kept task costs memory on every replica. */
export const MAX_FINISHED_TASKS_LIMIT = 1_000_000

/** A cap on kept finished tasks: an integer from 0 (keep none) to `MAX_FINISHED_TASKS_LIMIT`. */
export function isMaxFinishedTasks(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_FINISHED_TASKS_LIMIT
}

/** Why `value` is no cap, for an `InvalidArgumentError`; undefined when it is one. */
export function maxFinishedTasksError(value: unknown): string | undefined {
  if (isMaxFinishedTasks(value)) return undefined
  return `maxFinishedTasks must be an integer from 0 to ${MAX_FINISHED_TASKS_LIMIT} (got ${String(value)})`
}
