import type { ConnectionGater } from '@libp2p/interface'
import type { Libp2pOptions } from 'libp2p'
import { InvalidArgumentError } from '../errors.ts'
import { DEFAULT_MESSAGE_RATE } from '../net/raft-transport.ts'
import { checkRateLimit, type RateLimit } from '../net/rate-limit.ts'
import { DEFAULT_REQUEST_RATE } from '../net/rpc.ts'
import { DEFAULT_RAFT_OPTIONS, validateOptions as validateRaftOptions } from '../raft/raft.ts'
import type { RaftOptions } from '../raft/types.ts'
import type { SecurityOptions } from '../security/options.ts'
import { ACTIONS, type Action } from '../security/policy.ts'
import { resolveConfig, SWIM_FAST_CONFIG, SWIM_LAN_CONFIG } from '../swim/config.ts'
import type { SwimConfig } from '../swim/types.ts'

/**
 * Timing of an agent. The defaults suit a LAN or one machine: a leader failure is noticed within
 * 360-720 ms and a new leader elected shortly after; a session (and the locks and tasks bound to it)
 * outlives its agent by `sessionTtlMs` at most plus the leader's grace after a failover.
 */
export interface TimingOptions {
  /** Length of one Raft tick in ms. Default 30. */
  tickMs?: number
  /** Election timeout in ticks; randomized in [n, 2n). Default 12. */
  electionTicks?: number
  /** Heartbeat interval in ticks. Default 3. */
  heartbeatTicks?: number
  /** How long an agent's session lives without a keep-alive. Default 5000 ms. */
  sessionTtlMs?: number
  /** Deadline of one API operation when the caller's signal gives none (then `NoLeaderError`). Default 10 s. */
  operationTimeoutMs?: number
  /**
   * What `Lock.isHeld()` and session bookkeeping subtract from every lease, to absorb clock-rate drift
   * and scheduling delay on the holder. Default: the larger of 50 ms and 10 % of the lease.
   */
  leaseSafetyMarginMs?: number
  /** Entries applied between two snapshots of the state (log compaction). Default 10,000. */
  snapshotEntries?: number
  /**
   * SWIM membership timing: the preset `'fast'` (default: probe every 500 ms, probe timeout 250 ms, suitable
   * for loopback and LANs) or `'lan'` (memberlist's LAN defaults: probe every 1 s, timeout 500 ms), or an
   * object naming a preset and overriding single parameters. See docs/membership.md for the detection bound.
   */
  membership?: MembershipPreset | MembershipTiming
  /**
   * How long a voter must have been dead (in the leader's membership view, and silent to Raft) before the
   * leader takes it out of the voter set and promotes a healthy non-voter in its place. Default 10,000 ms.
   */
  voterReplaceAfterMs?: number
  /**
   * How long `join()` keeps asking (with back-off) the bootstrap agents to let this one in, and then waits
   * for a leader and a session, when its signal does not end it first: then it rejects with
   * `NoLeaderError`. Default 120,000 ms (50 agents started at once on a small machine join within it).
   */
  joinTimeoutMs?: number
}

/** The membership timing presets: `fast` halves every period of memberlist's LAN defaults (`lan`). */
export type MembershipPreset = 'fast' | 'lan'

/** A membership preset with single SWIM parameters overridden (all durations in ms). */
export interface MembershipTiming extends Partial<SwimConfig> {
  /** Default `'fast'`. */
  preset?: MembershipPreset
}

