import { AbortError, NoLeaderError } from '../../../errors.ts'
import type { Command, RunTaskOp } from '../../../state/commands.ts'
import type { CommandResult } from '../../../state/index.ts'
import { MAX_BATCH_OPS, type TaskSpec } from '../../../state/task-spec.ts'
import type { Scheduler } from '../../../time/scheduler.ts'
import type { Client } from '../../node/client.ts'
import type { SessionKeeper } from '../../node/session.ts'

/** The answer to one operation of a batch, and the session the batch was applied in. */
export interface BatchAnswer {
  result: CommandResult
  sessionId: string
  /** The batch was sent again under a new session after the first one lapsed. */
  retried: boolean
}

export interface TaskBatcherContext {
  selfId: string
  client: Client
  session: SessionKeeper
  /** Defers a flush to the next macrotask; bounds a batch by its deadline. */
  scheduler: Scheduler
}

/**
 * Bytes of operations in one batch, as JSON (at least one operation always goes, whatever its size): well
 * below the Raft message and RPC frame limits, which must hold the entry whole.
 */
const MAX_BATCH_BYTES = 1024 * 1024
/**
 * Batches of one kind in flight at once. While they are, new operations queue and leave together in the
 * next one, so the batch size follows the load: one operation alone goes at once, a hundred concurrent ones
 * share an entry, a forward and an fsync.
 */
const MAX_IN_FLIGHT = 1

interface Item<T> {
  readonly value: T
  readonly bytes: number
  /** The call's end (monotonic ms): the agent's operation timeout from the moment it was made. */
  readonly deadline: number
  readonly signal?: AbortSignal
  resolve(answer: BatchAnswer): void
  reject(err: unknown): void
}

/** Operations of one kind waiting for a batch, and the batches of that kind in flight. */
class Lane<T> {
  readonly queue: Item<T>[] = []
  inFlight = 0
  scheduled = false
  readonly build: (values: T[], sessionId: string, selfId: string) => Command

  constructor(build: (values: T[], sessionId: string, selfId: string) => Command) {
    this.build = build
  }
}

/**
 * Coalesces this agent's concurrent task operations into `submitTasks` and `runTasks` commands: one log
 * entry, one forward to the leader and one session number for many operations, each of which still gets
 * its own result. A batch is applied exactly once as a whole (the session's deduplication), so each of its
 * operations is too; a batch refused because the session lapsed was not applied and goes again, whole,
 * under the new session.
 */
export class TaskBatcher {
  private readonly context: TaskBatcherContext
  private readonly submits = new Lane<TaskSpec>(tasks => ({ type: 'submitTasks', tasks }))
  private readonly runs = new Lane<RunTaskOp>((ops, sessionId, agentId) => ({
    type: 'runTasks',
    agentId,
    sessionId,
    ops,
  }))

  constructor(context: TaskBatcherContext) {
    this.context = context
  }

  /** Submits a task in the next batch; `bytes` is its size as JSON. */
  submit(task: TaskSpec, bytes: number, signal?: AbortSignal): Promise<BatchAnswer> {
    return this.enqueue(this.submits, task, bytes, signal)
  }

  /** Runs a worker operation in the next batch; `bytes` is about its size as JSON. */
  run(op: RunTaskOp, bytes: number, signal?: AbortSignal): Promise<BatchAnswer> {
    return this.enqueue(this.runs, op, bytes, signal)
  }

