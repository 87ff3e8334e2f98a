import type { Logger } from '@libp2p/interface'
import type {
  Abortable,
  ClaimedTask,
  DistributedTask,
  TaskConstraints,
  TaskDistributor,
  TaskInput,
  TaskStatus,
  TaskWorker,
} from '../api.ts'
import {
  AbortError,
  ClosedError,
  InvalidArgumentError,
  NoLeaderError,
  NotClaimableError,
  NotFoundError,
  StaleAttemptError,
} from '../errors.ts'
import {
  type Command,
  type CommandResult,
  isJsonValue,
  type JsonValue,
  MAX_LIST_LENGTH,
  MAX_RETRIES,
  type StateEvent,
  type TaskConstraintsSpec,
  type TaskInfo,
  type TaskSpec,
} from '../state/index.ts'
import type { Client } from './client.ts'
import { unexpected } from './consensus.ts'
import type { Replica } from './replica.ts'
import type { SessionKeeper } from './session.ts'
import {
  checkKey,
  checkOptions,
  checkValue,
  MAX_KEY_LENGTH,
  MAX_TTL_MS,
  MAX_VALUE_BYTES,
} from './validate.ts'

/** What the task API needs from the agent. */
export interface TaskContext {
  selfId: string
  client: Client
  replica: Replica
  session: SessionKeeper
  closed: AbortSignal
  /** The task slots this agent registered: the default concurrency of `process()`. */
  concurrency: number
  log: Logger
}

/** Names one attempt of a task: what `complete`/`fail` of an attempt need. */
export type AttemptRef = Pick<ClaimedTask, 'id' | 'attempt' | 'fencingToken'>

/** This agent's hold on one attempt it started. */
interface Attempt {
  readonly taskId: string
  readonly attempt: number
  readonly fencingToken: number
  readonly sessionId: string
  readonly controller: AbortController
  /** complete or fail was sent: an end that follows is (probably) this agent's own doing. */
  settling: boolean
}

/** Longest failure message kept in the log; the rest is cut. */
const MAX_ERROR_LENGTH = 8192
/** Most handlers one worker runs at once. */
const MAX_WORKER_CONCURRENCY = 10_000
/** How long `next()` waits before looking again at a task it could not claim (another agent took it). */
const RECHECK_MS = 100
/** A worker's pause after an unexpected error from `next()` (no leader, say) before it tries again. */
const WORKER_RETRY_MS = 200

const TASK_FIELDS = ['id', 'type', 'priority', 'payload', 'constraints', 'deadline']
const CONSTRAINT_FIELDS = [
  'requiredCapabilities',
  'preferredAgents',
  'excludeAgents',
  'maxRetries',
  'timeout',
  'affinity',
]

/**
 * Task distribution for this agent (API.md `TaskDistributor`): every state change is an entry in the log,
 * which the state machine's scheduler turns into assignments. The agent remembers the attempts it started
 * (attempt number and fencing token), so that `complete`/`fail` speak for exactly that attempt and its
 * `signal` aborts as soon as the replicated state ends it (timeout, deadline, session end, cancel).
 *
 * A claim, once sent, is always awaited to its answer, even if the caller's signal aborts meanwhile: an
 * abandoned claim could commit and leave a running attempt nobody works on. Should that happen anyway (the
 * answer was lost to a `NoLeaderError`), `next()` adopts such an attempt as its next task.
 */
export class Tasks implements TaskDistributor {
  private readonly context: TaskContext
  /** Attempts this agent started and has not seen end, by task id. */
  private readonly attempts = new Map<string, Attempt>()
  /** Tasks with a claim on its way. */
  private readonly claiming = new Set<string>()
  private readonly waiters = new Set<() => void>()
  /** Bumped (once per batch of applied events) whenever something `next()` looks at may have changed. */
  private generation = 0
  private wakeScheduled = false
  private idleCount = 0
  private leaseTimer?: NodeJS.Timeout
  private readonly idleListeners = new Set<() => void>()

  constructor(context: TaskContext) {
    this.context = context
    context.replica.onEvent(event => this.onEvent(event))
    context.replica.onRestore(() => this.onRestore())
    context.session.onLost(sessionId => this.onSessionLost(sessionId))
    context.closed.addEventListener('abort', () => this.onClosed(), { once: true })
  }

