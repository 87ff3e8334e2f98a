/**
 * The security of one agent, in one object the service owns: the identity protocol (when SPIFFE identities
 * are on) and the gate its protocol handlers ask. With identities off, the gate is open and `start`/`stop`
 * do nothing.
 */

import { type Gate, OPEN_GATE, SpiffeGate } from './gate.ts'
import { type IdentityComponents, IdentityService } from './identity-protocol.ts'
import type { ResolvedSecurity, SecurityRefusal } from './options.ts'

export class ConclaveSecurity {
  readonly gate: Gate
  /** Undefined when SPIFFE identities are off. */
  readonly identity: IdentityService | undefined
  private readonly resolved: ResolvedSecurity | undefined
  private report: (refusal: SecurityRefusal) => void = () => {}

  constructor(
    components: IdentityComponents,
    resolved: ResolvedSecurity | undefined,
    hooks: { onRefusal?: (refusal: SecurityRefusal) => void; now?: () => number } = {},
  ) {
    this.resolved = resolved
    if (resolved === undefined) {
      this.identity = undefined
      this.gate = OPEN_GATE
      return
    }
    const log = components.logger.forComponent('conclave:security')
    const listeners = [resolved.onRefusal, hooks.onRefusal].filter(listener => listener !== undefined)
    const report = (refusal: SecurityRefusal): void => {
      for (const listener of listeners) {
        try {
          listener(refusal)
        } catch (err) {
          log.error('onRefusal threw - %e', err)
        }
      }
    }
    this.report = report
    this.identity = new IdentityService(components, {
      svid: resolved.svid,
      bundles: resolved.bundles,
      timeoutMs: resolved.identityTimeoutMs,
      closeUnauthenticated: resolved.closeUnauthenticated,
      now: hooks.now,
    })
    this.identity.onFailure((peer, error) =>
      report({
        peer,
        action: undefined,
        reason: `identity not established (${error.reason}): ${error.message}`,
      }),
    )
    this.gate = new SpiffeGate({
      identity: this.identity,
      policy: resolved.policy,
      log,
      onRefusal: (peer, action, reason) => report({ peer, action, reason }),
    })
  }

  /** Whether SPIFFE identities are on. */
  get enabled(): boolean {
    return this.resolved !== undefined
  }

  /** This agent's SPIFFE ID, when identities are on. */
  get spiffeId(): string | undefined {
    return this.resolved?.svid.spiffeId.id
  }

  /** Reports a refusal the gate did not make itself (this agent's own call, a non-member). */
  refused(refusal: SecurityRefusal): void {
    this.report(refusal)
  }

  async start(): Promise<void> {
    await this.identity?.start()
  }

  async stop(): Promise<void> {
    await this.identity?.stop()
  }
}
