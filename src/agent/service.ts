import type { Logger, Startable } from '@libp2p/interface'
import type {
  Abortable,
  AgentInfo,
  ClusterConfig,
  ClusterHealth,
  ConclaveApi,
  ConsensusProtocol,
  DistributedLock,
  LeaderElection,
  TaskDistributor,
  WorkStealer,
} from '../api.ts'
import type { SnapshotSource } from '../backup/take-snapshot.ts'
import { ClosedError } from '../errors.ts'
import type { AgentInternals } from '../http/source.ts'
import type { MetricsInternals } from '../metrics/internals.ts'
import { gossipAdmissionOf } from '../net/gossip-admission.ts'
import { RaftTransport } from '../net/raft-transport.ts'
import { Rpc } from '../net/rpc.ts'
import { raftMessageAction } from '../security/actions.ts'
import { MemberGate } from '../security/member-gate.ts'
import { resolveSecurity, type SvidRotation } from '../security/options.ts'
import { guardReads } from '../security/read-guard.ts'
import { ConclaveSecurity } from '../security/security.ts'
import { openRaftStorage, type RaftStorage } from '../storage/index.ts'
import type { Scheduler } from '../time/index.ts'
import { apiParts } from './api/parts.ts'
import type { Tasks } from './api/tasks/tasks.ts'
import type { WorkStealing } from './api/work-stealing.ts'
import { ADMIN_PROTOCOL, adminClient } from './cluster/admin-protocol.ts'
import { Authorization } from './cluster/authorization.ts'
import { clusterParts } from './cluster/cluster.ts'
import { checkClusterVersion } from './cluster/cluster-version.ts'
import type { Directory } from './cluster/directory.ts'
import type { Housekeeping } from './cluster/housekeeping.ts'
import type { Joining } from './cluster/join.ts'
import type { KeepAliveClient } from './cluster/keep-alive.ts'
import { Membership } from './cluster/membership.ts'
import { NodeMeta } from './cluster/meta.ts'
import { membershipPubSub } from './cluster/swim-wire.ts'
import type { Voters } from './cluster/voters.ts'
import type { ConclaveComponents, ServiceInit } from './components.ts'
import { commandSetVersionOf, schedulerOf, shellBugsOf } from './internal-options.ts'
import {
  dashboardInternals,
  type IntrospectionParts,
  metricsInternals,
  snapshotSource,
} from './introspection.ts'
import { MemberTier } from './member.ts'
import { Client } from './node/client.ts'
import { replicaClientContext } from './node/client-context.ts'
import { LeaderTracker } from './node/leader-tracker.ts'
import { RaftHost } from './node/raft-host.ts'
import { Replica } from './node/replica.ts'
import { SessionKeeper } from './node/session.ts'
import { agentRaftOptions, type ResolvedTiming, resolveTiming } from './options.ts'
import { checkOptions } from './validate.ts'

export type { ConclaveComponents, ServiceInit }
export { ADMIN_PROTOCOL }

/**
 * The conclave libp2p service: Raft over direct streams, the replicated coordination state, and the API of
 * `API.md` on top. One instance per libp2p node. This is the composition root: it builds the parts (node
 * plumbing in `node/`, cluster duties in `cluster/`, the API in `api/`), hands each the ports it needs, and
 * starts and stops them; the API calls below delegate.
 */
