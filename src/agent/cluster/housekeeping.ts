import type { Cancel, Scheduler } from '../../time/index.ts'
import type { LivenessPort } from '../node/port.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { Replica } from '../node/replica.ts'
import { AttemptTimeoutClock } from './attempt-timeouts.ts'
import type { ClusterVersionKeeper } from './cluster-version.ts'
import { DeadAssignees } from './dead-assignees.ts'
import type { Joining } from './join.ts'
import { type LeaderDuties, planLeaderDuties } from './leader-duties.ts'
import type { Lessor } from './lessor.ts'
import { LockLeaseClock } from './lock-leases.ts'
import { STALLED_ASSIGNMENT_MS, StalledAssignmentClock } from './stalled-assignments.ts'
import type { Voters } from './voters.ts'

export interface HousekeepingInit {
  selfId: string
  host: RaftHost
  replica: Replica
  liveness: Pick<LivenessPort, 'down'>
  duties: LeaderDuties
  /** The leader's in-memory session leases: it decides the session expiries. */
  lessor: Pick<Lessor, 'follow' | 'due'>
  voters: Pick<Voters, 'keep'>
  clusterVersion: Pick<ClusterVersionKeeper, 'keep'>
  joining: Pick<Joining, 'rejoinIfRemoved'>
  scheduler: Scheduler
  intervalMs: number
  /** How long a task may stay assigned to an agent that does not start it (default `STALLED_ASSIGNMENT_MS`). */
  stalledAssignmentMs?: number
}

/**
 * The housekeeping round, every `intervalMs` while the agent runs: a leader proposes the expiries its
 * duties plan (`leader-duties.ts`; the sessions' come from its lessor) and keeps the voter set at its target;
 * any other member checks that it was not left out of the configuration.
 */
export class Housekeeping {
  private readonly init: HousekeepingInit
  private cancel?: Cancel
  /**
   * The task planner's clock: the latest state time this leader applied that ran ahead of its estimate, and
   * its monotonic clock then. A leader that took over a state with no entries yet (a new cluster, state time
   * 0) or an idle one would otherwise read state time far behind the times tasks name (`runAt`, timeouts),
   * which its own entries stamp from its wall clock.
   */
  private taskClock?: { takeover: object; local: number; stateTime: number }
  /** The lock leases, timed on this agent's monotonic clock while it leads. */
  private readonly lockLeases = new LockLeaseClock()
  /** The task attempts with a timeout, timed on this agent's monotonic clock while it leads. */
  private readonly attemptTimeouts = new AttemptTimeoutClock()
  /** Assignments not started, timed on this agent's monotonic clock while it leads. */
  private readonly stalledAssignments = new StalledAssignmentClock()
  /** Agents the membership view holds dead whose assignments go back at once. */
  private readonly deadAssignees = new DeadAssignees()

  constructor(init: HousekeepingInit) {
    this.init = init
  }

  start(): void {
    this.cancel ??= this.init.scheduler.every(this.init.intervalMs, () => this.round())
  }

  stop(): void {
    this.cancel?.()
    this.cancel = undefined
  }

  round(): void {
    const { host, selfId } = this.init
    const runner = host.current()
    const since = host.leaderSince
    if (runner === undefined || since === undefined || !host.isLeader()) this.init.lessor.follow(undefined)
    if (runner === undefined) return
    if (since === undefined || !host.isLeader()) {
      this.lockLeases.clear()
      this.attemptTimeouts.clear()
      this.stalledAssignments.clear()
      this.deadAssignees.clear()
      this.init.joining.rejoinIfRemoved()
      return
    }
    // A leader that steps down starts counting from its last moment as leader.
    const now = this.init.scheduler.now()
    host.leaderContact = now
    const { lessor, replica } = this.init
    lessor.follow(since)
    const down = new Set(this.init.liveness.down())
    this.init.duties.run(
      planLeaderDuties({
        state: replica.state,
        selfId,
        now: this.init.scheduler.wallNow(),
        elapsed: now - since.local,
        takeoverStateTime: since.stateTime,
        lockExpiries: this.lockLeases.due(this.init.replica.state, since, now),
        sessionExpiries: lessor.due(replica.state.sessions(), now, down, selfId),
        taskClock: this.advanceTaskClock(since, now),
        taskTimeouts: this.attemptTimeouts.due(this.init.replica.state.taskPlanView(), since, now),
        stalledAgents: this.stalledAssignments.due(
          this.init.replica.state,
          since,
          now,
          this.init.stalledAssignmentMs ?? STALLED_ASSIGNMENT_MS,
        ),
        deadAssignees: this.deadAssignees.due(replica.state, since, down, selfId),
      }),
    )
    this.init.voters.keep(runner)
    this.init.clusterVersion.keep()
  }

  private advanceTaskClock(
    since: { local: number; stateTime: number },
    now: number,
  ): { stateTime: number; elapsed: number } {
    let clock = this.taskClock
    if (clock?.takeover !== since) clock = { takeover: since, local: since.local, stateTime: since.stateTime }
    const applied = this.init.replica.state.time
    if (applied > clock.stateTime + (now - clock.local))
      clock = { takeover: since, local: now, stateTime: applied }
    this.taskClock = clock
    return { stateTime: clock.stateTime, elapsed: now - clock.local }
  }
}
