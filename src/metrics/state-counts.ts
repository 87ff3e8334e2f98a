import { type StateReader, TASK_STATES, type TaskStateName } from '../http/source.ts'

/** The sizes of the replicated state that the level metrics report. */
export interface StateCounts {
  sessions: number
  keys: number
  locksHeld: number
  lockWaiters: number
  tasks: Record<TaskStateName, number>
}

interface SnapshotShape {
  sessions?: unknown[]
  kv?: { entries?: unknown[] }
  locks?: { holder?: unknown; waiters?: unknown[] }[]
  tasks?: { tasks?: { state: string }[] }
}

const decoder = new TextDecoder()

/** Counts from one parse of the state's snapshot JSON (the only whole-state view `StateReader` offers). */
export function readStateCounts(state: StateReader): StateCounts {
  const parsed = JSON.parse(decoder.decode(state.snapshot())) as SnapshotShape
  const tasks = Object.fromEntries(TASK_STATES.map(name => [name, 0])) as Record<TaskStateName, number>
  for (const task of parsed.tasks?.tasks ?? []) {
    if (task.state in tasks) tasks[task.state as TaskStateName]++
  }
  let locksHeld = 0
  let lockWaiters = 0
  for (const lock of parsed.locks ?? []) {
    if (lock.holder !== undefined && lock.holder !== null) locksHeld++
    lockWaiters += lock.waiters?.length ?? 0
  }
  return {
    sessions: parsed.sessions?.length ?? 0,
    keys: parsed.kv?.entries?.length ?? 0,
    locksHeld,
    lockWaiters,
    tasks,
  }
}
