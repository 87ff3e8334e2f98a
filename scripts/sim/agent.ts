/**
 * One simulated agent made of the real parts of `src/agent/node`: the Raft host and runner over the
 * simulated storage, the replica with the real state machine (`src/state`), the leader tracker, the session
 * keeper and the client with the proposer's retries, forwarding and session deduplication, the real
 * command codec. Only the world around them is simulated: the network (`send`, and the forwarding RPC
 * carried over the same links), the disk (`SimStorage`) and the clocks (`AgentClock`). Composed as
 * `src/agent/service.ts` composes them, minus libp2p, SWIM and the API facades.
 *
 * A crash kills the process: every timer and pending promise of the incarnation is dropped (its callers
 * never hear back), and a restart rebuilds every part from the disk. The simulator observes the agent after
 * each event (`observe`) and checks Raft's invariants from what it sees.
 */

import type { Logger } from '@libp2p/interface'
import { Consensus, unexpected } from '../../src/agent/api/consensus.ts'
import { NamedElection } from '../../src/agent/api/elections.ts'
import { Locks } from '../../src/agent/api/locks.ts'
import { Tasks } from '../../src/agent/api/tasks/tasks.ts'
import { ClusterVersionKeeper } from '../../src/agent/cluster/cluster-version.ts'
import { Directory } from '../../src/agent/cluster/directory.ts'
import { Housekeeping } from '../../src/agent/cluster/housekeeping.ts'
import { KeepAliveClient, KeepAliveServer } from '../../src/agent/cluster/keep-alive.ts'
import type { KeepAliveAnswer } from '../../src/agent/cluster/keep-alive-answer.ts'
import { LeaderDuties } from '../../src/agent/cluster/leader-duties.ts'
import { Lessor } from '../../src/agent/cluster/lessor.ts'
import type { Membership } from '../../src/agent/cluster/membership.ts'
import { Client } from '../../src/agent/node/client.ts'
import { replicaClientContext } from '../../src/agent/node/client-context.ts'
import { LeaderTracker } from '../../src/agent/node/leader-tracker.ts'
import { FORWARD_PROTOCOL, serveForward } from '../../src/agent/node/proposer.ts'
import { RaftHost } from '../../src/agent/node/raft-host.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import { ReplicaFeed } from '../../src/agent/node/replica-feed.ts'
import { SessionKeeper } from '../../src/agent/node/session.ts'
import { type ResolvedTiming, resolveTiming } from '../../src/agent/options.ts'
import type { KvInput, KvOutput } from '../../src/check/index.ts'
import { AbortError } from '../../src/errors.ts'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import {
  ConfigChangeError,
  InvalidRequestError,
  NotLeaderError,
  ProposalDroppedError,
} from '../../src/raft/errors.ts'
import type {
  Config,
  ConfigChange,
  Entry,
  Message,
  NodeId,
  PersistedState,
  Random,
  Role,
  Snapshot,
} from '../../src/raft/types.ts'
import type { ConclaveSecurity } from '../../src/security/security.ts'
import type { ShellBugs } from '../../src/shell-bugs.ts'
import type { Command, CommandResult, StateMachine } from '../../src/state/index.ts'
import { COMMAND_SET_VERSION, encodeEnvelope } from '../../src/state/index.ts'
import { StorageFailedError } from '../../src/storage/errors.ts'
import type { Scheduler as TimeScheduler } from '../../src/time/index.ts'
import type { AgentClock } from './agent-clock.ts'
import type { StoredLog } from './disk.ts'
import { type SafetyMonitor, Violation } from './invariants.ts'
import type { Scheduler } from './scheduler.ts'
import { SimCrash, type SimStorage } from './sim-storage.ts'

/** The agent is down or shut down: the call did nothing (a client tries another agent). */
export class AgentUnavailableError extends Error {
  override name = 'AgentUnavailableError'
}

/** An error a peer threw, as the RPC layer hands it back (`remoteErrorName` reads `remoteName`). */
export class SimRemoteError extends Error {
  override name = 'RpcRemoteError'
  readonly remoteName: string
  constructor(remote: unknown) {
    const error = remote as Error | undefined
    super(error?.message ?? String(remote))
    this.remoteName = error?.name ?? 'Error'
  }
}

export class SimRpcError extends Error {
  constructor(name: 'RpcTimeoutError' | 'RpcConnectionError', message: string) {
    super(message)
    this.name = name
  }
}

