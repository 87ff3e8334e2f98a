import type { EntryType } from '../raft/types.ts'
import { decodeEnvelope } from './codec.ts'
import type { Command } from './commands.ts'
import type { ApplyContext } from './context.ts'
import { type ElectionInfo, ElectionTable } from './elections.ts'
import type { StateEvent } from './events.ts'
import type { HistoryResult } from './history.ts'
import { type KeyValue, KvStore } from './kv.ts'
import { type LockInfo, LockTable } from './locks.ts'
import { type CommandResult, errorResult, OK } from './results.ts'
import { type SessionInfo, SessionTable } from './sessions.ts'
import { checkSnapshot, isCount, isRecord } from './validate.ts'

export interface StateMachineOptions {
  /** KV events retained for watches that start in the past (default 10,000). */
  historySize?: number
  /** Answers a session remembers for retries when its client never acknowledges them (default 1,024). */
  maxResultsPerSession?: number
}

/** A committed Raft entry, as `Entry` from `raft/types.ts` or just its index, term and data. */
export interface ApplyInput {
  index: number
  term: number
  data: Uint8Array
  /** `config` entries only advance `appliedIndex`. Default `normal`. */
  type?: EntryType
}

export interface ApplyOutput {
  result: CommandResult
  /** Do not mutate: KV events are shared with the watch history. */
  events: readonly StateEvent[]
}

/** What a leader at some wall time should propose to expire. */
export interface DueExpiries {
  sessions: string[]
  locks: { key: string; fencingToken: number }[]
}

/** Snapshot format identifiers; `restore` refuses anything else. */
export const SNAPSHOT_FORMAT = 'conclave/state'
export const SNAPSHOT_VERSION = 1

const DEFAULT_HISTORY_SIZE = 10_000
const DEFAULT_MAX_RESULTS_PER_SESSION = 1_024

const NO_EVENTS: readonly StateEvent[] = Object.freeze([])
const OK_OUTPUT: ApplyOutput = Object.freeze({ result: OK, events: NO_EVENTS })

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The replicated coordination state: a pure, deterministic function of the committed log. Replicas that
 * apply the same entries reach the same state, answer the same results and emit the same events. Time comes
 * only from the timestamps the leader writes into envelopes. One module per concern (KV, sessions, locks,
 * elections), composed here; a module holding state for sessions registers as a session-end listener.
 */
export class StateMachine {
  private appliedIndexValue = 0
  private timeValue = 0
  private readonly options: Required<StateMachineOptions>
  private readonly kv: KvStore
  private readonly sessionTable: SessionTable
  private readonly locks: LockTable
  private readonly elections: ElectionTable
  private readonly context: ApplyContext = { index: 0, time: 0, events: [] }

  constructor(options: StateMachineOptions = {}) {
    this.options = {
      historySize: options.historySize ?? DEFAULT_HISTORY_SIZE,
      maxResultsPerSession: options.maxResultsPerSession ?? DEFAULT_MAX_RESULTS_PER_SESSION,
    }
    if (!isCount(this.options.historySize)) throw new RangeError('historySize must be an integer >= 0')
    if (!isCount(this.options.maxResultsPerSession) || this.options.maxResultsPerSession < 1) {
      throw new RangeError('maxResultsPerSession must be an integer >= 1')
    }
    this.kv = new KvStore(this.options.historySize)
    this.sessionTable = new SessionTable(this.options.maxResultsPerSession)
    this.locks = new LockTable(this.sessionTable)
    this.elections = new ElectionTable(this.sessionTable)
    // Cleanup order when a session ends: locks, then candidacies (a future tasks module goes after).
    this.sessionTable.addEndListener(this.locks)
    this.sessionTable.addEndListener(this.elections)
  }

  /** Index of the last applied entry. */
  get appliedIndex(): number {
    return this.appliedIndexValue
  }

  /** State time in ms: the highest envelope timestamp applied so far. */
  get time(): number {
    return this.timeValue
  }

  /** Revision of the last KV mutation. */
  get revision(): number {
    return this.kv.revision
  }

  /**
   * Applies one committed entry. Never throws for bad data: a malformed entry answers `InvalidCommand` and
   * changes nothing but `appliedIndex`, the same on every replica. Entries at or below `appliedIndex`
   * (a replay) answer `AlreadyApplied` and change nothing.
   */
  apply(entry: ApplyInput): ApplyOutput {
    if (entry.index <= this.appliedIndexValue) {
      return {
        result: errorResult(
          'AlreadyApplied',
          `entry ${entry.index} is at or below ${this.appliedIndexValue}`,
        ),
        events: NO_EVENTS,
      }
    }
    this.appliedIndexValue = entry.index
    // The new leader's no-op, and configuration changes, carry no command.
    if (entry.type === 'config' || entry.data.length === 0) return OK_OUTPUT
    const decoded = decodeEnvelope(entry.data)
    if (!decoded.ok) return { result: errorResult('InvalidCommand', decoded.error), events: NO_EVENTS }
    const envelope = decoded.envelope
    // Never backwards, whatever the clocks of successive leaders say.
    if (envelope.ts > this.timeValue) this.timeValue = envelope.ts
    const context = this.context
    context.index = entry.index
    context.time = this.timeValue
    const events: StateEvent[] = []
    context.events = events
    let result: CommandResult
    if (envelope.session !== undefined && envelope.seq !== undefined) {
      const command = envelope.command
      result = this.sessionTable.deduplicate(
        envelope.session,
        envelope.seq,
        envelope.ackedBelow,
        context,
        () => this.execute(command, context),
      )
    } else {
      result = this.execute(envelope.command, context)
    }
    return { result, events: events.length === 0 ? NO_EVENTS : events }
  }

