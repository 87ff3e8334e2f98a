/** The chaos run's report as text: what was checked, over how many operations, and the verdict. */
import type { ChaosResult } from './run.ts'

export function formatReport(result: ChaosResult): string {
  const lines: string[] = []
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`
  lines.push('')
  lines.push(
    `chaos: ${result.agents} agents, seed ${result.seed}, ${seconds(result.durationMs)} of faults, ${seconds(result.elapsedMs)} in all`,
  )
  const faults = Object.entries(result.faults)
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ')
  lines.push(`faults: ${faults || 'none'}`)
  lines.push(
    `cluster: ${result.leaderChanges} leader changes, ${result.suspicions} suspicions, ${result.deaths} deaths declared, ${result.steals} steals`,
  )
  lines.push(`operations: ${result.operations}`)
  const writes = result.writeLatency
  lines.push(
    `writes: ${writes.count} completed, p50 ${writes.p50.toFixed(1)} ms, p99 ${writes.p99.toFixed(1)} ms`,
  )
  if (result.hostile !== undefined) {
    const h = result.hostile
    lines.push(
      `hostile member (rights: join, runTask, lock): ${h.rounds} rounds, ${h.raftForged} forged Raft responses, ${h.swimClaims} forged SWIM claims, ${h.ghostMembers} ghost members, ${h.foreignCompletions} foreign task completions, ${h.lockAcquires} lock acquisitions, ${h.forwardedWrites} forwarded writes`,
    )
    const answers = Object.entries(h.answers)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, count]) => `${count} ${name}`)
      .join(', ')
    lines.push(`  answers: ${answers}`)
  }
  for (const [kind, counts] of Object.entries(result.counts)) {
    lines.push(
      `  ${kind.padEnd(8)} ${counts.ok} ok, ${counts.fail} refused/failed, ${counts.unknown} unknown`,
    )
  }
  const errors = Object.entries(result.errors).map(
    ([kind, names]) =>
      `${kind}: ${Object.entries(names)
        .map(([name, count]) => `${count} ${name}`)
        .join(', ')}`,
  )
  if (errors.length > 0) lines.push(`errors seen: ${errors.join('; ')}`)
  for (const [name, message] of Object.entries(result.errorExamples)) lines.push(`  e.g. ${name}: ${message}`)
  lines.push('checks:')
  for (const check of result.checks) {
    lines.push(`  ${check.ok ? 'PASS' : 'FAIL'} ${check.name}: ${check.summary}`)
    for (const violation of check.violations) lines.push(`       ${violation.replaceAll('\n', '\n       ')}`)
  }
  for (const note of result.notes) lines.push(`note: ${note}`)
  lines.push(result.ok ? 'verdict: PASS' : 'verdict: FAIL')
  return lines.join('\n')
}
