/**
 * The SWIM membership of every agent of a scale run (replicas and members alike): one real core
 * (`src/swim/swim.ts`) per agent, driven on the run's virtual scheduler as the production shell
 * (`src/agent/cluster/membership.ts`) drives it: ticked at `nextTickAt()`, its direct messages carried one
 * way over the simulated links (encoded and decoded by the real codec, with the run's delay, loss and
 * cuts), its broadcast batches published on the gossipsub mesh (`gossip-mesh.ts`), and what a member says
 * of itself (alive, refutations) also sent directly to a few live members in its view (the shell's
 * `DIRECT_FANOUT`, `DirectFanout`). A member re-announces itself once its view first holds another member (as the shell
 * does after its seed's answer). A crash stops the core; a restart builds a new one at a higher incarnation
 * (the shell persists its incarnation) that joins through the seeds.
 *
 * Every probe period an agent syncs with the agents its registry copy names but its view lacks (the shell's
 * refresh, through the real `UnseenMembers`).
 *
 * Modelled, not the shell's code: the seed push-pull goes through the core's `join` (the shell builds the
 * request itself to skip one re-announcement), and the claim gate is left out (every agent here is allowed
 * in). Messages are encoded and decoded by the real codec; their delay is 1-6 ms a trip or hop.
 */

import { DIRECT_FANOUT, DirectFanout, directTargets } from '../../src/agent/cluster/swim-wire.ts'
import { UnseenMembers } from '../../src/agent/cluster/unseen-members.ts'
import { decodeSwimMessage, encodeSwimMessage } from '../../src/swim/codec.ts'
import { Swim } from '../../src/swim/swim.ts'
import type { MemberEvent, MemberStatus, SwimConfig, SwimMessage, Update } from '../../src/swim/types.ts'
import type { Network } from '../sim/network.ts'
import type { Prng } from '../sim/prng.ts'
import type { Scheduler } from '../sim/scheduler.ts'
import { GossipMesh, type MeshLinks } from './gossip-mesh.ts'
import type { TrafficKind } from './traffic.ts'

export interface SwimLayerInit {
  ids: readonly string[]
  scheduler: Scheduler
  prng: Prng
  config: SwimConfig
  /** Gossipsub mesh degree (D). */
  meshDegree: number
  /** Chance that one message (a direct one, or one mesh hop) is lost. */
  loss: number
  /** The run's network: its cuts (partitions) stop SWIM too. */
  network: Network
  book(agent: string, kind: TrafficKind, direction: 'in' | 'out', bytes: number, count?: number): void
  /** Every change of a view: `observer`'s core emitted `events`. */
  onEvents(observer: string, events: MemberEvent[]): void
  /** The agents `id`'s registry copy names (the shell's refresh `known`): unseen ones are synced with. */
  known(id: string): readonly string[]
}

interface SwimAgent {
  index: number
  id: string
  core: Swim | undefined
  /** Bumped at every stop: a stale timer or delivery of an earlier run does nothing. */
  epoch: number
  incarnation: number
  tickAt: number
  fanout: DirectFanout
  announced: boolean
  unseen: UnseenMembers
}

export class SwimLayer {
  private readonly init: SwimLayerInit
  private readonly agents: SwimAgent[]
  private readonly byId = new Map<string, SwimAgent>()
  private readonly mesh: GossipMesh
  private readonly prng: Prng
  /** Picks the members that get a member's own news directly. */
  private readonly fanoutRandom: () => number
  private readonly links: MeshLinks
  /**
   * Set by every event of this layer: they run no promise, so the driver need not let continuations run
   * after them (a macrotask turn per event is most of a large run's cost).
   */
  ranSync = false
  /** Gossip batches published, and direct messages sent. */
  readonly stats = { publishes: 0, directSent: 0, directLost: 0 }

