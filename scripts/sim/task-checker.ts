/**
 * The task checker: what the task workload (`task-clients.ts`) saw, read against the simulator's real time.
 * Handlers run on the simulated agents and report when they start, when they look at their attempt's
 * `signal` and find it not aborted ("alive"), and when they return a result; the workload reports which
 * completions the cluster accepted and which cancels it acknowledged. At the end the leader's state says how
 * each task ended. The properties:
 *
 * - task-once: no task completes twice (two attempts' completions accepted), no fencing token starts twice,
 *   and a task's attempt numbers grow with its tokens (an occurrence of a repeat slot created again would
 *   start over at attempt 1).
 * - task-live: never two live attempts of one task at one real instant: when an attempt is seen alive at r
 *   (its handler started, or found its signal not aborted), no attempt with a larger token had started by r.
 * - task-signal: an attempt seen alive on an agent whose own replica shows it ended (its signal should have
 *   aborted in the same apply).
 * - task-dependency: a child never starts before every parent's handler returned a result, and the result a
 *   completed parent holds is one a handler returned before the child started.
 * - task-cancel: no attempt starts after a cancel of its task was acknowledged (by a later entry than the
 *   cancel's); a completion accepted is of a handler that returned before any acknowledged cancel; a task
 *   cancelled holds no accepted completion.
 * - task-repeat: every occurrence sits on its schedule's slots; in the liveness window (a stable leader), no
 *   slot due is missed (`checkRepeatWindow`).
 * - task-liveness: once the faults stopped, every task that exists ends: completed, or cancelled because we
 *   cancelled it or a parent did not complete, or dead after all its attempts (those a lapse of their agent's
 *   session lease ended do not count).
 *
 * A start counts from when the handler was called (after the claim applied on its agent), a return from when
 * the handler returned: the earliest and latest instants the cluster may rely on, so a violation reported is
 * a real one. Methods take the real time `at` explicitly, so tests can feed them bad observations.
 */

import type { TaskInfo } from '../../src/state/index.ts'
import { Violation } from './invariants.ts'

/** What the workload submitted under a task id. */
export interface SubmittedTask {
  parents: readonly string[]
  /** Retries after the first attempt. */
  maxRetries: number
}

interface AttemptSeen {
  agent: string
  attempt: number
  startedAt: number
  returnedAt?: number
}

/** What the checker reads from the final state: a task's record, and a repeat's slots. */
export interface FinalTasks {
  task(id: string): TaskInfo | undefined
  /** Every task id the state holds. */
  ids(): string[]
}

export class TaskChecker {
  /** Tasks submitted (answered or not), by id. */
  private readonly submitted = new Map<string, SubmittedTask>()
  /** Repeats: schedule id -> its `every` and anchor (state ms). */
  private readonly repeats = new Map<string, { every: number; anchor?: number }>()
  /** Every attempt a handler started, by task id then token. */
  private readonly attempts = new Map<string, Map<bigint, AttemptSeen>>()
  /** The accepted completion of each task: its token. */
  private readonly completions = new Map<string, bigint>()
  /** The earliest acknowledged cancel of each task (real ms). */
  private readonly cancelAcks = new Map<string, number>()
  /** The lowest log index at or below which an acknowledged cancel of each task sits. */
  private readonly cancelIndex = new Map<string, number>()
  /** Tasks a cancel was sent for (acknowledged or not). */
  private readonly cancelsSent = new Set<string>()
  readonly stats = {
    submitted: 0,
    diamonds: 0,
    repeats: 0,
    occurrences: 0,
    cancels: 0,
    cancelsOfRunning: 0,
    starts: 0,
    completed: 0,
    failed: 0,
    refused: 0,
    aliveChecks: 0,
    workerStarts: 0,
    /** Attempts ended by a lapse of their agent's session lease, not counted against `maxRetries`. */
    lapsedAttempts: 0,
  }

  // ---------- what the workload tells ----------

  submitting(id: string, task: SubmittedTask): void {
    if (!this.submitted.has(id)) this.submitted.set(id, task)
  }

