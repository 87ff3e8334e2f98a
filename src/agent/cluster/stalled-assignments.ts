import type { StateMachine } from '../../state/index.ts'
import { LeaderStopwatch } from './leader-stopwatch.ts'

/** How long a task may stay assigned to an agent that does not start it, by default (monotonic ms). */
export const STALLED_ASSIGNMENT_MS = 5000

/**
 * The leader's watch over assignments nobody starts, on its own monotonic clock only. A task assigned to an
 * agent whose worker runs is normally started within a round trip (its `next()` takes its assigned tasks
 * first); one still assigned there `stallMs` after this leader first saw it so is held by an agent that does
 * not start it: a replica far behind (its worker claims only what its own replica shows) or an agent paused.
 * For such an agent the leader proposes `updateAgent { runsTasks: false }`, an explicit entry that sends its
 * assigned tasks back to pending for the others and takes its slots off placement; the agent offers them
 * again once it applies that entry (`SlotOffer`), that is, once it caught up to it. A worker slower than its
 * slots (fewer handlers than registered slots, long handlers) loses its waiting assignments to other agents
 * the same way, which is what its tasks need too.
 */
export class StalledAssignmentClock {
  /** By agent and task: one assignment. */
  private readonly stopwatch = new LeaderStopwatch<string>()

  /**
   * The agents holding an assignment for `stallMs` or more at monotonic `now`, having noted the assignments
   * seen for the first time. Call once per housekeeping round, on the leader.
   */
  due(
    state: Pick<StateMachine, 'agents' | 'agentLoad' | 'tasksAssignedTo'>,
    leadership: object,
    now: number,
    stallMs: number,
  ): string[] {
    this.stopwatch.begin(leadership)
    const due: string[] = []
    for (const agent of state.agents()) {
      if (!agent.alive || !agent.runsTasks || (state.agentLoad(agent.agentId)?.assigned ?? 0) === 0) continue
      let stalled = false
      for (const task of state.tasksAssignedTo(agent.agentId)) {
        if (task.state !== 'assigned') continue
        const elapsed = this.stopwatch.elapsed(`${agent.agentId}\n${task.id}`, now)
        if (elapsed !== undefined && elapsed >= stallMs) stalled = true
      }
      if (stalled) due.push(agent.agentId)
    }
    this.stopwatch.end()
    return due
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.stopwatch.clear()
  }
}
