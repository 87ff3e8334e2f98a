import type { StateMachine } from '../../state/index.ts'

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
  /** The leadership the timings belong to (`RaftHost.leaderSince`, by identity): a new one starts over. */
  private leadership?: object
  /** By agent and task: when this leader first saw the task assigned to that agent (monotonic ms). */
  private readonly seen = new Map<string, number>()

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
    if (this.leadership !== leadership) {
      this.leadership = leadership
      this.seen.clear()
    }
    const due: string[] = []
    const current = new Set<string>()
    for (const agent of state.agents()) {
      if (!agent.alive || !agent.runsTasks || (state.agentLoad(agent.agentId)?.assigned ?? 0) === 0) continue
      let stalled = false
      for (const task of state.tasksAssignedTo(agent.agentId)) {
        if (task.state !== 'assigned') continue
        const key = `${agent.agentId}\n${task.id}`
        current.add(key)
        const since = this.seen.get(key)
        if (since === undefined) this.seen.set(key, now)
        else if (now - since >= stallMs) stalled = true
      }
      if (stalled) due.push(agent.agentId)
    }
    // Assignments that ended (started, returned, moved) are forgotten.
    if (current.size < this.seen.size) {
      for (const key of this.seen.keys()) if (!current.has(key)) this.seen.delete(key)
    }
    return due
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.leadership = undefined
    this.seen.clear()
  }
}