export class ConclaveService implements ConclaveApi, Startable {
  readonly id: string
  readonly election: LeaderElection
  readonly locks: DistributedLock
  readonly consensus: ConsensusProtocol
  /** The SWIM view: liveness, lastSeen and load of every member. Runs while this agent is a member. */
  readonly membership: Membership
  private readonly taskDistributor: Tasks
  private readonly stealer: WorkStealing
  private readonly namedElection: (name: string) => LeaderElection
  private readonly init: ServiceInit
  private readonly timing: ResolvedTiming
  private readonly scheduler: Scheduler
  private readonly log: Logger
  private readonly transport: RaftTransport
  private readonly rpc: Rpc
  /** SPIFFE identities and the policy gate (open when `security` is off). */
  private readonly security: ConclaveSecurity
  /** Only members of the cluster's configuration reach Raft or propose through this agent. */
  private readonly memberGate: MemberGate
  private readonly authorization: Authorization
  private readonly replica: Replica
  private readonly tracker: LeaderTracker
  private readonly host: RaftHost
  private readonly session: SessionKeeper
  private readonly client: Client
  /** Replica or member: what this agent feeds members, or its own feed as one. */
  private readonly tier: MemberTier
  private readonly directory: Directory
  private readonly voters: Voters
  private readonly joining: Joining
  private readonly closedController = new AbortController()
  private storage?: RaftStorage
  private meta?: NodeMeta
  private readonly housekeeping: Housekeeping
  private readonly keepAlives: KeepAliveClient
  private readonly serveProtocols: (api: ConclaveApi) => Promise<void>
  private started = false

