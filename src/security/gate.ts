/**
 * The gate every conclave protocol handler asks before it acts on a peer's message: is this peer someone
 * (a verified SPIFFE ID), and may that someone do this action? A peer not yet authenticated is
 * authenticated first (the identity exchange runs, or an exchange under way is awaited). Every refusal is
 * logged with its reason (once per peer, action and reason per `logIntervalMs`, so a refused peer that
 * keeps sending does not flood the log).
 */

import type { Logger } from '@libp2p/interface'
import type { Command } from '../state/commands.ts'
import type { Scheduler } from '../time/scheduler.ts'
import { commandAction, refuseCommand } from './actions.ts'
import { UnauthorizedError } from './errors.ts'
import type { IdentityService } from './identity-protocol.ts'
import type { Action, AuthorizationPolicy } from './policy.ts'

/** The gate's answer. `spiffeId` is undefined only from the open gate (security off). */
export type GateVerdict = { ok: true; spiffeId: string | undefined } | { ok: false; reason: string }

export interface Gate {
  /** Authenticates `peer` if needed, then applies the policy. Never rejects. */
  check(peer: string, action: Action, options?: { signal?: AbortSignal }): Promise<GateVerdict>
  /** The verdict from what is already known, or undefined when `peer` must be authenticated first. */
  peek(peer: string, action: Action): GateVerdict | undefined
  /**
   * For hot paths (every Raft message): `true` at once when the cached verdict allows, else a promise of
   * the verdict's `ok`. Refusals are logged.
   */
  admit(peer: string, action: Action): true | Promise<boolean>
  /**
   * `check` for a command forwarded by `peer`: its action (`commandAction`), and that it acts only for
   * `peer` itself: its agent id, its session (when `sessionOwner` tells whose a session is) and, in a
   * registration, its SPIFFE ID (`refuseCommand`). Never rejects.
   */
  checkCommand(
    peer: string,
    command: Command,
    sessionOwner?: (sessionId: string) => string | undefined,
  ): Promise<GateVerdict>
  /** Like `check`, but resolves to the SPIFFE ID or rejects with `UnauthorizedError` (for RPC handlers). */
  require(peer: string, action: Action, options?: { signal?: AbortSignal }): Promise<string | undefined>
  /**
   * Whether `peer` holds a valid identity at all, whatever the policy allows it (authenticating it if
   * needed): for requests no action covers, such as reads. Never rejects.
   */
  identify(peer: string, options?: { signal?: AbortSignal }): Promise<GateVerdict>
  /** Whether this agent's own identity allows `action` (checked before local operations). */
  allowsSelf(action: Action): boolean
  /** The verified SPIFFE ID of `peer`, if known. */
  spiffeIdOf(peer: string): string | undefined
}

export interface SpiffeGateInit {
  identity: Pick<IdentityService, 'authenticate' | 'identity' | 'failure' | 'spiffeId'>
  policy: AuthorizationPolicy
  log: Logger
  /** Called with every refusal, for metrics or an audit log. */
  onRefusal?: (peer: string, action: Action, reason: string) => void
  /** Least interval between two log lines for the same refusal. Default 10 s. */
  logIntervalMs?: number
  /** The clock of that interval. */
  scheduler: Scheduler
}

/** The gate of an agent with SPIFFE identities. */
export class SpiffeGate implements Gate {
  private readonly identity: SpiffeGateInit['identity']
  private readonly policy: AuthorizationPolicy
  private readonly log: Logger
  private readonly onRefusal?: SpiffeGateInit['onRefusal']
  private readonly logIntervalMs: number
  private readonly logged = new Map<string, number>()
  private readonly scheduler: Scheduler

  constructor(init: SpiffeGateInit) {
    this.identity = init.identity
    this.policy = init.policy
    this.log = init.log
    this.onRefusal = init.onRefusal
    this.logIntervalMs = init.logIntervalMs ?? 10_000
    this.scheduler = init.scheduler
  }

