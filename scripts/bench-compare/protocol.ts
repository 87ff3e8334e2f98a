/**
 * The requests the load generator sends to the processes that hold a system's client: the etcd runner, the
 * BullMQ worker processes, and conclave's agent processes (the agent host's `bench` op). Every side answers
 * the same requests, so both systems of a comparison are driven the same way.
 */
import type { WorkloadSpec } from './workloads.ts'

export type BenchRequest =
  | { kind: 'workload'; spec: WorkloadSpec }
  /** Start this process's task worker on `queue` with `concurrency` handlers at once. */
  | { kind: 'taskWorker'; queue: string; concurrency: number }
  /** Submit `count` tasks to `queue`, `concurrency` submissions at once. */
  | { kind: 'taskSubmit'; queue: string; count: number; concurrency: number }
  /** Submit `pairs` parent/child flows to `queue` (each parent waits for its child), `concurrency` at once. */
  | { kind: 'flowSubmit'; queue: string; pairs: number; concurrency: number }
  | { kind: 'taskStats' }
  /** How many of the tasks this process submitted the system itself reports as completed. */
  | { kind: 'taskVerify'; queue: string }
  | { kind: 'taskStop' }
  /** conclave only: this agent's counters (`conclave-counters.ts`), for `--counters`. */
  | { kind: 'counters' }

export interface TaskSubmitResult {
  submitted: number
  errors: number
  /** Wall-clock ms of the first submission and of the last acknowledgement. */
  startedAt: number
  endedAt: number
}

export interface TaskStats {
  /** Ids of the tasks whose handler finished here, one per run of a handler (a repeat is a duplicate). */
  ids: string[]
  /** Per task, wall-clock ms from just before its submission to the end of its handler. */
  latenciesMs: number[]
  /** Wall-clock ms when the last handler here finished; 0 if none did. */
  lastCompletedAt: number
}

/** Anything that answers bench requests: a child process, or an agent host through its `bench` op. */
export interface BenchTarget {
  bench(request: BenchRequest): Promise<unknown>
}
