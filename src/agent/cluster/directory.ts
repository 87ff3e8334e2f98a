import type { ComponentLogger, PeerStore } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { AgentInfo, ClusterHealth } from '../../api.ts'
import { InvalidArgumentError, NoLeaderError } from '../../errors.ts'
import type { Config } from '../../raft/types.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import { JOIN_IN_ONE_ENTRY_VERSION, type OpenSessionAndRegisterCommand } from '../../state/index.ts'
import type { LocalFields, MemberStatus } from '../../swim/types.ts'
import type { CommitPort, RunnerPort } from '../node/port.ts'
import type { Replica } from '../node/replica.ts'
import { learnAddresses } from './address-book.ts'
import { peerIdOf } from './admin-protocol.ts'
import type { Membership } from './membership.ts'

export interface DirectoryInit {
  selfId: string
  name: string
  capabilities: readonly string[]
  labels: Readonly<Record<string, string>>
  concurrency: number
  /** Whether a worker of this agent runs now (its slots offered to the scheduler); default true. */
  runsTasks?(): boolean
  addresses(): Multiaddr[]
  peerStore: Pick<PeerStore, 'merge'>
  replica: Replica
  runner: RunnerPort
  membership: Membership
  security: ConclaveSecurity
  commit: CommitPort
  logger: ComponentLogger
  /** How long a member the view holds dead is still listed (as dead): as long as a dead replica is kept. */
  listDeadForMs: number
  /** The replicas (the configuration): the runner's, or as a member's replica told it. Default: the runner's. */
  config?(): Config | undefined
}

/** A registration refused because its session had lapsed: retried under a new one (a `NoLeaderError`). */
export class SessionLapsedError extends NoLeaderError {
  readonly sessionId: string
  constructor(sessionId: string) {
    super(`the session ${sessionId} lapsed before the registration committed`)
    this.sessionId = sessionId
  }
}

/**
 * Who is in the cluster, as this agent tells it: the configuration, the replicated registry (this agent's
 * own entry included, which it writes) and the membership view, joined into `AgentInfo`s and a health
 * summary. The registry is also the address book Raft and RPC dial by.
 */
export class Directory {
  private readonly init: DirectoryInit
  private readonly log

  constructor(init: DirectoryInit) {
    this.init = init
    this.log = init.logger.forComponent('conclave')
    init.replica.onEvent(event => {
      if (event.type === 'agentChanged' && event.change !== 'left') this.learnAddresses(event.agentId)
    })
    init.replica.onRestore(() => {
      for (const agent of init.replica.state.agents()) this.learnAddresses(agent.agentId)
    })
  }

  multiaddrs(): string[] {
    return this.init.addresses().map(address => {
      const text = address.toString()
      return text.includes('/p2p/') ? text : `${text}/p2p/${this.init.selfId}`
    })
  }

  /**
   * Put this agent in the replicated registry (addresses, name, capabilities, slots) under `sessionId`;
   * answers the `runsTasks` it registered with.
   */
  async register(sessionId: string): Promise<boolean> {
    const { commit } = this.init
    const registration = this.registration(sessionId)
    const result = await commit.submitRaw({ type: 'registerAgent', ...registration }, commit.deadline())
    // The session lapsed before the registration committed (a leader too busy for its keep-alives): the
    // caller registers again under a new session.
    if (result.type === 'error' && result.code === 'SessionExpired') throw new SessionLapsedError(sessionId)
    if (result.type === 'error') throw new InvalidArgumentError(`could not register: ${result.message}`)
    return registration.runsTasks
  }

  /**
   * The session `open` and this agent's registration under it as one command, when the cluster version (as
   * this agent's copy of the state knows it) admits it; else undefined (open, then `register`).
   */
  openAndRegister(open: {
    sessionId: string
    agentId: string
    ttlMs: number
  }): OpenSessionAndRegisterCommand | undefined {
    if (open.agentId !== this.init.selfId) return undefined
    if (this.init.replica.state.clusterVersion < JOIN_IN_ONE_ENTRY_VERSION) return undefined
    return { type: 'openSessionAndRegister', ttlMs: open.ttlMs, ...this.registration(open.sessionId) }
  }

  /** What this agent registers with under `sessionId`. */
  private registration(sessionId: string) {
    const { security, selfId } = this.init
    return {
      agentId: selfId,
      name: this.init.name,
      sessionId,
      addrs: this.multiaddrs(),
      capabilities: [...this.init.capabilities],
      labels: { ...this.init.labels },
      concurrency: this.init.concurrency,
      runsTasks: this.init.runsTasks?.() ?? true,
      ...(security.spiffeId === undefined ? {} : { spiffeId: security.spiffeId }),
    }
  }

