/** Totals over many seeds, and the report lines the CLI prints. */

import { emptyFaultCounts, FAULT_KINDS, type FaultCounts } from './faults.ts'
import { kvLines } from './kv-summary.ts'
import type { BugName, RunResult } from './runner.ts'

export interface Summary {
  seeds: number
  violations: number
  firstFailingSeed: number | null
  /** Violations per broken property. */
  byProperty: Record<string, number>
  ops: number
  unknownOps: number
  /** Writes followers forwarded, and those answered by the follower's own apply of their entry. */
  writesForwarded: number
  writesAppliedByFollower: number
  /** Forwarded writes answered from the leader's answer (it came first), or not proposed (redirected). */
  writesAnsweredByLeader: number
  forwardsRefused: number
  /** Follower commits learned from peers' acknowledgements. */
  peerCommits: number
  faults: FaultCounts
  /** Seeds whose linearizability check ran out of time (no verdict). */
  checkTimeouts: number
  slowestOpAfterFaultsTicks: number
  slowestLeaderAfterFaultsTicks: number
  events: number
  /** Sum of per-seed run times (CPU time across workers). */
  runMs: number
  /** What the transaction, ephemeral-key and semaphore workloads did (`kv-summary.ts`). */
  kvLines: string[]
}

export function summarize(results: readonly RunResult[]): Summary {
  const summary: Summary = {
    seeds: results.length,
    violations: 0,
    firstFailingSeed: null,
    byProperty: {},
    ops: 0,
    unknownOps: 0,
    writesForwarded: 0,
    writesAppliedByFollower: 0,
    writesAnsweredByLeader: 0,
    forwardsRefused: 0,
    peerCommits: 0,
    faults: emptyFaultCounts(),
    checkTimeouts: 0,
    slowestOpAfterFaultsTicks: 0,
    slowestLeaderAfterFaultsTicks: 0,
    events: 0,
    runMs: 0,
    kvLines: kvLines(results),
  }
  for (const result of results) {
    if (result.violation) {
      summary.violations++
      if (summary.firstFailingSeed === null || result.seed < summary.firstFailingSeed) {
        summary.firstFailingSeed = result.seed
      }
      const property = result.violation.property
      summary.byProperty[property] = (summary.byProperty[property] ?? 0) + 1
    }
    summary.ops += result.ops
    summary.unknownOps += result.unknownOps
    summary.writesForwarded += result.forwarding.forwarded
    summary.writesAppliedByFollower += result.forwarding.appliedByFollower
    summary.writesAnsweredByLeader += result.forwarding.answeredByLeader
    summary.forwardsRefused += result.forwarding.refused
    summary.peerCommits += result.forwarding.peerCommits
    for (const kind of FAULT_KINDS) summary.faults[kind] += result.faults[kind]
    if (result.linearizability === 'unknown') summary.checkTimeouts++
    summary.slowestOpAfterFaultsTicks = Math.max(
      summary.slowestOpAfterFaultsTicks,
      result.liveness.slowestOpTicks,
    )
    summary.slowestLeaderAfterFaultsTicks = Math.max(
      summary.slowestLeaderAfterFaultsTicks,
      result.liveness.leaderAfterTicks ?? 0,
    )
    summary.events += result.events
    summary.runMs += result.elapsedMs
  }
  return summary
}

/** The command that replays one seed with its trace. */
export function replayCommand(
  seed: number,
  nodes: number,
  bug: BugName | undefined,
  withTasks = true,
): string {
  // `npm run sim` runs the task workload unless told not to: a run without it (the tests' `runSeed`) says so.
  const flags = `${bug ? ` --bug ${bug}` : ''}${withTasks ? '' : ' --no-tasks'}`
  return `npm run sim -- --seeds 1 --start ${seed} --nodes ${nodes}${flags} --verbose`
}

export function violationLines(result: RunResult): string[] {
  if (!result.violation) return []
  return [
    `seed ${result.seed}: ${result.violation.message}`,
    `  replay: ${replayCommand(result.seed, result.nodes, result.bug, result.withTasks)}`,
  ]
}

export function summaryLines(summary: Summary, elapsedMs: number): string[] {
  const seconds = elapsedMs / 1000
  const faults = FAULT_KINDS.map(kind => `${kind}=${summary.faults[kind]}`).join(' ')
  const properties = Object.entries(summary.byProperty)
    .map(([property, count]) => `${property}=${count}`)
    .join(' ')
  return [
    `seeds: ${summary.seeds} in ${seconds.toFixed(1)} s (${(summary.seeds / seconds).toFixed(1)} seeds/s, ${(summary.runMs / Math.max(1, summary.seeds)).toFixed(1)} ms/seed)`,
    `ops: ${summary.ops} (${(summary.ops / Math.max(1, summary.seeds)).toFixed(1)}/seed, ${summary.unknownOps} with unknown outcome); events: ${summary.events}`,
    `forwarded writes: ${summary.writesForwarded} (answered on the follower's own apply ${summary.writesAppliedByFollower}, from the leader's answer ${summary.writesAnsweredByLeader}, not proposed ${summary.forwardsRefused}); follower commits learned from peers: ${summary.peerCommits}`,
    `faults: ${faults}`,
    `liveness after faults: slowest leader ${summary.slowestLeaderAfterFaultsTicks} ticks, slowest op ${summary.slowestOpAfterFaultsTicks} ticks`,
    `linearizability checks without verdict (timeout): ${summary.checkTimeouts}`,
    ...summary.kvLines,
    `violations: ${summary.violations}${properties ? ` (${properties})` : ''}${summary.firstFailingSeed === null ? '' : `, first failing seed ${summary.firstFailingSeed}`}`,
  ]
}
