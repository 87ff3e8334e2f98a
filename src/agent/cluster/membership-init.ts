/** What the membership shell is given and what it reports: its components, options and counters. */

import type { PeerId, PeerStore } from '@libp2p/interface'
import type { NetComponents } from '../../net/components.ts'
import type { LocalFields, MemberEvent, MemberId, Random, SwimConfig } from '../../swim/types.ts'
import type { Scheduler } from '../../time/index.ts'
import type { MembershipPubSub } from './swim-wire.ts'

export interface MembershipComponents extends NetComponents {
  peerId: PeerId
  /** Where addresses learned from member records go, so that probes can dial by peer id. */
  peerStore?: Pick<PeerStore, 'merge'>
}

/** What the local record should say now, and the agents the cluster knows of (Raft config, registry). */
export interface MembershipRefresh {
  fields?: LocalFields
  known?: readonly MemberId[]
}

export interface MembershipInit {
  components: MembershipComponents
  /** The node's gossipsub, looked up at start; undefined sends every update directly instead. */
  pubsub?: () => MembershipPubSub | undefined
  config: SwimConfig
  random?: Random
  /** Timers, and the clocks of the view and the incarnation. */
  scheduler: Scheduler
  /**
   * Milliseconds, monotonic. Default: the scheduler's monotonic clock set to read as the wall clock did at
   * construction (epoch-like, as `performance.timeOrigin + performance.now()`), so `lastSeen` reads as a date.
   */
  clock?: () => number
  /** The highest incarnation a previous run used, and where to keep this run's. */
  loadIncarnation?: () => number | undefined
  saveIncarnation?: (incarnation: number) => void
  /** Asked every `refreshIntervalMs` while running (on the SWIM tick's timer: no wake-up of its own). */
  refresh?: () => MembershipRefresh
  /** Default: the probe interval. */
  refreshIntervalMs?: number
  /**
   * Whether a peer's messages may reach the view (SPIFFE identities: its ID may `join`): direct messages
   * and the gossip it originates. `true` at once or a promise. Default: every peer.
   */
  admit?: (peer: MemberId) => true | Promise<boolean>
}

export interface MembershipStats {
  /** Direct messages handed to the network. */
  sent: number
  /** Of those, push-pull requests (full-state syncs this member began). */
  pushPulls: number
  /** Of those, gossip sent directly (own news, and the stand-in for a publish that failed). */
  directGossip: number
  /**
   * Direct sends that failed: the stream could not be opened or was closed (one-way messages, which are not
   * answered), and for push-pull requests also a refusal or no answer in time.
   */
  sendFailures: number
  /** Gossip batches published on the topic. */
  published: number
  /** Gossip batches that could not be published and went to the live members directly. */
  publishFallbacks: number
  /** Messages taken in, direct and gossip. */
  received: number
  /** Messages that did not decode, came on the wrong path, or updates forged for another member. */
  dropped: number
}

export type MemberEventListener = (event: MemberEvent) => void
