/**
 * conclave's own metrics, registered through libp2p's `Metrics` interface: given the same `Metrics` as the
 * libp2p node (e.g. `@libp2p/prometheus-metrics`), one registry exposes libp2p's metrics and conclave's.
 * Levels (term, indexes, sessions, locks, tasks) are computed when scraped; happenings (leader changes,
 * proposals, storage writes, member and task events) are counted as they occur; the network's own
 * counters are read when scraped and added as they grew. docs/metrics.md lists every metric.
 */
import type { Metrics } from '@libp2p/interface'
import { InvalidArgumentError } from '../errors.ts'
import { TASK_STATES, type TaskStateName } from '../http/source.ts'
import type { StateEvent } from '../state/index.ts'
import type { StorageObservation } from '../storage/timed-storage.ts'
import type { MemberEvent } from '../swim/types.ts'
import { type MetricsInternals, type MetricsTarget, metricsInternalsOf, nodeOf } from './internals.ts'
import { readStateCounts, type StateCounts } from './state-counts.ts'

/** conclave's metrics of one agent, registered in a `Metrics`; `stop` detaches them from the agent. */
export interface ConclaveMetrics {
  /** Unsubscribes from the agent's events; level metrics read as 0 (or their last value) afterwards. */
  stop(): void
}

/** Proposal latencies: from 1 ms (a local leader) to 10 s (the default operation timeout). */
export const PROPOSAL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Storage transactions: from 100 µs (memory, page cache) to 1 s (a stalled disk). */
export const STORAGE_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
]

/** The agents (by their conclave service) whose metrics are registered: twice would count events twice. */
const enabled = new WeakSet<object>()

/** A parse of the state's snapshot for the level metrics takes at most 1/20 of the event loop's time. */
const PARSE_DUTY_FACTOR = 20

/**
 * Registers conclave's metrics of `target` (an agent made by `createAgent`, or a libp2p node running the
 * `conclave()` service) in `metrics`, usually the node's own (`createConclaveLibp2p({ metrics })`) so one
 * registry holds both. One agent per `Metrics`: Prometheus names are global to a registry. Throws
 * `InvalidArgumentError` for anything else, or an agent whose metrics are already enabled.
 */
export function enableMetrics(target: MetricsTarget, metrics: Metrics): ConclaveMetrics {
  const internals = metricsInternalsOf(target)
  if (internals === undefined) {
    throw new InvalidArgumentError(
      'enableMetrics needs an agent made by createAgent or a node running conclave()',
    )
  }
  // metricsInternalsOf found the service, so the node is there.
  const service = (nodeOf(target)!.services as Record<string, object>).conclave
  return registerConclaveMetrics(metrics, internals, { owner: service })
}

export interface RegisterOptions {
  /**
   * What the metrics describe (the agent's conclave service): a second registration for the same owner is
   * refused until the first is stopped, so that no event is counted twice.
   */
  owner?: object
}