export interface AgentCounters {
  snapshotsInstalled: number
  compactions: number
  entriesApplied: number
  readsServed: number
  /** Commands a follower forwarded to its leader (forwarding RPCs sent). */
  writesForwarded: number
  /** Forwarded commands the leader refused to propose (not leader, dropped). */
  forwardsRefused: number
  /** Forwarded commands whose caller was answered by its own replica's apply, before the leader's reply. */
  writesAppliedByFollower: number
  /** Forwarded commands answered by the leader's reply. */
  writesAnsweredByLeader: number
  forwardsFailed: number
  peerCommits: number
  /** Processes that stopped on an uncaught exception (a failed disk write). */
  failStops: number
  /** Uncaught exceptions an embedding application swallowed (`--bug no-fail-stop`). */
  swallowed: number
}

/** What an agent needs from the simulated world. */
export interface AgentEnv {
  readonly scheduler: Scheduler
  readonly monitor: SafetyMonitor
  readonly raftOptions: Partial<RaftCoreOptions>
  /** Timing of every agent (tick length, snapshot interval, session ttl, operation timeout). */
  readonly timing: {
    tickMs: number
    snapshotEntries: number
    sessionTtlMs: number
    operationTimeoutMs: number
  }
  readonly counters: AgentCounters
  /** The core's random source for one incarnation. */
  random(node: NodeId, incarnation: number): Random
  /** A fresh session id for `node` (drawn from the seed). */
  sessionId(node: NodeId): string
  send(from: SimAgent, message: Message): void
  /**
   * Carries `arrive` over the link `from` -> `to`; `lost` instead if the network loses it (the RPC's
   * connection breaks: the caller sees an error, as a reset stream over TCP gives one).
   */
  link(from: NodeId, to: NodeId, arrive: () => void, lost?: () => void): void
  agent(id: NodeId): SimAgent | undefined
  /**
   * The embedding application catches uncaught exceptions and keeps the process running (`--bug
   * no-fail-stop`: then only the runner's own fail-stop stands between a failed write and a false ack).
   */
  readonly swallowUncaught: boolean
  /** The agent shell's bug switches (`src/shell-bugs.ts`): the state machine's, the runner's, the proposer's. */
  readonly shellBugs: ShellBugs
  /** Results each session keeps for retries (the state machine's `maxResultsPerSession`; default 1,024). */
  readonly maxResultsPerSession?: number
  /** A normal entry applied (first or again) on some agent. */
  onApplied?(entry: Entry): void
  /** The process died by itself (a crash in a write, or fail-stop on a storage error). */
  onDied(agent: SimAgent): void
  onLeader(agent: SimAgent, term: number): void
  onCampaign(agent: SimAgent): void
  onCommit(agent: SimAgent, previous: number): void
  /** A linearizable read at this agent asked for a read point, and got one (the read-index check). */
  onReadAsked?(agent: SimAgent, context: string): void
  onReadAnswered?(agent: SimAgent, context: string, index: number): void
  durableLog(id: NodeId): StoredLog
  trace(line: string): void
  /** The ids the agent's membership view holds dead or left (its housekeeping's liveness); none if absent. */
  down?(id: NodeId): string[]
}

const noop = (): void => {}
/** Task slots each simulated agent registers (`createAgent({ concurrency })`). */
export const TASK_SLOTS = 3
const silentLogger = Object.assign(noop, { error: noop, trace: noop, enabled: false }) as unknown as Logger

/** The parts of one incarnation of the agent. */
interface Parts {
  /** The real lock API of `API.md` (`DistributedLock`) on this incarnation's parts. */
  locks: Locks
  replica: SimReplica
  tracker: LeaderTracker
  host: RaftHost
  session: SessionKeeper
  client: Client
  /** The leader's session leases, renewed by the agents' keep-alives over the simulated admin RPC. */
  keepAliveServer: KeepAliveServer
  /** What this replica serves the members that hold no log (`replica.*` of the client protocol). */
  feed: ReplicaFeed
  /** The real named elections of `API.md` (`agent.elections(name)`) on this incarnation's parts. */
  elections: (name: string) => NamedElection
  /** The real task API of `API.md` (`TaskDistributor`), and what a task workload needs next to it. */
  tasks: SimTaskApi
}

/** One incarnation's task API, its registration in the agent registry, its session and its clock. */
export interface SimTaskApi {
  readonly tasks: Tasks
  readonly directory: Directory
  readonly session: SessionKeeper
  readonly client: Client
  /** This incarnation's clock: its timers die with it and wait out its pauses. */
  readonly scheduler: TimeScheduler
  readonly closed: AbortSignal
  /** From now on, every session this incarnation opens registers it in the agent registry. */
  registerOnOpen(): void
}

