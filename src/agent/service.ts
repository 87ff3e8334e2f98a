import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { ComponentLogger, Logger, PeerId, PeerStore, Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type {
  Abortable,
  AgentInfo,
  ClusterConfig,
  ClusterHealth,
  ConclaveApi,
  DistributedLock,
  LeaderElection,
  TaskDistributor,
  WorkStealer,
} from '../api.ts'
import { AbortError, ClosedError, InvalidArgumentError, NoLeaderError, UnauthorizedError } from '../errors.ts'
import type { NetConnectionManager, NetRegistrar } from '../net/components.ts'
import { RaftTransport } from '../net/raft-transport.ts'
import { Rpc } from '../net/rpc.ts'
import { NotLeaderError } from '../raft/errors.ts'
import type { Config, Message, PersistedState } from '../raft/types.ts'
import { commandAction, raftMessageAction } from '../security/actions.ts'
import type { IdentityEvents } from '../security/identity-protocol.ts'
import { MemberGate } from '../security/member-gate.ts'
import { type ResolvedSecurity, resolveSecurity, type SvidRotation } from '../security/options.ts'
import type { Action } from '../security/policy.ts'
import { ConclaveSecurity } from '../security/security.ts'
import type {
  ApplyOutput,
  Command,
  CommandResult,
  DueExpiries,
  Envelope,
  ExpireTaskCommand,
  RetryDueCommand,
  TimeoutTaskCommand,
} from '../state/index.ts'
import { openRaftStorage, type RaftStorage } from '../storage/index.ts'
import type { LocalFields, MemberStatus } from '../swim/types.ts'
import { Client, type ClientContext } from './client.ts'
import { CLIENT_PROTOCOL, clientOpAction, clientProtocolHandler } from './client-protocol.ts'
import { Consensus } from './consensus.ts'
import { NamedElection, RaftElection } from './elections.ts'
import { LeaderTracker } from './leader-tracker.ts'
import { Locks } from './locks.ts'
import { Membership, membershipPubSub } from './membership.ts'
import { type ResolvedTiming, resolveTiming, type ServiceOptions } from './options.ts'
import { FORWARD_PROTOCOL, serveForward } from './proposer.ts'
import { RaftRunner } from './raft-runner.ts'
import { Replica } from './replica.ts'
import { RightRates } from './right-rates.ts'
import { SessionKeeper } from './session.ts'
import { Tasks } from './tasks.ts'
import { checkOptions } from './validate.ts'
import { planVoterChange } from './voter-replacement.ts'
import { pubsubOf, WorkStealing, workTopic } from './work-stealing.ts'

/** Cluster administration between agents: joining, leaving, leadership transfer. */
export const ADMIN_PROTOCOL = '/conclave/admin/1.0.0'

const META_PEER_ID = 'peer-id'
const META_CLUSTER_ID = 'cluster-id'
const META_LEFT = 'left'
const META_INCARNATION = 'swim-incarnation'
/**
 * The founder's `voters`, until its `setVoterTarget` is committed (then empty): a founder that stops before
 * committing it commits it when it leads again, rather than leave the cluster at the default target.
 */
const META_VOTER_TARGET = 'voter-target'

type AdminRequest =
  | { op: 'join'; agentId: string; addrs: string[]; clusterId?: string }
  | { op: 'remove'; agentId: string }
  | { op: 'transfer'; to: string }
  /** Whether `agentId` is in the answering member's configuration (asked by a member whose log lags). */
  | { op: 'member'; agentId: string }

interface AdminResponse {
  clusterId: string
  member?: boolean
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** What the service needs from libp2p; libp2p's own `components` fit as they are. */
export interface ConclaveComponents {
  peerId: PeerId
  registrar: NetRegistrar
  connectionManager: NetConnectionManager & {
    openConnection(peer: Multiaddr | PeerId): Promise<unknown>
    /** Needed by SPIFFE identities to close the connections of refused peers. */
    closeConnections?(peer: PeerId): Promise<void>
  }
  peerStore: Pick<PeerStore, 'merge'>
  addressManager: { getAddresses(): Multiaddr[] }
  logger: ComponentLogger
  /** libp2p's event bus: SPIFFE identities authenticate peers as connections open and forget them as they close. */
  events?: IdentityEvents
}

/** Internal: createAgent opens the storage first (it holds the peer key) and hands it over. */
export interface ServiceInit extends ServiceOptions {
  storage?: RaftStorage
  random?: () => number
  /** `security`, loaded and checked by the factory (so that a bad file fails at once). */
  resolvedSecurity?: ResolvedSecurity
}

/**
 * The conclave libp2p service: Raft over direct streams, the replicated coordination state, and the API of
 * `API.md` on top. One instance per libp2p node.
 */
export class ConclaveService implements ConclaveApi, Startable {
  readonly id: string
  readonly election: LeaderElection
  readonly locks: DistributedLock
  readonly consensus: Consensus
  private readonly taskDistributor: Tasks
  private readonly stealer: WorkStealing
  private readonly components: ConclaveComponents
  private readonly init: ServiceInit
  private readonly timing: ResolvedTiming
  private readonly log: Logger
  private readonly transport: RaftTransport
  private readonly rpc: Rpc
  /** SPIFFE identities and the policy gate (open when `security` is off). */
  private readonly security: ConclaveSecurity
  /** Only members of the cluster's configuration reach Raft or propose through this agent. */
  private readonly memberGate: MemberGate
  /** What each member may forward per second, per right (lock operations). */
  private readonly rightRates: RightRates
  private readonly replica = new Replica()
  private readonly tracker = new LeaderTracker()
  private readonly session: SessionKeeper
  private readonly client: Client
  /** The SWIM view: liveness, lastSeen and load of every member. Runs while this agent is a member. */
  readonly membership: Membership
  private readonly closedController = new AbortController()
  private storage?: RaftStorage
  private runner?: RaftRunner
  private housekeeping?: NodeJS.Timeout
  /** When this agent last heard from a leader (or led), monotonic ms: see `rejoinIfRemoved`. */
  private leaderContact = 0
  private lastRejoin = 0
  private rejoining = false
  /** The founder's `voters` while its `setVoterTarget` is not known committed (see META_VOTER_TARGET). */
  private pendingVoterTarget?: number
  private settingVoterTarget?: Promise<void>
  private leaderSince?: { local: number; stateTime: number }
  private readonly expiring = new Set<string>()
  private promoting = false
  /** Peers whose `vote` permission is being checked (promotion waits for the answer). */
  private readonly checkingVote = new Set<string>()
  private started = false
  private stopped = false
  private ready?: Promise<void>

  constructor(components: ConclaveComponents, init: ServiceInit = {}) {
    this.components = components
    this.init = init
    this.timing = resolveTiming(init)
    this.id = components.peerId.toString()
    this.log = components.logger.forComponent('conclave')
    this.security = new ConclaveSecurity(components, init.resolvedSecurity ?? resolveSecurity(init.security))
    this.memberGate = new MemberGate({
      config: () => this.runner?.status().config,
      isLeader: () => this.isLeader(),
      vouch: (peer, signal) => this.vouch(peer, signal),
      log: components.logger.forComponent('conclave:members'),
      onRefusal: (peer, reason) => this.security.refused({ peer, action: 'join', reason }),
    })
    this.transport = new RaftTransport(components, {
      onMessage: (message, from) => this.admitRaftMessage(message, from),
      messageRate: init.rateLimits?.raftMessages,
    })
    this.rpc = new Rpc(components, {
      defaultTimeoutMs: this.timing.operationTimeoutMs,
      requestRate: init.rateLimits?.requests,
    })
    const context: ClientContext = {
      selfId: this.id,
      leader: () => this.tracker.leader,
      proposeLocal: data => this.proposeLocal(data),
      forward: (leader, request, timeoutMs, signal) =>
        this.rpc.callRpc(leader, FORWARD_PROTOCOL, request, { timeoutMs, signal }),
      appliedHere: (sessionId, seq) => this.replica.waitForResult(sessionId, seq),
      leaderChange: (ms, signal) => this.tracker.waitChange(ms, signal),
      now: () => Date.now(),
      get closed() {
        return closed.aborted
      },
      get runner() {
        return self.requireRunner()
      },
      get session() {
        return self.session
      },
      operationTimeoutMs: this.timing.operationTimeoutMs,
      authorize: command => this.authorizeOwn(command),
    }
    const self = this
    const closed = this.closedController.signal
    this.client = new Client(context)
    this.session = new SessionKeeper(
      this.id,
      this.timing,
      { submitRaw: (command, deadline) => this.client.submitRaw(command, deadline) },
      this.log,
    )
    this.consensus = new Consensus(this.client, this.replica, closed)
    this.locks = new Locks({
      client: this.client,
      replica: this.replica,
      session: this.session,
      timing: this.timing,
      closed,
    })
    this.election = new RaftElection({
      selfId: this.id,
      runner: () => this.runner,
      tracker: this.tracker,
      barrier: signal => this.client.barrier(signal),
      requestTransfer: (leader, signal) =>
        this.admin(leader, { op: 'transfer', to: this.id }, signal).then(() => {}),
      closed,
    })
    this.taskDistributor = new Tasks({
      selfId: this.id,
      client: this.client,
      replica: this.replica,
      session: this.session,
      closed,
      concurrency: init.concurrency ?? 10,
      log: components.logger.forComponent('conclave:tasks'),
    })
    this.stealer = new WorkStealing({
      selfId: this.id,
      client: this.client,
      replica: this.replica,
      session: this.session,
      tasks: this.taskDistributor,
      closed,
      // Looked up when first needed: the pubsub service may be created after this one.
      pubsub: () => pubsubOf(components),
      clusterId: () => this.clusterId(),
      log: components.logger.forComponent('conclave:work-stealing'),
    })
    this.rightRates = new RightRates(init.rateLimits?.rights)
    this.membership = new Membership({
      components,
      pubsub: () => membershipPubSub(components),
      config: this.timing.membership,
      loadIncarnation: () => {
        const stored = this.storage?.getMeta(META_INCARNATION)
        return stored === undefined ? undefined : Number(decoder.decode(stored))
      },
      saveIncarnation: incarnation =>
        this.storage?.setMeta(META_INCARNATION, encoder.encode(String(incarnation))),
      refresh: () => this.membershipRefresh(),
      admit: peer => this.security.gate.admit(peer, 'join'),
    })
    this.session.afterOpen = sessionId => this.register(sessionId)
    this.replica.onEvent(event => {
      if ((event.type === 'sessionExpired' || event.type === 'sessionClosed') && event.agentId === this.id) {
        this.session.ended(event.sessionId)
      } else if (event.type === 'agentChanged' && event.change !== 'left') {
        this.learnAddresses(event.agentId)
      }
    })
    this.replica.onRestore(() => {
      for (const agent of this.replica.state.agents()) this.learnAddresses(agent.agentId)
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
    const storedPeer = storage.getMeta(META_PEER_ID)
    if (storedPeer !== undefined && decoder.decode(storedPeer) !== this.id) {
      throw new InvalidArgumentError(`dataDir belongs to peer ${decoder.decode(storedPeer)}, not ${this.id}`)
    }
    if (storedPeer === undefined) storage.setMeta(META_PEER_ID, encoder.encode(this.id))
    const pendingTarget = storage.getMeta(META_VOTER_TARGET)
    if (pendingTarget !== undefined && pendingTarget.length > 0) {
      const voters = Number(decoder.decode(pendingTarget))
      if (Number.isInteger(voters)) this.pendingVoterTarget = voters
    }
    // The identity protocol answers before any conclave protocol does: a peer's first request may wait on it.
    await this.security.start()
    await this.rpc.registerRpc(FORWARD_PROTOCOL, (request, from) => this.serveForwardRequest(request, from))
    await this.rpc.registerRpc(ADMIN_PROTOCOL, (request, from) => this.serveAdmin(request, from))
    await this.rpc.registerRpc(
      CLIENT_PROTOCOL,
      clientProtocolHandler({
        api: this,
        currentRevision: () => this.replica.state.revision,
        closed: this.closedController.signal,
        log: (message, err) => this.log('client protocol: %s: %e', message, err),
        authorize: (from, op) => this.authorizeClient(from, op),
      }),
    )
    await this.transport.start()
    await this.rpc.start()
    const left = storage.getMeta(META_LEFT)?.[0] === 1
    if (!left && hasState(storage.load())) {
      // A restart of a member: Raft resumes at once; the session and registration follow in the background.
      this.startRunner()
      this.startMembership([])
      this.ready = this.becomeReady(performance.now() + 60_000)
      this.ready.catch(err => this.log.error('could not resume the session after a restart: %e', err))
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.closedController.abort()
    clearInterval(this.housekeeping)
    await this.session.stop(false, 0)
    this.runner?.stop()
    await this.membership.stop()
    await this.rpc.stop()
    await this.transport.stop()
    this.memberGate.stop()
    await this.security.stop()
    this.storage?.close()
  }

  multiaddrs(): string[] {
    return this.components.addressManager.getAddresses().map(address => {
      const text = address.toString()
      return text.includes('/p2p/') ? text : `${text}/p2p/${this.id}`
    })
  }

  isLeader(): boolean {
    return this.tracker.leader === this.id
  }

  elections(name: string): LeaderElection {
    return new NamedElection(name, {
      selfId: this.id,
      client: this.client,
      replica: this.replica,
      session: this.session,
      closed: this.closedController.signal,
    })
  }

  async join(config: ClusterConfig, options?: Abortable): Promise<void> {
    this.checkOpen()
    checkOptions(config, ['bootstrap', 'voters', 'clusterId'])
    checkOptions(options, ['signal'])
    const bootstrap = config.bootstrap ?? []
    if (!Array.isArray(bootstrap) || bootstrap.some(address => typeof address !== 'string')) {
      throw new InvalidArgumentError('bootstrap must be an array of multiaddr strings')
    }
    const voters = config.voters ?? 3
    if (!Number.isInteger(voters) || voters < 1 || voters > 7 || voters % 2 === 0) {
      throw new InvalidArgumentError('voters must be an odd integer from 1 to 7')
    }
    if (config.clusterId !== undefined && (typeof config.clusterId !== 'string' || config.clusterId === '')) {
      throw new InvalidArgumentError('clusterId must be a non-empty string')
    }
    const peers = bootstrap.map(address => parseBootstrap(address))
    // Founding makes this agent the first voter; joining makes it a member.
    this.requireOwn(this.runner === undefined && peers.length === 0 ? 'vote' : 'join', 'join a cluster')
    const signal = options?.signal
    const deadline = performance.now() + this.timing.operationTimeoutMs
    const storage = this.requireStorage()
    for (const { peerId, address } of peers) {
      await this.components.peerStore.merge(peerId, { multiaddrs: [address] })
    }
    if (this.runner === undefined) {
      if (peers.length === 0) {
        this.found(config.clusterId ?? crypto.randomUUID(), voters)
      } else {
        storage.setMeta(META_LEFT, new Uint8Array([0]))
        this.startRunner()
        await this.askToJoin(peers, config.clusterId, signal)
      }
      this.startMembership(peers.map(({ peerId }) => peerId.toString()))
      this.ready = this.becomeReady(deadline, signal)
      // The founder's voter target goes into the replicated state before join returns; later leaders and
      // restarts read it from there. A joiner's `voters` is not used.
      if (peers.length === 0) this.ready = this.ready.then(() => this.commitVoterTarget(deadline, signal))
    } else {
      const clusterId = this.clusterId()
      if (config.clusterId !== undefined && clusterId !== undefined && clusterId !== config.clusterId) {
        throw new InvalidArgumentError(`this agent belongs to cluster ${clusterId}, not ${config.clusterId}`)
      }
      for (const { address } of peers) {
        this.components.connectionManager.openConnection(address).catch(() => {})
      }
      this.membership.seed(
        peers.map(({ peerId }) => peerId.toString()),
        true,
      )
    }
    await this.ready
  }

  async leave(options?: Abortable): Promise<void> {
    this.checkOpen()
    checkOptions(options, ['signal'])
    const runner = this.runner
    if (runner === undefined) return
    const signal = options?.signal
    if (this.isLeader()) await this.election.resign({ signal })
    await this.session
      .stop(true, this.client.deadline())
      .catch(err => this.log('could not close session: %e', err))
    const deadline = this.client.deadline()
    for (;;) {
      if (performance.now() > deadline) throw new NoLeaderError('No leader removed this agent in time')
      const leader = this.tracker.leader
      try {
        if (leader === this.id)
          await this.serveAdmin(encodeAdmin({ op: 'remove', agentId: this.id }), this.id)
        else if (leader !== '') await this.admin(leader, { op: 'remove', agentId: this.id }, signal)
        if (leader !== '') break
      } catch (err) {
        if (err instanceof AbortError) throw err
        this.log('leave: removal not done yet: %e', err)
      }
      await this.tracker.waitChange(200, signal)
    }
    await this.membership.leave()
    this.requireStorage().setMeta(META_LEFT, new Uint8Array([1]))
    clearInterval(this.housekeeping)
    runner.stop()
    this.runner = undefined
    this.tracker.update('', 0)
  }

  async members(options?: Abortable): Promise<AgentInfo[]> {
    this.checkOpen()
    checkOptions(options, ['signal'])
    const config = this.runner?.status().config ?? { voters: [], nonVoters: [] }
    const state = this.replica.state
    const registered = new Map(state.agents().map(agent => [agent.agentId, agent]))
    const ids = new Set([...config.voters, ...config.nonVoters])
    return [...ids].map(id => {
      const agent = registered.get(id)
      const session = agent === undefined ? undefined : state.session(agent.sessionId)
      const load = state.agentLoad(id)
      // Liveness, lastSeen and load come from the membership view; the registry stands in where it is silent.
      const view = this.membership.member(id)
      const seen = id === this.id ? this.membership.now() : view?.lastSeen
      // The registry holds IDs the leader verified; this agent's own, and those of peers it met, fill in.
      const spiffeId =
        agent?.spiffeId ?? (id === this.id ? this.security.spiffeId : this.security.gate.spiffeIdOf(id))
      return {
        id,
        name: agent?.name ?? view?.name ?? id.slice(-8),
        addrs: agent?.addrs ?? view?.addrs ?? [],
        capabilities: agent?.capabilities ?? view?.capabilities ?? [],
        labels: agent?.labels ?? view?.labels ?? {},
        role: config.voters.includes(id) ? 'voter' : 'nonvoter',
        status: this.memberStatus(id) ?? 'dead',
        load:
          view !== undefined && id !== this.id
            ? view.load
            : load === undefined || load.slots === 0
              ? 0
              : Math.min(1, load.running / load.slots),
        lastSeen: new Date(
          view !== undefined && seen !== undefined
            ? seen
            : session === undefined
              ? (agent?.updatedAt ?? 0)
              : session.expiresAt - session.ttlMs,
        ),
        ...(spiffeId === undefined ? {} : { spiffeId }),
      }
    })
  }

  /** A member's status in the membership view, else alive or dead by the registry; undefined if unknown. */
  private memberStatus(id: string): MemberStatus | undefined {
    const status = this.membership.status(id)
    if (status !== undefined) return status
    const agent = this.replica.state.agent(id)
    return agent === undefined ? undefined : agent.alive ? 'alive' : 'dead'
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
    const members = await this.members(options)
    const config = this.runner?.status().config ?? { voters: [], nonVoters: [] }
    const alive = new Set(members.filter(member => member.status === 'alive').map(member => member.id))
    const aliveVoters = config.voters.filter(voter => alive.has(voter)).length
    const leader = this.tracker.leader
    return {
      healthy: leader !== '' && aliveVoters > config.voters.length / 2,
      memberCount: members.length,
      healthyCount: alive.size,
      leader,
      members: members.map(member => ({
        id: member.id,
        healthy: member.status === 'alive',
        lastSeen: member.lastSeen,
        load: member.load,
      })),
    }
  }

  // ---------- internals ----------

  /** Put this agent in the replicated registry (addresses, name, capabilities, slots) under `sessionId`. */
  private async register(sessionId: string): Promise<void> {
    const result = await this.client.submitRaw(
      {
        type: 'registerAgent',
        agentId: this.id,
        name: this.name,
        sessionId,
        addrs: this.multiaddrs(),
        capabilities: [...(this.init.capabilities ?? [])],
        labels: { ...(this.init.labels ?? {}) },
        concurrency: this.init.concurrency ?? 10,
        ...(this.security.spiffeId === undefined ? {} : { spiffeId: this.security.spiffeId }),
      },
      this.client.deadline(),
    )
    if (result.type === 'error') throw new InvalidArgumentError(`could not register: ${result.message}`)
  }

  /** Raft and RPC dial peers by id: the registry is the address book that survives restarts. */
  private learnAddresses(agentId: string): void {
    if (agentId === this.id) return
    const agent = this.replica.state.agent(agentId)
    if (agent === undefined || agent.addrs.length === 0) return
    let multiaddrs: Multiaddr[]
    try {
      multiaddrs = agent.addrs.map(address => multiaddr(address))
    } catch {
      return
    }
    this.components.peerStore
      .merge(peerIdOf(agentId), { multiaddrs })
      .catch(err => this.log('could not store addresses of %s: %e', agentId, err))
  }

  private found(clusterId: string, voters: number): void {
    const storage = this.requireStorage()
    storage.setMeta(META_LEFT, new Uint8Array([0]))
    storage.setMeta(META_VOTER_TARGET, encoder.encode(String(voters)))
    this.pendingVoterTarget = voters
    const config: Config = { voters: [this.id], nonVoters: [] }
    storage.write({
      hardState: { term: 0, vote: '', commit: 0 },
      entries: [],
      snapshot: { meta: { index: 0, term: 0, config }, data: new Uint8Array() },
    })
    storage.setMeta(META_CLUSTER_ID, encoder.encode(clusterId))
    this.startRunner()
    this.requireRunner().campaign()
  }

  private clusterId(): string | undefined {
    const stored = this.storage?.getMeta(META_CLUSTER_ID)
    return stored === undefined ? undefined : decoder.decode(stored)
  }

  /** Ask the bootstrap members, in turn, to have the leader add this agent as a non-voter. */
  private async askToJoin(
    peers: { peerId: PeerId }[],
    clusterId: string | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const request: AdminRequest = { op: 'join', agentId: this.id, addrs: this.multiaddrs(), clusterId }
    const deadline = performance.now() + this.timing.operationTimeoutMs
    let lastError: unknown
    while (performance.now() < deadline) {
      let refusals = 0
      for (const { peerId } of peers) {
        try {
          const response = await this.admin(peerId.toString(), request, signal)
          this.requireStorage().setMeta(META_CLUSTER_ID, encoder.encode(response.clusterId))
          return
        } catch (err) {
          if (err instanceof AbortError || err instanceof InvalidArgumentError) throw err
          // A refused identity often shows as a closed connection: the identity exchange tells why.
          const refusal = err instanceof UnauthorizedError ? err : this.identityRefusal(peerId.toString())
          if (refusal !== undefined) refusals++
          lastError = refusal ?? err
        }
      }
      // Every bootstrap member refused this agent's identity or policy: asking again will not change that.
      if (refusals === peers.length) throw lastError
      await this.tracker.waitChange(200, signal)
    }
    throw new NoLeaderError('No bootstrap member could add this agent', { cause: lastError })
  }

  /** Why the identity exchange with `peer` failed, either way, while that is remembered. */
  private identityRefusal(peer: string): UnauthorizedError | undefined {
    const theirs = this.security.identity?.refusal(peer)
    if (theirs !== undefined) return new UnauthorizedError(`${peer} refused this agent's identity: ${theirs}`)
    const ours = this.security.gate.peek(peer, 'join')
    if (ours?.ok === false) return new UnauthorizedError(`${peer} is refused: ${ours.reason}`)
    return undefined
  }

  /** After joining or restarting: wait for a leader that knows us, then open a session. */
  private async becomeReady(deadline: number, signal?: AbortSignal): Promise<void> {
    while (this.tracker.leader === '') {
      if (performance.now() > deadline) throw new NoLeaderError('No leader appeared in time')
      await this.tracker.waitChange(Math.max(1, deadline - performance.now()), signal)
      this.checkOpen()
    }
    if (this.session.id === '') await this.session.open(deadline)
  }

  private startRunner(): void {
    const storage = this.requireStorage()
    this.runner = new RaftRunner({
      id: this.id,
      storage,
      application: this.replica,
      send: message => {
        // Nothing goes to a peer whose identity or policy is refused (known at once; others are checked on
        // their side).
        if (this.security.gate.peek(message.to, 'join')?.ok === false) return
        this.transport.send(message.to, message)
      },
      random: this.init.random ?? Math.random,
      tickMs: this.timing.tickMs,
      snapshotEntries: this.timing.snapshotEntries,
      raftOptions: {
        electionTicks: this.timing.electionTicks,
        heartbeatTicks: this.timing.heartbeatTicks,
        ...this.init.raft,
      },
      log: this.components.logger.forComponent('conclave:raft'),
      onConfigApplied: () => this.memberGate.refresh(),
      onSoftState: (state, term) => {
        this.memberGate.refresh()
        if (state.leader !== '') this.leaderContact = performance.now()
        if (state.role === 'leader' && state.leader === this.id) {
          this.leaderSince = { local: performance.now(), stateTime: this.replica.state.time }
        } else {
          this.leaderSince = undefined
        }
        this.tracker.update(state.leader, term)
      },
    })
    this.leaderContact = performance.now()
    this.runner.start()
    this.housekeeping = setInterval(() => this.houseKeep(), Math.max(this.timing.tickMs, 50))
    this.housekeeping.unref()
  }

  /**
   * Every inbound Raft message passes the policy gate (the sender may send this type: `vote` for what
   * candidates and leaders send, `join` for what followers answer) and the member gate (the sender is in
   * the configuration). The policy gate answers at once for a known peer; a new peer's first message waits
   * for its identity exchange, and the transport stops reading that stream meanwhile.
   */
  private admitRaftMessage(message: Message, from: string): void | Promise<void> {
    const admitted = this.security.gate.admit(from, raftMessageAction(message.type))
    if (admitted === true) {
      this.onRaftMessage(message, from)
      return
    }
    return admitted.then(ok => {
      if (ok) this.onRaftMessage(message, from)
    })
  }

  private onRaftMessage(message: Message, from: string): void {
    const runner = this.runner
    if (runner === undefined || !this.memberGate.admitRaft(from)) return
    if (message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot') {
      this.leaderContact = performance.now()
    }
    runner.step(message)
  }

  /**
   * The leader's duties: expire lapsed sessions and locks and the sessions of agents the membership view
   * declares dead, and keep the voter set at its target (replacing dead voters).
   *
   * A lease is expired only when the state says so at this leader's wall time AND, for what a predecessor
   * may have stamped, this leader's monotonic clock has seen the most the lease could still have had at
   * takeover pass: min(ttl, expiresAt - state time at takeover). A lease never has more than its ttl left,
   * and the predecessor's clock stood at or past the last state time when this leader took over. So a new
   * leader whose clock runs ahead of its predecessor's cannot cut a lease short.
   */
  private houseKeep(): void {
    const runner = this.runner
    const since = this.leaderSince
    if (runner === undefined) return
    if (since === undefined || !this.isLeader()) {
      this.rejoinIfRemoved()
      return
    }
    // A leader that steps down starts counting from its last moment as leader.
    this.leaderContact = performance.now()
    const state = this.replica.state
    const now = Date.now()
    const elapsed = performance.now() - since.local
    const due = state.dueExpiries(now)
    const guard = (ttlMs: number, expiresAt: number): number => Math.min(ttlMs, expiresAt - since.stateTime)
    for (const sessionId of due.sessions) {
      const session = state.session(sessionId)
      if (session === undefined || elapsed < guard(session.ttlMs, session.expiresAt)) continue
      this.expire(`s:${sessionId}`, { type: 'expireSession', sessionId, reason: 'ttl' })
    }
    for (const { key, fencingToken } of due.locks) {
      const holder = state.lock(key)?.holder
      if (holder === undefined || elapsed < guard(holder.ttlMs, holder.expiresAt)) continue
      this.expire(`l:${key}:${fencingToken}`, { type: 'lockExpire', key, fencingToken })
    }
    // Sessions of agents the membership view declares dead (or left) go now, not a lease later. Only once a
    // session has gone half its ttl without a keep-alive: an agent still renewing it is alive, whatever a view
    // says, and an agent's lease is never cut below half its ttl.
    const down = new Set(this.membership.down())
    if (down.size > 0) {
      for (const session of state.sessions()) {
        if (!down.has(session.agentId) || session.agentId === this.id) continue
        const grace = session.ttlMs / 2
        const renewedAt = session.expiresAt - session.ttlMs
        if (now - renewedAt < grace || elapsed < guard(grace, renewedAt + grace)) continue
        const { sessionId } = session
        this.expire(`s:${sessionId}`, { type: 'expireSession', sessionId, reason: 'dead' })
      }
    }
    this.houseKeepTasks(due, elapsed, since.stateTime)
    if (this.pendingVoterTarget !== undefined && this.settingVoterTarget === undefined) {
      this.commitVoterTarget(this.client.deadline()).catch(err => this.log('voter target not set: %e', err))
    }
    this.promote(runner)
  }

  /** Commits the founder's voter target (if not done yet) into the replicated state; one attempt at a time. */
  private commitVoterTarget(deadline: number, signal?: AbortSignal): Promise<void> {
    const voters = this.pendingVoterTarget
    if (voters === undefined) return Promise.resolve()
    this.settingVoterTarget ??= (async () => {
      // Idempotent: a retry after an unknown outcome sets the same value again.
      const result = await this.client.submitRaw({ type: 'setVoterTarget', voters }, deadline, signal)
      if (result.type === 'error') {
        throw new InvalidArgumentError(`could not set the voter target: ${result.message}`)
      }
      this.requireStorage().setMeta(META_VOTER_TARGET, new Uint8Array())
      this.pendingVoterTarget = undefined
      this.log('voter target: %d', voters)
    })().finally(() => {
      this.settingVoterTarget = undefined
    })
    return this.settingVoterTarget
  }

  /**
   * A member that has heard from no leader for a while may have been taken out of the configuration (the
   * leader removes an agent dead for `voterReplaceAfterMs`): the members that remain drop its Raft messages,
   * and no leader writes to it, so it would wait forever. It asks a member it knows to add it again, as a
   * join does. For an agent still in the configuration this changes nothing; with no leader anywhere
   * (no quorum), the members answer that and it asks again later.
   */
  private rejoinIfRemoved(): void {
    const now = performance.now()
    const after = 4 * this.timing.electionTicks * this.timing.tickMs
    if (this.rejoining || now - this.leaderContact < after || now - this.lastRejoin < after) return
    const clusterId = this.clusterId()
    if (clusterId === undefined) return
    this.lastRejoin = now
    this.rejoining = true
    this.rejoin(clusterId)
      .catch(err => {
        // Refused for good (another cluster, or this identity): said rarely, as asking again rarely helps.
        this.lastRejoin = performance.now() + 30_000
        this.log.error(
          'cluster %s refuses this agent, which is no longer in its configuration: %e',
          clusterId,
          err,
        )
      })
      .finally(() => {
        this.rejoining = false
      })
  }

  private async rejoin(clusterId: string): Promise<void> {
    const request: AdminRequest = { op: 'join', agentId: this.id, addrs: this.multiaddrs(), clusterId }
    // Members the view holds alive first: a removed agent's configuration may name dead ones.
    const known = this.membershipRefresh().known
    const alive = known.filter(id => this.membership.status(id) === 'alive')
    const asked = [...alive, ...known.filter(id => !alive.includes(id))].slice(0, 3)
    let lastError: unknown
    for (const peer of asked) {
      const signal = AbortSignal.any([
        this.closedController.signal,
        AbortSignal.timeout(Math.min(this.timing.operationTimeoutMs, 5_000)),
      ])
      try {
        await this.admin(peer, request, signal)
        this.log('asked %s to keep this agent in cluster %s', peer, clusterId)
        return
      } catch (err) {
        // Another cluster's member, or a refused identity: asking the others will not help.
        if (err instanceof InvalidArgumentError || err instanceof UnauthorizedError) throw err
        lastError = err
      }
    }
    if (lastError !== undefined) this.log('no member could take this agent back yet: %e', lastError)
  }

  /**
   * The leader's task duties: fail attempts past their timeout, make failed tasks due for retry pending, expire
   * tasks past their deadline; each command re-checks against state time when applied. A timeout is treated
   * like a lease (see `houseKeep`): a new leader whose clock runs ahead cannot cut an attempt short.
   */
  private houseKeepTasks(due: DueExpiries, elapsed: number, takeoverStateTime: number): void {
    const state = this.replica.state
    for (const { taskId, attempt } of due.timeouts) {
      const task = state.task(taskId)
      if (task?.startedAt === undefined) continue
      const timeout = task.constraints.timeout
      if (elapsed < Math.min(timeout, task.startedAt + timeout - takeoverStateTime)) continue
      this.proposeTaskHousekeeping(`t:${taskId}:${attempt}`, { type: 'timeoutTask', taskId, attempt })
    }
    for (const taskId of due.retries) {
      this.proposeTaskHousekeeping(`r:${taskId}`, { type: 'retryDue', taskId })
    }
    for (const taskId of due.expiries) {
      this.proposeTaskHousekeeping(`e:${taskId}`, { type: 'expireTask', taskId })
    }
  }

  /** One housekeeping proposal at a time per id, as `expire` does. */
  private proposeTaskHousekeeping(
    id: string,
    command: TimeoutTaskCommand | RetryDueCommand | ExpireTaskCommand,
  ): void {
    if (this.expiring.has(id)) return
    this.expiring.add(id)
    this.client
      .submitRaw(command, this.client.deadline())
      .catch(err => this.log('housekeeping %s failed: %e', id, err))
      .finally(() => this.expiring.delete(id))
  }

  private expire(
    id: string,
    command:
      | { type: 'expireSession'; sessionId: string; reason: 'ttl' | 'dead' }
      | { type: 'lockExpire'; key: string; fencingToken: number },
  ): void {
    if (this.expiring.has(id)) return
    this.expiring.add(id)
    this.client
      .submitRaw(command, this.client.deadline())
      .catch(err => this.log('housekeeping %s failed: %e', id, err))
      .finally(() => this.expiring.delete(id))
  }

  /**
   * One configuration change at a time (see `voter-replacement.ts`): a voter dead for `voterReplaceAfterMs`
   * is taken out, the most caught-up healthy non-voters are promoted up to the replicated voter target, the
   * count stays odd, and a non-voter dead for `voterReplaceAfterMs` is taken out (if it comes back, it asks
   * to join again: see `rejoinIfRemoved`).
   */
  private promote(runner: RaftRunner): void {
    if (this.promoting) return
    const status = runner.status()
    const { voters, nonVoters } = status.config
    const change = planVoterChange({
      leader: this.id,
      voters,
      nonVoters,
      // Until the founder's target is committed, the founder (then the only voter) uses it already.
      target: this.pendingVoterTarget ?? this.replica.state.voterTarget,
      commit: status.commit,
      progress: status.progress ?? {},
      status: id => this.memberStatus(id),
      downFor: id => this.membership.downFor(id),
      replaceAfterMs: this.timing.voterReplaceAfterMs,
      // Only non-voters whose SPIFFE ID may vote are ever promoted; the others stay non-voters.
      mayVote: id => this.mayVote(id),
    })
    if (change === undefined) return
    this.promoting = true
    const applied = runner.proposeConfigChange(change)
    this.memberGate.refresh()
    applied
      .then(() => this.log('voter set: %s %s', change.type, change.node))
      .catch(err => this.log('voter set: %s %s not done: %e', change.type, change.node, err))
      .finally(() => {
        this.promoting = false
      })
  }

  /** SWIM runs while this agent is a member: from join (or a restart as a member) until leave or stop. */
  private startMembership(seeds: string[]): void {
    const clusterId = this.clusterId()
    if (clusterId === undefined || this.stopped) return
    const { fields, known } = this.membershipRefresh()
    this.membership
      .start({ clusterId, self: { id: this.id, ...fields }, seeds: [...seeds, ...known] })
      .catch(err => this.log.error('membership did not start: %e', err))
    this.guardWorkTopic(clusterId)
  }

  /**
   * With SPIFFE identities, work-stealing adverts are taken (and relayed) only from publishers that may
   * `join`, as SWIM gossip is (see `Membership`): ignored when relayed, rejected from the publisher itself.
   */
  private guardWorkTopic(clusterId: string): void {
    if (!this.security.enabled) return
    const gate = this.security.gate
    membershipPubSub(this.components)?.topicValidators?.set(workTopic(clusterId), async (peer, message) => {
      if (message.type !== 'signed') return TopicValidatorResult.Reject
      const admitted = gate.admit(message.from.toString(), 'join')
      if (admitted === true || (await admitted)) return TopicValidatorResult.Accept
      return peer.equals(message.from) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
    })
  }

  /** What this agent's member record says, and the agents the cluster knows of (seeds for the view). */
  private membershipRefresh(): { fields: Required<LocalFields>; known: string[] } {
    const config = this.runner?.status().config ?? { voters: [], nonVoters: [] }
    const state = this.replica.state
    const load = state.agentLoad(this.id)
    const known = new Set([...config.voters, ...config.nonVoters])
    for (const agent of state.agents()) if (agent.alive) known.add(agent.agentId)
    known.delete(this.id)
    return {
      fields: {
        name: this.name,
        addrs: this.multiaddrs(),
        capabilities: [...(this.init.capabilities ?? [])],
        labels: { ...(this.init.labels ?? {}) },
        role: config.voters.includes(this.id) ? 'voter' : 'nonvoter',
        load: load === undefined || load.slots === 0 ? 0 : Math.min(1, load.running / load.slots),
      },
      known: [...known],
    }
  }

  /** For commands forwarded by `from`, which the Raft core then tells of their commit through its peers. */
  private forwardContext(from: string): Parameters<typeof serveForward>[0] {
    return {
      selfId: this.id,
      leader: () => this.tracker.leader,
      now: () => Date.now(),
      proposeLocal: data => this.proposeLocal(data, from),
    }
  }

  private async admin(peer: string, request: AdminRequest, signal?: AbortSignal): Promise<AdminResponse> {
    try {
      const response = await this.rpc.callRpc(peer, ADMIN_PROTOCOL, encodeAdmin(request), {
        signal,
        timeoutMs: this.timing.operationTimeoutMs,
      })
      return JSON.parse(decoder.decode(response)) as AdminResponse
    } catch (err) {
      if ((err as Error).name === 'RpcRemoteError') {
        const remoteName = (err as { remoteName?: string }).remoteName
        if (remoteName === 'InvalidArgumentError') throw new InvalidArgumentError((err as Error).message)
        if (remoteName === 'UnauthorizedError') throw new UnauthorizedError((err as Error).message)
      }
      throw err
    }
  }

  private async serveAdmin(request: Uint8Array, from: string): Promise<Uint8Array> {
    const parsed = parseAdmin(request)
    const runner = this.requireRunner()
    // Every hop checks its sender; this agent's own requests (leave on the leader) are its own business.
    if (from !== this.id) await this.authorizeAdmin(parsed, from)
    if (parsed.op === 'member') {
      return encodeAdmin({
        clusterId: this.clusterId() ?? '',
        member: this.memberGate.isMember(parsed.agentId),
      })
    }
    const leader = this.tracker.leader
    if (leader !== this.id) {
      // Not the leader: pass the request on, so a joining agent may contact any member.
      if (leader === '' || from === leader) throw new NotLeaderError(leader)
      return encodeAdmin(await this.admin(leader, parsed))
    }
    const clusterId = this.clusterId() ?? ''
    const config = runner.status().config
    switch (parsed.op) {
      case 'join': {
        if (parsed.clusterId !== undefined && parsed.clusterId !== clusterId) {
          throw new InvalidArgumentError(`this cluster is ${clusterId}, not ${parsed.clusterId}`)
        }
        const peerId = parseBootstrap(`${parsed.addrs[0] ?? ''}`, parsed.agentId).peerId
        await this.components.peerStore.merge(peerId, {
          multiaddrs: parsed.addrs.map(address => multiaddr(address)),
        })
        // Passed on by a member: the leader authenticates the joiner itself, so that no member can add a
        // peer that has not proved its own identity.
        if (parsed.agentId !== from) await this.security.gate.require(parsed.agentId, 'join')
        if (!config.voters.includes(parsed.agentId) && !config.nonVoters.includes(parsed.agentId)) {
          await this.changeConfig({ type: 'addNonVoter', node: parsed.agentId })
        }
        break
      }
      case 'remove':
        if (config.voters.includes(parsed.agentId))
          await this.changeConfig({ type: 'removeVoter', node: parsed.agentId })
        else if (config.nonVoters.includes(parsed.agentId)) {
          await this.changeConfig({ type: 'removeNonVoter', node: parsed.agentId })
        }
        break
      case 'transfer':
        if (parsed.to !== this.id) await this.security.gate.require(parsed.to, 'vote')
        runner.transferLeadership(parsed.to)
        break
    }
    return encodeAdmin({ clusterId })
  }

  /**
   * Who may ask what: anyone with `join` may ask to join for itself, and any member may pass a joiner's
   * request on (the leader then authenticates the joiner); an agent may remove itself; removing another
   * agent, moving leadership and asking about the configuration take a member (with `vote` for the first
   * two). Throws `UnauthorizedError`.
   */
  private async authorizeAdmin(request: AdminRequest, from: string): Promise<void> {
    const gate = this.security.gate
    switch (request.op) {
      case 'join':
        await gate.require(from, 'join')
        if (request.agentId !== from) this.requireMember(from, 'pass on a join request')
        return
      case 'remove':
        if (request.agentId === from) {
          await gate.require(from, 'join')
          return
        }
        await gate.require(from, 'vote')
        this.requireMember(from, 'remove another agent')
        return
      case 'transfer':
        await gate.require(from, 'vote')
        this.requireMember(from, 'move leadership')
        return
      case 'member':
        await gate.require(from, 'join')
        this.requireMember(from, 'ask about the configuration')
    }
  }

  private requireMember(peer: string, what: string): void {
    if (this.memberGate.isMember(peer)) return
    const reason = `${peer} is not a member of this cluster: it may not ${what}`
    this.security.refused({ peer, action: 'join', reason })
    throw new UnauthorizedError(reason)
  }

  /**
   * A command forwarded to this agent as leader: only from a member of the configuration, and with SPIFFE
   * identities, only what the sender's policy allows, acting only for itself (its own agent id, sessions
   * and SPIFFE ID). The leader check comes first: only the leader's configuration is sure to be the newest.
   */
  private async serveForwardRequest(request: Uint8Array, from: string): Promise<Uint8Array> {
    const leader = this.tracker.leader
    if (leader !== this.id) throw new NotLeaderError(leader)
    this.requireMember(from, 'propose')
    return serveForward(this.forwardContext(from), request, async envelope => {
      await this.rightRates.take(from, commandAction(envelope.command))
      if (this.security.enabled) await this.authorizeForwarded(envelope, from)
    })
  }

  /** With SPIFFE identities: `from` may make this command, and numbers it only in its own session. */
  private async authorizeForwarded(envelope: Envelope, from: string): Promise<void> {
    const sessionOwner = (sessionId: string) => this.replica.state.session(sessionId)?.agentId
    const verdict = await this.security.gate.checkCommand(from, envelope.command, sessionOwner)
    if (!verdict.ok) throw new UnauthorizedError(verdict.reason)
    const owner = envelope.session === undefined ? undefined : sessionOwner(envelope.session)
    if (owner !== undefined && owner !== from) {
      const reason = `${from} may not number its commands in the session of agent ${owner}`
      this.security.refused({ peer: from, action: commandAction(envelope.command), reason })
      throw new UnauthorizedError(reason)
    }
  }

  /** This agent's own identity must allow `command`: what it may not do fails here, before any network. */
  private authorizeOwn(command: Command): void {
    const action = commandAction(command)
    if (this.security.gate.allowsSelf(action)) return
    const reason = `this agent (${this.security.spiffeId}) may not ${action} (command ${command.type})`
    this.security.refused({ peer: this.id, action, reason })
    throw new UnauthorizedError(reason)
  }

  private requireOwn(action: Action, what: string): void {
    if (this.security.gate.allowsSelf(action)) return
    const reason = `this agent (${this.security.spiffeId}) may not ${action}: it cannot ${what}`
    this.security.refused({ peer: this.id, action, reason })
    throw new UnauthorizedError(reason)
  }

  /**
   * A client-protocol request (the CLI): with SPIFFE identities, the client must hold a valid SVID, and one
   * allowing the operation's action (reads need only the SVID). The agent then runs it as itself, so its
   * own policy must allow it too.
   */
  private async authorizeClient(from: string, op: string): Promise<void> {
    if (!this.security.enabled) return
    const action = clientOpAction(op)
    const verdict =
      action === undefined
        ? await this.security.gate.identify(from)
        : await this.security.gate.check(from, action)
    if (!verdict.ok) throw new UnauthorizedError(`Refused ${op} from ${from}: ${verdict.reason}`)
  }

  /** Whether `id` may be promoted to voter; an unknown peer is authenticated now and considered next round. */
  private mayVote(id: string): boolean {
    const verdict = this.security.gate.peek(id, 'vote')
    if (verdict !== undefined) return verdict.ok
    if (!this.checkingVote.has(id)) {
      this.checkingVote.add(id)
      void this.security.gate.check(id, 'vote').finally(() => this.checkingVote.delete(id))
    }
    return false
  }

  /**
   * Asks up to three members this agent knows whether `peer` is in their configuration: this agent's log
   * may lag behind the entry that added it (see `MemberGate`).
   */
  private async vouch(peer: string, signal: AbortSignal): Promise<boolean> {
    const config = this.runner?.status().config
    if (config === undefined) return false
    const asked = [...config.voters, ...config.nonVoters]
      .filter(id => id !== this.id && id !== peer)
      .slice(0, 3)
    const answers = await Promise.allSettled(
      asked.map(id => this.admin(id, { op: 'member', agentId: peer }, signal)),
    )
    return answers.some(answer => answer.status === 'fulfilled' && answer.value.member === true)
  }

  /** One membership change, retried while another is still uncommitted. */
  private async changeConfig(change: Parameters<RaftRunner['proposeConfigChange']>[0]): Promise<void> {
    const deadline = this.client.deadline()
    for (;;) {
      try {
        const applied = this.requireRunner().proposeConfigChange(change)
        this.memberGate.refresh()
        await applied
        return
      } catch (err) {
        if ((err as Error).name !== 'ConfigChangeError' || performance.now() > deadline) throw err
        await this.tracker.waitChange(50)
      }
    }
  }

  /**
   * Propose on this agent as leader; the result is the state machine's answer to the command. `origin`:
   * the agent that forwarded it.
   */
  private async proposeLocal(data: Uint8Array, origin?: string): Promise<CommandResult> {
    const output = (await this.requireRunner().propose(data, origin)) as ApplyOutput
    return output.result
  }

  private requireRunner(): RaftRunner {
    if (this.stopped) throw new ClosedError()
    if (this.runner === undefined) throw new NoLeaderError('The agent has not joined a cluster')
    return this.runner
  }

  private requireStorage(): RaftStorage {
    if (this.storage === undefined) throw new ClosedError('The agent is not started')
    return this.storage
  }

  private checkOpen(): void {
    if (this.stopped) throw new ClosedError()
  }
}

function hasState(state: PersistedState): boolean {
  return state.snapshot !== undefined || state.entries.length > 0 || state.hardState.term > 0
}

function encodeAdmin(value: AdminRequest | AdminResponse): Uint8Array {
  return encoder.encode(JSON.stringify(value))
}

/** An admin request from a peer, checked for shape: anything else is an `InvalidArgumentError`. */
function parseAdmin(request: Uint8Array): AdminRequest {
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(request))
  } catch {
    throw new InvalidArgumentError('admin request is not JSON')
  }
  const value = parsed as Record<string, unknown> | null
  const isText = (field: unknown): field is string => typeof field === 'string' && field.length > 0
  if (value !== null && typeof value === 'object') {
    switch (value.op) {
      case 'join':
        if (
          isText(value.agentId) &&
          Array.isArray(value.addrs) &&
          value.addrs.length <= 64 &&
          value.addrs.every(isText) &&
          (value.clusterId === undefined || isText(value.clusterId))
        ) {
          return value as AdminRequest
        }
        break
      case 'remove':
      case 'member':
        if (isText(value.agentId)) return value as AdminRequest
        break
      case 'transfer':
        if (isText(value.to)) return value as AdminRequest
        break
    }
  }
  throw new InvalidArgumentError('unknown or malformed admin request')
}

function parseBootstrap(address: string, expectedPeer?: string): { peerId: PeerId; address: Multiaddr } {
  let parsed: Multiaddr
  try {
    parsed = multiaddr(address)
  } catch (cause) {
    throw new InvalidArgumentError(`invalid multiaddr ${address}`, { cause })
  }
  const peer = parsed.getComponents().findLast(component => component.name === 'p2p')?.value ?? expectedPeer
  if (peer === undefined) throw new InvalidArgumentError(`bootstrap address ${address} has no /p2p/<peerId>`)
  return { peerId: peerIdOf(peer), address: parsed }
}

function peerIdOf(peer: string): PeerId {
  try {
    return peerIdFromString(peer)
  } catch (cause) {
    throw new InvalidArgumentError(`invalid peer id ${peer}`, { cause })
  }
}