  /** A repeat was submitted with `every`; `anchor` once its answer told `createdAt`. */
  repeat(id: string, every: number, anchor?: number): void {
    const known = this.repeats.get(id)
    this.repeats.set(id, { every, anchor: anchor ?? known?.anchor })
  }

  cancelSent(id: string, running: boolean): void {
    this.cancelsSent.add(id)
    this.stats.cancels++
    if (running) this.stats.cancelsOfRunning++
  }

  /**
   * A cancel of `id` was answered at `at`, its entry at or below `appliedIndex` (the highest commit index
   * known then): no attempt of `id` may start with a larger token (its index).
   */
  cancelAcknowledged(id: string, at: number, appliedIndex: number): void {
    if (!this.cancelAcks.has(id)) this.cancelAcks.set(id, at)
    const index = this.cancelIndex.get(id)
    if (index === undefined || appliedIndex < index) this.cancelIndex.set(id, appliedIndex)
  }

  /**
   * A handler was called for attempt `attempt` (token `token`) of `id` on `agent`, its signal not aborted;
   * `current` as for `alive`.
   */
  started(id: string, token: bigint, attempt: number, agent: string, at: number, current = true): void {
    this.stats.starts++
    let seen = this.attempts.get(id)
    if (seen === undefined) {
      seen = new Map()
      this.attempts.set(id, seen)
    }
    const same = seen.get(token)
    if (same !== undefined) {
      throw new Violation(
        'task-once',
        at,
        `task ${id}: token ${token} started twice (attempt ${same.attempt} on ${same.agent} at t=${same.startedAt}ms, attempt ${attempt} on ${agent})`,
      )
    }
    for (const [other, earlier] of seen) {
      if (other < token !== earlier.attempt < attempt) {
        throw new Violation(
          'task-once',
          at,
          `task ${id}: attempt ${attempt} has token ${token}, but attempt ${earlier.attempt} had token ${other} (created twice?)`,
        )
      }
    }
    // A start is an entry (its index the token): one after the cancel's entry is a start after the cancel.
    // (A worker whose replica lags may still be handed an attempt started before it, after the answer.)
    const cancelIndex = this.cancelIndex.get(id)
    if (cancelIndex !== undefined && BigInt(cancelIndex) < token) {
      throw new Violation(
        'task-cancel',
        at,
        `task ${id}: attempt ${attempt} started on ${agent} by entry ${token}, after its cancel was acknowledged (at or below entry ${cancelIndex}, answered at t=${this.cancelAcks.get(id)}ms)`,
      )
    }
    for (const parent of this.submitted.get(id)?.parents ?? []) {
      const returned = this.firstReturn(parent)
      if (returned === undefined || returned > at) {
        throw new Violation(
          'task-dependency',
          at,
          `task ${id} started on ${agent} at t=${at}ms before its parent ${parent} returned a result${returned === undefined ? '' : ` (t=${returned}ms)`}`,
        )
      }
    }
    seen.set(token, { agent, attempt, startedAt: at })
    this.alive(id, token, agent, at, current)
  }

  /**
   * The handler of (`id`, `token`) on `agent` found its signal not aborted at `at`; `current`: whether the
   * agent's own replica shows that attempt running.
   */
  alive(id: string, token: bigint, agent: string, at: number, current: boolean): void {
    this.stats.aliveChecks++
    for (const [other, attempt] of this.attempts.get(id) ?? []) {
      if (other > token && attempt.startedAt <= at) {
        throw new Violation(
          'task-live',
          at,
          `task ${id}: the attempt with token ${token} on ${agent} is live at t=${at}ms, but the attempt with token ${other} started on ${attempt.agent} at t=${attempt.startedAt}ms`,
        )
      }
    }
    if (!current) {
      throw new Violation(
        'task-signal',
        at,
        `task ${id}: the attempt with token ${token} on ${agent} has its signal not aborted, but ${agent}'s replica shows it ended`,
      )
    }
  }