/** The replica, with the simulator watching what it applies and restores. */
class SimReplica extends Replica {
  onApply: (entry: Entry) => void = noop
  onRestored: (snapshot: Snapshot) => void = noop

  override apply(entry: Entry): ReturnType<Replica['apply']> {
    this.onApply(entry)
    return super.apply(entry)
  }

  override restore(snapshot: Snapshot): void {
    super.restore(snapshot)
    this.onRestored(snapshot)
  }
}

export class SimAgent {
  readonly id: NodeId
  readonly disk: SimStorage
  readonly clock: AgentClock
  private readonly env: AgentEnv
  private readonly timing: ResolvedTiming
  private parts: Parts | undefined
  /** Bumped at every crash. */
  incarnation = 0
  /** Shut down for good by the operator (it was removed from the cluster). */
  decommissioned = false
  role: Role = 'follower'
  term = 0
  leader: NodeId = ''
  commit = 0
  applied = 0
  private appliedConfig: Config = { voters: [], nonVoters: [] }
  /** The log index of `appliedConfig` (the snapshot's index when it came with a snapshot). */
  appliedConfigIndex = 0
  private booting = false
  /** Callers of the forwarding RPCs this incarnation is serving: told when it dies. */
  private resets = new Set<() => void>()

  constructor(id: NodeId, disk: SimStorage, clock: AgentClock, env: AgentEnv) {
    this.id = id
    this.disk = disk
    this.clock = clock
    this.env = env
    this.timing = resolveTiming({
      tickMs: env.timing.tickMs,
      electionTicks: env.raftOptions.electionTicks,
      heartbeatTicks: env.raftOptions.heartbeatTicks,
      sessionTtlMs: env.timing.sessionTtlMs,
      operationTimeoutMs: env.timing.operationTimeoutMs,
      snapshotEntries: env.timing.snapshotEntries,
    })
    clock.onUncaught = error => this.uncaught(error)
    disk.hooks = {
      onWrite: (prevTerm, update) => env.monitor.observeWrite(this.id, prevTerm, update.entries),
      onCompact: snapshot => {
        env.counters.compactions++
        env.trace(`${this.id} compacts its log at ${snapshot.meta.index}`)
      },
    }
  }

  get up(): boolean {
    return this.parts !== undefined
  }

  /** The log as written: what the invariants read. */
  get log(): StoredLog {
    return this.disk.written
  }

