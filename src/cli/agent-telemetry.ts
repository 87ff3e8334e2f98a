/**
 * What `conclave agent` tells operators besides its work: `--metrics` (Prometheus text at `/metrics`) and
 * `--log-format` (text lines, or one JSON object a line). Kept apart from `agent.ts` so that the command's
 * flow stays readable.
 */
import type { Agent } from '../api.ts'
import { parseHttpAddress } from '../http/address.ts'
import type { OptionSpec, ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import { printJson, printLine } from './output.ts'

export const TELEMETRY_OPTIONS: OptionSpec[] = [
  {
    name: 'metrics',
    kind: 'string',
    placeholder: '<host:port>',
    description: "serve Prometheus metrics (conclave's and libp2p's) at /metrics there, e.g. 127.0.0.1:9464",
  },
  {
    name: 'log-format',
    kind: 'string',
    placeholder: 'text|json',
    description: 'text lines (default), or one JSON object per line: level, time, event, agent, message',
  },
]

export type LogLevel = 'info' | 'warn' | 'error'

/** Logs one happening; `fields` go into the JSON object (text lines show `message` only). */
export interface AgentLog {
  (event: string, message: string, fields?: Record<string, unknown>): void
  /** The agent's name, on every JSON line once known. */
  agent: string
}

/** The log `--log-format` (or the older `--json`) asks for; a bad format is a usage error. */
export function agentLog(options: ParsedArgs['options']): AgentLog {
  const format = (options['log-format'] as string | undefined) ?? (options.json === true ? 'json' : 'text')
  if (format !== 'text' && format !== 'json') {
    throw new UsageError(`--log-format ${format}: expected text or json`)
  }
  if (format === 'text' && options.json === true) throw new UsageError('--json contradicts --log-format text')
  const log = ((event, message, fields = {}) => {
    const time = new Date().toISOString()
    if (format === 'json') {
      printJson({ level: levelOf(event, fields), time, event, agent: log.agent, message, ...fields })
    } else printLine(`${time} ${message}`)
  }) as AgentLog
  log.agent = (options.name as string | undefined) ?? ''
  return log
}

function levelOf(event: string, fields: Record<string, unknown>): LogLevel {
  if (event === 'error') return 'error'
  if (event === 'member' && (fields.status === 'dead' || fields.change === 'left')) return 'warn'
  if (event === 'leader' && fields.leaderId === '') return 'warn'
  return 'info'
}

/** The `--metrics` endpoint, bound before the agent starts; `attach` registers the agent's metrics. */
export interface AgentMetricsEndpoint {
  readonly url: string
  attach(agent: Agent): void
  close(): Promise<void>
}

/** Binds `--metrics` (undefined without it); a bad or busy address is a usage error naming the option. */
export async function bindMetrics(options: ParsedArgs['options']): Promise<AgentMetricsEndpoint | undefined> {
  const text = options.metrics as string | undefined
  if (text === undefined) return undefined
  let address: { host: string; port: number }
  try {
    address = parseHttpAddress(text)
  } catch (err) {
    throw new UsageError(`--metrics ${text}: ${(err as Error).message}`)
  }
  // Loaded only with --metrics: prom-client is not needed otherwise.
  const { processPrometheusMetrics } = await import('../metrics/prometheus.ts')
  const { listenMetrics } = await import('../metrics/server.ts')
  const { enableMetrics } = await import('../metrics/conclave-metrics.ts')
  const { metrics, registry } = processPrometheusMetrics()
  let server: Awaited<ReturnType<typeof listenMetrics>>
  try {
    server = await listenMetrics({ ...address, registry })
  } catch (err) {
    throw new UsageError(`--metrics ${text}: ${(err as Error).message}`)
  }
  let registered: { stop(): void } | undefined
  return {
    url: server.url,
    attach: agent => {
      registered = enableMetrics(agent, metrics)
    },
    close: async () => {
      registered?.stop()
      await server.close()
    },
  }
}
