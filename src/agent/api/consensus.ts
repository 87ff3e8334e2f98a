import type { Abortable, ConsensusEvent, ConsensusProtocol, KvEntry, TxnRequest } from '../../api.ts'
import { CompactedError, InvalidArgumentError, NoLeaderError, RevisionMismatchError } from '../../errors.ts'
import {
  type Command,
  type CommandResult,
  copyJson,
  type KvEntryInfo,
  type KvEvent,
  type StateMachine,
  type TxnCommand,
  type TxnCompareSpec,
  type TxnOpSpec,
  toJsonValue,
  txnError,
} from '../../state/index.ts'
import type { Client } from '../node/client.ts'
import type { Replica } from '../node/replica.ts'
import { checkKey, checkOptions, checkPrefix, checkRevision, MAX_VALUE_BYTES } from '../validate.ts'
import { BoundedWatch, checkWatchBuffer, type Replay } from './bounded-watch.ts'

/** Keys a `list` returns when no `limit` is given. */
export const DEFAULT_LIST_LIMIT = 1_000
/** Most keys one `list` call returns: a page is built and copied whole. */
export const MAX_LIST_LIMIT = 10_000

/** The consensus key-value store: every write through the log, reads linearizable by default. */
export class Consensus implements ConsensusProtocol {
  private readonly client: Client
  private readonly replica: Replica
  private readonly closed: AbortSignal

  constructor(client: Client, replica: Replica, closed: AbortSignal) {
    this.client = client
    this.replica = replica
    this.closed = closed
  }

  async propose(
    key: string,
    value: unknown,
    options?: Abortable & { expectedRevision?: number; ephemeral?: boolean },
  ): Promise<{ revision: number }> {
    checkKey(key)
    checkOptions(options, ['signal', 'expectedRevision', 'ephemeral'])
    const expectedRevision = checkRevision(options?.expectedRevision)
    const ephemeral = checkBoolean(options?.ephemeral, 'ephemeral')
    const json = toJsonValue(value, 'value', MAX_VALUE_BYTES)
    if (ephemeral) {
      return revisionOf(
        await this.withSession(options?.signal, sessionId => {
          const command: Command = { type: 'putEphemeral', key, value: json, sessionId }
          if (expectedRevision !== undefined) command.expectedRevision = expectedRevision
          return command
        }),
      )
    }
    const command = { type: 'put' as const, key, value: json, expectedRevision }
    if (expectedRevision === undefined) delete command.expectedRevision
    return revisionOf(await this.client.submit(command, options?.signal))
  }

  async getEntry(
    key: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local' },
  ): Promise<KvEntry | undefined> {
    checkKey(key)
    checkOptions(options, ['signal', 'consistency'])
    await this.readPoint(options)
    const entry = this.replica.state.getEntry(key)
    return entry === undefined ? undefined : toKvEntry(entry)
  }

