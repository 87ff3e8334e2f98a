import type { Logger } from '@libp2p/interface'
import type { Abortable, ClaimedTask, DistributedTask, TaskDistributor, TaskInput } from '../../../api.ts'
import {
  AbortError,
  ClosedError,
  ConflictError,
  InvalidArgumentError,
  NoLeaderError,
  NotClaimableError,
  NotFoundError,
  StaleAttemptError,
} from '../../../errors.ts'
import type { RunTaskOp } from '../../../state/commands.ts'
import { convertJson, type JsonValue, type StateEvent, type TaskInfo } from '../../../state/index.ts'
import { LAPSED_FAILURE_VERSION } from '../../../state/versions.ts'
import type { Cancel, Scheduler } from '../../../time/index.ts'
import { sleep } from '../../node/abort.ts'
import type { Client } from '../../node/client.ts'
import type { Replica } from '../../node/replica.ts'
import type { SessionKeeper } from '../../node/session.ts'
import { checkKey, checkOptions, checkValue } from '../../validate.ts'
import { unexpected } from '../consensus.ts'
import { type BatchAnswer, TaskBatcher } from './batch.ts'
import { TaskChanges } from './changes.ts'
import { TaskControls } from './control.ts'
import {
  type AttemptRef,
  attemptKey,
  checkTaskInput,
  errorMessage,
  isAnswer,
  sameSpec,
  settled,
  toClaimedTask,
  toDistributedTask,
} from './input.ts'
import { SlotOffer } from './slot-offer.ts'
import { TaskProcessor, WORKER_RETRY_MS } from './worker.ts'

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
  /** Monotonic time for deadlines and the session lease; the timers of the waits. */
  scheduler: Scheduler
  /**
   * What the local end of an attempt keeps from its timeout for clock drift and scheduling delay (the
   * agent's `leaseSafetyMarginMs`); default the larger of 50 ms and 10 % of the timeout, as for leases.
   */
  leaseSafetyMarginMs?: number
}

/** This agent's hold on one attempt it started. */
interface Attempt {
  readonly taskId: string
  readonly attempt: number
  readonly fencingToken: number
  readonly sessionId: string
  readonly controller: AbortController
  /** complete or fail was sent: an end that follows is (probably) this agent's own doing. */
  settling: boolean
  /**
   * Its local deadline passed (`armDeadline`): its signal aborted, and this agent neither completes nor fails
   * it any more; the record stays until the leader's timeout ends it, so that it is never taken for an orphan.
   */
  timedOut: boolean
  /** Cancels the local deadline's timer. */
  stopDeadline?: Cancel
  /** Where its local deadline counts from (monotonic ms), if it has a timeout. */
  start?: number
  /**
   * Its signal aborted because the local session lease lapsed (`watchLease`), not for anything the cluster
   * did: its failure is sent `lapsed`, which does not count against `maxRetries`.
   */
  lapsed?: boolean
}

/** About the JSON size of a claim or next operation, for the batch size limit. */
const CLAIM_OP_BYTES = 100
/** About the JSON size of a complete or fail operation without its result or error. */
const SETTLE_OP_BYTES = 120

/** Most handlers one worker runs at once. */
const MAX_WORKER_CONCURRENCY = 10_000
/** How often `next()` looks at every running task of this agent for an orphan, at the most. */
const ORPHAN_SCAN_MS = 1000
/** How often `next()` looks again whether the session lease is trusted, while it is not. */
const LEASE_POLL_MS = 100

