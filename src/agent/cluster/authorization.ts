import { UnauthorizedError } from '../../errors.ts'
import { commandAction } from '../../security/actions.ts'
import type { MemberGate } from '../../security/member-gate.ts'
import type { Action } from '../../security/policy.ts'
import type { ConclaveSecurity } from '../../security/security.ts'
import type { Command, Envelope } from '../../state/index.ts'
import { clientOpAction } from '../api/client-protocol.ts'
import type { AdminRequest } from './admin-protocol.ts'

/** What authorization reads: who owns a session, in this agent's copy of the state. */
export interface AuthorizationInit {
  selfId: string
  security: ConclaveSecurity
  memberGate: Pick<MemberGate, 'isMember'>
  sessionOwner(sessionId: string): string | undefined
  /** Whether `peer` takes part in the cluster as a member (no log, so not in the configuration). */
  isParticipant?(peer: string): boolean
}

/**
 * Who may do what, for every door of the agent: its own calls (refused here, before any network), the
 * commands peers forward, the admin protocol, and the client protocol (the CLI). Each refusal is reported
 * to the security layer and thrown as `UnauthorizedError`.
 */
export class Authorization {
  private readonly init: AuthorizationInit

  constructor(init: AuthorizationInit) {
    this.init = init
  }

  /** This agent's own identity must allow `command`: what it may not do fails here, before any network. */
  authorizeOwn(command: Command): void {
    const action = commandAction(command)
    const { security, selfId } = this.init
    if (security.gate.allowsSelf(action)) return
    const reason = `this agent (${security.spiffeId}) may not ${action} (command ${command.type})`
    security.refused({ peer: selfId, action, reason })
    throw new UnauthorizedError(reason)
  }

  requireOwn(action: Action, what: string): void {
    const { security, selfId } = this.init
    if (security.gate.allowsSelf(action)) return
    const reason = `this agent (${security.spiffeId}) may not ${action}: it cannot ${what}`
    security.refused({ peer: selfId, action, reason })
    throw new UnauthorizedError(reason)
  }

  requireMember(peer: string, what: string): void {
    if (this.init.memberGate.isMember(peer)) return
    const reason = `${peer} is not a member of this cluster: it may not ${what}`
    this.init.security.refused({ peer, action: 'join', reason })
    throw new UnauthorizedError(reason)
  }

  /** `peer` is in the configuration or a member agent (holding no log); else as `requireMember`. */
  requireParticipant(peer: string, what: string): void {
    if (this.init.isParticipant?.(peer) === true) return
    this.requireMember(peer, what)
  }

  /** With SPIFFE identities: `from` may make this command, and numbers it only in its own session. */
  async authorizeForwarded(envelope: Envelope, from: string): Promise<void> {
    const { security, sessionOwner } = this.init
    const verdict = await security.gate.checkCommand(from, envelope.command, sessionOwner)
    if (!verdict.ok) throw new UnauthorizedError(verdict.reason)
    const owner = envelope.session === undefined ? undefined : sessionOwner(envelope.session)
    if (owner !== undefined && owner !== from) {
      const reason = `${from} may not number its commands in the session of agent ${owner}`
      security.refused({ peer: from, action: commandAction(envelope.command), reason })
      throw new UnauthorizedError(reason)
    }
  }

  /**
   * Who may ask what: anyone with `join` may ask to join for itself, and any member may pass a joiner's
   * request on (the leader then authenticates the joiner); an agent may remove itself; removing another
   * agent, moving leadership and asking about the configuration take a member (with `vote` for the first
   * two); a keep-alive takes `join`. Throws `UnauthorizedError`.
   */
  async authorizeAdmin(request: AdminRequest, from: string): Promise<void> {
    const gate = this.init.security.gate
    switch (request.op) {
      case 'join':
        await gate.require(from, 'join')
        if (request.agentId !== from) this.requireParticipant(from, 'pass on a join request')
        return
      case 'remove':
        if (request.agentId === from) {
          await gate.require(from, 'join')
          return
        }
        await gate.require(from, 'vote')
        this.requireMember(from, 'remove another agent')
        return
      case 'transfer':
        await gate.require(from, 'vote')
        this.requireMember(from, 'move leadership')
        return
      case 'member':
        await gate.require(from, 'join')
        this.requireMember(from, 'ask about the configuration')
        return
      case 'keepAlive':
        // Any agent with `join` (a member holding no log too); the leader renews only the sender's own sessions.
        await gate.require(from, 'join')
        return
      case 'version':
        // The leader asks the replicas (see `cluster-version.ts`).
        await gate.require(from, 'vote')
        this.requireMember(from, 'ask for the command-set version')
    }
  }

  /**
   * A client-protocol request (the CLI): with SPIFFE identities, the client must hold a valid SVID, and one
   * allowing the operation's action (reads need only the SVID). The agent then runs it as itself, so its
   * own policy must allow it too.
   */
  async authorizeClient(from: string, op: string): Promise<void> {
    const { security } = this.init
    if (!security.enabled) return
    const action = clientOpAction(op)
    const verdict =
      action === undefined ? await security.gate.identify(from) : await security.gate.check(from, action)
    if (!verdict.ok) throw new UnauthorizedError(`Refused ${op} from ${from}: ${verdict.reason}`)
  }

  /** Why the identity exchange with `peer` failed, either way, while that is remembered. */
  identityRefusal(peer: string): UnauthorizedError | undefined {
    const { security } = this.init
    const theirs = security.identity?.refusal(peer)
    if (theirs !== undefined) return new UnauthorizedError(`${peer} refused this agent's identity: ${theirs}`)
    const ours = security.gate.peek(peer, 'join')
    if (ours?.ok === false) return new UnauthorizedError(`${peer} is refused: ${ours.reason}`)
    return undefined
  }
}
