/**
 * The task comparison, the same for BullMQ and conclave: 3 processes each run a worker of concurrency 50,
 * the first also submits the tasks (64 submissions at a time); handlers do no work. Measured from the first
 * submission to the end of the last handler; each task's latency runs from just before its submission to
 * the end of its handler.
 */
import type { BenchTarget, TaskStats, TaskSubmitResult } from './protocol.ts'
import type { Outcome } from './report.ts'
import { round, summarize } from './stats.ts'

export const TASK_WORKERS = 3
export const TASK_WORKER_CONCURRENCY = 50
const SUBMIT_CONCURRENCY = 64
/** Tasks run (and discarded) before the measured ones: connections, JIT, caches. */
export const WARM_UP_TASKS = 500
/** How long the completions may stall before the run is declared stuck. */
const STALL_MS = 30_000

export interface TaskSettings {
  tasks: number
  log(message: string): void
}

/** Runs the task benchmark on `targets` (the first submits); `queue` names the queue or task type. */
export async function runTasks(
  name: string,
  targets: BenchTarget[],
  queue: string,
  settings: TaskSettings,
): Promise<Outcome> {
  const completions = await startWorkers(name, targets, queue, 'tasks')
  try {
    settings.log(`${name}: tasks, warming up`)
    const warm = Math.min(WARM_UP_TASKS, settings.tasks)
    await targets[0].bench({ kind: 'taskSubmit', queue, count: warm, concurrency: SUBMIT_CONCURRENCY })
    await completions.waitFor(warm)
    const collected = completions.restart()
    settings.log(
      `${name}: tasks, ${settings.tasks} submitted, ${TASK_WORKERS} workers of concurrency ${TASK_WORKER_CONCURRENCY}`,
    )
    const submitted = (await targets[0].bench({
      kind: 'taskSubmit',
      queue,
      count: settings.tasks,
      concurrency: SUBMIT_CONCURRENCY,
    })) as TaskSubmitResult
    await completions.waitFor(submitted.submitted)
    const { completed } = (await targets[0].bench({ kind: 'taskVerify', queue })) as { completed: number }
    const elapsedMs = collected.lastCompletedAt - submitted.startedAt
    const latency = summarize(collected.latenciesMs, submitted.errors, elapsedMs)
    return {
      figures: {
        opsPerSecond: Math.round(submitted.submitted / (elapsedMs / 1000)),
        p50Ms: latency.p50Ms,
        p99Ms: latency.p99Ms,
        submitted: submitted.submitted,
        submitErrors: submitted.errors,
        submitsPerSecond: Math.round(
          submitted.submitted / ((submitted.endedAt - submitted.startedAt) / 1000),
        ),
        handlerRuns: collected.ids.length,
        duplicateRuns: collected.ids.length - new Set(collected.ids).size,
        completedPerSystem: completed,
        elapsedMs: round(elapsedMs),
      },
    }
  } finally {
    for (const target of targets) await target.bench({ kind: 'taskStop' }).catch(() => {})
  }
}

/** Completions the worker processes report, gathered by polling them. */
export interface Completions {
  /** Resolves once `count` handlers ended since the last restart; throws if they stall for `STALL_MS`. */
  waitFor(count: number): Promise<void>
  /** Forgets what was gathered (the warm-up); the figures fill the object returned. */
  restart(): TaskStats
}

/**
 * Starts a worker on every target (concurrency `TASK_WORKER_CONCURRENCY`) and gathers their completions;
 * `what` names the jobs in the stall error. Shared by the task and the flow benchmark.
 */
export async function startWorkers(
  name: string,
  targets: BenchTarget[],
  queue: string,
  what: string,
): Promise<Completions> {
  for (const target of targets) {
    await target.bench({ kind: 'taskWorker', queue, concurrency: TASK_WORKER_CONCURRENCY })
  }
  let collected: TaskStats = { ids: [], latenciesMs: [], lastCompletedAt: 0 }
  return {
    async waitFor(count) {
      let progressAt = Date.now()
      while (collected.ids.length < count) {
        await sleep(100)
        const before = collected.ids.length
        for (const target of targets) {
          const stats = (await target.bench({ kind: 'taskStats' })) as TaskStats
          collected.ids.push(...stats.ids)
          collected.latenciesMs.push(...stats.latenciesMs)
          collected.lastCompletedAt = Math.max(collected.lastCompletedAt, stats.lastCompletedAt)
        }
        if (collected.ids.length > before) progressAt = Date.now()
        else if (Date.now() - progressAt > STALL_MS) {
          throw new Error(`${name}: ${what} stopped completing at ${collected.ids.length} of ${count}`)
        }
      }
    },
    restart() {
      collected = { ids: [], latenciesMs: [], lastCompletedAt: 0 }
      return collected
    },
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