  /** `next()` calls now waiting for work: free capacity the work stealer may fill. */
  get idleWaiters(): number {
    return this.idleCount
  }

  /** Calls `listener` whenever a `next()` starts waiting with nothing to claim; returns the unsubscribe. */
  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener)
    return () => this.idleListeners.delete(listener)
  }

  async submit(task: TaskInput, options?: Abortable): Promise<DistributedTask> {
    checkOptions(options, ['signal'])
    const spec = toTaskSpec(task)
    const { result, retried } = await submitWithSession(
      this.context,
      () => ({ type: 'submitTask', task: spec }),
      options?.signal,
    )
    if (result.type === 'taskSubmitted') return toDistributedTask({ ...spec, createdAt: result.createdAt })
    if (result.type === 'error' && result.code === 'AlreadyExists') {
      // Resent under a new session after the old one lapsed: the first send may be what created it.
      if (retried) {
        await this.context.client.barrier(options?.signal)
        const existing = this.context.replica.state.task(spec.id)
        if (existing !== undefined && sameSpec(existing, spec)) {
          return toDistributedTask({ ...spec, createdAt: existing.createdAt })
        }
      }
      throw new InvalidArgumentError(result.message)
    }
    throw unexpected(result)
  }

  async claim(taskId: string, options?: Abortable): Promise<ClaimedTask> {
    checkKey(taskId, 'task id')
    checkOptions(options, ['signal'])
    this.check(options?.signal)
    if (this.claiming.has(taskId)) {
      throw new NotClaimableError(`task ${taskId} is already being claimed by this agent`)
    }
    return this.claimTask(taskId)
  }

  async complete(taskId: string, result: unknown, options?: Abortable): Promise<void> {
    checkKey(taskId, 'task id')
    checkOptions(options, ['signal'])
    const value = checkValue(result === undefined ? null : result)
    const held = this.attempts.get(taskId)
    if (held === undefined) return this.noAttempt(taskId, options?.signal)
    await this.completeAttempt(refOf(held), value, options?.signal)
  }

  async fail(taskId: string, error: Error | string, options?: Abortable): Promise<void> {
    checkKey(taskId, 'task id')
    checkOptions(options, ['signal'])
    if (typeof error !== 'string' && !(error instanceof Error)) {
      throw new InvalidArgumentError('error must be an Error or a string')
    }
    const message = errorMessage(error)
    const held = this.attempts.get(taskId)
    if (held === undefined) return this.noAttempt(taskId, options?.signal)
    await this.failAttempt(refOf(held), message, options?.signal)
  }

  async status(taskId: string, options?: Abortable): Promise<TaskStatus> {
    checkKey(taskId, 'task id')
    checkOptions(options, ['signal'])
    await this.context.client.barrier(options?.signal)
    const task = this.context.replica.state.task(taskId)
    if (task === undefined) throw new NotFoundError(`task ${taskId} does not exist`)
    const status: TaskStatus = {
      id: task.id,
      state: task.state,
      attempt: task.attempt,
      updatedAt: new Date(task.updatedAt),
    }
    const assignee = task.assignee ?? task.lastAgentId
    if (assignee !== undefined) status.assignee = assignee
    if (task.result !== undefined) status.result = structuredClone(task.result)
    if (task.error !== undefined) status.error = task.error
    return status
  }

  /**
   * The best task for this agent, claimed: first a running attempt of ours nobody holds (a claim whose answer
   * was lost), then our best assigned task, then the best pending task we may take; waits for one otherwise.
   * The signal ends the wait; a claim already sent is awaited.
   */
  async next(options?: Abortable): Promise<ClaimedTask> {
    checkOptions(options, ['signal'])
    const signal = options?.signal
    // Tasks another agent claimed first, skipped until our replica shows that (or a short while passes).
    const skip = new Set<string>()
    for (;;) {
      this.check(signal)
      const seen = this.generation
      const orphan = this.findOrphan()
      if (orphan !== undefined) return this.adopt(orphan)
      const candidate = this.findCandidate(skip)
      if (candidate !== undefined) {
        try {
          const claimed = await this.claimTask(candidate.id)
          if (!claimed.signal.aborted) return claimed
        } catch (err) {
          if (!(err instanceof NotClaimableError || err instanceof NotFoundError)) throw err
          skip.add(candidate.id)
        }
        continue
      }
      await this.waitForChange(seen, signal, skip.size > 0 ? RECHECK_MS : undefined)
      skip.clear()
    }
  }

  process(
    handler: (task: ClaimedTask) => Promise<unknown>,
    options?: Abortable & { concurrency?: number },
  ): TaskProcessor {
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function')
    checkOptions(options, ['signal', 'concurrency'])
    const concurrency = options?.concurrency ?? this.context.concurrency
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > MAX_WORKER_CONCURRENCY) {
      throw new InvalidArgumentError(`concurrency must be an integer from 1 to ${MAX_WORKER_CONCURRENCY}`)
    }
    if (this.context.closed.aborted) throw new ClosedError()
    return new TaskProcessor(this, handler, concurrency, options?.signal)
  }

  /** Ends the attempt with success, by its exact (attempt, fencing token). */
  async completeAttempt(task: AttemptRef, result: JsonValue, signal?: AbortSignal): Promise<void> {
    const { taskId, attempt, fencingToken } = attemptKey(task)
    this.markSettling(taskId, fencingToken)
    const { result: answer } = await submitWithSession(
      this.context,
      () => ({ type: 'completeTask', taskId, attempt, fencingToken, result }),
      signal,
    )
    settled(answer)
  }

  /** Ends the attempt with failure, by its exact (attempt, fencing token): retried or dead. */
  async failAttempt(task: AttemptRef, error: string, signal?: AbortSignal): Promise<void> {
    const { taskId, attempt, fencingToken } = attemptKey(task)
    this.markSettling(taskId, fencingToken)
    const { result: answer } = await submitWithSession(
      this.context,
      () => ({ type: 'failTask', taskId, attempt, fencingToken, error }),
      signal,
    )
    settled(answer)
  }

  /**
   * The worker's end of an attempt: sent again, with a growing pause, after any failure that is not the
   * cluster's answer (no leader, a broken stream, a session being reopened), since an attempt left running
   * would hold its task forever (without a timeout). A retry refused as stale after an earlier try did commit
   * is recognised from the replicated state. Stops at the cluster's answer or when the agent stops.
   */
  async settleAttempt(task: AttemptRef, outcome: { result: JsonValue } | { error: string }): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        if ('result' in outcome) await this.completeAttempt(task, outcome.result)
        else await this.failAttempt(task, outcome.error)
        return
      } catch (err) {
        if (tries > 1 && err instanceof StaleAttemptError && (await this.endedAsMeant(task, outcome))) return
        if (isAnswer(err) || this.context.closed.aborted) throw err
        this.context.log('attempt %d of task %s not settled yet: %e', task.attempt, task.id, err)
        await sleep(Math.min(WORKER_RETRY_MS * tries, 2000), this.context.closed)
      }
    }
  }

  // ---------- internals ----------

  /**
   * After a stale answer to a retry: did an earlier try end the attempt as `outcome` says? For a failure, yes:
   * only this agent could have completed its attempt, so it ended failed (by us, a timeout or a session end).
   */
  private async endedAsMeant(
    task: AttemptRef,
    outcome: { result: JsonValue } | { error: string },
  ): Promise<boolean> {
    if (!('result' in outcome)) return true
    await this.context.client.barrier()
    const info = this.context.replica.state.task(task.id)
    return (
      info?.state === 'completed' && info.lastAgentId === this.context.selfId && info.attempt === task.attempt
    )
  }

  /** Sends the claim and waits for its answer whatever happens to the caller; then builds the ClaimedTask. */
  private async claimTask(taskId: string): Promise<ClaimedTask> {
    const { selfId, replica } = this.context
    this.claiming.add(taskId)
    let held: Attempt
    try {
      const { result, sessionId } = await submitWithSession(this.context, sessionId => ({
        type: 'claimTask',
        taskId,
        agentId: selfId,
        sessionId,
      }))
      if (result.type !== 'taskClaimed') {
        if (result.type === 'error' && result.code === 'NotFound') throw new NotFoundError(result.message)
        if (result.type === 'error' && result.code === 'NotClaimable')
          throw new NotClaimableError(result.message)
        throw unexpected(result)
      }
      // Held before the claiming mark goes, so `next()` never mistakes it for an orphan.
      held = this.hold(taskId, result.attempt, result.fencingToken, sessionId)
    } catch (err) {
      // Not the cluster's answer: the claim may still commit, and waiting `next()` calls look for the orphan.
      if (!(err instanceof NotClaimableError || err instanceof NotFoundError)) this.wake()
      throw err
    } finally {
      this.claiming.delete(taskId)
    }
    // The task's fields come from this replica, which may not have applied the claim (or even the submit) yet.
    try {
      await this.waitApplied(held.fencingToken)
    } catch (err) {
      // Let go, so that a later `next()` adopts the attempt once this replica catches up.
      if (this.attempts.get(taskId) === held) this.attempts.delete(taskId)
      this.wake()
      throw err
    }
    const info = replica.state.task(taskId)
    if (info === undefined) {
      // Finished and forgotten already: the attempt is long over.
      this.release(held, 'the task finished before the claim was seen')
      throw new NotClaimableError(`task ${taskId} finished before this agent could start it`)
    }
    if (!this.isCurrent(held)) this.release(held, 'the attempt ended before it was returned')
    return toClaimedTask(info, held)
  }

  private hold(taskId: string, attempt: number, fencingToken: number, sessionId: string): Attempt {
    const previous = this.attempts.get(taskId)
    if (previous !== undefined && previous.fencingToken !== fencingToken) {
      // A newer attempt of ours replaces an older one whose end we have not applied yet.
      this.abort(previous, `a newer attempt ${attempt} of the task started`)
    }
    const held: Attempt = {
      taskId,
      attempt,
      fencingToken,
      sessionId,
      controller: new AbortController(),
      settling: false,
    }
    this.attempts.set(taskId, held)
    this.watchLease()
    return held
  }

  /**
   * A running attempt of this agent that no local holder knows: the answer of its claim was lost. Only while
   * the registry holds this agent under its current session: registering anew fails the attempts of the
   * previous incarnation (a restart) in the same entry, so what still runs then was claimed by this one.
   */
  private findOrphan(): TaskInfo | undefined {
    const { replica, selfId, session } = this.context
    const registered = replica.state.agent(selfId)
    if (registered === undefined || !registered.alive || registered.sessionId !== session.id) return undefined
    for (const task of replica.state.tasksAssignedTo(selfId)) {
      if (task.state !== 'running' || this.claiming.has(task.id)) continue
      if (this.attempts.get(task.id)?.fencingToken !== task.fencingToken) return task
    }
    return undefined
  }

  private adopt(task: TaskInfo): ClaimedTask {
    this.context.log('adopting attempt %d of task %s, whose claim answer was lost', task.attempt, task.id)
    const held = this.hold(task.id, task.attempt, task.fencingToken, this.context.session.id)
    return toClaimedTask(task, held)
  }

  /** Our best assigned task, else the best pending one we may take; none that is being claimed or skipped. */
  private findCandidate(skip: ReadonlySet<string>): TaskInfo | undefined {
    const { replica, selfId } = this.context
    const state = replica.state
    for (const task of state.tasksAssignedTo(selfId)) {
      if (task.state === 'assigned' && !this.claiming.has(task.id) && !skip.has(task.id)) return task
    }
    const best = state.bestTaskFor(selfId)
    if (best?.state === 'pending' && !this.claiming.has(best.id) && !skip.has(best.id)) return best
    return undefined
  }

  private isCurrent(held: Attempt): boolean {
    const task = this.context.replica.state.task(held.taskId)
    return (
      task !== undefined &&
      task.state === 'running' &&
      task.assignee === this.context.selfId &&
      task.attempt === held.attempt &&
      task.fencingToken === held.fencingToken
    )
  }

  private markSettling(taskId: string, fencingToken: number): void {
    const held = this.attempts.get(taskId)
    if (held?.fencingToken === fencingToken) held.settling = true
  }

  /** complete/fail without a held attempt: the task is unknown, or this agent holds no current attempt of it. */
  private async noAttempt(taskId: string, signal?: AbortSignal): Promise<never> {
    await this.context.client.barrier(signal)
    if (this.context.replica.state.task(taskId) === undefined) {
      throw new NotFoundError(`task ${taskId} does not exist`)
    }
    throw new StaleAttemptError(`this agent holds no current attempt of task ${taskId}`)
  }

  private onEvent(event: StateEvent): void {
    const selfId = this.context.selfId
    switch (event.type) {
      case 'taskAttemptEnded': {
        if (event.agentId !== selfId) return
        const held = this.attempts.get(event.taskId)
        if (held === undefined || held.fencingToken !== event.fencingToken) return
        this.attempts.delete(event.taskId)
        // The agent's own complete/fail ends its attempt as it meant to; anything else takes it away.
        if (event.reason !== 'completed' && event.reason !== 'failed') {
          this.abort(held, `attempt ${held.attempt} of task ${held.taskId} ended: ${event.reason}`)
        }
        return
      }
      case 'taskAssigned':
      case 'taskUnassigned':
      case 'taskStarted':
        if (event.agentId === selfId) this.wake()
        return
      case 'taskStolen':
        if (event.from === selfId || event.to === selfId) this.wake()
        return
      case 'agentChanged':
        if (event.agentId === selfId) this.wake()
        return
      default:
        return
    }
  }

  /** The state was replaced by a snapshot: the events in between were never seen here. */
  private onRestore(): void {
    const state = this.context.replica.state
    for (const held of [...this.attempts.values()]) {
      if (state.appliedIndex < held.fencingToken || this.isCurrent(held)) continue
      this.attempts.delete(held.taskId)
      if (!held.settling) this.abort(held, `attempt ${held.attempt} of task ${held.taskId} ended`)
    }
    this.wake()
  }

  /**
   * The cluster ended our session, which fails every attempt started under it. Their signals abort now; the
   * records stay until the replica shows the end, so that `next()` never takes them for orphans.
   */
  private onSessionLost(sessionId: string): void {
    for (const held of this.attempts.values()) {
      if (held.sessionId === sessionId) this.abort(held, 'the session of this agent ended')
    }
  }

  private onClosed(): void {
    clearTimeout(this.leaseTimer)
    for (const held of this.attempts.values()) held.controller.abort(new ClosedError())
    this.attempts.clear()
    this.flushWaiters()
  }

  /**
   * Aborts every held attempt once our session can no longer be trusted locally (`validUntil`): cut off from
   * the cluster, we cannot know whether it already failed the attempt and gave the task to another agent.
   */
  private watchLease(): void {
    if (this.leaseTimer !== undefined || this.context.closed.aborted) return
    const check = (): void => {
      this.leaseTimer = undefined
      if (this.attempts.size === 0) return
      const validUntil = this.context.session.validUntil()
      const wait = validUntil - performance.now()
      if (wait <= 0) {
        for (const held of this.attempts.values()) {
          this.abort(held, 'the session lease of this agent ran out')
        }
        // Checked again later: a reopened session holds none of these attempts, so they stay aborted.
      }
      this.leaseTimer = setTimeout(check, Math.max(wait, 250))
      this.leaseTimer.unref()
    }
    check()
  }

  /** Forgets an attempt that is no longer current and aborts its signal. */
  private release(held: Attempt, reason: string): void {
    if (this.attempts.get(held.taskId) === held) this.attempts.delete(held.taskId)
    this.abort(held, reason)
  }

  private abort(held: Attempt, reason: string): void {
    if (!held.controller.signal.aborted) held.controller.abort(new StaleAttemptError(reason))
  }

  /** Resolves once this replica applied the entry at `index`. */
  private waitApplied(index: number): Promise<void> {
    const { replica, closed, client } = this.context
    if (replica.state.appliedIndex >= index) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const cleanups: (() => void)[] = []
      const finish = (err?: Error): void => {
        for (const cleanup of cleanups) cleanup()
        if (err === undefined) resolve()
        else reject(err)
      }
      const check = (): void => {
        if (replica.state.appliedIndex >= index) finish()
      }
      const onClose = (): void => finish(new ClosedError())
      const timer = setTimeout(
        () => finish(new NoLeaderError(`this agent did not apply entry ${index} in time`)),
        Math.max(1, client.deadline() - performance.now()),
      )
      closed.addEventListener('abort', onClose, { once: true })
      cleanups.push(
        replica.onEvent(check),
        replica.onRestore(check),
        () => clearTimeout(timer),
        () => closed.removeEventListener('abort', onClose),
      )
    })
  }

  /** Coalesces the events of one batch of applied entries into one wake-up of the waiting `next()` calls. */
  private wake(): void {
    if (this.wakeScheduled) return
    this.wakeScheduled = true
    queueMicrotask(() => {
      this.wakeScheduled = false
      this.flushWaiters()
    })
  }

  private flushWaiters(): void {
    this.generation++
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const waiter of waiters) waiter()
  }

  /** Resolves at the next change after `seen` (or after `timeoutMs`); rejects on abort or close. */
  private waitForChange(seen: number, signal: AbortSignal | undefined, timeoutMs?: number): Promise<void> {
    if (this.generation !== seen) return Promise.resolve()
    const closed = this.context.closed
    this.idleCount++
    const waiting = new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        this.waiters.delete(done)
        if (closed.aborted) reject(new ClosedError())
        else if (signal?.aborted) reject(new AbortError())
        else resolve()
      }
      if (timeoutMs !== undefined) timer = setTimeout(done, timeoutMs)
      signal?.addEventListener('abort', done, { once: true })
      this.waiters.add(done)
    }).finally(() => {
      this.idleCount--
    })
    for (const listener of this.idleListeners) listener()
    return waiting
  }

  private check(signal?: AbortSignal): void {
    if (this.context.closed.aborted) throw new ClosedError()
    if (signal?.aborted) throw new AbortError()
  }
}