  constructor(init: SwimLayerInit) {
    this.init = init
    this.prng = init.prng.stream('swim-net')
    this.fanoutRandom = init.prng.stream('swim-fanout').asRandom()
    this.agents = init.ids.map((id, index) => ({
      index,
      id,
      core: undefined,
      epoch: 0,
      incarnation: 0,
      tickAt: Number.POSITIVE_INFINITY,
      fanout: new DirectFanout(),
      announced: false,
      unseen: new UnseenMembers(init.config.probeInterval, init.prng.stream(`unseen/${id}`).asRandom()),
    }))
    for (const agent of this.agents) this.byId.set(agent.id, agent)
    this.mesh = new GossipMesh(init.ids.length, init.meshDegree, init.prng.stream('mesh'))
    const ids = init.ids
    this.links = {
      delay: prng => prng.between(1, 6),
      lost: prng => prng.chance(init.loss),
      cut: (from, to) => init.network.isCut(ids[from], ids[to]),
      up: agent => this.agents[agent].core !== undefined,
    }
  }

  /** Starts `id`'s membership (first start or restart), joining through `seeds`. */
  start(id: string, seeds: readonly string[]): void {
    const agent = this.agent(id)
    if (agent.core !== undefined) return
    const now = this.init.scheduler.now
    agent.incarnation++
    agent.announced = false
    agent.fanout = new DirectFanout()
    agent.core = new Swim({
      self: { id, name: id, addrs: [], capabilities: [], labels: {}, role: 'nonvoter', load: 0 },
      incarnation: agent.incarnation,
      now,
      random: this.init.prng.stream(`core/${id}#${agent.incarnation}`).asRandom(),
      config: this.init.config,
    })
    agent.unseen.clear()
    const others = seeds.filter(seed => seed !== id)
    if (others.length > 0) agent.core.join(others, now)
    this.flush(agent)
    this.refreshEvery(agent)
  }

  /**
   * The shell's refresh, every probe period: agents the registry names but the view lacks are synced with
   * (push-pull) after a few periods (`UnseenMembers`), which repairs an announcement every path lost.
   */
  private refreshEvery(agent: SwimAgent): void {
    const epoch = agent.epoch
    const { scheduler, config, ids } = this.init
    const round = (): void => {
      this.ranSync = true
      const core = agent.core
      if (agent.epoch !== epoch || core === undefined) return
      scheduler.after(config.probeInterval, round)
      // A view that holds every agent of the run has nobody unseen (spares reading the registry).
      if (core.viewSize() >= ids.length) return
      const now = scheduler.now
      const inView = (id: string): boolean => id === agent.id || core.member(id) !== undefined
      const due = agent.unseen.due(this.init.known(agent.id), now, false, inView)
      if (due.length === 0) return
      const members = core
        .members()
        .map(({ id, name, addrs, capabilities, labels, role, load, incarnation, status }) => ({
          id,
          name,
          addrs,
          capabilities,
          labels,
          role,
          load,
          incarnation,
          status,
        }))
      for (const to of due) this.send(agent, to, { type: 'pushPull', reply: false, members })
      this.flush(agent)
    }
    scheduler.after(config.probeInterval, round)
  }

  /** The process died: its membership stops without a word. */
  stop(id: string): void {
    const agent = this.agent(id)
    if (agent.core === undefined) return
    // The shell saves its incarnation: the next run starts above any it refuted with.
    agent.incarnation = Math.max(agent.incarnation, agent.core.incarnation())
    agent.core = undefined
    agent.epoch++
    agent.tickAt = Number.POSITIVE_INFINITY
  }

  /** The incarnation `id`'s current run started at (undefined while it is down). */
  incarnationOf(id: string): number | undefined {
    const agent = this.agent(id)
    return agent.core === undefined ? undefined : agent.incarnation
  }

  up(id: string): boolean {
    return this.agent(id).core !== undefined
  }

  /** `subject` as `observer`'s view holds it. */
  status(observer: string, subject: string): MemberStatus | undefined {
    return this.agent(observer).core?.member(subject)?.status
  }

  /** The ids `observer`'s view holds dead or left (the leader's housekeeping reads this). */
  down(observer: string): string[] {
    const core = this.agent(observer).core
    if (core === undefined) return []
    return core
      .members()
      .filter(member => member.status === 'dead' || member.status === 'left')
      .map(member => member.id)
  }

  /** How many others `observer`'s view holds alive. */
  aliveIn(observer: string): number {
    const core = this.agent(observer).core
    if (core === undefined) return 0
    let alive = 0
    for (const member of core.members()) if (member.id !== observer && member.status === 'alive') alive++
    return alive
  }

