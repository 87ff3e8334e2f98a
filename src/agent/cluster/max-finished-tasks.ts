import { InvalidArgumentError } from '../../errors.ts'
import { maxFinishedTasksError } from '../../state/index.ts'
import type { CommitPort } from '../node/port.ts'

/**
 * Checks a `maxFinishedTasks` given to `join` or to the admin call: `InvalidArgumentError` unless an
 * integer from 0 to `MAX_FINISHED_TASKS_LIMIT`. Nothing is proposed for a bad value.
 */
export function checkMaxFinishedTasks(value: unknown): asserts value is number {
  const error = maxFinishedTasksError(value)
  if (error !== undefined) throw new InvalidArgumentError(error)
}

/**
 * Commits the cluster-wide cap on kept finished tasks (`setMaxFinishedTasks`): a replicated setting, so
 * every replica, every later leader and every restart keeps the same finished tasks. Idempotent: a retry
 * after an unknown outcome sets the same value again. Needs the cluster at command-set version 2 (the
 * founder commits its version first).
 */
export async function commitMaxFinishedTasks(
  commit: Pick<CommitPort, 'submitRaw'>,
  maxFinishedTasks: number,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  checkMaxFinishedTasks(maxFinishedTasks)
  const result = await commit.submitRaw({ type: 'setMaxFinishedTasks', maxFinishedTasks }, deadline, signal)
  if (result.type === 'error') {
    throw new InvalidArgumentError(`could not set maxFinishedTasks: ${result.message}`)
  }
}
