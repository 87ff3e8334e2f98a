import type { PeerStore } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError } from '../../errors.ts'
import { NotLeaderError } from '../../raft/errors.ts'
import type { Gate } from '../../security/gate.ts'
import type { MemberGate } from '../../security/member-gate.ts'
import type { LeaderPort, RunnerPort } from '../node/port.ts'
import { type AdminCall, encodeAdmin, parseAdmin, parseBootstrap } from './admin-protocol.ts'
import type { Authorization } from './authorization.ts'
import type { KeepAliveServer } from './keep-alive.ts'
import type { Voters } from './voters.ts'

export interface AdminServerInit {
  selfId: string
  runner: RunnerPort
  leader: LeaderPort
  clusterId(): string | undefined
  memberGate: Pick<MemberGate, 'isMember'>
  gate: Pick<Gate, 'require'>
  authorization: Pick<Authorization, 'authorizeAdmin'>
  voters: Pick<Voters, 'changeConfig' | 'adding'>
  peerStore: Pick<PeerStore, 'merge'>
  admin: AdminCall
  /** The leader's keep-alive answers (its lessor). */
  keepAlives: Pick<KeepAliveServer, 'serve'>
  /** The highest command-set version this agent supports. */
  commandSetVersion: number
  /** Most replicas (voters and standbys) the leader keeps; a joiner beyond them is a member. Default: no limit. */
  replicaLimit?(): number
  /** The leader let `agentId` in as a member. */
  admitMember?(agentId: string): void
}

/**
 * The answering side of the admin protocol: a member passes join, remove and transfer requests on to the
 * leader, which carries them out as configuration changes; any member answers whether a peer is in its
 * configuration. Keep-alives are answered by the leader alone, never passed on: a non-leader redirects.
 */
export class AdminServer {
  private readonly init: AdminServerInit
  /** Joiners being added as replicas: counted against the limit until their change commits. */

  constructor(init: AdminServerInit) {
    this.init = init
  }

  async serve(request: Uint8Array, from: string): Promise<Uint8Array> {
    const { selfId, runner: runnerPort, leader: tracker, authorization, memberGate, gate, voters } = this.init
    const parsed = parseAdmin(request)
    // A member (no log) passes a join on to the leader, so that joiners may bootstrap from any agent.
    if (runnerPort.current() === undefined && parsed.op === 'join' && tracker.leader !== '') {
      await authorization.authorizeAdmin(parsed, from)
      return encodeAdmin(await this.init.admin(tracker.leader, parsed))
    }
    // Every hop checks its sender; this agent's own requests (leave on the leader) are its own business.
    if (parsed.op === 'keepAlive') {
      if (from !== selfId) await authorization.authorizeAdmin(parsed, from)
      const keepAlive = await this.init.keepAlives.serve(parsed.sessionId, from)
      return encodeAdmin({ clusterId: this.init.clusterId() ?? '', keepAlive })
    }
    const runner = runnerPort.require()
    if (from !== selfId) await authorization.authorizeAdmin(parsed, from)
    if (parsed.op === 'version') {
      return encodeAdmin({ clusterId: this.init.clusterId() ?? '', version: this.init.commandSetVersion })
    }
    if (parsed.op === 'member') {
      return encodeAdmin({
        clusterId: this.init.clusterId() ?? '',
        member: memberGate.isMember(parsed.agentId),
      })
    }
    const leader = tracker.leader
    if (leader !== selfId) {
      // Not the leader: pass the request on, so a joining agent may contact any member.
      if (leader === '' || from === leader) throw new NotLeaderError(leader)
      return encodeAdmin(await this.init.admin(leader, parsed))
    }
    const clusterId = this.init.clusterId() ?? ''
    const config = runner.status().config
    switch (parsed.op) {
      case 'join': {
        if (parsed.clusterId !== undefined && parsed.clusterId !== clusterId) {
          throw new InvalidArgumentError(`this cluster is ${clusterId}, not ${parsed.clusterId}`)
        }
        const peerId = parseBootstrap(`${parsed.addrs[0] ?? ''}`, parsed.agentId).peerId
        await this.init.peerStore.merge(peerId, {
          multiaddrs: parsed.addrs.map(address => multiaddr(address)),
        })
        // Passed on by a member: the leader authenticates the joiner itself, so that no member can add a
        // peer that has not proved its own identity.
        if (parsed.agentId !== from) await gate.require(parsed.agentId, 'join')
        const replicas = [...config.voters, ...config.nonVoters]
        if (replicas.includes(parsed.agentId)) return encodeAdmin({ clusterId, role: 'replica' })
        // Past the voters and standbys, a joiner costs the replicas no configuration change.
        // Additions in flight (joins served at once, a standby the leader chose) count with the replicas
        // while their changes commit.
        const reserved =
          replicas.length +
          [...voters.adding].filter(id => id !== parsed.agentId && !replicas.includes(id)).length
        if (reserved >= (this.init.replicaLimit?.() ?? Number.POSITIVE_INFINITY)) {
          this.init.admitMember?.(parsed.agentId)
          return encodeAdmin({ clusterId, role: 'member', replicas })
        }
        await voters.changeConfig({ type: 'addNonVoter', node: parsed.agentId })
        return encodeAdmin({ clusterId, role: 'replica' })
      }
      case 'remove':
        if (config.voters.includes(parsed.agentId))
          await voters.changeConfig({ type: 'removeVoter', node: parsed.agentId })
        else if (config.nonVoters.includes(parsed.agentId)) {
          await voters.changeConfig({ type: 'removeNonVoter', node: parsed.agentId })
        }
        break
      case 'transfer':
        if (parsed.to !== selfId) await gate.require(parsed.to, 'vote')
        runner.transferLeadership(parsed.to)
        break
    }
    return encodeAdmin({ clusterId })
  }
}
