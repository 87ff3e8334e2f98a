/**
 * The SWIM membership of an agent: the imperative shell around the pure core (`src/swim/swim.ts`). It feeds
 * the core the clock (ticking at `nextTickAt()`), the messages of the network and the local record; it sends
 * what the core drains, and tells the agent about every change of the view.
 *
 * Direct messages go through an `Rpc` endpoint of its own, and dissemination through gossipsub with a
 * direct stand-in (see `swim-wire.ts`); who may claim what is the `ClaimGate`'s (see `claim-gate.ts`). A
 * message that does not decode is counted, logged and dropped; it never throws.
 *
 * Seeding: a member starts by syncing (push-pull) with up to 3 seeds, and announces itself again once its
 * view first holds others. Agents the Raft configuration or the registry name but the view lacks are synced
 * with only after a few probe periods (at a random phase), and without re-announcing this member: every
 * member syncing with each joiner at once and re-announcing itself to all was a storm of dials, full states
 * and signed gossip that stalled a 16-agent cluster on a 2-core machine. Members a seed's answer names
 * that the registry does not know yet are not asked at once either (`NamedMembers`): they enter the view
 * when the registry names them, else they are synced with after the same delay.
 */

import { type Message as PubSubMessage, TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger } from '@libp2p/interface'
import { UnauthorizedError } from '../../errors.ts'
import { PeerIdCache } from '../../net/components.ts'
import { Rpc } from '../../net/rpc.ts'
import { updateSubject } from '../../swim/broadcast-queue.ts'
import { decodeSwimMessage, encodeSwimMessage } from '../../swim/codec.ts'
import { Swim } from '../../swim/swim.ts'
import type {
  DirectMessage,
  LocalFields,
  MemberEvent,
  MemberId,
  MemberInfo,
  MemberRecord,
  MemberStatus,
  SwimConfig,
  SwimMessage,
  Update,
} from '../../swim/types.ts'
import { sameRecordContent } from '../../swim/validate.ts'
import type { Cancel } from '../../time/index.ts'
import { sleep } from '../../time/sleep.ts'
import { learnAddresses } from './address-book.ts'
import { ClaimGate } from './claim-gate.ts'
import type {
  MemberEventListener,
  MembershipInit,
  MembershipRefresh,
  MembershipStats,
} from './membership-init.ts'
import { NamedMembers } from './named-members.ts'
import {
  DIRECT_FANOUT,
  DirectFanout,
  directTargets,
  fitFields,
  type MembershipPubSub,
  SWIM_PROTOCOL,
  swimTopic,
} from './swim-wire.ts'
import { UnseenMembers } from './unseen-members.ts'

/** Push-pull partners at start: one answer brings the whole view, more only cost a dial each. */
const MAX_START_SEEDS = 3

/** How many times a batch is published before it is given up (a gossip round apart). */
const PUBLISH_ATTEMPTS = 5

/** A change of load alone is published at most once per this many probe periods. */
const LOAD_UPDATE_PERIODS = 5

const EMPTY = new Uint8Array(0)

/** The SWIM membership of one agent: start it once the agent is a member, stop it with the agent. */
export class Membership {
  readonly selfId: MemberId
  readonly config: Readonly<SwimConfig>
  private readonly init: MembershipInit
  private readonly log: Logger
  private readonly rpc: Rpc
  private readonly clock: () => number
  private readonly peerIds = new PeerIdCache()
  private readonly listeners = new Set<MemberEventListener>()
  /** Agents named as seeds that the view lacks: when first named, and when last synced with. */
  private readonly unseen: UnseenMembers
  /** Members a push-pull named before the registry knew them, to introduce once it does. */
  private readonly named: NamedMembers
  /** Members that said this one is suspect or dead since its last own news: they get the next directly. */
  private readonly accusedBy = new Set<MemberId>()
  /** What went to whom directly, so that each update goes to each live member once. */
  private readonly fanout = new DirectFanout()
  private readonly counters: MembershipStats = {
    sent: 0,
    pushPulls: 0,
    directGossip: 0,
    sendFailures: 0,
    published: 0,
    publishFallbacks: 0,
    received: 0,
    dropped: 0,
  }
  private swim?: Swim
  /** Who may say what: accusers and the view's pending places (see `ClaimGate`). */
  private readonly claims: ClaimGate
  private starting?: Promise<void>
  private topic = ''
  private pubsub?: MembershipPubSub
  private tickTimer?: Cancel
  private tickDue = Number.POSITIVE_INFINITY
  /**
   * When the next refresh is due, on `clock`. It runs at the core's first tick from then on, not on a timer of
   * its own: the core ticks every probe period anyway, and each wake-up of an idle agent costs more than the
   * work it runs.
   */
  private refreshDue = Number.POSITIVE_INFINITY
  private savedIncarnation = -1
  private loadPublishedAt = Number.NEGATIVE_INFINITY
  /** Whether this run re-announced itself once its view first held other members. */
  private announced = false
  private generation = 0

