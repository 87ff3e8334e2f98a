/**
 * The data contract of the SWIM membership core: member records, the updates gossiped about them, the
 * messages on direct streams, the events and effects the core hands to its shell. Everything here is plain
 * data, so the shell can encode it (`codec.ts`) and the simulator can pass it around as objects.
 */

/** A member's identity: its libp2p peer id string. */
export type MemberId = string

/** Uniform in [0, 1): the core's only source of randomness, injected so runs replay. */
export type Random = () => number

export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left'

export type MemberRole = 'voter' | 'nonvoter'

/** What a member says about itself: gossiped in `alive` updates and exchanged in push-pull. */
export interface MemberRecord {
  id: MemberId
  name: string
  /** Multiaddrs others can dial, each ending in /p2p/<id>. */
  addrs: string[]
  capabilities: string[]
  labels: Record<string, string>
  role: MemberRole
  /** Share of the member's task slots in use, 0..1. */
  load: number
  /** Raised by the member itself on every change and to refute suspicion; orders everything said about it. */
  incarnation: number
}

/** The fields of the local record the shell may change with `updateLocal`. */
export type LocalFields = Partial<
  Pick<MemberRecord, 'name' | 'addrs' | 'capabilities' | 'labels' | 'role' | 'load'>
>

/** A member as this node sees it. */
export interface MemberInfo extends MemberRecord {
  status: MemberStatus
  /** When we last heard from it directly (a message from it, an ack to our probe) or got an alive update. */
  lastSeen: number
  /** When its status last changed here. */
  statusChangedAt: number
}

/** Membership news, disseminated on the cluster's gossip topic in batches. */
export type Update =
  | { type: 'alive'; member: MemberRecord }
  /** `from` suspects `id` at `incarnation`: distinct `from`s are independent confirmations. */
  | { type: 'suspect'; id: MemberId; incarnation: number; from: MemberId }
  | { type: 'dead'; id: MemberId; incarnation: number; from: MemberId }
  /** `id` left gracefully. */
  | { type: 'left'; id: MemberId; incarnation: number }

export type UpdateType = Update['type']

/** One member's state in a push-pull exchange: its record and how the sender sees it. */
export interface PushPullEntry extends MemberRecord {
  status: MemberStatus
}

/**
 * Probe: "are you there?". `suspectIncarnation` is set when the prober holds the target as suspect at that
 * incarnation, so a target that missed the gossip hears it is suspected and refutes at once (Lifeguard).
 */
export interface PingMessage {
  type: 'ping'
  seq: number
  target: MemberId
  suspectIncarnation?: number
}

/** Answer to a ping, sent by the target, or forwarded by an intermediary with the requester's seq. */
export interface AckMessage {
  type: 'ack'
  seq: number
}

/** Ask the receiver to probe `target` on our behalf and forward the ack, or send a nack if none comes. */
export interface PingReqMessage {
  type: 'pingReq'
  seq: number
  target: MemberId
  suspectIncarnation?: number
}

/** Lifeguard: the intermediary could not reach the target; proves the requester can hear the intermediary. */
export interface NackMessage {
  type: 'nack'
  seq: number
}

/** Full state exchange: a request (`reply: false`) is answered with the receiver's own state. */
export interface PushPullMessage {
  type: 'pushPull'
  reply: boolean
  members: PushPullEntry[]
}

/** A batch of updates as published on the gossip topic. */
export interface GossipMessage {
  type: 'gossip'
  updates: Update[]
}

/** Messages on direct streams. */
export type DirectMessage = PingMessage | AckMessage | PingReqMessage | NackMessage | PushPullMessage

/** Everything `receive` accepts and the codec encodes. */
export type SwimMessage = DirectMessage | GossipMessage

export type SwimMessageType = SwimMessage['type']

/**
 * A message to send to one member on its direct stream: a probe, an answer, a push-pull, or (to a member
 * holding a stale accusation of this one) this member's own record as a gossip message.
 */
export interface SwimSend {
  to: MemberId
  message: DirectMessage | GossipMessage
}

