import type { Logger } from '@libp2p/interface'
import { InvalidArgumentError } from '../../errors.ts'
import type { ConfigChange } from '../../raft/types.ts'
import type { Gate } from '../../security/gate.ts'
import type { MemberStatus } from '../../swim/types.ts'
import type { Scheduler } from '../../time/index.ts'
import type { CommitPort, LeaderPort, LivenessPort, RunnerPort } from '../node/port.ts'
import type { RaftRunner } from '../node/raft-runner.ts'
import type { NodeMeta } from './meta.ts'
import { planStandbyAddition, planVoterChange } from './voter-replacement.ts'

export interface VotersInit {
  selfId: string
  runner: RunnerPort
  leader: LeaderPort
  commit: CommitPort
  liveness: LivenessPort
  gate: Pick<Gate, 'peek' | 'check'>
  meta(): NodeMeta
  /** The voter target in the replicated state. */
  replicatedTarget(): number
  /** A member's status in the view, else by the registry. */
  memberStatus(id: string): MemberStatus | undefined
  /** The configuration may have changed: the member gate reads it again. */
  onConfigChange(): void
  voterReplaceAfterMs: number
  /** The standbys to keep beside the voters; without it, none are added. */
  standbys?(): number
  /** Members (agents outside the configuration) that could become standbys. */
  candidates?(): readonly string[]
  scheduler: Scheduler
  log: Logger
}

/**
 * The voter set: the founder's target committed into the replicated state, and, on the leader, one
 * configuration change at a time toward it (see `voter-replacement.ts`, the pure planner).
 */
export class Voters {
  private readonly init: VotersInit
  /** The founder's `voters` while its `setVoterTarget` is not known committed (see `NodeMeta`). */
  private pendingTarget?: number
  private settingTarget?: Promise<void>
  private promoting = false
  /** Peers whose `vote` permission is being checked (promotion waits for the answer). */
  private readonly checkingVote = new Set<string>()
  /**
   * Agents whose addition as a non-voter is proposed and not applied yet. A join's answer and the standby
   * planner both count them as replicas, so that the two, running at the same moment, never add past the
   * voters plus the standbys (nothing takes a healthy standby out again).
   */
  private readonly addingSet = new Set<string>()

  /** Agents being added as non-voters now (see `addingSet`). */
  get adding(): ReadonlySet<string> {
    return this.addingSet
  }

  constructor(init: VotersInit) {
    this.init = init
  }

  /** At start: a founder's target that was not committed before it stopped. */
  resume(pending: number | undefined): void {
    this.pendingTarget = pending
  }

  /** The founder's target, to commit once it leads. */
  found(voters: number): void {
    this.init.meta().setPendingVoterTarget(voters)
    this.pendingTarget = voters
  }

  /** Commits the founder's voter target (if not done yet) into the replicated state; one attempt at a time. */
  commitTarget(deadline: number, signal?: AbortSignal): Promise<void> {
    const voters = this.pendingTarget
    if (voters === undefined) return Promise.resolve()
    this.settingTarget ??= (async () => {
      // Idempotent: a retry after an unknown outcome sets the same value again.
      const result = await this.init.commit.submitRaw({ type: 'setVoterTarget', voters }, deadline, signal)
      if (result.type === 'error') {
        throw new InvalidArgumentError(`could not set the voter target: ${result.message}`)
      }
      this.init.meta().setPendingVoterTarget(undefined)
      this.pendingTarget = undefined
      this.init.log('voter target: %d', voters)
    })().finally(() => {
      this.settingTarget = undefined
    })
    return this.settingTarget
  }

  /** The leader's voter duties, at every housekeeping round. */
  keep(runner: RaftRunner): void {
    if (this.pendingTarget !== undefined && this.settingTarget === undefined) {
      this.commitTarget(this.init.commit.deadline()).catch(err =>
        this.init.log('voter target not set: %e', err),
      )
    }
    this.promote(runner)
  }

  /**
   * One configuration change at a time (see `voter-replacement.ts`): a voter dead for `voterReplaceAfterMs`
   * is taken out, the most caught-up healthy non-voters are promoted up to the replicated voter target, the
   * count stays odd, and a non-voter dead for `voterReplaceAfterMs` is taken out (if it comes back, it asks
   * to join again: see `Rejoiner`).
   */
  private promote(runner: RaftRunner): void {
    if (this.promoting) return
    const status = runner.status()
    const { voters, nonVoters } = status.config
    const target = this.pendingTarget ?? this.init.replicatedTarget()
    const change =
      planVoterChange({
        leader: this.init.selfId,
        voters,
        nonVoters,
        // Until the founder's target is committed, the founder (then the only voter) uses it already.
        target,
        commit: status.commit,
        progress: status.progress ?? {},
        status: id => this.init.memberStatus(id),
        downFor: id => this.init.liveness.downFor(id),
        replaceAfterMs: this.init.voterReplaceAfterMs,
        // Only non-voters whose SPIFFE ID may vote are ever promoted; the others stay non-voters.
        mayVote: id => this.mayVote(id),
      }) ?? this.standbyAddition(voters, nonVoters, target, status)
    if (change === undefined) return
    this.promoting = true
    const done = this.track(change)
    const applied = runner.proposeConfigChange(change)
    this.init.onConfigChange()
    applied
      .then(() => this.init.log('voter set: %s %s', change.type, change.node))
      .catch(err => this.init.log('voter set: %s %s not done: %e', change.type, change.node, err))
      .finally(() => {
        done()
        this.promoting = false
      })
  }

  /** Counts an addition in `adding` until `done` is called. */
  private track(change: ConfigChange): () => void {
    if (change.type !== 'addNonVoter') return () => {}
    this.addingSet.add(change.node)
    return () => this.addingSet.delete(change.node)
  }

  /** A member to make a standby, when replicas are missing (see `planStandbyAddition`). */
  private standbyAddition(
    voters: readonly string[],
    nonVoters: readonly string[],
    target: number,
    status: ReturnType<RaftRunner['status']>,
  ): ReturnType<typeof planStandbyAddition> {
    if (this.init.standbys === undefined || this.init.candidates === undefined) return undefined
    return planStandbyAddition({
      voters,
      nonVoters,
      adding: [...this.addingSet],
      target,
      standbys: this.init.standbys(),
      candidates: this.init.candidates(),
      status: id => this.init.memberStatus(id),
      downFor: id => this.init.liveness.downFor(id),
      progress: status.progress ?? {},
      replaceAfterMs: this.init.voterReplaceAfterMs,
      mayVote: id => this.mayVote(id),
    })
  }

  /** One membership change, retried while another is still uncommitted. */
  async changeConfig(change: ConfigChange): Promise<void> {
    const deadline = this.init.commit.deadline()
    const done = this.track(change)
    try {
      for (;;) {
        try {
          const applied = this.init.runner.require().proposeConfigChange(change)
          this.init.onConfigChange()
          await applied
          return
        } catch (err) {
          if ((err as Error).name !== 'ConfigChangeError' || this.init.scheduler.now() > deadline) throw err
          await this.init.leader.waitChange(50)
        }
      }
    } finally {
      done()
    }
  }

  /** Whether `id` may be promoted to voter; an unknown peer is authenticated now and considered next round. */
  private mayVote(id: string): boolean {
    const verdict = this.init.gate.peek(id, 'vote')
    if (verdict !== undefined) return verdict.ok
    if (!this.checkingVote.has(id)) {
      this.checkingVote.add(id)
      void this.init.gate.check(id, 'vote').finally(() => this.checkingVote.delete(id))
    }
    return false
  }
}
