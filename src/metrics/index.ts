export {
  type ConclaveMetrics,
  enableMetrics,
  PROPOSAL_BUCKETS,
  type RegisterOptions,
  registerConclaveMetrics,
  STORAGE_BUCKETS,
} from './conclave-metrics.ts'
export {
  type MembershipCounters,
  type MetricsInternals,
  type MetricsTarget,
  metricsInternalsOf,
  type ProposalOutcome,
  type ProposalRecord,
  type RaftTransportCounters,
  type RpcCounters,
} from './internals.ts'
export { processPrometheusMetrics } from './prometheus.ts'
export {
  listenMetrics,
  type MetricsRegistry,
  type MetricsServer,
  type MetricsServerOptions,
} from './server.ts'
export { readStateCounts, type StateCounts } from './state-counts.ts'
