/**
 * The checks run on a recorded history once the run is over. Each says what it checked, over how many
 * operations, and on failure the first violation it found, precisely enough to start debugging from.
 */
import { checkOperations, type KvOperation, kvModel } from '../../src/check/index.ts'
import type { LockGrant, TaskSubmission } from './history.ts'
import type { TaskRecord } from './host-ops.ts'
import { parseRegister, REGISTER_KEY } from './workload.ts'

export interface CheckReport {
  name: string
  ok: boolean
  /** What was checked, with counts. */
  summary: string
  /** The violations found (the first few), empty when ok. */
  violations: string[]
}

const MAX_VIOLATIONS = 5

function report(name: string, summary: string, violations: string[]): CheckReport {
  return { name, ok: violations.length === 0, summary, violations: violations.slice(0, MAX_VIOLATIONS) }
}

/** Linearizability of the KV history (the register included), per key, against the KV model. */
export function checkKvLinearizable(history: KvOperation[], timeoutMs = 60_000): CheckReport {
  const keys = new Set(history.map(op => op.input.key))
  const unknown = history.filter(op => op.output === undefined).length
  const started = performance.now()
  const outcome = checkOperations(kvModel, history, { timeoutMs })
  const elapsed = Math.round(performance.now() - started)
  const summary = `${history.length} operations on ${keys.size} keys (${unknown} of unknown outcome), checked in ${elapsed} ms`
  if (outcome.result === 'ok') return report('kv linearizable', summary, [])
  if (outcome.result === 'unknown') {
    return report('kv linearizable', summary, [`the checker did not decide within ${timeoutMs} ms`])
  }
  const key = outcome.failingPartition?.[0]?.input.key ?? '?'
  return report('kv linearizable', summary, [
    `key ${key} has no linearization:\n${outcome.explanation ?? ''}`,
  ])
}

/**
 * Lock safety through fencing tokens:
 * - every grant has its own token;
 * - tokens increase in real-time grant order: a grant that completed before another was asked for has the
 *   smaller token;
 * - never two holders: once a grant with a larger token has completed, no earlier holder's `isHeld()` that
 *   starts afterwards may answer true (`isHeld()` is never a false true).
 */
export function checkLockSafety(grants: LockGrant[]): CheckReport {
  const violations: string[] = []
  const keys = new Set(grants.map(grant => grant.key))
  let granted = 0
  let checks = 0
  for (const key of keys) {
    const result = checkLockKey(grants.filter(grant => grant.key === key))
    granted += result.granted
    checks += result.checks
    violations.push(...result.violations)
  }
  return report(
    'lock safety',
    `${granted} grants of ${grants.length} acquires on ${keys.size} locks, ${checks} isHeld() answers`,
    violations,
  )
}

function checkLockKey(grants: LockGrant[]): { granted: number; checks: number; violations: string[] } {
  const violations: string[] = []
  const granted = grants.filter(grant => grant.token !== undefined && grant.granted !== undefined)
  const byToken = new Map<bigint, LockGrant>()
  for (const grant of granted) {
    const other = byToken.get(grant.token as bigint)
    if (other !== undefined)
      violations.push(`token ${grant.token} granted twice: ${describe(other)} and ${describe(grant)}`)
    byToken.set(grant.token as bigint, grant)
  }
  const inOrder = [...granted].sort((a, b) => (a.granted as number) - (b.granted as number))
  for (let i = 0; i < inOrder.length; i++) {
    const earlier = inOrder[i]
    for (let j = i + 1; j < inOrder.length; j++) {
      const later = inOrder[j]
      if ((earlier.granted as number) < later.call && (earlier.token as bigint) >= (later.token as bigint)) {
        violations.push(`token order: ${describe(earlier)} completed before ${describe(later)} was asked for`)
      }
    }
  }
  let checks = 0
  for (const holder of granted) {
    for (const [call, , held] of holder.heldChecks) {
      checks++
      if (!held) continue
      for (const other of granted) {
        if ((other.token as bigint) > (holder.token as bigint) && (other.granted as number) < call) {
          violations.push(
            `two holders: ${describe(holder)} said isHeld() = true at ${ms(call)}, after ${describe(other)} was granted`,
          )
        }
      }
    }
  }
  return { granted: granted.length, checks, violations }
}

