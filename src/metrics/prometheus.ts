import type { Metrics } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { register } from 'prom-client'
import type { MetricsRegistry } from './server.ts'

/**
 * libp2p's Prometheus `Metrics` on prom-client's global registry, with Node's process metrics, and that
 * registry to serve. One per process: creating it clears the global registry (prometheus-metrics does).
 */
export function processPrometheusMetrics(): { metrics: Metrics; registry: MetricsRegistry } {
  const metrics = prometheusMetrics({ collectDefaultMetrics: true })({ logger: defaultLogger() })
  return { metrics, registry: register }
}
