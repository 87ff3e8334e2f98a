import { NO_SHELL_BUGS, type ShellBugs } from '../shell-bugs.ts'
import type {
  LockAcquireCommand,
  LockCancelCommand,
  LockExpireCommand,
  LockExtendCommand,
  LockReleaseCommand,
  SemaphoreAcquireCommand,
} from './commands.ts'
import type { ApplyContext } from './context.ts'
import type { LockReleasedEvent } from './events.ts'
import { type CommandResult, errorResult, OK, UNCHANGED } from './results.ts'
import { type SessionEndListener, type SessionTable, sessionExpired } from './sessions.ts'
import { checkSnapshot, isCount, isId, isPositive, isRecord, snapshotArray } from './validate.ts'

export interface LockHolder {
  sessionId: string
  requestId: string
  /** Raft index of the entry that granted the lock. */
  fencingToken: number
  expiresAt: number
  /** The lease last granted or extended: a lock never has more than this left (the leader's clock-skew guard). */
  ttlMs: number
  /**
   * Raft index of the entry that last set the lease (the grant or the latest extend): what the leader times
   * the lease from on its monotonic clock, and what its `lockExpire` names, so an expiry planned before an
   * extend cannot end the extended lease.
   */
  leaseIndex: number
}

export interface LockWaiter {
  sessionId: string
  requestId: string
  /** The lease the lock gets when granted: grant time + ttlMs. */
  ttlMs: number
}

/** A lock as queries show it: the holder (absent only transiently, never between entries) and the FIFO queue. */
export interface LockInfo {
  key: string
  holder: LockHolder
  waiters: LockWaiter[]
}

/** A semaphore (or a lock: one permit) as queries show it: its holders in grant order and the FIFO queue. */
export interface SemaphoreInfo {
  key: string
  permits: number
  holders: LockHolder[]
  waiters: LockWaiter[]
}

interface LockRecord {
  /** 1 for a lock. */
  permits: number
  /** At most `permits`, in grant order. */
  holders: LockHolder[]
  waiters: LockWaiter[]
  /** The last fencing token granted on this key. */
  lastToken: number
}

/**
 * Lock section of a snapshot, in table order: a lock with a holder as `{key, holder, waiters}` (the form
 * that predates semaphores), anything else with `permits`, `holders` and `lastToken` instead of `holder`.
 */
export type LockSnapshot =
  | { key: string; holder: LockHolder; waiters: LockWaiter[] }
  | { key: string; permits: number; holders: LockHolder[]; waiters: LockWaiter[]; lastToken: number }

/**
 * Locks and semaphores bound to sessions, with FIFO waiters. Nothing here expires by time: a lease ends only
 * by the leader's `lockExpire`, which it proposes from its own monotonic clock (`cluster/lock-leases.ts`);
 * entry timestamps only label leases (`expiresAt`, for queries). An acquire of a held lock whose lease looks
 * overdue waits (or is `Busy`) like any other until that expiry entry. A lock is a semaphore of one permit. A
 * grant's fencing token is the granting entry's index, or one more than the key's last token if that is
 * higher (an entry that grants several permits of one key, when a session holding several ends): tokens of
 * a key strictly increase. A key with neither holders nor waiters has no record, unless its last token is
 * not below the current index (kept so the next token still increases).
 */
export class LockTable implements SessionEndListener {
  private readonly records = new Map<string, LockRecord>()
  /** Keys each session holds or waits for: what to clean up when it ends. Derived; not in snapshots. */
  private readonly keysBySession = new Map<string, Set<string>>()
  private readonly sessions: SessionTable
  /** @internal The `lease-inline-expiry` bug switch: an acquire or extend ends an overdue lease at its own timestamp. */
  private readonly inlineExpiry: boolean
  /** @internal The `semaphore-extra-permit` bug switch: a semaphore of N > 1 permits grants N + 1. */
  private readonly extraPermit: boolean

  constructor(sessions: SessionTable)
  /** @internal With test-only switches (`src/shell-bugs.ts`). Stripped from the published declarations. */
  constructor(sessions: SessionTable, bugs: ShellBugs)
  constructor(sessions: SessionTable, bugs: ShellBugs = NO_SHELL_BUGS) {
    this.sessions = sessions
    this.inlineExpiry = bugs.has('lease-inline-expiry')
    this.extraPermit = bugs.has('semaphore-extra-permit')
  }

  /** Every holder of every key, for the leader's lease timing. */
  *holders(): IterableIterator<{ key: string; holder: Readonly<LockHolder> }> {
    for (const [key, record] of this.records) {
      for (const holder of record.holders) yield { key, holder }
    }
  }

