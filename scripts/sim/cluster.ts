/**
 * The simulated cluster: the nodes (founding voters plus one spare that membership changes can add), their
 * disks, the network between them, their tick schedules and the safety monitor, wired to one scheduler.
 * Crash and restart go through here so the tick loops and the monitor stay in step with the nodes.
 * Writes a follower forwards to its leader, and the leader's answers, cross the same links (see `link`).
 */

import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import type { Message, NodeId } from '../../src/raft/types.ts'
import { SimDisk } from './disk.ts'
import { SafetyMonitor } from './invariants.ts'
import { Network } from './network.ts'
import { emptyState, foundingState, type NodeCounters, type NodeEnv, SimNode } from './node.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK, type Scheduler } from './scheduler.ts'

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
  /** Chance that a follower which knows the leader forwards a client write to it rather than redirecting. */
  forwardRate: number
  trace: (line: string) => void
}

export interface ClusterHooks {
  /** A node sent a message (its Ready's writes are durable). */
  onSend?(node: SimNode, message: Message): void
  onLeader?(node: SimNode, term: number): void
  onCommit?(node: SimNode, previous: number): void
  onCampaign?(node: SimNode): void
}

export class Cluster {
  readonly scheduler: Scheduler
  readonly monitor: SafetyMonitor
  readonly network: Network
  readonly nodes: SimNode[] = []
  readonly ids: NodeId[]
  readonly founders: NodeId[]
  readonly counters: NodeCounters = {
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
  }
  readonly hooks: ClusterHooks = {}
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
    const env: NodeEnv = {
      scheduler: this.scheduler,
      monitor: this.monitor,
      options: setup.raftOptions,
      diskDelay: node => this.diskDelay(node.id),
      random: (node, incarnation) => randomRoot.stream(`${node}#${incarnation}`).asRandom(),
      send: (node, message) => {
        if (message.type === 'voteResponse' && message.granted)
          this.monitor.observeVote(node.id, message.term, message.to)
        this.network.send(message)
        this.hooks.onSend?.(node, message)
      },
      appliedOps: new Map(),
      counters: this.counters,
      onLeader: (node, term) => this.hooks.onLeader?.(node, term),
      onCommit: (node, previous) => this.hooks.onCommit?.(node, previous),
      onCampaign: node => this.hooks.onCampaign?.(node),
      shouldForward: () => this.forwardPrng.chance(setup.forwardRate),
      forward: (from, to, request, answer) =>
        this.link(from.id, to, () =>
          this.byId
            .get(to)
            ?.serveForward(from.id, request, reply => this.link(to, from.id, () => answer(reply))),
        ),
      durableLog: id => this.node(id).disk.durable,
      trace: line => this.trace(line),
    }
    for (const id of this.ids) {
      const founder = this.founders.includes(id)
      const disk = new SimDisk(founder ? foundingState(this.founders) : emptyState())
      disk.forgetVoteOnCrash = setup.forgetVote
      const node = new SimNode(id, disk, env, this.prng.between(3, 40))
      this.nodes.push(node)
      this.byId.set(id, node)
      this.monitor.startNode(id, 0)
    }
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

  /**
   * Crashes a node. Half the time a write it had in flight had in fact reached the disk (its sync finished
   * an instant before the crash): durable, yet its messages never left. Raft must cope with both.
   */
  crash(node: SimNode): void {
    if (!node.up) return
    this.crashes++
    const pending = node.disk.pendingWrites
    const synced = pending > 0 && this.prng.chance(0.5) ? this.prng.between(1, pending) : 0
    this.trace(
      `${node.id} crashes${node.role === 'leader' ? ` (leader of term ${node.term})` : ''}${synced > 0 ? ` with ${synced} of ${pending} pending writes synced` : ''}`,
    )
    node.crash(synced)
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
    let furthest: SimNode | undefined
    for (const node of this.nodes)
      if (node.up && (!furthest || node.applied > furthest.applied)) furthest = node
    if (!furthest) return []
    const committed = furthest.committedConfig
    const members = new Set([...committed.voters, ...committed.nonVoters])
    const wanted = new Set(members)
    for (const id of members) {
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

  private boot(node: SimNode): void {
    node.start()
    const incarnation = node.incarnation
    const loop = () => {
      if (node.incarnation !== incarnation || !node.up) return
      node.tick()
      // Timers jitter by a ms either way (no clock runs systematically fast: that would be drift, which
      // only the leader-lease optimisation cares about, and bias every election toward one node).
      this.scheduler.after(MS_PER_TICK + this.prng.between(-1, 1), loop)
    }
    // A random phase: nodes do not tick in lockstep.
    this.scheduler.after(this.prng.between(1, MS_PER_TICK), loop)
  }

  /** Carries forwarded-write traffic over the link `from` -> `to` (see `Network.carry`). */
  private link(from: NodeId, to: NodeId, arrive: () => void): void {
    this.network.carry(from, to, this.forwardPrng, arrive)
  }

  private deliver(message: Message): void {
    const node = this.byId.get(message.to)
    if (node?.up) node.receive(message)
  }

  private diskDelay(id: NodeId): number {
    const prng = this.diskPrng
    const base = prng.chance(0.1) ? prng.between(3, 8) : prng.between(0, 2)
    return base + (this.slowDisks.get(id) ?? 0)
  }
}
