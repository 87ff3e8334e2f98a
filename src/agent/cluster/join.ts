import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ClusterConfig } from '../../api.ts'
import {
  AbortError,
  ClosedError,
  InvalidArgumentError,
  NoLeaderError,
  UnauthorizedError,
} from '../../errors.ts'
import type { Config } from '../../raft/types.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import type { RaftStorage } from '../../storage/index.ts'
import type { Scheduler } from '../../time/index.ts'
import { workTopic } from '../api/work-stealing.ts'
import { DEFAULT_STANDBYS, MAX_STANDBYS } from '../member.ts'
import { deadlineSignal, settlesWithin, sleep } from '../node/abort.ts'
import type { LeaderTracker } from '../node/leader-tracker.ts'
import type { CommitPort } from '../node/port.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { SessionKeeper } from '../node/session.ts'
import type { ResolvedTiming } from '../options.ts'
import {
  type AdminCall,
  type AdminRequest,
  type AdminResponse,
  encodeAdmin,
  parseBootstrap,
} from './admin-protocol.ts'
import type { AdminServer } from './admin-server.ts'
import type { Authorization } from './authorization.ts'
import { BootstrapDials } from './bootstrap-dials.ts'
import type { ClusterVersionKeeper } from './cluster-version.ts'
import { type Directory, SessionLapsedError } from './directory.ts'
import { checkMaxFinishedTasks, commitMaxFinishedTasks } from './max-finished-tasks.ts'
import type { Membership } from './membership.ts'
import type { NodeMeta } from './meta.ts'
import { membershipPubSub } from './swim-wire.ts'
import type { Voters } from './voters.ts'

export interface JoiningInit {
  selfId: string
  timing: ResolvedTiming
  components: {
    peerStore: { merge(peer: PeerId, data: { multiaddrs: Multiaddr[] }): Promise<unknown> }
    connectionManager: {
      openConnection(peer: Multiaddr | PeerId, options?: { signal?: AbortSignal }): Promise<unknown>
    }
  }
  storage(): RaftStorage
  meta(): NodeMeta
  host: RaftHost
  tracker: LeaderTracker
  session: SessionKeeper
  commit: CommitPort
  voters: Voters
  clusterVersion: Pick<ClusterVersionKeeper, 'commitFounding'>
  admin: AdminCall
  adminServer: AdminServer
  authorization: Authorization
  membership: Membership
  directory: Directory
  security: ConclaveSecurity
  /** Hands leadership on before this agent leaves. */
  resign(signal?: AbortSignal): Promise<void>
  /** The two kinds of agent (`MemberTier`): a joiner past the replicas is a member, fed by a replica. */
  tier: MemberTierPort
  closed: AbortSignal
  scheduler: Scheduler
  /** Jitter of the join back-off. */
  random(): number
  log: Logger
}

/** What joining needs of the member tier. */
export interface MemberTierPort {
  readonly isMember: boolean
  /** The standbys this agent keeps when it leads. */
  standbys: number
  becomeMember(replicas: readonly string[]): void
  stop(): void
}

/** The first pause between two rounds of join requests, and the longest. */
const JOIN_BACKOFF_MS = 100
const JOIN_BACKOFF_MAX_MS = 2_000
/** Longest a joining replica waits to apply the leader's commit point before it opens its session. */
const CATCH_UP_MS = 5_000

/**
 * How an agent gets into a cluster and out of it: founding one, joining through bootstrap members,
 * resuming after a restart, leaving, and asking to be taken back when the leader removed it while it was
 * away. Joining and leaving are configuration changes the leader makes on an admin request.
 */
export class Joining {
  private readonly init: JoiningInit
  private ready?: Promise<void>
  private lastRejoin = 0
  private rejoining = false

  constructor(init: JoiningInit) {
    this.init = init
  }

  /** At start: a member that did not leave resumes at once; its session and registration follow. */
  resume(): void {
    const { storage, meta, host, log } = this.init
    if (meta().left() || !hasState(storage())) return
    host.start(storage())
    this.startMembership([])
    this.ready = this.becomeReady(this.init.scheduler.now() + 60_000)
    this.ready.catch(err => log.error('could not resume the session after a restart: %e', err))
  }

