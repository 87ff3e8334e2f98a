/** The Raft core: a pure state machine (see `types.ts` for the data it exchanges with its shell). */

export { applyConfigChange, ConfigHistory, decodeConfig, emptyConfig, encodeConfig } from './config.ts'
export type { RaftBugs, RaftCoreOptions, RaftInit } from './core-options.ts'
export {
  ConfigChangeError,
  InvalidRequestError,
  NotLeaderError,
  ProposalDroppedError,
  RaftError,
} from './errors.ts'
export { DEFAULT_RAFT_OPTIONS, RaftNode } from './raft.ts'
export type * from './types.ts'