/** What a worker reports: `completed` and `failed` once the cluster accepted the outcome, else `error`. */
export interface TaskWorkerEventDetail {
  task?: ClaimedTask
  result?: JsonValue
  error?: unknown
}

/**
 * The worker loop of `process()`, in the BullMQ spirit: `concurrency` slots, each `next()` → handler →
 * `complete(result)` or `fail(error)` for exactly the attempt it claimed. A slot claims only when its previous
 * task is done, so the worker never holds more attempts than it runs. `close()` (or the signal) stops the
 * claiming, then waits for running handlers. Dispatches `completed`, `failed` and `error` events
 * (`CustomEvent<TaskWorkerEventDetail>`).
 */
export class TaskProcessor extends EventTarget implements TaskWorker {
  private readonly tasks: Tasks
  private readonly handler: (task: ClaimedTask) => Promise<unknown>
  private readonly stopping = new AbortController()
  private readonly loops: Promise<void>[]
  private activeCount = 0

  constructor(
    tasks: Tasks,
    handler: (task: ClaimedTask) => Promise<unknown>,
    concurrency: number,
    signal?: AbortSignal,
  ) {
    super()
    this.tasks = tasks
    this.handler = handler
    if (signal?.aborted) this.stopping.abort()
    else signal?.addEventListener('abort', () => this.stopping.abort(), { once: true })
    this.loops = Array.from({ length: concurrency }, () => this.loop())
  }