/** The agent options of API.md, plus conclave's own. */
export interface AgentOptions extends TimingOptions {
  /** Human label, unique in the cluster; default: the short peer id. */
  name?: string
  /** Durable state (Raft log, snapshots, peer key); omitted = in memory. */
  dataDir?: string
  /** Multiaddrs to listen on; default `['/ip4/127.0.0.1/tcp/0']`. */
  listen?: string[]
  /** What this agent can run, matched by task constraints. */
  capabilities?: string[]
  /** Task slots (default 10); load = running tasks / slots. */
  concurrency?: number
  labels?: Record<string, string>
  /** `memory` runs over in-process transports (tests). Default `tcp`. */
  transport?: 'tcp' | 'memory'
  /**
   * Private network: a pre-shared key, as the key file's bytes or its path (make one with
   * `conclave psk swarm.key`). Agents without the same key cannot connect to this one.
   */
  psk?: Uint8Array | string
  /**
   * SPIFFE identities and authorization: this agent's X509-SVID, the trust bundle(s), and a policy saying
   * which SPIFFE IDs may join, vote, submit and run tasks, take locks and write keys. Every peer proves its
   * SVID on connection; one that fails, or asks for what the policy does not allow, is refused on every
   * conclave protocol. Checked at start: a bad file, an invalid own SVID or a bad policy is an
   * `InvalidArgumentError`. See docs/security.md.
   */
  security?: SecurityOptions
  /** Raft tuning beyond the timing options (tests). */
  raft?: Partial<RaftOptions>
  /** Per-peer rates this agent serves (see `RateLimits`). */
  rateLimits?: RateLimits
  /**
   * libp2p's connection gater for the agent's own node: deny peers or addresses. The chaos suite partitions
   * agents with it; a gater decides only when a connection is set up, so close existing ones as well.
   */
  connectionGater?: ConnectionGater
  /**
   * Start a single-voter cluster from this surviving replica's `dataDir` after the cluster lost its quorum
   * (etcd's `--force-new-cluster`): the stored configuration is rewritten to this agent alone, which then
   * leads and serves what its log holds; other agents join it. Only when the lost voters are gone for good.
   * Refused (`InvalidArgumentError`) without `dataDir`, or on a directory that is not a voter's replica.
   */
  forceNewCluster?: boolean
  /**
   * libp2p's metrics for the agent's own node (e.g. `prometheusMetrics()` of `@libp2p/prometheus-metrics`):
   * conclave's metrics are registered there too (`enableMetrics`), so one registry holds both.
   */
  metrics?: Libp2pOptions['metrics']
}

/** Options of the libp2p service factory `conclave()`: the same as an agent's, minus the libp2p node's own. */
export type ServiceOptions = Omit<
  AgentOptions,
  'listen' | 'transport' | 'psk' | 'connectionGater' | 'forceNewCluster' | 'metrics'
>

export interface ResolvedTiming {
  tickMs: number
  electionTicks: number
  heartbeatTicks: number
  sessionTtlMs: number
  operationTimeoutMs: number
  leaseSafetyMarginMs: number | undefined
  snapshotEntries: number
  membership: SwimConfig
  voterReplaceAfterMs: number
  joinTimeoutMs: number
}