  constructor(init: MembershipInit) {
    this.init = init
    this.config = Object.freeze({ ...init.config })
    this.selfId = init.components.peerId.toString()
    this.claims = new ClaimGate(this.selfId, this.config.maxPendingMembers)
    this.unseen = new UnseenMembers(this.config.probeInterval, init.random ?? Math.random)
    this.named = new NamedMembers(this.config.maxPendingMembers)
    this.log = init.components.logger.forComponent('conclave:membership')
    const { scheduler } = init
    const origin = scheduler.wallNow() - scheduler.now()
    this.clock = init.clock ?? (() => origin + scheduler.now())
    const callTimeoutMs = Math.max(1000, 4 * this.config.probeInterval)
    this.rpc = new Rpc(init.components, {
      defaultTimeoutMs: callTimeoutMs,
      dialTimeoutMs: callTimeoutMs,
      maxFrameBytes: 4 * 1024 * 1024,
      scheduler,
    })
  }

  /** Whether the membership runs (started and neither stopped nor left). */
  get running(): boolean {
    return this.swim !== undefined
  }

  /**
   * Starts probing and gossiping as `self` in `clusterId`, syncing first with `seeds` (member ids the peer
   * store can dial). On a running membership, only syncs with the seeds it does not know yet.
   */
  async start(options: {
    clusterId: string
    self: Omit<MemberRecord, 'incarnation'>
    seeds?: readonly MemberId[]
  }): Promise<void> {
    if (this.starting !== undefined) {
      await this.starting
      this.seed(options.seeds ?? [], true)
      return
    }
    this.starting = this.open(options).finally(() => {
      this.starting = undefined
    })
    await this.starting
  }

  private async open(options: {
    clusterId: string
    self: Omit<MemberRecord, 'incarnation'>
    seeds?: readonly MemberId[]
  }): Promise<void> {
    if (this.swim !== undefined) {
      this.seed(options.seeds ?? [], true)
      return
    }
    const generation = ++this.generation
    const persisted = this.init.loadIncarnation?.()
    // Above every incarnation of an earlier run: the one it persisted, and the start time in ms.
    const incarnation = Math.max(
      Number.isSafeInteger(persisted) ? (persisted as number) + 1 : 0,
      Math.floor(this.init.scheduler.wallNow()),
    )
    const self = fitFields(options.self)
    await this.rpc.registerRpc(SWIM_PROTOCOL, async (request, from) => {
      if (!(await this.admits(from))) {
        this.counters.dropped++
        throw new UnauthorizedError(`${from} may not take part in the membership`)
      }
      this.receive(from, request, 'direct')
      return EMPTY
    })
    await this.rpc.start()
    if (generation !== this.generation) return
    const swim = new Swim({
      self,
      incarnation,
      now: this.clock(),
      random: this.init.random ?? Math.random,
      config: this.config,
    })
    this.swim = swim
    this.saveIncarnation()
    this.topic = swimTopic(options.clusterId)
    this.subscribe()
    this.refreshDue = this.clock() + this.refreshInterval()
    this.unseen.clear()
    this.named.clear()
    this.announced = false
    const seeds = [...new Set(options.seeds ?? [])].filter(seed => seed !== this.selfId)
    this.claims.reset(this.init.refresh === undefined ? undefined : seeds)
    const first = seeds.slice(0, MAX_START_SEEDS)
    if (first.length > 0) swim.join(first, this.clock())
    this.flush()
    // The rest only if the first ones do not bring them.
    this.seed(seeds.slice(MAX_START_SEEDS))
    this.log('started as %s (incarnation %d) with %d seeds', this.selfId, incarnation, seeds.length)
  }

  /**
   * Leaves gracefully: announces `left`, keeps gossiping until the announcement went out its number of
   * times (or `timeoutMs`), then stops.
   */
  async leave(timeoutMs = 3000): Promise<void> {
    await this.starting
    const swim = this.swim
    if (swim === undefined) return
    swim.leave(this.clock())
    this.flush()
    const { scheduler } = this.init
    const end = scheduler.now() + timeoutMs
    while (this.swim === swim && swim.pendingBroadcasts() > 0 && scheduler.now() < end) {
      await sleep(scheduler, this.config.gossipInterval)
    }
    await this.stop()
  }

