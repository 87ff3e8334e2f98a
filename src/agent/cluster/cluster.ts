import type { Logger } from '@libp2p/interface'
import type { ConclaveApi } from '../../api.ts'
import type { Rpc } from '../../net/rpc.ts'
import { SelfAddresses } from '../../net/self-addresses.ts'
import type { MemberGate } from '../../security/member-gate.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import type { RaftStorage } from '../../storage/index.ts'
import type { Scheduler } from '../../time/index.ts'
import { CLIENT_PROTOCOL, clientProtocolHandler } from '../api/client-protocol.ts'
import type { ConclaveComponents, ServiceInit } from '../components.ts'
import type { MemberTier } from '../member.ts'
import type { Client } from '../node/client.ts'
import type { LeaderTracker } from '../node/leader-tracker.ts'
import { FORWARD_PROTOCOL } from '../node/proposer.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { Replica } from '../node/replica.ts'
import type { SessionKeeper } from '../node/session.ts'
import type { ResolvedTiming } from '../options.ts'
import { ADMIN_PROTOCOL, type AdminCall, keepAliveCall } from './admin-protocol.ts'
import { AdminServer } from './admin-server.ts'
import type { Authorization } from './authorization.ts'
import { ClusterVersionKeeper, checkClusterVersion } from './cluster-version.ts'
import { Directory } from './directory.ts'
import { forwardHandler } from './forwarding.ts'
import { Housekeeping } from './housekeeping.ts'
import { Joining } from './join.ts'
import { KeepAliveClient, KeepAliveServer, learnLeader } from './keep-alive.ts'
import { LeaderDuties } from './leader-duties.ts'
import { Lessor } from './lessor.ts'
import type { Membership } from './membership.ts'
import type { NodeMeta } from './meta.ts'
import { RightRates } from './right-rates.ts'
import { Voters } from './voters.ts'

/** The node parts and options the cluster duties are built on. */
export interface ClusterPartsInit {
  selfId: string
  name: string
  options: ServiceInit
  timing: ResolvedTiming
  components: ConclaveComponents
  host: RaftHost
  tracker: LeaderTracker
  session: SessionKeeper
  client: Client
  replica: Replica
  membership: Membership
  /** The two kinds of agent: what a replica feeds members, and a member's feed. */
  tier: MemberTier
  security: ConclaveSecurity
  memberGate: MemberGate
  authorization: Authorization
  admin: AdminCall
  storage(): RaftStorage
  meta(): NodeMeta
  resign(signal?: AbortSignal): Promise<void>
  /** Whether a task worker of this agent runs now (see `SlotOffer`). */
  runsTasks?(): boolean
  /** The request/response protocols the agent serves on. */
  rpc: Rpc
  scheduler: Scheduler
  closed: AbortSignal
  log: Logger
}

/** The cluster duties of an agent that holds the log, wired to each other through their ports. */
export interface ClusterParts {
  directory: Directory
  voters: Voters
  adminServer: AdminServer
  joining: Joining
  housekeeping: Housekeeping
  /** The session keeper's keep-alives, to the leader's lessor (off the log). */
  keepAlives: KeepAliveClient
  /** Registers the forwarding, admin and client protocols (the last serving `api`). */
  serveProtocols(api: ConclaveApi): Promise<void>
}