  /** The key's first holder and its queue, if held. */
  info(key: string): LockInfo | undefined {
    const record = this.records.get(key)
    if (record === undefined || record.holders.length === 0) return undefined
    return { key, holder: { ...record.holders[0] }, waiters: record.waiters.map(waiter => ({ ...waiter })) }
  }

  /** The key's permits, holders and queue, if held. */
  semaphoreInfo(key: string): SemaphoreInfo | undefined {
    const record = this.records.get(key)
    if (record === undefined || record.holders.length === 0) return undefined
    return {
      key,
      permits: record.permits,
      holders: record.holders.map(holder => ({ ...holder })),
      waiters: record.waiters.map(waiter => ({ ...waiter })),
    }
  }

  /** Held locks and permits whose lease has run out at `now`. */
  due(now: number): { key: string; fencingToken: number }[] {
    const due: { key: string; fencingToken: number }[] = []
    for (const [key, record] of this.records) {
      for (const holder of record.holders) {
        if (holder.expiresAt <= now) due.push({ key, fencingToken: holder.fencingToken })
      }
    }
    return due
  }

  acquire(command: LockAcquireCommand, context: ApplyContext): CommandResult {
    return this.take(command, 1, context)
  }

  acquireSemaphore(command: SemaphoreAcquireCommand, context: ApplyContext): CommandResult {
    return this.take(command, command.permits, context)
  }