export function resolveTiming(options: TimingOptions & { raft?: Partial<RaftOptions> }): ResolvedTiming {
  const timing: ResolvedTiming = {
    tickMs: options.tickMs ?? 30,
    electionTicks: options.electionTicks ?? 12,
    heartbeatTicks: options.heartbeatTicks ?? 3,
    sessionTtlMs: options.sessionTtlMs ?? 5000,
    operationTimeoutMs: options.operationTimeoutMs ?? 10_000,
    leaseSafetyMarginMs: options.leaseSafetyMarginMs,
    snapshotEntries: options.snapshotEntries ?? 10_000,
    membership: resolveMembership(options.membership),
    voterReplaceAfterMs: options.voterReplaceAfterMs ?? 10_000,
    joinTimeoutMs: options.joinTimeoutMs ?? 120_000,
  }
  for (const [name, value] of Object.entries(timing)) {
    if (value === undefined || name === 'membership') continue
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive number, got ${String(value)}`)
    }
  }
  if (timing.heartbeatTicks >= timing.electionTicks) {
    throw new InvalidArgumentError('heartbeatTicks must be below electionTicks')
  }
  checkRaftOptions(options.raft, timing)
  return timing
}

/**
 * Checks the `raft` option as the Raft core will when the agent joins, so that a bad value fails at
 * creation: `InvalidArgumentError` for an unknown key or a value the core refuses.
 */
function checkRaftOptions(raft: Partial<RaftOptions> | undefined, timing: ResolvedTiming): void {
  if (raft === undefined) return
  if (raft === null || typeof raft !== 'object') throw new InvalidArgumentError('raft must be an object')
  for (const key of Object.keys(raft)) {
    if (!(key in DEFAULT_RAFT_OPTIONS)) throw new InvalidArgumentError(`unknown raft option ${key}`)
  }
  try {
    validateRaftOptions({
      ...DEFAULT_RAFT_OPTIONS,
      electionTicks: timing.electionTicks,
      heartbeatTicks: timing.heartbeatTicks,
      ...raft,
    })
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message, { cause: err })
  }
}

/** The SWIM configuration of a membership option; `InvalidArgumentError` on an unknown preset or a bad value. */
export function resolveMembership(option: MembershipPreset | MembershipTiming | undefined): SwimConfig {
  if (option !== undefined && typeof option !== 'string' && (typeof option !== 'object' || option === null)) {
    throw new InvalidArgumentError('membership must be a preset name or an object')
  }
  const { preset = 'fast', ...overrides } = typeof option === 'string' ? { preset: option } : (option ?? {})
  if (preset !== 'fast' && preset !== 'lan')
    throw new InvalidArgumentError(`unknown membership preset ${String(preset)}`)
  try {
    // Gossipsub already floods each publish to every subscriber: SWIM's retransmissions, meant for lossy
    // piggybacked UDP gossip, would multiply the cluster's gossip load (and signature checks) by up to 8.
    // Once at any size: at 10-98 members log10 scaling published everything twice.
    return resolveConfig({
      ...(preset === 'fast' ? SWIM_FAST_CONFIG : SWIM_LAN_CONFIG),
      retransmitMult: 1,
      retransmitScale: 'none',
      ...overrides,
    })
  } catch (err) {
    // The SWIM core's own RangeError, given the public option's name and type.
    throw new InvalidArgumentError(`membership: ${(err as Error).message}`, { cause: err })
  }
}

/** The margin subtracted from a lease of `ttlMs` before it is no longer trusted locally. */
export function leaseMargin(timing: ResolvedTiming, ttlMs: number): number {
  return timing.leaseSafetyMarginMs ?? Math.max(50, ttlMs * 0.1)
}

/**
 * How much one remote peer may ask of this agent. The defaults sit far above what a busy agent or client
 * sends; raise them for a client that alone drives more, lower them to bound what a misbehaving peer costs.
 */
export interface RateLimits {
  /**
   * Requests per second per peer and protocol on the request/response protocols (forwarded writes, reads,
   * the client protocol, administration); over it a request is answered with `RateLimitedError` (the write
   * path retries it). Default 25,000/s, bursts of 50,000. SWIM's probes keep the default.
   */
  requests?: RateLimit
  /** Raft messages per second per peer; over it the peer's stream is paused (backpressure). Default 100,000/s. */
  raftMessages?: RateLimit
  /**
   * Commands per second one member may forward to the leader, per right they need; over it a command waits
   * at the leader for its turn (backpressure on that member alone). Default: `lock` 1,000/s, bursts of 1,000.
   */
  rights?: Partial<Record<Action, RateLimit>>
}

/** Checks `rateLimits`: `InvalidArgumentError` for an unknown key or a bad rate. */
export function checkRateLimits(limits: RateLimits | undefined): void {
  if (limits === undefined) return
  if (limits === null || typeof limits !== 'object')
    throw new InvalidArgumentError('rateLimits must be an object')
  for (const key of Object.keys(limits)) {
    if (key !== 'requests' && key !== 'raftMessages' && key !== 'rights')
      throw new InvalidArgumentError(`unknown rateLimits option ${key}`)
  }
  const rates = [
    ['requests', limits.requests, DEFAULT_REQUEST_RATE],
    ['raftMessages', limits.raftMessages, DEFAULT_MESSAGE_RATE],
  ] as const
  for (const [name, limit, fallback] of rates) {
    try {
      checkRateLimit(limit, fallback)
    } catch (err) {
      throw new InvalidArgumentError(`rateLimits.${name}: ${(err as Error).message}`, { cause: err })
    }
  }
  if (limits.rights !== undefined) {
    if (limits.rights === null || typeof limits.rights !== 'object')
      throw new InvalidArgumentError('rateLimits.rights must be an object')
    for (const [action, rate] of Object.entries(limits.rights)) {
      if (!ACTIONS.includes(action as Action))
        throw new InvalidArgumentError(`rateLimits.rights: unknown right ${action}`)
      try {
        checkRateLimit(rate, { perSecond: Number.POSITIVE_INFINITY })
      } catch (err) {
        throw new InvalidArgumentError(`rateLimits.rights.${action}: ${(err as Error).message}`, {
          cause: err,
        })
      }
    }
  }
}

/**
 * An agent's Raft tuning as the core gets it: only the tuning of `RaftOptions`. Raft's test-only switches
 * are no agent option (tests and simulators set them on a `RaftNode` or `RaftRunner` they build, see
 * `src/raft/core-options.ts`), so one smuggled past the types is dropped here.
 */
export function agentRaftOptions(raft: Partial<RaftOptions> | undefined): Partial<RaftOptions> {
  if (raft === undefined) return {}
  const { bugs: _dropped, ...tuning } = raft as Partial<RaftOptions> & { bugs?: unknown }
  return tuning
}
