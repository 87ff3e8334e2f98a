/**
 * The simulator's event queue: virtual time in whole milliseconds, a ring of per-millisecond slots (O(1) to
 * schedule and to pop), FIFO within a millisecond so runs replay exactly. Events may be scheduled at most
 * `horizon` ms ahead; rarer, farther events (crashes, pauses) go through `at()`, a sorted list.
 */

const RING_BITS = 16

export class Timeline<E> {
  /** Farthest an event may be scheduled with `schedule`, in ms. */
  readonly horizon = (1 << RING_BITS) - 1
  private readonly slots: (E[] | undefined)[] = new Array(1 << RING_BITS)
  private readonly mask = (1 << RING_BITS) - 1
  private readonly far: { at: number; order: number; event: E }[] = []
  private farOrder = 0
  private current = 0

  /** The current virtual time, ms. */
  get now(): number {
    return this.current
  }

  /** Schedules `event` at `at` (an integer ms, now..now+horizon). */
  schedule(at: number, event: E): void {
    if (at < this.current || at - this.current > this.horizon || !Number.isInteger(at)) {
      throw new RangeError(`cannot schedule at ${at} (now ${this.current})`)
    }
    const index = at & this.mask
    const slot = this.slots[index]
    if (slot === undefined) this.slots[index] = [event]
    else slot.push(event)
  }

  /** Schedules `event` at any future time. */
  at(time: number, event: E): void {
    if (time < this.current || !Number.isInteger(time)) throw new RangeError(`cannot schedule at ${time}`)
    if (time - this.current <= this.horizon) {
      this.schedule(time, event)
      return
    }
    this.far.push({ at: time, order: this.farOrder++, event })
    this.far.sort((a, b) => b.at - a.at || b.order - a.order)
  }

  /**
   * Runs every event up to and including `end`, in time order, with `handle` free to schedule more.
   */
  run(end: number, handle: (event: E, now: number) => void): void {
    for (; this.current <= end; this.current++) {
      while (this.far.length > 0 && this.far[this.far.length - 1].at === this.current) {
        handle(this.far.pop()!.event, this.current)
      }
      const index = this.current & this.mask
      const slot = this.slots[index]
      if (slot === undefined) continue
      // Handlers may append to this very slot (same-millisecond events): process until it is empty.
      for (let i = 0; i < slot.length; i++) handle(slot[i], this.current)
      this.slots[index] = undefined
    }
  }
}