  constructor(components: ConclaveComponents, init: ServiceInit = {}) {
    this.init = init
    this.timing = resolveTiming(init)
    // The test-only symbol option (`withScheduler`) when no scheduler is given; the production one by default.
    const scheduler = init.scheduler ?? schedulerOf(init)
    this.scheduler = scheduler
    // Test-only switches (`withShellBugs`); none in production.
    const bugs = shellBugsOf(init)
    this.replica = new Replica({ commandSetVersion: commandSetVersionOf(init) }, bugs)
    const selfId = components.peerId.toString()
    this.id = selfId
    const logger = components.logger
    this.log = logger.forComponent('conclave')
    const closed = this.closedController.signal
    this.tracker = new LeaderTracker(scheduler)
    const { replica, tracker, timing } = this
    const security = new ConclaveSecurity(
      components,
      init.resolvedSecurity ?? resolveSecurity(init.security, scheduler.wallNow()),
      { scheduler },
    )
    this.security = security
    const memberGate = new MemberGate({
      scheduler,
      config: () => this.host.current()?.status().config,
      isLeader: () => this.isLeader(),
      vouch: (peer, signal) => this.joining.vouch(peer, signal),
      log: logger.forComponent('conclave:members'),
      onRefusal: (peer, reason) => security.refused({ peer, action: 'join', reason }),
    })
    this.memberGate = memberGate
    const authorization = new Authorization({
      selfId,
      security,
      memberGate,
      sessionOwner: sessionId => replica.state.session(sessionId)?.agentId,
      isParticipant: peer => this.tier.isParticipant(peer),
    })
    this.authorization = authorization
    // Gossip only to peers whose identity is proven and may join: nothing readable before that.
    if (security.enabled)
      gossipAdmissionOf(components)?.set(peer => security.gate.peek(peer, 'join')?.ok === true)
    this.transport = new RaftTransport(components, {
      onMessage: (message, from) => this.host.receive(message, from),
      messageRate: init.rateLimits?.raftMessages,
      scheduler,
    })
    this.rpc = new Rpc(components, {
      defaultTimeoutMs: timing.operationTimeoutMs,
      requestRate: init.rateLimits?.requests,
      scheduler,
    })
    const admin = adminClient(this.rpc, timing.operationTimeoutMs)
    this.host = new RaftHost({
      selfId,
      replica,
      tracker,
      timing,
      raftOptions: {
        electionTicks: timing.electionTicks,
        heartbeatTicks: timing.heartbeatTicks,
        ...agentRaftOptions(init.raft),
      },
      random: init.random ?? Math.random,
      log: logger.forComponent('conclave:raft'),
      // Nothing goes to a peer whose identity or policy is refused (known at once; others are checked on
      // their side).
      send: message => {
        if (security.gate.peek(message.to, 'join')?.ok === false) return
        this.transport.send(message.to, message)
      },
      onConfigChange: () => memberGate.refresh(),
      admit: (message, from) => security.gate.admit(from, raftMessageAction(message.type)),
      isMember: from => memberGate.admitRaft(from),
      closed,
      // Fail-stop: silent to the others too, who then see it dead and replace it as they would a crashed
      // agent (a restart with the version they run brings it back).
      onHalt: () => {
        this.housekeeping.stop()
        this.membership.stop().catch(err => this.log.error('membership did not stop: %e', err))
      },
      scheduler: this.scheduler,
      // Fail-stop: a node whose disk failed must not run on; the runner already refuses everything.
      onFailStop: () => void this.stop(),
      bugs,
    })
    const host = this.host
    this.tier = new MemberTier({
      selfId,
      replica,
      tracker,
      host,
      rpc: this.rpc,
      barrier: signal => this.client.barrier(signal),
      status: id => this.membership.status(id),
      storage: () => this.requireStorage(),
      onConfigChange: () => memberGate.refresh(),
      operationTimeoutMs: timing.operationTimeoutMs,
      scheduler,
      closed,
      log: logger.forComponent('conclave:member'),
    })
    const session = new SessionKeeper(
      selfId,
      timing,
      {
        submitRaw: (command, deadline) => this.client.submitRaw(command, deadline),
        keepAlive: (sessionId, deadline) => this.keepAlives.keepAlive(sessionId, deadline),
      },
      this.log,
      scheduler,
    )
    this.session = session
    this.client = new Client(
      replicaClientContext({
        selfId,
        tracker,
        host,
        replica,
        session,
        rpc: this.rpc,
        authorization,
        admitCommand: command => checkClusterVersion(command, replica.state.clusterVersion),
        operationTimeoutMs: timing.operationTimeoutMs,
        scheduler,
        closed,
        bugs,
        member: this.tier.mirror,
      }),
    )
    const client = this.client
    const api = apiParts({
      selfId,
      client,
      replica,
      session,
      tracker,
      host,
      timing,
      admin,
      components,
      clusterId: () => this.meta?.clusterId(),
      concurrency: init.concurrency ?? 10,
      logger,
      scheduler,
      closed,
    })
    // The `read` right, checked on this agent's own identity before each read of the KV store.
    this.consensus = guardReads(api.consensus, () => authorization.requireOwn('read', 'read the KV store'))
    this.locks = api.locks
    this.election = api.election
    this.taskDistributor = api.tasks
    this.stealer = api.stealer
    this.namedElection = api.namedElection
    this.membership = new Membership({
      components,
      pubsub: () => membershipPubSub(components),
      config: timing.membership,
      scheduler,
      loadIncarnation: () => this.meta?.incarnation(),
      saveIncarnation: incarnation => this.meta?.setIncarnation(incarnation),
      refresh: () => this.directory.localView(),
      admit: peer => security.gate.admit(peer, 'join'),
    })
    const cluster = clusterParts({
      selfId,
      name: this.name,
      options: init,
      timing,
      components,
      host,
      tracker,
      session,
      client,
      replica,
      membership: this.membership,
      tier: this.tier,
      security,
      memberGate,
      authorization: this.authorization,
      admin,
      storage: () => this.requireStorage(),
      meta: () => this.requireMeta(),
      resign: signal => this.election.resign({ signal }),
      runsTasks: () => api.tasks.slotOffer.runsTasks,
      rpc: this.rpc,
      scheduler: this.scheduler,
      closed,
      log: this.log,
    })
    this.directory = cluster.directory
    this.voters = cluster.voters
    this.joining = cluster.joining
    this.housekeeping = cluster.housekeeping
    this.keepAlives = cluster.keepAlives
    this.serveProtocols = cluster.serveProtocols
    session.afterOpen = async (sessionId, registered) => {
      api.tasks.slotOffer.registered(
        registered === undefined ? await this.directory.register(sessionId) : registered.runsTasks !== false,
      )
    }
    session.registration = open => this.directory.openAndRegister(open)
    replica.onEvent(event => {
      if ((event.type === 'sessionExpired' || event.type === 'sessionClosed') && event.agentId === selfId) {
        session.ended(event.sessionId)
      }
    })
  }

