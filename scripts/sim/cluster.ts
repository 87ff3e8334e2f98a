/**
 * The simulated cluster: the agents (founding voters plus one spare that membership changes can add), their
 * disks and clocks, the network between them and the safety monitor, wired to one scheduler. Each agent is
 * the real node stack (`agent.ts`); crash and restart go through here so the monitor stays in step.
 * Commands a follower forwards to its leader, and the leader's answers, cross the same links (see `link`).
 */

import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import type { Entry, Message, NodeId } from '../../src/raft/types.ts'
import type { ShellBugs } from '../../src/shell-bugs.ts'
import { type AgentCounters, type AgentEnv, emptyState, foundingState, SimAgent } from './agent.ts'
import { AgentClock, type ClockSkew } from './agent-clock.ts'
import { SafetyMonitor } from './invariants.ts'
import { Network } from './network.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK, type Scheduler } from './scheduler.ts'
import { SimStorage } from './sim-storage.ts'

/** The simulator's name for an agent (the fault schedule and the clients use it). */
export type SimNode = SimAgent

export interface ClusterSetup {
  scheduler: Scheduler
  prng: Prng
  /** Founding voters. */
  voters: number
  /** Extra nodes, not members at first, that membership changes may add. */
  spares: number
  raftOptions: Partial<RaftCoreOptions>
  /** `--bug forget-vote`: disks lose the vote at a crash. */
  forgetVote: boolean
  /** Entries applied between two snapshots of an agent's state. */
  snapshotEntries: number
  /** Each agent's clock skew at start (by index), if any. */
  skews?: ClockSkew[]
  /** `--bug no-fail-stop`: the application swallows uncaught exceptions. */
  swallowUncaught: boolean
  /** The agent shell's bug switches (`src/shell-bugs.ts`) every agent runs with. */
  shellBugs: ShellBugs
  /** Results each session keeps for retries (every replica the same; default the state machine's 1,024). */
  maxResultsPerSession?: number
  trace: (line: string) => void
  /** Every agent's session ttl (default `SESSION_TTL_MS`): shorter ttls let sessions end within a run. */
  sessionTtlMs?: number
  /** What each agent's membership view holds dead or left (the leader's session expiries read it); none if absent. */
  down?: (id: NodeId) => string[]
}

/** Every agent's session ttl and operation timeout (virtual ms). */
export const SESSION_TTL_MS = 5000
export const OPERATION_TIMEOUT_MS = 1500

export interface ClusterHooks {
  /** A node sent a message (its Ready's writes are durable). */
  onSend?(node: SimNode, message: Message): void
  onLeader?(node: SimNode, term: number): void
  onCommit?(node: SimNode, previous: number): void
  onCampaign?(node: SimNode): void
  /** A linearizable read asked for a read point, and got one (`read-index-check.ts`). */
  onReadAsked?(node: SimNode, context: string): void
  onReadAnswered?(node: SimNode, context: string, index: number): void
}

export class Cluster {
  readonly scheduler: Scheduler
  readonly monitor: SafetyMonitor
  readonly network: Network
  readonly nodes: SimNode[] = []
  readonly ids: NodeId[]
  readonly founders: NodeId[]
  readonly counters: AgentCounters = {
    snapshotsInstalled: 0,
    compactions: 0,
    entriesApplied: 0,
    readsServed: 0,
    writesForwarded: 0,
    forwardsRefused: 0,
    writesAppliedByFollower: 0,
    writesAnsweredByLeader: 0,
    forwardsFailed: 0,
    peerCommits: 0,
    failStops: 0,
    swallowed: 0,
  }
  readonly hooks: ClusterHooks = {}
  /** A normal entry applied on some agent (the burst checker reads them). */
  onApplied?: (entry: Entry) => void
  /** Extra write latency per node (a slow disk), ms. */
  readonly slowDisks = new Map<NodeId, number>()
  crashes = 0
  restarts = 0
  private readonly byId = new Map<NodeId, SimNode>()
  private readonly diskPrng: Prng
  private readonly prng: Prng
  /** Forwarding: which writes are forwarded, and the fate of each forward and answer on its link. */
  private readonly forwardPrng: Prng
  private readonly trace: (line: string) => void