  release(command: LockReleaseCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.key)
    const position = record === undefined ? -1 : findHolder(record, command.fencingToken, command.sessionId)
    if (position < 0) {
      return errorResult('NotHolder', `token ${command.fencingToken} does not hold lock ${command.key}`)
    }
    this.releaseHolder(command.key, record!, position, 'released', context)
    return OK
  }

  extend(command: LockExtendCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.key)
    const position = record === undefined ? -1 : findHolder(record, command.fencingToken, command.sessionId)
    if (position < 0) {
      return errorResult('LockLost', `token ${command.fencingToken} no longer holds lock ${command.key}`)
    }
    const holder = record!.holders[position]
    // A holder still here was not expired by the leader, so nobody else got its permit: extending it is safe
    // whatever the entry's timestamp says (a leader's wall clock ahead must not end a lease).
    if (this.inlineExpiry && holder.expiresAt <= context.time) {
      if (record!.permits === 1) this.releaseHolder(command.key, record!, position, 'expired', context)
      return errorResult('LockLost', `lock ${command.key} expired`)
    }
    holder.expiresAt = context.time + command.ttlMs
    holder.ttlMs = command.ttlMs
    holder.leaseIndex = context.index
    return { type: 'lockExtended', fencingToken: holder.fencingToken, expiresAt: holder.expiresAt }
  }

  cancel(command: LockCancelCommand, context: ApplyContext): CommandResult {
    const { key, sessionId, requestId } = command
    const record = this.records.get(key)
    if (record === undefined) return UNCHANGED
    const held = record.holders.findIndex(
      holder => holder.sessionId === sessionId && holder.requestId === requestId,
    )
    if (held >= 0) {
      this.releaseHolder(key, record, held, 'released', context)
      return OK
    }
    const waiting = findWaiter(record, sessionId, requestId)
    if (waiting < 0) return UNCHANGED
    record.waiters.splice(waiting, 1)
    this.unindexIfUninvolved(sessionId, key, record)
    return OK
  }

  /**
   * The leader's expiry of a lease, decided on its monotonic clock: it names the lease by `leaseIndex`, and
   * a lease extended since is left alone. An entry without `leaseIndex` (a leader of an older version) is
   * checked against its timestamp, as it was then.
   */
  expire(command: LockExpireCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.key)
    const position = record === undefined ? -1 : findHolder(record, command.fencingToken)
    if (position < 0) return UNCHANGED
    const holder = record!.holders[position]
    if (
      command.leaseIndex !== undefined
        ? holder.leaseIndex !== command.leaseIndex
        : holder.expiresAt > context.time
    )
      return UNCHANGED
    this.releaseHolder(command.key, record!, position, 'expired', context)
    return OK
  }

  onSessionEnd(sessionId: string, context: ApplyContext): void {
    const keys = this.keysBySession.get(sessionId)
    if (keys === undefined) return
    this.keysBySession.delete(sessionId)
    // Sorted: the set's order depends on history (and is rebuilt on restore); events must not.
    for (const key of [...keys].sort()) {
      const record = this.records.get(key)
      if (record === undefined) continue
      // Drop its waits first, so the releases below cannot hand a permit to the same ending session.
      record.waiters = record.waiters.filter(waiter => waiter.sessionId !== sessionId)
      let position = record.holders.findIndex(holder => holder.sessionId === sessionId)
      if (position < 0) this.dropIfIdle(key, record, context)
      while (position >= 0) {
        this.releaseHolder(key, record, position, 'session', context)
        position = record.holders.findIndex(holder => holder.sessionId === sessionId)
      }
    }
  }

  toSnapshot(): LockSnapshot[] {
    const locks: LockSnapshot[] = []
    for (const [key, record] of this.records) {
      const holder = record.holders[0]
      if (record.permits === 1 && holder !== undefined && holder.fencingToken === record.lastToken) {
        locks.push({ key, holder, waiters: record.waiters })
      } else {
        locks.push({
          key,
          permits: record.permits,
          holders: record.holders,
          waiters: record.waiters,
          lastToken: record.lastToken,
        })
      }
    }
    return locks
  }

  restore(data: unknown): void {
    for (const lock of snapshotArray(data, 'locks')) {
      checkSnapshot(isRecord(lock) && isId(lock.key), 'locks')
      const waiters: LockWaiter[] = []
      for (const waiter of snapshotArray(lock.waiters, 'locks.waiters')) {
        checkSnapshot(isWaiter(waiter), 'locks.waiters')
        waiters.push({ sessionId: waiter.sessionId, requestId: waiter.requestId, ttlMs: waiter.ttlMs })
      }
      let record: LockRecord
      if (lock.permits === undefined) {
        checkSnapshot(isHolder(lock.holder), 'locks')
        const holder = copyHolder(lock.holder)
        record = { permits: 1, holders: [holder], waiters, lastToken: holder.fencingToken }
      } else {
        checkSnapshot(isPositive(lock.permits) && isCount(lock.lastToken), 'locks')
        const holders: LockHolder[] = []
        for (const holder of snapshotArray(lock.holders, 'locks.holders')) {
          checkSnapshot(isHolder(holder) && holder.fencingToken <= lock.lastToken, 'locks.holders')
          holders.push(copyHolder(holder))
        }
        checkSnapshot(holders.length <= lock.permits + (this.extraPermit ? 1 : 0), 'locks.holders')
        record = { permits: lock.permits, holders, waiters, lastToken: lock.lastToken }
      }
      this.records.set(lock.key, record)
      for (const holder of record.holders) this.index(holder.sessionId, lock.key)
      for (const waiter of waiters) this.index(waiter.sessionId, lock.key)
    }
  }

  private take(
    command: LockAcquireCommand | SemaphoreAcquireCommand,
    permits: number,
    context: ApplyContext,
  ): CommandResult {
    const { key, sessionId, requestId } = command
    if (!this.sessions.isLive(sessionId, context)) return sessionExpired(sessionId)
    let record = this.records.get(key)
    if (record !== undefined && record.permits !== permits) {
      if (record.holders.length > 0 || record.waiters.length > 0) {
        return errorResult(
          'PermitsMismatch',
          `${key} is in use with ${record.permits} permit(s), not ${permits}`,
        )
      }
      record.permits = permits // an idle record kept only for its last token
    }
    if (this.inlineExpiry && record !== undefined && permits === 1) {
      const holder = record.holders[0]
      if (holder !== undefined && holder.expiresAt <= context.time) {
        // The bug switch: the acquirer's timestamp decides the lease ran out, past the leader's guard.
        this.releaseHolder(key, record, 0, 'expired', context)
        record = this.records.get(key)
      }
    }
    if (record === undefined) {
      record = { permits, holders: [], waiters: [], lastToken: 0 }
      this.records.set(key, record)
    }
    const held = record.holders.find(
      holder => holder.sessionId === sessionId && holder.requestId === requestId,
    )
    if (held !== undefined) {
      return { type: 'lockGranted', fencingToken: held.fencingToken, expiresAt: held.expiresAt }
    }
    const waiting = findWaiter(record, sessionId, requestId)
    if (waiting >= 0) return { type: 'lockQueued', position: waiting + 1 }
    const permitsGiven = record.permits + (this.extraPermit && record.permits > 1 ? 1 : 0)
    if (record.holders.length < permitsGiven && record.waiters.length === 0) {
      this.index(sessionId, key)
      const holder = this.grant(key, record, sessionId, requestId, command.ttlMs, context)
      return { type: 'lockGranted', fencingToken: holder.fencingToken, expiresAt: holder.expiresAt }
    }
    if (!command.wait) return errorResult('Busy', `lock ${key} is held`)
    record.waiters.push({ sessionId, requestId, ttlMs: command.ttlMs })
    this.index(sessionId, key)
    return { type: 'lockQueued', position: record.waiters.length }
  }

  /** Frees one permit and hands free permits to the first waiters, in the same entry. */
  private releaseHolder(
    key: string,
    record: LockRecord,
    position: number,
    reason: LockReleasedEvent['reason'],
    context: ApplyContext,
  ): void {
    const [holder] = record.holders.splice(position, 1)
    context.events.push({
      type: 'lockReleased',
      key,
      sessionId: holder.sessionId,
      requestId: holder.requestId,
      fencingToken: holder.fencingToken,
      reason,
    })
    this.unindexIfUninvolved(holder.sessionId, key, record)
    while (record.holders.length < record.permits) {
      const next = record.waiters.shift()
      if (next === undefined) break
      this.grant(key, record, next.sessionId, next.requestId, next.ttlMs, context)
    }
    this.dropIfIdle(key, record, context)
  }

  /** Forgets a record with neither holders nor waiters, unless the next grant needs its last token. */
  private dropIfIdle(key: string, record: LockRecord, context: ApplyContext): void {
    if (record.holders.length === 0 && record.waiters.length === 0 && record.lastToken < context.index) {
      this.records.delete(key)
    }
  }

  private grant(
    key: string,
    record: LockRecord,
    sessionId: string,
    requestId: string,
    ttlMs: number,
    context: ApplyContext,
  ): LockHolder {
    const fencingToken = Math.max(context.index, record.lastToken + 1)
    record.lastToken = fencingToken
    const holder: LockHolder = {
      sessionId,
      requestId,
      fencingToken,
      expiresAt: context.time + ttlMs,
      ttlMs,
      leaseIndex: context.index,
    }
    record.holders.push(holder)
    context.events.push({
      type: 'lockGranted',
      key,
      sessionId,
      requestId,
      fencingToken,
      expiresAt: holder.expiresAt,
    })
    return holder
  }

  private index(sessionId: string, key: string): void {
    let keys = this.keysBySession.get(sessionId)
    if (keys === undefined) {
      keys = new Set()
      this.keysBySession.set(sessionId, keys)
    }
    keys.add(key)
  }

  private unindexIfUninvolved(sessionId: string, key: string, record: LockRecord): void {
    for (const holder of record.holders) if (holder.sessionId === sessionId) return
    for (const waiter of record.waiters) if (waiter.sessionId === sessionId) return
    const keys = this.keysBySession.get(sessionId)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) this.keysBySession.delete(sessionId)
  }
}

