/**
 * A worker thread that runs a share of the seeds and posts each result back, so `--seeds` above a few dozen
 * uses every core. Each seed is independent and deterministic, so splitting them changes nothing but time.
 */

import { parentPort, workerData } from 'node:worker_threads'
import { type BugName, runSeed } from './runner.ts'

export interface WorkerJob {
  seeds: number[]
  nodes: number
  bug: BugName | undefined
  checkTimeoutMs: number
  failFast: boolean
  /** The task workload on (`RunOptions.tasks`). */
  tasks?: boolean
}

const job = workerData as WorkerJob
for (const seed of job.seeds) {
  const result = await runSeed({
    seed,
    nodes: job.nodes,
    bug: job.bug,
    checkTimeoutMs: job.checkTimeoutMs,
    tasks: job.tasks,
  })
  parentPort!.postMessage(result)
  if (job.failFast && result.violation) break
}
