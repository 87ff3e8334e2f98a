/**
 * The leader's lessor (etcd's, in spirit): session keep-alives never reach the Raft log. They go to the
 * leader, which holds the time of each session's last keep-alive in memory, on its own monotonic clock, and
 * proposes `expireSession` when a session's ttl passes without one. Only open, close and expiry are entries.
 *
 * A new leader knows nothing of its predecessor's keep-alives: on promotion it counts every session as
 * renewed at its takeover (etcd's `Promote`) and expires none for a ttl, so no session loses any of the ttl
 * its agent was promised. (The session of an agent the membership view holds dead goes after half a ttl,
 * as under any leader: its keeper never trusts it for longer.)
 * Everything here is local to one leadership: a change of leader (or of term) starts afresh.
 */

/** A session as the lessor needs it from the replicated state. */
export interface LeasedSession {
  sessionId: string
  agentId: string
  ttlMs: number
}

/** An expiry the lessor decided: `ttl` (no keep-alive for a ttl), `dead` (the view holds its agent dead). */
export interface SessionExpiry {
  sessionId: string
  reason: 'ttl' | 'dead'
}

/** The outcome of a keep-alive handed to the lessor. */
export type RenewOutcome =
  /** The session is renewed from the keep-alive's arrival. */
  | 'renewed'
  /** The lessor has decided to expire the session: the keep-alive came too late. */
  | 'expiring'
  /** The leadership the keep-alive arrived in is over: the keeper must ask the new leader. */
  | 'stale'

/**
 * The in-memory leases of one leader. Times are the leader's monotonic ms (its `Scheduler.now()`); the
 * caller passes them in, so the lessor is a pure bookkeeper a unit test drives on virtual time.
 */
export class Lessor {
  /** The leadership the leases belong to (an identity: `RaftHost.leaderSince`), and when it began. */
  private leadership?: { takeover: object; at: number }
  /** Per session: the latest keep-alive arrival this leadership saw, or when it first saw the session. */
  private readonly renewed = new Map<string, number>()
  /** Sessions whose expiry this leader proposed: their keep-alives are refused. */
  private readonly expiring = new Set<string>()

  /**
   * Follow this agent's leadership: `takeover` is the identity of the current one (with its start `at`), or
   * undefined when this agent does not lead. A new takeover starts the leases afresh; none carries over.
   */
  follow(takeover: { local: number } | undefined): void {
    if (takeover === undefined) {
      if (this.leadership !== undefined) this.reset(undefined)
      return
    }
    if (this.leadership?.takeover !== takeover) this.reset({ takeover, at: takeover.local })
  }

  /** The leadership the lessor serves now (an identity to compare later), or undefined. */
  get current(): object | undefined {
    return this.leadership?.takeover
  }

  /**
   * A keep-alive for `sessionId` that reached this leader at `arrivedAt`, during `leadership` (what `current`
   * was at its arrival). Renewing from the arrival, not from the answer, is what keeps the keeper's trust
   * safe: the keeper sent it earlier still.
   */
  renew(sessionId: string, arrivedAt: number, leadership: object | undefined): RenewOutcome {
    if (leadership === undefined || this.leadership?.takeover !== leadership) return 'stale'
    if (this.expiring.has(sessionId)) return 'expiring'
    this.renewed.set(sessionId, Math.max(this.renewed.get(sessionId) ?? arrivedAt, arrivedAt))
    return 'renewed'
  }

  /**
   * The sessions to expire at `now`: those without a keep-alive for their ttl (and not before a full ttl from
   * the takeover), and those of agents in `down` (not `selfId`) without one for half their ttl (and not
   * before half a ttl from the takeover). An agent's lease is never cut below half its ttl from its last
   * acknowledged keep-alive, so its keeper trusts it for less (`trustedUntil` in `node/session.ts`); a
   * predecessor acknowledged only keep-alives sent before this takeover (it confirmed its leadership after
   * each arrival). A session seen for the first time counts as renewed now (one opened in this leadership, or
   * found at takeover). Each session returned is marked expiring: its keep-alives are refused from here on.
   */
  due(
    sessions: Iterable<LeasedSession>,
    now: number,
    down: ReadonlySet<string>,
    selfId: string,
  ): SessionExpiry[] {
    const leadership = this.leadership
    if (leadership === undefined) return []
    const expiries: SessionExpiry[] = []
    const present = new Set<string>()
    for (const { sessionId, agentId, ttlMs } of sessions) {
      present.add(sessionId)
      let renewedAt = this.renewed.get(sessionId)
      if (renewedAt === undefined) {
        renewedAt = Math.max(now, leadership.at)
        this.renewed.set(sessionId, renewedAt)
      }
      const silent = now - renewedAt
      const led = now - leadership.at
      const reason =
        silent >= ttlMs && led >= ttlMs
          ? 'ttl'
          : silent >= ttlMs / 2 && led >= ttlMs / 2 && agentId !== selfId && down.has(agentId)
            ? 'dead'
            : undefined
      if (reason === undefined) continue
      this.expiring.add(sessionId)
      expiries.push({ sessionId, reason })
    }
    // Sessions that ended (their entries applied): nothing more to track.
    for (const sessionId of this.renewed.keys()) if (!present.has(sessionId)) this.renewed.delete(sessionId)
    for (const sessionId of this.expiring) if (!present.has(sessionId)) this.expiring.delete(sessionId)
    return expiries
  }

  /** How many sessions the lessor tracks (introspection, tests). */
  get size(): number {
    return this.renewed.size
  }

  private reset(leadership: { takeover: object; at: number } | undefined): void {
    this.leadership = leadership
    this.renewed.clear()
    this.expiring.clear()
  }
}