  /** Handlers running now. */
  get active(): number {
    return this.activeCount
  }

  async close(): Promise<void> {
    this.stopping.abort()
    await Promise.all(this.loops)
  }

  private async loop(): Promise<void> {
    const stopping = this.stopping.signal
    while (!stopping.aborted) {
      let task: ClaimedTask
      try {
        task = await this.tasks.next({ signal: stopping })
      } catch (err) {
        if (stopping.aborted || err instanceof ClosedError) return
        this.emit('error', { error: err })
        await sleep(WORKER_RETRY_MS, stopping)
        continue
      }
      await this.run(task)
    }
  }

  private async run(task: ClaimedTask): Promise<void> {
    this.activeCount++
    try {
      let failure: string | undefined
      let value: unknown
      try {
        value = await this.handler(task)
        if (value === undefined) value = null
        if (!isJsonValue(value)) failure = 'the handler resolved with a value that is not JSON data'
      } catch (err) {
        failure = errorMessage(err)
      }
      try {
        if (failure === undefined) {
          await this.tasks.settleAttempt(task, { result: value as JsonValue })
          this.emit('completed', { task, result: value as JsonValue })
        } else {
          await this.tasks.settleAttempt(task, { error: failure })
          this.emit('failed', { task, error: failure })
        }
      } catch (err) {
        this.emit('error', { task, error: err })
      }
    } finally {
      this.activeCount--
    }
  }