export type MemberEventType = 'joined' | 'updated' | 'suspect' | 'alive' | 'dead' | 'left'

/**
 * A change in this node's view. `joined`: a member appeared (or came back after dead/left); `updated`: its
 * record changed while alive; `suspect`; `alive`: a suspicion was refuted; `dead`; `left`.
 */
export interface MemberEvent {
  type: MemberEventType
  member: MemberInfo
  at: number
}

/** The effects produced since the last `drain()`. */
export interface SwimReady {
  /** Direct stream messages. */
  sends: SwimSend[]
  /** Updates to publish on the gossip topic as one `{ type: 'gossip', updates }` message. */
  broadcasts: Update[]
  events: MemberEvent[]
}

/** Timing and sizing of the protocol; all durations in milliseconds. */
export interface SwimConfig {
  /** Protocol period: one member is probed per period (the shortest; see `maxProbeInterval`). */
  probeInterval: number
  /**
   * The longest protocol period. Above `probeInterval`, the period grows with the cluster as far as the
   * detection bound (`suspicionTimeout(n)` + 6 periods) stays within memberlist's LAN bound for n members
   * (1 s + 4 × log10(n) s), never past this (`probePeriod` in `config.ts`): probes are most of an idle
   * member's messages. At or below `probeInterval`, the period stays `probeInterval`.
   */
  maxProbeInterval: number
  /** Wait for a direct ack before asking others to probe indirectly. */
  probeTimeout: number
  /** How many members are asked to probe indirectly (k). */
  indirectChecks: number
  /** Suspicion timeout = mult × max(1, log10(n)) × probeInterval once confirmed (Lifeguard's minimum). */
  suspicionMult: number
  /** The unconfirmed suspicion timeout is this many times the minimum. */
  suspicionMaxTimeoutMult: number
  /** Floor of the suspicion timeout. */
  suspicionMinTimeout: number
  /** Local health score ranges over 0..awarenessMaxMultiplier-1; timeouts scale by score + 1. */
  awarenessMaxMultiplier: number
  /** Each update is published retransmitMult × ceil(log10(n + 1)) times (`retransmitScale` 'log10'). */
  retransmitMult: number
  /**
   * How retransmissions grow with the cluster: 'log10' (× ceil(log10(n + 1)), memberlist's, for lossy
   * piggybacked gossip) or 'none' (retransmitMult times at any size: for a dissemination layer that floods
   * and repairs by itself, as gossipsub does).
   */
  retransmitScale: 'log10' | 'none'
  /** How often pending updates are published as a batch. */
  gossipInterval: number
  /** Cap on updates per published batch. */
  maxUpdatesPerBroadcast: number
  /** Full state exchange with a random member, scaled up above 32 members as memberlist does. */
  pushPullInterval: number
  /** Resend the join push-pull to the seeds until one answers. */
  joinRetryInterval: number
  /** How long dead and left members are remembered, so stale alive messages cannot resurrect them. */
  tombstoneTimeout: number
  /**
   * A tick this late past the earliest deadline means this node itself was stalled (GC, blocked loop): the
   * stall does not count against others (deadlines judging them move out) and local health worsens.
   */
  stallThreshold: number
  /**
   * Members the view holds at most, this one and dead and left ones included: a member it does not know
   * is not added past it (it is heard of again once others leave or their tombstones expire).
   */
  maxMembers: number
  /**
   * Members in the view that neither the Raft configuration nor the registry name yet (joiners whose
   * registration has not reached this member), at most. Enforced by the shell, which knows both; a member
   * they name is always admitted (up to `maxMembers`).
   */
  maxPendingMembers: number
}

/** What the shell supplies to build a core. */
export interface SwimInit {
  /** The local member's record, without incarnation. */
  self: Omit<MemberRecord, 'incarnation'>
  /**
   * Starting incarnation. It must exceed any incarnation of this member's previous runs, or it is raised
   * when the cluster reminds us of one (refutation). The shell uses max(persisted + 1, start time in ms).
   */
  incarnation: number
  /** The clock at construction, ms. */
  now: number
  random: Random
  config?: Partial<SwimConfig>
}
