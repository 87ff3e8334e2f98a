/** Majority arithmetic over the voters of one configuration. */

import type { NodeId } from './types.ts'

/** Votes needed for a majority of `voterCount` voters. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1
}

// Reused between calls: the leader computes this on every acknowledgement.
let scratch = new Float64Array(8)

/**
 * The highest index that a majority of `voters` has, given each voter's match index; 0 with no voters.
 * Sorting a handful of numbers in a reused typed array keeps the hot path free of allocation.
 */
export function majorityIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const count = voters.length
  if (count === 0) return 0
  if (scratch.length < count) scratch = new Float64Array(count * 2)
  for (let i = 0; i < count; i++) {
    // Insertion sort, descending: voter sets are small (at most a few dozen).
    const value = matchOf(voters[i])
    let j = i
    while (j > 0 && scratch[j - 1] < value) {
      scratch[j] = scratch[j - 1]
      j--
    }
    scratch[j] = value
  }
  return scratch[quorumSize(count) - 1]
}

export type VoteResult = 'won' | 'lost' | 'pending'

/** The outcome of an election so far, counting only the votes of `voters`. */
export function tallyVotes(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0
  let rejected = 0
  for (const id of voters) {
    const vote = votes.get(id)
    if (vote === true) granted++
    else if (vote === false) rejected++
  }
  const needed = quorumSize(voters.length)
  if (granted >= needed) return 'won'
  if (voters.length - rejected < needed) return 'lost'
  return 'pending'
}