/** Builds the cluster duties (the composition root's share for `cluster/`). */
export function clusterParts(init: ClusterPartsInit): ClusterParts {
  const { selfId, options, timing, components, host, tracker, session, client, replica, membership } = init
  const { security, memberGate, authorization, admin, closed, log } = init
  const logger = components.logger
  // The membership's refresh asks for them every probe period: worked out again only when they change.
  const selfAddresses = new SelfAddresses({
    source: () => components.addressManager.getAddresses(),
    ...(components.events === undefined ? {} : { events: components.events }),
    clock: () => init.scheduler.now(),
  })
  closed.addEventListener('abort', () => selfAddresses.close(), { once: true })
  const directory = new Directory({
    selfId,
    name: init.name,
    capabilities: options.capabilities ?? [],
    labels: options.labels ?? {},
    concurrency: options.concurrency ?? 10,
    ...(init.runsTasks === undefined ? {} : { runsTasks: init.runsTasks }),
    addresses: () => selfAddresses.get(),
    peerStore: components.peerStore,
    replica,
    runner: host,
    membership,
    security,
    commit: client,
    logger,
    listDeadForMs: timing.voterReplaceAfterMs,
    config: () => init.tier.config(),
  })
  const voters = new Voters({
    selfId,
    runner: host,
    leader: tracker,
    commit: client,
    liveness: membership,
    gate: security.gate,
    meta: () => init.meta(),
    replicatedTarget: () => replica.state.voterTarget,
    memberStatus: id => directory.memberStatus(id),
    onConfigChange: () => memberGate.refresh(),
    voterReplaceAfterMs: timing.voterReplaceAfterMs,
    standbys: () => init.tier.standbys,
    // Registered agents (members register once their session opens), alive ones only.
    candidates: () =>
      replica.state
        .agents()
        .filter(agent => agent.alive)
        .map(agent => agent.agentId),
    scheduler: init.scheduler,
    log,
  })
  const lessor = new Lessor()
  const keepAliveServer = new KeepAliveServer({
    selfId,
    lessor,
    leader: tracker,
    host,
    session: sessionId => replica.state.session(sessionId),
    scheduler: init.scheduler,
    timeoutMs: timing.sessionTtlMs / 4,
    batchMs: timing.tickMs * timing.heartbeatTicks,
    closed,
  })
  const keepAlives = new KeepAliveClient({
    selfId,
    leader: tracker,
    call: keepAliveCall(admin, init.scheduler),
    local: keepAliveServer,
    replicas: () => {
      const config = init.tier.config()
      return config === undefined ? [] : [...config.voters, ...config.nonVoters]
    },
    // A replica's runner knows who leads; an agent that holds no log learns it from the replicas' answers.
    learn: (leaderId, term) => {
      if (init.tier.isMember) learnLeader(tracker, leaderId, term)
    },
    legacy: async (sessionId, deadline) => {
      const result = await client.submitRaw({ type: 'keepAlive', sessionId }, deadline)
      return result.type === 'session'
        ? { status: 'renewed', ttlMs: timing.sessionTtlMs }
        : { status: 'expired' }
    },
    scheduler: init.scheduler,
    closed,
  })
  const clusterVersion = new ClusterVersionKeeper({
    selfId,
    replica,
    runner: host,
    admin,
    commit: client,
    scheduler: init.scheduler,
    closed,
    log,
  })
  const adminServer = new AdminServer({
    selfId,
    runner: host,
    leader: tracker,
    clusterId: () => init.meta().clusterId(),
    memberGate,
    gate: security.gate,
    authorization,
    voters: voters,
    peerStore: components.peerStore,
    admin,
    keepAlives: keepAliveServer,
    commandSetVersion: replica.state.commandSetVersion,
    replicaLimit: () => oddBelow(replica.state.voterTarget) + init.tier.standbys,
    admitMember: agentId => init.tier.admitMember(agentId),
  })
  const joining = new Joining({
    selfId,
    timing,
    components,
    storage: () => init.storage(),
    meta: () => init.meta(),
    host,
    tracker,
    session,
    commit: client,
    voters: voters,
    clusterVersion,
    admin,
    adminServer: adminServer,
    authorization,
    membership,
    directory: directory,
    security,
    resign: signal => init.resign(signal),
    tier: init.tier,
    closed,
    scheduler: init.scheduler,
    random: options.random ?? Math.random,
    log,
  })
  const housekeeping = new Housekeeping({
    selfId,
    host,
    replica,
    liveness: membership,
    duties: new LeaderDuties(client, log),
    lessor,
    voters: voters,
    clusterVersion,
    joining: joining,
    scheduler: init.scheduler,
    intervalMs: Math.max(timing.tickMs, 50),
    // An assignment nobody starts is taken back after as long as a silent agent's session lasts.
    stalledAssignmentMs: timing.sessionTtlMs,
  })
  const serveProtocols = async (api: ConclaveApi): Promise<void> => {
    const { rpc, scheduler } = init
    const rightRates = new RightRates(scheduler, options.rateLimits?.rights)
    const forward = forwardHandler({
      selfId,
      leader: tracker,
      host,
      authorization,
      security,
      scheduler,
      rightRates,
      lessor,
      leaderSince: () => host.leaderSince,
      admitCommand: command => checkClusterVersion(command, replica.state.clusterVersion),
    })
    await rpc.registerRpc(FORWARD_PROTOCOL, forward)
    await rpc.registerRpc(ADMIN_PROTOCOL, (request, from) => adminServer.serve(request, from))
    await rpc.registerRpc(
      CLIENT_PROTOCOL,
      clientProtocolHandler({
        api,
        currentRevision: () => replica.state.revision,
        currentTaskRevision: () => replica.state.taskRevision,
        closed,
        log: (message, err) => log('client protocol: %s: %e', message, err),
        authorize: (from, op) => authorization.authorizeClient(from, op),
        scheduler,
        feed: init.tier.feed,
        supportedVersion: replica.state.commandSetVersion,
      }),
    )
  }
  return { directory, voters, adminServer, joining, housekeeping, keepAlives, serveProtocols }
}

/** The voter count kept for a target: an even one is kept one below. */
function oddBelow(target: number): number {
  return target % 2 === 0 ? target - 1 : target
}
