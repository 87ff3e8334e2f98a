import { NotLeaderError } from '../../raft/errors.ts'
import { commandAction } from '../../security/actions.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import type { Scheduler } from '../../time/index.ts'
import type { LeaderPort } from '../node/port.ts'
import { serveForward } from '../node/proposer.ts'
import type { RaftHost } from '../node/raft-host.ts'
import type { Authorization } from './authorization.ts'
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
      proposeLocal: (data: Uint8Array) => host.proposeLocal(data, from),
    }
    return serveForward(context, request, async envelope => {
      await init.rightRates.take(from, commandAction(envelope.command))
      if (security.enabled) await authorization.authorizeForwarded(envelope, from)
    })
  }
}
