/**
 * The SWIM membership of an agent: the imperative shell around the pure core (`src/swim/swim.ts`). It feeds
 * the core the clock (ticking at `nextTickAt()`), the messages of the network and the local record; it sends
 * what the core drains, and tells the agent about every change of the view.
 *
 * Direct messages (ping, ack, ping-req, nack, push-pull) travel on `/conclave/swim/1.0.0` through an `Rpc`
 * endpoint of its own, used fire-and-forget: the reply is empty and ignored, the core's own acks are separate
 * messages. Rpc already gives what a probe path needs: one long-lived stream per peer (no stream set-up per
 * probe), framing with a size bound, the authenticated sender, a malformed frame resetting only that stream,
 * and timeouts that free whatever a paused peer never answers. A hand-written one-way stream would have to
 * redo all of it to save a few bytes of empty reply per message.
 *
 * Dissemination: each batch the core hands out is published as one `gossip` message on the gossipsub topic
 * `conclave/<clusterId>/swim/1.0.0` (each update ceil(log10(n + 1)) times with the agent's presets: gossipsub
 * floods every publish by itself). What a member says of itself (alive, refutations, left) also goes to every
 * live member directly, once: nobody else may repeat it, and gossipsub can accept a publish and still drop
 * it (a peer it scores low, a mesh not formed yet after a restart). Where there is no gossipsub or a publish
 * fails, the whole batch goes directly, each update once per member. A message that does not decode is
 * counted, logged and dropped; it never throws.
 *
 * Claims (`src/swim/claims.ts`): what a member says of itself (alive, left, refutations) is taken only from
 * that member (the authenticated publisher or sender), on every path; accusations only from members the
 * Raft configuration or the registry name (`refresh().known`, and the start seeds until it names any);
 * incarnations only within a bound of the known one and the wall clock. A push-pull entry about another
 * member never changes one in the view: a member the view lacks is asked directly, and introduced at
 * incarnation 0 (its own word outranks that) if the cluster knows it and the sender may accuse. The view
 * admits members the configuration or the
 * registry name (up to `maxMembers`), and at most `maxPendingMembers` live others (joiners whose
 * registration has not arrived yet).
 *
 * Seeding: a member starts by syncing (push-pull) with up to 3 seeds, and announces itself again once its
 * view first holds others. Agents the Raft configuration or the registry name but the view lacks are synced
 * with only after a few probe periods (at a random phase), and without re-announcing this member: every
 * member syncing with each joiner at once and re-announcing itself to all was a storm of dials, full states
 * and signed gossip that stalled a 16-agent cluster on a 2-core machine.
 */

import { type Message as PubSubMessage, TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger } from '@libp2p/interface'
import { UnauthorizedError } from '../../errors.ts'
import { PeerIdCache } from '../../net/components.ts'
import { Rpc } from '../../net/rpc.ts'
import { updateSubject } from '../../swim/broadcast-queue.ts'
import { type ClaimContext, vetMessage } from '../../swim/claims.ts'
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
  PushPullEntry,
  SwimConfig,
  SwimMessage,
  Update,
} from '../../swim/types.ts'
import { sameRecordContent } from '../../swim/validate.ts'
import type { Cancel } from '../../time/index.ts'
import { sleep } from '../../time/sleep.ts'
import { learnAddresses } from './address-book.ts'
import type {
  MemberEventListener,
  MembershipInit,
  MembershipRefresh,
  MembershipStats,
} from './membership-init.ts'
import { DirectFanout, fitFields, type MembershipPubSub, SWIM_PROTOCOL, swimTopic } from './swim-wire.ts'

/** Agents not in the view are asked to sync again after this long. */
const RESEED_INTERVAL_MS = 30_000

/** Push-pull partners at start: one answer brings the whole view, more only cost a dial each. */
const MAX_START_SEEDS = 3

/**
 * An agent the cluster knows of (Raft, registry) but the view does not is synced with only after this many
 * probe periods: its own announcement usually arrives first, and every member syncing with a joiner at once
 * is a burst of dials and full-state messages for nothing.
 */
