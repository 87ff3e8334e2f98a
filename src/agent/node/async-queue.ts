/**
 * A push-driven async iterable: producers `push` as events happen, one consumer iterates. Ends on `end()`,
 * throws on `fail(err)`. Unbounded by design: watch events are already bounded by what the log applies,
 * and dropping one would break the "never skip" promise of watches.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = []
  private head = 0
  private waiting?: { resolve(result: IteratorResult<T>): void; reject(err: unknown): void }
  private done = false
  private error: unknown
  private readonly onClose: () => void

  constructor(onClose: () => void = () => {}) {
    this.onClose = onClose
  }

  push(item: T): void {
    if (this.done) return
    if (this.waiting !== undefined) {
      const waiting = this.waiting
      this.waiting = undefined
      waiting.resolve({ value: item, done: false })
      return
    }
    this.items.push(item)
  }

  end(): void {
    if (this.done) return
    this.done = true
    this.onClose()
    this.settleWaiting()
  }

  fail(err: unknown): void {
    if (this.done) return
    this.error = err
    this.end()
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) {
      const value = this.items[this.head++]
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head)
        this.head = 0
      }
      return Promise.resolve({ value, done: false })
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
    this.items.length = 0
    this.head = 0
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this
  }

  private settleWaiting(): void {
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    if (this.error !== undefined) {
      const err = this.error
      this.error = undefined
      waiting.reject(err)
    } else {
      waiting.resolve({ value: undefined, done: true })
    }
  }
}
