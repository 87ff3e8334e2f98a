import { NotLeaderError } from '../../raft/errors.ts'
import { commandAction } from '../../security/actions.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import type { Command } from '../../state/index.ts'
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
  authorization: Pick<Authorization, 'requireMember' | 'authorizeForwarded'>
  security: Pick<ConclaveSecurity, 'enabled'>
  scheduler: Scheduler
  /** What each member may forward per second, per right (lock operations). */
  rightRates: Pick<RightRates, 'take'>
  /** Throws `UnsupportedVersionError` for a command above the cluster version (`cluster-version.ts`). */
  admitCommand(command: Command): void
}

/**
 * A command forwarded to this agent as leader: only from a member of the configuration, and with SPIFFE
 * identities, only what the sender's policy allows, acting only for itself (its own agent id, sessions
 * and SPIFFE ID). The leader check comes first: only the leader's configuration is sure to be the newest.
 */
export function forwardHandler(
  init: ForwardingInit,
): (request: Uint8Array, from: string) => Promise<Uint8Array> {
  const { selfId, leader, host, authorization, security } = init
  return async (request, from) => {
    if (leader.leader !== selfId) throw new NotLeaderError(leader.leader)
    authorization.requireMember(from, 'propose')
    // The Raft core then tells `from` of the commit through its peers.
    const context = {
      selfId,
      leader: () => leader.leader,
      scheduler: init.scheduler,
      proposeLocal: (data: Uint8Array) => host.proposeLocal(data, from),
      admitCommand: init.admitCommand,
    }
    return serveForward(context, request, async envelope => {
      await init.rightRates.take(from, commandAction(envelope.command))
      if (security.enabled) await authorization.authorizeForwarded(envelope, from)
    })
  }
}
