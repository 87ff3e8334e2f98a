import type { Logger } from '@libp2p/interface'
import { ClosedError, InvalidArgumentError, NoLeaderError, UnsupportedVersionError } from '../../errors.ts'
import type { CommandResult, OpenSessionAndRegisterCommand } from '../../state/index.ts'
import type { Cancel, Scheduler } from '../../time/scheduler.ts'
import { leaseMargin, type ResolvedTiming } from '../options.ts'

/** The leader's answer to a keep-alive (`cluster/keep-alive.ts`): renewed, or the session is gone. */
export type KeepAliveOutcome = { status: 'renewed' } | { status: 'expired' }

/**
 * What the session keeper needs: session open and close committed, keep-alives answered by the leader's
 * lessor (off the log).
 */
export interface SessionTransport {
  /** Commit a command without session numbering (session lifecycle commands). */
  submitRaw(
    command:
      | { type: 'openSession'; sessionId: string; agentId: string; ttlMs: number }
      | OpenSessionAndRegisterCommand
      | { type: 'closeSession'; sessionId: string },
    deadline: number,
  ): Promise<CommandResult>
  /**
   * Renew the session at the leader, following redirects until `deadline` (monotonic ms); `NoLeaderError`
   * when no leader answered in time.
   */
  keepAlive(sessionId: string, deadline: number): Promise<KeepAliveOutcome>
}

/** The numbering a command carries to be applied at most once (Raft dissertation section 6.3). */
export interface SessionTicket {
  id: string
  seq: number
  ackedBelow: number
}

/**
 * This agent's session: the lease that carries its liveness into the replicated state. Locks, candidacies
 * and (later) tasks are bound to it; when it lapses the leader expires it and all of them go at once.
 *
 * Keep-alives go to the leader, which holds them in memory (its lessor, `cluster/lessor.ts`); only open and
 * close (and the leader's expiry) are log entries. Locally the session is trusted only until
 * `ttl / 2 - margin` after the *sending* of the last keep-alive the leader acknowledged (or of the open that
 * committed). The leader expires a session no sooner than `ttl` after the arrival of its last keep-alive on
 * its monotonic clock, or `ttl / 2` after it when the membership view declares the agent dead; the arrival
 * came after our send, and the leader confirmed it still led after the arrival, so a successor (which grants
 * every session a full ttl from its takeover) took over after our send too. So `validUntil()` never claims a
 * session the cluster may already have expired, even for an agent cut off by a partition that the others
 * declare dead. Keep-alives go every `ttl / 4` so a live agent stays trusted.
 */
export class SessionKeeper {
  private readonly agentId: string
  private readonly timing: ResolvedTiming
  private readonly transport: SessionTransport
  private readonly log: Logger
  private sessionId = ''
  private nextSeq = 1
  private readonly outstanding = new Set<number>()
  private localDeadline = 0
  private cancelKeepAlive?: Cancel
  private stopped = false
  private opening?: Promise<void>
  private readonly lostListeners = new Set<(sessionId: string) => void>()

  /**
   * Runs after every successful open, before `open()` resolves: the agent registers under the new session,
   * unless the open registered it already (`registered`: the entry that did, see `registration`).
   */
  afterOpen: (sessionId: string, registered?: OpenSessionAndRegisterCommand) => Promise<void> = async () => {}

  /**
   * The registration to open the session with, in one entry (`openSessionAndRegister`: a join is one Raft
   * entry, not an open and then a registration); undefined to open alone and register in `afterOpen`, as
   * while the cluster version does not admit the command. Asked at every open.
   */
  registration: (open: {
    sessionId: string
    agentId: string
    ttlMs: number
  }) => OpenSessionAndRegisterCommand | undefined = () => undefined

  private readonly scheduler: Scheduler
  private readonly newSessionId: () => string

  /** `newSessionId`: where fresh session ids come from (the simulator's are drawn from its seed). */
  constructor(
    agentId: string,
    timing: ResolvedTiming,
    transport: SessionTransport,
    log: Logger,
    scheduler: Scheduler,
    newSessionId: () => string = () => `${agentId}/${crypto.randomUUID()}`,
  ) {
    this.scheduler = scheduler
    this.newSessionId = newSessionId
    this.agentId = agentId
    this.timing = timing
    this.transport = transport
    this.log = log
  }

  get id(): string {
    return this.sessionId
  }

  /** Local monotonic time (the scheduler's `now`) until which the session surely lives in the cluster. */
  validUntil(): number {
    return this.localDeadline
  }

  /** Open a fresh session (a new id: a lapsed session is never revived) and keep it alive. */
  async open(deadline: number): Promise<void> {
    for (;;) {
      this.opening ??= this.openFresh(deadline).finally(() => {
        this.opening = undefined
      })
      try {
        return await this.opening
      } catch (err) {
        // Callers share one attempt, bounded by the deadline of the caller that began it: when that ran out,
        // a caller with a later deadline tries again under its own, rather than fail long before it. (Found
        // by the simulator, 5 agents, seed 26: every call that joined an open begun 150 ticks earlier failed
        // at once when that open's deadline passed, 20 ticks into a healthy cluster.)
        if (!(err instanceof NoLeaderError) || this.scheduler.now() >= deadline) throw err
      }
    }
  }

