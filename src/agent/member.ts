import type { Logger } from '@libp2p/interface'
import type { Rpc } from '../net/rpc.ts'
import type { Config } from '../raft/types.ts'
import type { RaftStorage } from '../storage/index.ts'
import type { MemberStatus } from '../swim/types.ts'
import type { Scheduler } from '../time/index.ts'
import { CLIENT_PROTOCOL } from './api/client-protocol.ts'
import type { LeaderTracker } from './node/leader-tracker.ts'
import { Mirror } from './node/mirror.ts'
import type { RaftHost } from './node/raft-host.ts'
import { localError } from './node/remote-errors.ts'
import type { Replica } from './node/replica.ts'
import { ReplicaFeed } from './node/replica-feed.ts'

/** Standby replicas kept when `ClusterConfig.standbys` is not given. */
export const DEFAULT_STANDBYS = 2
/** Most standbys a cluster may ask for. */
export const MAX_STANDBYS = 16
/** Members the leader remembers having let in, until their registry entry stands for them. */
const MAX_ADMITTED = 10_000

export interface MemberTierInit {
  selfId: string
  replica: Replica
  tracker: LeaderTracker
  host: RaftHost
  rpc: Pick<Rpc, 'callRpc'>
  /** This agent's read barrier as a replica (`Client.barrier`), for the read points it serves. */
  barrier(signal?: AbortSignal): Promise<void>
  /** The membership view's status of an agent. */
  status(id: string): MemberStatus | undefined
  storage(): RaftStorage
  /** The configuration may have changed (the member gate reads it again). */
  onConfigChange(): void
  operationTimeoutMs: number
  scheduler: Scheduler
  closed: AbortSignal
  log: Logger
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * The two kinds of agent. A *replica* (a voter or a standby) holds the Raft log and feeds members what it
 * applied (`ReplicaFeed`); a *member* holds no log and writes nothing to disk but its identity: its copy of
 * the state is fed by a replica (`Mirror`), its writes are forwarded to the leader, its linearizable reads
 * take their read point from a replica. The leader decides at join which one an agent is (replicas up to
 * the voter target plus `standbys`), and makes a member a standby when a replica is lost.
 */
export class MemberTier {
  readonly feed: ReplicaFeed
  readonly mirror: Mirror
  /** The standbys this agent keeps when it leads (its `ClusterConfig.standbys`). */
  standbys = DEFAULT_STANDBYS
  private readonly init: MemberTierInit
  /** Members the leader let in (by agent id), admitted to forward before their registration applies. */
  private readonly admitted = new Set<string>()

  constructor(init: MemberTierInit) {
    this.init = init
    const { replica, host, tracker, scheduler } = init
    this.feed = new ReplicaFeed({
      replica,
      runner: host,
      leader: tracker,
      barrier: signal => init.barrier(signal),
      scheduler,
    })
    this.mirror = new Mirror({
      selfId: init.selfId,
      replica,
      tracker,
      call: (peer, op, args, timeoutMs, signal) => this.call(peer, op, args, timeoutMs, signal),
      status: id => init.status(id),
      onChosen: () => this.becomeReplica(),
      operationTimeoutMs: init.operationTimeoutMs,
      scheduler,
      closed: init.closed,
      log: init.log,
    })
  }

  /** Whether this agent is a member now (holds no log, fed by a replica). */
  get isMember(): boolean {
    return this.mirror.active
  }

  /** Joined as a member: fed by the replicas named. */
  becomeMember(replicas: readonly string[]): void {
    this.init.log('joined as a member (no log); replicas: %s', replicas.join(', '))
    this.mirror.start(replicas)
  }

  /** The leader added this member to the configuration: it runs Raft from now on (a snapshot install first). */
  becomeReplica(): void {
    if (!this.mirror.active || this.init.closed.aborted) return
    this.mirror.stop()
    this.init.log('chosen as a standby replica: starting the Raft log')
    this.init.host.start(this.init.storage())
    this.init.onConfigChange()
  }

  /** Leave or stop. */
  stop(): void {
    this.mirror.stop()
  }

  /** The configuration as this agent knows it: its runner's, or as its replica last told it. */
  config(): Config | undefined {
    return this.init.host.current()?.status().config ?? (this.mirror.active ? this.mirror.config : undefined)
  }

  /** On the leader: `agentId` joined as a member (it may forward commands before it registers). */
  admitMember(agentId: string): void {
    if (this.admitted.size >= MAX_ADMITTED) this.admitted.delete(this.admitted.values().next().value ?? '')
    this.admitted.add(agentId)
  }

  /** Whether `peer` takes part in the cluster without being in the configuration: a member. */
  isParticipant(peer: string): boolean {
    if (this.admitted.has(peer)) return true
    // Once registered, always known (a member whose session lapsed must reopen it through a leader that
    // did not let it in); or alive in the membership view, which admits only peers allowed to join.
    if (this.init.replica.state.agent(peer) !== undefined) return true
    const status = this.init.status(peer)
    return status === 'alive' || status === 'suspect'
  }

  /** A client-protocol request to a replica (the protocol the CLI speaks, with the `replica.*` operations). */
  private async call(
    peer: string,
    op: string,
    args: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<unknown> {
    try {
      const answer = await this.init.rpc.callRpc(
        peer,
        CLIENT_PROTOCOL,
        encoder.encode(JSON.stringify({ op, args })),
        { timeoutMs, signal },
      )
      return JSON.parse(decoder.decode(answer))
    } catch (err) {
      throw localError(err)
    }
  }
}