  /** The handler of (`id`, `token`) returned a result at `at`. */
  returned(id: string, token: bigint, at: number): void {
    const attempt = this.attempts.get(id)?.get(token)
    if (attempt !== undefined) attempt.returnedAt = at
  }

  /** The cluster accepted the completion of (`id`, `token`). */
  completionAccepted(id: string, token: bigint, at: number): void {
    this.stats.completed++
    const before = this.completions.get(id)
    if (before !== undefined && before !== token) {
      throw new Violation(
        'task-once',
        at,
        `task ${id} completed twice: by the attempts with tokens ${before} and ${token}`,
      )
    }
    this.completions.set(id, token)
    const returned = this.attempts.get(id)?.get(token)?.returnedAt
    const cancelled = this.cancelAcks.get(id)
    if (returned !== undefined && cancelled !== undefined && cancelled < returned) {
      throw new Violation(
        'task-cancel',
        at,
        `task ${id}: the completion of the attempt with token ${token}, whose handler returned at t=${returned}ms, was accepted after a cancel acknowledged at t=${cancelled}ms`,
      )
    }
  }

  // ---------- at the end ----------

  /**
   * Reads the leader's final state. `liveness`: the faults stopped long enough ago that every task should
   * have ended, except those held by an agent shut down for good (`gone`: removed and decommissioned), and
   * those waiting for them. Such an agent's session lives on until the leader's lessor expires it (half a
   * ttl after the membership view holds it dead, longer than the run), as a KV client's call left at a removed
   * server waits out its time-out (see the runner).
   */
  finish(final: FinalTasks, at: number, liveness: boolean, gone: ReadonlySet<string> = new Set()): void {
    const ids = final.ids()
    for (const id of ids) {
      const task = final.task(id)
      if (task === undefined) continue
      this.stats.lapsedAttempts += task.lapsedAttempts ?? 0
      const scheduleId = this.scheduleOf(id)
      if (scheduleId !== undefined) this.checkSlot(id, scheduleId, at)
      this.checkEnd(id, task, at)
      if (liveness && !this.heldByGone(id, final, gone)) this.checkLive(id, task, at, final)
    }
  }

  /** Every slot in (`from`, `to`] (state ms) of repeat `id` has its occurrence among `ids`. */
  checkRepeatWindow(id: string, from: number, to: number, ids: ReadonlySet<string>, at: number): void {
    const repeat = this.repeats.get(id)
    if (repeat?.anchor === undefined) return
    const { every, anchor } = repeat
    const first = anchor + Math.max(0, Math.floor((from - anchor) / every) + 1) * every
    for (let slot = first; slot <= to; slot += every) {
      if (!ids.has(`${id}:${slot}`)) {
        throw new Violation(
          'task-repeat',
          at,
          `repeat ${id} (every ${every} ms) has no occurrence for slot ${slot}, due in the window (${from}, ${to}] of a stable leader`,
        )
      }
    }
  }

  private scheduleOf(id: string): string | undefined {
    const colon = id.lastIndexOf(':')
    if (colon < 0) return undefined
    const scheduleId = id.slice(0, colon)
    return this.repeats.has(scheduleId) ? scheduleId : undefined
  }

  private checkSlot(id: string, scheduleId: string, at: number): void {
    const repeat = this.repeats.get(scheduleId)!
    const slot = Number(id.slice(scheduleId.length + 1))
    if (repeat.anchor === undefined) return
    if (!Number.isSafeInteger(slot) || slot < repeat.anchor || (slot - repeat.anchor) % repeat.every !== 0) {
      throw new Violation(
        'task-repeat',
        at,
        `occurrence ${id} is not on the slots of ${scheduleId} (anchor ${repeat.anchor}, every ${repeat.every} ms)`,
      )
    }
  }

