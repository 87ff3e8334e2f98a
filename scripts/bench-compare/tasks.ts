/** The task benchmark's common parts: what a handler records, and the submitting loop. */
import type { TaskStats, TaskSubmitResult } from './protocol.ts'
import { wallClock } from './stats.ts'

/** What each task carries: when its submission started, to time it end to end. */
export interface TaskPayload {
  submittedAt: number
}

/** Records the tasks whose handler ran in this process. */
export class TaskRecorder {
  private stats: TaskStats = { ids: [], latenciesMs: [], lastCompletedAt: 0 }

  /** Called at the end of a handler: the task's work is done; what follows is the system's bookkeeping. */
  record(id: string, payload: Partial<TaskPayload>): void {
    const now = wallClock()
    this.stats.ids.push(id)
    this.stats.latenciesMs.push(now - (payload.submittedAt ?? now))
    this.stats.lastCompletedAt = now
  }

  /** The records so far; they are then cleared, for the next run. */
  take(): TaskStats {
    const taken = this.stats
    this.stats = { ids: [], latenciesMs: [], lastCompletedAt: 0 }
    return taken
  }
}

/** Submits `count` tasks, `concurrency` at a time; `submit` returns the new task's id. */
export async function submitMany(
  count: number,
  concurrency: number,
  submit: (payload: TaskPayload) => Promise<string>,
): Promise<TaskSubmitResult & { ids: string[] }> {
  const ids: string[] = []
  let errors = 0
  let issued = 0
  const startedAt = wallClock()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < count) {
        issued++
        try {
          ids.push(await submit({ submittedAt: wallClock() }))
        } catch {
          errors++
        }
      }
    }),
  )
  return { submitted: ids.length, errors, startedAt, endedAt: wallClock(), ids }
}
