/**
 * The bounded queue of a watch by itself, over a numbered history held in an array: what a consumer gets
 * when the buffer fills, when it catches up, when the history no longer reaches back, and when the state is
 * replaced under a waiting consumer.
 */
import { describe, expect, it } from 'vitest'
import { BoundedWatch, checkWatchBuffer } from '../../src/agent/api/bounded-watch.ts'
import { CompactedError, InvalidArgumentError } from '../../src/errors.ts'

/** A source of items 1, 2, 3, ... with the last `retained` kept, and a watch over it from `from`. */
function setup(capacity: number, retained: number) {
  const history: number[] = []
  let taken = 0
  let closed = 0
  const watch = new BoundedWatch<number, string>({
    capacity,
    replay: max => {
      const oldest = history.length - retained + 1
      if (taken + 1 < oldest) {
        throw new CompactedError('gone', { compactedRevision: oldest - 1 })
      }
      const items = history.slice(taken, taken + max)
      taken += items.length
      return { items, caughtUp: taken === history.length }
    },
    convert: item => `#${item}`,
    onClose: () => {
      closed++
    },
  })
  const write = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const item = history.length + 1
      history.push(item)
      if (!watch.behind && watch.offer(item)) taken = item
    }
  }
  const read = async (count: number): Promise<string[]> => {
    const got: string[] = []
    for (let i = 0; i < count; i++) got.push((await watch.next()).value as string)
    return got
  }
  return { watch, write, read, closed: () => closed }
}

describe('BoundedWatch', () => {
  it('buffers at most its capacity, then catches up from the history as the consumer reads, and is live again', async () => {
    const { watch, write, read } = setup(3, 100)
    write(10)
    expect(watch.behind).toBe(true)
    expect(watch.buffered).toBe(3)
    expect(await read(10)).toEqual(Array.from({ length: 10 }, (_, i) => `#${i + 1}`))
    expect(watch.behind).toBe(false)
    const waiting = watch.next()
    write(1)
    expect((await waiting).value).toBe('#11')
  })

  it('gives the items before the gap, then CompactedError naming where to resume, then ends', async () => {
    const { watch, write, read, closed } = setup(2, 5)
    write(20)
    expect(await read(2)).toEqual(['#1', '#2'])
    const error = await watch.next().catch((err: unknown) => err)
    expect(error).toBeInstanceOf(CompactedError)
    expect((error as CompactedError).resumeRevision).toBe(16)
    expect((error as CompactedError).compactedRevision).toBe(15)
    expect((await watch.next()).done).toBe(true)
    expect(closed()).toBe(1)
  })

  it('reads the history for a consumer already waiting when it falls behind (a snapshot replaced the state)', async () => {
    const { watch, write } = setup(4, 100)
    const waiting = watch.next()
    write(1)
    expect((await waiting).value).toBe('#1')
    const next = watch.next()
    watch.fallBehind()
    // Nothing new yet: the replay is empty, the watch live again and the consumer still waiting.
    expect(watch.behind).toBe(false)
    write(1)
    expect((await next).value).toBe('#2')
  })

  it('ends after the buffered items when closed, and return() drops them', async () => {
    const first = setup(5, 100)
    first.write(3)
    first.watch.end()
    expect(await first.read(3)).toEqual(['#1', '#2', '#3'])
    expect((await first.watch.next()).done).toBe(true)
    const second = setup(5, 100)
    second.write(3)
    await second.watch.return()
    expect((await second.watch.next()).done).toBe(true)
    expect(second.closed()).toBe(1)
  })

  it('takes a buffer from 1 to 100,000', () => {
    expect(checkWatchBuffer(undefined)).toBe(1_000)
    expect(checkWatchBuffer(1)).toBe(1)
    for (const bad of [0, 1.5, 100_001, '5', Number.NaN]) {
      expect(() => checkWatchBuffer(bad)).toThrow(InvalidArgumentError)
    }
  })
})