  private agent(id: string): SwimAgent {
    const agent = this.byId.get(id)
    if (agent === undefined) throw new Error(`unknown agent ${id}`)
    return agent
  }

  /** Takes what the core produced and acts on it, then books its next tick (`membership.ts` `flush`). */
  private flush(agent: SwimAgent): void {
    const core = agent.core
    if (core === undefined) return
    const now = this.init.scheduler.now
    while (core.hasReady()) {
      const ready = core.drain()
      for (const send of ready.sends) this.send(agent, send.to, send.message)
      if (ready.broadcasts.length > 0) this.publish(agent, ready.broadcasts)
      if (ready.events.length > 0) {
        this.init.onEvents(agent.id, ready.events)
        if (!agent.announced && ready.events.some(e => e.type === 'joined' && e.member.id !== agent.id)) {
          agent.announced = true
          const epoch = agent.epoch
          this.init.scheduler.after(0, () => {
            this.ranSync = true
            if (agent.epoch !== epoch || agent.core?.member(agent.id)?.status !== 'alive') return
            agent.core.updateLocal({}, this.init.scheduler.now)
            this.flush(agent)
          })
        }
      }
    }
    const due = core.nextTickAt()
    if (!Number.isFinite(due)) return
    const at = Math.max(Math.ceil(due), now)
    if (at >= agent.tickAt && agent.tickAt > now) return
    agent.tickAt = at
    const epoch = agent.epoch
    this.init.scheduler.at(at, () => {
      this.ranSync = true
      if (agent.epoch !== epoch || agent.tickAt !== at) return
      agent.tickAt = Number.POSITIVE_INFINITY
      agent.core?.tick(this.init.scheduler.now)
      this.flush(agent)
    })
  }

  /** A direct message (`/conclave/swim/1.0.0`), one way over the links. */
  private send(from: SwimAgent, to: string, message: SwimMessage, bytes = encodeSwimMessage(message)): void {
    const target = this.byId.get(to)
    if (target === undefined) return
    const { book, scheduler, network } = this.init
    this.stats.directSent++
    book(from.id, 'swim', 'out', bytes.byteLength)
    if (this.links.lost(this.prng)) {
      this.stats.directLost++
      return
    }
    scheduler.after(this.links.delay(this.prng), () => {
      this.ranSync = true
      if (network.isCut(from.id, to) || target.core === undefined) return
      book(to, 'swim', 'in', bytes.byteLength)
      this.receive(target, from.id, bytes)
    })
  }

  private receive(agent: SwimAgent, from: string, bytes: Uint8Array): void {
    const core = agent.core
    if (core === undefined) return
    core.receive(from, decodeSwimMessage(bytes), this.init.scheduler.now)
    this.flush(agent)
  }

  /** One batch on the gossipsub topic, plus its own-news part directly to every live member once. */
  private publish(from: SwimAgent, updates: Update[]): void {
    const core = from.core!
    const { scheduler, book } = this.init
    this.stats.publishes++
    const own = updates.filter(
      update =>
        update.type !== 'suspect' && (update.type === 'alive' ? update.member.id : update.id) === from.id,
    )
    if (own.length > 0) {
      const live = core
        .members()
        .filter(m => m.id !== from.id && (m.status === 'alive' || m.status === 'suspect'))
      // Every agent here subscribes and is reached by the flood: the shell's few copies go to any live ones.
      const targets = directTargets(live, new Set(), DIRECT_FANOUT, this.fanoutRandom)
      for (const [to, batch] of from.fanout.plan(own, targets))
        this.send(from, to, { type: 'gossip', updates: batch })
    }
    const bytes = encodeSwimMessage({ type: 'gossip', updates })
    const flood = this.mesh.flood(from.index, scheduler.now, this.links, this.prng)
    for (const [agent, count] of flood.sentBy)
      book(this.agents[agent].id, 'swim', 'out', bytes.byteLength, count)
    for (const [agent, count] of flood.receivedBy)
      book(this.agents[agent].id, 'swim', 'in', bytes.byteLength, count)
    for (const { agent, at } of flood.arrivals) {
      const target = this.agents[agent]
      scheduler.at(at, () => {
        this.ranSync = true
        this.receive(target, from.id, bytes)
      })
    }
  }
}
