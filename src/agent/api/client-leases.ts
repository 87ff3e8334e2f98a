import type { ConclaveApi, LeaderEvent, Lock } from '../../api.ts'
import {
  ClosedError,
  ConclaveError,
  InvalidArgumentError,
  LimitExceededError,
  LockLostError,
} from '../../errors.ts'
import type { Cancel, Scheduler } from '../../time/scheduler.ts'
import { abortable, interruptible } from '../node/abort.ts'

/** A client's candidacy ended: this agent no longer leads the election on the client's behalf. */
export class LeadershipLostError extends ConclaveError {
  static override readonly name = 'LeadershipLostError'
  constructor(message = 'Leadership lost', options?: ErrorOptions) {
    super(message, 'LeadershipLostError', 'ERR_LEADERSHIP_LOST', options)
  }
}

/** The answer to a lock acquisition poll. `fencingToken` is a decimal string: JSON numbers lose bigints. */
export type LockPoll =
  | { handle: string; acquired: true; fencingToken: string }
  | { handle: string; acquired: false }

/** The answer to a campaign poll. */
export type CampaignPoll =
  | { handle: string; elected: true; term: number }
  | { handle: string; elected: false }

interface Deferred {
  promise: Promise<void>
  resolve(): void
}

/** Locks and candidacies one client peer may hold or wait for at once on this agent. */
export const MAX_HANDLES_PER_CLIENT = 64

interface LockHandle {
  kind: 'lock'
  id: string
  /** The client peer it is held for. */
  owner: string
  key: string
  ttl: number
  controller: AbortController
  /** Settles when the acquisition has succeeded or failed (never rejects). */
  settled: Promise<void>
  lock?: Lock
  error?: unknown
  /** The client has been told it holds the lock. */
  delivered: boolean
  disposed: boolean
  /** Cancels the pending drop of the handle (see `arm`). */
  timer?: Cancel
}

interface CandidacyHandle {
  kind: 'candidacy'
  id: string
  owner: string
  name: string
  ttl: number
  /** Stops waiting for the turn, or the campaign (which then withdraws the candidacy). */
  controller: AbortController
  /** Ends the leader watch; separate, because a campaign that won must be seen to be resigned. */
  watchController: AbortController
  settled: Promise<void>
  /** The campaign call returned: the cluster made this agent the leader. */
  campaigned: boolean
  elected: boolean
  lost: boolean
  term: number
  error?: unknown
  delivered: boolean
  disposed: boolean
  /** Resolves once this candidacy is over and its leadership (if any) resigned: the next local one may go. */
  done: Deferred
  /** Cancels the pending drop of the handle (see `arm`). */
  timer?: Cancel
}

type Handle = LockHandle | CandidacyHandle

/** How long a won campaign may take to show in this agent's replica. */
const CONFIRM_TIMEOUT_MS = 10_000

export interface ClientLeasesOptions {
  /** How long a pending acquisition or candidacy waits for the client's next poll before it is dropped. */
  graceMs: number
  /** Aborts when the agent stops. */
  closed: AbortSignal
  log?: (message: string, err: unknown) => void
  scheduler: Scheduler
}

/**
 * Locks and named-election candidacies the serving agent holds on behalf of clients that are not members,
 * each under a random handle. The client keeps them by talking: a pending acquisition or candidacy is
 * dropped when no poll comes within `graceMs`; a delivered lock lapses after its ttl without `extend`
 * (the cluster expires it); a delivered leadership is resigned after its ttl without `extend`. So a client
 * that dies lets everything go.
 *
 * One agent has one candidacy per election (its session's), so candidacies for the same name taken here
 * for different clients queue locally, first come first served: a client leads only while no other
 * client of this agent does.
 */
export class ClientLeases {
  private readonly api: ConclaveApi
  private readonly options: ClientLeasesOptions
  private readonly handles = new Map<string, Handle>()
  /** Live handles per client peer. */
  private readonly owned = new Map<string, number>()
  /** Per election name: resolves when the last local candidacy queued for it is over. */
  private readonly turns = new Map<string, Promise<void>>()

