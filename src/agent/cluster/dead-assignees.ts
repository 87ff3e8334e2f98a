import type { StateMachine } from '../../state/index.ts'

/**
 * Agents the leader's membership view holds dead that still hold task assignments (not started): the leader
 * takes their slots off placement at once (`updateAgent { runsTasks: false }`), which sends those tasks back
 * to pending for the others. Without it they waited for the agent's session to expire (half a ttl after its
 * last keep-alive, so up to half a ttl after the view saw it die, more with a long `sessionTtlMs`) or for the
 * `StalledAssignmentClock` (a stall time later).
 *
 * Safe on a false positive (a live agent the view holds dead): an assignment not started moves to another
 * agent, and only a claim starts an attempt, one live attempt at a time (its fencing token), so nothing
 * runs twice; running attempts are left alone (they end with the session, or by their timeout). The agent
 * offers its slots again once it applies the entry while its worker runs (`SlotOffer`). At most once per
 * agent while the view holds it dead, so a live agent wrongly held dead that offers its slots again is not
 * taken off placement again and again; once the view holds it alive, a later death counts anew.
 */
export class DeadAssignees {
  private leadership?: object
  /** Agents taken off placement during their current stay in the dead set. */
  private readonly done = new Set<string>()

  /**
   * The agents in `down` (not `selfId`) registered alive, offering slots and holding assignments, that were
   * not taken off placement yet while down, for the leadership `leadership`. Call once per housekeeping
   * round, on the leader.
   */
  due(
    state: Pick<StateMachine, 'agents' | 'agentLoad'>,
    leadership: object,
    down: ReadonlySet<string>,
    selfId: string,
  ): string[] {
    if (this.leadership !== leadership) this.clear()
    this.leadership = leadership
    for (const agentId of this.done) if (!down.has(agentId)) this.done.delete(agentId)
    const due: string[] = []
    for (const agent of state.agents()) {
      const { agentId } = agent
      if (agentId === selfId || !down.has(agentId) || !agent.alive || !agent.runsTasks) continue
      if (this.done.has(agentId) || (state.agentLoad(agentId)?.assigned ?? 0) === 0) continue
      // Once per stay: a proposal lost is not sent again (its session's expiry still sends them back).
      this.done.add(agentId)
      due.push(agentId)
    }
    return due
  }

  /** Forget everything (this agent no longer leads). */
  clear(): void {
    this.leadership = undefined
    this.done.clear()
  }
}
