/**
 * The virtual clock and its event queue. Time is an integer count of virtual milliseconds; a Raft tick is
 * `MS_PER_TICK` of them (nodes tick on their own, slightly skewed schedules). Events at the same time run in
 * the order they were scheduled, so a run is a pure function of the seed.
 */

/** Virtual milliseconds per Raft tick. */
export const MS_PER_TICK = 10

export interface SimEvent {
  time: number
  /** Scheduling order: breaks ties between events at the same time. */
  seq: number
  run: () => void
}

export class Scheduler {
  /** Current virtual time in milliseconds. */
  now = 0
  /** Events run so far. */
  steps = 0
  private seq = 0
  private readonly heap: SimEvent[] = []

  /** Runs `run` at absolute time `time` (not earlier than now). */
  at(time: number, run: () => void): void {
    const event: SimEvent = { time: Math.max(time, this.now), seq: this.seq++, run }
    const heap = this.heap
    heap.push(event)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(event, heap[parent])) break
      heap[i] = heap[parent]
      i = parent
    }
    heap[i] = event
  }

  /** Runs `run` after `delay` milliseconds (0 = later in the current millisecond, after what is queued). */
  after(delay: number, run: () => void): void {
    this.at(this.now + delay, run)
  }

  get pending(): number {
    return this.heap.length
  }

  /** Runs the next event if there is one due at or before `until`; returns whether one ran. */
  step(until: number): boolean {
    const heap = this.heap
    if (heap.length === 0 || heap[0].time > until) return false
    const event = heap[0]
    const last = heap.pop()!
    if (heap.length > 0) {
      heap[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        if (left >= heap.length) break
        const right = left + 1
        const child = right < heap.length && before(heap[right], heap[left]) ? right : left
        if (!before(heap[child], last)) break
        heap[i] = heap[child]
        i = child
      }
      heap[i] = last
    }
    this.now = event.time
    this.steps++
    event.run()
    return true
  }

  /** Runs every event due by `until` (calling `afterEach` after each), then sets the clock to `until`. */
  runUntil(until: number, afterEach?: () => void): void {
    while (this.step(until)) afterEach?.()
    if (until > this.now) this.now = until
  }
}

function before(x: SimEvent, y: SimEvent): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq)
}
