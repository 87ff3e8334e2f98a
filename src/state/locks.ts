import type {
  LockAcquireCommand,
  LockCancelCommand,
  LockExpireCommand,
  LockExtendCommand,
  LockReleaseCommand,
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

interface LockRecord {
  holder: LockHolder | undefined
  waiters: LockWaiter[]
}

/** Lock section of a snapshot, in table order. */
export interface LockSnapshot {
  key: string
  holder: LockHolder
  waiters: LockWaiter[]
}

/**
 * Locks bound to sessions, with FIFO waiters and fencing tokens equal to the granting entry's index (so
 * tokens of a key strictly increase: one key is granted at most once per entry). A key with neither holder
 * nor waiters has no record.
 */
export class LockTable implements SessionEndListener {
  private readonly records = new Map<string, LockRecord>()
  /** Keys each session holds or waits for: what to clean up when it ends. Derived; not in snapshots. */
  private readonly keysBySession = new Map<string, Set<string>>()
  private readonly sessions: SessionTable

  constructor(sessions: SessionTable) {
    this.sessions = sessions
  }

  info(key: string): LockInfo | undefined {
    const record = this.records.get(key)
    if (record?.holder === undefined) return undefined
    return { key, holder: { ...record.holder }, waiters: record.waiters.map(waiter => ({ ...waiter })) }
  }

  /** Held locks whose lease has run out at `now`. */
  due(now: number): { key: string; fencingToken: number }[] {
    const due: { key: string; fencingToken: number }[] = []
    for (const [key, record] of this.records) {
      if (record.holder !== undefined && record.holder.expiresAt <= now) {
        due.push({ key, fencingToken: record.holder.fencingToken })
      }
    }
    return due
  }

  acquire(command: LockAcquireCommand, context: ApplyContext): CommandResult {
    const { key, sessionId, requestId } = command
    if (!this.sessions.isLive(sessionId, context)) return sessionExpired(sessionId)
    let record = this.records.get(key)
    if (record?.holder !== undefined && record.holder.expiresAt <= context.time) {
      // The lease ran out and only the expiry proposal is missing: let the lock go now.
      this.releaseHolder(key, record, 'expired', context)
      record = this.records.get(key)
    }
    if (record === undefined) {
      record = { holder: undefined, waiters: [] }
      this.records.set(key, record)
      this.index(sessionId, key)
      const holder = this.grant(key, record, sessionId, requestId, command.ttlMs, context)
      return { type: 'lockGranted', fencingToken: holder.fencingToken, expiresAt: holder.expiresAt }
    }
    const holder = record.holder!
    if (holder.sessionId === sessionId && holder.requestId === requestId) {
      return { type: 'lockGranted', fencingToken: holder.fencingToken, expiresAt: holder.expiresAt }
    }
    const waiting = findWaiter(record, sessionId, requestId)
    if (waiting >= 0) return { type: 'lockQueued', position: waiting + 1 }
    if (!command.wait) return errorResult('Busy', `lock ${key} is held`)
    record.waiters.push({ sessionId, requestId, ttlMs: command.ttlMs })
    this.index(sessionId, key)
    return { type: 'lockQueued', position: record.waiters.length }
  }

  release(command: LockReleaseCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.key)
    const holder = record?.holder
    if (
      holder === undefined ||
      holder.sessionId !== command.sessionId ||
      holder.fencingToken !== command.fencingToken
    ) {
      return errorResult('NotHolder', `token ${command.fencingToken} does not hold lock ${command.key}`)
    }
    this.releaseHolder(command.key, record!, 'released', context)
    return OK
  }

  extend(command: LockExtendCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.key)
    const holder = record?.holder
    if (
      holder === undefined ||
      holder.sessionId !== command.sessionId ||
      holder.fencingToken !== command.fencingToken
    ) {
      return errorResult('LockLost', `token ${command.fencingToken} no longer holds lock ${command.key}`)
    }
    if (holder.expiresAt <= context.time) {
      // Too late: the holder's own clock has already told it the lock is gone. Expire it now.
      this.releaseHolder(command.key, record!, 'expired', context)
      return errorResult('LockLost', `lock ${command.key} expired`)
    }
    holder.expiresAt = context.time + command.ttlMs
    holder.ttlMs = command.ttlMs
    return { type: 'lockExtended', fencingToken: holder.fencingToken, expiresAt: holder.expiresAt }
  }

  cancel(command: LockCancelCommand, context: ApplyContext): CommandResult {
    const { key, sessionId, requestId } = command
    const record = this.records.get(key)
    if (record === undefined) return UNCHANGED
    const holder = record.holder
    if (holder !== undefined && holder.sessionId === sessionId && holder.requestId === requestId) {
      this.releaseHolder(key, record, 'released', context)
      return OK
    }
    const waiting = findWaiter(record, sessionId, requestId)
    if (waiting < 0) return UNCHANGED
    record.waiters.splice(waiting, 1)
    this.unindexIfUninvolved(sessionId, key, record)
    return OK
  }

  expire(command: LockExpireCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.key)
    const holder = record?.holder
    if (
      holder === undefined ||
      holder.fencingToken !== command.fencingToken ||
      holder.expiresAt > context.time
    ) {
      return UNCHANGED
    }
    this.releaseHolder(command.key, record!, 'expired', context)
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
      // Drop its waits first, so the release below cannot hand the lock to the same ending session.
      record.waiters = record.waiters.filter(waiter => waiter.sessionId !== sessionId)
      if (record.holder?.sessionId === sessionId) this.releaseHolder(key, record, 'session', context)
      else if (record.holder === undefined && record.waiters.length === 0) this.records.delete(key)
    }
  }

  toSnapshot(): LockSnapshot[] {
    const locks: LockSnapshot[] = []
    for (const [key, record] of this.records) {
      locks.push({ key, holder: record.holder!, waiters: record.waiters })
    }
    return locks
  }

  restore(data: unknown): void {
    for (const lock of snapshotArray(data, 'locks')) {
      checkSnapshot(isRecord(lock) && isId(lock.key) && isHolder(lock.holder), 'locks')
      const waiters: LockWaiter[] = []
      for (const waiter of snapshotArray(lock.waiters, 'locks.waiters')) {
        checkSnapshot(isWaiter(waiter), 'locks.waiters')
        waiters.push({ sessionId: waiter.sessionId, requestId: waiter.requestId, ttlMs: waiter.ttlMs })
      }
      const holder = lock.holder
      this.records.set(lock.key, {
        holder: {
          sessionId: holder.sessionId,
          requestId: holder.requestId,
          fencingToken: holder.fencingToken,
          expiresAt: holder.expiresAt,
          ttlMs: holder.ttlMs,
        },
        waiters,
      })
      this.index(holder.sessionId, lock.key)
      for (const waiter of waiters) this.index(waiter.sessionId, lock.key)
    }
  }

  /** Frees the lock and hands it to the first waiter, if any, in the same entry. */
  private releaseHolder(
    key: string,
    record: LockRecord,
    reason: LockReleasedEvent['reason'],
    context: ApplyContext,
  ): void {
    const holder = record.holder!
    record.holder = undefined
    context.events.push({
      type: 'lockReleased',
      key,
      sessionId: holder.sessionId,
      requestId: holder.requestId,
      fencingToken: holder.fencingToken,
      reason,
    })
    this.unindexIfUninvolved(holder.sessionId, key, record)
    const next = record.waiters.shift()
    if (next === undefined) {
      this.records.delete(key)
      return
    }
    this.grant(key, record, next.sessionId, next.requestId, next.ttlMs, context)
  }

  private grant(
    key: string,
    record: LockRecord,
    sessionId: string,
    requestId: string,
    ttlMs: number,
    context: ApplyContext,
  ): LockHolder {
    const holder: LockHolder = {
      sessionId,
      requestId,
      fencingToken: context.index,
      expiresAt: context.time + ttlMs,
      ttlMs,
    }
    record.holder = holder
    context.events.push({
      type: 'lockGranted',
      key,
      sessionId,
      requestId,
      fencingToken: holder.fencingToken,
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
    if (record.holder?.sessionId === sessionId) return
    for (const waiter of record.waiters) if (waiter.sessionId === sessionId) return
    const keys = this.keysBySession.get(sessionId)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) this.keysBySession.delete(sessionId)
  }
}

function findWaiter(record: LockRecord, sessionId: string, requestId: string): number {
  const waiters = record.waiters
  for (let i = 0; i < waiters.length; i++) {
    if (waiters[i].sessionId === sessionId && waiters[i].requestId === requestId) return i
  }
  return -1
}

function isHolder(value: unknown): value is LockHolder {
  return (
    isRecord(value) &&
    isId(value.sessionId) &&
    isId(value.requestId) &&
    isPositive(value.fencingToken) &&
    isCount(value.expiresAt) &&
    isPositive(value.ttlMs)
  )
}

function isWaiter(value: unknown): value is LockWaiter {
  return isRecord(value) && isId(value.sessionId) && isId(value.requestId) && isPositive(value.ttlMs)
}
