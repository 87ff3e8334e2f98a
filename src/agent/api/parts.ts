import type { ComponentLogger } from '@libp2p/interface'
import type { Scheduler } from '../../time/index.ts'
import type { AdminCall } from '../cluster/admin-protocol.ts'
import type { Client } from '../node/client.ts'
import type { LeaderTracker } from '../node/leader-tracker.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { Replica } from '../node/replica.ts'
import type { SessionKeeper } from '../node/session.ts'
import type { ResolvedTiming } from '../options.ts'
import { Consensus } from './consensus.ts'
import { NamedElection, RaftElection } from './elections.ts'
import { Locks } from './locks.ts'
import { Tasks } from './tasks/tasks.ts'
import { pubsubOf, WorkStealing } from './work-stealing.ts'

/** The ports the API facades are built on. */
export interface ApiPorts {
  selfId: string
  client: Client
  replica: Replica
  session: SessionKeeper
  tracker: LeaderTracker
  host: RaftHost
  timing: ResolvedTiming
  admin: AdminCall
  /** The libp2p components, where work stealing looks up the pubsub service when first needed. */
  components: object
  clusterId: () => string | undefined
  /** The task slots this agent registers. */
  concurrency: number
  logger: ComponentLogger
  scheduler: Scheduler
  closed: AbortSignal
}

/** The API facades of an agent that holds the log: consensus, locks, the election, tasks, work stealing. */
export function apiParts(ports: ApiPorts) {
  const { selfId, client, replica, session, tracker, host, timing, admin, scheduler, closed } = ports
  const tasks = new Tasks({
    selfId,
    client,
    replica,
    session,
    closed,
    concurrency: ports.concurrency,
    log: ports.logger.forComponent('conclave:tasks'),
    scheduler,
    leaseSafetyMarginMs: timing.leaseSafetyMarginMs,
  })
  return {
    consensus: new Consensus(client, replica, closed),
    locks: new Locks({ client, replica, session, timing, closed, scheduler }),
    election: new RaftElection({
      selfId,
      runner: () => host.current(),
      tracker,
      barrier: signal => client.barrier(signal),
      requestTransfer: (leader, signal) =>
        admin(leader, { op: 'transfer', to: selfId }, signal).then(() => {}),
      closed,
      scheduler,
    }),
    tasks,
    /** A named election of the replicated state (`elections(name)`). */
    namedElection: (name: string) =>
      new NamedElection(name, { selfId, client, replica, session, closed, scheduler }),
    stealer: new WorkStealing({
      selfId,
      client,
      replica,
      session,
      tasks,
      closed,
      // Looked up when first needed: the pubsub service may be created after this one.
      pubsub: () => pubsubOf(ports.components),
      clusterId: ports.clusterId,
      log: ports.logger.forComponent('conclave:work-stealing'),
      scheduler,
    }),
  }
}
