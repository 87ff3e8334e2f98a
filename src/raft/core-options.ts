import type { NodeId, PersistedState, RaftOptions, Random } from './types.ts'

/**
 * The core's options as tests and simulators give them: the public tuning (`RaftOptions`) plus the bug
 * switches. Kept out of `RaftOptions` and out of the package root, so that no agent can be built with Raft
 * broken on purpose; only code that constructs a `RaftNode` (or a `RaftRunner`) itself can reach them.
 */
export interface RaftCoreOptions extends RaftOptions {
  /** Test-only switches that break Raft in known ways, so the checkers can be shown to fire. */
  bugs: RaftBugs
}

export interface RaftBugs {
  /** Grant votes without checking that the candidate's log is at least as up to date. */
  voteIgnoresLog?: boolean
  /** Commit entries of earlier terms by counting replicas (the Raft paper's figure 8). */
  commitPreviousTerm?: boolean
  /** Serve ReadIndex at once, without confirming leadership with a heartbeat round. */
  staleRead?: boolean
  /** Count a follower's ReadIndex request as the quorum's acknowledgement whatever the number of voters. */
  readAckAnyQuorum?: boolean
  /**
   * Let a follower commit from peer acknowledgements whatever the term of the entry, counting its whole log
   * (a suffix of an earlier term it has not matched with the current leader included).
   */
  peerCommitAnyTerm?: boolean
  /** Serve a sole voter's reads at its commit index at once, before an entry of its term is committed. */
  singleVoterRead?: boolean
}

export interface RaftInit {
  id: NodeId
  /** What the node finds on stable storage at start. */
  state: PersistedState
  random: Random
  options?: Partial<RaftCoreOptions>
  /** Index up to which the application's state already reflects the log (e.g. restored from a snapshot). */
  applied?: number
}
