import { InvalidArgumentError } from '../../errors.ts'

/** Events a watch buffers for its consumer when the call gives no `buffer`. */
export const DEFAULT_WATCH_BUFFER = 1_000
/** Largest `buffer` a watch may ask for. */
export const MAX_WATCH_BUFFER = 100_000

/** The `buffer` option of a watch: an integer from 1 to `MAX_WATCH_BUFFER`, default `DEFAULT_WATCH_BUFFER`. */
export function checkWatchBuffer(value: unknown): number {
  if (value === undefined) return DEFAULT_WATCH_BUFFER
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > MAX_WATCH_BUFFER) {
    throw new InvalidArgumentError(`buffer must be an integer from 1 to ${MAX_WATCH_BUFFER}`)
  }
  return value as number
}

/** What a watch read back from the retained history. */
export interface Replay<Raw> {
  /** The next items after the last one the watch took, oldest first. */
  items: Raw[]
  /** The items reach the present: live items follow them with no gap. */
  caughtUp: boolean
}

export interface BoundedWatchOptions<Raw, T> {
  /** Most items buffered for the consumer. */
  capacity: number
  /**
   * Up to `max` items after the last one this watch took, from the retained history; throws (a
   * `CompactedError`) if the history no longer reaches back that far. Called only while the watch is behind.
   */
  replay(max: number): Replay<Raw>
  /** What the consumer gets for an item: a copy made when it is read, not while it waits in the buffer. */
  convert(item: Raw): T
  /** Called once when the watch ends (unsubscribe, release quotas). */
  onClose(): void
}

/**
 * The queue of one watch, bounded as etcd bounds each watcher's: live items are buffered up to `capacity`;
 * once the buffer is full the watch falls behind, takes no more live items, and when its consumer has
 * read the buffer it refills from the retained history as the consumer pulls, until it has caught up and
 * takes live items again. So a stalled consumer holds at most `capacity` items, and a slow one misses
 * nothing. One that fell behind what the history retains gets the items before the gap, then the error
 * `replay` threw; nothing is dropped silently and nothing is delivered twice.
 *
 * The owner keeps its own position (the last item it `offer`ed successfully, or replayed) for `replay`.
 */
export class BoundedWatch<Raw, T> implements AsyncIterableIterator<T> {
  private readonly options: BoundedWatchOptions<Raw, T>
  private items: Raw[] = []
  private head = 0
  private behindValue = false
  private waiting?: { resolve(result: IteratorResult<T>): void; reject(err: unknown): void }
  private done = false
  private error: unknown

  constructor(options: BoundedWatchOptions<Raw, T>) {
    this.options = options
  }

  /** True while live items are refused: the next ones come from the history. */
  get behind(): boolean {
    return this.behindValue
  }

  /** Items waiting for the consumer. */
  get buffered(): number {
    return this.items.length - this.head
  }

  /**
   * A live item, in order after the last one taken. False if it was not taken (the watch is behind, or the
   * buffer just filled and it now is): the owner must not advance its position past it.
   */
  offer(item: Raw): boolean {
    if (this.done) return true
    if (this.behindValue) return false
    if (this.waiting !== undefined) {
      const waiting = this.waiting
      this.waiting = undefined
      waiting.resolve({ value: this.options.convert(item), done: false })
      return true
    }
    if (this.buffered >= this.options.capacity) {
      this.behindValue = true
      return false
    }
    this.items.push(item)
    return true
  }

  /** Items may have happened that were never offered (a snapshot replaced the state): read the history. */
  fallBehind(): void {
    if (this.done) return
    this.behindValue = true
    if (this.waiting === undefined) return
    const waiting = this.waiting
    this.waiting = undefined
    this.next().then(waiting.resolve, waiting.reject)
  }

  end(): void {
    if (this.done) return
    this.done = true
    this.options.onClose()
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    if (this.error !== undefined) {
      const err = this.error
      this.error = undefined
      waiting.reject(err)
    } else waiting.resolve({ value: undefined, done: true })
  }

  /** Ends the watch with `err`, after the items already buffered. */
  fail(err: unknown): void {
    if (this.done) return
    this.error = err
    this.end()
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head === this.items.length && this.behindValue && !this.done) this.refill()
    if (this.head < this.items.length) {
      const item = this.items[this.head]
      // Drop the reference at once: a consumed item must not be kept alive by the buffer.
      this.items[this.head] = undefined as Raw
      this.head++
      if (this.head === this.items.length) {
        this.items = []
        this.head = 0
      } else if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head)
        this.head = 0
      }
      try {
        return Promise.resolve({ value: this.options.convert(item), done: false })
      } catch (err) {
        return Promise.reject(err)
      }
    }
    if (this.done) {
      if (this.error !== undefined) {
        const err = this.error
        this.error = undefined
        return Promise.reject(err)
      }
      return Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
    })
  }

  return(): Promise<IteratorResult<T>> {
    this.items = []
    this.head = 0
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this
  }

  /** Reads the next items from the history into the (empty) buffer; live again once they reach the present. */
  private refill(): void {
    let replay: Replay<Raw>
    try {
      replay = this.options.replay(this.options.capacity)
    } catch (err) {
      this.fail(err)
      return
    }
    this.items = replay.items
    this.head = 0
    // No items means nothing is left to replay: the present is reached whatever the replay said.
    if (replay.caughtUp || replay.items.length === 0) this.behindValue = false
  }
}