  async join(config: ClusterConfig, signal?: AbortSignal): Promise<void> {
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
    const standbys = config.standbys ?? DEFAULT_STANDBYS
    if (!Number.isInteger(standbys) || standbys < 0 || standbys > MAX_STANDBYS) {
      throw new InvalidArgumentError(`standbys must be an integer from 0 to ${MAX_STANDBYS}`)
    }
    if (config.maxFinishedTasks !== undefined) checkMaxFinishedTasks(config.maxFinishedTasks)
    const { tier } = this.init
    tier.standbys = standbys
    const peers = bootstrap.map(address => parseBootstrap(address))
    const { host, components, meta } = this.init
    // Founding makes this agent the first voter; joining makes it a member.
    this.init.authorization.requireOwn(
      host.current() === undefined && peers.length === 0 ? 'vote' : 'join',
      'join a cluster',
    )
    const deadline = this.init.scheduler.now() + this.init.timing.joinTimeoutMs
    const storage = this.init.storage()
    for (const { peerId, address } of peers) {
      await components.peerStore.merge(peerId, { multiaddrs: [address] })
    }
    if (host.current() === undefined && !tier.isMember) {
      if (peers.length === 0) {
        this.found(config.clusterId ?? crypto.randomUUID(), voters)
      } else {
        meta().setLeft(false)
        const answer = await this.askToJoin(peers, config.clusterId, deadline, signal)
        // A member writes nothing to disk but its identity: no runner, its state fed by a replica.
        if (answer.role === 'member')
          tier.becomeMember(answer.replicas ?? peers.map(p => p.peerId.toString()))
        else host.start(storage)
      }
      this.startMembership(peers.map(({ peerId }) => peerId.toString()))
      // The founder's voter target goes into the replicated state before join returns; later leaders and
      // restarts read it from there. A joiner's `voters` is not used.
      // So is its command-set version: it is the only replica, and the cluster may use all it supports.
      // Both before its session opens, so that the session and its registration are one entry
      // (`openSessionAndRegister` needs the version), as every joiner's are.
      const founding =
        peers.length === 0
          ? async () => {
              await this.init.voters.commitTarget(deadline, signal)
              await this.init.clusterVersion.commitFounding(deadline, signal)
            }
          : undefined
      this.ready = this.becomeReady(deadline, signal, founding)
      if (peers.length === 0) {
        // And its cap on kept finished tasks, once the cluster version admits the command.
        const { maxFinishedTasks } = config
        if (maxFinishedTasks !== undefined) {
          this.ready = this.ready.then(() =>
            commitMaxFinishedTasks(this.init.commit, maxFinishedTasks, deadline, signal),
          )
        }
      }
      if (peers.length > 0) {
        try {
          await this.ready
        } catch (err) {
          // Refused for good (its name is taken, say): it must not stay behind as a member that never
          // registered, shown dead in every member list until the leader replaces it.
          if (err instanceof InvalidArgumentError || err instanceof UnauthorizedError) await this.withdraw()
          throw err
        }
      }
    } else {
      const clusterId = meta().clusterId()
      if (config.clusterId !== undefined && clusterId !== undefined && clusterId !== config.clusterId) {
        throw new InvalidArgumentError(`this agent belongs to cluster ${clusterId}, not ${config.clusterId}`)
      }
      for (const { address } of peers) components.connectionManager.openConnection(address).catch(() => {})
      this.init.membership.seed(
        peers.map(({ peerId }) => peerId.toString()),
        true,
      )
    }
    await this.ready
  }

