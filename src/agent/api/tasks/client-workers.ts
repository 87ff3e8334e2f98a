import type { ClaimedTask, TaskDistributor } from '../../../api.ts'
import {
  AbortError,
  InvalidArgumentError,
  LimitExceededError,
  NotClaimableError,
  NotFoundError,
  StaleAttemptError,
} from '../../../errors.ts'
import type { JsonValue } from '../../../state/index.ts'
import type { Cancel, Scheduler } from '../../../time/scheduler.ts'
import { sleep } from '../../node/abort.ts'
import { errorMessage } from './input.ts'

/** Attempts one client peer may run at once through this agent. */
export const MAX_ATTEMPTS_PER_CLIENT = 64
/** How often a typed `task.next` looks for a pending task of its type while it waits. */
const TYPED_POLL_MS = 200
/** Pending tasks of the type a typed `task.next` tries to claim per look. */
const TYPED_CANDIDATES = 16

/** A claimed task as the client protocol carries it: the fencing token as a decimal string. */
export interface ClientAttempt {
  /** Names the attempt in `task.attempt`, `task.progress` and `task.settle`. */
  handle: string
  id: string
  type: string
  priority: number
  payload: Record<string, unknown>
  attempt: number
  fencingToken: string
  createdAt: string
  deadline?: string
  /** Ms one attempt may run (0: no limit). */
  timeout: number
}

/** The answer to `task.attempt`: whether the attempt is still the task's current one, and if not why. */
export interface AttemptPoll {
  live: boolean
  reason?: string
}

/** The exact end of an attempt (by attempt and fencing token), which the agent's `Tasks` offers. */
interface ExactSettle {
  settleAttempt(task: ClaimedTask, outcome: { result: JsonValue } | { error: string }): Promise<void>
}

interface Held {
  handle: string
  /** The client peer it runs for. */
  owner: string
  task: ClaimedTask
  /** Attempt polls waiting for the end of the attempt. */
  waiters: Set<() => void>
  /** The pending drop of the attempt if its client stops polling (see `arm`). */
  timer?: Cancel
  polling: number
}

export interface ClientWorkersOptions {
  tasks: TaskDistributor
  /** How long an attempt waits for its client's next poll before it is failed as abandoned. */
  graceMs: number
  scheduler: Scheduler
  closed: AbortSignal
  log?: (message: string, err: unknown) => void
}

/**
 * Task workers that are not members (`conclave worker`): the serving agent claims tasks on their behalf
 * (`task.next`, a long poll) and holds each attempt for its client, which polls `task.attempt` while it runs
 * it (learning at once when the attempt's signal aborts: cancelled, timed out, stolen) and ends it with
 * `task.settle`. An untyped `task.next` is the agent's own `next()`, so the agent offers its slots while a
 * client waits in it; a typed one claims pending tasks of that type explicitly. An attempt whose client
 * stops polling for `graceMs` is failed ("the worker went away"), and retried elsewhere as any failure is.
 */
export class ClientTaskWorkers {
  private readonly options: ClientWorkersOptions
  private readonly held = new Map<string, Held>()
  private readonly byOwner = new Map<string, number>()

  constructor(options: ClientWorkersOptions) {
    this.options = options
    options.closed.addEventListener('abort', () => {
      for (const entry of this.held.values()) entry.timer?.()
    })
  }

  /** Claims the next task for `owner` (of `type` if given), waiting up to `waitMs`; `{}` if none came. */
  async next(
    owner: string,
    type: string | undefined,
    waitMs: number,
    closed?: AbortSignal,
  ): Promise<{ task?: ClientAttempt }> {
    if ((this.byOwner.get(owner) ?? 0) >= MAX_ATTEMPTS_PER_CLIENT) {
      throw new LimitExceededError(`at most ${MAX_ATTEMPTS_PER_CLIENT} attempts per client on this agent`)
    }
    const { scheduler } = this.options
    const wait = new AbortController()
    const cancelTimer = scheduler.after(waitMs, () => wait.abort(), { keepAlive: true })
    const stop = (): void => wait.abort()
    closed?.addEventListener('abort', stop, { once: true })
    let task: ClaimedTask | undefined
    try {
      task = type === undefined ? await this.nextAny(wait.signal) : await this.nextOfType(type, wait.signal)
    } finally {
      cancelTimer()
      closed?.removeEventListener('abort', stop)
    }
    if (task === undefined) return {}
    // Held even when the client went away meanwhile: the grace timer then fails it for a retry.
    return { task: this.hold(owner, task) }
  }

  /** Waits up to `waitMs` for the attempt to end; answers at once if it has. */
  async attempt(owner: string, handle: string, waitMs: number, closed?: AbortSignal): Promise<AttemptPoll> {
    const entry = this.entry(owner, handle)
    if (!entry.task.signal.aborted && waitMs > 0) {
      entry.timer?.()
      entry.timer = undefined
      entry.polling++
      try {
        await new Promise<void>(resolve => {
          const done = (): void => {
            cancelTimer()
            closed?.removeEventListener('abort', done)
            entry.task.signal.removeEventListener('abort', done)
            entry.waiters.delete(done)
            resolve()
          }
          const cancelTimer = this.options.scheduler.after(waitMs, done, { keepAlive: true })
          closed?.addEventListener('abort', done, { once: true })
          entry.task.signal.addEventListener('abort', done, { once: true })
          entry.waiters.add(done)
        })
      } finally {
        entry.polling--
        if (entry.polling === 0 && this.held.has(handle)) this.arm(entry)
      }
    }
    if (!entry.task.signal.aborted) return { live: true }
    return { live: false, reason: reasonOf(entry.task.signal) }
  }

