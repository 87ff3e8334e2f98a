/**
 * The SWIM membership core with Lifeguard's refinements, as a deterministic state machine: the shell feeds
 * it time (`tick`), messages (`receive`) and commands (`join`, `leave`, `updateLocal`), and takes its effects
 * as data from `drain()`. No clock, timer, randomness or I/O in here; timers are deadlines compared against
 * the `now` the shell supplies.
 *
 * Failure detection (SWIM): every protocol period, probe the next member of a shuffled round-robin list with
 * a direct ping; without an ack within the probe timeout, ask k others to ping it (ping-req); without any
 * ack by the end of the period, suspect it. A suspicion is gossiped; the suspect refutes it by gossiping
 * itself alive with a higher incarnation; unrefuted, it becomes dead when the suspicion timeout expires.
 *
 * Lifeguard: (1) local health: probes that fail without the intermediaries' nacks, refutations and stalls
 * raise a score that stretches this node's probe timeouts, so a slow node accuses less; (2) the suspicion
 * timeout starts long and shrinks as distinct members confirm the suspicion; (3) a ping to a member we
 * suspect says so, so the member refutes at once even if it missed the gossip.
 *
 * Dissemination: updates this node originates (its own alive/left, suspicions it raises, deaths it declares
 * of members it suspected itself) are published on the gossip topic in batches, each update retransmitted
 * retransmitMult × log10(n+1) times (or retransmitMult times: `retransmitScale`). A suspicion only heard
 * on the topic ends in a death declared in this view alone: every member heard it and runs the same timer
 * (see `Suspicion.spreading`).
 * Updates heard on the topic are not republished: gossipsub already carries each publish to every
 * subscriber, and the originator's retransmissions cover loss. Suspicions learned by push-pull are
 * republished, because nobody else may be spreading them. A periodic push-pull with a random member repairs
 * whatever the gossip missed; members marked dead are pinged now and then (`pingTheDead`), so a live one
 * held dead hears of it. An accusation below this member's incarnation is answered to the accuser with the
 * current record (`accused`).
 *
 * The shell's side of the contract:
 * - Call `tick(now)` at `nextTickAt()` (or on a fixed interval well under `stallThreshold`); a tick more than
 *   `stallThreshold` past a deadline is taken as this process having stalled (see `recoverFromStall`).
 * - After every call, `drain()`: send `sends` on direct streams, publish `broadcasts` as one
 *   `{ type: 'gossip', updates }` message on the cluster topic, deliver `events`. Feed every decoded message
 *   to `receive(from, message, now)` with the transport's authenticated peer id (for gossip, the publisher).
 * - Start with an incarnation above any of this member's previous runs: max(persisted + 1, wall clock in ms) (a
 *   start timestamp in ms alone suffices unless a run raised its incarnation more than once per ms). If it is
 *   too low anyway, the cluster's newer word about us is refuted and the incarnation jumps past it.
 * - `leave()`, then keep ticking until `pendingBroadcasts()` is 0 (or a few seconds) before stopping.
 *
 * Detection: a crashed member is marked dead by every live member within suspicionTimeout(n) plus about 6
 * probe intervals (measured in the simulator: with the LAN config, median 7.0–7.4 s for 25 members and
 * 9.5–9.9 s for 100; with SWIM_FAST_CONFIG 3.6–3.8 s and 4.8 s).
 */

import { Awareness } from './awareness.ts'
import { BroadcastQueue } from './broadcast-queue.ts'
import {
  indirectNackTimeout,
  probePeriod,
  pushPullInterval,
  resolveConfig,
  retransmitLimit,
  suspicionTimeout,
} from './config.ts'
import { Suspicion } from './suspicion.ts'
import type {
  DirectMessage,
  GossipMessage,
  LocalFields,
  MemberEvent,
  MemberEventType,
  MemberId,
  MemberInfo,
  MemberRecord,
  MemberStatus,
  PingMessage,
  PingReqMessage,
  PushPullEntry,
  PushPullMessage,
  Random,
  SwimConfig,
  SwimInit,
  SwimMessage,
  SwimReady,
  SwimSend,
  Update,
} from './types.ts'
import { cloneRecord, localFieldsError, memberRecordError, sameRecordContent } from './validate.ts'

/** One member as this node sees it. */
interface MemberState {
  record: MemberRecord
  status: MemberStatus
  lastSeen: number
  statusChangedAt: number
  /** When a message from this member, held dead here, last made us sync with it (`syncWithTheDead`). */
  syncedWhileDeadAt?: number
}

