import type { Abortable, LeaderElection, LeaderEvent } from '../../api.ts'
import {
  AbortError,
  ClosedError,
  CompactedError,
  InvalidArgumentError,
  NotLeaderError,
  NotVoterError,
} from '../../errors.ts'
import {
  type Command,
  type ElectionChangedEvent,
  type JsonValue,
  jsonEqual,
  toJsonValue,
} from '../../state/index.ts'
import type { Scheduler } from '../../time/scheduler.ts'
import { abortable } from '../node/abort.ts'
import type { Client } from '../node/client.ts'
import type { LeaderTracker } from '../node/leader-tracker.ts'
import type { RaftRunner } from '../node/raft-runner.ts'
import type { Replica } from '../node/replica.ts'
import type { SessionKeeper } from '../node/session.ts'
import { checkKey, checkOptions, MAX_VALUE_BYTES } from '../validate.ts'
import { BoundedWatch, checkWatchBuffer } from './bounded-watch.ts'
import { unexpected } from './consensus.ts'

/** The event a leader change makes: a leader appears, steps down with none after it, or is replaced. */
function leaderEvent(
  leader: string,
  previous: string,
  term: number,
  timestamp: Date,
): LeaderEvent | undefined {
  if (leader === previous) return undefined
  if (leader === '') return { type: 'resigned', leaderId: previous, term, timestamp }
  if (previous === '') return { type: 'elected', leaderId: leader, term, timestamp }
  return { type: 'changed', leaderId: leader, term, timestamp }
}

/**
 * The queue of a leader watch, ended by the caller's signal or the agent's stop, holding at most `capacity`
 * events. Leader changes are not kept in a history to catch up from, so a consumer that falls `capacity`
 * changes behind gets the events it has, then `CompactedError`: watch again, which starts with the current
 * leader (nothing is dropped silently).
 */
function leaderQueue(
  signal: AbortSignal | undefined,
  closed: AbortSignal,
  capacity: number,
  cleanup: () => void,
): BoundedWatch<LeaderEvent, LeaderEvent> {
  const stop = (): void => queue.end()
  const queue = new BoundedWatch<LeaderEvent, LeaderEvent>({
    capacity,
    replay: () => {
      throw new CompactedError(
        `the leader watch fell more than ${capacity} changes behind; watch again to start from the current leader`,
      )
    },
    convert: event => event,
    onClose: () => {
      cleanup()
      signal?.removeEventListener('abort', stop)
      closed.removeEventListener('abort', stop)
    },
  })
  signal?.addEventListener('abort', stop, { once: true })
  closed.addEventListener('abort', stop, { once: true })
  return queue
}

export interface RaftElectionContext {
  selfId: string
  runner(): RaftRunner | undefined
  tracker: LeaderTracker
  /** Ask the current leader to hand leadership to this agent. */
  requestTransfer(leader: string, signal?: AbortSignal): Promise<void>
  /** Catch this agent up with everything committed (a ReadIndex barrier). */
  barrier(signal?: AbortSignal): Promise<void>
  closed: AbortSignal
  /** The wall clock of the events' timestamps. */
  scheduler: Scheduler
}

/** `agent.election`: the cluster's Raft leadership itself. */
export class RaftElection implements LeaderElection {
  private readonly context: RaftElectionContext

  constructor(context: RaftElectionContext) {
    this.context = context
  }

  /** Leadership transfer to this agent: resolves once it leads. A non-voter gets `NotVoterError`. */
  async campaign(options?: Abortable & { value?: unknown }): Promise<void> {
    checkOptions(options, ['signal'])
    const { tracker, selfId } = this.context
    const signal = options?.signal
    // Judge voter status on the committed configuration: a just-promoted voter may not have its promotion
    // entry yet, and must not be told it is not a voter.
    if (this.context.runner() !== undefined) await this.context.barrier(signal)
    for (;;) {
      if (signal?.aborted) throw new AbortError()
      if (this.context.closed.aborted) throw new ClosedError()
      const runner = this.context.runner()
      if (runner === undefined) {
        throw new NotVoterError(
          'This agent holds no Raft log (a member, or not joined): only a voter can lead',
        )
      }
      if (!runner.status().config.voters.includes(selfId)) throw new NotVoterError()
      if (tracker.leader === selfId) return
      if (tracker.leader !== '') {
        await this.context.requestTransfer(tracker.leader, signal).catch(err => {
          if (err instanceof AbortError) throw err
        })
      }
      await tracker.waitChange(500, signal)
    }
  }

