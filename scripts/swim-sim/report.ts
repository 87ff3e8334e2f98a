/** The result of one SWIM simulation run, and the statistics helpers that build it. */

import { DETECTION_PROBE_PERIODS, probePeriod, suspicionTimeout } from '../../src/swim/config.ts'
import type { SwimConfig } from '../../src/swim/types.ts'
import type { SwimSimOptions } from './options.ts'

export interface CrashReport {
  member: string
  crashAt: number
  /** ms from the crash to the first live member marking it dead; null if nobody did. */
  firstDetectionMs: number | null
  /** ms from the crash to the last live member marking it dead; null while some never did. */
  lastDetectionMs: number | null
  /** Live members that never marked it dead by the end. */
  undetectedBy: number
}

export interface FalsePositive {
  observer: string
  subject: string
  at: number
}

export interface LeaveReport {
  member: string
  leftAt: number
  /** Live members that saw it as left by the end. */
  markedLeftBy: number
  /** Members that marked it dead instead (a leave should never look like a crash). */
  markedDeadBy: number
}

export interface SwimSimReport {
  options: SwimSimOptions
  config: SwimConfig
  /** Simulated time, ms (joins, settling and the measured window). */
  simulatedMs: number
  measuredFromMs: number
  measuredMs: number
  /** A live member (not crashed, not departed) marked dead by anyone. */
  falsePositives: number
  falsePositiveSamples: FalsePositive[]
  /** Distinct suspicions (member, incarnation) of live members, refuted unless they became false positives. */
  falseSuspicions: number
  crashes: CrashReport[]
  detection: {
    firstMedianMs: number | null
    lastMedianMs: number | null
    lastMaxMs: number | null
    /** memberlist's LAN bound for this size, as the issue states it: 1 s + 4 × log10(n) s. */
    memberlistBoundMs: number
  }
  leaves: LeaveReport[]
  messages: {
    /** Direct stream messages sent, per member per second of the measured window. */
    directPerMemberPerSecond: number
    /** Gossip batches published, per member per second. */
    gossipPublishesPerMemberPerSecond: number
    /** Gossip batches delivered (before loss), per member per second. */
    gossipDeliveriesPerMemberPerSecond: number
  }
  /** At the end, over every live observer and live subject: entries not alive. */
  finalView: { suspect: number; deadOrMissing: number }
  /** Highest local health score any member reached. */
  maxLocalHealth: number
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

export function maximum(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.max(...values)
}

/** memberlist's LAN defaults for `members`: probe 1 s, then suspicion 4 × log10(n) s. */
export function memberlistBound(members: number): number {
  return Math.round(1000 + 4000 * Math.log10(members))
}

/**
 * The detection bound this implementation documents for `n` members: every live member marks a crashed one
 * dead within suspicionTimeout(n) + 6 probe periods (`probePeriod` for n). Of those periods, up to ~4 are the
 * wait until some member's round-robin reaches the crashed one (for n ≥ 10 the chance it takes longer is
 * below 2%), one is the failed probe itself, and one covers the confirmations and the dead broadcast.
 */
export function documentedDetectionBound(config: SwimConfig, members: number): number {
  return suspicionTimeout(config, members) + DETECTION_PROBE_PERIODS * probePeriod(config, members)
}
