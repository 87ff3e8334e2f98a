/**
 * Taking a snapshot of a running cluster: at the serving agent, after a linearizable barrier (ReadIndex).
 *
 * Why a replica after a barrier rather than the leader: the barrier confirms with a quorum that this agent
 * has applied every entry committed before the request began, so the snapshot holds every write
 * acknowledged before it, exactly as a linearizable read would; and it is taken synchronously from the
 * applied state, so it is one consistent cut at one Raft index. Any member can serve it, so a backup does
 * not add its copy and transfer to the leader's load, and needs no forwarding of megabytes through it.
 */

import type { Libp2p } from '@libp2p/interface'
import type { Agent, ConclaveApi } from '../api.ts'
import { ClosedError, InvalidArgumentError, NoLeaderError } from '../errors.ts'
import type { Config } from '../raft/types.ts'
import { encodeSnapshotFile, SNAPSHOT_FILE_VERSION, type SnapshotHeader } from './snapshot-file.ts'

/** What taking a snapshot needs of an agent. */
export interface SnapshotSource {
  /** The agent's id. */
  readonly id: string
  /** Resolves once this agent has applied every entry committed before the call (ReadIndex). */
  barrier(signal?: AbortSignal): Promise<void>
  /**
   * The applied state and the Raft position it corresponds to, read in one synchronous step (so that no
   * entry applies in between). Undefined when this agent is not a member (no replica).
   */
  capture(): { data: Uint8Array; revision: number; index: number; term: number; config: Config } | undefined
  /** The cluster's id; undefined before this agent founded or joined one. */
  clusterId(): string | undefined
}

/** A snapshot as `saveSnapshot` returns it: the file's bytes and what its header says. */
export interface SavedSnapshot {
  /** The snapshot file (what `conclave snapshot save` writes), integrity hash included. */
  bytes: Uint8Array
  header: SnapshotHeader
}

/** Options of `saveSnapshot`. */
export interface SaveSnapshotOptions {
  signal?: AbortSignal
}

/**
 * A consistent snapshot of the cluster `agent` (an agent, or the conclave service of a libp2p node) belongs to, as a snapshot file's bytes: every write
 * acknowledged before the call is in it. Write the bytes to a file; `restoreSnapshot` (or `conclave snapshot
 * restore`) seeds a new cluster from them. Rejects with `NoLeaderError` when no leader confirms the read
 * point in time, `ClosedError` once the agent stopped or before it joined a cluster.
 */
export async function saveSnapshot(
  agent: Agent | ConclaveApi | SnapshotSource,
  options: SaveSnapshotOptions = {},
): Promise<SavedSnapshot> {
  const source = isSource(agent) ? agent : snapshotSourceOf(agent)
  await source.barrier(options.signal)
  const captured = source.capture()
  const clusterId = source.clusterId()
  if (captured === undefined || clusterId === undefined) {
    throw new ClosedError('this agent is not a member of a cluster: nothing to snapshot')
  }
  const header: SnapshotHeader = {
    version: SNAPSHOT_FILE_VERSION,
    clusterId,
    revision: captured.revision,
    index: captured.index,
    term: captured.term,
    config: captured.config,
    createdAt: new Date().toISOString(),
    takenBy: source.id,
  }
  return { bytes: encodeSnapshotFile({ ...header, data: captured.data }), header }
}

function isSource(value: Agent | ConclaveApi | SnapshotSource): value is SnapshotSource {
  return typeof (value as SnapshotSource).capture === 'function'
}

/**
 * The service's parts a snapshot reads. They are private members of `ConclaveService`, read here through
 * this narrow view so that the service itself need not change; checked at run time so that a rename fails
 * loudly rather than snapshotting nothing.
 */
interface ServiceInternals {
  id: string
  runner?: {
    appliedIndex: number
    status(): { term: number; config: Config }
  }
  replica: { state: { revision: number; snapshot(): Uint8Array } }
  client: { barrier(signal?: AbortSignal): Promise<void> }
  clusterId(): string | undefined
  /** The service's own accessor, when it has one: used instead of the private members above. */
  snapshotSource?(): SnapshotSource
}

/**
 * The `SnapshotSource` of an agent, or of the conclave service of a libp2p node (`node.services.conclave`).
 */
export function snapshotSourceOf(agentOrService: Agent | object): SnapshotSource {
  const service = (
    'libp2p' in agentOrService
      ? (agentOrService.libp2p as Libp2p<{ conclave?: unknown }>).services.conclave
      : agentOrService
  ) as ServiceInternals | undefined
  if (typeof service?.snapshotSource === 'function') return service.snapshotSource()
  if (
    service === undefined ||
    typeof service.clusterId !== 'function' ||
    typeof service.client?.barrier !== 'function' ||
    typeof service.replica?.state?.snapshot !== 'function'
  ) {
    throw new InvalidArgumentError('not a conclave agent or service: cannot take a snapshot of it')
  }
  return {
    id: service.id,
    barrier: async signal => {
      if (service.runner === undefined) throw new NoLeaderError('this agent is not a member of a cluster')
      await service.client.barrier(signal)
    },
    capture: () => {
      const runner = service.runner
      if (runner === undefined) return undefined
      const { state } = service.replica
      const status = runner.status()
      return {
        data: state.snapshot(),
        revision: state.revision,
        index: runner.appliedIndex,
        term: status.term,
        config: { voters: [...status.config.voters], nonVoters: [...status.config.nonVoters] },
      }
    },
    clusterId: () => service.clusterId(),
  }
}