  private emit(type: 'completed' | 'failed' | 'error', detail: TaskWorkerEventDetail): void {
    this.dispatchEvent(new CustomEvent<TaskWorkerEventDetail>(type, { detail }))
  }
}

/**
 * Commits a command numbered by this agent's session (applied at most once however often it is retried),
 * opening a session first if there is none; a command refused because the session ended is sent again
 * under a new one (it was not applied). `build` gets the session id for commands that carry it.
 */
export async function submitWithSession(
  context: Pick<TaskContext, 'client' | 'session'>,
  build: (sessionId: string) => Command,
  signal?: AbortSignal,
): Promise<{ result: CommandResult; sessionId: string; retried: boolean }> {
  const { client, session } = context
  let retried = false
  for (;;) {
    if (session.id === '') await session.open(client.deadline())
    const sessionId = session.id
    if (sessionId === '') continue
    const result = await client.submit(build(sessionId), signal, { handlesSessionExpiry: true })
    if (result.type === 'error' && result.code === 'SessionExpired') {
      session.ended(sessionId)
      retried = true
      continue
    }
    return { result, sessionId, retried }
  }
}

/** The answer to completeTask / failTask: the task's new state, or why the attempt was not current. */
function settled(result: CommandResult): void {
  if (result.type === 'taskState') return
  if (result.type === 'error' && result.code === 'StaleAttempt') throw new StaleAttemptError(result.message)
  if (result.type === 'error' && result.code === 'NotFound') throw new NotFoundError(result.message)
  throw unexpected(result)
}