  /** Boots the agent from its disk (first start or restart). */
  start(): void {
    if (this.parts || this.decommissioned) return
    const env = this.env
    // Everything of this incarnation runs on its own view of the clock: dropped at its crash.
    const clock = this.clock.view()
    const id = this.id
    const state: PersistedState = this.disk.load()
    const snapshotIndex = state.snapshot?.meta.index ?? 0
    const replica = new SimReplica({ maxResultsPerSession: env.maxResultsPerSession }, env.shellBugs)
    const tracker = new LeaderTracker(clock)
    const closed = new AbortController().signal
    const host: RaftHost = new RaftHost({
      selfId: id,
      replica,
      tracker,
      timing: this.timing,
      raftOptions: env.raftOptions,
      random: env.random(id, this.incarnation),
      log: silentLogger,
      send: message => env.send(this, message),
      onConfigChange: applied => {
        if (applied !== undefined) this.configApplied(applied.config, applied.index)
      },
      admit: () => true,
      isMember: () => true,
      closed,
      scheduler: clock,
      bugs: env.shellBugs,
      // The runner stopped for good on a storage error: the process stops, and its supervisor restarts it
      // from what is really on its disk (as the agent's owner does: `service.ts` stops the agent).
      onFailStop: error => this.failStopped(error),
      observeReads: {
        asked: context => env.onReadAsked?.(this, context),
        answered: (context, index) => env.onReadAnswered?.(this, context, index),
      },
    })
    const lessor = new Lessor()
    const keepAliveServer = new KeepAliveServer({
      selfId: id,
      lessor,
      leader: tracker,
      host,
      session: sessionId => replica.state.session(sessionId),
      scheduler: clock,
      timeoutMs: this.timing.sessionTtlMs / 4,
      batchMs: this.timing.tickMs * this.timing.heartbeatTicks,
      closed,
    })
    const keepAlives = new KeepAliveClient({
      selfId: id,
      leader: tracker,
      call: (peer, sessionId, timeoutMs) => this.callKeepAlive(peer, sessionId, timeoutMs),
      local: keepAliveServer,
      // Every simulated agent runs the lessor: never reached.
      legacy: async () => {
        throw new Error('no agent without the lessor in the simulator')
      },
      scheduler: clock,
      closed,
    })
    const session = new SessionKeeper(
      id,
      this.timing,
      {
        submitRaw: (command, deadline) => client.submitRaw(command, deadline),
        keepAlive: (sessionId, deadline) => keepAlives.keepAlive(sessionId, deadline),
      },
      silentLogger,
      clock,
      () => env.sessionId(id),
    )
    const client: Client = new Client(
      replicaClientContext({
        selfId: id,
        tracker,
        host,
        replica,
        session,
        rpc: {
          callRpc: (peer, protocol, request, options) => this.callRpc(peer, protocol, request, options),
        },
        authorization: { authorizeOwn: noop },
        // Every simulated agent runs the same command-set version.
        admitCommand: noop,
        bugs: env.shellBugs,
        operationTimeoutMs: this.timing.operationTimeoutMs,
        scheduler: clock,
        closed,
      }),
    )
    replica.onEvent(event => {
      if ((event.type === 'sessionExpired' || event.type === 'sessionClosed') && event.agentId === id) {
        session.ended(event.sessionId)
      }
    })
    replica.onApply = entry => this.observeApply(entry)
    replica.onRestored = snapshot => this.observeRestore(snapshot)
    const locks = new Locks({ client, replica, session, timing: this.timing, closed, scheduler: clock })
    const tasks = new Tasks({
      selfId: id,
      client,
      replica,
      session,
      closed,
      concurrency: TASK_SLOTS,
      log: silentLogger,
      scheduler: clock,
      leaseSafetyMarginMs: this.timing.leaseSafetyMarginMs,
    })
    // The real registry entry (`Directory.register`); libp2p's parts it also holds (addresses, peer store,
    // membership view, security) are never reached by registering: the simulator has none of them.
    const directory = new Directory({
      selfId: id,
      name: id,
      capabilities: [],
      labels: {},
      concurrency: TASK_SLOTS,
      runsTasks: () => tasks.slotOffer.runsTasks,
      addresses: () => [],
      peerStore: { merge: () => Promise.reject(new Error('no peer store in the simulator')) },
      replica,
      runner: host,
      membership: {} as Membership,
      security: {} as ConclaveSecurity,
      commit: client,
      logger: { forComponent: () => silentLogger },
      listDeadForMs: 0,
    })
    // As `service.ts`: every session this agent opens registers it, with its current slot offer; only once a
    // task workload uses the agent (`registerOnOpen`), so that runs without one write what they always did.
    const registerOnOpen = (): void => {
      session.afterOpen = async sessionId => {
        tasks.slotOffer.registered(await directory.register(sessionId))
      }
    }
    // The real keeper of the cluster version: every simulated agent runs the same command-set version, so the
    // first leader raises the cluster to it, and the commands of every version run under faults.
    const clusterVersion = new ClusterVersionKeeper({
      selfId: id,
      replica,
      runner: host,
      admin: async () => ({ clusterId: 'sim', version: COMMAND_SET_VERSION }),
      commit: client,
      scheduler: clock,
      closed,
      log: silentLogger,
    })
    // The leader's housekeeping: session expiries from its lessor, lock expiries timed on its monotonic clock.
    const housekeeping = new Housekeeping({
      selfId: id,
      host,
      replica,
      liveness: { down: () => env.down?.(id) ?? [] },
      duties: new LeaderDuties(client, silentLogger),
      lessor,
      voters: { keep: noop },
      clusterVersion,
      joining: { rejoinIfRemoved: noop },
      scheduler: clock,
      intervalMs: Math.max(this.timing.tickMs, 50),
      // A run lasts seconds: an assignment not started is taken back within half a second.
      stalledAssignmentMs: 500,
    })
    const feed = new ReplicaFeed({
      replica,
      runner: host,
      leader: tracker,
      barrier: signal => client.barrier(signal),
      scheduler: clock,
    })
    const elections = (name: string): NamedElection =>
      new NamedElection(name, { selfId: id, client, replica, session, closed, scheduler: clock })
    this.parts = {
      locks,
      replica,
      tracker,
      host,
      session,
      client,
      keepAliveServer,
      feed,
      elections,
      tasks: { tasks, directory, session, client, scheduler: clock, closed, registerOnOpen },
    }
    this.role = 'follower'
    this.leader = ''
    this.term = state.hardState.term
    this.commit = Math.max(state.hardState.commit, snapshotIndex)
    this.applied = snapshotIndex
    this.appliedConfig = state.snapshot?.meta.config ?? { voters: [], nonVoters: [] }
    this.appliedConfigIndex = snapshotIndex
    if (this.incarnation > 0) env.monitor.observeRestart(id, snapshotIndex, state.hardState.commit)
    this.booting = true
    try {
      host.start(this.disk)
    } finally {
      this.booting = false
    }
    housekeeping.start()
    if (this.incarnation > 0) {
      // Queued after the runner's first Ready: it must have re-applied up to the recovery point.
      clock.after(0, () => env.monitor.observeReadyDone(id))
    }
  }