  private async openFresh(deadline: number): Promise<void> {
    const sessionId = this.newSessionId()
    const ttlMs = this.timing.sessionTtlMs
    const sentAt = this.scheduler.now()
    const open = { type: 'openSession', sessionId, agentId: this.agentId, ttlMs } as const
    let registered = this.registration(open)
    let result: CommandResult
    for (;;) {
      try {
        result = await this.transport.submitRaw(registered ?? open, deadline)
        break
      } catch (err) {
        // The leader's cluster version does not admit the command (this agent's copy of the state is ahead
        // of it): nothing was proposed; the open goes alone and the registration after it.
        if (registered !== undefined && err instanceof UnsupportedVersionError) {
          registered = undefined
          continue
        }
        // openSession (and openSessionAndRegister) is idempotent for one id and agent: an attempt whose
        // outcome is unknown (its slot was covered by a snapshot on a deposed leader, say) is sent again while
        // the deadline allows. (Found by the simulator, seed 4: a call joining such an open failed 55 ticks
        // into a healthy cluster.)
        if (!(err instanceof NoLeaderError) || this.scheduler.now() >= deadline) throw err
      }
    }
    // Refused for good (its name is held by another live agent): as a registration of its own would be.
    if (registered !== undefined && result.type === 'error')
      throw new InvalidArgumentError(`could not register: ${result.message}`)
    if (result.type !== 'session') throw new Error(`Could not open a session: ${JSON.stringify(result)}`)
    this.sessionId = sessionId
    this.nextSeq = 1
    this.outstanding.clear()
    this.localDeadline = trustedUntil(this.timing, sentAt)
    this.log('opened session %s', sessionId)
    this.schedule()
    await this.afterOpen(sessionId, registered)
  }

  /** The ticket for the next command; pass it back to `done()` once its answer arrived (or was given up). */
  ticket(): SessionTicket {
    if (this.sessionId === '') throw new ClosedError('No session: the agent has not joined a cluster')
    const seq = this.nextSeq++
    this.outstanding.add(seq)
    let ackedBelow = seq
    for (const pending of this.outstanding) if (pending < ackedBelow) ackedBelow = pending
    return { id: this.sessionId, seq, ackedBelow }
  }

  done(ticket: SessionTicket): void {
    if (ticket.id === this.sessionId) this.outstanding.delete(ticket.seq)
  }

  /** Called when the replicated state says a session of ours ended. */
  ended(sessionId: string): void {
    if (sessionId !== this.sessionId || this.stopped) return
    this.log('session %s ended in the cluster', sessionId)
    this.sessionId = ''
    this.localDeadline = 0
    for (const listener of this.lostListeners) listener(sessionId)
    // Come back with a new session: the agent is alive, only its old lease is gone.
    this.open(this.scheduler.now() + this.timing.operationTimeoutMs).catch(err => {
      this.log.error('could not reopen a session: %e', err)
    })
  }

  onLost(listener: (sessionId: string) => void): () => void {
    this.lostListeners.add(listener)
    return () => this.lostListeners.delete(listener)
  }

  /** The next keep-alive `delayMs` from now (default: the regular `ttl / 4`). */
  private schedule(delayMs = this.timing.sessionTtlMs / 4): void {
    this.cancelKeepAlive?.()
    if (this.stopped) return
    this.cancelKeepAlive = this.scheduler.after(
      delayMs,
      () => {
        this.keepAlive().catch(err => this.log.error('keep-alive failed: %e', err))
      },
      { keepAlive: true },
    )
  }

  private async keepAlive(): Promise<void> {
    const sessionId = this.sessionId
    if (sessionId === '' || this.stopped) return
    const ttlMs = this.timing.sessionTtlMs
    const sentAt = this.scheduler.now()
    try {
      const outcome = await this.transport.keepAlive(sessionId, sentAt + ttlMs / 4)
      if (sessionId !== this.sessionId || this.stopped) return
      if (outcome.status === 'renewed') {
        this.localDeadline = Math.max(this.localDeadline, trustedUntil(this.timing, sentAt))
      } else {
        this.ended(sessionId)
        return
      }
    } catch (err) {
      if (err instanceof ClosedError) return
      if (!(err instanceof NoLeaderError)) throw err
      this.log('keep-alive of %s found no leader in time', sessionId)
      // The failed call took its whole window (ttl / 4) already: another full ttl / 4 before the next would
      // leave the lease untrusted for up to ttl / 4 on a cluster that has long had a leader again, and
      // the agent starts none of the tasks assigned to it meanwhile (simulator, 5 agents, seed 36: a worker
      // with a lapsed lease held a task until the leader's stalled-assignment clock took it back). So the
      // next goes after one election timeout, within which a healthy cluster has a leader.
      this.schedule(Math.min(this.timing.sessionTtlMs / 4, keepAliveRetryMs(this.timing)))
      return
    }
    this.schedule()
  }

  /** Stop keeping the session alive; with `close`, end it in the cluster now (leave). */
  async stop(close: boolean, deadline: number): Promise<void> {
    this.stopped = true
    this.cancelKeepAlive?.()
    const sessionId = this.sessionId
    if (close && sessionId !== '') {
      await this.transport.submitRaw({ type: 'closeSession', sessionId }, deadline)
    }
    this.sessionId = ''
    this.localDeadline = 0
  }
}

/** The pause before a keep-alive is sent again after one found no leader in time: an election timeout. */
export function keepAliveRetryMs(timing: Pick<ResolvedTiming, 'tickMs' | 'electionTicks'>): number {
  return timing.tickMs * timing.electionTicks
}

/**
 * The end of local trust in a session whose last acknowledged keep-alive was sent at `sentAt`: half the ttl
 * (the earliest a leader may expire the session of an agent declared dead), less the safety margin.
 */
export function trustedUntil(timing: ResolvedTiming, sentAt: number): number {
  const window = timing.sessionTtlMs / 2
  return sentAt + window - leaseMargin(timing, window)
}
