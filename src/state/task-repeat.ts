import { Cron } from 'croner'
import { MIN_REPEAT_EVERY_MS, type RepeatSpec } from './task-spec.ts'

/**
 * Slots of repeating tasks: the times (state ms) at which occurrences are due. Pure functions of the
 * schedule and an explicit time: `croner` is always given the date to count from, so it never reads the
 * clock. Only the leader's planner and input validation use these; `apply` never computes a cron slot
 * (a replica's time-zone data must not decide what the state becomes).
 */

/** Most slots walked to catch up on missed ones in one call; beyond that the walk resumes next time. */
const MAX_SLOT_WALK = 10_000

/** Why `repeat` cannot be used (a message quoting the cron expression), or undefined if it can. */
export function repeatError(repeat: RepeatSpec): string | undefined {
  if (repeat.cron === undefined) return undefined
  try {
    const cron = parseCron(repeat.cron, repeat.timezone)
    // A bad time zone shows only when a date is converted.
    cron.nextRun(new Date(0))
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    const zone = repeat.timezone === undefined ? '' : ` in time zone ${JSON.stringify(repeat.timezone)}`
    return `cron expression ${JSON.stringify(repeat.cron)}${zone} does not parse: ${why}`
  }
  return undefined
}

/**
 * The first slot strictly after `after` (state ms), or undefined if the schedule has no more (a cron
 * expression naming no future time, or one that does not parse).
 */
export function nextSlot(repeat: RepeatSpec, anchor: number, after: number): number | undefined {
  if (repeat.every !== undefined) {
    if (after < anchor) return anchor
    return anchor + (Math.floor((after - anchor) / repeat.every) + 1) * repeat.every
  }
  if (repeat.cron === undefined) return undefined
  let cron: Cron
  try {
    cron = parseCron(repeat.cron, repeat.timezone)
  } catch {
    return undefined
  }
  const from = Math.max(after, anchor - 1)
  try {
    return cron.nextRun(new Date(from))?.getTime()
  } catch {
    return undefined
  }
}

/**
 * The latest slot in (`after`, `now`], skipping older missed ones (as BullMQ's job schedulers do: a
 * schedule that was not served for a while runs once, not once per missed slot), or undefined if none is due.
 */
export function latestDueSlot(
  repeat: RepeatSpec,
  anchor: number,
  after: number,
  now: number,
): number | undefined {
  if (repeat.every !== undefined) {
    if (now < anchor) return undefined
    const slot = anchor + Math.floor((now - anchor) / repeat.every) * repeat.every
    return slot > after ? slot : undefined
  }
  let due: number | undefined
  let from = after
  for (let i = 0; i < MAX_SLOT_WALK; i++) {
    const slot = nextSlot(repeat, anchor, from)
    if (slot === undefined || slot > now) break
    due = slot
    from = slot
  }
  return due
}

/**
 * Most slots one planning round catches up on of a repeat. A round that comes late (the housekeeping timer,
 * a state time that stepped ahead) or follows a proposal the leader's flow control dropped finds a few slots
 * due and creates them all, in order: each slot's occurrence is created once. A schedule not served for
 * longer (no leader for a while) runs once, its latest slot, as BullMQ's do. (Found by the simulator, seeds
 * 4, 37, 103, 107, 124: repeats every 50 or 100 ms lost slots under a stable leader, while only the latest
 * due slot was ever created.)
 */
export const MAX_CATCH_UP_SLOTS = 10

/**
 * The slots in (`after`, `now`] to create now, in order: all of them when there are at most
 * `MAX_CATCH_UP_SLOTS`, else only the latest (the missed ones skipped).
 */
export function dueSlots(repeat: RepeatSpec, anchor: number, after: number, now: number): number[] {
  const latest = latestDueSlot(repeat, anchor, after, now)
  if (latest === undefined) return []
  const slots: number[] = []
  let from = after
  while (slots.length <= MAX_CATCH_UP_SLOTS) {
    const slot = nextSlot(repeat, anchor, from)
    if (slot === undefined || slot > latest) break
    slots.push(slot)
    from = slot
  }
  return slots.length <= MAX_CATCH_UP_SLOTS && slots[slots.length - 1] === latest ? slots : [latest]
}

function parseCron(expression: string, timezone: string | undefined): Cron {
  // paused and no callback: croner schedules nothing and starts no timer.
  return new Cron(expression, { paused: true, timezone })
}

/**
 * Why the options of a task to submit are refused, in words for an `InvalidArgumentError`, or undefined:
 * what the API promises to refuse before anything is written (`runAt` not a valid time, `repeat` with
 * neither or both of `every` and `cron`, `every` below `MIN_REPEAT_EVERY_MS`, a cron expression that does not
 * parse, a negative back-off or retention). Dependencies are checked by the state when the entry applies.
 */
export function taskOptionsError(options: {
  runAt?: number
  dependsOn?: string[]
  repeat?: RepeatSpec
  backoff?: { type?: unknown; delay?: unknown; maxDelay?: unknown }
  retention?: { completed?: unknown; failed?: unknown }
}): string | undefined {
  const { runAt, repeat, backoff, retention } = options
  if (runAt !== undefined && !(Number.isSafeInteger(runAt) && runAt >= 0)) {
    return 'runAt must be a valid Date'
  }
  if (repeat !== undefined) {
    if ((repeat.every === undefined) === (repeat.cron === undefined)) {
      return 'repeat needs exactly one of every and cron'
    }
    if (repeat.every !== undefined) {
      if (!Number.isSafeInteger(repeat.every) || repeat.every < MIN_REPEAT_EVERY_MS) {
        return `repeat.every must be an integer of at least ${MIN_REPEAT_EVERY_MS} ms (got ${repeat.every})`
      }
    }
    if (repeat.timezone !== undefined && repeat.cron === undefined) return 'repeat.timezone needs repeat.cron'
    if (repeat.limit !== undefined && !(Number.isSafeInteger(repeat.limit) && repeat.limit >= 1)) {
      return `repeat.limit must be an integer of at least 1 (got ${repeat.limit})`
    }
    if (options.dependsOn !== undefined) return 'a repeating task cannot have dependsOn'
    const cronError = repeatError(repeat)
    if (cronError !== undefined) return cronError
  }
  if (backoff !== undefined) {
    if (backoff.type !== 'fixed' && backoff.type !== 'exponential') {
      return `backoff.type must be 'fixed' or 'exponential' (got ${JSON.stringify(backoff.type)})`
    }
    if (!isMs(backoff.delay))
      return `backoff.delay must be an integer number of ms >= 0 (got ${backoff.delay})`
    if (backoff.maxDelay !== undefined && !isMs(backoff.maxDelay)) {
      return `backoff.maxDelay must be an integer number of ms >= 0 (got ${backoff.maxDelay})`
    }
  }
  if (retention !== undefined) {
    for (const key of ['completed', 'failed'] as const) {
      const value = retention[key]
      if (value !== undefined && !isMs(value)) {
        return `retention.${key} must be an integer number of ms >= 0 (got ${value})`
      }
    }
  }
  return undefined
}

function isMs(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 2 ** 50
}
