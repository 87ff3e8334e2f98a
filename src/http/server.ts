/**
 * The dashboard's HTTP server, on node:http alone: the page and its assets, `GET /state` (the picture as
 * JSON) and `GET /events` (server-sent events: `state` about once a second while a page watches, `feed` as
 * things happen). Read-only: anything but GET and HEAD is refused.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Agent } from '../api.ts'
import { InvalidArgumentError } from '../errors.ts'
import { checkHost, checkPort, isLoopbackHost, urlOf } from './address.ts'
import { type Asset, loadAssets } from './assets.ts'
import { httpModule } from './http-module.ts'
import { DashboardModel, type DashboardState, type FeedEntry } from './model.ts'
import { agentSource, type DashboardSource } from './source.ts'

export interface DashboardOptions {
  /** Default 127.0.0.1. */
  host?: string
  /** Default 0: any free port (see `url`). */
  port?: number
  /** Closes the dashboard when aborted. */
  signal?: AbortSignal
  /**
   * With `security` on, the dashboard serves only on loopback: it shows member ids, SPIFFE IDs and lock
   * holders to anyone who can reach it. `true` allows another address anyway.
   */
  allowRemote?: boolean
  /** Milliseconds between pictures pushed to open pages (default 1000). */
  intervalMs?: number
}

/** A running dashboard. */
export interface Dashboard {
  /** `http://host:port/` */
  readonly url: string
  /** Stops serving, ends open event streams. Idempotent. */
  close(): Promise<void>
}

/**
 * A dashboard bound to its address before it has an agent: `conclave agent --http` binds first (so an
 * address in use fails before the agent listens), then `attach`es the agent once it runs. Until then the
 * page says the agent is starting.
 */
export interface PendingDashboard extends Dashboard {
  attach(source: DashboardSource): void
}

/** Where `DashboardServer` failed to bind, with the cause: `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`. */
export class DashboardListenError extends InvalidArgumentError {
  readonly host: string
  readonly port: number
  constructor(host: string, port: number, cause: NodeJS.ErrnoException) {
    const reason =
      cause.code === 'EADDRINUSE'
        ? 'address in use'
        : cause.code === 'EADDRNOTAVAIL'
          ? 'address not available on this machine'
          : cause.code === 'EACCES'
            ? 'permission denied'
            : cause.code === 'ENOTFOUND' || cause.code === 'EAI_AGAIN'
              ? 'unknown host'
              : cause.message
    super(`cannot listen on ${host}:${port}: ${reason}`, { cause })
    this.host = host
    this.port = port
  }
}

/** Serves the dashboard of `agent` (see `DashboardOptions`); resolves once listening. */
export async function startDashboard(agent: Agent, options: DashboardOptions = {}): Promise<Dashboard> {
  const source = agentSource(agent)
  const dashboard = await listenDashboard({ ...options, secured: source.secured })
  dashboard.attach(source)
  return dashboard
}

/**
 * Binds the dashboard's address (checked first: `InvalidArgumentError`; `DashboardListenError` when the
 * address is in use or not this machine's) and serves a "starting" page until `attach`. `secured`: the agent
 * will run with `security`, so only loopback unless `allowRemote`.
 */
export async function listenDashboard(
  options: DashboardOptions & { secured?: boolean } = {},
): Promise<PendingDashboard> {
  const host = options.host ?? '127.0.0.1'
  checkHost(host)
  const port = checkPort(options.port ?? 0)
  const intervalMs = options.intervalMs ?? 1000
  if (!Number.isFinite(intervalMs) || intervalMs < 50) {
    throw new InvalidArgumentError('intervalMs must be a number >= 50')
  }
  if (options.secured === true && options.allowRemote !== true && !isLoopbackHost(host)) {
    throw new InvalidArgumentError(
      `with security on, the dashboard serves on loopback only (${host} is not): pass allowRemote to serve it there`,
    )
  }
  if (options.signal?.aborted) throw new InvalidArgumentError('signal is already aborted')
  const server = new DashboardServer(loadAssets(), intervalMs, isLoopbackHost(host))
  await server.listen(host, port)
  const close = (): Promise<void> => server.close()
  options.signal?.addEventListener('abort', () => void close(), { once: true })
  return {
    url: server.url,
    close,
    attach: source => server.attach(source),
  }
}

/** Open event streams at most: each costs a picture a second in JSON. */
export const MAX_STREAMS = 32

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

class DashboardServer {
  private readonly http: Server
  private readonly assets: Map<string, Asset>
  private readonly intervalMs: number
  /** Bound to loopback: only loopback Host headers are served (a DNS-rebinding page cannot read it). */
  private readonly loopbackOnly: boolean
  private readonly streams = new Set<ServerResponse>()
  private model?: DashboardModel
  private timer?: NodeJS.Timeout
  private refreshing?: Promise<unknown>
  private closing?: Promise<void>
  url = ''

