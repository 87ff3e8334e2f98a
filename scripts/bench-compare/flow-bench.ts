/**
 * The flow comparison, the same for BullMQ and conclave: `pairs` parent/child pairs, each parent waiting for
 * its child (BullMQ's `FlowProducer.add({ ..., children: [child] })`; conclave's `submit` of the child, then
 * of the parent with `dependsOn: [child]`). The same 3 worker processes as the task benchmark run both
 * jobs of every pair; the first process also submits the flows (64 pairs at a time). Measured from the
 * first submission to the end of the last handler, in jobs (2 per pair) per second; each job's latency runs
 * from just before its pair's submission to the end of its handler.
 */
import type { BenchTarget, TaskStats, TaskSubmitResult } from './protocol.ts'
import type { Outcome } from './report.ts'
import { round, summarize } from './stats.ts'
import { TASK_WORKER_CONCURRENCY } from './task-bench.ts'

const SUBMIT_CONCURRENCY = 64
/** Pairs run (and discarded) before the measured ones. */
const WARM_UP_PAIRS = 100
/** How long the completions may stall before the run is declared stuck. */
const STALL_MS = 30_000

export interface FlowSettings {
  pairs: number
  log(message: string): void
}

/** Runs the flow benchmark on `targets` (the first submits); `queue` names the queue or task type. */
export async function runFlows(
  name: string,
  targets: BenchTarget[],
  queue: string,
  settings: FlowSettings,
): Promise<Outcome> {
  for (const target of targets) {
    await target.bench({ kind: 'taskWorker', queue, concurrency: TASK_WORKER_CONCURRENCY })
  }
  let collected: TaskStats = { ids: [], latenciesMs: [], lastCompletedAt: 0 }
  const waitFor = async (count: number): Promise<void> => {
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
        throw new Error(`${name}: flow jobs stopped completing at ${collected.ids.length} of ${count}`)
      }
    }
  }
  try {
    settings.log(`${name}: flows, warming up`)
    const warm = Math.min(WARM_UP_PAIRS, settings.pairs)
    await targets[0].bench({ kind: 'flowSubmit', queue, pairs: warm, concurrency: SUBMIT_CONCURRENCY })
    await waitFor(warm * 2)
    collected = { ids: [], latenciesMs: [], lastCompletedAt: 0 }
    settings.log(`${name}: flows, ${settings.pairs} parent/child pairs submitted`)
    const submitted = (await targets[0].bench({
      kind: 'flowSubmit',
      queue,
      pairs: settings.pairs,
      concurrency: SUBMIT_CONCURRENCY,
    })) as TaskSubmitResult
    const jobs = submitted.submitted * 2
    await waitFor(jobs)
    const { completed } = (await targets[0].bench({ kind: 'taskVerify', queue })) as { completed: number }
    const elapsedMs = collected.lastCompletedAt - submitted.startedAt
    const latency = summarize(collected.latenciesMs, submitted.errors, elapsedMs)
    return {
      figures: {
        opsPerSecond: Math.round(jobs / (elapsedMs / 1000)),
        p50Ms: latency.p50Ms,
        p99Ms: latency.p99Ms,
        pairs: submitted.submitted,
        submitErrors: submitted.errors,
        handlerRuns: collected.ids.length,
        duplicateRuns: collected.ids.length - new Set(collected.ids).size,
        parentsCompleted: completed,
        elapsedMs: round(elapsedMs),
      },
    }
  } finally {
    for (const target of targets) await target.bench({ kind: 'taskStop' }).catch(() => {})
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