/** An error that is the cluster's (or the caller's) definite answer, which sending again cannot change. */
function isAnswer(err: unknown): boolean {
  return (
    err instanceof StaleAttemptError ||
    err instanceof NotFoundError ||
    err instanceof InvalidArgumentError ||
    err instanceof ClosedError ||
    err instanceof AbortError
  )
}

function attemptKey(task: AttemptRef): { taskId: string; attempt: number; fencingToken: number } {
  return { taskId: task.id, attempt: task.attempt, fencingToken: Number(task.fencingToken) }
}

function refOf(held: Attempt): AttemptRef {
  return { id: held.taskId, attempt: held.attempt, fencingToken: BigInt(held.fencingToken) }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : String(error)
  return message.length > MAX_ERROR_LENGTH ? message.slice(0, MAX_ERROR_LENGTH) : message
}

// ---------- conversions between the API's shapes and the log's ----------

/** A DistributedTask from what the log holds (a copy: the caller may mutate it). */
export function toDistributedTask(
  task: Pick<TaskInfo, 'id' | 'type' | 'priority' | 'payload' | 'constraints' | 'createdAt' | 'deadline'>,
): DistributedTask {
  const distributed: DistributedTask = {
    id: task.id,
    type: task.type,
    priority: task.priority,
    payload: structuredClone(task.payload),
    constraints: toConstraints(task.constraints),
    createdAt: new Date(task.createdAt),
  }
  if (task.deadline !== undefined) distributed.deadline = new Date(task.deadline)
  return distributed
}