  /** The process dies: everything not on disk is gone, every pending call of it never returns. */
  crash(): void {
    if (!this.parts) return
    this.parts = undefined
    this.incarnation++
    this.clock.kill()
    const resets = [...this.resets]
    this.resets = new Set()
    for (const reset of resets) this.env.link(this.id, this.id, reset, reset)
    const lost = this.disk.stats.lostCommits
    this.disk.crash()
    this.role = 'follower'
    this.leader = ''
    this.env.monitor.observeCrash(this.id)
    if (this.disk.stats.lostCommits > lost) {
      // The storage may lose a commit-only write at a crash (RaftStorage allows it): the agent comes back
      // with an older commit index and relearns it, so its recovery point may lie below what it had applied.
      const durable = this.disk.durable
      this.env.monitor.startNode(this.id, durable.snapshotIndex)
      this.env.monitor.observeCrash(this.id)
    }
  }

  /**
   * The runner fail-stopped on a failed write. A crash inside the write (`SimCrash`, which the runner wraps)
   * is the process dying there; any other storage error stops the agent, and the process exits with it.
   */
  private failStopped(error: StorageFailedError): void {
    if (!this.parts) return
    if (error.cause instanceof SimCrash) {
      this.env.trace(`${this.id} dies in the middle of a disk write`)
    } else {
      this.env.counters.failStops++
      this.env.trace(`${this.id} fail-stops on ${error.name}: ${error.message}`)
    }
    this.crash()
    this.env.onDied(this)
  }

  private uncaught(error: unknown): void {
    // A checker fired inside the agent's code: the run's verdict, never the application's to swallow.
    if (error instanceof Violation) throw error
    if (error instanceof SimCrash) {
      this.env.trace(`${this.id} dies in the middle of a disk write`)
      this.crash()
      this.env.onDied(this)
      return
    }
    if (this.env.swallowUncaught) {
      this.env.counters.swallowed++
      this.env.trace(
        `${this.id}: uncaught ${(error as Error)?.name} swallowed by the application; it runs on`,
      )
      return
    }
    if (error instanceof StorageFailedError) {
      // Node's default for an uncaught exception: the process exits (fail-stop); it restarts from its disk.
      this.env.counters.failStops++
      this.env.trace(`${this.id} stops on ${error.name}: ${error.message}`)
      this.crash()
      this.env.onDied(this)
      return
    }
    throw error
  }

  /** A Raft message the network delivers (the agent is up and not paused: see `AgentClock.run`). */
  receive(message: Message): void {
    const runner = this.runner()
    // A peer's copy of its acknowledgement may let a follower commit before the leader tells it.
    const peerAck = runner !== undefined && message.type === 'appendResponse' && this.role === 'follower'
    const before = peerAck ? runner.status().commit : 0
    void this.parts?.host.receive(message, message.from)
    if (peerAck && runner.status().commit > before) this.env.counters.peerCommits++
  }

  // ---------- what the simulator reads and does (as an operator would) ----------

  private runner() {
    return this.parts?.host.current()
  }

  config(): Config | undefined {
    return this.runner()?.status().config
  }

  get committedConfig(): Config {
    return this.appliedConfig
  }

  lastIndex(): number {
    return this.runner()?.status().lastIndex ?? 0
  }

  transferLeadership(to: NodeId): boolean {
    const runner = this.runner()
    if (!runner) return false
    try {
      runner.transferLeadership(to)
    } catch (error) {
      if (isRefusal(error)) return false
      throw error
    }
    return true
  }

  /** Proposes a membership change on this agent (its leader); returns whether the core took it. */
  changeConfig(change: ConfigChange): boolean {
    const runner = this.runner()
    if (!runner) return false
    // The runner turns the core's refusal into a rejected promise: whether the core took the change shows
    // in its log, which grew by the configuration entry.
    const before = runner.status().lastIndex
    runner.proposeConfigChange(change).catch(error => {
      if (
        !isRefusal(error) &&
        !(error instanceof Error && /superseded|snapshot|closed/i.test(error.message))
      ) {
        this.env.trace(`${this.id}: configuration change ${change.type} ${change.node} failed: ${error}`)
      }
    })
    return runner.status().lastIndex > before
  }