  constructor(api: ConclaveApi, options: ClientLeasesOptions) {
    this.api = api
    this.options = options
    options.closed.addEventListener('abort', () => this.close(), { once: true })
  }

  /** Number of live handles (tests). */
  get size(): number {
    return this.handles.size
  }

  // ---------- locks ----------

  /** `permits` > 1: a permit of the semaphore `key` (each a lock with its own fencing token). */
  acquireLock(
    key: string,
    ttl: number,
    waitMs: number,
    owner = '',
    closed?: AbortSignal,
    options: { permits?: number } = {},
  ): Promise<LockPoll> {
    // Checked before anything is held (a bad count throws here).
    const semaphore =
      options.permits === undefined ? undefined : this.api.locks.semaphore(key, options.permits)
    this.checkOpen()
    this.own(owner)
    const entry: LockHandle = {
      kind: 'lock',
      id: crypto.randomUUID(),
      owner,
      key,
      ttl,
      controller: new AbortController(),
      settled: Promise.resolve(),
      delivered: false,
      disposed: false,
    }
    this.handles.set(entry.id, entry)
    const signal = entry.controller.signal
    const acquired =
      semaphore === undefined
        ? this.api.locks.acquire(key, ttl, { signal })
        : semaphore.acquire(ttl, { signal })
    entry.settled = acquired.then(
      lock => {
        entry.lock = lock
        if (lock.lost.aborted) this.onLockLost(entry)
        else lock.lost.addEventListener('abort', () => this.onLockLost(entry), { once: true })
      },
      (err: unknown) => {
        entry.error = err
      },
    )
    return this.answerLock(entry, waitMs, closed)
  }

  pollLock(handle: string, waitMs: number, closed?: AbortSignal): Promise<LockPoll> {
    this.checkOpen()
    const entry = this.handles.get(handle)
    if (entry?.kind !== 'lock') {
      throw new LockLostError(`no lock acquisition under handle ${handle}: released, lost or abandoned`)
    }
    return this.answerLock(entry, waitMs, closed)
  }

  async extendLock(handle: string, ttl: number | undefined): Promise<void> {
    this.checkOpen()
    const entry = this.handles.get(handle)
    if (entry?.kind !== 'lock') throw new LockLostError(`no lock under handle ${handle}: released or lost`)
    if (entry.lock === undefined)
      throw new InvalidArgumentError(`the lock under ${handle} is not acquired yet`)
    entry.timer?.()
    try {
      await entry.lock.extend(ttl ?? entry.ttl)
      if (ttl !== undefined) entry.ttl = ttl
    } catch (err) {
      if (err instanceof LockLostError) this.dispose(entry).catch(() => {})
      throw err
    }
  }

  async releaseLock(handle: string): Promise<void> {
    const entry = this.handles.get(handle)
    if (entry?.kind !== 'lock') return
    await this.dispose(entry)
  }

  // ---------- named elections ----------

  campaign(
    name: string,
    ttl: number,
    waitMs: number,
    owner = '',
    closed?: AbortSignal,
    options: { value?: unknown } = {},
  ): Promise<CampaignPoll> {
    this.checkOpen()
    this.own(owner)
    const controller = new AbortController()
    let resolveDone = (): void => {}
    const done: Deferred = {
      promise: new Promise<void>(resolve => {
        resolveDone = resolve
      }),
      resolve: () => resolveDone(),
    }
    const entry: CandidacyHandle = {
      kind: 'candidacy',
      id: crypto.randomUUID(),
      owner,
      name,
      ttl,
      controller,
      watchController: new AbortController(),
      settled: Promise.resolve(),
      campaigned: false,
      elected: false,
      lost: false,
      term: 0,
      delivered: false,
      disposed: false,
      done,
    }
    const previous = this.turns.get(name) ?? Promise.resolve()
    const finished = Promise.all([previous, done.promise]).then(() => {})
    this.turns.set(name, finished)
    finished.then(() => {
      if (this.turns.get(name) === finished) this.turns.delete(name)
    })
    this.handles.set(entry.id, entry)
    entry.settled = (async () => {
      await abortable(previous, { signal: controller.signal })
      const election = this.api.elections(name)
      await election.campaign(
        options.value === undefined
          ? { signal: controller.signal }
          : { signal: controller.signal, value: options.value },
      )
      entry.campaigned = true
      await this.followLeadership(entry, election.watch({ signal: entry.watchController.signal }))
    })().catch((err: unknown) => {
      entry.error = err
    })
    return this.answerCampaign(entry, waitMs, closed)
  }

