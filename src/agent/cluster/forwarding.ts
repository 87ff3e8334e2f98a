import { NotLeaderError } from '../../raft/errors.ts'
import { commandAction } from '../../security/actions.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import type { Command } from '../../state/index.ts'
import type { Scheduler } from '../../time/index.ts'
import type { LeaderPort } from '../node/port.ts'
import { serveForward } from '../node/proposer.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { Authorization } from './authorization.ts'
import type { Lessor } from './lessor.ts'
import type { RightRates } from './right-rates.ts'

export interface ForwardingInit {
  selfId: string
  leader: LeaderPort
  host: Pick<RaftHost, 'proposeLocal'>
  authorization: Pick<Authorization, 'requireParticipant' | 'authorizeForwarded'>
  security: Pick<ConclaveSecurity, 'enabled'>
  scheduler: Scheduler
  /** What each member may forward per second, per right (lock operations). */
  rightRates: Pick<RightRates, 'take'>
  /**
   * The leader's lessor, which a committed `keepAlive` entry from an agent older than the lessor renews (a
   * rolling upgrade: its sessions must not lapse under a new leader); and this agent's leadership.
   */
  lessor: Pick<Lessor, 'follow' | 'current' | 'renew'>
  leaderSince(): { local: number } | undefined
  /** Throws `UnsupportedVersionError` for a command above the cluster version (`cluster-version.ts`). */
  admitCommand(command: Command): void
}

/**
 * A command forwarded to this agent as leader: only from a replica or a member agent, and with SPIFFE
 * identities, only what the sender's policy allows, acting only for itself (its own agent id, sessions
 * and SPIFFE ID). The leader check comes first: only the leader's configuration is sure to be the newest.
 */
export function forwardHandler(
  init: ForwardingInit,
): (request: Uint8Array, from: string) => Promise<Uint8Array> {
  const { selfId, leader, host, authorization, security } = init
  return async (request, from) => {
    if (leader.leader !== selfId) throw new NotLeaderError(leader.leader)
    // Members hold no log and are in no configuration: they forward everything they write.
    authorization.requireParticipant(from, 'propose')
    // The Raft core then tells `from` of the commit through its peers.
    const context = {
      selfId,
      leader: () => leader.leader,
      scheduler: init.scheduler,
      proposeLocal: (data: Uint8Array, waiter?: string) => host.proposeLocal(data, from, waiter),
      admitCommand: init.admitCommand,
    }
    let legacyKeepAlive: { sessionId: string; arrivedAt: number; leadership: object | undefined } | undefined
    const response = await serveForward(context, request, async envelope => {
      await init.rightRates.take(from, commandAction(envelope.command))
      if (security.enabled) await authorization.authorizeForwarded(envelope, from)
      if (envelope.command.type === 'keepAlive') {
        init.lessor.follow(init.leaderSince())
        const { sessionId } = envelope.command
        legacyKeepAlive = { sessionId, arrivedAt: init.scheduler.now(), leadership: init.lessor.current }
      }
    })
    // Committed in this leadership (a quorum took it after its arrival): counts as a keep-alive from then.
    if (legacyKeepAlive !== undefined) {
      const { sessionId, arrivedAt, leadership } = legacyKeepAlive
      init.lessor.renew(sessionId, arrivedAt, leadership)
    }
    return response
  }
}
