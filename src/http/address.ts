import { isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.ts'

/** Where the dashboard listens. */
export interface HttpAddress {
  host: string
  /** 0 = any free port. */
  port: number
}

/**
 * `host:port` (`127.0.0.1:7070`, `[::1]:7070`, `localhost:7070`) as given to `--http`; a bare port means
 * loopback. Throws `InvalidArgumentError` naming what is wrong.
 */
export function parseHttpAddress(text: string): HttpAddress {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new InvalidArgumentError('expected host:port, e.g. 127.0.0.1:7070')
  }
  const value = text.trim()
  if (/^\d+$/.test(value)) return { host: '127.0.0.1', port: checkPort(value) }
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(value)
  if (bracketed !== null) {
    const host = bracketed[1]
    if (isIP(host) !== 6) throw new InvalidArgumentError(`${host} is not an IPv6 address`)
    return { host, port: checkPort(bracketed[2]) }
  }
  const colon = value.lastIndexOf(':')
  if (colon <= 0 || value.indexOf(':') !== colon) {
    throw new InvalidArgumentError(
      `${JSON.stringify(value)} is not host:port (IPv6 goes in brackets: [::1]:7070)`,
    )
  }
  const host = value.slice(0, colon)
  checkHost(host)
  return { host, port: checkPort(value.slice(colon + 1)) }
}

/** Checks a host given as an option (not parsed from text): an IP address or a host name. */
export function checkHost(host: string): void {
  if (typeof host !== 'string' || host === '')
    throw new InvalidArgumentError('host must be a non-empty string')
  if (isIP(host) !== 0) return
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}))*$/.test(host)) {
    throw new InvalidArgumentError(`${JSON.stringify(host)} is neither an IP address nor a host name`)
  }
}

/** A TCP port 0..65535 (0: any free port). */
export function checkPort(port: string | number): number {
  const value = typeof port === 'string' ? (/^\d{1,5}$/.test(port) ? Number(port) : Number.NaN) : port
  if (!Number.isInteger(value) || value < 0 || value > 65_535) {
    throw new InvalidArgumentError(`port ${JSON.stringify(port)} is not an integer from 0 to 65535`)
  }
  return value
}

/**
 * Whether binding `host` serves this machine only: 127.0.0.0/8, ::1 and `localhost`. A wildcard (0.0.0.0,
 * ::) or any other address is reachable from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true
  if (isIP(host) === 4) return host.split('.')[0] === '127'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)
  return mapped !== null && mapped[1].split('.')[0] === '127'
}

/** `http://host:port/`, brackets around IPv6. */
export function urlOf(host: string, port: number): string {
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}/`
}
