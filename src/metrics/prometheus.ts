import { createRequire } from 'node:module'
import type { Metrics } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import type { MetricsRegistry } from './server.ts'

/**
 * Loaded on the first call, not with the library: prom-client and libp2p's Prometheus metrics are about 3.5 MiB
 * of V8 heap in every agent process, most of which export no metrics. `require` of an ES module (Node >= 22.12)
 * keeps this call synchronous and shares the module instances an `import` of the same packages gets (the one
 * global registry).
 */
const load = createRequire(import.meta.url)

/**
 * libp2p's Prometheus `Metrics` on prom-client's global registry, with Node's process metrics, and that
 * registry to serve. One per process: creating it clears the global registry (prometheus-metrics does).
 */
export function processPrometheusMetrics(): { metrics: Metrics; registry: MetricsRegistry } {
  const { prometheusMetrics } = load(
    '@libp2p/prometheus-metrics',
  ) as typeof import('@libp2p/prometheus-metrics')
  const { register } = load('prom-client') as typeof import('prom-client')
  const metrics = prometheusMetrics({ collectDefaultMetrics: true })({ logger: defaultLogger() })
  return { metrics, registry: register }
}
