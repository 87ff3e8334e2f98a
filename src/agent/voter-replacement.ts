/**
 * The leader's voter-set policy, as a pure function: which single Raft membership change (if any) to make
 * next, given the configuration, replication progress and the membership view. The service applies the
 * change, waits for it to commit, and asks again.
 *
 * Goals, in order: a voter dead for longer than `replaceAfterMs` leaves the voter set; healthy caught-up
 * non-voters are promoted up to the target; the voter count ends odd. An even count is never the goal: with
 * too few healthy candidates the set stays one below (promotions) or keeps one dead voter (removals) rather
 * than demote a live voter, which gives the same fault tolerance without touching a healthy node. A voter
 * leaves the set only when both the membership view (dead or left for `replaceAfterMs`) and Raft (not
 * recently active) agree.
 */

import type { ConfigChange, NodeId, Progress } from '../raft/types.ts'
import type { MemberStatus } from '../swim/types.ts'

export interface VoterPlanInput {
  /** This node, the leader: never removed. */
  leader: NodeId
  voters: readonly NodeId[]
  nonVoters: readonly NodeId[]
  /** The voter count wanted (odd). */
  target: number
  /** The leader's commit index: a non-voter is caught up when its match reaches it. */
  commit: number
  progress: Readonly<Record<NodeId, Pick<Progress, 'match' | 'recentActive'>>>
  /** The node's status in the membership view (with the registry as fallback); undefined if unknown. */
  status(id: NodeId): MemberStatus | undefined
  /** How long (ms) the node has been dead or left in the view; undefined while it is not. */
  downFor(id: NodeId): number | undefined
  replaceAfterMs: number
  /** Nodes this leader took out of the voter set and must add back as non-voters. */
  readd: readonly NodeId[]
}

/** The next single membership change, or undefined when the voter set is as it should be. */
export function planVoterChange(input: VoterPlanInput): ConfigChange | undefined {
  const { voters, nonVoters, progress } = input
  for (const node of input.readd) {
    if (!voters.includes(node) && !nonVoters.includes(node)) return { type: 'addNonVoter', node }
  }
  const longDead = voters.filter(
    id =>
      id !== input.leader &&
      isDown(input.status(id)) &&
      (input.downFor(id) ?? 0) >= input.replaceAfterMs &&
      progress[id]?.recentActive !== true,
  )
  // Healthy non-voters: alive in the view and answering Raft. Only caught-up ones are promoted now.
  const healthy = nonVoters.filter(id => input.status(id) === 'alive' && progress[id]?.recentActive === true)
  const standing = voters.length - longDead.length
  let promotions = Math.min(healthy.length, Math.max(0, input.target - standing))
  let keepDead = 0
  if ((standing + promotions) % 2 === 0) {
    if (promotions > 0) promotions--
    else if (longDead.length > 0) keepDead = 1
  }
  if (longDead.length > keepDead) {
    // The longest dead goes first.
    const node = [...longDead].sort((a, b) => (input.downFor(b) ?? 0) - (input.downFor(a) ?? 0))[0]
    return { type: 'removeVoter', node }
  }
  if (voters.length - keepDead >= standing + promotions) return undefined
  const caughtUp = healthy
    .filter(id => (progress[id]?.match ?? 0) >= input.commit)
    .sort((a, b) => (progress[b]?.match ?? 0) - (progress[a]?.match ?? 0) || (a < b ? -1 : 1))
  if (caughtUp.length === 0) return undefined
  return { type: 'promote', node: caughtUp[0] }
}

function isDown(status: MemberStatus | undefined): boolean {
  return status === 'dead' || status === 'left'
}
