/**
 * `GET /metrics` in Prometheus text format, on node:http alone. `conclave agent --metrics` binds it before the
 * agent starts, so a bad or busy address fails first.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { InvalidArgumentError } from '../errors.ts'
import { checkHost, checkPort, urlOf } from '../http/address.ts'
import { httpModule } from '../http/http-module.ts'
import { DashboardListenError } from '../http/server.ts'

/** What the endpoint serves: a prom-client `Registry` (its global `register`, or one of your own) fits. */
export interface MetricsRegistry {
  metrics(): Promise<string>
  readonly contentType: string
}

export interface MetricsServerOptions {
  /** Default 127.0.0.1. */
  host?: string
  /** Default 0: any free port (see `url`). */
  port?: number
  registry: MetricsRegistry
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** `http://host:port/metrics` */
  readonly url: string
  /** Stops serving. Idempotent. */
  close(): Promise<void>
}

/**
 * Serves `registry` at `/metrics`; resolves once listening. `InvalidArgumentError` for a bad host or port,
 * `DashboardListenError` (an `InvalidArgumentError`) for an address in use or not this machine's.
 */
export async function listenMetrics(options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1'
  checkHost(host)
  const port = checkPort(options.port ?? 0)
  const registry = options.registry
  if (registry === null || typeof registry !== 'object' || typeof registry.metrics !== 'function') {
    throw new InvalidArgumentError('registry must have metrics() and contentType (a prom-client Registry)')
  }
  const server = httpModule().createServer((request, response) => {
    serve(registry, request, response).catch(err => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
      response.end(`metrics failed: ${(err as Error).message}\n`)
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  await bind(server, host, port)
  const address = server.address() as AddressInfo
  let closing: Promise<void> | undefined
  return {
    url: `${urlOf(host, address.port)}metrics`,
    close: () => {
      closing ??= new Promise<void>(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}

async function serve(
  registry: MetricsRegistry,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const path = (request.url ?? '/').split('?')[0]
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
    response.end('only GET\n')
    return
  }
  if (path !== '/metrics') {
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
    response.end('see /metrics\n')
    return
  }
  const body = await registry.metrics()
  response.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
  response.end(request.method === 'HEAD' ? undefined : body)
}

function bind(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => reject(new DashboardListenError(host, port, err))
    server.once('error', failed)
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', failed)
      resolve()
    })
  })
}
