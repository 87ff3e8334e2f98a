/**
 * Runs a range of seeds, in this thread or spread over worker threads. Results come back in seed order
 * whatever the threads' timing, so a batch's report is as reproducible as each seed.
 */

import { Worker } from 'node:worker_threads'
import { type BugName, type RunResult, runSeed } from './runner.ts'
import type { WorkerJob } from './worker.ts'

export interface BatchOptions {
  start: number
  count: number
  nodes: number
  bug?: BugName
  checkTimeoutMs?: number
  /** Stop at the first violation (seeds after it are not run). */
  failFast?: boolean
  /** Worker threads; 0 or 1 runs in this thread. */
  workers?: number
  /** The task workload on (`RunOptions.tasks`). */
  tasks?: boolean
}

export async function runBatch(
  options: BatchOptions,
  onResult?: (result: RunResult) => void,
): Promise<RunResult[]> {
  const seeds = Array.from({ length: options.count }, (_, i) => options.start + i)
  const checkTimeoutMs = options.checkTimeoutMs ?? 10_000
  const workers = Math.min(options.workers ?? 0, seeds.length)
  const results: RunResult[] = []
  if (workers <= 1) {
    for (const seed of seeds) {
      const result = await runSeed({
        seed,
        nodes: options.nodes,
        bug: options.bug,
        checkTimeoutMs,
        tasks: options.tasks,
      })
      results.push(result)
      onResult?.(result)
      if (options.failFast && result.violation) break
    }
    return results
  }
  await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const job: WorkerJob = {
        // Interleaved, so every worker gets a fair share of slow and fast seeds.
        seeds: seeds.filter((_, i) => i % workers === w),
        nodes: options.nodes,
        bug: options.bug,
        checkTimeoutMs,
        failFast: options.failFast ?? false,
        tasks: options.tasks,
      }
      return new Promise<void>((resolve, reject) => {
        const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: job })
        worker.on('message', (result: RunResult) => {
          results.push(result)
          onResult?.(result)
        })
        worker.on('error', reject)
        worker.on('exit', code =>
          code === 0 ? resolve() : reject(new Error(`sim worker exited with ${code}`)),
        )
      })
    }),
  )
  results.sort((a, b) => a.seed - b.seed)
  if (options.failFast) {
    // Each worker stopped at its own first violation: keep what precedes the earliest one.
    const first = results.find(result => result.violation)
    if (first) return results.filter(result => result.seed <= first.seed)
  }
  return results
}
