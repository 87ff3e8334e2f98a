/**
 * Request rates per right: how many commands of one kind (by the policy action they need) one member may
 * forward to the leader per second. The request rate of the RPC layer (25,000/s) bounds a peer's traffic,
 * not what each command costs the cluster: a member sending 2,500 lock acquisitions a second filled the
 * leader's log and raised everyone else's write p50 from 1.5 ms to 100-200 ms. Over its rate, a command
 * waits at the leader until its sender's bucket has a token again: the wait holds one of the few requests
 * the sender's stream may have running (`Rpc`'s `maxConcurrentRequests`), so the flood backs up at the
 * sender, and only its own calls slow down. (Refusing instead made the sender retry every few hundred ms:
 * thousands of refused requests a second, which cost the leader more than the locks.) Holds with and
 * without `security`.
 */

import { checkRateLimit, PeerRateLimiter, type RateLimit } from '../../net/rate-limit.ts'
import type { Action } from '../../security/policy.ts'
import type { Scheduler } from '../../time/scheduler.ts'
import { sleep } from '../../time/sleep.ts'

/**
 * Defaults: lock operations (acquire, extend, release, campaign, resign) 1,000/s per member, bursts of
 * 1,000: above conclave's lock benchmark (about 230 lock-and-unlock pairs a second through one agent).
 * Lower it (`rateLimits.rights.lock`) to bound what one member's locks may cost the others.
 */
export const DEFAULT_RIGHT_RATES: Readonly<Partial<Record<Action, Required<RateLimit>>>> = Object.freeze({
  lock: Object.freeze({ perSecond: 1_000, burst: 1_000 }),
})

/** One token bucket per member and rate-limited right. */
export class RightRates {
  private readonly limiters = new Map<Action, PeerRateLimiter>()

  private readonly scheduler: Scheduler

  constructor(scheduler: Scheduler, overrides: Partial<Record<Action, RateLimit>> = {}) {
    this.scheduler = scheduler
    for (const [action, fallback] of Object.entries(DEFAULT_RIGHT_RATES) as [Action, RateLimit][]) {
      this.limiters.set(
        action,
        new PeerRateLimiter(checkRateLimit(overrides[action], fallback), () => scheduler.now()),
      )
    }
  }

  /** Takes one token of `peer` for `action`, waiting until its bucket has one. */
  async take(peer: string, action: Action): Promise<void> {
    const limiter = this.limiters.get(action)
    if (limiter === undefined) return
    while (!limiter.take(peer)) await sleep(this.scheduler, Math.max(1, limiter.waitMs(peer)))
  }
}
