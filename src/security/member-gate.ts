/**
 * Who may send Raft messages and forward commands to an agent: the members of its cluster, by the Raft
 * configuration. This holds with and without SPIFFE identities.
 *
 * Raft itself takes a message from any node id. Without this gate, a peer that never joined (any peer that
 * can connect when security is off, or one holding a valid SVID of another cluster in the same trust
 * domain) could send an append with a higher term, which a follower obeys: it takes the sender as its
 * leader, writes the entries it sent, and answers the real leader with the higher term, deposing it. A
 * vote request or a timeout-now would bump terms and start elections. etcd's transport likewise refuses
 * peers it does not know.
 *
 * The configuration is the latest one in this node's log (Raft uses a configuration from the moment it is
 * appended), so on the leader a peer it has just added is admitted at once. Two cases need more:
 * - a node with no configuration yet (a joiner waiting for its first append or snapshot) admits any
 *   sender: it has no state to protect, and learns the configuration from the first leader that reaches
 *   it (with SPIFFE identities on, that leader must still hold `vote`);
 * - a follower whose log lags (it missed the entry that added a peer, and that peer now campaigns or
 *   leads) would never catch up from it. It asks the members it knows whether they have the peer in their
 *   configuration (`vouch`), in the background, and admits the peer for a while if one has. Messages in the
 *   meantime are dropped, which Raft tolerates (it sends again).
 */

import type { Logger } from '@libp2p/interface'
import type { Scheduler } from '../time/scheduler.ts'
import { timeoutSignal } from '../time/sleep.ts'

export interface MemberGateInit {
  /** This node's latest Raft configuration; undefined while it has none (not joined, or joining). */
  config(): { readonly voters: readonly string[]; readonly nonVoters: readonly string[] } | undefined
  /** Whether this node leads: a leader's configuration is the newest, so it asks nobody. */
  isLeader(): boolean
  /** Whether a member this node knows has `peer` in its configuration. */
  vouch(peer: string, signal: AbortSignal): Promise<boolean>
  log: Logger
  /** Called once per refusal window of a peer. */
  onRefusal?: (peer: string, reason: string) => void
  /** How long a refusal stands before the configuration is read (and a member asked) again. Default 1 s. */
  retryAfterMs?: number
  /** How long a peer a member vouched for is admitted before this node asks again. Default 30 s. */
  vouchedForMs?: number
  /** Longest a vouching round may take. Default 2 s. */
  vouchTimeoutMs?: number
  /** Monotonic ms. Default: the scheduler's `now`. */
  now?: () => number
  /** Clocks and timers (the vouching timeout). */
  scheduler: Scheduler
}

/** Most peers remembered as refused or vouched for: bounds what a flood of peer ids can make it hold. */
const MAX_REMEMBERED = 1_000

/** The member check of one agent. */
export class MemberGate {
  private readonly init: MemberGateInit
  private readonly now: () => number
  private readonly scheduler: Scheduler
  private readonly retryAfterMs: number
  private readonly vouchedForMs: number
  private members = new Set<string>()
  private hasConfig = false
  /** Peers a member vouched for, until when (monotonic ms). */
  private readonly vouched = new Map<string, number>()
  /** Peers refused, until when. */
  private readonly refusedUntil = new Map<string, number>()
  private readonly asking = new Set<string>()
  private shutdown = new AbortController()

  constructor(init: MemberGateInit) {
    this.init = init
    const { scheduler } = init
    this.scheduler = scheduler
    this.now = init.now ?? (() => scheduler.now())
    this.retryAfterMs = init.retryAfterMs ?? 1_000
    this.vouchedForMs = init.vouchedForMs ?? 30_000
  }

  /** Reads the configuration again: call it when the configuration may have changed. */
  refresh(): void {
    const config = this.init.config()
    this.hasConfig = config !== undefined && config.voters.length + config.nonVoters.length > 0
    this.members = config === undefined ? new Set() : new Set([...config.voters, ...config.nonVoters])
  }

  /** Whether `peer` is in this node's configuration (read again when it is not in the cached one). */
  isMember(peer: string): boolean {
    if (this.members.has(peer)) return true
    this.refresh()
    return this.members.has(peer)
  }

  /**
   * Whether a Raft message from `peer` may reach Raft: a member, any peer while this node has no
   * configuration, or a peer a member vouched for. Otherwise false; a follower then asks its members about
   * the peer in the background.
   */
  admitRaft(peer: string): boolean {
    if (this.members.has(peer)) return true
    const now = this.now()
    const vouchedUntil = this.vouched.get(peer)
    if (vouchedUntil !== undefined) {
      if (now < vouchedUntil) return true
      this.vouched.delete(peer)
    }
    const refusedUntil = this.refusedUntil.get(peer)
    if (refusedUntil !== undefined && now < refusedUntil) return false
    this.refresh()
    if (!this.hasConfig || this.members.has(peer)) return true
    this.remember(this.refusedUntil, peer, now + this.retryAfterMs, now)
    this.init.onRefusal?.(peer, 'not a member of this cluster: its Raft messages are dropped')
    this.init.log('dropping Raft messages from %s: not in the configuration', peer)
    if (!this.init.isLeader()) this.ask(peer)
    return false
  }

  /** Stops vouching rounds under way. */
  stop(): void {
    this.shutdown.abort()
    this.shutdown = new AbortController()
    this.vouched.clear()
    this.refusedUntil.clear()
  }

  private ask(peer: string): void {
    if (this.asking.has(peer)) return
    this.asking.add(peer)
    const signal = AbortSignal.any([
      this.shutdown.signal,
      timeoutSignal(this.scheduler, this.init.vouchTimeoutMs ?? 2_000),
    ])
    this.init
      .vouch(peer, signal)
      .then(
        known => {
          if (!known || signal.aborted) return
          const now = this.now()
          this.refusedUntil.delete(peer)
          this.remember(this.vouched, peer, now + this.vouchedForMs, now)
          this.init.log('%s is a member by another member: this node lags, admitting its Raft messages', peer)
        },
        err => this.init.log('could not ask about %s: %e', peer, err),
      )
      .finally(() => this.asking.delete(peer))
  }

  private remember(map: Map<string, number>, peer: string, until: number, now: number): void {
    if (map.size >= MAX_REMEMBERED) {
      for (const [id, expiry] of map) if (expiry <= now) map.delete(id)
      if (map.size >= MAX_REMEMBERED) map.clear()
    }
    map.set(peer, until)
  }
}