/**
 * Task distribution for this agent (API.md `TaskDistributor`): every state change is an entry in the log,
 * which the state machine's scheduler turns into assignments. The agent remembers the attempts it started
 * (attempt number and fencing token), so that `complete`/`fail` speak for exactly that attempt and its
 * `signal` aborts as soon as the replicated state ends it (timeout, deadline, session end, cancel).
 *
 * Concurrent calls share log entries: submissions go out together as one `submitTasks`, and claims, `next()`
 * calls, completions and failures as one `runTasks` (`task-batch.ts`), each call still answered for itself.
 * `next()` sends a `next` operation, with which the state machine starts the best task for this agent as of
 * that entry, so concurrent callers never race for the same task.
 *
 * A claim, once sent, is always awaited to its answer, even if the caller's signal aborts meanwhile: an
 * abandoned claim could commit and leave a running attempt nobody works on. Should that happen anyway (the
 * answer was lost to a `NoLeaderError`, or the local session lease lapsed between the claim and its hand-out,
 * which aborted the attempt's signal), `next()` adopts such an attempt as its next task, once the lease is
 * trusted again.
 *
 * An attempt with a `timeout` also ends locally, on this agent's monotonic clock (`armDeadline`): its signal
 * aborts at the send of its claim + timeout − a drift margin, which is before the leader can time it out,
 * and an attempt whose local deadline passed before this replica applied its claim is never handed out.
 *
 * The reads and controls that hold no attempt (status, list, watch, cancel, pause, resume, progress) are
 * `TaskControls`'.
 */
export class Tasks extends TaskControls implements TaskDistributor {
  private readonly context: TaskContext
  /** Attempts this agent started and has not seen end, by task id. */
  private readonly attempts = new Map<string, Attempt>()
  /** Tasks with a claim on its way. */
  private readonly claiming = new Set<string>()
  /**
   * `next` operations on their way, with the index this replica had applied when each was queued: what they
   * start is not known until they answer, but its fencing token (the index of their entry) is above that.
   */
  private readonly nextOps = new Map<number, number>()
  private nextOpId = 0
  /** When `findOrphan` last looked at every running task of this agent (monotonic ms). */
  private orphanScanAt = 0
  /** complete and fail operations on their way: capacity about to be freed on this agent. */
  private settlingCount = 0
  private readonly batcher: TaskBatcher
  private readonly changes: TaskChanges
  /** Whether this agent offers its slots to the scheduler: while a worker or a `next()` runs. */
  readonly slotOffer: SlotOffer
  private leaseTimer?: Cancel
  /**
   * This replica did not apply a claim of ours in time: it lags far behind (a follower still receiving a
   * snapshot, say), so `next()` waits for it to catch up (a read barrier) before it claims again.
   * Otherwise it would keep taking tasks it cannot start before they time out, each a wasted attempt, until they die. (Found by the simulator, seed 140: a follower receiving a
   * snapshot in 64-byte chunks took one task three times, and ran it never.)
   */
  private behind = false

  constructor(context: TaskContext) {
    super(context)
    this.context = context
    this.batcher = new TaskBatcher(context)
    this.changes = new TaskChanges(context.closed)
    this.slotOffer = new SlotOffer({
      selfId: context.selfId,
      commit: context.client,
      replica: context.replica,
      scheduler: context.scheduler,
      closed: context.closed,
      log: context.log,
    })
    context.replica.onEvent(event => this.onEvent(event))
    context.replica.onRestore(() => this.onRestore())
    context.session.onLost(sessionId => this.onSessionLost(sessionId))
    context.closed.addEventListener('abort', () => this.onClosed(), { once: true })
  }

  /** The agent's scheduler (the worker loop's pauses). */
  get scheduler(): Scheduler {
    return this.context.scheduler
  }

  /** `next()` calls now waiting for work: free capacity the work stealer may fill. */
  get idleWaiters(): number {
    return this.changes.idle
  }

  /** Calls `listener` whenever a `next()` starts waiting with nothing to claim; returns the unsubscribe. */
  onIdle(listener: () => void): () => void {
    return this.changes.onIdle(listener)
  }

