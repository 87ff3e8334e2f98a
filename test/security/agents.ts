/**
 * Agents with SPIFFE identities, and outsiders that speak conclave's protocols by hand, for the agent-level
 * security tests (test/agent/security*.test.ts). Certificates are made in memory by `pki.ts`.
 */

import type { Libp2p } from '@libp2p/interface'
import { FORWARD_PROTOCOL } from '../../src/agent/node/proposer.ts'
import { ADMIN_PROTOCOL } from '../../src/agent/service.ts'
import { type Agent, createAgent } from '../../src/index.ts'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { type RaftTransport, raftTransport } from '../../src/net/raft-transport.ts'
import { type Rpc, rpc } from '../../src/net/rpc.ts'
import type { Message } from '../../src/raft/types.ts'
import { type IdentityService, identityService } from '../../src/security/identity-protocol.ts'
import type { SecurityOptions, SecurityRefusal } from '../../src/security/options.ts'
import type { PolicyRule } from '../../src/security/policy.ts'
import type { TrustBundleSet, X509Svid } from '../../src/security/svid.ts'
import { type Command, encodeEnvelope } from '../../src/state/index.ts'
import { chainPem, type Issued, intermediateCa, leafSvid, rootCa } from './pki.ts'

export const TD = 'example.org'

/** A trust domain's root and signing CA. */
export interface TrustDomain {
  name: string
  root: Issued
  ca: Issued
}

export function trustDomain(name = TD): TrustDomain {
  const root = rootCa(name)
  return { name, root, ca: intermediateCa(root, name) }
}

/** The `security` option of an agent whose SVID is `spiffe://<td>/<path>`. */
export function securityFor(
  td: TrustDomain,
  path: string,
  options: { policy?: PolicyRule[]; refusals?: SecurityRefusal[]; leaf?: Issued } = {},
): SecurityOptions {
  const leaf = options.leaf ?? leafSvid(td.ca, `spiffe://${td.name}/${path}`)
  return {
    svid: { certificate: chainPem(leaf, td.ca), key: leaf.keyPem },
    trustBundle: td.root.pem,
    identityTimeoutMs: 2_000,
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    ...(options.refusals === undefined ? {} : { onRefusal: refusal => options.refusals!.push(refusal) }),
  }
}

export const FAST = {
  transport: 'memory',
  operationTimeoutMs: 3_000,
  voterReplaceAfterMs: 1_000,
} as const

/** Starts agents, founds a cluster with the first and has the others join it, in order. */
export async function cluster(
  created: Agent[],
  options: Parameters<typeof createAgent>[0][],
): Promise<Agent[]> {
  const started: Agent[] = []
  for (const option of options) {
    const agent = await createAgent({ ...FAST, ...option })
    created.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  return started
}

export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

export async function voters(agent: Agent): Promise<string[]> {
  return (await agent.members())
    .filter(member => member.role === 'voter')
    .map(member => member.id)
    .sort()
}

export type Outsider = Libp2p<
  ConclaveServices & { raft: RaftTransport; rpc: Rpc; identity?: IdentityService }
>

/**
 * A libp2p node that never joins but speaks Raft, forwarding and administration to agents by hand; with
 * `identity`, it also proves an SVID (which `loadSvid` need not have accepted: a rogue one).
 */
export async function outsider(identity?: { svid: X509Svid; bundles: TrustBundleSet }): Promise<Outsider> {
  return (await createConclaveLibp2p({
    transport: 'memory',
    services: {
      raft: raftTransport(),
      rpc: rpc({ defaultTimeoutMs: 3_000 }),
      ...(identity === undefined ? {} : { identity: identityService({ ...identity, retryAfterMs: 50 }) }),
    },
  })) as Outsider
}

/** Dials `agent` and remembers its addresses, so that the outsider's services can reach it by id. */
export async function reach(node: Libp2p, agent: Agent): Promise<void> {
  await node.peerStore.merge(agent.libp2p.peerId, { multiaddrs: agent.libp2p.getMultiaddrs() })
  await node.dial(agent.libp2p.peerId)
}

/** The error a remote call failed with: `remoteName` for an error the agent answered with. */
export async function failure(
  promise: Promise<unknown>,
): Promise<{ name: string; remoteName?: string; message: string }> {
  try {
    await promise
  } catch (err) {
    return err as { name: string; remoteName?: string; message: string }
  }
  throw new Error('expected a failure')
}

export function forward(node: Outsider, to: Agent, command: Command, session?: string): Promise<Uint8Array> {
  return node.services.rpc.callRpc(
    to.id,
    FORWARD_PROTOCOL,
    encodeEnvelope({ ts: 0, command, ...(session === undefined ? {} : { session, seq: 1, ackedBelow: 0 }) }),
  )
}

export function admin(node: Outsider, to: Agent, request: Record<string, unknown>): Promise<Uint8Array> {
  return node.services.rpc.callRpc(to.id, ADMIN_PROTOCOL, new TextEncoder().encode(JSON.stringify(request)))
}

/**
 * Raft messages from `from` to `to` that would depose or mislead a member if Raft took them: an append and
 * a heartbeat with a far higher term, a vote request flagged as a leadership transfer (which skips the
 * leader lease) from a candidate claiming the longest log, and a timeout-now.
 */
export function disruptive(from: string, to: string, term: number): Message[] {
  const high = term + 100
  return [
    { type: 'append', from, to, term: high, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 },
    { type: 'heartbeat', from, to, term: high, leaderCommit: 0, context: '' },
    { type: 'vote', from, to, term: high, lastLogIndex: 1e9, lastLogTerm: high, transfer: true },
    { type: 'preVote', from, to, term: high, lastLogIndex: 1e9, lastLogTerm: high, transfer: true },
    { type: 'timeoutNow', from, to, term },
  ] as Message[]
}

/** What a cluster's agents agree on, to check that nothing changed. */
export async function snapshot(
  agents: Agent[],
): Promise<{ terms: number[]; leader: string; members: string[] }> {
  return {
    terms: agents.map(agent => agent.election.term()),
    leader: (await agents[0].leader())?.id ?? '',
    members: (await agents[0].members()).map(member => `${member.id}:${member.role}`).sort(),
  }
}
