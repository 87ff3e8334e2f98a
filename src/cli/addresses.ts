/**
 * Addresses on the command line: `--listen`, `--bootstrap` and `--peer` checked before anything listens or
 * dials, each mistake a `UsageError` naming the option; why a listen address could not be bound; and which
 * of an agent's addresses to show others.
 */

import { createServer } from 'node:net'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { UsageError } from './args.ts'

/** `--option value` as a multiaddr; `host:port` gets the multiaddr it probably means as a hint. */
function parse(option: string, text: string): Multiaddr {
  let address: Multiaddr
  try {
    address = multiaddr(text)
  } catch {
    const hostPort = /^([\w.-]+):(\d+)$/.exec(text)
    const hint =
      hostPort === null
        ? ' (e.g. /ip4/127.0.0.1/tcp/7131)'
        : ` (did you mean /${/^[\d.]+$/.test(hostPort[1]) ? 'ip4' : 'dns'}/${hostPort[1]}/tcp/${hostPort[2]}?)`
    throw new UsageError(`--${option} ${text} is not a multiaddr${hint}`)
  }
  // The parser takes any text after /p2p/; dialing it would fail deep in libp2p with a multibase message.
  for (const component of address.getComponents()) {
    if (component.name !== 'p2p') continue
    try {
      peerIdFromString(component.value ?? '')
    } catch {
      throw new UsageError(`--${option} ${text}: ${component.value ?? '""'} is not a peer id`)
    }
  }
  return address
}

function has(address: Multiaddr, protocol: string): boolean {
  return address.getComponents().some(component => component.name === protocol)
}

/** A `--listen` address: a TCP multiaddr, without a peer id (the agent's own is added). */
export function checkListenAddress(text: string): Multiaddr {
  const address = parse('listen', text)
  if (!has(address, 'tcp'))
    throw new UsageError(`--listen ${text}: not a TCP address (e.g. /ip4/0.0.0.0/tcp/7131)`)
  if (has(address, 'p2p'))
    throw new UsageError(`--listen ${text}: drop the /p2p/ part, the agent adds its own`)
  return address
}

/**
 * An agent to dial (`--bootstrap`, `--peer`): a multiaddr, with a valid peer id if it names one, and
 * naming one if `needsPeerId` (joining checks the member's key).
 */
export function checkAgentAddress(option: string, text: string, needsPeerId: boolean): Multiaddr {
  const address = parse(option, text)
  if (needsPeerId && !has(address, 'p2p')) {
    throw new UsageError(`--${option} ${text}: add the agent's /p2p/<peer id>, as it prints it`)
  }
  return address
}

/**
 * Why the TCP address `text` cannot be listened on, e.g. `address already in use`; undefined if it can
 * (or is not a plain IP address and port). Binds and closes at once: asked only after a listen failed.
 */
export async function listenFailure(text: string): Promise<string | undefined> {
  const options = multiaddr(text).getComponents()
  const host = options.find(component => component.name === 'ip4' || component.name === 'ip6')?.value
  const port = Number(options.find(component => component.name === 'tcp')?.value)
  if (host === undefined || !Number.isInteger(port)) return undefined
  return new Promise(resolve => {
    const server = createServer()
    server.once('error', (err: NodeJS.ErrnoException) => resolve(describeListenError(err)))
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)))
  })
}

function describeListenError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use (EADDRINUSE): another process listens on it'
    case 'EADDRNOTAVAIL':
      return 'no interface of this host has that address (EADDRNOTAVAIL)'
    case 'EACCES':
      return 'permission denied (EACCES): ports below 1024 need privileges'
    default:
      return err.code ?? err.message
  }
}

const LOOPBACK = /^\/(ip4\/127\.|ip6\/::1\/|dns4?\/localhost\/|dns6?\/localhost\/)/

/**
 * The addresses to give others for joining: every address that is not loopback, when the agent has any
 * (it listens on a wildcard or a public interface); otherwise its loopback ones, reachable from this host.
 */
export function joinAddresses(addrs: readonly string[]): string[] {
  const external = addrs.filter(address => !LOOPBACK.test(address))
  return external.length > 0 ? external : [...addrs]
}