  async leave(signal?: AbortSignal): Promise<void> {
    const { host, tracker, selfId, session, commit, log, tier } = this.init
    if (host.current() === undefined) {
      if (!tier.isMember) return
      // A member is in no configuration: closing its session and leaving the view is all.
      await session.stop(true, commit.deadline()).catch(err => log('could not close session: %e', err))
      await this.init.membership.leave()
      tier.stop()
      this.init.meta().setLeft(true)
      tracker.update('', 0)
      return
    }
    if (host.isLeader()) await this.init.resign(signal)
    await session.stop(true, commit.deadline()).catch(err => log('could not close session: %e', err))
    const deadline = commit.deadline()
    for (;;) {
      if (this.init.scheduler.now() > deadline)
        throw new NoLeaderError('No leader removed this agent in time')
      const leader = tracker.leader
      try {
        if (leader === selfId)
          await this.init.adminServer.serve(encodeAdmin({ op: 'remove', agentId: selfId }), selfId)
        else if (leader !== '') await this.init.admin(leader, { op: 'remove', agentId: selfId }, signal)
        if (leader !== '') break
      } catch (err) {
        if (err instanceof AbortError) throw err
        log('leave: removal not done yet: %e', err)
      }
      await tracker.waitChange(200, signal)
    }
    await this.init.membership.leave()
    this.init.meta().setLeft(true)
    host.stop()
    tracker.update('', 0)
  }

  /** Leaves after a refused join, best effort: the refusal is what the caller hears. */
  private async withdraw(): Promise<void> {
    try {
      await this.leave()
    } catch (err) {
      this.init.log('could not withdraw after a refused join: %e', err)
    }
  }

  /**
   * Asks up to three members this agent knows whether `peer` is in their configuration: this agent's log
   * may lag behind the entry that added it (see `MemberGate`).
   */
  async vouch(peer: string, signal: AbortSignal): Promise<boolean> {
    const config = this.init.host.current()?.status().config
    if (config === undefined) return false
    const asked = [...config.voters, ...config.nonVoters]
      .filter(id => id !== this.init.selfId && id !== peer)
      .slice(0, 3)
    const answers = await Promise.allSettled(
      asked.map(id => this.init.admin(id, { op: 'member', agentId: peer }, signal)),
    )
    return answers.some(answer => answer.status === 'fulfilled' && answer.value.member === true)
  }

  private found(clusterId: string, voters: number): void {
    const storage = this.init.storage()
    const meta = this.init.meta()
    meta.setLeft(false)
    this.init.voters.found(voters)
    const config: Config = { voters: [this.init.selfId], nonVoters: [] }
    storage.write({
      hardState: { term: 0, vote: '', commit: 0 },
      entries: [],
      snapshot: { meta: { index: 0, term: 0, config }, data: new Uint8Array() },
    })
    meta.setClusterId(clusterId)
    this.init.host.start(storage).campaign()
  }

