import type { ComponentLogger, PeerId, PeerStore } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { NetConnectionManager, NetRegistrar } from '../net/components.ts'
import type { IdentityEvents } from '../security/identity-protocol.ts'
import type { ResolvedSecurity } from '../security/options.ts'
import type { RaftStorage } from '../storage/index.ts'
import type { Scheduler } from '../time/index.ts'
import type { ServiceOptions } from './options.ts'

/** What the service needs from libp2p; libp2p's own `components` fit as they are. */
export interface ConclaveComponents {
  peerId: PeerId
  registrar: NetRegistrar
  connectionManager: NetConnectionManager & {
    openConnection(peer: Multiaddr | PeerId, options?: { signal?: AbortSignal }): Promise<unknown>
    /** Needed by SPIFFE identities to close the connections of refused peers. */
    closeConnections?(peer: PeerId): Promise<void>
  }
  peerStore: Pick<PeerStore, 'merge'>
  addressManager: { getAddresses(): Multiaddr[] }
  logger: ComponentLogger
  /** libp2p's event bus: SPIFFE identities authenticate peers as connections open and forget them as they close. */
  events?: IdentityEvents
}

/** Internal: createAgent opens the storage first (it holds the peer key) and hands it over. */
export interface ServiceInit extends ServiceOptions {
  storage?: RaftStorage
  random?: () => number
  /** `security`, loaded and checked by the factory (so that a bad file fails at once). */
  resolvedSecurity?: ResolvedSecurity
  /** The clock and timers of the parts that take one (tests and simulators pass a virtual one). */
  scheduler?: Scheduler
}