  constructor(assets: Map<string, Asset>, intervalMs: number, loopbackOnly: boolean) {
    this.assets = assets
    this.intervalMs = intervalMs
    this.loopbackOnly = loopbackOnly
    this.http = httpModule().createServer((request, response) => this.handle(request, response))
    // Event streams stay open; node's default timeouts would cut them.
    this.http.requestTimeout = 0
    this.http.headersTimeout = 10_000
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException): void => reject(new DashboardListenError(host, port, err))
      this.http.once('error', failed)
      this.http.listen({ host, port, exclusive: true }, () => {
        this.http.off('error', failed)
        const address = this.http.address() as AddressInfo
        this.url = urlOf(host, address.port)
        resolve()
      })
    })
  }

  attach(source: DashboardSource): void {
    if (this.model !== undefined) throw new InvalidArgumentError('the dashboard already has an agent')
    if (this.closing !== undefined) return
    const model = new DashboardModel(source)
    this.model = model
    model.start()
    model.listen({
      state: state => this.broadcast('state', state),
      feed: entry => this.broadcast('feed', [entry]),
    })
    // A change worth seeing at once (a leader, a death) brings the next picture forward.
    model.listen({ state: () => {}, feed: () => this.refreshSoon(100) })
    if (this.streams.size > 0) this.startTimer()
    this.refreshSoon(0)
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer)
      clearTimeout(this.soon)
      this.model?.stop()
      for (const stream of this.streams) stream.end()
      this.streams.clear()
      await new Promise<void>(resolve => {
        this.http.close(() => resolve())
        this.http.closeAllConnections()
      })
    })()
    return this.closing
  }

  private soon?: NodeJS.Timeout

  private refreshSoon(delayMs: number): void {
    if (this.soon !== undefined || this.streams.size === 0) return
    this.soon = setTimeout(() => {
      this.soon = undefined
      this.refresh()
    }, delayMs)
  }

  private refresh(): void {
    const model = this.model
    if (model === undefined || this.refreshing !== undefined || this.closing !== undefined) return
    this.refreshing = model.refresh().finally(() => {
      this.refreshing = undefined
    })
    this.refreshing.catch(() => {})
  }

  private startTimer(): void {
    if (this.timer !== undefined || this.model === undefined) return
    this.timer = setInterval(() => this.refresh(), this.intervalMs)
  }

  private stopTimerIfIdle(): void {
    if (this.streams.size > 0) return
    clearInterval(this.timer)
    this.timer = undefined
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain', ...SECURITY_HEADERS })
      response.end('read-only: GET and HEAD only\n')
      return
    }
    if (this.loopbackOnly && !isLoopbackHostHeader(request.headers.host)) {
      response.writeHead(403, { 'content-type': 'text/plain', ...SECURITY_HEADERS })
      response.end('this dashboard answers to loopback host names only\n')
      return
    }
    const path = new URL(request.url ?? '/', 'http://dashboard').pathname
    if (path === '/events') {
      this.openStream(request, response)
      return
    }
    if (path === '/state') {
      this.sendState(request, response)
      return
    }
    const asset = this.assets.get(path === '/' ? '/index.html' : path)
    if (asset === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain', ...SECURITY_HEADERS })
      response.end('not found\n')
      return
    }
    response.writeHead(200, {
      'content-type': asset.type,
      'content-length': asset.body.length,
      'cache-control': 'no-cache',
      ...SECURITY_HEADERS,
    })
    response.end(request.method === 'HEAD' ? undefined : asset.body)
  }

  private sendState(request: IncomingMessage, response: ServerResponse): void {
    const model = this.model
    if (model === undefined) {
      response.writeHead(503, { 'content-type': 'application/json', ...SECURITY_HEADERS })
      response.end(`${JSON.stringify({ starting: true })}\n`)
      return
    }
    // A picture younger than half a second is as good: polling /state cannot make the agent work harder.
    const latest = model.latest
    const picture =
      latest !== undefined && Date.now() - latest.at < 500 ? Promise.resolve(latest) : model.refresh()
    picture.then(
      state => {
        const body = `${JSON.stringify({ ...state, feed: model.feed() })}\n`
        response.writeHead(200, {
          'content-type': 'application/json',
          'cache-control': 'no-store',
          ...SECURITY_HEADERS,
        })
        response.end(request.method === 'HEAD' ? undefined : body)
      },
      (err: Error) => {
        response.writeHead(500, { 'content-type': 'text/plain', ...SECURITY_HEADERS })
        response.end(`${err.message}\n`)
      },
    )
  }

  private openStream(request: IncomingMessage, response: ServerResponse): void {
    if (this.streams.size >= MAX_STREAMS) {
      response.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10', ...SECURITY_HEADERS })
      response.end(`at most ${MAX_STREAMS} open dashboards at a time\n`)
      return
    }
    response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      ...SECURITY_HEADERS,
    })
    if (request.method === 'HEAD') {
      response.end()
      return
    }
    // The browser reconnects by itself after this long when the stream breaks (an agent restart).
    response.write('retry: 1000\n\n')
    this.streams.add(response)
    const heartbeat = setInterval(() => response.write(': keep-alive\n\n'), 15_000)
    request.on('close', () => {
      clearInterval(heartbeat)
      this.streams.delete(response)
      this.stopTimerIfIdle()
    })
    const model = this.model
    if (model === undefined) {
      send(response, 'starting', {})
    } else {
      send(response, 'feed', model.feed())
      if (model.latest !== undefined) send(response, 'state', model.latest)
    }
    this.startTimer()
    this.refreshSoon(0)
  }

  private broadcast(event: 'state' | 'feed', data: DashboardState | FeedEntry[]): void {
    for (const stream of this.streams) send(stream, event, data)
  }
}

function send(response: ServerResponse, event: string, data: unknown): void {
  response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
}

/** The Host header names a loopback address (or is absent, as from HTTP/1.0 tools). */
function isLoopbackHostHeader(header: string | undefined): boolean {
  if (header === undefined) return true
  const host = header.startsWith('[') ? header.slice(1, header.indexOf(']')) : header.replace(/:\d+$/, '')
  return isLoopbackHost(host.toLowerCase())
}