  /** Stops without announcing anything: to the others this member fails (a restart refutes that). */
  async stop(): Promise<void> {
    this.generation++
    await this.starting?.catch(() => {})
    const swim = this.swim
    this.tickTimer?.()
    this.tickDue = Number.POSITIVE_INFINITY
    this.refreshDue = Number.POSITIVE_INFINITY
    if (swim !== undefined) {
      this.saveIncarnation()
      this.swim = undefined
      this.unsubscribe()
    }
    await this.rpc.stop()
  }

  /** Calls `listener` with every change of this node's view; returns the unsubscribe function. */
  onEvent(listener: MemberEventListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** One member as this node sees it (`lastSeen` and `statusChangedAt` on `clock`), or undefined. */
  member(id: MemberId): MemberInfo | undefined {
    return this.swim?.member(id)
  }

  /** Every member in the view, this one included, with dead and left ones. */
  members(): MemberInfo[] {
    return this.swim?.members() ?? []
  }

  status(id: MemberId): MemberStatus | undefined {
    return this.swim?.member(id)?.status
  }

  /** How long (ms) `id` has been dead or left in this view; undefined if it is not (or unknown). */
  downFor(id: MemberId): number | undefined {
    const member = this.swim?.member(id)
    if (member === undefined || (member.status !== 'dead' && member.status !== 'left')) return undefined
    return Math.max(0, this.clock() - member.statusChangedAt)
  }

  /** The ids this view holds dead or left. */
  down(): MemberId[] {
    return this.members()
      .filter(member => member.status === 'dead' || member.status === 'left')
      .map(member => member.id)
  }

  /** The clock `lastSeen` and `statusChangedAt` are on, as epoch-like milliseconds. */
  now(): number {
    return this.clock()
  }

  /** Lifeguard's local health score of this node (0 = healthy). */
  localHealth(): number {
    return this.swim?.localHealth() ?? 0
  }

  stats(): MembershipStats {
    return { ...this.counters }
  }

  /**
   * Changes the local record if `fields` differ from it (a new incarnation, gossiped to every member). A
   * change of load alone goes out at most every few probe periods: a busy agent's load changes with every
   * task, and each change is a message to the whole cluster.
   */
  update(fields: LocalFields): void {
    const swim = this.swim
    if (swim === undefined) return
    const self = swim.member(this.selfId)
    if (self === undefined || self.status === 'left') return
    const fitted = fitFields(fields)
    if (sameRecordContent({ ...self, ...fitted }, self)) return
    const now = this.clock()
    const loadOnly = sameRecordContent({ ...self, ...fitted, load: self.load }, self)
    if (loadOnly && now - this.loadPublishedAt < LOAD_UPDATE_PERIODS * this.config.probeInterval) return
    this.loadPublishedAt = now
    swim.updateLocal(fitted, now)
    this.flush()
  }

  /**
   * Syncs (push-pull) with the given agents that the view does not hold: at once if `now`, else once they
   * have stayed unknown for a few probe periods; again every 30 s while they stay unknown.
   */
  seed(ids: readonly MemberId[], now = false): void {
    const swim = this.swim
    if (swim === undefined) return
    const inView = (id: MemberId): boolean => id === this.selfId || swim.member(id) !== undefined
    for (const id of this.unseen.due(ids, this.clock(), now, inView)) this.pushPull(id, swim)
  }

  /**
   * A push-pull request built here rather than through the core's `join`, which would also re-announce this
   * member to everyone: the answer is merged by the core like any other.
   */
  private pushPull(to: MemberId, swim: Swim): void {
    const members = swim
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
    // Not reached (no address yet, a dial that failed): try again after a few probe periods, not 30 s.
    this.send(to, { type: 'pushPull', reply: false, members }, () => {
      if (this.claims.mayAccuse(to)) this.unseen.unreached(to, this.clock())
    })
  }

  // ---------- the core's inputs ----------

  private tick(): void {
    const swim = this.swim
    if (swim === undefined) return
    const now = this.clock()
    if (now >= this.refreshDue) {
      this.refreshDue = now + this.refreshInterval()
      this.refresh()
      if (this.swim !== swim) return
    }
    swim.tick(now)
    this.flush()
  }

  private refreshInterval(): number {
    return this.init.refreshIntervalMs ?? this.config.probeInterval
  }

  private receive(from: MemberId, bytes: Uint8Array, path: 'direct' | 'gossip'): void {
    const swim = this.swim
    if (swim === undefined || from === this.selfId) return
    let message: SwimMessage
    try {
      message = decodeSwimMessage(bytes)
    } catch (err) {
      this.counters.dropped++
      this.log('dropping an undecodable SWIM message from %s: %e', from, err)
      return
    }
    if (path === 'gossip' && message.type !== 'gossip') {
      this.counters.dropped++
      this.log('dropping a direct SWIM message published on the topic by %s', from)
      return
    }
    const vetted = this.claims.vet(from, message, swim, this.init.scheduler.wallNow(), this.unseen.size)
    this.counters.dropped += vetted.refused
    // Members another named are dialled by peer id: their addresses go to the peer store first. They are
    // not asked at once (see `NamedMembers`): introduced when the registry names them, else synced with
    // after the seed delay.
    const { named } = vetted
    if (named.length > 0) {
      for (const entry of named) void this.learnAddresses(entry)
      this.named.hold(named, from)
      this.seed(named.map(entry => entry.id))
    }
    if (vetted.message === undefined) return
    message = vetted.message
    if (accusesMember(message, this.selfId)) this.accusedBy.add(from)
    this.counters.received++
    try {
      swim.receive(from, message, this.clock())
    } catch (err) {
      // The core validates nothing twice: a decoded message is well-formed, so this is a bug; keep running.
      this.log.error('SWIM core refused a message from %s: %e', from, err)
    }
    this.flush()
  }

  private refresh(): void {
    const swim = this.swim
    if (swim === undefined) return
    let wanted: MembershipRefresh | undefined
    try {
      wanted = this.init.refresh?.()
    } catch (err) {
      this.log.error('membership refresh failed: %e', err)
    }
    if (wanted?.fields !== undefined) this.update(wanted.fields)
    this.claims.setAccusers(wanted?.known)
    this.claims.prunePending(swim)
    this.unseen.prune(this.clock(), id => this.claims.mayAccuse(id))
    this.introduceNamed(swim)
    this.seed([...(wanted?.known ?? []), ...this.unseen.waiting()])
    this.saveIncarnation()
  }

  /** Named members the registry now knows enter the view as their namer's push-pull would have had them. */
  private introduceNamed(swim: Swim): void {
    const inView = (id: MemberId): boolean => swim.member(id) !== undefined
    const introductions = this.named.take(
      inView,
      id => this.claims.mayAccuse(id),
      id => this.unseen.has(id),
    )
    if (introductions.size === 0) return
    const now = this.clock()
    for (const [by, members] of introductions) {
      // A reply: merged only, nothing sent back (like any answer it ends the start's join retries: a member
      // that knows the cluster has sent its state).
      swim.receive(by, { type: 'pushPull', reply: true, members }, now)
    }
    this.flush()
  }

  // ---------- the core's outputs ----------

  /** Takes everything the core produced and acts on it, then re-arms the tick timer. */
  private flush(): void {
    const swim = this.swim
    if (swim === undefined) return
    while (swim.hasReady()) {
      const ready = swim.drain()
      for (const send of ready.sends) this.send(send.to, send.message)
      if (ready.broadcasts.length > 0) this.publish(ready.broadcasts)
      for (const event of ready.events) this.deliver(event)
    }
    if (this.swim === swim) this.schedule(swim)
  }

  private schedule(swim: Swim): void {
    // A refresh may wait up to one interval for the core's next tick (a probe period apart at most while there
    // are members to probe), so the two share one wake-up; alone (no member yet) it gets its own.
    const tickAt = swim.nextTickAt()
    const due = tickAt <= this.refreshDue + this.refreshInterval() ? tickAt : this.refreshDue
    if (due === this.tickDue) return
    this.tickTimer?.()
    this.tickDue = due
    if (!Number.isFinite(due)) return
    this.tickTimer = this.init.scheduler.after(Math.max(0, Math.ceil(due - this.clock())), () => {
      this.tickDue = Number.POSITIVE_INFINITY
      this.tick()
    })
  }

  private send(to: MemberId, message: DirectMessage | SwimMessage, onFailure?: () => void): void {
    let bytes: Uint8Array
    try {
      bytes = encodeSwimMessage(message)
    } catch (err) {
      this.log.error('could not encode a SWIM %s for %s: %e', message.type, to, err)
      return
    }
    this.counters.sent++
    if (message.type === 'pushPull' && !message.reply) this.counters.pushPulls++
    else if (message.type === 'gossip') this.counters.directGossip++
    const failed = (err: unknown): void => {
      this.counters.sendFailures++
      this.log.trace('SWIM %s to %s not delivered: %e', message.type, to, err)
      onFailure?.()
    }
    // SWIM's answers are messages of their own (a ping's ack), so its messages go one-way: no empty reply on
    // the wire for each. A send that wants to know it got through (a push-pull's, which then tries again
    // sooner) waits for the handler's answer instead: a refusal or a timeout counts too.
    if (onFailure === undefined) this.rpc.sendOneWay(to, SWIM_PROTOCOL, bytes).catch(failed)
    else this.rpc.callRpc(to, SWIM_PROTOCOL, bytes).then(() => {}, failed)
  }

  private publish(updates: Update[]): void {
    const message: SwimMessage = { type: 'gossip', updates }
    let bytes: Uint8Array
    try {
      bytes = encodeSwimMessage(message)
    } catch (err) {
      this.log.error('could not encode a gossip batch: %e', err)
      return
    }
    const pubsub = this.pubsub
    if (pubsub === undefined) {
      this.sendToLive(updates)
      return
    }
    // What this member says of itself (alive, refutations, left) nobody else can repeat for it: it also goes
    // directly to a few members the publish's flood does not reach (`DIRECT_FANOUT`), so a publish gossipsub
    // accepts and then drops (a mesh not formed yet after a restart) still gets out; push-pull and the
    // registry's seeding repair the views that miss it.
    const own = updates.filter(update => update.type !== 'suspect' && updateSubject(update) === this.selfId)
    if (own.length > 0) {
      this.sendDirect(own, new Set(this.subscribers(pubsub)))
      // The members that said this one is suspect or dead hear the refutation straight away, whatever the
      // flood does: a view that alone holds it dead (a verdict of its own timer, never published) may
      // otherwise keep it so until the next push-pull picks it. Those this view holds dead too: they just
      // spoke, and two views holding each other dead would otherwise never speak again.
      const told = [...this.accusedBy].filter(id => this.status(id) !== undefined)
      this.accusedBy.clear()
      if (told.length > 0)
        this.sendPlanned(
          own,
          told.map(id => ({ id })),
        )
    }
    this.publishOnTopic(pubsub, updates, bytes, PUBLISH_ATTEMPTS)
  }

  /**
   * Publishes `bytes` (the batch `updates`). No subscribed peer yet (just joined, its connections' subscription
   * exchange not done) fails: a few members get the batch directly, and it is published again a gossip round
   * later, up to `attempts` times.
   */
  private publishOnTopic(
    pubsub: MembershipPubSub,
    updates: Update[],
    bytes: Uint8Array,
    attempts: number,
  ): void {
    pubsub.publish(this.topic, bytes).then(
      () => {
        this.counters.published++
      },
      err => {
        this.counters.publishFallbacks++
        this.log.trace('publish on %s failed, sending directly: %e', this.topic, err)
        if (attempts === PUBLISH_ATTEMPTS) this.sendDirect(updates, new Set())
        if (attempts <= 1 || this.pubsub !== pubsub) return
        this.init.scheduler.after(this.config.gossipInterval, () => {
          if (this.pubsub === pubsub) this.publishOnTopic(pubsub, updates, bytes, attempts - 1)
        })
      },
    )
  }

  /** The peers gossipsub knows subscribe to the topic: its publishes flood them. */
  private subscribers(pubsub: MembershipPubSub): MemberId[] {
    try {
      return pubsub.getSubscribers?.(this.topic).map(peer => peer.toString()) ?? []
    } catch {
      return []
    }
  }

  /** `updates` directly to at most `DIRECT_FANOUT` live members, those `reached` does not hold first. */
  private sendDirect(updates: Update[], reached: ReadonlySet<MemberId>): void {
    const targets = directTargets(this.liveOthers(), reached, DIRECT_FANOUT, this.init.random ?? Math.random)
    this.sendPlanned(updates, targets)
  }

  /** The direct stand-in for gossip where there is no gossipsub: every live member (see `DirectFanout`). */
  private sendToLive(updates: Update[]): void {
    this.sendPlanned(updates, this.liveOthers())
  }

  /** The other members this view holds alive or suspect: those a direct copy may reach. */
  private liveOthers(): MemberInfo[] {
    return this.members().filter(member => member.id !== this.selfId && isLive(member.status))
  }

  private sendPlanned(updates: Update[], to: readonly { id: MemberId }[]): void {
    const batches = this.fanout.plan(updates, to)
    for (const [member, batch] of batches) this.send(member, { type: 'gossip', updates: batch })
  }

  private deliver(event: MemberEvent): void {
    if (event.type === 'joined') {
      void this.learnAddresses(event.member)
      // The first members this one hears of (a seed's answer) arrive after its start announcement went out
      // to a view of one; a restarted member must be heard, or it stays dead in the views that missed it.
      if (!this.announced && event.member.id !== this.selfId) {
        this.announced = true
        queueMicrotask(() => {
          if (this.swim?.member(this.selfId)?.status !== 'alive') return
          this.swim.updateLocal({}, this.clock())
          this.flush()
        })
      }
    }
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (err) {
        this.log.error('membership listener failed: %e', err)
      }
    }
  }

