/**
 * The security of one agent, in one object the service owns: the identity protocol (when SPIFFE identities
 * are on) and the gate its protocol handlers ask. With identities off, the gate is open and `start`/`stop`
 * do nothing.
 */

import { type Gate, OPEN_GATE, SpiffeGate } from './gate.ts'
import { type IdentityComponents, IdentityService } from './identity-protocol.ts'
import type { ResolvedSecurity } from './options.ts'
import type { Action } from './policy.ts'

export class ConclaveSecurity {
  readonly gate: Gate
  /** Undefined when SPIFFE identities are off. */
  readonly identity: IdentityService | undefined
  private readonly resolved: ResolvedSecurity | undefined

  constructor(
    components: IdentityComponents,
    resolved: ResolvedSecurity | undefined,
    hooks: { onRefusal?: (peer: string, action: Action, reason: string) => void; now?: () => number } = {},
  ) {
    this.resolved = resolved
    if (resolved === undefined) {
      this.identity = undefined
      this.gate = OPEN_GATE
      return
    }
    this.identity = new IdentityService(components, {
      svid: resolved.svid,
      bundles: resolved.bundles,
      timeoutMs: resolved.identityTimeoutMs,
      closeUnauthenticated: resolved.closeUnauthenticated,
      now: hooks.now,
    })
    this.gate = new SpiffeGate({
      identity: this.identity,
      policy: resolved.policy,
      log: components.logger.forComponent('conclave:security'),
      onRefusal: hooks.onRefusal,
    })
  }

  /** This agent's SPIFFE ID, when identities are on. */
  get spiffeId(): string | undefined {
    return this.resolved?.svid.spiffeId.id
  }

  async start(): Promise<void> {
    await this.identity?.start()
  }

  async stop(): Promise<void> {
    await this.identity?.stop()
  }
}