  /** Hands leadership to the most caught-up other voter; resolves once another leads (or none can). */
  async resign(options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    const { tracker, selfId } = this.context
    const runner = this.context.runner()
    if (runner === undefined || tracker.leader !== selfId) return
    const status = runner.status()
    const others = status.config.voters.filter(voter => voter !== selfId)
    if (others.length === 0) return
    others.sort((a, b) => (status.progress?.[b]?.match ?? 0) - (status.progress?.[a]?.match ?? 0))
    runner.transferLeadership(others[0])
    while (tracker.leader === selfId) await tracker.waitChange(1000, options?.signal)
  }

  /** Current leader, then every change; at most `buffer` events wait for the consumer (`leaderQueue`). */
  watch(options?: Abortable & { buffer?: number }): AsyncIterable<LeaderEvent> {
    checkOptions(options, ['signal', 'buffer'])
    const capacity = checkWatchBuffer(options?.buffer)
    const { tracker, scheduler } = this.context
    let unsubscribe = (): void => {}
    const queue = leaderQueue(options?.signal, this.context.closed, capacity, () => unsubscribe())
    if (tracker.leader !== '') {
      queue.offer({
        type: 'elected',
        leaderId: tracker.leader,
        term: tracker.term,
        timestamp: new Date(scheduler.wallNow()),
      })
    }
    unsubscribe = tracker.onChange((leader, previous, term) => {
      const event = leaderEvent(leader, previous, term, new Date(scheduler.wallNow()))
      if (event !== undefined) queue.offer(event)
    })
    if (options?.signal?.aborted || this.context.closed.aborted) queue.end()
    return queue
  }

  term(): number {
    return this.context.runner()?.status().term ?? 0
  }

  /**
   * The cluster's Raft leadership carries no value: a leader is told so (`InvalidArgumentError`), anyone
   * else gets `NotLeaderError`. Named elections (`agent.elections(name)`) carry values.
   */
  async proclaim(value: unknown, options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    toJsonValue(value, 'value', MAX_VALUE_BYTES)
    if (this.context.tracker.leader !== this.context.selfId) {
      throw new NotLeaderError('This agent does not lead the cluster')
    }
    throw new InvalidArgumentError('agent.election carries no value; use a named election')
  }
}

export interface NamedElectionContext {
  selfId: string
  client: Client
  replica: Replica
  session: SessionKeeper
  closed: AbortSignal
  /** The wall clock of the first event's timestamp (later ones carry the entry's). */
  scheduler: Scheduler
}

/** `agent.elections(name)`: a session-bound election any agent can stand in, FIFO by candidacy. */
export class NamedElection implements LeaderElection {
  private readonly name: string
  private readonly context: NamedElectionContext

  constructor(name: string, context: NamedElectionContext) {
    this.name = checkKey(name, 'election name')
    this.context = context
  }

  async campaign(options?: Abortable & { value?: unknown }): Promise<void> {
    checkOptions(options, ['signal', 'value'])
    const value =
      options?.value === undefined ? undefined : toJsonValue(options.value, 'value', MAX_VALUE_BYTES)
    const signal = options?.signal
    const release = this.context.replica.waiters.take()
    try {
      await this.stand(signal, value)
    } finally {
      release()
    }
  }

  private async stand(signal: AbortSignal | undefined, value: JsonValue | undefined): Promise<void> {
    const { client, replica, session, selfId } = this.context
    for (;;) {
      if (session.id === '') await session.open(client.deadline())
      const sessionId = session.id
      let resolveWin: (won: boolean) => void = () => {}
      const win = new Promise<boolean>(resolve => {
        resolveWin = resolve
      })
      const requestId = crypto.randomUUID()
      const unsubscribe = [
        // This campaign's candidacy leads: the session's and this request's (the newest campaign of the
        // session owns its candidacy). A candidacy of an earlier, aborted campaign of the same session can
        // reach the head first (this replica applying an older stretch of the log) and is then ended by that
        // campaign's resign, due next in the log: it is not this campaign's win.
        replica.onEvent(event => {
          if (
            event.type === 'electionChanged' &&
            event.name === this.name &&
            event.leader?.sessionId === sessionId &&
            event.leader.requestId === requestId
          ) {
            resolveWin(true)
          }
        }),
        session.onLost(lost => {
          if (lost === sessionId) resolveWin(false)
        }),
      ]
      try {
        const command: Command = { type: 'campaign', name: this.name, sessionId, agentId: selfId, requestId }
        if (value !== undefined) command.value = value
        const result = await client.submit(command, signal, { handlesSessionExpiry: true })
        if (result.type === 'elected') return
        if (result.type === 'error' && result.code === 'SessionExpired') {
          session.ended(sessionId)
          continue
        }
        if (result.type !== 'candidate') throw unexpected(result)
        if (await abortable(win, { signal, closed: this.context.closed })) return
      } catch (err) {
        if (err instanceof AbortError) {
          // Keyed to this campaign: the proposer may retry it late, after a newer campaign of the same session
          // took the candidacy over, and must then leave that one standing.
          client
            .submitRaw({ type: 'resign', name: this.name, sessionId, requestId }, client.deadline())
            .catch(() => {})
        }
        throw err
      } finally {
        for (const off of unsubscribe) off()
      }
    }
  }