function toClaimedTask(info: TaskInfo, held: Attempt): ClaimedTask {
  return {
    ...toDistributedTask(info),
    attempt: held.attempt,
    fencingToken: BigInt(held.fencingToken),
    signal: held.controller.signal,
  }
}

function toConstraints(spec: TaskConstraintsSpec): TaskConstraints {
  const constraints: TaskConstraints = {
    requiredCapabilities: [...spec.requiredCapabilities],
    maxRetries: spec.maxRetries,
    timeout: spec.timeout,
  }
  if (spec.preferredAgents !== undefined) constraints.preferredAgents = [...spec.preferredAgents]
  if (spec.excludeAgents !== undefined) constraints.excludeAgents = [...spec.excludeAgents]
  if (spec.affinity !== undefined) constraints.affinity = spec.affinity
  return constraints
}

/**
 * Validates a TaskInput and applies the defaults (priority 0, payload {}, maxRetries 3, timeout 0, no
 * required capabilities): anything unknown or malformed is an InvalidArgumentError, before anything is sent.
 */
export function toTaskSpec(input: unknown): TaskSpec {
  if (!isPlainObject(input)) throw new InvalidArgumentError('task must be an object')
  checkFields(input, TASK_FIELDS, 'task')
  const id = input.id === undefined ? crypto.randomUUID() : checkKey(input.id, 'task id')
  const type = checkKey(input.type, 'task type')
  const priority = input.priority ?? 0
  if (!Number.isSafeInteger(priority)) throw new InvalidArgumentError('priority must be an integer')
  const spec: TaskSpec = {
    id,
    type,
    priority: priority as number,
    payload: checkPayload(input.payload),
    constraints: toConstraintsSpec(input.constraints),
  }
  if (input.deadline !== undefined) {
    const deadline = input.deadline
    if (!(deadline instanceof Date) || !Number.isSafeInteger(deadline.getTime()) || deadline.getTime() < 0) {
      throw new InvalidArgumentError('deadline must be a valid Date after 1970')
    }
    spec.deadline = deadline.getTime()
  }
  if (Buffer.byteLength(JSON.stringify(spec)) > MAX_VALUE_BYTES) {
    throw new InvalidArgumentError(`task is larger than ${MAX_VALUE_BYTES} bytes as JSON`)
  }
  return spec
}