  readonly [Symbol.toStringTag] = 'conclave'

  get name(): string {
    return this.init.name ?? this.id.slice(-8)
  }

  get tasks(): TaskDistributor {
    return this.taskDistributor
  }

  get workStealing(): WorkStealer {
    return this.stealer
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const storage = this.init.storage ?? openRaftStorage(this.init.dataDir)
    this.storage = storage
    const meta = new NodeMeta(storage)
    this.meta = meta
    meta.claim(this.id)
    this.voters.resume(meta.pendingVoterTarget())
    // The identity protocol answers before any conclave protocol does: a peer's first request may wait on it.
    await this.security.start()
    await this.serveProtocols(this)
    await this.transport.start()
    await this.rpc.start()
    this.housekeeping.start()
    this.joining.resume()
  }

  async stop(): Promise<void> {
    if (this.closedController.signal.aborted) return
    this.closedController.abort()
    this.housekeeping.stop()
    await this.session.stop(false, 0)
    this.tier.stop()
    this.host.stop()
    await this.membership.stop()
    await this.rpc.stop()
    await this.transport.stop()
    this.memberGate.stop()
    await this.security.stop()
    this.storage?.close()
  }

  multiaddrs(): string[] {
    return this.directory.multiaddrs()
  }

  isLeader(): boolean {
    return this.tracker.leader === this.id
  }

  elections(name: string): LeaderElection {
    return this.namedElection(name)
  }

  async join(config: ClusterConfig, options?: Abortable): Promise<void> {
    this.checkOpen()
    checkOptions(config, ['bootstrap', 'voters', 'clusterId', 'standbys', 'maxFinishedTasks'])
    checkOptions(options, ['signal'])
    await this.joining.join(config, options?.signal)
  }

  async leave(options?: Abortable): Promise<void> {
    this.checkOpen()
    checkOptions(options, ['signal'])
    await this.joining.leave(options?.signal)
  }

  async members(options?: Abortable): Promise<AgentInfo[]> {
    this.checkOpen()
    checkOptions(options, ['signal'])
    return this.directory.members()
  }

  async leader(options?: Abortable): Promise<AgentInfo | undefined> {
    const leader = this.tracker.leader
    if (leader === '') return undefined
    return (await this.members(options)).find(member => member.id === leader)
  }

  async rotateSvid(rotation: SvidRotation): Promise<void> {
    this.checkOpen()
    await this.security.rotate(rotation)
  }

  async health(options?: Abortable): Promise<ClusterHealth> {
    this.checkOpen()
    checkOptions(options, ['signal'])
    return this.directory.health(this.tracker.leader)
  }

  /** The dashboard's status surface (src/http/source.ts). */
  dashboardInternals(): AgentInternals {
    return dashboardInternals(this.introspected())
  }

  /** The metrics' surface (src/metrics/internals.ts). */
  metricsInternals(): MetricsInternals {
    return metricsInternals(this.introspected())
  }

  /** What a snapshot of the cluster reads (src/backup/take-snapshot.ts). */
  snapshotSource(): SnapshotSource {
    return snapshotSource(this.introspected())
  }

  // ---------- internals ----------

  private introspected(): IntrospectionParts {
    const { id, host, replica, tracker, client, membership, rpc, transport, security } = this
    return {
      ...{ id, host, replica, tracker, client, membership, rpc, transport },
      securityEnabled: () => security.enabled,
      storage: () => this.storage,
      clusterId: () => this.meta?.clusterId(),
    }
  }

  private requireStorage(): RaftStorage {
    if (this.storage === undefined) throw new ClosedError('The agent is not started')
    return this.storage
  }

  private requireMeta(): NodeMeta {
    if (this.meta === undefined) throw new ClosedError('The agent is not started')
    return this.meta
  }

  private checkOpen(): void {
    if (this.closedController.signal.aborted) throw new ClosedError()
  }
}