  /** How the task ended agrees with what its handlers and cancels did. */
  private checkEnd(id: string, task: TaskInfo, at: number): void {
    const cancelled = this.cancelAcks.get(id)
    const accepted = this.completions.get(id)
    if (task.state === 'cancelled' && accepted !== undefined) {
      throw new Violation(
        'task-cancel',
        at,
        `task ${id} ended cancelled, but the completion of the attempt with token ${accepted} was accepted`,
      )
    }
    if (task.state !== 'completed') return
    const token = resultToken(task)
    const attempt = token === undefined ? undefined : this.attempts.get(id)?.get(token)
    if (token === undefined || attempt?.returnedAt === undefined) {
      throw new Violation(
        'task-once',
        at,
        `task ${id} completed with ${JSON.stringify(task.result)}, a result no handler returned`,
      )
    }
    if (accepted !== undefined && accepted !== token) {
      throw new Violation(
        'task-once',
        at,
        `task ${id} holds the result of token ${token}, but the completion of token ${accepted} was accepted`,
      )
    }
    if (cancelled !== undefined && cancelled < attempt.returnedAt) {
      throw new Violation(
        'task-cancel',
        at,
        `task ${id} completed by a handler that returned at t=${attempt.returnedAt}ms, after its cancel was acknowledged at t=${cancelled}ms`,
      )
    }
    // Its children started after the result the parent holds was returned.
    for (const [child, spec] of this.submitted) {
      if (!spec.parents.includes(id)) continue
      for (const started of this.attempts.get(child)?.values() ?? []) {
        if (started.startedAt < attempt.returnedAt) {
          throw new Violation(
            'task-dependency',
            at,
            `task ${child} started at t=${started.startedAt}ms, before the result its parent ${id} holds was returned (t=${attempt.returnedAt}ms)`,
          )
        }
      }
    }
  }

  /** After the faults: the task ended, as it should have. */
  private checkLive(id: string, task: TaskInfo, at: number, final: FinalTasks): void {
    const parents = this.submitted.get(id)?.parents ?? []
    switch (task.state) {
      case 'completed':
        return
      case 'dead': {
        // Dead only once its retries are spent: attempts a lease lapse ended do not count.
        const maxRetries = task.constraints.maxRetries
        if (task.attempt - (task.lapsedAttempts ?? 0) > maxRetries) return
        break
      }
      case 'cancelled': {
        if (this.cancelsSent.has(id)) return
        // A parent that did not complete cancels its children.
        if (parents.some(parent => final.task(parent)?.state !== 'completed')) return
        break
      }
      default:
        break
    }
    throw new Violation(
      'task-liveness',
      at,
      `task ${id} is ${task.state} (attempt ${task.attempt}${task.assignee ? `, assignee ${task.assignee}` : ''}${task.error ? `, ${task.error}` : ''}) after the faults stopped${parents.length ? `; parents ${parents.map(parent => `${parent} ${final.task(parent)?.state}`).join(', ')}` : ''}`,
    )
  }

  private heldByGone(id: string, final: FinalTasks, gone: ReadonlySet<string>, depth = 0): boolean {
    const task = final.task(id)
    if (task === undefined || depth > 10) return false
    if ((task.state === 'assigned' || task.state === 'running') && gone.has(task.assignee ?? '')) return true
    // Its last attempt there timed out, and its retry may not be due yet.
    if (task.state === 'failed' && gone.has(task.lastAgentId ?? '')) return true
    return (
      task.state === 'waiting' &&
      (this.submitted.get(id)?.parents ?? []).some(parent => this.heldByGone(parent, final, gone, depth + 1))
    )
  }

  private firstReturn(id: string): number | undefined {
    let first: number | undefined
    for (const attempt of this.attempts.get(id)?.values() ?? []) {
      if (attempt.returnedAt !== undefined && (first === undefined || attempt.returnedAt < first))
        first = attempt.returnedAt
    }
    return first
  }
}

/** The token a handler put in its result (`{ token }`, as the workload's handlers return it). */
export function resultToken(task: Pick<TaskInfo, 'result'>): bigint | undefined {
  const result = task.result
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return undefined
  const token = (result as Record<string, unknown>).token
  return typeof token === 'string' && /^\d+$/.test(token) ? BigInt(token) : undefined
}
