import { Cron } from 'croner'
import type { RepeatSpec } from './task-spec.ts'

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

function parseCron(expression: string, timezone: string | undefined): Cron {
  // paused and no callback: croner schedules nothing and starts no timer.
  return new Cron(expression, { paused: true, timezone })
}
