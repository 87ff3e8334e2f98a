import type { Logger } from '@libp2p/interface'
import type { ExpireSessionCommand, LockExpireCommand, StateMachine } from '../../state/index.ts'
import type { TaskTimeCommand } from '../../state/task-planner.ts'
import type { CommitPort } from '../node/port.ts'
import type { LeaseExpiry } from './lock-leases.ts'
import { dueTaskDuties } from './task-duties.ts'

/** One housekeeping entry the leader proposes, with the id that keeps it to one proposal at a time. */
export interface Duty {
  id: string
  command: ExpireSessionCommand | LockExpireCommand | TaskTimeCommand
}

/** What the planner reads: the replicated state, the leader's clocks, and the liveness view. */
export interface DutyInput {
  state: Pick<StateMachine, 'dueExpiries' | 'session' | 'sessions' | 'taskPlanView'>
  selfId: string
  /** The leader's wall clock (ms since the epoch): what the state's expiry times are compared with. */
  now: number
  /** Monotonic ms since this agent took over as leader. */
  elapsed: number
  /** The state time when it took over. */
  takeoverStateTime: number
  /** Lock leases due on the leader's monotonic clock (`LockLeaseClock`). Default none. */
  lockExpiries?: readonly LeaseExpiry[]
  /** Agents the membership view holds dead or left. */
  down: ReadonlySet<string>
  /**
   * The leader's clock in state time for the task planner: a state time this leader applied, and the
   * monotonic ms since. Default: the takeover (`takeoverStateTime`, `elapsed`).
   */
  taskClock?: { stateTime: number; elapsed: number }
}

/**
 * The leader's expiries, planned: lapsed sessions, the lock leases its monotonic clock timed out
 * (`LockLeaseClock`: a full ttl after it first saw each lease, no wall clock involved), the sessions of
 * agents the membership view declares dead, and the time-driven task transitions (`dueTaskDuties`:
 * timeouts, retries, deadlines, delayed releases, repeat occurrences, retention). A pure function, as
 * `planVoterChange` is; each command re-checks when applied (a `lockExpire` that its lease was extended).
 *
 * A session lease is expired only when the state says so at this leader's wall time AND, for what a predecessor
 * may have stamped, this leader's monotonic clock has seen the most the lease could still have had at
 * takeover pass: min(ttl, expiresAt - state time at takeover). A lease never has more than its ttl left,
 * and the predecessor's clock stood at or past the last state time when this leader took over. So a new
 * leader whose clock runs ahead of its predecessor's cannot cut a lease short.
 */
export function planLeaderDuties(input: DutyInput): Duty[] {
  const { state, now, elapsed, takeoverStateTime, down } = input
  const duties: Duty[] = []
  const due = state.dueExpiries(now)
  const guard = (ttlMs: number, expiresAt: number): number => Math.min(ttlMs, expiresAt - takeoverStateTime)
  for (const sessionId of due.sessions) {
    const session = state.session(sessionId)
    if (session === undefined || elapsed < guard(session.ttlMs, session.expiresAt)) continue
    duties.push({ id: `s:${sessionId}`, command: { type: 'expireSession', sessionId, reason: 'ttl' } })
  }
  for (const { key, fencingToken, leaseIndex } of input.lockExpiries ?? []) {
    duties.push({
      id: `l:${key}:${fencingToken}:${leaseIndex}`,
      command: { type: 'lockExpire', key, fencingToken, leaseIndex },
    })
  }
  // Sessions of agents the membership view declares dead (or left) go now, not a lease later. Only once a
  // session has gone half its ttl without a keep-alive: an agent still renewing it is alive, whatever a view
  // says, and an agent's lease is never cut below half its ttl.
  if (down.size > 0) {
    for (const session of state.sessions()) {
      if (!down.has(session.agentId) || session.agentId === input.selfId) continue
      const grace = session.ttlMs / 2
      const renewedAt = session.expiresAt - session.ttlMs
      if (now - renewedAt < grace || elapsed < guard(grace, renewedAt + grace)) continue
      const { sessionId } = session
      duties.push({ id: `s:${sessionId}`, command: { type: 'expireSession', sessionId, reason: 'dead' } })
    }
  }
  // The task planner reads this leader's clock as state time: a state time it applied plus elapsed since.
  const clock = input.taskClock ?? { stateTime: takeoverStateTime, elapsed }
  const anchor = { local: 0, stateTime: clock.stateTime }
  for (const { key, command } of dueTaskDuties(state, anchor, clock.elapsed))
    duties.push({ id: key, command })
  return duties
}

/** Proposes the planned duties, one proposal at a time per duty id. */
export class LeaderDuties {
  private readonly commit: CommitPort
  private readonly log: Logger
  private readonly proposing = new Set<string>()

  constructor(commit: CommitPort, log: Logger) {
    this.commit = commit
    this.log = log
  }

  run(duties: Duty[]): void {
    for (const { id, command } of duties) {
      if (this.proposing.has(id)) continue
      this.proposing.add(id)
      this.commit
        .submitRaw(command, this.commit.deadline())
        .catch(err => this.log('housekeeping %s failed: %e', id, err))
        .finally(() => this.proposing.delete(id))
    }
  }
}
