import type { Logger, PeerId, PeerStore } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'

/**
 * Stores the addresses a member record or the registry gives for `peer` in the peer store, so that Raft,
 * RPC and probes can dial it by id. Records whose id or addresses do not parse are passed over.
 */
export function learnAddresses(
  peerStore: Pick<PeerStore, 'merge'>,
  peer: () => PeerId,
  addrs: readonly string[],
  log: Logger,
): Promise<void> {
  if (addrs.length === 0) return Promise.resolve()
  let id: PeerId
  let multiaddrs: Multiaddr[]
  try {
    id = peer()
    multiaddrs = addrs.map(address => multiaddr(address))
  } catch {
    return Promise.resolve()
  }
  return peerStore
    .merge(id, { multiaddrs })
    .then(() => {})
    .catch(err => log('could not store addresses of %s: %e', id, err))
}
