import type { Cancel, Scheduler } from '../../time/index.ts'
import type { LivenessPort } from '../node/port.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { Replica } from '../node/replica.ts'
import type { Joining } from './join.ts'
import { type LeaderDuties, planLeaderDuties } from './leader-duties.ts'
import type { Voters } from './voters.ts'

export interface HousekeepingInit {
  selfId: string
  host: RaftHost
  replica: Replica
  liveness: Pick<LivenessPort, 'down'>
  duties: LeaderDuties
  voters: Pick<Voters, 'keep'>
  joining: Pick<Joining, 'rejoinIfRemoved'>
  scheduler: Scheduler
  intervalMs: number
}

/**
 * The housekeeping round, every `intervalMs` while the agent runs: a leader proposes the expiries its
 * duties plan (`leader-duties.ts`) and keeps the voter set at its target; any other member checks that it
 * was not left out of the configuration.
 */
export class Housekeeping {
  private readonly init: HousekeepingInit
  private cancel?: Cancel

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
    if (runner === undefined) return
    if (since === undefined || !host.isLeader()) {
      this.init.joining.rejoinIfRemoved()
      return
    }
    // A leader that steps down starts counting from its last moment as leader.
    host.leaderContact = this.init.scheduler.now()
    this.init.duties.run(
      planLeaderDuties({
        state: this.init.replica.state,
        selfId,
        now: this.init.scheduler.wallNow(),
        elapsed: this.init.scheduler.now() - since.local,
        takeoverStateTime: since.stateTime,
        down: new Set(this.init.liveness.down()),
      }),
    )
    this.init.voters.keep(runner)
  }
}
