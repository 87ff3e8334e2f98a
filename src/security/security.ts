/**
 * The security of one agent, in one object the service owns: the identity protocol (when SPIFFE identities
 * are on) and the gate its protocol handlers ask. With identities off, the gate is open and `start`/`stop`
 * do nothing.
 */

import type { Logger } from '@libp2p/interface'
import { InvalidArgumentError } from '../errors.ts'
import type { Scheduler } from '../time/scheduler.ts'
import { type Gate, OPEN_GATE, SpiffeGate } from './gate.ts'
import { type IdentityComponents, IdentityService } from './identity-protocol.ts'
import {
  loadSvidMaterial,
  type ResolvedSecurity,
  type SecurityRefusal,
  type SvidRotation,
} from './options.ts'
import { SvidReloader } from './svid-reloader.ts'

export class ConclaveSecurity {
  readonly gate: Gate
  /** Undefined when SPIFFE identities are off. */
  readonly identity: IdentityService | undefined
  private readonly resolved: ResolvedSecurity | undefined
  private report: (refusal: SecurityRefusal) => void = () => {}
  private readonly now: () => number
  private readonly scheduler: Scheduler
  private log: Logger | undefined
  private reloader: SvidReloader | undefined
  /** The rotation under way: rotations run one at a time, in order. */
  private rotating: Promise<void> = Promise.resolve()

  constructor(
    components: IdentityComponents,
    resolved: ResolvedSecurity | undefined,
    hooks: {
      onRefusal?: (refusal: SecurityRefusal) => void
      /** Wall clock for certificate validity. Default: the scheduler's `wallNow`. */
      now?: () => number
      /** The agent's clocks and timers. */
      scheduler: Scheduler
    },
  ) {
    this.resolved = resolved
    const { scheduler } = hooks
    this.scheduler = scheduler
    this.now = hooks.now ?? (() => scheduler.wallNow())
    if (resolved === undefined) {
      this.identity = undefined
      this.gate = OPEN_GATE
      return
    }
    const log = components.logger.forComponent('conclave:security')
    this.log = log
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
      scheduler,
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
      scheduler,
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

  /**
   * Rotates to a renewed SVID (same SPIFFE ID) and, if given, renewed bundles: checked first (an
   * `InvalidArgumentError` changes nothing), then used for every new exchange, and proved again to every
   * authenticated peer before this resolves, so none of them drops this agent when the old SVID expires.
   */
  rotate(rotation: SvidRotation): Promise<void> {
    const run = this.rotating.then(() => this.rotateNow(rotation))
    this.rotating = run.catch(() => {})
    return run
  }

  private async rotateNow(rotation: SvidRotation): Promise<void> {
    const resolved = this.resolved
    const identity = this.identity
    if (resolved === undefined || identity === undefined) {
      throw new InvalidArgumentError('SPIFFE identities are off: there is no SVID to rotate')
    }
    const loaded = loadSvidMaterial(rotation, resolved, this.now())
    resolved.svid = loaded.svid
    resolved.bundles = loaded.bundles
    identity.setSvid(loaded.svid, loaded.bundles)
    this.log?.('rotated to an SVID valid until %s', loaded.svid.chain[0].validTo)
    await identity.refresh()
  }

  async start(): Promise<void> {
    await this.identity?.start()
    const reload = this.resolved?.reload
    if (reload !== undefined && this.reloader === undefined) {
      this.reloader = new SvidReloader(
        reload.sources,
        reload.intervalMs,
        {
          rotate: rotation => this.rotate(rotation),
          onError: err => this.log?.error('the renewed SVID files were not used - %e', err),
        },
        this.scheduler,
      )
    }
  }

  async stop(): Promise<void> {
    this.reloader?.stop()
    this.reloader = undefined
    await this.identity?.stop()
  }
}