  pollCampaign(handle: string, waitMs: number, closed?: AbortSignal): Promise<CampaignPoll> {
    this.checkOpen()
    const entry = this.handles.get(handle)
    if (entry?.kind !== 'candidacy') {
      throw new LeadershipLostError(`no candidacy under handle ${handle}: resigned, lost or abandoned`)
    }
    return this.answerCampaign(entry, waitMs, closed)
  }

  /** Keeps a delivered leadership for another ttl; `LeadershipLostError` once it is gone. */
  extendLeadership(handle: string): { term: number } {
    this.checkOpen()
    const entry = this.handles.get(handle)
    if (entry?.kind !== 'candidacy') throw new LeadershipLostError(`no leadership under handle ${handle}`)
    if (entry.lost) {
      this.dispose(entry).catch(err => this.options.log?.('resign failed', err))
      throw new LeadershipLostError(`this agent no longer leads ${entry.name}`)
    }
    if (!entry.delivered) throw new InvalidArgumentError(`the candidacy under ${handle} is not elected yet`)
    this.arm(entry, entry.ttl)
    return { term: entry.term }
  }

  async resign(handle: string): Promise<void> {
    const entry = this.handles.get(handle)
    if (entry?.kind !== 'candidacy') return
    await this.dispose(entry)
  }

  close(): void {
    for (const entry of this.handles.values()) {
      entry.disposed = true
      entry.timer?.()
      entry.controller.abort()
      if (entry.kind === 'candidacy') {
        entry.watchController.abort()
        entry.done.resolve()
      }
    }
    this.handles.clear()
    this.owned.clear()
  }

  // ---------- internals ----------

  private async answerLock(entry: LockHandle, waitMs: number, closed?: AbortSignal): Promise<LockPoll> {
    entry.timer?.()
    await this.waitFor(entry.settled, waitMs, closed)
    if (entry.error !== undefined) {
      this.dispose(entry).catch(() => {})
      throw entry.error
    }
    if (entry.lock !== undefined) {
      if (!entry.lock.isHeld()) {
        this.dispose(entry).catch(() => {})
        throw new LockLostError(`lock ${entry.key} was lost`)
      }
      entry.delivered = true
      return { handle: entry.id, acquired: true, fencingToken: entry.lock.fencingToken.toString() }
    }
    this.arm(entry, this.options.graceMs)
    return { handle: entry.id, acquired: false }
  }

  private async answerCampaign(
    entry: CandidacyHandle,
    waitMs: number,
    closed?: AbortSignal,
  ): Promise<CampaignPoll> {
    entry.timer?.()
    await this.waitFor(entry.settled, waitMs, closed)
    if (entry.error !== undefined) {
      this.dispose(entry).catch(() => {})
      throw entry.error
    }
    if (entry.lost) {
      this.dispose(entry).catch(err => this.options.log?.('resign failed', err))
      throw new LeadershipLostError(`this agent no longer leads ${entry.name}`)
    }
    if (entry.elected) {
      entry.delivered = true
      this.arm(entry, entry.ttl)
      return { handle: entry.id, elected: true, term: entry.term }
    }
    this.arm(entry, this.options.graceMs)
    return { handle: entry.id, elected: false }
  }