  /** Progress of the attempt (`ClaimedTask.progress`). */
  async progress(owner: string, handle: string, value: unknown): Promise<void> {
    await this.entry(owner, handle).task.progress(value)
  }

  /** Ends the attempt with its result or error; `StaleAttemptError` if it is no longer current. */
  async settle(
    owner: string,
    handle: string,
    outcome: { result: unknown } | { error: string },
  ): Promise<void> {
    const entry = this.entry(owner, handle)
    this.drop(entry)
    const { task } = entry
    if (task.signal.aborted) {
      throw new StaleAttemptError(
        `attempt ${task.attempt} of task ${task.id} ended: ${reasonOf(task.signal)}`,
      )
    }
    const exact = this.options.tasks as Partial<ExactSettle>
    if ('result' in outcome) {
      if (exact.settleAttempt === undefined) return this.options.tasks.complete(task.id, outcome.result)
      // The exact attempt, never a later one of the same task this agent may run for another client.
      return exact.settleAttempt(task, { result: outcome.result as JsonValue })
    }
    if (exact.settleAttempt === undefined) return this.options.tasks.fail(task.id, outcome.error)
    return exact.settleAttempt(task, { error: outcome.error })
  }

  private async nextAny(signal: AbortSignal): Promise<ClaimedTask | undefined> {
    try {
      return await this.options.tasks.next({ signal })
    } catch (err) {
      if (err instanceof AbortError) return undefined
      throw err
    }
  }

  /** The best pending task of `type` this agent may start, claimed; waits (polling) for one. */
  private async nextOfType(type: string, signal: AbortSignal): Promise<ClaimedTask | undefined> {
    const { tasks, scheduler } = this.options
    while (!signal.aborted) {
      const { tasks: pending } = await tasks.list({ type, state: 'pending' }, { limit: TYPED_CANDIDATES })
      // Higher priority first, then submission order (the list's order), as the scheduler would.
      const ordered = pending
        .map((status, index) => ({ status, index }))
        .sort((a, b) => b.status.priority - a.status.priority || a.index - b.index)
      for (const { status } of ordered) {
        try {
          return await tasks.claim(status.id)
        } catch (err) {
          // Taken by another worker, or not for this agent: try the next one.
          if (err instanceof NotClaimableError || err instanceof NotFoundError) continue
          throw err
        }
      }
      await sleep(TYPED_POLL_MS, signal, scheduler)
    }
    return undefined
  }

  private hold(owner: string, task: ClaimedTask): ClientAttempt {
    const handle = crypto.randomUUID()
    const entry: Held = { handle, owner, task, waiters: new Set(), polling: 0 }
    this.held.set(handle, entry)
    this.byOwner.set(owner, (this.byOwner.get(owner) ?? 0) + 1)
    this.arm(entry)
    return {
      handle,
      id: task.id,
      type: task.type,
      priority: task.priority,
      payload: task.payload,
      attempt: task.attempt,
      fencingToken: task.fencingToken.toString(),
      createdAt: task.createdAt.toISOString(),
      ...(task.deadline === undefined ? {} : { deadline: task.deadline.toISOString() }),
      timeout: task.constraints.timeout,
    }
  }

  /** Fails the attempt if its client does not poll within the grace period. */
  private arm(entry: Held): void {
    entry.timer?.()
    entry.timer = this.options.scheduler.after(this.options.graceMs, () => {
      entry.timer = undefined
      if (!this.held.has(entry.handle)) return
      this.drop(entry)
      if (entry.task.signal.aborted || this.options.closed.aborted) return
      this.settleAbandoned(entry).catch(err => this.options.log?.('failing an abandoned attempt failed', err))
    })
  }

  private async settleAbandoned(entry: Held): Promise<void> {
    const error = `the worker went away (client ${entry.owner.slice(-8)} stopped polling its attempt)`
    const exact = this.options.tasks as Partial<ExactSettle>
    if (exact.settleAttempt !== undefined) await exact.settleAttempt(entry.task, { error })
    else await this.options.tasks.fail(entry.task.id, error)
  }

  private drop(entry: Held): void {
    entry.timer?.()
    entry.timer = undefined
    if (!this.held.delete(entry.handle)) return
    const left = (this.byOwner.get(entry.owner) ?? 1) - 1
    if (left === 0) this.byOwner.delete(entry.owner)
    else this.byOwner.set(entry.owner, left)
    for (const wake of [...entry.waiters]) wake()
  }

  private entry(owner: string, handle: string): Held {
    const entry = this.held.get(handle)
    if (entry === undefined || entry.owner !== owner) {
      throw new NotFoundError(`no attempt ${handle} on this agent: it ended, or it is held by another agent`)
    }
    return entry
  }
}

function reasonOf(signal: AbortSignal): string {
  return signal.reason === undefined ? 'the attempt ended' : errorMessage(signal.reason)
}

/** A `task.settle` outcome from the wire: `{ result }` or `{ error }`. */
export function settleOutcome(args: Record<string, unknown>): { result: unknown } | { error: string } {
  const hasResult = 'result' in args
  const hasError = 'error' in args
  if (hasResult === hasError) throw new InvalidArgumentError('settle needs exactly one of result and error')
  if (hasError) {
    if (typeof args.error !== 'string') throw new InvalidArgumentError('error must be a string')
    return { error: args.error }
  }
  return { result: args.result }
}
