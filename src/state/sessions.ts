import type {
  CloseSessionCommand,
  ExpireSessionCommand,
  KeepAliveCommand,
  OpenSessionCommand,
} from './commands.ts'
import type { ApplyContext } from './context.ts'
import { type CommandResult, errorResult, OK, UNCHANGED } from './results.ts'
import { checkSnapshot, isCount, isId, isPositive, isRecord, snapshotArray } from './validate.ts'

/** A session (lease) as queries show it. */
export interface SessionInfo {
  sessionId: string
  agentId: string
  ttlMs: number
  /**
   * State time of the opening plus the ttl: the end of the session's first lease. Not an expiry time: the
   * leader's lessor renews sessions in memory (`src/agent/cluster/lessor.ts`), and a session ends only by
   * a `closeSession` or `expireSession` entry.
   */
  expiresAt: number
}

interface SessionRecord extends SessionInfo {
  /** Seqs below this were acknowledged (or evicted): their results are gone, a retry of one is stale. */
  ackedBelow: number
  /** Results of applied seqs >= ackedBelow, for answering retries (Raft dissertation section 6.3). */
  results: Map<number, CommandResult>
}

export type SessionEndReason = 'closed' | 'ttl' | 'dead'

/**
 * A module that holds state on behalf of sessions (locks, candidacies, later tasks) and must let go of it
 * when one ends. Called in the same entry that ends the session, after the session is gone.
 */
export interface SessionEndListener {
  onSessionEnd(sessionId: string, context: ApplyContext): void
}

/** Session section of a snapshot, in table order. */
export interface SessionSnapshot {
  sessionId: string
  agentId: string
  ttlMs: number
  expiresAt: number
  ackedBelow: number
  results: [number, CommandResult][]
}

/**
 * Sessions, their dedup tables, and the hooks other modules hang their cleanup on. A session lives from its
 * `openSession` entry until a `closeSession` or `expireSession` entry: nothing here expires it from entry
 * timestamps. Keep-alives never reach the log; the leader holds them in memory (its lessor) and proposes
 * `expireSession` when a session's ttl passes on its monotonic clock without one.
 */
export class SessionTable {
  private readonly records = new Map<string, SessionRecord>()
  private readonly listeners: SessionEndListener[] = []
  private readonly maxResults: number

  constructor(maxResultsPerSession: number) {
    this.maxResults = maxResultsPerSession
  }

  /** Register a module to clean up after ending sessions; listeners run in registration order. */
  addEndListener(listener: SessionEndListener): void {
    this.listeners.push(listener)
  }

  info(sessionId: string): SessionInfo | undefined {
    const record = this.records.get(sessionId)
    return record === undefined ? undefined : toInfo(record)
  }

  list(): SessionInfo[] {
    const list: SessionInfo[] = []
    for (const record of this.records.values()) list.push(toInfo(record))
    return list
  }

  /**
   * Sessions due for expiry by state time: none. Expiry is the leader lessor's decision, on its monotonic
   * clock; kept for the shape of `dueExpiries`.
   */
  due(_now: number): string[] {
    return []
  }

  /** True if the session exists: opened and not yet closed or expired by an entry. */
  isLive(sessionId: string, _context?: ApplyContext): boolean {
    return this.records.has(sessionId)
  }

  open(command: OpenSessionCommand, context: ApplyContext): CommandResult {
    const existing = this.records.get(command.sessionId)
    if (existing !== undefined) {
      // A retried open: the same session (the lessor counts its lease from its own clock, not from here).
      if (existing.agentId !== command.agentId) {
        return errorResult('InvalidCommand', `session ${command.sessionId} belongs to another agent`)
      }
      existing.ttlMs = command.ttlMs
      existing.expiresAt = context.time + command.ttlMs
      return { type: 'session', sessionId: existing.sessionId, expiresAt: existing.expiresAt }
    }
    const record: SessionRecord = {
      sessionId: command.sessionId,
      agentId: command.agentId,
      ttlMs: command.ttlMs,
      expiresAt: context.time + command.ttlMs,
      ackedBelow: 0,
      results: new Map(),
    }
    this.records.set(record.sessionId, record)
    return { type: 'session', sessionId: record.sessionId, expiresAt: record.expiresAt }
  }

