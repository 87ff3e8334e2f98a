/**
 * The read-only surfaces the tools around an agent read: the dashboard's status (`AgentInternals`), the
 * metrics' counters and hooks (`MetricsInternals`) and the snapshot source of a backup (`SnapshotSource`).
 * Built from the composition root's parts, so that none of those tools reads a private field of the service.
 */

import type { SnapshotSource } from '../backup/take-snapshot.ts'
import type { AgentInternals } from '../http/source.ts'
import type { MetricsInternals } from '../metrics/internals.ts'
import type { RaftTransport } from '../net/raft-transport.ts'
import type { Rpc } from '../net/rpc.ts'
import type { RaftStorage } from '../storage/index.ts'
import { TimedStorage } from '../storage/timed-storage.ts'
import type { Membership } from './cluster/membership.ts'
import type { Client } from './node/client.ts'
import type { LeaderTracker } from './node/leader-tracker.ts'
import type { RaftHost } from './node/raft-host.ts'
import type { Replica } from './node/replica.ts'

/** The parts the surfaces read. */
export interface IntrospectionParts {
  id: string
  host: RaftHost
  replica: Replica
  tracker: LeaderTracker
  client: Client
  membership: Membership
  rpc: Rpc
  transport: RaftTransport
  securityEnabled: () => boolean
  storage: () => RaftStorage | undefined
  clusterId: () => string | undefined
}

/** The dashboard's status surface (src/http/source.ts). */
export function dashboardInternals(parts: IntrospectionParts): AgentInternals {
  const { host, replica, membership } = parts
  return {
    raftStatus: () => host.current()?.status(),
    state: () => replica.state,
    onStateEvent: listener => replica.onEvent(event => listener(event)),
    onMemberEvent: listener => membership.onEvent(listener),
    get securityEnabled() {
      return parts.securityEnabled()
    },
    halted: () => host.halted,
  }
}

/** The dashboard's surface plus what only metrics read (src/metrics/internals.ts). */
export function metricsInternals(parts: IntrospectionParts): MetricsInternals {
  const { tracker, client, membership, rpc, transport } = parts
  const base = dashboardInternals(parts)
  return {
    raftStatus: base.raftStatus,
    state: base.state,
    onStateEvent: base.onStateEvent,
    onMemberEvent: base.onMemberEvent,
    get securityEnabled() {
      return parts.securityEnabled()
    },
    // As the election's `watch` does: the leader known now first, then every change.
    onLeaderChange: listener => {
      if (tracker.leader !== '') listener(tracker.leader, tracker.term)
      return tracker.onChange((leader, _previous, term) => listener(leader, term))
    },
    onProposal: listener => client.onProposal(listener),
    onStorage: observer => {
      const storage = parts.storage()
      return storage instanceof TimedStorage ? storage.observe(observer) : () => {}
    },
    rpcStats: () => rpc.stats(),
    raftTransportStats: () => transport.stats(),
    membershipStats: () => membership.stats(),
    localHealth: () => membership.localHealth(),
  }
}

/** What a snapshot of the cluster reads (src/backup/take-snapshot.ts). */
export function snapshotSource(parts: IntrospectionParts): SnapshotSource {
  const { host, replica, client } = parts
  return {
    id: parts.id,
    barrier: async signal => {
      host.require()
      await client.barrier(signal)
    },
    capture: () => {
      const runner = host.current()
      if (runner === undefined) return undefined
      const status = runner.status()
      return {
        data: replica.state.snapshot(),
        revision: replica.state.revision,
        index: runner.appliedIndex,
        term: status.term,
        config: { voters: [...status.config.voters], nonVoters: [...status.config.nonVoters] },
      }
    },
    clusterId: () => parts.clusterId(),
  }
}
