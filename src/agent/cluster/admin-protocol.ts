import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError } from '../../errors.ts'
import type { Rpc } from '../../net/rpc.ts'
import type { Scheduler } from '../../time/index.ts'
import { deadlineSignal } from '../node/abort.ts'
import { localError } from '../node/remote-errors.ts'
import { type KeepAliveAnswer, parseKeepAliveAnswer } from './keep-alive-answer.ts'

/** Cluster administration between agents: joining, leaving, leadership transfer. */
export const ADMIN_PROTOCOL = '/conclave/admin/1.0.0'

export type AdminRequest =
  | { op: 'join'; agentId: string; addrs: string[]; clusterId?: string }
  | { op: 'remove'; agentId: string }
  | { op: 'transfer'; to: string }
  /** Whether `agentId` is in the answering member's configuration (asked by a member whose log lags). */
  | { op: 'member'; agentId: string }
  /** Renew a session of the sender's at the leader's lessor (off the log): answered in `keepAlive`. */
  | { op: 'keepAlive'; sessionId: string }
  /** The highest command-set version the answering agent supports (asked by the leader, for upgrades). */
  | { op: 'version' }

export interface AdminResponse {
  clusterId: string
  member?: boolean
  /** The answer to a `keepAlive` request. */
  keepAlive?: KeepAliveAnswer
  /** Answer to `version`; an agent that predates it refuses the request (it supports the base version). */
  version?: number
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

/** A keep-alive sent to `peer` (the leader, as the sender sees it): its answer, checked for shape. */
export function keepAliveCall(
  admin: AdminCall,
  scheduler: Scheduler,
): (peer: string, sessionId: string, timeoutMs: number) => Promise<KeepAliveAnswer> {
  return async (peer, sessionId, timeoutMs) => {
    const bound = deadlineSignal(timeoutMs, [], scheduler)
    const response = await admin(peer, { op: 'keepAlive', sessionId }, bound.signal).finally(bound.cancel)
    const answer = parseKeepAliveAnswer(response.keepAlive)
    if (answer === undefined) throw new InvalidArgumentError(`${peer} gave no keep-alive answer`)
    return answer
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
      case 'keepAlive':
        if (isText(value.sessionId) && value.sessionId.length <= 256) return value as AdminRequest
        break
      case 'version':
        return { op: 'version' }
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
