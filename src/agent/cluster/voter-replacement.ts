/**
 * The leader's voter-set policy, as a pure function: which single Raft membership change (if any) to make
 * next, given the configuration, replication progress and the membership view. The service applies the
 * change, waits for it to commit, and asks again.
 *
 * Goals, in order: a voter dead for longer than `replaceAfterMs` leaves the voter set; healthy caught-up
 * non-voters are promoted up to the target; the voter count ends odd; a non-voter dead for longer than
 * `replaceAfterMs` leaves the configuration. An even count is never the goal: with too few healthy
 * candidates the set stays one below (promotions) or keeps one dead voter (removals) rather than demote a
 * live voter, which gives the same fault tolerance without touching a healthy node. A node leaves only
 * when both the membership view (dead or left for `replaceAfterMs`) and Raft (not recently active) agree.
 *
 * A removed voter is not kept as a non-voter: it has already been dead for `replaceAfterMs`, so it would
 * be removed as a dead non-voter next. If it comes back, it asks to join again (see the service).
 */

import type { ConfigChange, NodeId, Progress } from '../../raft/types.ts'
import type { MemberStatus } from '../../swim/types.ts'

export interface VoterPlanInput {
  /** This node, the leader: never removed. */
  leader: NodeId
  voters: readonly NodeId[]
  nonVoters: readonly NodeId[]
  /** The voter count wanted; an even target is kept one below. */
  target: number
  /** The leader's commit index: a non-voter is caught up when its match reaches it. */
  commit: number
  progress: Readonly<Record<NodeId, Pick<Progress, 'match' | 'recentActive'>>>
  /** The node's status in the membership view (with the registry as fallback); undefined if unknown. */
  status(id: NodeId): MemberStatus | undefined
  /** How long (ms) the node has been dead or left in the view; undefined while it is not. */
  downFor(id: NodeId): number | undefined
  replaceAfterMs: number
  /** Whether a non-voter may be promoted (its identity may vote). Default: every non-voter may. */
  mayVote?(id: NodeId): boolean
}

/** The next single membership change, or undefined when the configuration is as it should be. */
export function planVoterChange(input: VoterPlanInput): ConfigChange | undefined {
  return voterChange(input) ?? deadNonVoterRemoval(input)
}

/** Removal of a dead voter or promotion of a non-voter, to keep the voter set at its target. */
function voterChange(input: VoterPlanInput): ConfigChange | undefined {
  const { voters, progress } = input
  const longDead = voters.filter(id => id !== input.leader && isLongDown(input, id))
  // Healthy non-voters: alive in the view and answering Raft. Only caught-up ones are promoted now.
  const healthy = input.nonVoters.filter(
    id =>
      input.status(id) === 'alive' &&
      progress[id]?.recentActive === true &&
      (input.mayVote === undefined || input.mayVote(id)),
  )
  const standing = voters.length - longDead.length
  let promotions = Math.min(healthy.length, Math.max(0, input.target - standing))
  let keepDead = 0
  if ((standing + promotions) % 2 === 0) {
    if (promotions > 0) promotions--
    else if (longDead.length > 0) keepDead = 1
  }
  if (longDead.length > keepDead) return { type: 'removeVoter', node: longestDown(input, longDead) }
  if (voters.length - keepDead >= standing + promotions) return undefined
  const caughtUp = healthy
    .filter(id => (progress[id]?.match ?? 0) >= input.commit)
    .sort((a, b) => (progress[b]?.match ?? 0) - (progress[a]?.match ?? 0) || (a < b ? -1 : 1))
  if (caughtUp.length === 0) return undefined
  return { type: 'promote', node: caughtUp[0] }
}

/**
 * A non-voter dead for `replaceAfterMs` (a replaced voter, or a non-voter that crashed) leaves the
 * configuration: else the leader replicates to it, and every member counts it, forever.
 */
function deadNonVoterRemoval(input: VoterPlanInput): ConfigChange | undefined {
  const dead = input.nonVoters.filter(id => id !== input.leader && isLongDown(input, id))
  if (dead.length === 0) return undefined
  return { type: 'removeNonVoter', node: longestDown(input, dead) }
}

/** Down in the view for `replaceAfterMs`, and silent to Raft. */
function isLongDown(
  input: Pick<VoterPlanInput, 'status' | 'downFor' | 'replaceAfterMs'> & {
    progress: Readonly<Record<NodeId, Pick<Progress, 'recentActive'>>>
  },
  id: NodeId,
): boolean {
  const status = input.status(id)
  return (
    (status === 'dead' || status === 'left') &&
    (input.downFor(id) ?? 0) >= input.replaceAfterMs &&
    input.progress[id]?.recentActive !== true
  )
}

/** The longest down first (ties by id, so that the choice does not depend on the configuration's order). */
function longestDown(input: VoterPlanInput, ids: readonly NodeId[]): NodeId {
  return [...ids].sort((a, b) => (input.downFor(b) ?? 0) - (input.downFor(a) ?? 0) || (a < b ? -1 : 1))[0]
}

export interface StandbyPlanInput {
  voters: readonly NodeId[]
  nonVoters: readonly NodeId[]
  /** Agents whose addition is proposed and not applied yet: they count as replicas already. */
  adding: readonly NodeId[]
  /** The voter target (an even one is kept one below). */
  target: number
  /** The standbys wanted beside the voters. */
  standbys: number
  /** Members (agents outside the configuration) that could become standbys. */
  candidates: readonly NodeId[]
  status(id: NodeId): MemberStatus | undefined
  /** How long (ms) the node has been dead or left in the view; undefined while it is not. */
  downFor(id: NodeId): number | undefined
  progress: Readonly<Record<NodeId, Pick<Progress, 'recentActive'>>>
  replaceAfterMs: number
  mayVote?(id: NodeId): boolean
}

/**
 * A member made a standby (added as a non-voter, to catch up by snapshot and be promoted in turn) while
 * the replicas are fewer than the voter target plus the standbys. A replica stops counting only once it is
 * lost by the rule that takes it out of the configuration (down in the view for `replaceAfterMs` and silent
 * to Raft): a replica the view only briefly held dead must not leave a standby too many behind when it comes
 * back, since nothing takes a healthy standby out. Additions in flight count, so that a join answered at
 * the same moment does not add one more. One at a time, the lowest id first, so that every leader picks the
 * same.
 */
export function planStandbyAddition(input: StandbyPlanInput): ConfigChange | undefined {
  const replicas = [...input.voters, ...input.nonVoters]
  const standing = replicas.filter(id => !isLongDown(input, id)).length
  const adding = input.adding.filter(id => !replicas.includes(id))
  const target = input.target % 2 === 0 ? input.target - 1 : input.target
  if (standing + adding.length >= target + input.standbys) return undefined
  const chosen = input.candidates
    .filter(
      id =>
        !replicas.includes(id) &&
        !adding.includes(id) &&
        input.status(id) === 'alive' &&
        (input.mayVote === undefined || input.mayVote(id)),
    )
    .sort()[0]
  return chosen === undefined ? undefined : { type: 'addNonVoter', node: chosen }
}
