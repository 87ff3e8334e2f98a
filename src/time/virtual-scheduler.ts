import type { Cancel, Scheduler } from './scheduler.ts'

interface Pending {
  /** Order among calls due at the same instant: the order they were made. */
  readonly seq: number
  due: number
  readonly fn: () => void
  /** For `every`: the interval to re-arm with; 0 for a one-shot call. */
  readonly interval: number
  /** Cancelled, or (one-shot) already run. */
  cancelled: boolean
}

/** Below this many cancelled entries the queue is not rebuilt: popping them off the top is cheaper. */
const COMPACT_MIN = 64

/**
 * A scheduler whose time moves only when the owner says so (`advance`, `runUntil`, `runNext`). Calls due at the
 * same instant run in the order they were scheduled, so a run is a pure function of what was scheduled.
 * `stepWall` models a wall-clock step (NTP), which never moves `now()`; `wallStart` gives each agent of a
 * simulation its own wall clock over one shared timeline.
 *
 * `TimerOptions.keepAlive` means nothing here: no process lifetime hangs on virtual time. Calls due together
 * run back to back, without the microtask turns Node runs between timers: a driver that needs those (to let
 * promise chains settle between calls) runs `runNext()` and awaits between calls.
 *
 * The queue is a binary min-heap on (due, seq): scheduling and running are O(log n). A cancelled call stays
 * in the heap until it reaches the top or until cancelled calls make up half of it, when the heap is rebuilt
 * without them (O(n), amortized O(1) per cancel).
 */
export class VirtualScheduler implements Scheduler {
  private time: number
  private wallOffset: number
  private seq = 0
  private readonly heap: Pending[] = []
  private cancelledInHeap = 0

  constructor(options: { start?: number; wallStart?: number } = {}) {
    this.time = options.start ?? 0
    this.wallOffset = (options.wallStart ?? 1_700_000_000_000) - this.time
  }

  now(): number {
    return this.time
  }

  wallNow(): number {
    return Math.floor(this.time + this.wallOffset)
  }

  /** Steps the wall clock by `deltaMs` (forward or back); monotonic time is unaffected. */
  stepWall(deltaMs: number): void {
    this.wallOffset += deltaMs
  }

  after(delayMs: number, fn: () => void): Cancel {
    return this.push(Math.max(0, Number.isNaN(delayMs) ? 0 : delayMs), fn, 0)
  }

  every(intervalMs: number, fn: () => void): Cancel {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0 ms, got ${intervalMs}`)
    return this.push(intervalMs, fn, intervalMs)
  }

  /** Time of the next pending call, or undefined if none is pending. */
  nextDue(): number | undefined {
    this.dropCancelledTop()
    return this.heap[0]?.due
  }

  /** Number of calls still pending (cancelled ones excluded). */
  pending(): number {
    return this.heap.length - this.cancelledInHeap
  }

  /** Runs the earliest pending call (moving time to its due time). Returns false if nothing was pending. */
  runNext(): boolean {
    this.dropCancelledTop()
    const next = this.heap[0]
    if (next === undefined) return false
    if (next.due > this.time) this.time = next.due
    if (next.interval > 0) {
      // Re-armed in place: it keeps its place among calls made before and after it.
      next.due = this.time + next.interval
      this.siftDown(0)
    } else {
      // Run: a later cancel is a no-op (and must not count an entry no longer in the heap).
      next.cancelled = true
      this.popTop()
    }
    next.fn()
    return true
  }

  /** Runs every call due up to `until` in order, then sets time to `until`. */
  runUntil(until: number): void {
    for (;;) {
      const due = this.nextDue()
      if (due === undefined || due > until) break
      this.runNext()
    }
    if (until > this.time) this.time = until
  }

  /** Moves time forward by `ms`, running every call that falls due on the way. */
  advance(ms: number): void {
    this.runUntil(this.time + ms)
  }

  private push(delay: number, fn: () => void, interval: number): Cancel {
    const entry: Pending = { seq: this.seq++, due: this.time + delay, fn, interval, cancelled: false }
    this.heap.push(entry)
    this.siftUp(this.heap.length - 1)
    return () => {
      if (entry.cancelled) return
      entry.cancelled = true
      this.cancelledInHeap++
      this.compactIfSparse()
    }
  }

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && this.heap[0].cancelled) {
      this.popTop()
      this.cancelledInHeap--
    }
  }

  private compactIfSparse(): void {
    if (this.cancelledInHeap < COMPACT_MIN || this.cancelledInHeap * 2 < this.heap.length) return
    let kept = 0
    for (const entry of this.heap) if (!entry.cancelled) this.heap[kept++] = entry
    this.heap.length = kept
    this.cancelledInHeap = 0
    for (let i = (kept >>> 1) - 1; i >= 0; i--) this.siftDown(i)
  }

  private popTop(): void {
    const last = this.heap.pop()
    if (last === undefined || this.heap.length === 0) return
    this.heap[0] = last
    this.siftDown(0)
  }

  private siftUp(at: number): void {
    const heap = this.heap
    const entry = heap[at]
    while (at > 0) {
      const parent = (at - 1) >>> 1
      if (!before(entry, heap[parent])) break
      heap[at] = heap[parent]
      at = parent
    }
    heap[at] = entry
  }

  private siftDown(at: number): void {
    const heap = this.heap
    const entry = heap[at]
    const size = heap.length
    for (;;) {
      const left = 2 * at + 1
      if (left >= size) break
      const right = left + 1
      const child = right < size && before(heap[right], heap[left]) ? right : left
      if (!before(heap[child], entry)) break
      heap[at] = heap[child]
      at = child
    }
    heap[at] = entry
  }
}

function before(a: Pending, b: Pending): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq)
}
