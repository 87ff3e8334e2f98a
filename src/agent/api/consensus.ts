import type { Abortable, ConsensusEvent, ConsensusProtocol } from '../../api.ts'
import { CompactedError, InvalidArgumentError, RevisionMismatchError } from '../../errors.ts'
import type { CommandResult, KvEvent } from '../../state/index.ts'
import { AsyncQueue } from '../node/async-queue.ts'
import type { Client } from '../node/client.ts'
import type { Replica } from '../node/replica.ts'
import { checkKey, checkOptions, checkPrefix, checkRevision, checkValue } from '../validate.ts'

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
    options?: Abortable & { expectedRevision?: number },
  ): Promise<{ revision: number }> {
    checkKey(key)
    checkOptions(options, ['signal', 'expectedRevision'])
    const expectedRevision = checkRevision(options?.expectedRevision)
    const command = { type: 'put' as const, key, value: checkValue(value), expectedRevision }
    if (expectedRevision === undefined) delete command.expectedRevision
    return revisionOf(await this.client.submit(command, options?.signal))
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

  /**
   * Every change under `prefix` in revision order, never skipping or repeating one: first the retained
   * history from `fromRevision` (if given), then live changes as this agent applies them. Ends when the
   * signal aborts or the agent stops; throws `CompactedError` if the history no longer reaches back.
   */
  watch(prefix: string, options?: Abortable & { fromRevision?: number }): AsyncIterable<ConsensusEvent> {
    checkPrefix(prefix)
    checkOptions(options, ['signal', 'fromRevision'])
    const fromRevision = checkRevision(options?.fromRevision, 'fromRevision')
    const signal = options?.signal
    let lastRevision = fromRevision === undefined ? this.replica.state.revision : fromRevision - 1
    const cleanups: (() => void)[] = [this.replica.watchers.take()]
    const queue = new AsyncQueue<ConsensusEvent>(() => {
      for (const cleanup of cleanups) cleanup()
    })
    const deliver = (event: KvEvent): void => {
      if (event.revision <= lastRevision || !event.key.startsWith(prefix)) return
      lastRevision = event.revision
      queue.push(toConsensusEvent(event))
    }
    // Replays whatever applied since `lastRevision` from the retained history: at the start, and after a
    // snapshot replaced the state (the events in between were never emitted here).
    const catchUp = (): void => {
      const history = this.replica.state.eventsSince(lastRevision + 1, prefix)
      if (history.type === 'compacted') {
        queue.fail(
          new CompactedError(
            `revision ${lastRevision + 1} is compacted (oldest ${history.compactedRevision})`,
          ),
        )
        return
      }
      for (const event of history.events) deliver(event)
    }
    cleanups.push(
      this.replica.onEvent(event => {
        if (event.type === 'kv') deliver(event)
      }),
    )
    cleanups.push(this.replica.onRestore(catchUp))
    const stop = (): void => queue.end()
    signal?.addEventListener('abort', stop, { once: true })
    this.closed.addEventListener('abort', stop, { once: true })
    cleanups.push(() => signal?.removeEventListener('abort', stop))
    cleanups.push(() => this.closed.removeEventListener('abort', stop))
    if (signal?.aborted || this.closed.aborted) queue.end()
    else if (fromRevision !== undefined) catchUp()
    return queue
  }
}

function revisionOf(result: CommandResult): { revision: number } {
  if (result.type === 'revision') return { revision: result.revision }
  if (result.type === 'error' && result.code === 'RevisionMismatch')
    throw new RevisionMismatchError(result.message)
  throw unexpected(result)
}

function toConsensusEvent(event: KvEvent): ConsensusEvent {
  const consensusEvent: ConsensusEvent = {
    type: event.op,
    key: event.key,
    revision: event.revision,
    timestamp: new Date(event.timestamp),
  }
  if (event.value !== undefined) consensusEvent.value = structuredClone(event.value)
  return consensusEvent
}

/** A result the call cannot produce unless the cluster is misbehaving; surfaced, never swallowed. */
export function unexpected(result: CommandResult): Error {
  if (result.type === 'error') return new InvalidArgumentError(`${result.code}: ${result.message}`)
  return new Error(`Unexpected result ${result.type}`)
}