/** Registers conclave's metrics read from `internals` (see `MetricsInternals`) in `metrics`. */
export function registerConclaveMetrics(
  metrics: Metrics,
  internals: MetricsInternals,
  options: RegisterOptions = {},
): ConclaveMetrics {
  if (metrics === null || typeof metrics !== 'object' || typeof metrics.registerMetric !== 'function') {
    throw new InvalidArgumentError('metrics must be a libp2p Metrics implementation')
  }
  const owner = options.owner
  if (owner !== undefined) {
    if (enabled.has(owner)) throw new InvalidArgumentError('metrics are already enabled for this agent')
    enabled.add(owner)
  }
  let stopped = false
  const unsubscribe: (() => void)[] = []

  // Raft, read when scraped.
  const status = () => (stopped ? undefined : internals.raftStatus())
  gauge(metrics, 'conclave_raft_term', 'Current Raft term of this agent', () => status()?.term ?? 0)
  gauge(
    metrics,
    'conclave_raft_commit_index',
    'Highest log index known committed',
    () => status()?.commit ?? 0,
  )
  gauge(
    metrics,
    'conclave_raft_applied_index',
    'Highest log index applied to the state',
    () => status()?.applied ?? 0,
  )
  gauge(metrics, 'conclave_raft_apply_lag', 'Committed entries not yet applied (commit - applied)', () => {
    const current = status()
    return current === undefined ? 0 : Math.max(0, current.commit - current.applied)
  })
  gauge(
    metrics,
    'conclave_raft_last_index',
    'Last index of the local Raft log',
    () => status()?.lastIndex ?? 0,
  )
  gauge(metrics, 'conclave_raft_is_leader', '1 while this agent is the Raft leader, else 0', () => {
    const current = status()
    return current !== undefined && current.role === 'leader' ? 1 : 0
  })
  gauge(
    metrics,
    'conclave_raft_voters',
    'Voters in the Raft configuration',
    () => status()?.config.voters.length ?? 0,
  )

  const leaderChanges = metrics.registerCounter('conclave_raft_leader_changes_total', {
    help: 'Leader changes this agent learned of (a new leader, or none)',
  })
  let leader: string | undefined
  if (internals.onLeaderChange !== undefined) {
    unsubscribe.push(
      internals.onLeaderChange(next => {
        if (next !== leader) leaderChanges?.increment()
        leader = next
      }),
    )
  }

  // Counted by the state itself when the agent offers it (cheap). Otherwise from a parse of the state's
  // snapshot JSON, which blocks the event loop about 9 ms per 1000 keys: once per applied index (the state
  // changes only by applying entries), and not again before PARSE_DUTY_FACTOR times its last cost has passed.
  const stateCounts = internals.stateCounts?.bind(internals)
  let cached: { applied: number; at: number; cost: number; counts: StateCounts | undefined } | undefined
  const counts = (): StateCounts | undefined => {
    if (stopped) return undefined
    if (stateCounts !== undefined) return stateCounts()
    const applied = status()?.applied ?? -1
    const now = performance.now()
    const unchanged = cached !== undefined && applied !== -1 && cached.applied === applied
    const tooSoon = cached !== undefined && now - cached.at < cached.cost * PARSE_DUTY_FACTOR
    if (cached === undefined || (!unchanged && !tooSoon)) {
      const state = internals.state()
      const parsed = state === undefined ? undefined : readStateCounts(state)
      cached = { applied, at: now, cost: performance.now() - now, counts: parsed }
    }
    return cached.counts
  }
  gauge(
    metrics,
    'conclave_sessions',
    'Open agent sessions in the replicated state',
    () => counts()?.sessions ?? 0,
  )
  gauge(metrics, 'conclave_kv_keys', 'Keys in the replicated key-value store', () => counts()?.keys ?? 0)
  gauge(metrics, 'conclave_locks_held', 'Locks with a holder', () => counts()?.locksHeld ?? 0)
  gauge(
    metrics,
    'conclave_lock_waiters',
    'Requests queued behind held locks',
    () => counts()?.lockWaiters ?? 0,
  )
  metrics.registerMetricGroup('conclave_tasks', {
    label: 'state',
    help: 'Tasks the replicated state keeps, by state',
    calculate: () => counts()?.tasks ?? zeroTasks(),
  })

  // Happenings of the replicated state (the same on every replica).
  const transitions = metrics.registerCounterGroup('conclave_task_transitions_total', {
    label: 'transition',
    help: 'Task state transitions applied, by transition',
  })
  const lockEvents = metrics.registerCounterGroup('conclave_lock_events_total', {
    label: 'event',
    help: 'Locks granted and released, as applied',
  })
  const sessionEnds = metrics.registerCounterGroup('conclave_session_ends_total', {
    label: 'reason',
    help: 'Sessions ended: expired (TTL lapsed) or closed',
  })
  unsubscribe.push(
    internals.onStateEvent(event => {
      const transition = TASK_TRANSITIONS[event.type]
      if (transition !== undefined) transitions?.increment({ [transition]: true })
      else if (event.type === 'lockGranted') lockEvents?.increment({ granted: true })
      else if (event.type === 'lockReleased') lockEvents?.increment({ released: true })
      else if (event.type === 'sessionExpired') sessionEnds?.increment({ expired: true })
      else if (event.type === 'sessionClosed') sessionEnds?.increment({ closed: true })
    }),
  )

  // Proposals.
  const proposals = metrics.registerCounterGroup('conclave_proposals_total', {
    label: 'outcome',
    help: 'Commands this agent proposed or forwarded: ok, refused by the state machine, failed (no result)',
  })
  const proposalSeconds = metrics.registerHistogramGroup('conclave_proposal_duration_seconds', {
    label: 'command',
    help: 'Seconds from submitting a command to its result, by command type',
    buckets: PROPOSAL_BUCKETS,
  })
  proposals?.increment({ ok: 0, refused: 0, failed: 0 })
  if (internals.onProposal !== undefined) {
    unsubscribe.push(
      internals.onProposal(record => {
        proposals?.increment({ [record.outcome]: true })
        proposalSeconds?.observe({ [record.command]: record.seconds })
      }),
    )
  }

  // Storage.
  const storageSeconds = metrics.registerHistogramGroup('conclave_storage_write_duration_seconds', {
    label: 'op',
    help: 'Seconds per storage transaction (write and fsync), by operation: append, commit, compact, meta',
    buckets: STORAGE_BUCKETS,
  })
  const snapshots = metrics.registerCounterGroup('conclave_snapshots_total', {
    label: 'source',
    help: 'Snapshots stored: taken (log compaction) or installed (sent by the leader)',
  })
  const snapshotBytes = metrics.registerMetric('conclave_snapshot_size_bytes', {
    help: 'Size of the last snapshot stored',
  })
  if (internals.onStorage !== undefined) {
    unsubscribe.push(
      internals.onStorage((observation: StorageObservation) => {
        if (observation.kind === 'call') storageSeconds?.observe({ [observation.op]: observation.seconds })
        else {
          snapshots?.increment({ [observation.source]: true })
          snapshotBytes?.update(observation.bytes)
        }
      }),
    )
  }

  // SWIM membership.
  const suspicions = metrics.registerCounter('conclave_swim_suspicions_total', {
    help: 'Members this agent saw suspected',
  })
  const deaths = metrics.registerCounter('conclave_swim_deaths_total', {
    help: 'Members this agent saw declared dead',
  })
  const refutations = metrics.registerCounter('conclave_swim_refutations_total', {
    help: 'Suspicions this agent saw refuted (the suspect proved alive)',
  })
  const memberChanges = metrics.registerCounterGroup('conclave_swim_member_changes_total', {
    label: 'change',
    help: 'Members this agent saw join or leave',
  })
  unsubscribe.push(
    internals.onMemberEvent((event: MemberEvent) => {
      if (event.type === 'suspect') suspicions?.increment()
      else if (event.type === 'dead') deaths?.increment()
      else if (event.type === 'alive') refutations?.increment()
      else if (event.type === 'joined' || event.type === 'left')
        memberChanges?.increment({ [event.type]: true })
    }),
  )
  if (internals.localHealth !== undefined) {
    const health = internals.localHealth.bind(internals)
    gauge(metrics, 'conclave_swim_local_health', "Lifeguard's local health score (0 = healthy)", () =>
      stopped ? 0 : health(),
    )
  }
  const membershipStats = internals.membershipStats?.bind(internals)
  if (membershipStats !== undefined) {
    grownCounter(metrics, 'conclave_swim_messages_total', 'kind', 'SWIM messages, by kind', () => {
      const stats = membershipStats()
      return {
        sent: stats.sent,
        send_failed: stats.sendFailures,
        published: stats.published,
        publish_fallback: stats.publishFallbacks,
        received: stats.received,
        dropped: stats.dropped,
      }
    })
  }

  // Network: RPC and Raft transport.
  const rpcStats = internals.rpcStats?.bind(internals)
  const raftStats = internals.raftTransportStats?.bind(internals)
  if (rpcStats !== undefined) {
    grownCounter(
      metrics,
      'conclave_rpc_calls_total',
      'outcome',
      'RPC calls this agent made, by outcome',
      () => {
        const stats = rpcStats()
        return { succeeded: stats.callsSucceeded, failed: stats.callsFailed }
      },
    )
    let served = 0
    metrics.registerCounter('conclave_rpc_requests_served_total', {
      help: 'RPC requests this agent answered',
      calculate: () => {
        const now = rpcStats().requestsServed
        const grown = now >= served ? now - served : now
        served = now
        return grown
      },
    })
  }
  if (rpcStats !== undefined || raftStats !== undefined) {
    grownCounter(
      metrics,
      'conclave_rpc_errors_total',
      'kind',
      'Network errors by kind: failed RPC calls, streams reset for bad frames, Raft messages dropped, failed dials',
      () => {
        const rpc = rpcStats?.()
        const raft = raftStats?.()
        return {
          ...(rpc === undefined ? {} : { call_failed: rpc.callsFailed, rpc_stream_reset: rpc.resets }),
          ...(raft === undefined
            ? {}
            : {
                raft_message_dropped: raft.dropped,
                raft_stream_reset: raft.resets,
                raft_dial_failed: raft.dialFailures,
              }),
        }
      },
    )
    grownCounter(
      metrics,
      'conclave_rate_limited_total',
      'path',
      'Refusals for a peer over its rate: rpc (answered RateLimitedError), raft (stream paused)',
      () => ({
        ...(rpcStats === undefined ? {} : { rpc: rpcStats().rateLimited }),
        ...(raftStats === undefined ? {} : { raft: raftStats().throttled }),
      }),
    )
  }

  return {
    stop: () => {
      if (stopped) return
      stopped = true
      for (const off of unsubscribe.splice(0)) off()
      if (owner !== undefined) enabled.delete(owner)
    },
  }
}