  /** Drops the handle after `ms` without word from its client. */
  private arm(entry: Handle, ms: number): void {
    entry.timer?.()
    entry.timer = this.options.scheduler.after(ms, () => {
      this.dispose(entry).catch(err => this.options.log?.(`dropping client ${entry.kind} failed`, err))
    })
  }

  private onLockLost(entry: LockHandle): void {
    // Kept for a grace period, so that the client's next call learns of the loss rather than of a
    // handle it never heard of.
    if (!entry.disposed) this.arm(entry, this.options.graceMs)
  }

  /**
   * Waits until this agent's replica shows it leading (the campaign's answer may come from the leader
   * before the local replica applied it, and the term must be the one of this leadership), then marks the
   * candidacy lost at the first change after that.
   */
  private async followLeadership(entry: CandidacyHandle, events: AsyncIterable<LeaderEvent>): Promise<void> {
    const selfId = this.api.id
    const iterator = events[Symbol.asyncIterator]()
    // The replica is normally a heartbeat behind at most; past this, something replaced its history.
    const giveUp = this.options.scheduler.after(CONFIRM_TIMEOUT_MS, () => iterator.return?.(), {
      keepAlive: true,
    })
    try {
      for (;;) {
        const next = await iterator.next()
        if (next.done === true) throw new LeadershipLostError(`leadership of ${entry.name} not confirmed`)
        if (next.value.type !== 'resigned' && next.value.leaderId === selfId) {
          entry.term = next.value.term
          break
        }
      }
    } finally {
      giveUp()
    }
    entry.elected = true
    const watchForLoss = async (): Promise<void> => {
      for (;;) {
        const next = await iterator.next()
        if (next.done === true) return
        if (next.value.type === 'resigned' || next.value.leaderId !== selfId) {
          entry.lost = true
          await iterator.return?.()
          return
        }
      }
    }
    watchForLoss().catch(() => {
      entry.lost = true
    })
  }

  /** Forgets the handle and gives back what it held: cancels a pending request, releases or resigns. */
  private async dispose(entry: Handle): Promise<void> {
    if (entry.disposed) return
    entry.disposed = true
    entry.timer?.()
    this.handles.delete(entry.id)
    const owned = (this.owned.get(entry.owner) ?? 1) - 1
    if (owned <= 0) this.owned.delete(entry.owner)
    else this.owned.set(entry.owner, owned)
    if (entry.kind === 'lock') {
      entry.controller.abort()
      await entry.settled
      await entry.lock?.release()
      return
    }
    if (!entry.campaigned) entry.controller.abort()
    try {
      // A campaign that has returned is confirmed (or found lost) before it is resigned.
      await entry.settled
      if (entry.elected && !entry.lost) await this.api.elections(entry.name).resign()
    } finally {
      entry.watchController.abort()
      entry.done.resolve()
    }
  }

  /** Counts one more handle of `owner`; `LimitExceededError` past `MAX_HANDLES_PER_CLIENT`. */
  private own(owner: string): void {
    const held = this.owned.get(owner) ?? 0
    if (held >= MAX_HANDLES_PER_CLIENT) {
      throw new LimitExceededError(
        `at most ${MAX_HANDLES_PER_CLIENT} locks and candidacies per client on this agent`,
      )
    }
    this.owned.set(owner, held + 1)
  }

  /**
   * Until `settled`, `ms` or the client's stream closing (`gone`), whichever is first; `ClosedError` if the
   * agent closes meanwhile.
   */
  private async waitFor(settled: Promise<void>, ms: number, gone?: AbortSignal): Promise<void> {
    await interruptible<void>({ closed: this.options.closed }, settle => {
      const done = (): void => settle({ value: undefined })
      if (gone?.aborted === true) {
        done()
        return undefined
      }
      gone?.addEventListener('abort', done, { once: true })
      settled.then(done, done)
      const cancel = this.options.scheduler.after(ms, done, { keepAlive: true })
      return () => {
        cancel()
        gone?.removeEventListener('abort', done)
      }
    })
  }

  private checkOpen(): void {
    if (this.options.closed.aborted) throw new ClosedError()
  }
}