/** Our probe of one member in the current protocol period. */
interface Probe {
  target: MemberId
  seq: number
  /** When we give up on a direct ack and ask others. */
  directDeadline: number
  /** When the probe fails if no ack came by any route. */
  deadline: number
  indirectSent: boolean
  /** The members asked to probe indirectly. */
  intermediaries: MemberId[]
  nackFrom: Set<MemberId>
}

/** A ping we send on behalf of another member's ping-req. */
interface RelayedProbe {
  requester: MemberId
  requesterSeq: number
  target: MemberId
  nackAt: number
  nackSent: boolean
  expiresAt: number
}

/** Alive or suspect: probed, counted in n, may still refute. */
function isLive(status: MemberStatus): boolean {
  return status === 'alive' || status === 'suspect'
}

const SEQ_LIMIT = 0x1_0000_0000

/** A member held dead that keeps speaking is synced with at most once per this many probe periods. */
const DEAD_SYNC_PERIODS = 5

/** The SWIM/Lifeguard membership state machine of one member. */
export class Swim {
  readonly config: Readonly<SwimConfig>
  readonly id: MemberId
  private readonly random: Random
  private readonly awareness: Awareness
  private readonly queue = new BroadcastQueue()
  private readonly memberStates = new Map<MemberId, MemberState>()
  private readonly self: MemberState
  private readonly suspicions = new Map<MemberId, Suspicion>()
  private readonly relays = new Map<number, RelayedProbe>()
  /** Members this view marked dead, and when each is pinged next and the gap after that (`pingTheDead`). */
  private readonly deadPings = new Map<MemberId, { at: number; gap: number }>()
  /** Members alive or suspect, self included: the n of every size-scaled formula. */
  private liveCount = 1
  private probeOrder: MemberId[] = []
  private probeIndex = 0
  private probe: Probe | undefined
  private seq = 0
  private now: number
  private nextProbeAt: number
  private nextGossipAt: number
  private nextPushPullAt: number
  private joinSeeds: MemberId[] = []
  private joinRetryAt = Number.POSITIVE_INFINITY
  private leaving = false
  /** Stalls are measured from the first tick on: before it, deadlines have not been offered to the shell. */
  private ticked = false
  private sends: SwimSend[] = []
  private broadcasts: Update[] = []
  private events: MemberEvent[] = []
  private cachedDeadline: number | undefined

