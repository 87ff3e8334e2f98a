/**
 * The flow comparison, the same for BullMQ and conclave: `pairs` parent/child pairs, each parent waiting for
 * its child (BullMQ's `FlowProducer.add({ ..., children: [child] })`; conclave's `submit` of the child, then
 * of the parent with `dependsOn: [child]`). The same 3 worker processes as the task benchmark run both
 * jobs of every pair; the first process also submits the flows (64 pairs at a time). Measured from the
 * first submission to the end of the last handler, in jobs (2 per pair) per second; each job's latency runs
 * from just before its pair's submission to the end of its handler.
 */
import type { BenchTarget, TaskSubmitResult } from './protocol.ts'
import type { Outcome } from './report.ts'
import { round, summarize } from './stats.ts'
import { startWorkers } from './task-bench.ts'

const SUBMIT_CONCURRENCY = 64
/** Pairs run (and discarded) before the measured ones. */
const WARM_UP_PAIRS = 100

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
  const completions = await startWorkers(name, targets, queue, 'flow jobs')
  try {
    settings.log(`${name}: flows, warming up`)
    const warm = Math.min(WARM_UP_PAIRS, settings.pairs)
    await targets[0].bench({ kind: 'flowSubmit', queue, pairs: warm, concurrency: SUBMIT_CONCURRENCY })
    await completions.waitFor(warm * 2)
    const collected = completions.restart()
    settings.log(`${name}: flows, ${settings.pairs} parent/child pairs submitted`)
    const submitted = (await targets[0].bench({
      kind: 'flowSubmit',
      queue,
      pairs: settings.pairs,
      concurrency: SUBMIT_CONCURRENCY,
    })) as TaskSubmitResult
    const jobs = submitted.submitted * 2
    await completions.waitFor(jobs)
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