  async resign(options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    const { client, session, replica } = this.context
    const sessionId = session.id
    if (sessionId === '') return
    let leader = replica.state.election(this.name)?.leader
    if (leader?.sessionId !== sessionId) {
      // campaign() may have resolved on the leader's answer before this replica applied the entry: catch up
      // before deciding there is nothing to resign (else the candidacy leads on, and no one else can).
      await client.barrier(options?.signal)
      leader = replica.state.election(this.name)?.leader
    }
    if (leader?.sessionId !== sessionId) return
    // The candidacy that leads now, not whatever candidacy the session has when the entry applies.
    const result = await client.submit(
      { type: 'resign', name: this.name, sessionId, requestId: leader.requestId },
      options?.signal,
      { handlesSessionExpiry: true },
    )
    if (result.type !== 'ok' && !(result.type === 'error' && result.code === 'SessionExpired')) {
      throw unexpected(result)
    }
  }

  /** Sets this agent's value as the election's leader; `NotLeaderError` if it does not lead it. */
  async proclaim(value: unknown, options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    const json = toJsonValue(value, 'value', MAX_VALUE_BYTES)
    const { client, session } = this.context
    const sessionId = session.id
    if (sessionId === '') throw new NotLeaderError(`This agent does not lead election ${this.name}`)
    const result = await client.submit(
      { type: 'proclaim', name: this.name, sessionId, value: json },
      options?.signal,
      { handlesSessionExpiry: true },
    )
    if (result.type === 'ok') return
    if (result.type === 'error' && (result.code === 'NotLeader' || result.code === 'SessionExpired')) {
      throw new NotLeaderError(`This agent does not lead election ${this.name}`)
    }
    throw unexpected(result)
  }

  /** Current leader, then every change; at most `buffer` events wait for the consumer (`leaderQueue`). */
  watch(options?: Abortable & { buffer?: number }): AsyncIterable<LeaderEvent> {
    checkOptions(options, ['signal', 'buffer'])
    const capacity = checkWatchBuffer(options?.buffer)
    const { replica } = this.context
    const release = replica.watchers.take()
    let unsubscribe = (): void => {}
    const queue = leaderQueue(options?.signal, this.context.closed, capacity, () => {
      unsubscribe()
      release()
    })
    const current = replica.state.election(this.name)
    let previous = current?.leader?.agentId ?? ''
    let previousValue = current?.leader?.value
    if (current?.leader !== undefined) {
      const first: LeaderEvent = {
        type: 'elected',
        leaderId: current.leader.agentId,
        term: current.term,
        timestamp: new Date(this.context.scheduler.wallNow()),
      }
      if (previousValue !== undefined) first.value = structuredClone(previousValue)
      queue.offer(first)
    }
    const observe = (leader: string, value: JsonValue | undefined, term: number, timestamp: Date): void => {
      let change = leaderEvent(leader, previous, term, timestamp)
      // The same leader with a new value (a proclaim): a change everyone watching sees.
      if (change === undefined && leader !== '' && !sameValue(value, previousValue)) {
        change = { type: 'changed', leaderId: leader, term, timestamp }
      }
      previous = leader
      previousValue = value
      if (change !== undefined && change.type !== 'resigned' && value !== undefined) {
        change.value = structuredClone(value)
      }
      if (change !== undefined) queue.offer(change)
    }
    const offEvent = replica.onEvent(event => {
      if (event.type !== 'electionChanged' || event.name !== this.name) return
      const changed = event as ElectionChangedEvent
      observe(changed.leader?.agentId ?? '', changed.value, event.term, new Date(event.timestamp))
    })
    // A snapshot replaced the state: the changes in it were never emitted here. Leader changes keep no
    // history, so the watcher learns the leader it holds now, stamped when this agent saw it.
    const offRestore = replica.onRestore(() => {
      const now = replica.state.election(this.name)
      const leader = now?.leader?.agentId ?? ''
      observe(leader, now?.leader?.value, now?.term ?? 0, new Date(this.context.scheduler.wallNow()))
    })
    unsubscribe = () => {
      offEvent()
      offRestore()
    }
    if (options?.signal?.aborted || this.context.closed.aborted) queue.end()
    return queue
  }

  term(): number {
    return this.context.replica.state.election(this.name)?.term ?? 0
  }
}

function sameValue(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  return a === undefined || b === undefined ? a === b : jsonEqual(a, b)
}
