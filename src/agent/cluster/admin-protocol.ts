import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError } from '../../errors.ts'
import type { Rpc } from '../../net/rpc.ts'
import { localError } from '../node/remote-errors.ts'

/** Cluster administration between agents: joining, leaving, leadership transfer. */
export const ADMIN_PROTOCOL = '/conclave/admin/1.0.0'

export type AdminRequest =
  | { op: 'join'; agentId: string; addrs: string[]; clusterId?: string }
  | { op: 'remove'; agentId: string }
  | { op: 'transfer'; to: string }
  /** Whether `agentId` is in the answering member's configuration (asked by a member whose log lags). */
  | { op: 'member'; agentId: string }

export interface AdminResponse {
  clusterId: string
  member?: boolean
  /**
   * To a join: 'member' when the leader let the agent in without a configuration change (it holds no log;
   * `replicas` feed it), 'replica' (or absent, from older agents) when it added it to the configuration.
   */
  role?: 'member' | 'replica'
  replicas?: string[]
}

/** Sends one admin request to a peer. */
export type AdminCall = (peer: string, request: AdminRequest, signal?: AbortSignal) => Promise<AdminResponse>

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The caller's side: a peer's definite refusals come back as the typed errors they are. */
export function adminClient(rpc: Pick<Rpc, 'callRpc'>, timeoutMs: number): AdminCall {
  return async (peer, request, signal) => {
    try {
      const response = await rpc.callRpc(peer, ADMIN_PROTOCOL, encodeAdmin(request), { signal, timeoutMs })
      return JSON.parse(decoder.decode(response)) as AdminResponse
    } catch (err) {
      throw localError(err)
    }
  }
}

export function encodeAdmin(value: AdminRequest | AdminResponse): Uint8Array {
  return encoder.encode(JSON.stringify(value))
}

/** An admin request from a peer, checked for shape: anything else is an `InvalidArgumentError`. */
export function parseAdmin(request: Uint8Array): AdminRequest {
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(request))
  } catch {
    throw new InvalidArgumentError('admin request is not JSON')
  }
  const value = parsed as Record<string, unknown> | null
  const isText = (field: unknown): field is string => typeof field === 'string' && field.length > 0
  if (value !== null && typeof value === 'object') {
    switch (value.op) {
      case 'join':
        if (
          isText(value.agentId) &&
          Array.isArray(value.addrs) &&
          value.addrs.length <= 64 &&
          value.addrs.every(isText) &&
          (value.clusterId === undefined || isText(value.clusterId))
        ) {
          return value as AdminRequest
        }
        break
      case 'remove':
      case 'member':
        if (isText(value.agentId)) return value as AdminRequest
        break
      case 'transfer':
        if (isText(value.to)) return value as AdminRequest
        break
    }
  }
  throw new InvalidArgumentError('unknown or malformed admin request')
}

export function parseBootstrap(
  address: string,
  expectedPeer?: string,
): { peerId: PeerId; address: Multiaddr } {
  let parsed: Multiaddr
  try {
    parsed = multiaddr(address)
  } catch (cause) {
    throw new InvalidArgumentError(`invalid multiaddr ${address}`, { cause })
  }
  const peer = parsed.getComponents().findLast(component => component.name === 'p2p')?.value ?? expectedPeer
  if (peer === undefined) throw new InvalidArgumentError(`bootstrap address ${address} has no /p2p/<peerId>`)
  return { peerId: peerIdOf(peer), address: parsed }
}

export function peerIdOf(peer: string): PeerId {
  try {
    return peerIdFromString(peer)
  } catch (cause) {
    throw new InvalidArgumentError(`invalid peer id ${peer}`, { cause })
  }
}