  campaign(): void {
    this.runner()?.campaign()
  }

  /** The real runner compacts on its own (`snapshotEntries`): an operator cannot force it. */
  maybeCompact(_force = false): boolean {
    return false
  }

  /** A write of the fault schedule's own (figure 8): a plain put proposed on this agent as leader. */
  nemesisWrite(key: string, value: string): void {
    const runner = this.runner()
    if (!runner) return
    const data = encodeEnvelope({ ts: this.clock.wallNow(), command: { type: 'put', key, value } })
    runner.propose(data).catch(noop)
  }

  // ---------- the API a client uses ----------

  /** A KV operation through the real client path: a write through the log, a read at a ReadIndex barrier. */
  async kv(input: KvInput): Promise<KvOutput> {
    const parts = this.parts
    if (!parts || this.decommissioned) throw new AgentUnavailableError(`${this.id} is down`)
    // Not in its own configuration: removed (or never added), its idea of the leader may be long stale.
    const config = this.config()
    if (config === undefined || !(config.voters.includes(this.id) || config.nonVoters.includes(this.id))) {
      throw new AgentUnavailableError(`${this.id} is not a member`)
    }
    const { client, replica } = parts
    if (input.op === 'get') {
      await client.barrier()
      const entry = replica.state.get(input.key)
      this.env.counters.readsServed++
      return entry === undefined ? {} : { value: entry.value as string }
    }
    const result = await client.submit(kvCommand(input))
    // As the KV API (`api/consensus.ts`) does: a retry the session no longer has the answer of reports an
    // unknown outcome (`NoLeaderError`), which the client takes as such (small result windows, window-clients.ts).
    if (result.type === 'error' && result.code === 'StaleRequest') throw unexpected(result)
    switch (result.type) {
      case 'revision':
        return {}
      case 'txn':
        return { ok: result.succeeded }
      default:
        throw new UnexpectedResultError(input, result)
    }
  }

  /**
   * A put through the client path, its raw result (the burst of `session-window`: many commands of one
   * session in flight, so that a retry may come after more than the session keeps results for).
   */
  async submitPut(key: string, value: string): Promise<CommandResult> {
    const parts = this.parts
    if (!parts || this.decommissioned) throw new AgentUnavailableError(`${this.id} is down`)
    return parts.client.submit({ type: 'put', key, value })
  }

  /** The agent's lock API (as `agent.locks`), while it is up. */
  locks(): Locks {
    const parts = this.parts
    if (!parts || this.decommissioned) throw new AgentUnavailableError(`${this.id} is down`)
    return parts.locks
  }

  /**
   * The agent's consensus API (as `agent.consensus`: transactions, lists, ephemeral puts), its session keeper
   * and its replicated state, while it is up: the KV workloads call the first and observe the others.
   */
  kvApi(): { consensus: Consensus; session: SessionKeeper; state: StateMachine } {
    const parts = this.parts
    if (!parts || this.decommissioned) throw new AgentUnavailableError(`${this.id} is down`)
    return {
      consensus: new Consensus(parts.client, parts.replica, new AbortController().signal),
      session: parts.session,
      state: parts.replica.state,
    }
  }

  /** A named election through the agent's real API (as `agent.elections(name)`), while it is up. */
  elections(name: string): NamedElection {
    const parts = this.parts
    if (!parts || this.decommissioned) throw new AgentUnavailableError(`${this.id} is down`)
    return parts.elections(name)
  }

  /**
   * The agent's session as its own code sees it: its id ('' when none) and until when (its monotonic clock)
   * it trusts the session to be alive (`SessionKeeper.validUntil`, what `isHeld()` also checks).
   */
  sessionView(): { id: string; validUntil: number } | undefined {
    const session = this.parts?.session
    return session && { id: session.id, validUntil: session.validUntil() }
  }

  /** The agent's task API (as `agent.tasks`) and its registration, while it is up. */
  tasks(): SimTaskApi {
    const parts = this.parts
    if (!parts || this.decommissioned) throw new AgentUnavailableError(`${this.id} is down`)
    return parts.tasks
  }

  /** The state this agent's replica applied, while it is up (what a checker reads, as an operator would). */
  stateMachine(): StateMachine | undefined {
    return this.parts?.replica.state
  }

  // ---------- the forwarding RPC over the simulated network ----------