  members(): AgentInfo[] {
    const { selfId, replica, membership, security } = this.init
    const config = this.config()
    const state = replica.state
    const registered = new Map(state.agents().map(agent => [agent.agentId, agent]))
    // A replica the configuration names before it registered or the view met it (the moment after the leader
    // added it) is not listed yet: nothing says what it is called or whether it runs, and "dead" would lie.
    const ids = new Set(
      [...config.voters, ...config.nonVoters].filter(
        id => id === selfId || registered.has(id) || membership.member(id) !== undefined,
      ),
    )
    // Members hold no log and are in no configuration: the registry and the view name them. One the view
    // says left is gone, even while its registration lives on (its leave could not close its session, which
    // then lasts until it expires).
    for (const agent of state.agents()) {
      if (agent.alive && membership.status(agent.agentId) !== 'left') ids.add(agent.agentId)
    }
    // A member the view holds dead stays listed, dead, for as long as a dead replica stays in the
    // configuration (`voterReplaceAfterMs`): health counts it out and operators see it go. One that left is gone.
    for (const member of membership.members()) {
      if (member.status === 'alive' || member.status === 'suspect') ids.add(member.id)
      else if (member.status === 'dead' && (membership.downFor(member.id) ?? 0) < this.init.listDeadForMs)
        ids.add(member.id)
    }
    return [...ids].map(id => {
      const agent = registered.get(id)
      const session = agent === undefined ? undefined : state.session(agent.sessionId)
      const load = state.agentLoad(id)
      // Liveness, lastSeen and load come from the membership view; the registry stands in where it is silent.
      const view = membership.member(id)
      const seen = id === selfId ? membership.now() : view?.lastSeen
      // The registry holds IDs the leader verified; this agent's own, and those of peers it met, fill in.
      const spiffeId = agent?.spiffeId ?? (id === selfId ? security.spiffeId : security.gate.spiffeIdOf(id))
      return {
        id,
        name: agent?.name ?? view?.name ?? id.slice(-8),
        addrs: agent?.addrs ?? view?.addrs ?? [],
        capabilities: agent?.capabilities ?? view?.capabilities ?? [],
        labels: agent?.labels ?? view?.labels ?? {},
        role: config.voters.includes(id) ? 'voter' : 'nonvoter',
        replica: config.voters.includes(id) || config.nonVoters.includes(id),
        status: this.memberStatus(id) ?? 'dead',
        load:
          view !== undefined && id !== selfId
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

  health(leader: string): ClusterHealth {
    const members = this.members()
    const config = this.config()
    const alive = new Set(members.filter(member => member.status === 'alive').map(member => member.id))
    const aliveVoters = config.voters.filter(voter => alive.has(voter)).length
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
      clusterVersion: this.init.replica.state.clusterVersion,
    }
  }

  private config(): Config {
    return (
      (this.init.config === undefined ? this.init.runner.current()?.status().config : this.init.config()) ?? {
        voters: [],
        nonVoters: [],
      }
    )
  }

  /** A member's status in the membership view, else alive or dead by the registry; undefined if unknown. */
  memberStatus(id: string): MemberStatus | undefined {
    const status = this.init.membership.status(id)
    if (status !== undefined) return status
    const agent = this.init.replica.state.agent(id)
    return agent === undefined ? undefined : agent.alive ? 'alive' : 'dead'
  }

  /** What this agent's member record says, and the agents the cluster knows of (seeds for the view). */
  localView(): { fields: Required<LocalFields>; known: string[] } {
    const { selfId, replica } = this.init
    const config = this.config()
    const state = replica.state
    const load = state.agentLoad(selfId)
    const known = new Set([...config.voters, ...config.nonVoters])
    for (const agent of state.agents()) if (agent.alive) known.add(agent.agentId)
    known.delete(selfId)
    return {
      fields: {
        name: this.init.name,
        addrs: this.multiaddrs(),
        capabilities: [...this.init.capabilities],
        labels: { ...this.init.labels },
        role: config.voters.includes(selfId) ? 'voter' : 'nonvoter',
        load: load === undefined || load.slots === 0 ? 0 : Math.min(1, load.running / load.slots),
      },
      known: [...known],
    }
  }

  /** Raft and RPC dial peers by id: the registry is the address book that survives restarts. */
  private learnAddresses(agentId: string): void {
    if (agentId === this.init.selfId) return
    const agent = this.init.replica.state.agent(agentId)
    if (agent !== undefined)
      learnAddresses(this.init.peerStore, () => peerIdOf(agentId), agent.addrs, this.log)
  }
}