const SEED_DELAY_PERIODS = 4

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
  private readonly unseen = new Map<MemberId, { notedAt: number; syncedAt?: number }>()
  /** What went to whom directly, so that each update goes to each live member once. */
  private readonly fanout = new DirectFanout()
  private readonly counters: MembershipStats = {
    sent: 0,
    sendFailures: 0,
    published: 0,
    publishFallbacks: 0,
    received: 0,
    dropped: 0,
  }
  private swim?: Swim
  /** Who may accuse (the Raft configuration and the registry); undefined: everyone (no `refresh`). */
  private accusers?: ReadonlySet<MemberId>
  /** Live members in the view that were not accusers when admitted (see `admitsToView`). */
  private readonly pending = new Set<MemberId>()
  private starting?: Promise<void>
  private topic = ''
  private pubsub?: MembershipPubSub
  private tickTimer?: Cancel
  private tickDue = Number.POSITIVE_INFINITY
  private refreshTimer?: Cancel
  private savedIncarnation = -1
  private loadPublishedAt = Number.NEGATIVE_INFINITY
  /** Whether this run re-announced itself once its view first held other members. */
  private announced = false
  private generation = 0

  constructor(init: MembershipInit) {
    this.init = init
    this.config = Object.freeze({ ...init.config })
    this.selfId = init.components.peerId.toString()
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
    this.refreshTimer = this.init.scheduler.every(
      this.init.refreshIntervalMs ?? this.config.probeInterval,
      () => this.refresh(),
    )
    this.unseen.clear()
    this.pending.clear()
    this.announced = false
    const seeds = [...new Set(options.seeds ?? [])].filter(seed => seed !== this.selfId)
    // The operator's seeds vouch until the configuration or the registry names anyone.
    this.accusers = this.init.refresh === undefined ? undefined : new Set(seeds)
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
    this.refreshTimer?.()
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
    const ids: MemberId[] = []
    for (const member of this.members()) {
      if (member.status === 'dead' || member.status === 'left') ids.push(member.id)
    }
    return ids
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
    const time = this.clock()
    const delay = SEED_DELAY_PERIODS * this.config.probeInterval
    for (const [id] of this.unseen) if (swim.member(id) !== undefined) this.unseen.delete(id)
    for (const id of ids) {
      if (id === this.selfId || swim.member(id) !== undefined) continue
      let entry = this.unseen.get(id)
      if (entry === undefined) {
        // A random phase spreads the members that noticed the same agent at the same time.
        const jitter = (this.init.random ?? Math.random)() * this.config.probeInterval
        entry = { notedAt: now ? time - delay : time + jitter }
        this.unseen.set(id, entry)
      }
      if (!now && time - entry.notedAt < delay) continue
      if (entry.syncedAt !== undefined && time - entry.syncedAt < RESEED_INTERVAL_MS) continue
      entry.syncedAt = time
      this.pushPull(id, swim)
    }
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
      const entry = this.unseen.get(to)
      if (entry?.syncedAt === undefined || !this.mayAccuse(to)) return
      entry.syncedAt = this.clock() - RESEED_INTERVAL_MS + SEED_DELAY_PERIODS * this.config.probeInterval
    })
  }

  // ---------- the core's inputs ----------

  private tick(): void {
    const swim = this.swim
    if (swim === undefined) return
    swim.tick(this.clock())
    this.flush()
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
    const vetted = this.vet(from, message, swim)
    if (vetted === undefined) return
    message = vetted
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
    if (wanted?.known !== undefined && wanted.known.length > 0) this.accusers = new Set(wanted.known)
    this.prunePending(swim)
    // Members only named by others, synced with once and still unseen: forgotten, so they free their room.
    const now = this.clock()
    for (const [id, entry] of this.unseen) {
      const stale = entry.syncedAt !== undefined && now - entry.syncedAt >= RESEED_INTERVAL_MS
      if (stale && !this.mayAccuse(id)) this.unseen.delete(id)
    }
    if (wanted?.known !== undefined) this.seed(wanted.known)
    this.saveIncarnation()
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
    const due = swim.nextTickAt()
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
    this.rpc.callRpc(to, SWIM_PROTOCOL, bytes).catch(err => {
      this.counters.sendFailures++
      this.log.trace('SWIM %s to %s not delivered: %e', message.type, to, err)
      onFailure?.()
    })
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
    // to every member directly, so a publish gossipsub accepts and then drops (a peer scored low, a mesh not
    // formed yet after a restart) cannot leave it suspected or dead in views that missed it.
    const own = updates.filter(update => update.type !== 'suspect' && updateSubject(update) === this.selfId)
    if (own.length > 0) this.sendToLive(own)
    pubsub.publish(this.topic, bytes).then(
      () => {
        this.counters.published++
      },
      err => {
        // No subscribed peer yet (just joined), or gossipsub scores every peer below its publish threshold
        // (many agents behind one IP address): the news must still get out.
        this.counters.publishFallbacks++
        this.log.trace('publish on %s failed, sending directly: %e', this.topic, err)
        this.sendToLive(updates)
      },
    )
  }

  /** The direct stand-in for gossip (see `DirectFanout`). */
  private sendToLive(updates: Update[]): void {
    const live = this.members().filter(
      member => member.id !== this.selfId && (member.status === 'alive' || member.status === 'suspect'),
    )
    const batches = this.fanout.plan(updates, live)
    for (const [to, batch] of batches) this.send(to, { type: 'gossip', updates: batch })
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

  /**
   * `message` without the claims `from` may not make and the members the view may not admit; undefined if
   * nothing is left to take. Members another's push-pull named are asked directly: those the cluster knows,
   * and (while few are waiting) those an accuser named, so a joiner learns the view from its seed's answer.
   */
  private vet(from: MemberId, message: SwimMessage, swim: Swim): SwimMessage | undefined {
    const context: ClaimContext = {
      self: this.selfId,
      mayAccuse: id => this.mayAccuse(id),
      incarnationOf: id => swim.member(id)?.incarnation,
      wallNow: this.init.scheduler.wallNow(),
    }
    const vetted = vetMessage(message, from, context)
    let refused = vetted.refused
    let result = vetted.message
    // After vetting, only the sender's own claims can add a member: the sender itself.
    if (swim.member(from) === undefined) {
      if (result.type === 'pingReq') {
        // Probing on behalf of a peer outside the view would let anyone make this member dial anyone.
        this.counters.dropped += refused + 1
        return undefined
      }
      if (introduces(result, from) && !this.admitsToView(from, swim)) {
        if (result.type === 'gossip') {
          const updates = result.updates.filter(update => updateSubject(update) !== from)
          refused += result.updates.length - updates.length
          result = { type: 'gossip', updates }
        } else if (result.type === 'pushPull') {
          const members = result.members.filter(entry => entry.id !== from)
          refused += result.members.length - members.length
          result = { ...result, members }
        }
      }
    }
    this.counters.dropped += refused
    if (refused > 0) this.log.trace('dropped %d SWIM claims %s may not make', refused, from)
    // Those the cluster knows, and a few more an accuser names (a joiner's view before its log catches up).
    let room = this.mayAccuse(from) ? Math.max(0, this.config.maxPendingMembers - this.unseen.size) : 0
    const named = vetted.named.filter(entry => this.mayAccuse(entry.id) || room-- > 0)
    if (named.length > 0) {
      // Dialled by peer id: their addresses must be in the peer store first.
      const ids = named.map(entry => entry.id)
      Promise.all(named.map(entry => this.learnAddresses(entry))).then(() => this.seed(ids, true))
    }
    // A member the cluster knows, named in an accuser's push-pull, is introduced into the view at
    // incarnation 0: whatever the member itself says outranks it, and it is probed like any other.
    if (result.type === 'pushPull' && this.mayAccuse(from)) {
      const introduced: PushPullEntry[] = []
      for (const entry of named) {
        if (swim.member(entry.id) !== undefined || this.accusers === undefined) continue
        if (!this.accusers.has(entry.id)) continue
        introduced.push({ ...entry, incarnation: 0, status: 'alive' })
      }
      if (introduced.length > 0) result = { ...result, members: [...result.members, ...introduced] }
    }
    return result
  }

  private mayAccuse(id: MemberId): boolean {
    return this.accusers === undefined || this.accusers.has(id)
  }

  /**
   * Whether `id`, not in the view, may enter it: always if the cluster knows it (the core caps the view at
   * `maxMembers`), else while fewer than `maxPendingMembers` live members are waiting to be known.
   */
  private admitsToView(id: MemberId, swim: Swim): boolean {
    if (this.mayAccuse(id)) return true
    if (this.pending.size >= this.config.maxPendingMembers) this.prunePending(swim)
    if (this.pending.size >= this.config.maxPendingMembers) return false
    this.pending.add(id)
    return true
  }

  /** Frees the pending places of members now known to the cluster, gone from the view, dead or left. */
  private prunePending(swim: Swim): void {
    for (const id of this.pending) {
      const status = swim.member(id)?.status
      if (this.mayAccuse(id) || status === undefined || status === 'dead' || status === 'left') {
        this.pending.delete(id)
      }
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

/** Whether `message` from `from` says `from` is alive (what adds a member to the view). */
function introduces(message: SwimMessage, from: MemberId): boolean {
  if (message.type === 'gossip') {
    return message.updates.some(update => update.type === 'alive' && update.member.id === from)
  }
  if (message.type === 'pushPull') {
    return message.members.some(entry => entry.id === from && entry.status === 'alive')
  }
  return false
}