  private callRpc(
    peer: string,
    protocol: string,
    request: Uint8Array,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<Uint8Array> {
    if (protocol !== FORWARD_PROTOCOL) return Promise.reject(new Error(`no ${protocol} in the simulator`))
    this.env.counters.writesForwarded++
    const bytes = request.slice()
    return this.overLink(
      peer,
      options.timeoutMs ?? this.timing.operationTimeoutMs,
      options.signal,
      (leader, broken) =>
        leader.serveForward(this.id, bytes, broken).catch(error => {
          if (error instanceof NotLeaderError || error instanceof ProposalDroppedError)
            this.env.counters.forwardsRefused++
          throw error
        }),
    )
  }

  /** A keep-alive to `peer`'s lessor over the admin protocol (`keepAliveCall`), through the network. */
  private callKeepAlive(peer: string, sessionId: string, timeoutMs: number): Promise<KeepAliveAnswer> {
    return this.overLink(peer, timeoutMs, undefined, agent => agent.serveKeepAlive(sessionId, this.id))
  }

  /** An RPC to `peer` over the simulated links: the request's trip, `serve` on the peer, the answer's trip. */
  private overLink<T>(
    peer: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    serve: (agent: SimAgent, broken: () => void) => Promise<T>,
  ): Promise<T> {
    const env = this.env
    const incarnation = this.incarnation
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const settle = (fn: () => void): void => {
        if (settled || this.incarnation !== incarnation) return
        settled = true
        cancel()
        fn()
      }
      const cancel = this.clock.after(timeoutMs, () =>
        settle(() => reject(new SimRpcError('RpcTimeoutError', 'the call timed out'))),
      )
      // As the real RPC layer (`net/rpc.ts`) does: the caller's abort is the API's `AbortError`, which the
      // proposer passes on and its callers clean up after (a DOMException was taken for a failure).
      signal?.addEventListener('abort', () => settle(() => reject(new AbortError())), { once: true })
      const broken = (): void =>
        settle(() => reject(new SimRpcError('RpcConnectionError', `the connection to ${peer} broke`)))
      const back = (fn: () => void): void => env.link(peer, this.id, () => settle(fn), broken)
      env.link(
        this.id,
        peer,
        () => {
          const agent = env.agent(peer)
          if (agent === undefined || !agent.up) {
            back(() => reject(new SimRpcError('RpcConnectionError', `${peer} is down`)))
            return
          }
          serve(agent, broken).then(
            answer => back(() => resolve(answer)),
            error => back(() => reject(new SimRemoteError(error))),
          )
        },
        broken,
      )
    })
  }

  /** The leader's keep-alive handler (as `admin-server.ts`, without the security gates). */
  serveKeepAlive(sessionId: string, from: NodeId): Promise<KeepAliveAnswer> {
    const parts = this.parts
    if (!parts) return new Promise(() => {})
    return parts.keepAliveServer.serve(sessionId, from)
  }

  /**
   * A member's `replica.*` client-protocol request (as `api/client-protocol.ts` dispatches it to the feed);
   * `closed` ends a long poll when this incarnation dies.
   */
  serveFeed(op: string, args: Record<string, unknown>): Promise<unknown> {
    const parts = this.parts
    if (!parts) return new Promise(() => {})
    switch (op) {
      case 'replica.entries':
        return parts.feed.entries(args.fromIndex, args.waitMs)
      case 'replica.snapshot':
        return Promise.resolve().then(() => parts.feed.snapshot(args.index, args.offset))
      case 'replica.readIndex':
        return parts.feed.readIndex()
      default:
        return Promise.reject(new Error(`no ${op} in the simulator`))
    }
  }

  /**
   * The leader's forwarding handler (as `cluster/forwarding.ts`, without the security gates). If this agent
   * dies before it answers, `reset` tells the caller (its connection breaks) after a trip.
   */
  serveForward(from: NodeId, request: Uint8Array, reset: () => void): Promise<Uint8Array> {
    const parts = this.parts
    if (!parts) return new Promise(() => {})
    const { tracker, host } = parts
    const resets = this.resets
    resets.add(reset)
    return serveForward(
      {
        selfId: this.id,
        leader: () => tracker.leader,
        scheduler: this.clock,
        proposeLocal: data => host.proposeLocal(data, from),
      },
      request,
    ).finally(() => resets.delete(reset))
  }

  // ---------- observation ----------

  private observeApply(entry: Entry): void {
    if (entry.index <= this.applied) return
    if (entry.type === 'normal' && entry.data.length > 0) this.env.onApplied?.(entry)
    this.env.monitor.observeApply(this.id, entry)
    this.applied = entry.index
    this.env.counters.entriesApplied++
  }

  private configApplied(config: Config, index: number): void {
    if (index <= this.applied) return
    const entry = this.disk.written.entryAt(index)
    if (entry === undefined) {
      throw new Violation(
        'applied-index',
        this.env.scheduler.now,
        `${this.id} applied configuration entry ${index} it does not hold`,
      )
    }
    this.observeApply(entry)
    this.appliedConfig = config
    this.appliedConfigIndex = index
  }

  private observeRestore(snapshot: Snapshot): void {
    if (this.booting) return
    const { index, term } = snapshot.meta
    this.env.monitor.observeRestore(this.id, index, term)
    this.applied = index
    this.appliedConfig = snapshot.meta.config
    this.appliedConfigIndex = index
    this.env.counters.snapshotsInstalled++
    this.env.trace(`${this.id} installs a snapshot at ${index}/${term}`)
  }

  /** Reads the core's state after an event: role and leader changes, commits, for the monitor and the faults. */
  observe(): void {
    const runner = this.runner()
    if (!runner) return
    const status = runner.status()
    const env = this.env
    const monitor = env.monitor
    if (status.role !== this.role || status.term !== this.term || status.leader !== this.leader) {
      const elected = status.role === 'leader' && (this.role !== 'leader' || status.term !== this.term)
      const campaigning =
        status.role !== this.role && (status.role === 'preCandidate' || status.role === 'candidate')
      this.role = status.role
      this.term = status.term
      this.leader = status.leader
      if (elected) {
        env.trace(`${this.id} becomes leader in term ${status.term}`)
        env.onLeader(this, status.term)
      } else {
        env.trace(`${this.id} is ${status.role} in term ${status.term}, leader '${status.leader}'`)
        if (campaigning) env.onCampaign(this)
      }
    }
    // A leader counts once its term and vote are on disk: the core elects itself in memory (a sole voter in
    // the same step as it campaigns) and the runner sends nothing as leader before that write; a process that
    // dies inside it was never anyone's leader, and may vote again in that term after its restart (5 agents,
    // seed 620: a sole voter elected in term 5 died in the write of its vote, and voted for another).
    if (status.role === 'leader') {
      if (this.disk.written.hardState.term >= status.term)
        monitor.observeLeader(this.id, status.term, this.disk.written)
    } else monitor.observeNotLeader(this.id)
    if (status.commit > this.commit) {
      const previous = this.commit
      this.commit = status.commit
      monitor.observeCommit(status.term, status.commit, this.disk.written)
      if (status.role === 'leader') {
        const term = this.disk.written.termAt(status.commit)
        if (term !== undefined) {
          monitor.observeLeaderCommit(this.id, status.commit, term, status.config.voters, id =>
            env.durableLog(id),
          )
        }
        env.onCommit(this, previous)
      }
    }
  }
}