/**
 * The counter the lock protects: its writes carry the writer's token and must never go back to a smaller
 * one (the fence), counts go up by one per write, and the final count is the number of acknowledged
 * increments plus some of those of unknown outcome.
 */
export function checkRegister(history: KvOperation[], finalValue: string | undefined): CheckReport {
  const violations: string[] = []
  const writes = history.filter(op => op.input.key === REGISTER_KEY && op.input.op === 'cas')
  const acked = writes.filter(op => op.output?.ok === true).length
  const unknown = writes.filter(op => op.output === undefined).length
  const final = parseRegister(finalValue)
  if (final.count < acked || final.count > acked + unknown) {
    violations.push(
      `final count ${final.count}, but ${acked} increments were acknowledged and ${unknown} are of unknown outcome`,
    )
  }
  // Every value the register held, as seen by reads and successful writes: count -> token.
  const tokens = new Map<number, bigint>()
  for (const op of history) {
    if (op.input.key !== REGISTER_KEY) continue
    const seen =
      op.input.op === 'get'
        ? op.output?.value
        : op.input.op === 'cas' && op.output?.ok
          ? op.input.value
          : undefined
    if (seen === undefined) continue
    const { count, token } = parseRegister(seen)
    const known = tokens.get(count)
    if (known !== undefined && known !== token) {
      violations.push(`count ${count} was written twice, by tokens ${known} and ${token}`)
    }
    tokens.set(count, token)
  }
  const counts = [...tokens.keys()].sort((a, b) => a - b)
  for (let i = 1; i < counts.length; i++) {
    const before = tokens.get(counts[i - 1]) as bigint
    const after = tokens.get(counts[i]) as bigint
    if (after < before) {
      violations.push(
        `fence: count ${counts[i]} written by token ${after} after token ${before} wrote ${counts[i - 1]}`,
      )
    }
  }
  return report(
    'lock-protected counter',
    `final count ${final.count}: ${acked} acknowledged increments, ${unknown} of unknown outcome`,
    violations,
  )
}

/**
 * Tasks: every task whose submission was acknowledged is completed; one of unknown outcome is completed or
 * absent; no task completes twice (at most one accepted completion reported by the workers), and the
 * result stored is the one of the attempt that completed.
 */
export function checkTasks(
  submissions: TaskSubmission[],
  records: Map<string, TaskRecord | undefined>,
  completions: Map<string, number[]>,
): CheckReport {
  const violations: string[] = []
  let completed = 0
  let maybe = 0
  let refused = 0
  for (const submission of submissions) {
    const record = records.get(submission.id)
    if (submission.outcome === 'fail') {
      // A rejected call has no partial effect (API.md): a refused submission must not have created the task.
      refused++
      if (record !== undefined) {
        violations.push(
          `task ${submission.id}: its submission was refused, yet the task exists (${record.state})`,
        )
      }
      continue
    }
    if (record === undefined) {
      if (submission.outcome === 'ok')
        violations.push(`task ${submission.id}: acknowledged but unknown to the cluster`)
      else maybe++
      continue
    }
    if (record.state !== 'completed') {
      violations.push(
        `task ${submission.id}: ${record.state} after attempt ${record.attempt}${record.error ? ` (${record.error})` : ''}`,
      )
      continue
    }
    completed++
    const result = record.result as { attempt?: number } | undefined
    if (result?.attempt !== record.attempt) {
      violations.push(
        `task ${submission.id}: result of attempt ${result?.attempt}, but attempt ${record.attempt} completed it`,
      )
    }
  }
  let reported = 0
  for (const [id, attempts] of completions) {
    reported += attempts.length
    if (attempts.length > 1)
      violations.push(
        `task ${id}: completion accepted ${attempts.length} times (attempts ${attempts.join(', ')})`,
      )
  }
  const submitted = submissions.filter(submission => submission.outcome !== 'fail').length
  return report(
    'tasks exactly once',
    `${submitted} tasks submitted, ${completed} completed (${maybe} of unknown submission never created, ${refused} refused), ${reported} accepted completions seen by workers`,
    violations,
  )
}

function describe(grant: LockGrant): string {
  return `${grant.key} grant ${grant.token} (client ${grant.client} on ${grant.agent}, asked ${ms(grant.call)}, granted ${ms(grant.granted ?? Number.NaN)})`
}

function ms(time: number): string {
  return `${(time / 1000).toFixed(3)} s`
}