  async list(
    prefix: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local'; limit?: number; after?: string },
  ): Promise<{ entries: KvEntry[]; revision: number; more: boolean }> {
    checkPrefix(prefix)
    checkOptions(options, ['signal', 'consistency', 'limit', 'after'])
    const limit = options?.limit ?? DEFAULT_LIST_LIMIT
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new InvalidArgumentError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}`)
    }
    const after = options?.after === undefined ? undefined : checkKey(options.after, 'after')
    await this.readPoint(options)
    // One synchronous read of the state: the page is at one revision.
    const page = this.replica.state.list(prefix, { limit, after })
    return { entries: page.entries.map(toKvEntry), revision: page.revision, more: page.more }
  }

  async transaction(
    request: TxnRequest,
    options?: Abortable,
  ): Promise<{ succeeded: boolean; revision: number }> {
    checkOptions(options, ['signal'])
    const command = toTxnCommand(request)
    const ephemeral = [...command.success, ...(command.failure ?? [])].some(
      op => op.type === 'put' && op.ephemeral === true,
    )
    const result = ephemeral
      ? await this.withSession(options?.signal, sessionId => ({ ...command, sessionId }))
      : await this.client.submit(command, options?.signal)
    if (result.type === 'txn') return { succeeded: result.succeeded, revision: result.revision }
    throw unexpected(result)
  }

  async delete(
    key: string,
    options?: Abortable & { expectedRevision?: number },
  ): Promise<{ revision: number }> {
    checkKey(key)
    checkOptions(options, ['signal', 'expectedRevision'])
    const expectedRevision = checkRevision(options?.expectedRevision)
    const command = { type: 'delete' as const, key, expectedRevision }
    if (expectedRevision === undefined) delete command.expectedRevision
    return revisionOf(await this.client.submit(command, options?.signal))
  }

  async get(
    key: string,
    options?: Abortable & { consistency?: 'linearizable' | 'local' },
  ): Promise<unknown | undefined> {
    checkKey(key)
    checkOptions(options, ['signal', 'consistency'])
    const consistency = options?.consistency ?? 'linearizable'
    if (consistency !== 'linearizable' && consistency !== 'local') {
      throw new InvalidArgumentError("consistency must be 'linearizable' or 'local'")
    }
    if (consistency === 'linearizable') await this.client.barrier(options?.signal)
    const entry = this.replica.state.get(key)
    // A copy: the caller must not be able to change the replicated state by mutating what it got.
    return entry === undefined ? undefined : structuredClone(entry.value)
  }

  /** Waits for a linearizable read point unless the caller asked for a local read. */
  private async readPoint(options?: Abortable & { consistency?: string }): Promise<void> {
    const consistency = options?.consistency ?? 'linearizable'
    if (consistency !== 'linearizable' && consistency !== 'local') {
      throw new InvalidArgumentError("consistency must be 'linearizable' or 'local'")
    }
    if (consistency === 'linearizable') await this.client.barrier(options?.signal)
  }

  /**
   * Commits a command bound to this agent's session (an ephemeral put). The session's end deletes what it
   * wrote, so a write answered `SessionExpired` is not in the state: the outcome is unknown only in that a
   * resend may have applied and been deleted since, which `NoLeaderError` says.
   */
  private async withSession(
    signal: AbortSignal | undefined,
    command: (sessionId: string) => Command,
  ): Promise<CommandResult> {
    const session = this.client.session
    if (session.id === '') await session.open(this.client.deadline())
    const sessionId = session.id
    const result = await this.client.submit(command(sessionId), signal, { handlesSessionExpiry: true })
    if (result.type === 'error' && result.code === 'SessionExpired') {
      session.ended(sessionId)
      throw new NoLeaderError(
        "The agent's session ended while the operation was in flight; its ephemeral keys are gone",
      )
    }
    return result
  }

  /**
   * Every change under `prefix` in revision order, never skipping or repeating one: first the retained
   * history from `fromRevision` (if given), then live changes as this agent applies them. Ends when the
   * signal aborts or the agent stops; throws `CompactedError` if the history no longer reaches back.
   * At most `buffer` events wait for the consumer (see `BoundedWatch`): a consumer that falls behind reads
   * on from the retained history, and one that falls behind that gets `CompactedError` naming the revision
   * to resume from.
   */
  watch(
    prefix: string,
    options?: Abortable & { fromRevision?: number; prevValue?: boolean; buffer?: number },
  ): AsyncIterable<ConsensusEvent> {
    checkPrefix(prefix)
    checkOptions(options, ['signal', 'fromRevision', 'prevValue', 'buffer'])
    const fromRevision = checkRevision(options?.fromRevision, 'fromRevision')
    const prevValue = checkBoolean(options?.prevValue, 'prevValue')
    const capacity = checkWatchBuffer(options?.buffer)
    const signal = options?.signal
    const cursor: KvCursor = {
      revision: fromRevision === undefined ? this.replica.state.revision : fromRevision - 1,
      taken: 0,
      complete: true,
    }
    const cleanups: (() => void)[] = [this.replica.watchers.take()]
    const watch = new BoundedWatch<KvEvent, ConsensusEvent>({
      capacity,
      replay: max => replayKv(this.replica.state, prefix, cursor, max),
      convert: event => toConsensusEvent(event, prevValue),
      onClose: () => {
        for (const cleanup of cleanups) cleanup()
      },
    })
    cleanups.push(
      this.replica.onEvent(event => {
        if (event.type === 'kv') offerKv(watch, event, prefix, cursor)
      }),
    )
    // A snapshot replaced the state: the events in between were never emitted here; read the history.
    cleanups.push(this.replica.onRestore(() => watch.fallBehind()))
    const stop = (): void => watch.end()
    signal?.addEventListener('abort', stop, { once: true })
    this.closed.addEventListener('abort', stop, { once: true })
    cleanups.push(() => signal?.removeEventListener('abort', stop))
    cleanups.push(() => this.closed.removeEventListener('abort', stop))
    if (signal?.aborted || this.closed.aborted) watch.end()
    else if (fromRevision !== undefined) watch.fallBehind()
    return watch
  }
}

/**
 * Where a KV watch is in the event stream: every event up to `revision` was taken or did not match, except,
 * while not `complete`, the matching events of `revision` after the first `taken` (the events of one entry
 * share its revision: a transaction, a session's ephemeral keys).
 */
interface KvCursor {
  revision: number
  taken: number
  complete: boolean
}

/** A live event for a watch: taken if it is new, matches and the watch has room. */
function offerKv(
  watch: BoundedWatch<KvEvent, ConsensusEvent>,
  event: KvEvent,
  prefix: string,
  cursor: KvCursor,
): void {
  if (event.revision < cursor.revision || (event.revision === cursor.revision && cursor.complete)) return
  // Behind: the replay reads on from the cursor (which may be inside an entry whose rest was refused).
  if (watch.behind || !event.key.startsWith(prefix)) return
  const next = event.revision > cursor.revision
  if (watch.offer(event)) {
    if (next) {
      cursor.revision = event.revision
      cursor.taken = 1
      cursor.complete = false
    } else cursor.taken++
  } else if (next) {
    // Refused, now behind: everything before this entry was taken or did not match.
    cursor.revision = event.revision - 1
    cursor.taken = 0
    cursor.complete = true
  }
}

/** The events after `cursor` from the retained history, at most `max`, moving the cursor past them. */
function replayKv(state: StateMachine, prefix: string, cursor: KvCursor, max: number): Replay<KvEvent> {
  const from = cursor.complete ? cursor.revision + 1 : cursor.revision
  const skip = cursor.complete ? 0 : cursor.taken
  const history = state.eventsSince(from, prefix, max + skip)
  if (history.type === 'compacted') {
    throw new CompactedError(
      `the watch fell behind the retained history: events from revision ${from} to ` +
        `${history.compactedRevision} are no longer kept; read the current state and watch again from ` +
        `revision ${history.compactedRevision + 1}`,
      { compactedRevision: history.compactedRevision },
    )
  }
  const events = history.events.slice(skip)
  if (history.events.length < max + skip) {
    // Everything applied so far is in this replay, matching or not: live events follow with no gap. (A
    // watch from a revision not yet reached stays there.)
    cursor.revision = Math.max(state.revision, cursor.complete ? cursor.revision : 0)
    cursor.taken = 0
    cursor.complete = true
    return { items: events, caughtUp: true }
  }
  const last = events[events.length - 1].revision
  let taken = 0
  for (const event of history.events) if (event.revision === last) taken++
  cursor.revision = last
  cursor.taken = taken
  cursor.complete = false
  return { items: events, caughtUp: false }
}

function revisionOf(result: CommandResult): { revision: number } {
  if (result.type === 'revision') return { revision: result.revision }
  if (result.type === 'error' && result.code === 'RevisionMismatch')
    throw new RevisionMismatchError(result.message)
  throw unexpected(result)
}

function toConsensusEvent(event: KvEvent, prevValue: boolean): ConsensusEvent {
  const consensusEvent: ConsensusEvent = {
    type: event.op,
    key: event.key,
    revision: event.revision,
    timestamp: new Date(event.timestamp),
  }
  if (event.value !== undefined) consensusEvent.value = structuredClone(event.value)
  if (prevValue && event.prevValue !== undefined) consensusEvent.prevValue = copyJson(event.prevValue)
  return consensusEvent
}

function toKvEntry(entry: KvEntryInfo): KvEntry {
  // A copy: the caller must not be able to change the replicated state by mutating what it got.
  return { ...entry, value: copyJson(entry.value) }
}

function checkBoolean(value: unknown, what: string): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw new InvalidArgumentError(`${what} must be a boolean`)
  return value
}

const REQUEST_FIELDS = new Set(['compare', 'success', 'failure'])

/**
 * The transaction command for a request: keys checked, values converted as `JSON.stringify` converts them,
 * then the state machine's own validation, so a request the log would refuse is refused here, typed.
 */
function toTxnCommand(request: TxnRequest): TxnCommand {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new InvalidArgumentError('a transaction request must be an object')
  }
  for (const name of Object.keys(request)) {
    if (!REQUEST_FIELDS.has(name)) throw new InvalidArgumentError(`unknown transaction field ${name}`)
  }
  if (!Array.isArray(request.compare)) throw new InvalidArgumentError('compare must be an array')
  if (!Array.isArray(request.success)) throw new InvalidArgumentError('success must be an array')
  if (request.failure !== undefined && !Array.isArray(request.failure)) {
    throw new InvalidArgumentError('failure must be an array')
  }
  const compare = request.compare.map((item, i): TxnCompareSpec => {
    if (typeof item !== 'object' || item === null)
      throw new InvalidArgumentError(`compare ${i} is not an object`)
    checkKey(item.key, `compare ${i} key`)
    const converted = { ...item, value: toJsonValue(item.value, `compare ${i} value`, MAX_VALUE_BYTES) }
    return converted as TxnCompareSpec
  })
  const ops = (list: TxnRequest['success'], branch: string): TxnOpSpec[] =>
    list.map((item, i): TxnOpSpec => {
      if (typeof item !== 'object' || item === null)
        throw new InvalidArgumentError(`${branch} op ${i} is not an object`)
      if (item.type === 'deletePrefix') {
        checkKey(item.prefix, `${branch} op ${i} prefix`)
        return item
      }
      checkKey(item.key, `${branch} op ${i} key`)
      if (item.type !== 'put') return item
      const op = { ...item, value: toJsonValue(item.value, `${branch} op ${i} value`, MAX_VALUE_BYTES) }
      if (op.ephemeral === undefined) delete op.ephemeral
      return op as TxnOpSpec
    })
  const command: TxnCommand = { type: 'txn', compare, success: ops(request.success, 'success') }
  if (request.failure !== undefined) command.failure = ops(request.failure, 'failure')
  // The session an ephemeral op binds to is added at submission: validate as if it were there.
  const error = txnError({ ...command, sessionId: 'session' })
  if (error !== undefined) throw new InvalidArgumentError(error)
  if (Buffer.byteLength(JSON.stringify(command)) > MAX_VALUE_BYTES) {
    throw new InvalidArgumentError(`a transaction is larger than ${MAX_VALUE_BYTES} bytes as JSON`)
  }
  return command
}

/** A result the call cannot produce unless the cluster is misbehaving; surfaced, never swallowed. */
export function unexpected(result: CommandResult): Error {
  // A retry the session no longer has the answer of: it applied once, with an outcome this call cannot know.
  if (result.type === 'error' && result.code === 'StaleRequest') {
    return new NoLeaderError(`The operation's outcome is unknown (${result.message})`)
  }
  if (result.type === 'error') return new InvalidArgumentError(`${result.code}: ${result.message}`)
  return new Error(`Unexpected result ${result.type}`)
}