  /**
   * The keep-alive entry of agents from before the lessor, still found in existing logs: it answers whether
   * the session exists and changes nothing, so replaying an old log ends no session and renews none.
   */
  keepAlive(command: KeepAliveCommand, _context: ApplyContext): CommandResult {
    const record = this.records.get(command.sessionId)
    if (record === undefined) return sessionExpired(command.sessionId)
    return { type: 'session', sessionId: record.sessionId, expiresAt: record.expiresAt }
  }

  close(command: CloseSessionCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.sessionId)
    if (record === undefined) return UNCHANGED
    this.end(record, 'closed', context)
    return OK
  }

  expire(command: ExpireSessionCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.sessionId)
    if (record === undefined) return UNCHANGED
    // The leader's lessor decided on its monotonic clock and refuses keep-alives of a session it is expiring.
    this.end(record, command.reason, context)
    return OK
  }

  /**
   * Runs `execute` at most once per (session, seq): a retry gets the stored result and changes nothing.
   * `ackedBelow` lets the session forget the results the client has already received.
   */
  deduplicate(
    sessionId: string,
    seq: number,
    ackedBelow: number | undefined,
    _context: ApplyContext,
    execute: () => CommandResult,
  ): CommandResult {
    const record = this.records.get(sessionId)
    if (record === undefined) return sessionExpired(sessionId)
    if (ackedBelow !== undefined && ackedBelow > record.ackedBelow) {
      record.ackedBelow = ackedBelow
      for (const remembered of record.results.keys()) {
        if (remembered < ackedBelow) record.results.delete(remembered)
      }
    }
    const previous = record.results.get(seq)
    if (previous !== undefined) return previous
    if (seq < record.ackedBelow) {
      return errorResult('StaleRequest', `seq ${seq} of session ${sessionId} was already acknowledged`)
    }
    const result = execute()
    record.results.set(seq, result)
    if (record.results.size > this.maxResults) {
      // A client that never acknowledges: forget its oldest answer. Map order is insertion order, the same
      // on every replica, so this stays deterministic.
      const oldest = record.results.keys().next().value as number
      record.results.delete(oldest)
      if (oldest >= record.ackedBelow) record.ackedBelow = oldest + 1
    }
    return result
  }

  toSnapshot(): SessionSnapshot[] {
    const sessions: SessionSnapshot[] = []
    for (const record of this.records.values()) {
      sessions.push({
        sessionId: record.sessionId,
        agentId: record.agentId,
        ttlMs: record.ttlMs,
        expiresAt: record.expiresAt,
        ackedBelow: record.ackedBelow,
        results: [...record.results],
      })
    }
    return sessions
  }

  restore(data: unknown): void {
    for (const session of snapshotArray(data, 'sessions')) {
      checkSnapshot(
        isRecord(session) &&
          isId(session.sessionId) &&
          isId(session.agentId) &&
          isPositive(session.ttlMs) &&
          isCount(session.expiresAt) &&
          isCount(session.ackedBelow),
        'sessions',
      )
      const results = new Map<number, CommandResult>()
      for (const entry of snapshotArray(session.results, 'sessions.results')) {
        checkSnapshot(
          Array.isArray(entry) && entry.length === 2 && isCount(entry[0]) && isRecord(entry[1]),
          'sessions.results',
        )
        results.set(entry[0], entry[1] as CommandResult)
      }
      this.records.set(session.sessionId, {
        sessionId: session.sessionId,
        agentId: session.agentId,
        ttlMs: session.ttlMs,
        expiresAt: session.expiresAt,
        ackedBelow: session.ackedBelow,
        results,
      })
    }
  }

  private end(record: SessionRecord, reason: SessionEndReason, context: ApplyContext): void {
    this.records.delete(record.sessionId)
    context.events.push(
      reason === 'closed'
        ? { type: 'sessionClosed', sessionId: record.sessionId, agentId: record.agentId }
        : { type: 'sessionExpired', sessionId: record.sessionId, agentId: record.agentId, reason },
    )
    for (const listener of this.listeners) listener.onSessionEnd(record.sessionId, context)
  }
}

export function sessionExpired(sessionId: string): CommandResult {
  return errorResult('SessionExpired', `session ${sessionId} does not exist or has expired`)
}

function toInfo(record: SessionRecord): SessionInfo {
  return {
    sessionId: record.sessionId,
    agentId: record.agentId,
    ttlMs: record.ttlMs,
    expiresAt: record.expiresAt,
  }
}