  async submit(task: TaskInput, options?: Abortable): Promise<DistributedTask> {
    checkOptions(options, ['signal'])
    const { spec, bytes } = checkTaskInput(task)
    const { result, retried } = await this.batcher.submit(spec, bytes, options?.signal)
    // The spec is this call's own copy of the input, sent already: its payload goes to the caller as is.
    if (result.type === 'taskSubmitted')
      return toDistributedTask({ ...spec, createdAt: result.createdAt }, true)
    if (result.type === 'error' && result.code === 'AlreadyExists') {
      // Resent under a new session after the old one lapsed: the first send may be what created it.
      if (retried) {
        await this.context.client.barrier(options?.signal)
        const existing = this.context.replica.state.task(spec.id)
        if (existing !== undefined && sameSpec(existing, spec)) {
          return toDistributedTask({ ...spec, createdAt: existing.createdAt }, true)
        }
      }
      throw new InvalidArgumentError(result.message)
    }
    if (result.type === 'error' && result.code === 'Conflict') throw new ConflictError(result.message)
    if (result.type === 'error' && result.code === 'InvalidArgument') {
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
    const converted = convertJson(result)
    if (!converted.ok)
      throw new InvalidArgumentError(`the result cannot be converted to JSON: ${converted.error}`)
    const value = checkValue(converted.value)
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

  /**
   * The best task for this agent, claimed: first a running attempt of ours nobody holds (a claim whose answer
   * was lost), then our best assigned task, then the best pending task we may take; waits for one otherwise.
   * The signal ends the wait; a claim already sent is awaited.
   */
  async next(options?: Abortable): Promise<ClaimedTask> {
    checkOptions(options, ['signal'])
    const release = this.slotOffer.hold('next')
    try {
      return await this.nextTask(options?.signal)
    } finally {
      release()
    }
  }

  /**
   * Where the local deadlines of attempts let go (`letGo`) count from, by fencing token: one with a timeout is
   * adopted only with its deadline. (An orphan of a lost claim answer has no known start: with a timeout, it
   * is left to the leader's timeout, and retried.)
   */
  private readonly letGoStarts = new Map<number, number>()

  private async nextTask(signal: AbortSignal | undefined): Promise<ClaimedTask> {
    for (;;) {
      this.check(signal)
      const seen = this.changes.generation
      const orphan = this.findOrphan()
      if (orphan !== undefined) {
        const adopted = this.adopt(orphan)
        if (!adopted.signal.aborted) return adopted
        this.letGo(adopted)
        continue
      }
      // A replica found far behind catches up before this agent takes more work it could not start in time.
      if (this.behind) {
        await this.context.client.barrier(signal)
        this.behind = false
        continue
      }
      // With its session lease not trusted locally (keep-alives answered late), every attempt this agent
      // started would abort at once: it claims nothing until the lease is trusted again, and the tasks stay
      // for agents that can run them (simulator, 5 agents, seed 36: two agents with lapsed leases took a task
      // in turn, and ran neither attempt).
      if (!this.leaseTrusted()) {
        await this.waitForWork(seen, signal, LEASE_POLL_MS)
        continue
      }
      if (this.worthAsking()) {
        const claimed = await this.claimNext()
        if (claimed !== undefined) {
          if (!claimed.signal.aborted) return claimed
          this.letGo(claimed)
          continue
        }
        // Nothing for us in the leader's state (or not registered under our session yet): this replica
        // lags, and the events that catch it up (an assignment, a registration) are the change to wait for.
      }
      await this.waitForWork(seen, signal)
    }
  }

  /**
   * Waits for a change that may give this agent work. While the replica shows more attempts running here
   * than this agent holds (a claim whose answer was lost: an orphan the throttled scan may have passed
   * over), the wait is cut at ORPHAN_SCAN_MS to look again: no later event may come to wake it, and the
   * orphan would hold its task forever. `cutMs`: cut it then in any case (a lease renewal wakes nothing).
   */
  private async waitForWork(seen: number, signal: AbortSignal | undefined, cutMs?: number): Promise<void> {
    const load = this.context.replica.state.agentLoad(this.context.selfId)
    const orphaned = load !== undefined && load.running > this.attempts.size
    if (cutMs === undefined && !orphaned) return this.changes.wait(seen, signal)
    const rescan = new AbortController()
    const stop = (): void => rescan.abort()
    signal?.addEventListener('abort', stop, { once: true })
    const cancel = this.context.scheduler.after(cutMs ?? ORPHAN_SCAN_MS, stop, { keepAlive: true })
    try {
      await this.changes.wait(seen, rescan.signal)
    } catch (err) {
      if (!(err instanceof AbortError) || signal?.aborted) throw err
    } finally {
      cancel()
      signal?.removeEventListener('abort', stop)
    }
  }

  /** Whether this agent may trust its session now (none open yet: the first claim opens one, trusted). */
  private leaseTrusted(): boolean {
    const { session, scheduler } = this.context
    return session.id === '' || session.validUntil() > scheduler.now()
  }

  /**
   * Whether a `next` operation may find something, as this replica sees it (it may lag: the leader's state
   * decides): tasks assigned to this agent, or pending tasks with a slot here free or being freed by a
   * complete or fail on its way, beyond what the `next` operations in flight will take.
   */
  private worthAsking(): boolean {
    const state = this.context.replica.state
    const load = state.agentLoad(this.context.selfId)
    if (load === undefined) return false
    let candidates = load.assigned - this.claiming.size
    const pending = state.pendingCount
    if (pending > 0) {
      // A free slot next to a pending task it may take happens only until the scheduler's pass places it.
      const free = Math.max(0, load.slots - load.running - load.assigned)
      const usable = free > 0 && state.bestTaskFor(this.context.selfId)?.state === 'pending' ? free : 0
      candidates += Math.min(pending, usable + this.settlingCount)
    }
    return candidates > this.nextOps.size
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
    return new TaskProcessor(this, handler, concurrency, options?.signal, this.slotOffer.hold('worker'))
  }

  /** Ends the attempt with success, by its exact (attempt, fencing token). */
  completeAttempt(task: AttemptRef, result: JsonValue, signal?: AbortSignal): Promise<void> {
    const { taskId, attempt, fencingToken } = attemptKey(task)
    const bytes = SETTLE_OP_BYTES + Buffer.byteLength(JSON.stringify(result))
    return this.settleOp({ op: 'complete', taskId, attempt, fencingToken, result }, bytes, signal)
  }

  /** Ends the attempt with failure, by its exact (attempt, fencing token): retried or dead. */
  failAttempt(task: AttemptRef, error: string, signal?: AbortSignal): Promise<void> {
    const { taskId, attempt, fencingToken } = attemptKey(task)
    const bytes = SETTLE_OP_BYTES + Buffer.byteLength(error)
    return this.settleOp({ op: 'fail', taskId, attempt, fencingToken, error }, bytes, signal)
  }

  /**
   * Queues the complete or fail at once (a worker's `next()` that follows joins the same batch, after it),
   * and counts it as capacity about to be freed here until it is answered.
   */
  private async settleOp(
    op: Extract<RunTaskOp, { op: 'complete' | 'fail' }>,
    bytes: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const held = this.attempts.get(op.taskId)
    if (held?.fencingToken === op.fencingToken && held.timedOut) {
      // Ended here at its local deadline: the leader's timeout ends it in the cluster, and nothing before.
      throw new StaleAttemptError(`attempt ${op.attempt} of task ${op.taskId} timed out`)
    }
    this.markSettling(op.taskId, op.fencingToken)
    // Not the handler's fault: a cluster whose every replica applies it does not count the attempt.
    const lapsed =
      op.op === 'fail' &&
      held?.fencingToken === op.fencingToken &&
      held.lapsed === true &&
      this.context.replica.state.clusterVersion >= LAPSED_FAILURE_VERSION
    this.settlingCount++
    let answer: BatchAnswer
    try {
      answer = await this.batcher.run(lapsed ? { ...op, lapsed } : op, bytes, signal)
    } finally {
      this.settlingCount--
    }
    settled(answer.result)
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
        await sleep(Math.min(WORKER_RETRY_MS * tries, 2000), this.context.closed, this.context.scheduler)
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
    this.claiming.add(taskId)
    // Before the leader can start the attempt: where its local deadline counts from.
    const sentAt = this.context.scheduler.now()
    let held: Attempt
    try {
      const { result, sessionId } = await this.batcher.run({ op: 'claim', taskId }, CLAIM_OP_BYTES)
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
      if (!(err instanceof NotClaimableError || err instanceof NotFoundError)) this.changes.wake()
      throw err
    } finally {
      this.claiming.delete(taskId)
    }
    return this.started(held, sentAt)
  }

  /**
   * Sends a `next` operation: the state machine starts the best task for this agent as of that entry, so
   * concurrent callers (and agents) never race for the same task. Undefined when there was none, or when
   * this agent is not (yet) registered under its session.
   */
  private async claimNext(): Promise<ClaimedTask | undefined> {
    const id = ++this.nextOpId
    this.nextOps.set(id, this.context.replica.state.appliedIndex)
    const sentAt = this.context.scheduler.now()
    let held: Attempt | undefined
    try {
      const { result, sessionId } = await this.batcher.run({ op: 'next' }, CLAIM_OP_BYTES)
      if (result.type === 'noTask') return undefined
      if (result.type === 'error' && result.code === 'NotClaimable') return undefined
      if (result.type !== 'taskClaimed') throw unexpected(result)
      // Held before the operation leaves `nextOps`, with no await in between: never taken for an orphan.
      held = this.hold(result.taskId, result.attempt, result.fencingToken, sessionId)
    } catch (err) {
      // Not the cluster's answer: the operation may still commit, and `next()` looks for the orphan.
      this.changes.wake()
      throw err
    } finally {
      this.nextOps.delete(id)
    }
    // Callers that left the candidates to this operation look again: on a leader, the start applied before
    // this answer arrived, and no event follows it.
    this.changes.wake()
    return this.started(held, sentAt)
  }

  /**
   * Builds the ClaimedTask of an attempt just started, once this replica has applied its start; `sentAt`:
   * when its claim was queued (monotonic ms).
   */
  private async started(held: Attempt, sentAt: number): Promise<ClaimedTask> {
    const { taskId } = held
    // The task's fields come from this replica, which may not have applied the claim (or even the submit) yet.
    try {
      await this.waitApplied(held.fencingToken)
    } catch (err) {
      // Let go, so that a later `next()` adopts the attempt once this replica catches up (within its
      // local deadline, if it has a timeout).
      this.behind = true
      if (this.attempts.get(taskId) === held) this.attempts.delete(taskId)
      this.letGoStarts.set(held.fencingToken, sentAt)
      this.changes.wake()
      throw err
    }
    const info = this.context.replica.state.task(taskId)
    if (info === undefined) {
      // Finished and forgotten already: the attempt is long over.
      this.release(held, 'the task finished before the claim was seen')
      throw new NotClaimableError(`task ${taskId} finished before this agent could start it`)
    }
    if (!this.isCurrent(held)) this.release(held, 'the attempt ended before it was returned')
    else if (!this.armDeadline(held, info.constraints.timeout, sentAt)) {
      // Applied here only after the attempt's timeout surely passed: this replica lags far behind.
      this.behind = true
    }
    return toClaimedTask(info, held, (value, options) => this.progressAttempt(refOf(held), value, options))
  }

  /**
   * The local end of an attempt with a timeout: its signal aborts at `start + timeout − margin` on this
   * agent's monotonic clock, `start` being when its claim was sent, before the leader started the attempt.
   * The leader times the attempt out no sooner than `timeout` after it started it, on its own monotonic
   * clock (`task-planner.ts`), so the abort comes first as long as the clocks' rates differ by less than
   * `timeout / (timeout − margin)`: the bound lock leases need (README, Guarantees). A replica far behind
   * (or an agent paused) that applies the claim after the leader already timed the attempt out and started
   * a retry elsewhere therefore never runs it beside the retry. The margin is `leaseSafetyMarginMs`, by
   * default the larger of 50 ms and 10 % of the timeout, and at most half the timeout. Once ended locally,
   * the attempt's complete and fail are refused here (`StaleAttemptError`); the task fails, and is retried,
   * at the leader's timeout, not before. Answers false if that moment already passed (aborted at once).
   */
  private armDeadline(held: Attempt, timeoutMs: number, start: number): boolean {
    if (timeoutMs <= 0) return true
    held.start = start
    const margin = Math.min(this.context.leaseSafetyMarginMs ?? Math.max(50, timeoutMs * 0.1), timeoutMs / 2)
    const wait = start + timeoutMs - margin - this.context.scheduler.now()
    if (wait <= 0) {
      this.timeOut(held, timeoutMs)
      return false
    }
    held.stopDeadline?.()
    held.stopDeadline = this.context.scheduler.after(wait, () => this.timeOut(held, timeoutMs))
    return true
  }

  /** The attempt's local deadline passed: aborted, and kept (not settled) until the leader's timeout. */
  private timeOut(held: Attempt, timeoutMs: number): void {
    if (this.attempts.get(held.taskId) !== held || held.settling) return
    held.timedOut = true
    this.abort(held, `attempt ${held.attempt} of task ${held.taskId} timed out after ${timeoutMs} ms`)
  }

  private hold(taskId: string, attempt: number, fencingToken: number, sessionId: string): Attempt {
    const previous = this.attempts.get(taskId)
    if (previous !== undefined && previous.fencingToken !== fencingToken) {
      // A newer attempt of ours replaces an older one whose end we have not applied yet.
      this.abort(previous, `a newer attempt ${attempt} of the task started`)
      previous.stopDeadline?.()
    }
    const held: Attempt = {
      taskId,
      attempt,
      fencingToken,
      sessionId,
      controller: new AbortController(),
      settling: false,
      timedOut: false,
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
    const state = replica.state
    const load = state.agentLoad(selfId)
    if (load === undefined || load.running === 0) return undefined
    // An orphan makes more attempts run here than this agent holds, unless held ones not applied here yet
    // hide it: those pass, so a full look every ORPHAN_SCAN_MS finds it even under a steady load.
    const now = this.context.scheduler.now()
    if (load.running <= this.attempts.size && now - this.orphanScanAt < ORPHAN_SCAN_MS) return undefined
    // Not while the session's lease is not trusted locally: the adopted attempt's signal would abort at once
    // (or soon). `waitForWork` looks again every ORPHAN_SCAN_MS while an orphan may exist.
    if (session.validUntil() <= now) return undefined
    this.orphanScanAt = now
    const registered = state.agent(selfId)
    if (registered === undefined || !registered.alive || registered.sessionId !== session.id) return undefined
    // A `next` on its way may have started any task with a later index than the replica had applied then.
    let limit = Number.POSITIVE_INFINITY
    for (const index of this.nextOps.values()) limit = Math.min(limit, index)
    // The running tasks as stored (no copy, no sort): every woken `next()` may look while an orphan may exist.
    for (const task of state.tasksRunningOn(selfId)) {
      if (task.state !== 'running' || this.claiming.has(task.id) || task.fencingToken > limit) continue
      if (task.constraints.timeout > 0 && !this.letGoStarts.has(task.fencingToken)) continue
      if (this.attempts.get(task.id)?.fencingToken !== task.fencingToken) return state.task(task.id)
    }
    return undefined
  }

  /**
   * `next()` got an attempt whose signal aborted before it could be handed out. If the attempt still runs
   * here (its signal was aborted by the local lease watch, `watchLease`, while the cluster still holds our
   * session: a keep-alive answered late under load), nobody would ever run, complete or fail it, and its task
   * would stay `running` for good. Letting go of it makes it an orphan, which `findOrphan` adopts with a fresh
   * signal once the lease is trusted again; if the cluster did end our session, the attempt ends with it.
   */
  private letGo(task: ClaimedTask): void {
    const held = this.attempts.get(task.id)
    // Only the very record handed out (its signal), and only while its attempt still runs here.
    // Never one whose local deadline passed: it may run elsewhere already.
    if (
      held === undefined ||
      held.controller.signal !== task.signal ||
      held.timedOut ||
      !this.isCurrent(held)
    )
      return
    this.attempts.delete(task.id)
    held.stopDeadline?.()
    if (held.start !== undefined) this.letGoStarts.set(held.fencingToken, held.start)
    this.changes.wake()
  }

  private adopt(task: TaskInfo): ClaimedTask {
    this.context.log('adopting attempt %d of task %s, whose claim answer was lost', task.attempt, task.id)
    const held = this.hold(task.id, task.attempt, task.fencingToken, this.context.session.id)
    const start = this.letGoStarts.get(task.fencingToken)
    this.letGoStarts.delete(task.fencingToken)
    if (start !== undefined) this.armDeadline(held, task.constraints.timeout, start)
    return toClaimedTask(task, held, (value, options) => this.progressAttempt(refOf(held), value, options))
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
        this.letGoStarts.delete(event.fencingToken)
        const held = this.attempts.get(event.taskId)
        if (held === undefined || held.fencingToken !== event.fencingToken) return
        this.attempts.delete(event.taskId)
        held.stopDeadline?.()
        // The agent's own complete/fail ends its attempt as it meant to; anything else takes it away.
        if (event.reason !== 'completed' && event.reason !== 'failed') {
          this.abort(held, `attempt ${held.attempt} of task ${held.taskId} ended: ${event.reason}`)
        }
        return
      }
      case 'taskAssigned':
      case 'taskUnassigned':
      case 'taskStarted':
        if (event.agentId === selfId) this.changes.wake()
        return
      case 'taskStolen':
        if (event.from === selfId || event.to === selfId) this.changes.wake()
        return
      case 'agentChanged':
        if (event.agentId === selfId) this.changes.wake()
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
      held.stopDeadline?.()
      if (!held.settling) this.abort(held, `attempt ${held.attempt} of task ${held.taskId} ended`)
    }
    const running = new Set(state.tasksAssignedTo(this.context.selfId).map(task => task.fencingToken))
    for (const token of this.letGoStarts.keys()) {
      if (token <= state.appliedIndex && !running.has(token)) this.letGoStarts.delete(token)
    }
    this.changes.wake()
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
    this.leaseTimer?.()
    for (const held of this.attempts.values()) {
      held.stopDeadline?.()
      held.controller.abort(new ClosedError())
    }
    this.attempts.clear()
    this.letGoStarts.clear()
    this.changes.flush()
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
      const wait = validUntil - this.context.scheduler.now()
      if (wait <= 0) {
        for (const held of this.attempts.values()) {
          if (!held.controller.signal.aborted) held.lapsed = true
          this.abort(held, 'the session lease of this agent ran out')
        }
        // Checked again later: a reopened session holds none of these attempts, so they stay aborted.
      }
      this.leaseTimer = this.context.scheduler.after(Math.max(wait, 250), check)
    }
    check()
  }

  /** Forgets an attempt that is no longer current and aborts its signal. */
  private release(held: Attempt, reason: string): void {
    if (this.attempts.get(held.taskId) === held) this.attempts.delete(held.taskId)
    held.stopDeadline?.()
    this.abort(held, reason)
  }

  private abort(held: Attempt, reason: string): void {
    if (!held.controller.signal.aborted) held.controller.abort(new StaleAttemptError(reason))
  }

  /** Resolves once this replica applied the entry at `index`; `NoLeaderError` past the operation timeout. */
  private waitApplied(index: number): Promise<void> {
    const { replica, closed, client, scheduler } = this.context
    return replica.waitApplied(
      index,
      { closed },
      {
        scheduler,
        ms: client.deadline() - scheduler.now(),
        error: () => new NoLeaderError(`this agent did not apply entry ${index} in time`),
      },
    )
  }

  private check(signal?: AbortSignal): void {
    if (this.context.closed.aborted) throw new ClosedError()
    if (signal?.aborted) throw new AbortError()
  }
}

function refOf(held: Attempt): AttemptRef {
  return { id: held.taskId, attempt: held.attempt, fencingToken: BigInt(held.fencingToken) }
}
