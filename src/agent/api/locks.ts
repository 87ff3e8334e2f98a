import type { Abortable, DistributedLock, Lock, Semaphore } from '../../api.ts'
import { AbortError, InvalidArgumentError, LockLostError } from '../../errors.ts'
import type { Command, LockGrantedEvent } from '../../state/index.ts'
import type { Cancel, Scheduler } from '../../time/scheduler.ts'
import { abortable } from '../node/abort.ts'
import type { Client } from '../node/client.ts'
import type { Replica } from '../node/replica.ts'
import type { SessionKeeper } from '../node/session.ts'
import { leaseMargin, type ResolvedTiming } from '../options.ts'
import { checkKey, checkOptions, checkTtl } from '../validate.ts'
import { unexpected } from './consensus.ts'

interface LockContext {
  client: Client
  replica: Replica
  session: SessionKeeper
  timing: ResolvedTiming
  closed: AbortSignal
  /** Monotonic time for the local leases; the timer that watches them. */
  scheduler: Scheduler
}

/**
 * Distributed locks bound to this agent's session: FIFO waiters, fencing tokens that are the Raft index of
 * the grant, and a local lease that makes `isHeld()` turn false before the cluster could give the lock to
 * anyone else.
 */
export class Locks implements DistributedLock {
  private readonly context: LockContext

  constructor(context: LockContext) {
    this.context = context
  }

  async acquire(key: string, ttl: number, options?: Abortable): Promise<Lock> {
    const lock = await this.take(key, 1, ttl, true, options)
    if (lock === undefined) throw new Error('acquire returned without a lock')
    return lock
  }

  async tryAcquire(
    key: string,
    ttl: number,
    options?: Abortable,
  ): Promise<{ lock: Lock | undefined; acquired: boolean }> {
    const lock = await this.take(key, 1, ttl, false, options)
    return { lock, acquired: lock !== undefined }
  }

  /**
   * A semaphore of `permits` (an integer >= 1) on `key`, in the same key space as locks (a lock is one
   * permit). Nothing is sent until `acquire`.
   */
  semaphore(key: string, permits: number): Semaphore {
    checkKey(key)
    if (!Number.isSafeInteger(permits) || permits < 1) {
      throw new InvalidArgumentError('permits must be an integer >= 1')
    }
    return {
      acquire: async (ttl, options) => {
        const lock = await this.take(key, permits, ttl, true, options)
        if (lock === undefined) throw new Error('acquire returned without a permit')
        return lock
      },
      tryAcquire: async (ttl, options) => {
        const lock = await this.take(key, permits, ttl, false, options)
        return { lock, acquired: lock !== undefined }
      },
    }
  }

  /** `permits` 1 is a lock (`lockAcquire`), more a semaphore (`semaphoreAcquire`). */
  private async take(
    key: string,
    permits: number,
    ttl: number,
    wait: boolean,
    options?: Abortable,
  ): Promise<Lock | undefined> {
    checkKey(key)
    const ttlMs = checkTtl(ttl)
    checkOptions(options, ['signal'])
    const signal = options?.signal
    const release = this.context.replica.waiters.take()
    try {
      return await this.attempt(key, permits, ttlMs, wait, signal)
    } finally {
      release()
    }
  }

