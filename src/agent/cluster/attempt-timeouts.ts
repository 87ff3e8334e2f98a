import type { TaskPlanView } from '../../state/tasks.ts'
import { LeaderStopwatch } from './leader-stopwatch.ts'

/** An attempt the leader's clock says has run out: what its `timeoutTask` names. */
export interface AttemptTimeout {
  taskId: string
  attempt: number
}

/**
 * The leader's timing of task attempts, on its own monotonic clock only, as `LockLeaseClock` times lock
 * leases. An attempt (a running task, by fencing token) is timed from the first housekeeping round in which
 * this leader sees it applied, and is due once its full `timeout` has passed since on this clock. Neither
 * the entry's timestamp nor any wall clock enters the decision: a new leader whose wall clock runs ahead of
 * the one that started the attempt, or a wall clock that steps, cannot cut an attempt short.
 *
 * Why: the agent running the attempt aborts it on its own monotonic clock at the send of its claim +
 * timeout − margin (`api/tasks/tasks.ts`, `armDeadline`), which is before this leader saw the attempt
 * applied, so before this clock starts. The attempt therefore ends on its agent before the leader times it
 * out and may start a retry elsewhere, as long as the leader's clock does not run faster than the agent's
 * by more than `timeout / (timeout − margin)` (README, Guarantees). A new leader sees every running attempt
 * first after its takeover, and so waits a full timeout from then.
 */
export class AttemptTimeoutClock {
  /** By fencing token: one attempt. */
  private readonly stopwatch = new LeaderStopwatch<number>()

  /**
   * The attempts due at monotonic `now` for the leadership `leadership`, having noted the ones seen for the
   * first time. Call once per housekeeping round, on the leader.
   */
  due(state: Pick<TaskPlanView, 'timed'>, leadership: object, now: number): AttemptTimeout[] {
    this.stopwatch.begin(leadership)
    const due: AttemptTimeout[] = []
    for (const task of state.timed()) {
      if (task.state !== 'running' || task.constraints.timeout <= 0) continue
      const elapsed = this.stopwatch.elapsed(task.fencingToken, now)
      if (elapsed !== undefined && elapsed >= task.constraints.timeout) {
        due.push({ taskId: task.id, attempt: task.attempt })
      }
    }
    this.stopwatch.end()
    return due
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.stopwatch.clear()
  }
}