  get(key: string): KeyValue | undefined {
    return this.kv.get(key)
  }

  /** Keys starting with `prefix` and their records, in key order. Scans the store. */
  range(prefix: string): [string, KeyValue][] {
    return this.kv.range(prefix)
  }

  /**
   * KV events with revision >= `fromRevision` on keys starting with `prefix`, in revision order (at most
   * `limit`), or `compacted` if part of that range is no longer retained.
   */
  eventsSince(fromRevision: number, prefix = '', limit?: number): HistoryResult {
    return this.kv.eventsSince(fromRevision, prefix, limit)
  }

  session(sessionId: string): SessionInfo | undefined {
    return this.sessionTable.info(sessionId)
  }

  sessions(): SessionInfo[] {
    return this.sessionTable.list()
  }

  lock(key: string): LockInfo | undefined {
    return this.locks.info(key)
  }

  election(name: string): ElectionInfo | undefined {
    return this.elections.info(name)
  }

  /**
   * For the leader's housekeeping: sessions and locks whose lease has run out at wall time `now` (the
   * leader's clock, which the next entry's timestamp will carry). Proposing `expireSession {reason: 'ttl'}`
   * and `lockExpire` for them is always safe: each re-checks against state time when applied.
   */
  dueExpiries(now: number): DueExpiries {
    return { sessions: this.sessionTable.due(now), locks: this.locks.due(now) }
  }

  /** The complete state (KV, history, sessions with dedup tables, locks, elections, time, appliedIndex). */
  snapshot(): Uint8Array {
    const snapshot = {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      appliedIndex: this.appliedIndexValue,
      time: this.timeValue,
      kv: this.kv.toSnapshot(),
      sessions: this.sessionTable.toSnapshot(),
      locks: this.locks.toSnapshot(),
      elections: this.elections.toSnapshot(),
    }
    return encoder.encode(JSON.stringify(snapshot))
  }

  /**
   * A state machine in the state `snapshot()` captured. Throws on bytes that are not a snapshot of this
   * format and version: restoring from a corrupt snapshot must stop the node, not diverge it.
   * An empty `bytes` (a new cluster's initial snapshot) gives an empty state machine.
   */
  static restore(bytes: Uint8Array, options: StateMachineOptions = {}): StateMachine {
    const machine = new StateMachine(options)
    if (bytes.length === 0) return machine
    let parsed: unknown
    try {
      parsed = JSON.parse(decoder.decode(bytes))
    } catch (cause) {
      throw new Error('Invalid state snapshot: not UTF-8 JSON', { cause })
    }
    checkSnapshot(isRecord(parsed) && parsed.format === SNAPSHOT_FORMAT, 'unknown format')
    checkSnapshot(parsed.version === SNAPSHOT_VERSION, `unsupported version ${String(parsed.version)}`)
    checkSnapshot(isCount(parsed.appliedIndex) && isCount(parsed.time), 'appliedIndex or time')
    machine.appliedIndexValue = parsed.appliedIndex
    machine.timeValue = parsed.time
    machine.kv.restore(parsed.kv)
    machine.sessionTable.restore(parsed.sessions)
    machine.locks.restore(parsed.locks)
    machine.elections.restore(parsed.elections)
    return machine
  }

  private execute(command: Command, context: ApplyContext): CommandResult {
    switch (command.type) {
      case 'put':
        return this.kv.put(command, context)
      case 'delete':
        return this.kv.delete(command, context)
      case 'openSession':
        return this.sessionTable.open(command, context)
      case 'keepAlive':
        return this.sessionTable.keepAlive(command, context)
      case 'closeSession':
        return this.sessionTable.close(command, context)
      case 'expireSession':
        return this.sessionTable.expire(command, context)
      case 'lockAcquire':
        return this.locks.acquire(command, context)
      case 'lockRelease':
        return this.locks.release(command, context)
      case 'lockExtend':
        return this.locks.extend(command, context)
      case 'lockCancel':
        return this.locks.cancel(command, context)
      case 'lockExpire':
        return this.locks.expire(command, context)
      case 'campaign':
        return this.elections.campaign(command, context)
      case 'resign':
        return this.elections.resign(command, context)
    }
  }
}