function checkPayload(payload: unknown): TaskSpec['payload'] {
  if (payload === undefined) return {}
  if (!isPlainObject(payload) || !isJsonValue(payload)) {
    throw new InvalidArgumentError(
      'payload must be a plain object of JSON data (no undefined, functions, NaN, cycles or classes)',
    )
  }
  // A copy, so the caller keeps theirs and the log gets exactly what JSON carries.
  return JSON.parse(JSON.stringify(payload)) as TaskSpec['payload']
}

function toConstraintsSpec(input: unknown): TaskConstraintsSpec {
  if (input === undefined) return { requiredCapabilities: [], maxRetries: 3, timeout: 0 }
  if (!isPlainObject(input)) throw new InvalidArgumentError('constraints must be an object')
  checkFields(input, CONSTRAINT_FIELDS, 'constraint')
  const maxRetries = input.maxRetries ?? 3
  if (
    !Number.isSafeInteger(maxRetries) ||
    (maxRetries as number) < 0 ||
    (maxRetries as number) > MAX_RETRIES
  ) {
    throw new InvalidArgumentError(`maxRetries must be an integer from 0 to ${MAX_RETRIES}`)
  }
  const timeout = input.timeout ?? 0
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0 || timeout > MAX_TTL_MS) {
    throw new InvalidArgumentError(`timeout must be a number of ms from 0 to ${MAX_TTL_MS}`)
  }
  const spec: TaskConstraintsSpec = {
    requiredCapabilities:
      input.requiredCapabilities === undefined
        ? []
        : checkNameList(input.requiredCapabilities, 'requiredCapabilities'),
    maxRetries: maxRetries as number,
    timeout: Math.ceil(timeout),
  }
  if (input.preferredAgents !== undefined) {
    spec.preferredAgents = checkNameList(input.preferredAgents, 'preferredAgents')
  }
  if (input.excludeAgents !== undefined) {
    spec.excludeAgents = checkNameList(input.excludeAgents, 'excludeAgents')
  }
  if (input.affinity !== undefined) spec.affinity = checkKey(input.affinity, 'affinity')
  return spec
}

function checkNameList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length > MAX_LIST_LENGTH) {
    throw new InvalidArgumentError(`${what} must be an array of at most ${MAX_LIST_LENGTH} strings`)
  }
  return value.map(item => {
    if (typeof item !== 'string' || item.length === 0 || item.length > MAX_KEY_LENGTH) {
      throw new InvalidArgumentError(`${what} must hold non-empty strings of at most ${MAX_KEY_LENGTH}`)
    }
    return item
  })
}

/** Rejects fields the call does not know: a typo must not silently change a task. */
function checkFields(value: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InvalidArgumentError(`unknown ${what} field ${key}`)
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/** Whether a stored task is the one `spec` describes (same id, type, priority, payload, constraints, deadline). */
function sameSpec(existing: TaskSpec, spec: TaskSpec): boolean {
  const pick = (task: TaskSpec) =>
    JSON.stringify([task.id, task.type, task.priority, task.payload, task.constraints, task.deadline ?? null])
  return pick(existing) === pick(spec)
}