/** A result a KV command never has: the simulator reports it as a violation. */
export class UnexpectedResultError extends Error {
  override name = 'UnexpectedResultError'
  constructor(input: KvInput, result: CommandResult) {
    super(`${input.op}(${input.key}) answered ${JSON.stringify(result)}`)
  }
}

/** The checker's KV operation as the state machine's command: a compare-and-set is a transaction. */
export function kvCommand(input: Exclude<KvInput, { op: 'get' }>): Command {
  switch (input.op) {
    case 'put':
      return { type: 'put', key: input.key, value: input.value }
    case 'delete':
      return { type: 'delete', key: input.key }
    case 'cas':
      return {
        type: 'txn',
        compare: [
          input.expected === undefined
            ? { key: input.key, target: 'exists', op: '==', value: false }
            : { key: input.key, target: 'value', op: '==', value: input.expected },
        ],
        success: [{ type: 'put', key: input.key, value: input.value }],
      }
  }
}

/** The errors by which the core declines a request without anything having gone wrong. */
function isRefusal(error: unknown): boolean {
  return (
    error instanceof NotLeaderError ||
    error instanceof ProposalDroppedError ||
    error instanceof ConfigChangeError ||
    error instanceof InvalidRequestError
  )
}

/** What a founding member finds on disk: a snapshot at 0 with the initial configuration. */
export function foundingState(voters: NodeId[]): PersistedState {
  return {
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: {
      meta: { index: 0, term: 0, config: { voters: [...voters], nonVoters: [] } },
      data: new Uint8Array(0),
    },
    entries: [],
  }
}

/** What an agent that will be added to a running cluster finds on disk: nothing. */
export function emptyState(): PersistedState {
  return { hardState: { term: 0, vote: '', commit: 0 }, entries: [] }
}