  /**
   * Ask the bootstrap agents, in turn, to have the leader let this agent in (as a replica or a member),
   * with back-off between rounds until `deadline` or the signal: many agents started at once find the
   * leader busy or not elected yet. A refusal for good (another cluster, this identity) ends it at once.
   */
  private async askToJoin(
    peers: { peerId: PeerId }[],
    clusterId: string | undefined,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<AdminResponse> {
    const request: AdminRequest = {
      op: 'join',
      agentId: this.init.selfId,
      addrs: this.init.directory.multiaddrs(),
      clusterId,
    }
    let lastError: unknown
    let backoff = JOIN_BACKOFF_MS
    // One dial per bootstrap member for the whole join (see `BootstrapDials`): under load, a handshake
    // can outlast one request's dial timeout, and a dial begun again for each request would never finish.
    const dials = new BootstrapDials(
      this.init.components.connectionManager,
      this.init.scheduler,
      deadline,
      signal === undefined ? [this.init.closed] : [this.init.closed, signal],
    )
    try {
      while (this.init.scheduler.now() < deadline) {
        let refusals = 0
        for (const { peerId } of peers) {
          if (this.init.closed.aborted) throw new ClosedError()
          try {
            // A handshake still under way is waited for, not joined by a request's own dial (see `connected`).
            if ((await dials.connected(peerId, this.init.timing.operationTimeoutMs)) === 'pending') {
              lastError = new NoLeaderError(`the connection to ${peerId} is still in its handshake`)
              this.init.log('join: still connecting to %s', peerId)
              continue
            }
            const response = await this.init.admin(peerId.toString(), request, signal)
            this.init.meta().setClusterId(response.clusterId)
            return response
          } catch (err) {
            if (err instanceof AbortError || err instanceof InvalidArgumentError) throw err
            // A refused identity often shows as a closed connection: the identity exchange tells why.
            const refusal =
              err instanceof UnauthorizedError
                ? err
                : this.init.authorization.identityRefusal(peerId.toString())
            if (refusal !== undefined) refusals++
            lastError = refusal ?? err
            // Counted by bench:scale's logs (join attempts per agent, and why they failed: the cause is
            // what the transport met, a dial or a stream that did not open in time, say).
            this.init.log(
              'join: %s did not let this agent in yet: %e (cause: %s)',
              peerId,
              lastError,
              (lastError as Error | undefined)?.cause ?? 'none',
            )
          }
        }
        // Every bootstrap member refused this agent's identity or policy: asking again will not change that.
        if (refusals === peers.length) throw lastError
        // Jittered, so that agents started together do not ask in step.
        const pause = Math.min(backoff, Math.max(0, deadline - this.init.scheduler.now()))
        await sleep(pause * (0.5 + this.init.random() / 2), signal, this.init.scheduler)
        backoff = Math.min(backoff * 2, JOIN_BACKOFF_MAX_MS)
      }
    } finally {
      dials.stop()
    }
    throw new NoLeaderError('No bootstrap member could add this agent', { cause: lastError })
  }

  /**
   * After joining or restarting: wait for a leader that knows us, then open a session (`beforeSession`
   * first: the founder's own entries).
   */
  private async becomeReady(
    deadline: number,
    signal?: AbortSignal,
    beforeSession?: () => Promise<void>,
  ): Promise<void> {
    const { tracker, session, closed } = this.init
    while (tracker.leader === '') {
      // An agent that stopped applying its log (an entry above its version) will see no leader: say why.
      if (this.init.host.halted !== undefined) throw this.init.host.halted
      if (this.init.scheduler.now() > deadline) throw new NoLeaderError('No leader appeared in time')
      await tracker.waitChange(Math.min(200, Math.max(1, deadline - this.init.scheduler.now())), signal)
      if (closed.aborted) throw new ClosedError()
    }
    if (beforeSession !== undefined) await beforeSession()
    else if (session.id === '') await this.catchUp(deadline, signal)
    // Many agents joining at once can keep the leader busy past one operation's timeout: the session (and
    // the registration that follows its opening) are asked for again, with back-off, until the deadline.
    let backoff = JOIN_BACKOFF_MS
    for (let registered = session.id !== ''; ; ) {
      try {
        if (session.id === '') await session.open(deadline)
        else if (!registered) await this.init.directory.register(session.id)
        return
      } catch (err) {
        if (!(err instanceof NoLeaderError) || this.init.scheduler.now() > deadline) throw err
        this.init.log('join: session or registration not committed yet, asking again: %e', err)
        registered = false
        // A lapsed session is never revived: a new one, and the registration under it.
        if (err instanceof SessionLapsedError) session.ended(err.sessionId)
      }
      await sleep(backoff * (0.5 + this.init.random() / 2), signal, this.init.scheduler)
      backoff = Math.min(backoff * 2, JOIN_BACKOFF_MAX_MS)
      if (closed.aborted) throw new ClosedError()
    }
  }

  /**
   * A replica that just joined (or restarted) applies up to the leader's commit point before it opens its
   * session: until its log brings it the cluster's command-set version, it would open the session and
   * register in two entries instead of one (`openSessionAndRegister`). Bounded: past `CATCH_UP_MS` (or the
   * deadline) it opens anyway, in two entries if it must. A member (no runner) is fed a snapshot first and
   * has nothing to wait for here.
   */
  private async catchUp(deadline: number, signal?: AbortSignal): Promise<void> {
    const runner = this.init.host.current()
    if (runner === undefined) return
    const { scheduler } = this.init
    const until = Math.min(deadline, scheduler.now() + CATCH_UP_MS)
    while (scheduler.now() < until) {
      // A read that meets no leader is dropped by the core: asked again after an election timeout's worth.
      const attempt = new AbortController()
      const caughtUp = await settlesWithin(
        runner.readIndex(attempt.signal),
        Math.min(500, Math.max(1, until - scheduler.now())),
        { signal, closed: this.init.closed },
        scheduler,
      ).catch(err => {
        // The runner stopped applying (an entry above this agent's version): that is what the join says.
        if (this.init.host.halted !== undefined) throw this.init.host.halted
        if (err instanceof AbortError || this.init.closed.aborted) throw err
        return false
      })
      attempt.abort()
      if (caughtUp) return
      if (this.init.host.halted !== undefined) throw this.init.host.halted
    }
  }

  /**
   * A member that has heard from no leader for a while may have been taken out of the configuration (the
   * leader removes an agent dead for `voterReplaceAfterMs`): the members that remain drop its Raft messages,
   * and no leader writes to it, so it would wait forever. It asks a member it knows to add it again, as a
   * join does. For an agent still in the configuration this changes nothing; with no leader anywhere
   * (no quorum), the members answer that and it asks again later.
   */
  rejoinIfRemoved(): void {
    const now = this.init.scheduler.now()
    const { timing, host, log } = this.init
    const after = 4 * timing.electionTicks * timing.tickMs
    if (this.rejoining || now - host.leaderContact < after || now - this.lastRejoin < after) return
    const clusterId = this.init.meta().clusterId()
    if (clusterId === undefined) return
    this.lastRejoin = now
    this.rejoining = true
    this.rejoin(clusterId)
      .catch(err => {
        // Refused for good (another cluster, or this identity): said rarely, as asking again rarely helps.
        this.lastRejoin = this.init.scheduler.now() + 30_000
        log.error(
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
    const { selfId, directory, membership, timing, log } = this.init
    const request: AdminRequest = { op: 'join', agentId: selfId, addrs: directory.multiaddrs(), clusterId }
    // Members the view holds alive first: a removed agent's configuration may name dead ones.
    const known = directory.localView().known
    const alive = known.filter(id => membership.status(id) === 'alive')
    const asked = [...alive, ...known.filter(id => !alive.includes(id))].slice(0, 3)
    let lastError: unknown
    for (const peer of asked) {
      const bound = deadlineSignal(
        Math.min(timing.operationTimeoutMs, 5_000),
        [this.init.closed],
        this.init.scheduler,
      )
      try {
        const answer = await this.init.admin(peer, request, bound.signal)
        log('asked %s to keep this agent in cluster %s', peer, clusterId)
        // The replicas are complete without it: it goes on as a member, its runner stopped.
        if (answer.role === 'member' && this.init.host.current() !== undefined) {
          this.init.host.stop()
          this.init.tier.becomeMember(answer.replicas ?? [peer])
        }
        return
      } catch (err) {
        // Another cluster's member, or a refused identity: asking the others will not help.
        if (err instanceof InvalidArgumentError || err instanceof UnauthorizedError) throw err
        lastError = err
      } finally {
        bound.cancel()
      }
    }
    if (lastError !== undefined) log('no member could take this agent back yet: %e', lastError)
  }

  /** SWIM runs while this agent is a member: from join (or a restart as a member) until leave or stop. */
  private startMembership(seeds: string[]): void {
    const clusterId = this.init.meta().clusterId()
    if (clusterId === undefined || this.init.closed.aborted) return
    const { fields, known } = this.init.directory.localView()
    this.init.membership
      .start({ clusterId, self: { id: this.init.selfId, ...fields }, seeds: [...seeds, ...known] })
      .catch(err => this.init.log.error('membership did not start: %e', err))
    this.guardWorkTopic(clusterId)
  }

  /**
   * With SPIFFE identities, work-stealing adverts are taken (and relayed) only from publishers that may
   * `join`, as SWIM gossip is (see `Membership`): ignored when relayed, rejected from the publisher itself.
   */
  private guardWorkTopic(clusterId: string): void {
    const { security } = this.init
    if (!security.enabled) return
    const gate = security.gate
    membershipPubSub(this.init.components)?.topicValidators?.set(
      workTopic(clusterId),
      async (peer, message) => {
        if (message.type !== 'signed') return TopicValidatorResult.Reject
        const admitted = gate.admit(message.from.toString(), 'join')
        if (admitted === true || (await admitted)) return TopicValidatorResult.Accept
        return peer.equals(message.from) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
      },
    )
  }
}

function hasState(storage: RaftStorage): boolean {
  const state = storage.load()
  return state.snapshot !== undefined || state.entries.length > 0 || state.hardState.term > 0
}
