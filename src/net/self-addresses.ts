/**
 * This node's announced addresses, worked out again only when libp2p says they changed or the last answer has
 * grown old. libp2p's `getAddresses()` computes them on every call (each listener's addresses, wildcards
 * expanded over the interfaces, filtered, the peer id appended), and the membership's refresh asks for them
 * every probe period: about 3 % of an idle member's busy time for an answer that almost never changes.
 *
 * libp2p reports its own changes (`self:peer:update`: listening, observed and confirmed addresses;
 * `transport:listening` and `transport:close`); what it does not report (an interface gaining an address
 * under a wildcard listener) is picked up within `maxAgeMs`.
 */

import type { Libp2pEvents, TypedEventTarget } from '@libp2p/interface'

/** The events that say the addresses may have changed. */
const CHANGES = ['self:peer:update', 'transport:listening', 'transport:close'] as const

/** Default bound on how stale the answer may be when no event said anything. */
export const SELF_ADDRESSES_MAX_AGE_MS = 30_000

export interface SelfAddressesInit<T> {
  /** The computation to spare (libp2p's `addressManager.getAddresses()`). */
  source: () => T[]
  /** libp2p's event bus; without it, only the age bound applies. */
  events?: Pick<TypedEventTarget<Libp2pEvents>, 'addEventListener' | 'removeEventListener'>
  /** Monotonic milliseconds (a `Scheduler`'s `now`). */
  clock: () => number
  /** Default `SELF_ADDRESSES_MAX_AGE_MS`. */
  maxAgeMs?: number
}

/** A cached `source()`: `get()` answers the same array until an event or the age bound calls for a new one. */
export class SelfAddresses<T> {
  private readonly init: SelfAddressesInit<T>
  private readonly maxAgeMs: number
  private cached: T[] | undefined
  private computedAt = Number.NEGATIVE_INFINITY
  private readonly stale = (): void => {
    this.cached = undefined
  }

  constructor(init: SelfAddressesInit<T>) {
    this.maxAgeMs = init.maxAgeMs ?? SELF_ADDRESSES_MAX_AGE_MS
    if (!(this.maxAgeMs >= 0)) throw new RangeError(`maxAgeMs must be >= 0, got ${this.maxAgeMs}`)
    this.init = init
    for (const type of CHANGES) init.events?.addEventListener(type, this.stale)
  }

  /** The addresses (the caller must not change the array). */
  get(): T[] {
    const now = this.init.clock()
    if (this.cached === undefined || now - this.computedAt >= this.maxAgeMs) {
      this.cached = this.init.source()
      this.computedAt = now
    }
    return this.cached
  }

  /** Stops listening to libp2p's events. */
  close(): void {
    for (const type of CHANGES) this.init.events?.removeEventListener(type, this.stale)
    this.cached = undefined
  }
}