  /**
   * Queued now, sent with the next batch. An abort before that takes the operation out; after, the caller
   * stops waiting but the operation may still apply (as for any command already sent).
   */
  private enqueue<T>(lane: Lane<T>, value: T, bytes: number, signal?: AbortSignal): Promise<BatchAnswer> {
    if (signal?.aborted) return Promise.reject(new AbortError())
    const deadline = this.context.client.deadline()
    return new Promise<BatchAnswer>((resolve, reject) => {
      let item: Item<T>
      if (signal === undefined) item = { value, bytes, deadline, resolve, reject }
      else {
        const onAbort = (): void => reject(new AbortError())
        signal.addEventListener('abort', onAbort, { once: true })
        const done = (): void => signal.removeEventListener('abort', onAbort)
        item = {
          value,
          bytes,
          deadline,
          signal,
          resolve: answer => {
            done()
            resolve(answer)
          },
          reject: err => {
            done()
            reject(err)
          },
        }
      }
      lane.queue.push(item)
      this.schedule(lane)
    })
  }

  /** Flushes on the next turn of the event loop, so that everything queued in this one goes together. */
  private schedule<T>(lane: Lane<T>): void {
    if (lane.scheduled || lane.inFlight >= MAX_IN_FLIGHT) return
    lane.scheduled = true
    this.context.scheduler.after(
      0,
      () => {
        lane.scheduled = false
        this.flush(lane)
      },
      { keepAlive: true },
    )
  }

  private flush<T>(lane: Lane<T>): void {
    const now = this.context.scheduler.now()
    while (lane.queue.length > 0 && lane.inFlight < MAX_IN_FLIGHT) {
      const items: Item<T>[] = []
      let bytes = 0
      let taken = 0
      for (; taken < lane.queue.length && items.length < MAX_BATCH_OPS; taken++) {
        const item = lane.queue[taken]
        // Aborted while queued: never sent (its promise already rejected).
        if (item.signal?.aborted) continue
        if (item.deadline <= now) {
          // Queued behind a batch that took the whole timeout: never sent, so surely not applied.
          item.reject(new NoLeaderError('No leader took the operation in time; it did not take effect'))
          continue
        }
        if (items.length > 0 && bytes + item.bytes > MAX_BATCH_BYTES) break
        items.push(item)
        bytes += item.bytes
      }
      lane.queue.splice(0, taken)
      if (items.length > 0) void this.send(lane, items)
    }
  }

  private async send<T>(lane: Lane<T>, items: Item<T>[]): Promise<void> {
    lane.inFlight++
    // Each call is bounded by the operation timeout from when it was made, queueing included.
    let deadline = Number.POSITIVE_INFINITY
    for (const item of items) deadline = Math.min(deadline, item.deadline)
    const timeout = new AbortController()
    const { scheduler } = this.context
    const cancelTimer = scheduler.after(Math.max(1, deadline - scheduler.now()), () => timeout.abort(), {
      keepAlive: true,
    })
    try {
      const values = items.map(item => item.value)
      const { selfId } = this.context
      const answer = await submitWithSession(
        this.context,
        sessionId => lane.build(values, sessionId, selfId),
        timeout.signal,
      )
      const { result, sessionId, retried } = answer
      if (result.type === 'taskResults' && result.results.length === items.length) {
        for (let i = 0; i < items.length; i++)
          items[i].resolve({ result: result.results[i], sessionId, retried })
      } else {
        // An answer for the whole batch (a leader that does not know the command, say): each gets it.
        for (const item of items) item.resolve(answer)
      }
    } catch (err) {
      const reason =
        timeout.signal.aborted && err instanceof AbortError
          ? new NoLeaderError('The operation did not commit in time; it may or may not take effect')
          : err
      for (const item of items) item.reject(reason)
    } finally {
      cancelTimer()
      lane.inFlight--
      if (lane.queue.length > 0) this.schedule(lane)
    }
  }
}

/**
 * Commits a command numbered by this agent's session (applied at most once however often it is retried),
 * opening a session first if there is none; a command refused because the session ended is sent again
 * under a new one (it was not applied). `build` gets the session id for commands that carry it.
 */
export async function submitWithSession(
  context: Pick<TaskBatcherContext, 'client' | 'session'>,
  build: (sessionId: string) => Command,
  signal?: AbortSignal,
): Promise<BatchAnswer> {
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