  constructor(init: SwimInit) {
    this.config = Object.freeze(resolveConfig(init.config))
    if (!Number.isFinite(init.now)) throw new RangeError('now must be a finite number of ms')
    const record: MemberRecord = { ...init.self, incarnation: init.incarnation }
    const error = memberRecordError(record)
    if (error !== undefined) throw new RangeError(`invalid local member: ${error}`)
    this.id = record.id
    this.random = init.random
    this.now = init.now
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier)
    this.self = {
      record: cloneRecord(record),
      status: 'alive',
      lastSeen: init.now,
      statusChangedAt: init.now,
    }
    this.memberStates.set(this.id, this.self)
    // Random phases, so members that start together do not probe and sync in lockstep.
    this.nextProbeAt = init.now + Math.floor(this.random() * this.config.probeInterval)
    this.nextPushPullAt = init.now + Math.floor(this.random() * this.config.pushPullInterval)
    this.nextGossipAt = init.now
    this.enqueue({ type: 'alive', member: cloneRecord(record) })
  }

  // ---------- inputs ----------

  /** Advances the clock to `now` (ms) and fires every deadline that is due. */
  tick(now: number): void {
    this.advance(now)
    now = this.now
    this.deadlinesMoved()
    const due = this.nextTickAt()
    if (this.ticked && now - due > this.config.stallThreshold) this.recoverFromStall(now - due)
    this.ticked = true
    this.fireRelays(now)
    this.fireProbe(now)
    this.fireSuspicions(now)
    if (!this.leaving) this.pingTheDead(now)
    if (!this.leaving && this.probe === undefined && now >= this.nextProbeAt) this.startProbe(now)
    if (!this.leaving && now >= this.nextPushPullAt) this.startPushPull(now)
    if (this.joinSeeds.length > 0 && now >= this.joinRetryAt) this.sendJoin(now)
    this.flush(now)
    this.deadlinesMoved()
  }

  /**
   * Handles one message from `from` (the peer id the transport authenticated, or the gossip publisher).
   * `now` defaults to the time of the last call.
   */
  receive(from: MemberId, message: SwimMessage, now: number = this.now): void {
    this.advance(now)
    if (from === this.id) return
    now = this.now
    this.touch(from, now)
    // Only its probes: one a period from a member that runs, where its gossip reaches every agent at once.
    if (message.type === 'ping' || message.type === 'pingReq') this.syncWithTheDead(from, now)
    switch (message.type) {
      case 'ping':
        this.onPing(from, message, now)
        break
      case 'ack':
        this.onAck(from, message.seq, now)
        break
      case 'pingReq':
        this.onPingReq(from, message, now)
        break
      case 'nack':
        if (this.probe !== undefined && this.probe.seq === message.seq && this.probe.indirectSent) {
          if (this.probe.intermediaries.includes(from)) this.probe.nackFrom.add(from)
        }
        break
      case 'pushPull':
        this.onPushPull(from, message, now)
        break
      case 'gossip':
        for (const update of message.updates) this.applyUpdate(update, from, now)
        break
    }
    this.flush(now)
  }

  /**
   * Joins through `seeds` (member ids the shell can dial): a push-pull with each, repeated every
   * joinRetryInterval until one answers. Also announces this member on the gossip topic.
   */
  join(seeds: readonly MemberId[], now: number = this.now): void {
    this.advance(now)
    if (this.leaving) throw new Error('cannot join after leave')
    this.joinSeeds = [...new Set(seeds)].filter(seed => seed !== this.id)
    this.enqueue({ type: 'alive', member: cloneRecord(this.self.record) })
    if (this.joinSeeds.length > 0) this.sendJoin(this.now)
    this.flush(this.now)
    this.deadlinesMoved()
  }

  /**
   * Leaves gracefully: announces `left` (others mark us left, not dead), stops probing and syncing. Keep
   * ticking and draining until `pendingBroadcasts()` is 0 (or a timeout) before stopping the shell.
   */
  leave(now: number = this.now): void {
    this.advance(now)
    if (this.leaving) return
    this.leaving = true
    this.probe = undefined
    this.joinSeeds = []
    this.setStatus(this.self, 'left', this.now)
    this.enqueue({ type: 'left', id: this.id, incarnation: this.self.record.incarnation })
    this.emit('left', this.self, this.now)
    this.flush(this.now)
    this.deadlinesMoved()
  }

  /** Changes the local record (load, role, labels...): a new incarnation, gossiped to everyone. */
  updateLocal(fields: LocalFields, now: number = this.now): void {
    this.advance(now)
    const error = localFieldsError(fields)
    if (error !== undefined) throw new RangeError(`invalid local fields: ${error}`)
    if (this.leaving) return
    const record = this.self.record
    if (fields.name !== undefined) record.name = fields.name
    if (fields.addrs !== undefined) record.addrs = [...fields.addrs]
    if (fields.capabilities !== undefined) record.capabilities = [...fields.capabilities]
    if (fields.labels !== undefined) record.labels = { ...fields.labels }
    if (fields.role !== undefined) record.role = fields.role
    if (fields.load !== undefined) record.load = fields.load
    record.incarnation++
    this.enqueue({ type: 'alive', member: cloneRecord(record) })
    this.emit('updated', this.self, this.now)
    this.flush(this.now)
  }

  // ---------- outputs ----------

  /** Whether `drain()` has anything. */
  hasReady(): boolean {
    return this.sends.length > 0 || this.broadcasts.length > 0 || this.events.length > 0
  }

  /** Takes the effects produced since the last call: messages to send, updates to publish, events. */
  drain(): SwimReady {
    const ready: SwimReady = { sends: this.sends, broadcasts: this.broadcasts, events: this.events }
    if (this.sends.length > 0) this.sends = []
    if (this.broadcasts.length > 0) this.broadcasts = []
    if (this.events.length > 0) this.events = []
    return ready
  }

  /**
   * The earliest time `tick` has work to do. The shell must tick by then (or tick at a fixed interval well
   * under `stallThreshold`): a tick later than that by more than `stallThreshold` counts as a stall.
   */
  nextTickAt(): number {
    if (this.cachedDeadline !== undefined) return this.cachedDeadline
    let due = Number.POSITIVE_INFINITY
    if (!this.leaving) {
      if (this.probe === undefined) due = this.nextProbeAt
      else due = this.probe.indirectSent ? this.probe.deadline : this.probe.directDeadline
      due = Math.min(due, this.nextPushPullAt)
    }
    for (const relay of this.relays.values()) if (!relay.nackSent && relay.nackAt < due) due = relay.nackAt
    for (const suspicion of this.suspicions.values()) if (suspicion.deadline < due) due = suspicion.deadline
    if (this.queue.size > 0 && this.nextGossipAt < due) due = this.nextGossipAt
    if (this.joinSeeds.length > 0 && this.joinRetryAt < due) due = this.joinRetryAt
    this.cachedDeadline = due
    return due
  }

  /** Every known member, this one included, with dead and left ones until their tombstones expire. */
  members(): MemberInfo[] {
    const list: MemberInfo[] = []
    for (const state of this.memberStates.values()) list.push(memberInfo(state))
    return list
  }

  /** One member as this node sees it. */
  member(id: MemberId): MemberInfo | undefined {
    const state = this.memberStates.get(id)
    return state === undefined ? undefined : memberInfo(state)
  }

  /** Lifeguard's local health score: 0 is healthy; timeouts scale by score + 1. */
  localHealth(): number {
    return this.awareness.score
  }

  /** The local member's current incarnation (the shell may persist it across restarts). */
  incarnation(): number {
    return this.self.record.incarnation
  }

  /** Updates still to be published; after `leave()`, 0 means the departure was fully announced. */
  pendingBroadcasts(): number {
    return this.queue.size
  }

  /** How many members the view holds, this one and dead and left ones included (at most `maxMembers`). */
  viewSize(): number {
    return this.memberStates.size
  }

  /** The size of the live view (alive and suspect members, this one included). */
  liveMembers(): number {
    return this.liveCount
  }

  // ---------- probing ----------

  private startProbe(now: number): void {
    // The period grows with the cluster within memberlist's LAN bound (`probePeriod`); the probe's own
    // deadlines do not, so a failed probe is judged as fast at any size.
    this.nextProbeAt = now + probePeriod(this.config, this.liveCount)
    const target = this.nextProbeTarget(now)
    if (target === undefined) return
    const seq = this.nextSeq()
    this.probe = {
      target: target.record.id,
      seq,
      directDeadline: now + this.awareness.scale(this.config.probeTimeout),
      deadline: now + this.awareness.scale(this.config.probeInterval),
      indirectSent: false,
      intermediaries: [],
      nackFrom: new Set(),
    }
    const ping: PingMessage = { type: 'ping', seq, target: target.record.id }
    if (target.status === 'suspect') ping.suspectIncarnation = target.record.incarnation
    this.send(target.record.id, ping)
  }

  /** The next live member in the round-robin order; reshuffles (and reaps tombstones) at each wrap. */
  private nextProbeTarget(now: number): MemberState | undefined {
    for (let checked = 0; checked <= this.probeOrder.length; checked++) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.resetProbeOrder(now)
        if (this.probeOrder.length === 0) return undefined
      }
      const state = this.memberStates.get(this.probeOrder[this.probeIndex++])
      if (state !== undefined && state !== this.self && isLive(state.status)) return state
    }
    return undefined
  }

  private resetProbeOrder(now: number): void {
    const order: MemberId[] = []
    for (const [id, state] of this.memberStates) {
      if (state === this.self) continue
      if (isLive(state.status)) order.push(id)
      else if (now - state.statusChangedAt >= this.config.tombstoneTimeout) {
        this.memberStates.delete(id)
        this.deadPings.delete(id)
      }
    }
    shuffle(order, this.random)
    this.probeOrder = order
    this.probeIndex = 0
  }

  /** Puts a newly live member at a random place in the current order, so joins do not all queue last. */
  private addToProbeOrder(id: MemberId): void {
    if (this.probeOrder.includes(id)) return
    this.probeOrder.push(id)
    const last = this.probeOrder.length - 1
    const swap = Math.floor(this.random() * (last + 1))
    ;[this.probeOrder[last], this.probeOrder[swap]] = [this.probeOrder[swap], this.probeOrder[last]]
  }

  private fireProbe(now: number): void {
    const probe = this.probe
    if (probe === undefined) return
    if (!probe.indirectSent && now >= probe.directDeadline) this.sendIndirectProbes(probe)
    if (now < probe.deadline) return
    this.probe = undefined
    // Lifeguard: missing nacks mean we may be the one who cannot hear; with no one to ask, any failure counts.
    const expectedNacks = probe.intermediaries.length
    this.awareness.apply(expectedNacks > 0 ? expectedNacks - probe.nackFrom.size : 1)
    const target = this.memberStates.get(probe.target)
    if (target === undefined || !isLive(target.status)) return
    this.applySuspect(probe.target, target.record.incarnation, this.id, now, true)
  }

  private sendIndirectProbes(probe: Probe): void {
    probe.indirectSent = true
    const peers = this.randomAliveMembers(this.config.indirectChecks, probe.target)
    const target = this.memberStates.get(probe.target)
    const suspectIncarnation = target?.status === 'suspect' ? target.record.incarnation : undefined
    for (const peer of peers) {
      const request: PingReqMessage = { type: 'pingReq', seq: probe.seq, target: probe.target }
      if (suspectIncarnation !== undefined) request.suspectIncarnation = suspectIncarnation
      this.send(peer, request)
    }
    probe.intermediaries = peers
    // And one more direct ping, as memberlist's fallback ping over TCP: one lost message or reset stream on
    // the direct path should not alone make a member suspect.
    const ping: PingMessage = { type: 'ping', seq: probe.seq, target: probe.target }
    if (suspectIncarnation !== undefined) ping.suspectIncarnation = suspectIncarnation
    this.send(probe.target, ping)
  }

  /**
   * Up to `count` distinct random alive members other than us and `exclude`, drawn from the probe order (it
   * holds every live member) with 3 × its length tries, as memberlist's kRandomNodes does: cheap at any size.
   */
  private randomAliveMembers(count: number, exclude: MemberId | undefined): MemberId[] {
    const pool = this.probeOrder
    const picked: MemberId[] = []
    for (let tries = 0; picked.length < count && tries < 3 * pool.length; tries++) {
      const id = pool[Math.floor(this.random() * pool.length)]
      if (id === exclude || picked.includes(id)) continue
      if (this.memberStates.get(id)?.status === 'alive') picked.push(id)
    }
    return picked
  }

  private onPing(from: MemberId, ping: PingMessage, now: number): void {
    if (ping.target !== this.id) return
    this.send(from, { type: 'ack', seq: ping.seq })
    const suspected = ping.suspectIncarnation
    if (suspected !== undefined) this.accused(suspected, [from], now)
  }

  private onAck(from: MemberId, seq: number, now: number): void {
    const probe = this.probe
    if (
      probe !== undefined &&
      probe.seq === seq &&
      (from === probe.target || probe.intermediaries.includes(from))
    ) {
      this.probe = undefined
      // The next probe may be due before the deadline of this one.
      this.deadlinesMoved()
      this.awareness.apply(-1)
      const target = this.memberStates.get(probe.target)
      if (target !== undefined && isLive(target.status)) target.lastSeen = now
      return
    }
    const relay = this.relays.get(seq)
    if (relay !== undefined && relay.target === from) {
      this.relays.delete(seq)
      this.send(relay.requester, { type: 'ack', seq: relay.requesterSeq })
    }
  }

  private onPingReq(from: MemberId, request: PingReqMessage, now: number): void {
    if (request.target === this.id) {
      this.send(from, { type: 'ack', seq: request.seq })
      return
    }
    const seq = this.nextSeq()
    this.deadlinesMoved()
    this.relays.set(seq, {
      requester: from,
      requesterSeq: request.seq,
      target: request.target,
      nackAt: now + indirectNackTimeout(this.config),
      nackSent: false,
      // A late ack is still worth forwarding while the requester may be waiting (its deadline stretches).
      expiresAt: now + this.config.probeInterval * this.config.awarenessMaxMultiplier,
    })
    const ping: PingMessage = { type: 'ping', seq, target: request.target }
    if (request.suspectIncarnation !== undefined) ping.suspectIncarnation = request.suspectIncarnation
    this.send(request.target, ping)
  }

  private fireRelays(now: number): void {
    for (const [seq, relay] of this.relays) {
      if (!relay.nackSent && now >= relay.nackAt) {
        relay.nackSent = true
        this.send(relay.requester, { type: 'nack', seq: relay.requesterSeq })
      }
      if (now >= relay.expiresAt) this.relays.delete(seq)
    }
  }

  // ---------- suspicion ----------

  private fireSuspicions(now: number): void {
    for (const [id, suspicion] of this.suspicions) {
      if (now < suspicion.deadline) continue
      this.suspicions.delete(id)
      const state = this.memberStates.get(id)
      if (
        state === undefined ||
        state.status !== 'suspect' ||
        state.record.incarnation !== suspicion.incarnation
      )
        continue
      this.setStatus(state, 'dead', now)
      this.emit('dead', state, now)
      if (suspicion.spreading)
        this.enqueue({ type: 'dead', id, incarnation: suspicion.incarnation, from: this.id })
    }
  }

  /**
   * `from` suspects `id` at `incarnation`. `spread`: we must publish it ourselves (our own accusation, or
   * one learned by push-pull that nobody else may be spreading).
   */
  private applySuspect(
    id: MemberId,
    incarnation: number,
    from: MemberId,
    now: number,
    spread: boolean,
  ): void {
    if (id === this.id) {
      this.accused(incarnation, [from], now)
      return
    }
    const state = this.memberStates.get(id)
    if (state === undefined || !isLive(state.status) || incarnation < state.record.incarnation) return
    const existing = this.suspicions.get(id)
    if (state.status === 'suspect' && existing !== undefined && existing.incarnation === incarnation) {
      if (existing.confirm(from)) {
        this.deadlinesMoved()
        if (spread) {
          existing.spreading = true
          this.enqueue({ type: 'suspect', id, incarnation, from })
        }
      }
      return
    }
    state.record.incarnation = incarnation
    if (state.status !== 'suspect') {
      this.setStatus(state, 'suspect', now)
      this.emit('suspect', state, now)
    }
    // Lifeguard: expect k = mult − 2 confirmations to reach the minimum, none when too few could give them.
    const n = this.liveCount
    const k = n - 2 < this.config.suspicionMult - 2 ? 0 : this.config.suspicionMult - 2
    const min = suspicionTimeout(this.config, n)
    const max = min * this.config.suspicionMaxTimeoutMult
    const suspicion = new Suspicion(from, incarnation, Math.max(0, k), min, max, now)
    suspicion.spreading = spread
    this.suspicions.set(id, suspicion)
    this.deadlinesMoved()
    if (spread) this.enqueue({ type: 'suspect', id, incarnation, from })
  }

  /**
   * `accusers` hold this member suspect or dead at `incarnation`. At or above ours: refute. Below it, the
   * accusation is stale, but the accusers still hold the old incarnation: they have not heard our current
   * one (the agent introduces a member another named into its view at incarnation 0, below any the member
   * itself ever had, and a joiner's own announcement went out before later joiners' views existed). Nobody
   * else may tell them (only a member speaks for itself), so our record goes to each of them directly;
   * ignored, their verdict would stand for good (issue 16's stuck views).
   */
  private accused(incarnation: number, accusers: readonly MemberId[], now: number): void {
    if (this.leaving) return
    if (incarnation >= this.self.record.incarnation) {
      this.refute(incarnation, now)
      return
    }
    const updates: Update[] = [{ type: 'alive', member: cloneRecord(this.self.record) }]
    for (const accuser of new Set(accusers))
      if (accuser !== this.id) this.send(accuser, { type: 'gossip', updates })
  }

  /** Someone says we are suspect, dead, left, or alive at an incarnation that is not ours: outbid them. */
  private refute(accused: number, now: number): void {
    const record = this.self.record
    record.incarnation = Math.max(record.incarnation, accused) + 1
    this.self.lastSeen = now
    // Being accused is a sign we may be the slow one.
    this.awareness.apply(1)
    this.enqueue({ type: 'alive', member: cloneRecord(record) })
  }

  // ---------- updates ----------

  /** One gossiped update, published (or sent directly) by `sender`. */
  private applyUpdate(update: Update, sender: MemberId, now: number): void {
    switch (update.type) {
      case 'alive':
        this.applyAlive(update.member, now)
        break
      case 'suspect':
        if (update.id === this.id) this.accused(update.incarnation, [update.from, sender], now)
        else this.applySuspect(update.id, update.incarnation, update.from, now, false)
        break
      case 'dead':
        if (update.id === this.id) this.accused(update.incarnation, [update.from, sender], now)
        else this.applyDead(update.id, update.incarnation, now)
        break
      case 'left':
        this.applyLeft(update.id, update.incarnation, now)
        break
    }
  }

  private applyAlive(record: MemberRecord, now: number): void {
    if (record.id === this.id) {
      const own = this.self.record
      if (this.leaving) return
      if (
        record.incarnation > own.incarnation ||
        (record.incarnation === own.incarnation && !sameRecordContent(record, own))
      ) {
        this.refute(record.incarnation, now)
      }
      return
    }
    const state = this.memberStates.get(record.id)
    if (state === undefined) {
      if (this.memberStates.size >= this.config.maxMembers) return
      const added: MemberState = {
        record: cloneRecord(record),
        status: 'alive',
        lastSeen: now,
        statusChangedAt: now,
      }
      this.memberStates.set(record.id, added)
      this.liveCount++
      this.addToProbeOrder(record.id)
      this.emit('joined', added, now)
      return
    }
    if (record.incarnation < state.record.incarnation) return
    if (record.incarnation === state.record.incarnation) {
      if (state.status === 'alive') state.lastSeen = now
      return
    }
    const changed = !sameRecordContent(record, state.record)
    const previous = state.status
    state.record = cloneRecord(record)
    state.lastSeen = now
    this.suspicions.delete(record.id)
    this.queue.dropStale(record.id, record.incarnation)
    if (previous === 'alive') {
      if (changed) this.emit('updated', state, now)
      return
    }
    this.setStatus(state, 'alive', now)
    if (previous === 'suspect') {
      this.emit('alive', state, now)
    } else {
      this.addToProbeOrder(record.id)
      this.emit('joined', state, now)
    }
  }

  /** Another member is dead (about this one, see `accused`). */
  private applyDead(id: MemberId, incarnation: number, now: number): void {
    if (id === this.id) return
    const state = this.memberStates.get(id)
    if (state === undefined || !isLive(state.status) || incarnation < state.record.incarnation) return
    state.record.incarnation = incarnation
    this.suspicions.delete(id)
    this.setStatus(state, 'dead', now)
    this.emit('dead', state, now)
  }

  private applyLeft(id: MemberId, incarnation: number, now: number): void {
    if (id === this.id) {
      if (!this.leaving && incarnation >= this.self.record.incarnation) this.refute(incarnation, now)
      return
    }
    const state = this.memberStates.get(id)
    if (state === undefined || state.status === 'left' || incarnation < state.record.incarnation) return
    state.record.incarnation = incarnation
    this.suspicions.delete(id)
    this.setStatus(state, 'left', now)
    this.emit('left', state, now)
  }

  // ---------- push-pull and join ----------

  private startPushPull(now: number): void {
    this.nextPushPullAt = now + pushPullInterval(this.config, this.liveCount)
    const [peer] = this.randomAliveMembers(1, undefined)
    if (peer !== undefined) this.send(peer, this.pushPullMessage(false))
  }

  private sendJoin(now: number): void {
    this.joinRetryAt = now + this.config.joinRetryInterval
    for (const seed of this.joinSeeds) this.send(seed, this.pushPullMessage(false))
  }

  private pushPullMessage(reply: boolean): PushPullMessage {
    // Shallow copies suffice: records' arrays and labels are replaced, never changed in place.
    const members: PushPullEntry[] = []
    for (const state of this.memberStates.values()) members.push({ ...state.record, status: state.status })
    return { type: 'pushPull', reply, members }
  }

  private onPushPull(from: MemberId, message: PushPullMessage, now: number): void {
    if (!message.reply) this.send(from, this.pushPullMessage(true))
    else this.joinSeeds = []
    for (const entry of message.members) this.mergeEntry(from, entry, now)
  }

  /** Merges one member of a peer's full state into ours (memberlist's mergeState, with tombstones kept). */
  private mergeEntry(from: MemberId, entry: PushPullEntry, now: number): void {
    // The entry is a record with a status; cloneRecord keeps only the record's fields.
    const record: MemberRecord = entry
    const status = entry.status
    if (record.id !== this.id && !this.memberStates.has(record.id)) {
      // Someone we never heard of: a suspect is probably alive (our own probes will judge); the dead and
      // the departed are remembered as tombstones so their stale alive messages cannot revive them.
      if (status === 'alive' || status === 'suspect') {
        this.applyAlive(record, now)
      } else if (this.memberStates.size < this.config.maxMembers) {
        this.memberStates.set(record.id, {
          record: cloneRecord(record),
          status,
          lastSeen: 0,
          statusChangedAt: now,
        })
      }
      return
    }
    switch (status) {
      case 'alive':
        this.applyAlive(record, now)
        break
      case 'left':
        this.applyLeft(record.id, record.incarnation, now)
        break
      // A peer's verdict of dead is only a suspicion here: we run our own timer, and the member can refute.
      case 'dead':
      case 'suspect':
        this.applySuspect(record.id, record.incarnation, from, now, true)
        break
    }
  }

  // ---------- plumbing ----------

  private advance(now: number): void {
    if (!Number.isFinite(now)) throw new RangeError('now must be a finite number of ms')
    if (now > this.now) this.now = now
  }

  /**
   * We were not running for `delay` ms past a deadline: that time must not count against others. Every
   * deadline that judges another member moves out by it, and local health worsens.
   */
  private recoverFromStall(delay: number): void {
    this.awareness.apply(1)
    if (this.probe !== undefined) {
      this.probe.directDeadline += delay
      this.probe.deadline += delay
    }
    for (const relay of this.relays.values()) {
      relay.nackAt += delay
      relay.expiresAt += delay
    }
    for (const suspicion of this.suspicions.values()) suspicion.postpone(delay)
  }

  /** Publishes a batch if one is due; waits while the previous batch is still undrained. */
  private flush(now: number): void {
    if (this.queue.size === 0 || now < this.nextGossipAt || this.broadcasts.length > 0) return
    const limit = retransmitLimit(this.config, this.liveCount)
    this.broadcasts = this.queue.take(this.config.maxUpdatesPerBroadcast, limit)
    this.nextGossipAt = now + this.config.gossipInterval
  }

  /**
   * A member this view holds dead spoke: it runs, and may never have heard that it was declared dead (the
   * death was gossiped while it stalled, or its connections were down), so it has nothing to refute, and
   * only a push-pull that happens to pick it would ever tell it. A push-pull with it now settles both
   * sides: its answer carries its current record (it may have refuted already, and we missed that), and our
   * state tells it that it is dead here, which it refutes. memberlist gossips to the dead for a while for
   * the same reason. At most once per `DEAD_SYNC_PERIODS` probe periods per member, and only on its probes
   * (a ping or ping-req: one a period, to one agent), never on gossip, which reaches every agent at once: a
   * thousand agents each sending a restarted member its full state would bury it. A restarted member needs
   * none of this: its higher incarnation revives it.
   */
  private syncWithTheDead(id: MemberId, now: number): void {
    const state = this.memberStates.get(id)
    if (state === undefined || state.status !== 'dead' || this.leaving) return
    const last = state.syncedWhileDeadAt
    if (last !== undefined && now - last < DEAD_SYNC_PERIODS * this.config.probeInterval) return
    state.syncedWhileDeadAt = now
    this.send(id, this.pushPullMessage(false))
  }

  private touch(id: MemberId, now: number): void {
    const state = this.memberStates.get(id)
    if (state !== undefined && isLive(state.status)) state.lastSeen = now
  }

  private setStatus(state: MemberState, status: MemberStatus, now: number): void {
    const wasLive = isLive(state.status)
    const willBeLive = isLive(status)
    if (wasLive && !willBeLive) this.liveCount--
    else if (!wasLive && willBeLive) this.liveCount++
    state.status = status
    state.statusChangedAt = now
    const id = state.record.id
    if (status !== 'dead' || id === this.id) {
      this.deadPings.delete(id)
      return
    }
    const gap = DEAD_SYNC_PERIODS * this.config.probeInterval
    this.deadPings.set(id, { at: now + gap, gap })
  }

  /**
   * Pings the members this view marked dead, each a few probe periods after its death and then at doubling
   * gaps until its tombstone would go (memberlist gossips to the dead for a while for the same reason). A
   * live member held dead here may never have heard it (the verdict was this view's own, or its gossip
   * missed the member), and if it holds this member dead too, neither would ever speak to the other again:
   * neither probes a member it holds dead, push-pull picks live members, and nobody else may vouch for
   * either. A ping from a member it holds dead makes it sync with us (`syncWithTheDead`), and that settles
   * both views; one that holds us alive probes us, which does the same here. A member that really died costs
   * a failed dial now and then. The ack (no probe of ours waits for it) is ignored.
   */
  private pingTheDead(now: number): void {
    for (const [id, ping] of this.deadPings) {
      if (now < ping.at) continue
      if (this.memberStates.get(id)?.status !== 'dead' || ping.gap > this.config.tombstoneTimeout) {
        this.deadPings.delete(id)
        continue
      }
      ping.gap *= 2
      ping.at = now + ping.gap
      this.send(id, { type: 'ping', seq: this.nextSeq(), target: id })
    }
  }

  private emit(type: MemberEventType, state: MemberState, now: number): void {
    this.events.push({ type, member: memberInfo(state), at: now })
  }

  private enqueue(update: Update): void {
    this.queue.push(update)
    this.deadlinesMoved()
  }

  /**
   * A deadline appeared or moved earlier: forget the cached `nextTickAt`. (Deadlines that go away or move
   * later may leave the cache early, which only costs the shell an idle tick.)
   */
  private deadlinesMoved(): void {
    this.cachedDeadline = undefined
  }

  private send(to: MemberId, message: DirectMessage | GossipMessage): void {
    this.sends.push({ to, message })
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % SEQ_LIMIT
    return this.seq
  }
}

function memberInfo(state: MemberState): MemberInfo {
  return {
    ...cloneRecord(state.record),
    status: state.status,
    lastSeen: state.lastSeen,
    statusChangedAt: state.statusChangedAt,
  }
}

/** Fisher–Yates with the injected randomness. */
function shuffle<T>(items: T[], random: Random): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
}
