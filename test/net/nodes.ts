/** Real libp2p nodes for the net tests. */

import type { Libp2p } from '@libp2p/interface'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { type RaftTransport, type RaftTransportInit, raftTransport } from '../../src/net/raft-transport.ts'
import { type Rpc, type RpcInit, rpc } from '../../src/net/rpc.ts'

export type TestNode = Libp2p<ConclaveServices & { raft: RaftTransport; rpc: Rpc }>

export interface TestNodeOptions {
  transport?: 'tcp' | 'memory'
  raft?: RaftTransportInit
  rpc?: RpcInit
}

export async function createTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  return createConclaveLibp2p({
    transport: options.transport ?? 'memory',
    services: { raft: raftTransport(options.raft), rpc: rpc(options.rpc) },
  })
}

/** Puts every node's addresses in every other node's peer store, as the agent does. */
export async function introduce(nodes: TestNode[]): Promise<void> {
  for (const node of nodes) {
    for (const other of nodes) {
      if (other !== node) await node.peerStore.merge(other.peerId, { multiaddrs: other.getMultiaddrs() })
    }
  }
}

/** Two nodes that know each other's addresses (`server` options default to `caller`'s), added to `started`. */
export async function introducedPair(
  started: TestNode[],
  caller: TestNodeOptions = {},
  server: TestNodeOptions = caller,
): Promise<[TestNode, TestNode]> {
  const a = await createTestNode(caller)
  const b = await createTestNode(server)
  started.push(a, b)
  await introduce([a, b])
  return [a, b]
}

/** Resolves once `check` holds, polling; rejects after `timeoutMs` with `what`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
