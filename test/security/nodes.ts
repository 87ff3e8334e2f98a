/** Real libp2p nodes (in-process memory transport) with the identity service, for the security tests. */

import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { type LengthPrefixedStream, lpStream } from '@libp2p/utils'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { type RaftTransport, raftTransport } from '../../src/net/raft-transport.ts'
import { type Rpc, rpc } from '../../src/net/rpc.ts'
import {
  decodeIdentityMessage,
  encodeIdentityMessage,
  type IdentityMessage,
} from '../../src/security/identity-codec.ts'
import {
  IDENTITY_PROTOCOL,
  type IdentityInit,
  type IdentityService,
  identityService,
} from '../../src/security/identity-protocol.ts'
import type { TrustBundleSet, X509Svid } from '../../src/security/svid.ts'

export type SecureNode = Libp2p<
  ConclaveServices & { identity: IdentityService; rpc: Rpc; raft: RaftTransport }
>
export type PlainNode = Libp2p<ConclaveServices>

export async function secureNode(
  svid: X509Svid,
  bundles: TrustBundleSet,
  init: Partial<IdentityInit> = {},
): Promise<SecureNode> {
  return createConclaveLibp2p({
    transport: 'memory',
    services: {
      identity: identityService({ svid, bundles, retryAfterMs: 50, ...init }),
      rpc: rpc(),
      raft: raftTransport(),
    },
  })
}

/** A node without the identity protocol: an outsider, or an attacker speaking the protocol by hand. */
export async function plainNode(): Promise<PlainNode> {
  return createConclaveLibp2p({ transport: 'memory' })
}

/** Puts every node's addresses in every other node's peer store, as the agent does. */
export async function introduce(nodes: Libp2p[]): Promise<void> {
  for (const node of nodes) {
    for (const other of nodes) {
      if (other !== node) await node.peerStore.merge(other.peerId, { multiaddrs: other.getMultiaddrs() })
    }
  }
}

/** One side of the identity protocol driven by hand. */
export class RawIdentityStream {
  readonly stream: Stream
  private readonly lp: LengthPrefixedStream<Stream>

  constructor(stream: Stream) {
    this.stream = stream
    this.lp = lpStream(stream)
  }

  static async open(from: Libp2p, to: PeerId): Promise<RawIdentityStream> {
    return new RawIdentityStream(await from.dialProtocol(to, IDENTITY_PROTOCOL))
  }

  async send(message: Partial<IdentityMessage>): Promise<void> {
    await this.lp.write(encodeIdentityMessage({ certificates: [], ...message }))
  }

  async receive(): Promise<IdentityMessage> {
    return decodeIdentityMessage((await this.lp.read({ signal: AbortSignal.timeout(5_000) })).subarray())
  }
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