/** Position of the holder with this token (and session, if given), or -1. */
function findHolder(record: LockRecord, fencingToken: number, sessionId?: string): number {
  return record.holders.findIndex(
    holder =>
      holder.fencingToken === fencingToken && (sessionId === undefined || holder.sessionId === sessionId),
  )
}

function findWaiter(record: LockRecord, sessionId: string, requestId: string): number {
  const waiters = record.waiters
  for (let i = 0; i < waiters.length; i++) {
    if (waiters[i].sessionId === sessionId && waiters[i].requestId === requestId) return i
  }
  return -1
}

/** A snapshot's holder; one written before `leaseIndex` existed is timed from its grant. */
function copyHolder(holder: SnapshotHolder): LockHolder {
  return {
    sessionId: holder.sessionId,
    requestId: holder.requestId,
    fencingToken: holder.fencingToken,
    expiresAt: holder.expiresAt,
    ttlMs: holder.ttlMs,
    leaseIndex: holder.leaseIndex ?? holder.fencingToken,
  }
}

type SnapshotHolder = Omit<LockHolder, 'leaseIndex'> & { leaseIndex?: number }

function isHolder(value: unknown): value is SnapshotHolder {
  return (
    isRecord(value) &&
    isId(value.sessionId) &&
    isId(value.requestId) &&
    isPositive(value.fencingToken) &&
    isCount(value.expiresAt) &&
    isPositive(value.ttlMs) &&
    (value.leaseIndex === undefined || isPositive(value.leaseIndex))
  )
}

function isWaiter(value: unknown): value is LockWaiter {
  return isRecord(value) && isId(value.sessionId) && isId(value.requestId) && isPositive(value.ttlMs)
}
