import type { Logger } from '@libp2p/interface'
import type {
  ExpireSessionCommand,
  LockExpireCommand,
  StateMachine,
  UpdateAgentCommand,
} from '../../state/index.ts'
import type { TaskTimeCommand } from '../../state/task-planner.ts'
import type { CommitPort } from '../node/port.ts'
import type { AttemptTimeout } from './attempt-timeouts.ts'
import type { SessionExpiry } from './lessor.ts'
import type { LockExpiry } from './lock-leases.ts'
import { dueTaskDuties } from './task-duties.ts'

/** One housekeeping entry the leader proposes, with the id that keeps it to one proposal at a time. */
export interface Duty {
  id: string
  command: ExpireSessionCommand | LockExpireCommand | TaskTimeCommand | UpdateAgentCommand
}

/** What the planner reads: the replicated state, the leader's clocks, and the liveness view. */
export interface DutyInput {
  state: Pick<StateMachine, 'dueExpiries' | 'session' | 'sessions' | 'taskPlanView'>
  selfId: string
  /**
   * The leader's wall clock (ms since the epoch). The planner decides no expiry from it (clocks may be set
   * off or step); its tests pass one far ahead to show so.
   */
  now: number
  /** Monotonic ms since this agent took over as leader. */
  elapsed: number
  /** The state time when it took over. */
  takeoverStateTime: number
  /** The session expiries this leader's lessor decided (`lessor.ts`: keep-alives are not in the state). */
  sessionExpiries: readonly SessionExpiry[]
  /** Lock leases due on the leader's monotonic clock (`LockLeaseClock`). Default none. */
  lockExpiries?: readonly LockExpiry[]
  /**
   * The leader's clock in state time for the task planner: a state time this leader applied, and the
   * monotonic ms since. Default: the takeover (`takeoverStateTime`, `elapsed`).
   */
  taskClock?: { stateTime: number; elapsed: number }
  /**
   * Task attempts due on the leader's monotonic clock (`AttemptTimeoutClock`: a full timeout after it first
   * saw each one running). Absent: timed from their start times in state time (planner tests).
   */
  taskTimeouts?: readonly AttemptTimeout[]
  /**
   * Agents holding assignments they do not start (`StalledAssignmentClock`): their slots are taken off
   * placement (`updateAgent runsTasks: false`), which sends those tasks back to pending. Default none.
   */
  stalledAgents?: readonly string[]
  /**
   * Agents the membership view holds dead that hold assignments (`DeadAssignees`): their slots are taken off
   * placement the same way, at once. Default none.
   */
  deadAssignees?: readonly string[]
}

/**
 * The leader's expiries, planned: the sessions its lessor expires (lapsed on its monotonic clock, or of
 * agents the membership view declares dead), the lock leases its monotonic clock timed out
 * (`LockLeaseClock`: a full ttl after it first saw each lease, no wall clock involved), and the time-driven
 * task transitions (`dueTaskDuties`: timeouts, retries, deadlines, delayed releases, repeat occurrences,
 * retention). A pure function, as `planVoterChange` is; each command re-checks when applied (a
 * `lockExpire` that its lease was extended).
 */
export function planLeaderDuties(input: DutyInput): Duty[] {
  const { state, elapsed, takeoverStateTime } = input
  const duties: Duty[] = []
  for (const { sessionId, reason } of input.sessionExpiries) {
    duties.push({ id: `s:${sessionId}`, command: { type: 'expireSession', sessionId, reason } })
  }
  for (const { key, fencingToken, leaseIndex } of input.lockExpiries ?? []) {
    duties.push({
      id: `l:${key}:${fencingToken}:${leaseIndex}`,
      command: { type: 'lockExpire', key, fencingToken, leaseIndex },
    })
  }
  // The task planner reads this leader's clock as state time: a state time it applied plus elapsed since.
  const clock = input.taskClock ?? { stateTime: takeoverStateTime, elapsed }
  const anchor = { local: 0, stateTime: clock.stateTime }
  for (const { key, command } of dueTaskDuties(state, anchor, clock.elapsed, input.taskTimeouts))
    duties.push({ id: key, command })
  for (const agentId of new Set([...(input.stalledAgents ?? []), ...(input.deadAssignees ?? [])])) {
    duties.push({ id: `w:${agentId}`, command: { type: 'updateAgent', agentId, runsTasks: false } })
  }
  return duties
}

/** Proposes the planned duties, one proposal at a time per duty id. */
export class LeaderDuties {
  private readonly commit: CommitPort
  private readonly log: Logger
  private readonly proposing = new Set<string>()
  /** Occurrence proposals in flight, by repeat id. */
  private readonly occurrences = new Map<string, number>()

  constructor(commit: CommitPort, log: Logger) {
    this.commit = commit
    this.log = log
  }

  /**
   * A repeat's due slots go out together, in order, and none while an earlier one is in flight: a later slot
   * applied first would leave the earlier one `unchanged` (slots only move forward), so a proposal dropped or
   * delayed would lose its slot. (Found by the simulator, seeds 4 and 124: with the leader's flow control
   * dropping proposals, a repeat lost slots under a stable leader.)
   */
  run(duties: Duty[]): void {
    // Repeats with slots in flight from an earlier round: none of their slots go out in this one.
    const waiting = new Set(this.occurrences.keys())
    for (const { id, command } of duties) {
      const repeat = command.type === 'createOccurrence' ? command.scheduleId : undefined
      if (repeat !== undefined && waiting.has(repeat)) {
        waiting.add(repeat)
        continue
      }
      if (this.proposing.has(id)) continue
      this.proposing.add(id)
      if (repeat !== undefined) this.occurrences.set(repeat, (this.occurrences.get(repeat) ?? 0) + 1)
      this.commit
        .submitRaw(command, this.commit.deadline())
        .catch(err => this.log('housekeeping %s failed: %e', id, err))
        .finally(() => {
          this.proposing.delete(id)
          if (repeat === undefined) return
          const left = (this.occurrences.get(repeat) ?? 1) - 1
          if (left > 0) this.occurrences.set(repeat, left)
          else this.occurrences.delete(repeat)
        })
    }
  }
}