  private async attempt(
    key: string,
    permits: number,
    ttlMs: number,
    wait: boolean,
    signal: AbortSignal | undefined,
  ): Promise<Lock | undefined> {
    const { client, replica, session, scheduler } = this.context
    for (;;) {
      if (session.id === '') await session.open(client.deadline())
      const sessionId = session.id
      const requestId = crypto.randomUUID()
      // Listen before asking: the grant can be applied here before the answer to the request arrives.
      const grant = waitForGrant(replica, session, key, sessionId, requestId)
      try {
        const sentAt = scheduler.now()
        const command: Command =
          permits === 1
            ? { type: 'lockAcquire', key, sessionId, requestId, ttlMs, wait }
            : { type: 'semaphoreAcquire', key, sessionId, requestId, ttlMs, wait, permits }
        const result = await client.submit(command, signal, { handlesSessionExpiry: true })
        if (result.type === 'error' && result.code === 'PermitsMismatch') {
          throw new InvalidArgumentError(result.message)
        }
        if (result.type === 'lockGranted') {
          return new HeldLock(this.context, key, sessionId, result.fencingToken, sentAt, ttlMs)
        }
        if (result.type === 'error' && result.code === 'Busy' && !wait) return undefined
        if (result.type === 'error' && result.code === 'SessionExpired') {
          session.ended(sessionId)
          continue
        }
        if (result.type !== 'lockQueued') throw unexpected(result)
        const granted = await grant.wait(signal, this.context.closed)
        if (granted === undefined) continue // our session ended while we waited: queue again under the new one
        // The grant's lease was stamped when another agent's release applied, at a time we cannot know.
        // Renewing it now gives a lease whose start we can bound: our send time.
        const renewedAt = scheduler.now()
        const renewed = await client.submit(
          { type: 'lockExtend', key, sessionId, fencingToken: granted.fencingToken, ttlMs },
          signal,
          { handlesSessionExpiry: true },
        )
        if (renewed.type === 'lockExtended') {
          return new HeldLock(this.context, key, sessionId, granted.fencingToken, renewedAt, ttlMs)
        }
        if (renewed.type === 'error' && (renewed.code === 'LockLost' || renewed.code === 'SessionExpired'))
          continue
        throw unexpected(renewed)
      } catch (err) {
        if (err instanceof AbortError) {
          // Leave the queue (or give back a lock granted meanwhile); best effort, without the caller's signal.
          client
            .submitRaw({ type: 'lockCancel', key, sessionId, requestId }, client.deadline())
            .catch(() => {})
        }
        throw err
      } finally {
        grant.cancel()
      }
    }
  }
}

interface GrantWaiter {
  /** The grant, or undefined if the session ended first. */
  wait(signal: AbortSignal | undefined, closed: AbortSignal): Promise<LockGrantedEvent | undefined>
  cancel(): void
}

function waitForGrant(
  replica: Replica,
  session: SessionKeeper,
  key: string,
  sessionId: string,
  requestId: string,
): GrantWaiter {
  let settle: ((event: LockGrantedEvent | undefined) => void) | undefined
  let early: LockGrantedEvent | undefined | null = null
  const finish = (event: LockGrantedEvent | undefined): void => {
    if (settle !== undefined) settle(event)
    else if (early === null) early = event
  }
  const unsubscribeEvents = replica.onEvent(event => {
    if (event.type === 'lockGranted' && event.key === key && event.requestId === requestId) {
      if (event.sessionId === sessionId) finish(event)
    }
  })
  const unsubscribeLost = session.onLost(lost => {
    if (lost === sessionId) finish(undefined)
  })
  const cancel = (): void => {
    unsubscribeEvents()
    unsubscribeLost()
  }
  return {
    cancel,
    wait(signal, closed) {
      if (early !== null) return Promise.resolve(early)
      return abortable(
        new Promise<LockGrantedEvent | undefined>(resolve => {
          settle = resolve
        }),
        { signal, closed },
      )
    },
  }
}

/**
 * A granted lock. Its local lease ends `ttl - margin` after the send time of the request that set it: the
 * leader stamps that request later and expires the lock no sooner than `ttl` after its stamp (a new leader
 * waits out the remaining lease on its own monotonic clock), so `isHeld()` is never a false true.
 */
class HeldLock implements Lock {
  readonly key: string
  readonly fencingToken: bigint
  private readonly token: number
  private readonly sessionId: string
  private readonly context: LockContext
  private readonly controller = new AbortController()
  private leaseEnd: number
  private released = false
  private cancelWatch?: Cancel
  private readonly unsubscribe: (() => void)[] = []

