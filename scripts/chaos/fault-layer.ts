/**
 * The fault-injecting layer inside one agent process: how the chaos suite and the simulation partition
 * agents that run on one machine, without network namespaces or root.
 *
 * - `deny`: a two-way cut. The agent's connection gater refuses every connection to or from these peers
 *   (dials, inbound and outbound upgrades), and the connections that already exist are closed (a gater is
 *   asked only when a connection is set up). The other side is told the same, so neither can redial.
 * - `dropOutbound`: a one-way cut. This agent opens no stream to these peers (Raft messages, forwarded
 *   proposals, admin and SWIM RPCs, gossip), and its open outbound streams to them are aborted; connections
 *   stay up, so the peers' own streams to this agent still deliver. Every conclave protocol sends each
 *   direction on the sender's own stream (Raft) or makes the caller open the stream (RPC), so this is an
 *   exact one-way partition for Raft; only replies on streams the peer opened still flow back.
 *
 * Heal = both lists empty. Redials then happen on the transports' own backoff (at most 2 s).
 */
import type { Connection, ConnectionGater, Libp2p, PeerId } from '@libp2p/interface'

/** The fault lists of one agent, by peer id. */
export interface FaultRules {
  deny: string[]
  dropOutbound: string[]
}

const FAULT = 'chaos: link cut by the fault layer'

export class FaultLayer {
  private denied = new Set<string>()
  private dropped = new Set<string>()
  private node?: Libp2p
  private readonly patched = new WeakSet<Connection>()

  /** Pass as `connectionGater` to `createAgent`. */
  readonly gater: ConnectionGater = {
    denyDialPeer: peer => this.denied.has(peer.toString()),
    denyInboundEncryptedConnection: peer => this.denied.has(peer.toString()),
    denyOutboundEncryptedConnection: peer => this.denied.has(peer.toString()),
    denyInboundUpgradedConnection: peer => this.denied.has(peer.toString()),
    denyOutboundUpgradedConnection: peer => this.denied.has(peer.toString()),
  }

  /** Hooks stream opening on the agent's node: every connection, present and future, checks `dropOutbound`. */
  attach(node: Libp2p): void {
    this.node = node
    for (const connection of node.getConnections()) this.patch(connection)
    node.addEventListener('connection:open', event => this.patch(event.detail))
  }

  rules(): FaultRules {
    return { deny: [...this.denied], dropOutbound: [...this.dropped] }
  }

  /** Replaces both lists and cuts what they name at once. */
  async apply(rules: FaultRules): Promise<void> {
    this.denied = new Set(rules.deny)
    this.dropped = new Set(rules.dropOutbound)
    const node = this.node
    if (node === undefined) return
    const closing: Promise<void>[] = []
    for (const connection of node.getConnections()) {
      const peer = connection.remotePeer.toString()
      if (this.denied.has(peer)) {
        closing.push(connection.close().catch(() => connection.abort(new Error(FAULT))))
      } else if (this.dropped.has(peer)) {
        this.abortOutbound(connection)
      }
    }
    await Promise.all(closing)
  }

  private patch(connection: Connection): void {
    if (this.patched.has(connection)) return
    this.patched.add(connection)
    const open = connection.newStream.bind(connection)
    const peer: PeerId = connection.remotePeer
    connection.newStream = (protocols, options) => {
      const id = peer.toString()
      if (this.dropped.has(id) || this.denied.has(id)) return Promise.reject(new Error(FAULT))
      return open(protocols, options)
    }
    // Streams opened before this hook saw the connection (other listeners of the same event run first).
    if (this.dropped.has(peer.toString())) this.abortOutbound(connection)
  }

  private abortOutbound(connection: Connection): void {
    for (const stream of connection.streams) {
      if (stream.direction === 'outbound') stream.abort(new Error(FAULT))
    }
  }
}