  peek(peer: string, action: Action): GateVerdict | undefined {
    const known = this.identity.identity(peer)
    if (known !== undefined) return this.decide(known.spiffeId, action)
    const failed = this.identity.failure(peer)
    if (failed !== undefined) return { ok: false, reason: `identity not established: ${failed.message}` }
    return undefined
  }

  async check(peer: string, action: Action, options: { signal?: AbortSignal } = {}): Promise<GateVerdict> {
    let verdict = this.peek(peer, action)
    if (verdict === undefined) {
      try {
        const identity = await this.identity.authenticate(peer, options)
        verdict = this.decide(identity.spiffeId, action)
      } catch (err) {
        verdict = { ok: false, reason: `identity not established: ${(err as Error).message}` }
      }
    }
    if (!verdict.ok) this.refused(peer, action, verdict.reason)
    return verdict
  }

  async checkCommand(
    peer: string,
    command: Command,
    sessionOwner?: (sessionId: string) => string | undefined,
  ): Promise<GateVerdict> {
    const action = commandAction(command)
    const verdict = await this.check(peer, action)
    if (!verdict.ok || verdict.spiffeId === undefined) return verdict
    const reason = refuseCommand(
      command,
      { peerId: peer, spiffeId: verdict.spiffeId },
      (spiffeId, wanted) => this.policy.authorize(spiffeId, wanted),
      sessionOwner,
    )
    if (reason === undefined) return verdict
    this.refused(peer, action, reason)
    return { ok: false, reason }
  }

  admit(peer: string, action: Action): true | Promise<boolean> {
    const verdict = this.peek(peer, action)
    if (verdict?.ok === true) return true
    if (verdict !== undefined) {
      this.refused(peer, action, verdict.reason)
      return Promise.resolve(false)
    }
    return this.check(peer, action).then(result => result.ok)
  }

  async require(
    peer: string,
    action: Action,
    options?: { signal?: AbortSignal },
  ): Promise<string | undefined> {
    const verdict = await this.check(peer, action, options)
    if (!verdict.ok) throw new UnauthorizedError(`Refused ${action} from ${peer}: ${verdict.reason}`)
    return verdict.spiffeId
  }

  async identify(peer: string, options: { signal?: AbortSignal } = {}): Promise<GateVerdict> {
    const known = this.identity.identity(peer)
    if (known !== undefined) return { ok: true, spiffeId: known.spiffeId }
    try {
      const identity = await this.identity.authenticate(peer, options)
      return { ok: true, spiffeId: identity.spiffeId }
    } catch (err) {
      // The identity service has logged and reported the failure.
      return { ok: false, reason: `identity not established: ${(err as Error).message}` }
    }
  }

  allowsSelf(action: Action): boolean {
    return this.policy.authorize(this.identity.spiffeId, action)
  }

  spiffeIdOf(peer: string): string | undefined {
    return this.identity.identity(peer)?.spiffeId
  }

  private decide(spiffeId: string, action: Action): GateVerdict {
    if (this.policy.authorize(spiffeId, action)) return { ok: true, spiffeId }
    return { ok: false, reason: `${spiffeId} may not ${action}` }
  }

  private refused(peer: string, action: Action, reason: string): void {
    this.onRefusal?.(peer, action, reason)
    const key = `${peer} ${action} ${reason}`
    const now = this.scheduler.now()
    const last = this.logged.get(key)
    if (last !== undefined && now - last < this.logIntervalMs) return
    if (this.logged.size > 10_000) this.logged.clear()
    this.logged.set(key, now)
    this.log.error('refused %s from %s: %s', action, peer, reason)
  }
}

/** The gate of an agent without SPIFFE identities: every peer that can connect may do everything. */
export const OPEN_GATE: Gate = {
  check: async () => ({ ok: true, spiffeId: undefined }),
  checkCommand: async () => ({ ok: true, spiffeId: undefined }),
  peek: () => ({ ok: true, spiffeId: undefined }),
  admit: () => true,
  require: async () => undefined,
  identify: async () => ({ ok: true, spiffeId: undefined }),
  allowsSelf: () => true,
  spiffeIdOf: () => undefined,
}
