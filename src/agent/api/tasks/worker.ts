import type { Abortable, ClaimedTask, TaskWorker } from '../../../api.ts'
import { ClosedError } from '../../../errors.ts'
import { convertJson, type JsonValue } from '../../../state/index.ts'
import type { Scheduler } from '../../../time/index.ts'
import { sleep } from '../../node/abort.ts'
import { errorMessage } from './input.ts'

/** A worker's pause after an unexpected error from `next()` (no leader, say) before it tries again. */
export const WORKER_RETRY_MS = 200

/** What a worker needs of the task API: the next task for this agent, and the end of an attempt. */
export interface WorkSource {
  next(options?: Abortable): Promise<ClaimedTask>
  settleAttempt(task: ClaimedTask, outcome: { result: JsonValue } | { error: string }): Promise<void>
  /** The agent's clock, for the pause after an error. */
  readonly scheduler: Scheduler
}

/** What a worker reports: `completed` and `failed` once the cluster accepted the outcome, else `error`. */
export interface TaskWorkerEventDetail {
  task?: ClaimedTask
  result?: JsonValue
  error?: unknown
}

/**
 * The worker loop of `process()`, in the BullMQ spirit: `concurrency` slots, each `next()` → handler →
 * `complete(result)` or `fail(error)` for exactly the attempt it claimed. A slot claims its next task once its
 * handler is done, in the same entry as the completion and after it (BullMQ's moveToCompleted fetches the next
 * job the same way), so the worker holds no more attempts than it runs. `close()` (or the signal) stops the
 * claiming, then waits for running handlers and their completions. Dispatches `completed`, `failed` and
 * `error` events (`CustomEvent<TaskWorkerEventDetail>`).
 */
export class TaskProcessor extends EventTarget implements TaskWorker {
  private readonly tasks: WorkSource
  private readonly handler: (task: ClaimedTask) => Promise<unknown>
  private readonly stopping = new AbortController()
  private readonly loops: Promise<void>[]
  private activeCount = 0
  private readonly releaseSlots: () => void

  /** `releaseSlots`: called once the worker closes, to withdraw the agent's slot offer (see `SlotOffer`). */
  constructor(
    tasks: WorkSource,
    handler: (task: ClaimedTask) => Promise<unknown>,
    concurrency: number,
    signal?: AbortSignal,
    releaseSlots: () => void = () => {},
  ) {
    super()
    this.tasks = tasks
    this.handler = handler
    this.releaseSlots = releaseSlots
    // No more claims once it stops: what is assigned here and not started goes back to the others.
    this.stopping.signal.addEventListener('abort', () => this.releaseSlots(), { once: true })
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
    let settling: Promise<void> = Promise.resolve()
    try {
      while (!stopping.aborted) {
        let task: ClaimedTask
        try {
          task = await this.tasks.next({ signal: stopping })
        } catch (err) {
          if (stopping.aborted || err instanceof ClosedError) return
          this.emit('error', { error: err })
          await sleep(WORKER_RETRY_MS, stopping, this.tasks.scheduler)
          continue
        }
        const outcome = await this.run(task)
        // One settle per slot at a time; it is queued before the `next()` that follows, so both travel in
        // the same batch, the completion first: the slot it frees is the one the next task takes.
        await settling
        settling = this.settle(task, outcome)
      }
    } finally {
      await settling
    }
  }

  /** Runs the handler: the attempt's result, or why it failed. */
  private async run(task: ClaimedTask): Promise<{ result: JsonValue } | { error: string }> {
    this.activeCount++
    try {
      const converted = convertJson(await this.handler(task))
      if (!converted.ok) {
        return { error: `the handler's result cannot be converted to JSON: ${converted.error}` }
      }
      return { result: converted.value }
    } catch (err) {
      return { error: errorMessage(err) }
    } finally {
      this.activeCount--
    }
  }

  private async settle(task: ClaimedTask, outcome: { result: JsonValue } | { error: string }): Promise<void> {
    try {
      await this.tasks.settleAttempt(task, outcome)
      if ('result' in outcome) this.emit('completed', { task, result: outcome.result })
      else this.emit('failed', { task, error: outcome.error })
    } catch (err) {
      this.emit('error', { task, error: err })
    }
  }

  private emit(type: 'completed' | 'failed' | 'error', detail: TaskWorkerEventDetail): void {
    this.dispatchEvent(new CustomEvent<TaskWorkerEventDetail>(type, { detail }))
  }
}