  /** `sentAt` is when the request that set the lease was sent (the scheduler's `now`); `ttlMs` its length. */
  constructor(
    context: LockContext,
    key: string,
    sessionId: string,
    token: number,
    sentAt: number,
    ttlMs: number,
  ) {
    this.context = context
    this.key = key
    this.sessionId = sessionId
    this.token = token
    this.fencingToken = BigInt(token)
    this.leaseEnd = sentAt + ttlMs - leaseMargin(context.timing, ttlMs)
    this.unsubscribe.push(
      context.replica.onEvent(event => {
        if (event.type === 'lockReleased' && event.key === key && event.fencingToken === token) {
          this.markLost(
            `lock ${event.reason === 'released' ? 'released' : event.reason === 'expired' ? 'expired' : 'lost with its session'}`,
          )
        }
      }),
      context.session.onLost(lost => {
        if (lost === sessionId) this.markLost('the session holding the lock ended')
      }),
    )
    const onClose = (): void => this.markLost('the agent stopped')
    context.closed.addEventListener('abort', onClose, { once: true })
    this.unsubscribe.push(() => context.closed.removeEventListener('abort', onClose))
    this.watchLease()
  }

  get lost(): AbortSignal {
    return this.controller.signal
  }

  isHeld(): boolean {
    if (this.released || this.controller.signal.aborted) return false
    const now = this.context.scheduler.now()
    return now < this.leaseEnd && now < this.context.session.validUntil()
  }

  async extend(ttl: number, options?: Abortable): Promise<void> {
    const ttlMs = checkTtl(ttl)
    checkOptions(options, ['signal'])
    if (!this.isHeld()) throw new LockLostError(`lock ${this.key} is no longer held`)
    const sentAt = this.context.scheduler.now()
    const result = await this.context.client.submit(
      { type: 'lockExtend', key: this.key, sessionId: this.sessionId, fencingToken: this.token, ttlMs },
      options?.signal,
      { handlesSessionExpiry: true },
    )
    if (result.type === 'lockExtended') {
      this.leaseEnd = sentAt + ttlMs - leaseMargin(this.context.timing, ttlMs)
      this.watchLease()
      return
    }
    if (result.type === 'error' && (result.code === 'LockLost' || result.code === 'SessionExpired')) {
      this.markLost('the lock expired before it was extended')
      throw new LockLostError(`lock ${this.key} was lost`)
    }
    throw unexpected(result)
  }

  async release(options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    if (this.released) return
    this.released = true
    this.stopWatching()
    if (this.controller.signal.aborted) return
    const result = await this.context.client.submit(
      { type: 'lockRelease', key: this.key, sessionId: this.sessionId, fencingToken: this.token },
      options?.signal,
      { handlesSessionExpiry: true },
    )
    // NotHolder: it expired meanwhile; either way nobody holds it on our behalf any more.
    if (result.type !== 'ok' && !(result.type === 'error' && result.code === 'NotHolder')) {
      if (!(result.type === 'error' && result.code === 'SessionExpired')) throw unexpected(result)
    }
  }

  /**
   * `lost` aborts only on a definitive loss: the lock's own lease running out unextended (here), a release
   * or expiry in the replicated state, or the end of the session (events). A lapse of the session's local
   * trust window (a slow keep-alive, a paused process) only makes `isHeld()` false until the next keep-alive
   * commits: the lock may still be held, and usually is.
   */
  private watchLease(): void {
    this.cancelWatch?.()
    if (this.released || this.controller.signal.aborted) return
    const wait = this.leaseEnd - this.context.scheduler.now()
    if (wait <= 0) {
      this.markLost('the lease ran out before it was extended')
      return
    }
    this.cancelWatch = this.context.scheduler.after(wait, () => this.watchLease())
  }

  private markLost(reason: string): void {
    if (this.controller.signal.aborted) return
    if (!this.released) this.controller.abort(new LockLostError(`${this.key}: ${reason}`))
    this.stopWatching()
  }

  private stopWatching(): void {
    this.cancelWatch?.()
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe()
  }
}