  private async learnAddresses(member: Pick<MemberRecord, 'id' | 'addrs'>): Promise<void> {
    const peerStore = this.init.components.peerStore
    if (peerStore === undefined || member.id === this.selfId) return
    await learnAddresses(peerStore, () => this.peerIds.get(member.id), member.addrs, this.log)
  }

  // ---------- plumbing ----------

  private readonly onPubSubMessage = (event: CustomEvent<PubSubMessage>): void => {
    const message = event.detail
    if (message.topic !== this.topic || message.type !== 'signed') return
    this.receive(message.from.toString(), message.data, 'gossip')
  }

  private subscribe(): void {
    let pubsub: MembershipPubSub | undefined
    try {
      pubsub = this.init.pubsub?.()
    } catch {
      pubsub = undefined
    }
    this.pubsub = pubsub
    if (pubsub === undefined) {
      this.log('no gossipsub: membership updates go to every member directly')
      return
    }
    // Garbage is not relayed (and costs its sender gossipsub score), nor gossip from a publisher the
    // policy does not admit: that is ignored, not rejected, unless the publisher sent it itself, as a member
    // relaying it cannot know (it dropped it too, unless its view of the publisher differs).
    pubsub.topicValidators?.set(this.topic, async (peer, message) => {
      if (message.type !== 'signed') return TopicValidatorResult.Reject
      try {
        if (decodeSwimMessage(message.data).type !== 'gossip') return TopicValidatorResult.Reject
      } catch {
        return TopicValidatorResult.Reject
      }
      if (await this.admits(message.from.toString())) return TopicValidatorResult.Accept
      this.counters.dropped++
      return peer.equals(message.from) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
    })
    pubsub.addEventListener('message', this.onPubSubMessage)
    pubsub.subscribe(this.topic)
  }

