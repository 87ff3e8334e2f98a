/**
 * Who gossipsub may hand messages to: nothing readable before the identity exchange completes.
 *
 * Gossipsub sends every publish to each peer subscribed to its topic as soon as the peer's subscription
 * arrives, which is before an agent with SPIFFE identities knows who the peer is: an outsider that connected
 * and subscribed read a member's record from SWIM gossip during the identity grace window. An agent says
 * here which peers it admits (`set`); gossipsub's application score of any other peer is
 * `UNADMITTED_SCORE`, below gossipsub's publish and gossip thresholds (no publish, no relay, no IHAVE, no
 * IWANT answered, no mesh), and above its graylist threshold, so the peer's own control messages (its
 * subscriptions) are still read and gossip flows as soon as it is admitted (within gossipsub's score cache,
 * one heartbeat). With nothing set (security off), every peer is admitted.
 */

/** Gossipsub's application-specific score of a peer not admitted, with `appSpecificWeight` 1. */
export const UNADMITTED_SCORE = -60

/** Per node: the admission rule gossipsub's score consults. */
export class GossipAdmission {
  private admits: ((peer: string) => boolean) | undefined

  /** Admits only the peers `admits` accepts, from now on. */
  set(admits: (peer: string) => boolean): void {
    this.admits = admits
  }

  /** Whether `peer` may be handed gossip. */
  admitted(peer: string): boolean {
    return this.admits === undefined || this.admits(peer)
  }

  /** Gossipsub's `appSpecificScore`. */
  score(peer: string): number {
    return this.admitted(peer) ? 0 : UNADMITTED_SCORE
  }
}

/** The node's `GossipAdmission` among libp2p components (`gossipAdmission`), if it has one. */
export function gossipAdmissionOf(components: object): GossipAdmission | undefined {
  try {
    // libp2p's components throw for a service they do not have.
    const service = (components as Record<string, unknown>).gossipAdmission
    return service instanceof GossipAdmission ? service : undefined
  } catch {
    return undefined
  }
}
