/**
 * Protocol timing: defaults modelled on memberlist's DefaultLANConfig, a tighter preset, validation, and
 * the formulas that scale timeouts and retransmissions with the cluster size.
 */

import type { SwimConfig } from './types.ts'

/**
 * memberlist's LAN defaults (probe 1 s, probe timeout 500 ms, k = 3, suspicion ×4, max ×6, awareness 8,
 * retransmit ×4, push-pull 30 s) with gossip every 200 ms.
 */
export const SWIM_LAN_CONFIG: Readonly<SwimConfig> = Object.freeze({
  probeInterval: 1000,
  maxProbeInterval: 1000,
  probeTimeout: 500,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  suspicionMinTimeout: 1000,
  awarenessMaxMultiplier: 8,
  retransmitMult: 4,
  retransmitScale: 'log10',
  gossipInterval: 200,
  maxUpdatesPerBroadcast: 64,
  pushPullInterval: 30_000,
  joinRetryInterval: 1000,
  // Long enough for any delayed message or lagging push-pull to have passed; a tombstone is a few bytes.
  tombstoneTimeout: 3_600_000,
  stallThreshold: 500,
  maxMembers: 10_000,
  maxPendingMembers: 256,
})

/**
 * Twice as fast: probe 500 ms, probe timeout 250 ms, gossip every 100 ms. Suspicion timeouts halve with
 * the probe interval. The simulator shows no false positives with it at 10% loss (see the README). Above 10
 * members the probe period grows towards 1 s while the detection bound stays within memberlist's LAN bound
 * (`probePeriod`): 600 ms at 20 members, 733 ms at 50, 833 ms at 100.
 */
export const SWIM_FAST_CONFIG: Readonly<SwimConfig> = Object.freeze({
  ...SWIM_LAN_CONFIG,
  probeInterval: 500,
  probeTimeout: 250,
  gossipInterval: 100,
  stallThreshold: 250,
})

const POSITIVE_DURATIONS = [
  'probeInterval',
  'maxProbeInterval',
  'probeTimeout',
  'gossipInterval',
  'pushPullInterval',
  'joinRetryInterval',
  'tombstoneTimeout',
  'stallThreshold',
] as const

const POSITIVE_COUNTS = [
  'suspicionMult',
  'suspicionMaxTimeoutMult',
  'awarenessMaxMultiplier',
  'retransmitMult',
  'maxUpdatesPerBroadcast',
  'maxMembers',
  'maxPendingMembers',
] as const

/** Fills `overrides` with the LAN defaults and checks the result; throws RangeError on a bad value. */
export function resolveConfig(overrides: Partial<SwimConfig> = {}): SwimConfig {
  const config: SwimConfig = { ...SWIM_LAN_CONFIG }
  for (const key of Object.keys(overrides) as (keyof SwimConfig)[]) {
    if (!(key in SWIM_LAN_CONFIG)) throw new RangeError(`unknown SWIM option ${String(key)}`)
    const value = overrides[key]
    if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value
  }
  for (const key of POSITIVE_DURATIONS) {
    if (!Number.isSafeInteger(config[key]) || config[key] <= 0) {
      throw new RangeError(`${key} must be a positive integer number of ms, got ${config[key]}`)
    }
  }
  for (const key of POSITIVE_COUNTS) {
    if (!Number.isSafeInteger(config[key]) || config[key] < 1) {
      throw new RangeError(`${key} must be a positive integer, got ${config[key]}`)
    }
  }
  if (!Number.isSafeInteger(config.indirectChecks) || config.indirectChecks < 0) {
    throw new RangeError(`indirectChecks must be a non-negative integer, got ${config.indirectChecks}`)
  }
  if (!Number.isSafeInteger(config.suspicionMinTimeout) || config.suspicionMinTimeout < 0) {
    throw new RangeError(
      `suspicionMinTimeout must be a non-negative integer, got ${config.suspicionMinTimeout}`,
    )
  }
  if (config.retransmitScale !== 'log10' && config.retransmitScale !== 'none') {
    throw new RangeError(`retransmitScale must be 'log10' or 'none', got ${String(config.retransmitScale)}`)
  }
  if (config.probeTimeout >= config.probeInterval) {
    throw new RangeError('probeTimeout must be shorter than probeInterval')
  }
  return config
}

/**
 * The confirmed (minimum) suspicion timeout for a cluster of `memberCount`: mult × max(1, log10(n)) ×
 * probeInterval, as memberlist computes it, and never below `suspicionMinTimeout`. The log10 floor of 1
 * keeps small clusters (3 to 9 members) at mult probe periods rather than one or two.
 */
export function suspicionTimeout(config: SwimConfig, memberCount: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, memberCount)))
  return Math.max(
    config.suspicionMinTimeout,
    Math.floor(config.suspicionMult * nodeScale * config.probeInterval),
  )
}

/**
 * Probe periods in the detection bound beyond the suspicion timeout: reaching the dead member in some probe
 * order, the failed probe with its indirect probes, the confirmations that bring Lifeguard's suspicion timeout
 * to its minimum, the gossip of the verdict (`detectionBound` of `src/agent/cluster/swim-wire.ts`).
 */
export const DETECTION_PROBE_PERIODS = 6

/** memberlist's LAN detection bound for `memberCount` members: probe 1 s + 4 × log10(n) × 1 s. */
export function memberlistLanBound(memberCount: number): number {
  const { probeInterval, suspicionMult } = SWIM_LAN_CONFIG
  return probeInterval + suspicionMult * Math.log10(Math.max(1, memberCount)) * probeInterval
}

/**
 * The protocol period for a cluster of `memberCount` (this member included): the longest, up to
 * `maxProbeInterval`, whose detection bound (suspicion timeout + `DETECTION_PROBE_PERIODS` periods) stays
 * within memberlist's LAN bound for that size, and never below `probeInterval`. Each member probes one other a
 * period and is probed about as often, so a longer period cuts an idle member's messages in proportion.
 */
export function probePeriod(config: SwimConfig, memberCount: number): number {
  const withinBound = Math.floor(
    (memberlistLanBound(memberCount) - suspicionTimeout(config, memberCount)) / DETECTION_PROBE_PERIODS,
  )
  return Math.max(config.probeInterval, Math.min(config.maxProbeInterval, withinBound))
}

/** How many times an update is published: retransmitMult × ceil(log10(n + 1)), or retransmitMult unscaled. */
export function retransmitLimit(config: SwimConfig, memberCount: number): number {
  if (config.retransmitScale === 'none') return config.retransmitMult
  return config.retransmitMult * Math.ceil(Math.log10(memberCount + 1))
}

/** Members beyond which memberlist stretches the push-pull interval, so full syncs stay cheap in total. */
const PUSH_PULL_SCALE_THRESHOLD = 32

/** The push-pull interval for `memberCount`: ×(ceil(log2(n) − log2(32)) + 1) above 32 members. */
export function pushPullInterval(config: SwimConfig, memberCount: number): number {
  if (memberCount <= PUSH_PULL_SCALE_THRESHOLD) return config.pushPullInterval
  const multiplier = Math.ceil(Math.log2(memberCount) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
  return multiplier * config.pushPullInterval
}

/**
 * How long an intermediary waits for the target's ack before it sends a nack: 80% of the probe timeout,
 * as the Lifeguard paper sets it, so the nack reaches the requester before its own deadline.
 */
export function indirectNackTimeout(config: SwimConfig): number {
  return Math.floor(config.probeTimeout * 0.8)
}
