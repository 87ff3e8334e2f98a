/**
 * The parts of a libp2p node the net layer uses. They are structural so that libp2p's own `components`
 * (as handed to a service factory) fit as they are, and tests can pass small fakes.
 */

import type {
  AbortOptions,
  ComponentLogger,
  PeerId,
  Stream,
  StreamHandler,
  StreamHandlerOptions,
} from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

/** Registers stream handlers: libp2p's `components.registrar`. */
export interface NetRegistrar {
  handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>
  unhandle(protocol: string, options?: AbortOptions): Promise<void>
}

/** Opens streams, dialling by peer id from the peer store: libp2p's `components.connectionManager`. */
export interface NetConnectionManager {
  openStream(peer: PeerId, protocol: string, options?: AbortOptions): Promise<Stream>
}

export interface NetComponents {
  registrar: NetRegistrar
  connectionManager: NetConnectionManager
  logger: ComponentLogger
  /** This node's id. When given, inbound Raft messages addressed to another node are rejected. */
  peerId?: PeerId
}

/** Parses peer id strings once and keeps them: dialling needs a `PeerId`, callers hold strings. */
export class PeerIdCache {
  private readonly ids = new Map<string, PeerId>()

  get(peer: string): PeerId {
    let id = this.ids.get(peer)
    if (id === undefined) {
      id = peerIdFromString(peer)
      this.ids.set(peer, id)
    }
    return id
  }

  delete(peer: string): void {
    this.ids.delete(peer)
  }
}