  constructor(setup: ClusterSetup) {
    this.scheduler = setup.scheduler
    this.prng = setup.prng.stream('cluster')
    this.diskPrng = setup.prng.stream('disk')
    this.forwardPrng = setup.prng.stream('forward')
    this.trace = setup.trace
    this.monitor = new SafetyMonitor(() => this.scheduler.now)
    this.network = new Network(this.scheduler, setup.prng.stream('network'), message => this.deliver(message))
    this.founders = Array.from({ length: setup.voters }, (_, i) => `n${i + 1}`)
    this.ids = [
      ...this.founders,
      ...Array.from({ length: setup.spares }, (_, i) => `n${setup.voters + i + 1}`),
    ]
    const randomRoot = setup.prng.stream('raft')
    const sessionPrng = setup.prng.stream('sessions')
    const env: AgentEnv = {
      scheduler: this.scheduler,
      monitor: this.monitor,
      raftOptions: setup.raftOptions,
      timing: {
        tickMs: MS_PER_TICK,
        snapshotEntries: setup.snapshotEntries,
        sessionTtlMs: setup.sessionTtlMs ?? SESSION_TTL_MS,
        operationTimeoutMs: OPERATION_TIMEOUT_MS,
      },
      counters: this.counters,
      random: (node, incarnation) => randomRoot.stream(`${node}#${incarnation}`).asRandom(),
      sessionId: node => `${node}/${sessionPrng.nextUint32().toString(16).padStart(8, '0')}`,
      send: (node, message) => {
        if (message.type === 'voteResponse' && message.granted)
          this.monitor.observeVote(node.id, message.term, message.to)
        // Sent during a pause (a slow disk write blocked the loop after it): it leaves when the pause ends.
        const clock = node.clock
        if (clock.paused) {
          const epoch = clock.epoch
          this.scheduler.at(clock.pausedUntil, () => {
            if (clock.epoch === epoch) this.network.send(message)
          })
        } else this.network.send(message)
        this.hooks.onSend?.(node, message)
      },
      link: (from, to, arrive, lost) => this.network.carry(from, to, this.forwardPrng, arrive, lost),
      agent: id => this.byId.get(id),
      swallowUncaught: setup.swallowUncaught,
      shellBugs: setup.shellBugs,
      maxResultsPerSession: setup.maxResultsPerSession,
      onApplied: entry => this.onApplied?.(entry),
      onDied: node => {
        this.crashes++
        // The process supervisor starts it again after a while.
        const incarnation = node.incarnation
        this.scheduler.after(this.prng.between(MS_PER_TICK, 30 * MS_PER_TICK), () => {
          if (node.incarnation === incarnation) this.restart(node)
        })
      },
      onLeader: (node, term) => this.hooks.onLeader?.(node, term),
      onCommit: (node, previous) => this.hooks.onCommit?.(node, previous),
      onCampaign: node => this.hooks.onCampaign?.(node),
      onReadAsked: (node, context) => this.hooks.onReadAsked?.(node, context),
      onReadAnswered: (node, context, index) => this.hooks.onReadAnswered?.(node, context, index),
      durableLog: id => this.node(id).disk.durable,
      trace: line => this.trace(line),
      down: setup.down,
    }
    this.ids.forEach((id, i) => {
      const founder = this.founders.includes(id)
      const disk = new SimStorage(founder ? foundingState(this.founders) : emptyState())
      disk.forgetVoteOnCrash = setup.forgetVote
      disk.name = id
      const clock = new AgentClock(this.scheduler, setup.skews?.[i])
      const node = new SimAgent(id, disk, clock, env)
      disk.hooks.writeLatency = () => this.diskDelay(id)
      disk.hooks.onSlowWrite = ms => clock.pauseFor(ms)
      this.nodes.push(node)
      this.byId.set(id, node)
      this.monitor.startNode(id, 0)
    })
  }