const TASK_TRANSITIONS: Partial<Record<StateEvent['type'], string>> = {
  taskAssigned: 'assigned',
  taskUnassigned: 'unassigned',
  taskStolen: 'stolen',
  taskStarted: 'started',
  taskAttemptEnded: 'attempt_ended',
  taskCompleted: 'completed',
  taskFailed: 'failed',
  taskRetry: 'retry',
  taskDead: 'dead',
  taskExpired: 'expired',
}

function zeroTasks(): Record<TaskStateName, number> {
  return Object.fromEntries(TASK_STATES.map(state => [state, 0])) as Record<TaskStateName, number>
}

function gauge(metrics: Metrics, name: string, help: string, calculate: () => number): void {
  metrics.registerMetric(name, { help, calculate })
}

/**
 * A counter group fed from cumulative counters read when scraped. libp2p's calculated counters add what the
 * function returns at each scrape, so it returns what each counter grew by since the last one.
 */
function grownCounter(
  metrics: Metrics,
  name: string,
  label: string,
  help: string,
  read: () => Record<string, number>,
): void {
  let last: Record<string, number> = {}
  metrics.registerCounterGroup(name, {
    label,
    help,
    calculate: () => {
      const now = read()
      const grown: Record<string, number> = {}
      for (const [key, value] of Object.entries(now)) {
        const before = last[key] ?? 0
        // A counter below its last reading was reset (a new transport): all of it is new.
        grown[key] = value >= before ? value - before : value
      }
      last = now
      return grown
    },
  })
}
