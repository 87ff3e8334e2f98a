/**
 * conclave: peer-to-peer coordination for agents. Real Raft over direct libp2p streams, a replicated
 * coordination state (KV, locks, elections, sessions), and the API of `API.md`.
 */

export { conclave, createAgent } from './agent/create-agent.ts'
export type {
  AgentOptions,
  MembershipPreset,
  MembershipTiming,
  RateLimits,
  ServiceOptions,
  TimingOptions,
} from './agent/options.ts'
export { type ConclaveComponents, ConclaveService } from './agent/service.ts'
export type * from './api.ts'
export {
  AbortError,
  ClosedError,
  CompactedError,
  ConclaveError,
  InvalidArgumentError,
  LimitExceededError,
  LockLostError,
  NoLeaderError,
  NotClaimableError,
  NotFoundError,
  NotVoterError,
  RevisionMismatchError,
  StaleAttemptError,
  UnauthorizedError,
} from './errors.ts'
export { coalescingTcp } from './net/coalescing-tcp.ts'
export { YAMUX_MAX_STREAM_WINDOW } from './net/libp2p-node.ts'
export type { RateLimit } from './net/rate-limit.ts'
export type { RaftBugs, RaftOptions } from './raft/types.ts'
export { IdentityError, type IdentityFailure, SvidError, type SvidRejection } from './security/errors.ts'
export type { PemSource, SecurityOptions, SecurityRefusal, SvidRotation } from './security/options.ts'
export { generatePsk, loadPsk } from './security/pnet.ts'
export { type Action, AuthorizationPolicy, type PolicyRule } from './security/policy.ts'
export { StorageFailedError, StorageFormatError, StorageLockedError } from './storage/errors.ts'
export type { SwimConfig } from './swim/types.ts'