  private unsubscribe(): void {
    const pubsub = this.pubsub
    this.pubsub = undefined
    if (pubsub === undefined) return
    try {
      pubsub.removeEventListener('message', this.onPubSubMessage)
      pubsub.topicValidators?.delete(this.topic)
      pubsub.unsubscribe(this.topic)
    } catch (err) {
      // gossipsub may already be stopped with the node.
      this.log('could not unsubscribe from %s: %e', this.topic, err)
    }
  }

  private admits(peer: MemberId): boolean | Promise<boolean> {
    return this.init.admit?.(peer) ?? true
  }

  private saveIncarnation(): void {
    const incarnation = this.swim?.incarnation()
    if (incarnation === undefined || incarnation === this.savedIncarnation) return
    try {
      this.init.saveIncarnation?.(incarnation)
      this.savedIncarnation = incarnation
    } catch (err) {
      this.log.error('could not persist the SWIM incarnation: %e', err)
    }
  }
}

/** Alive or suspect: a member that may still answer. */
function isLive(status: MemberStatus | undefined): boolean {
  return status === 'alive' || status === 'suspect'
}

/** Whether `message` says `id` is suspect or dead (what makes the core refute). */
function accusesMember(message: SwimMessage, id: MemberId): boolean {
  switch (message.type) {
    case 'gossip':
      return message.updates.some(
        update => (update.type === 'suspect' || update.type === 'dead') && update.id === id,
      )
    case 'pushPull':
      return message.members.some(
        entry => entry.id === id && (entry.status === 'suspect' || entry.status === 'dead'),
      )
    case 'ping':
      return message.suspectIncarnation !== undefined
    default:
      return false
  }
}
