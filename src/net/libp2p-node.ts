/**
 * The libp2p node conclave runs on: TCP (or in-process memory, for tests), Noise, Yamux, identify, ping
 * and gossipsub. Gossipsub is `@libp2p/gossipsub`, the libp2p team's build for libp2p 3:
 * `@chainsafe/libp2p-gossipsub` 14 targets libp2p 2 and, on libp2p 3, delivers nothing.
 */

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type GossipSub, type GossipsubOpts, gossipsub } from '@libp2p/gossipsub'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey, ServiceMap } from '@libp2p/interface'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2pOptions, type ServiceFactoryMap } from 'libp2p'
import { pskProtector } from '../security/pnet.ts'

/** The services every conclave node has (a type alias, so it satisfies libp2p's `ServiceMap`). */
export type ConclaveServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

export interface ConclaveLibp2pOptions<S extends ServiceMap = ServiceMap> {
  /** Addresses to listen on. Default: one ephemeral loopback TCP port, or a fresh `/memory/` address. */
  listen?: string[]
  /** The node's identity; a new Ed25519 key when absent. */
  privateKey?: PrivateKey
  /** `memory` connects only nodes in this process, with the same security and muxing: for fast tests. */
  transport?: 'tcp' | 'memory'
  /** More services, next to identify, ping and pubsub. */
  services?: ServiceFactoryMap<S>
  /** Gossipsub tuning. Defaults keep gossipsub's own, except that a node's own messages are not echoed back. */
  gossipsub?: Partial<GossipsubOpts>
  /** Denies connections by rule; a test partition also needs the existing connections closed. */
  connectionGater?: ConnectionGater
  /**
   * Private network: a pre-shared key (key-file bytes, or the file's path; see `src/security/pnet.ts`).
   * Nodes without the same key cannot connect to this one.
   */
  psk?: Uint8Array | string
}

/** Builds and starts a libp2p 3 node for conclave. */
export async function createConclaveLibp2p<S extends ServiceMap = ServiceMap>(
  options: ConclaveLibp2pOptions<S> = {},
): Promise<Libp2p<ConclaveServices & S>> {
  const transportKind = options.transport ?? 'tcp'
  let transports: NonNullable<Libp2pOptions['transports']>
  let listen = options.listen
  if (transportKind === 'memory') {
    // A dev dependency, so it is loaded only when asked for.
    const { memory } = await import('@libp2p/memory')
    transports = [memory()]
    listen ??= [`/memory/${crypto.randomUUID()}`]
  } else if (transportKind === 'tcp') {
    transports = [tcp()]
    listen ??= ['/ip4/127.0.0.1/tcp/0']
  } else {
    throw new TypeError(`Unknown transport ${String(transportKind)}`)
  }
  const services = {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({ emitSelf: false, ...options.gossipsub }),
    ...options.services,
  } as ServiceFactoryMap<ConclaveServices & S>
  const connectionProtector = options.psk === undefined ? undefined : await pskProtector(options.psk)
  return createLibp2p<ConclaveServices & S>({
    privateKey: options.privateKey,
    addresses: { listen },
    transports,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: options.connectionGater,
    connectionProtector,
    services,
    start: true,
  })
}
