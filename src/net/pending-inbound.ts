/**
 * A cap on the inbound connections one IP address may have in their handshake at once.
 *
 * libp2p counts inbound connections still upgrading (Noise, then Yamux) against one node-wide limit
 * (`maxIncomingPendingConnections`), and gives each `inboundUpgradeTimeout` to finish. 70 TCP sockets that
 * never send a byte filled that limit (64) and the agent refused every new inbound connection, from every
 * peer, for as long as the attacker kept reopening them. With this cap one address holds at most
 * `maxPendingPerIp` of those places (half the node-wide limit by default), so the others stay free for
 * peers elsewhere; a socket over the cap is closed before libp2p counts it. A handshake ends (done, failed or
 * timed out) and its place is given back at once.
 */

import type { CreateListenerOptions, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'

/** A socket refused because its address has too many handshakes under way. */
export class PendingLimitError extends Error {
  override readonly name = 'PendingLimitError'
}

/** The host part of a connection's remote address (`/ip4/1.2.3.4/tcp/5` → `1.2.3.4`), or undefined. */
export function remoteHost(maConn: Pick<MultiaddrConnection, 'remoteAddr'>): string | undefined {
  try {
    const components = maConn.remoteAddr.getComponents()
    const host = components.find(c => c.name === 'ip4' || c.name === 'ip6')
    return host?.value
  } catch {
    return undefined
  }
}

/** The handshakes under way, by remote IP. */
export class PendingByHost {
  readonly maxPerHost: number
  private readonly pending = new Map<string, number>()
  refused = 0

  constructor(maxPerHost: number) {
    if (!(Number.isInteger(maxPerHost) && maxPerHost >= 1)) {
      throw new RangeError(`maxPendingPerIp must be a positive integer, got ${maxPerHost}`)
    }
    this.maxPerHost = maxPerHost
  }

  /** Takes a place for `host`: false when it already holds `maxPerHost`. */
  take(host: string): boolean {
    const count = this.pending.get(host) ?? 0
    if (count >= this.maxPerHost) {
      this.refused++
      return false
    }
    this.pending.set(host, count + 1)
    return true
  }

  /** Gives back a place of `host`. */
  give(host: string): void {
    const count = (this.pending.get(host) ?? 0) - 1
    if (count <= 0) this.pending.delete(host)
    else this.pending.set(host, count)
  }

  /** The handshakes `host` has under way now. */
  of(host: string): number {
    return this.pending.get(host) ?? 0
  }
}

/** `createTransport`, with its listeners holding each remote IP to `limit`'s places. */
export function limitPendingPerIp<C>(
  createTransport: (components: C) => Transport,
  limit: PendingByHost,
): (components: C) => Transport {
  return components => {
    const transport = createTransport(components)
    const createListener = transport.createListener.bind(transport)
    transport.createListener = (options: CreateListenerOptions) =>
      createListener({ ...options, upgrader: gatedUpgrader(options.upgrader, limit) })
    return transport
  }
}

function gatedUpgrader(upgrader: Upgrader, limit: PendingByHost): Upgrader {
  const upgradeInbound = (async (
    maConn: MultiaddrConnection,
    options: Parameters<Upgrader['upgradeInbound']>[1],
  ) => {
    const host = remoteHost(maConn)
    // Not an IP connection (none today over TCP): libp2p's own limits apply.
    if (host === undefined) return upgrader.upgradeInbound(maConn, options)
    if (!limit.take(host)) {
      // The listener aborts the socket on this error.
      throw new PendingLimitError(
        `${host} already has ${limit.maxPerHost} inbound connections in their handshake`,
      )
    }
    try {
      return await upgrader.upgradeInbound(maConn, options)
    } finally {
      limit.give(host)
    }
  }) as Upgrader['upgradeInbound']
  return {
    upgradeInbound,
    upgradeOutbound: ((maConn: MultiaddrConnection, options: Parameters<Upgrader['upgradeOutbound']>[1]) =>
      upgrader.upgradeOutbound(maConn, options)) as Upgrader['upgradeOutbound'],
    createInboundAbortSignal: signal => upgrader.createInboundAbortSignal(signal),
    getStreamMuxers: () => upgrader.getStreamMuxers(),
    getConnectionEncrypters: () => upgrader.getConnectionEncrypters(),
  }
}
