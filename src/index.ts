/**
 * @packageDocumentation
 *
 * conclave: peer-to-peer coordination for agents. Real Raft over direct libp2p streams, a replicated
 * coordination state (KV, locks, elections, sessions), and the API of `API.md`.
 *
 * An agent founds a cluster, or joins one through any member's multiaddrs, then offers a consensus
 * key-value store (`agent.consensus`), locks with fencing tokens (`agent.locks`), leader elections
 * (`agent.election`, `agent.elections(name)`) and task distribution (`agent.tasks`, `agent.workStealing`).
 * Every write resolves once it is committed on a quorum of voters; every rejection is a typed error with a
 * stable `name` and `code` (`InvalidArgumentError`, `NoLeaderError`, ...).
 *
 * @example
 *
 * ```typescript
 * import { createAgent } from 'conclave'
 *
 * const agent = await createAgent({ name: 'worker-1', capabilities: ['gpu'] })
 * await agent.join({ bootstrap: [] }) // found a cluster; pass members' multiaddrs to join one
 *
 * await agent.consensus.propose('config/model', { name: 'llama' })
 * console.info(await agent.consensus.get('config/model')) // { name: 'llama' }
 *
 * const lock = await agent.locks.acquire('jobs/nightly', 30_000) // ttl in ms; waits its turn
 * console.info(lock.fencingToken) // pass it to what you write to, so a stale holder is refused there
 * await lock.release()
 *
 * await agent.tasks.submit({ type: 'resize', payload: { image: 'a.png' } })
 * const task = await agent.tasks.next() // or agent.tasks.process(handler) for a worker loop
 * await agent.tasks.complete(task.id, `resized ${task.payload.image}`)
 * console.info((await agent.tasks.status(task.id)).state) // 'completed'
 *
 * await agent.stop()
 * ```
 *
 * @example
 *
 * To run conclave inside a libp2p node you already have, add it as a service: `node.services.conclave` has
 * the same members as an agent (the node needs identify, a stream muxer and, for work stealing, gossipsub).
 *
 * ```typescript
 * import { createLibp2p } from 'libp2p'
 * import { conclave } from 'conclave'
 *
 * const node = await createLibp2p({
 *   // ...transports, encrypters, stream muxers, identify
 *   services: { conclave: conclave({ dataDir: './data' }) },
 * })
 * await node.services.conclave.join({ bootstrap: [] })
 * ```
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
  decodeSnapshotFile,
  type ForcedCluster,
  type RestoredCluster,
  type RestoreSnapshotOptions,
  restoreSnapshot,
  type SavedSnapshot,
  type SaveSnapshotOptions,
  SNAPSHOT_FILE_VERSION,
  SnapshotFileError,
  type SnapshotHeader,
  saveSnapshot,
} from './backup/index.ts'
export {
  AbortError,
  ClosedError,
  CompactedError,
  ConclaveError,
  ConflictError,
  InvalidArgumentError,
  LimitExceededError,
  LockLostError,
  NoLeaderError,
  NotClaimableError,
  NotFoundError,
  NotLeaderError,
  NotVoterError,
  RevisionMismatchError,
  StaleAttemptError,
  UnauthorizedError,
  UnsupportedVersionError,
} from './errors.ts'
export {
  type Dashboard,
  DashboardListenError,
  type DashboardOptions,
  listenDashboard,
  type PendingDashboard,
  startDashboard,
} from './http/server.ts'
export { agentSource, type DashboardSource } from './http/source.ts'
export {
  type ConclaveMetrics,
  enableMetrics,
  listenMetrics,
  type MetricsInternals,
  type MetricsRegistry,
  type MetricsServer,
  type MetricsServerOptions,
  registerConclaveMetrics,
} from './metrics/index.ts'
export { timedStorage } from './metrics/storage-timing.ts'
export { coalescingTcp } from './net/coalescing-tcp.ts'
export { YAMUX_MAX_STREAM_WINDOW } from './net/libp2p-node.ts'
export { generatePsk, loadPsk } from './net/pnet.ts'
export type { RateLimit } from './net/rate-limit.ts'
export type { RaftOptions } from './raft/types.ts'
export { IdentityError, type IdentityFailure, SvidError, type SvidRejection } from './security/errors.ts'
export type { PemSource, SecurityOptions, SecurityRefusal, SvidRotation } from './security/options.ts'
export { type Action, AuthorizationPolicy, type PolicyRule } from './security/policy.ts'
export { BASE_COMMAND_SET_VERSION, COMMAND_SET_VERSION } from './state/versions.ts'
export { StorageFailedError, StorageFormatError, StorageLockedError } from './storage/errors.ts'
export {
  type StorageObservation,
  type StorageObserver,
  type StorageOperation,
  TimedStorage,
} from './storage/timed-storage.ts'
export type { SwimConfig } from './swim/types.ts'