  node(id: NodeId): SimNode {
    const node = this.byId.get(id)
    if (!node) throw new Error(`unknown node ${id}`)
    return node
  }

  /** Boots every node at time 0 (the spares too: they wait to be contacted). */
  startAll(): void {
    for (const node of this.nodes) this.boot(node)
  }

  /** Crashes an agent (its disk writes are synchronous: a crash inside one is `SimStorage.arm('crash')`). */
  crash(node: SimNode): void {
    if (!node.up) return
    this.crashes++
    this.trace(`${node.id} crashes${node.role === 'leader' ? ` (leader of term ${node.term})` : ''}`)
    node.crash()
  }

  restart(node: SimNode): void {
    if (node.up || node.decommissioned) return
    this.restarts++
    this.trace(`${node.id} restarts`)
    this.boot(node)
  }

  /**
   * Shuts down for good every node that the cluster no longer counts on: not in the committed configuration
   * (that of the node that applied furthest) nor in the latest configuration of any of its members (which
   * may hold an addition not committed yet). Returns the ids shut down.
   */
  decommissionRemoved(): NodeId[] {
    // A node still booting (restarted, its process not running yet) may hold the newest configuration, and
    // an up node's view may be stale (a removed server stops learning): decide once every node not shut down
    // is up. (3 agents, seeds 61, 144, 257, 380: the sole voter was restarting when the faults stopped, so a
    // removed server's old configuration was taken as the committed one and the voter added back was shut
    // down, leaving a voter set that could elect no one.)
    if (this.nodes.some(node => !node.up && !node.decommissioned)) return []
    let furthest: SimNode | undefined
    for (const node of this.nodes)
      if (node.up && (!furthest || node.applied > furthest.applied)) furthest = node
    if (!furthest) return []
    const committed = furthest.committedConfig
    // Nobody up knows a configuration yet (the agents are still booting): decide later.
    if (committed.voters.length === 0) return []
    const members = new Set([...committed.voters, ...committed.nonVoters])
    const wanted = new Set(members)
    for (const id of members) {
      // A member whose log does not reach the committed configuration holds an older one, which cannot come
      // back (it cannot be elected with that log): a server that only it still lists is gone. (5 agents,
      // seed 102: a member catching up by a slow snapshot kept a removed server up, which took a client's
      // call and held it past the liveness bound.)
      if (this.node(id).lastIndex() < furthest.appliedConfigIndex) continue
      const config = this.node(id).config()
      for (const other of [...(config?.voters ?? []), ...(config?.nonVoters ?? [])]) wanted.add(other)
    }
    const gone = this.nodes.filter(node => !wanted.has(node.id) && !node.decommissioned)
    for (const node of gone) {
      this.crash(node)
      node.decommissioned = true
      this.trace(`${node.id} decommissioned: not a member of the cluster any more`)
    }
    return gone.map(node => node.id)
  }

  /** The live leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined
    for (const node of this.nodes) {
      if (node.up && node.role === 'leader' && (!best || node.term > best.term)) best = node
    }
    return best
  }

  upNodes(): SimNode[] {
    return this.nodes.filter(node => node.up)
  }

  /** Boots an agent after a random pause (its process starting): agents do not tick in lockstep. */
  private boot(node: SimNode): void {
    const incarnation = node.incarnation
    this.scheduler.after(this.prng.between(1, MS_PER_TICK), () => {
      if (node.incarnation === incarnation && !node.up) node.start()
    })
  }

  /** Observes every agent that is up (after each event, once its promise continuations ran). */
  observe(): void {
    for (const node of this.nodes) node.observe()
  }

  private deliver(message: Message): void {
    const node = this.byId.get(message.to)
    if (node?.up) node.clock.run(node.clock.epoch, () => node.receive(message))
  }

  /** How long a write blocks the agent: mostly not at all, now and then a few ms, more on a slow disk. */
  private diskDelay(id: NodeId): number {
    const prng = this.diskPrng
    const base = prng.chance(0.05) ? prng.between(1, 5) : 0
    return base + (this.slowDisks.get(id) ?? 0)
  }
}
