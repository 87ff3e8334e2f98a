import { afterEach, describe, expect, it, vi } from 'vitest'
import { AbortError } from '../../src/errors.ts'
import { SkewedScheduler } from '../../src/time/skewed-scheduler.ts'
import { raceTimeout, sleep, timeoutSignal } from '../../src/time/sleep.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

/** Lets promise callbacks run (the virtual scheduler runs timers synchronously inside `advance`). */
const settle = () => new Promise(resolve => setImmediate(resolve))

describe('sleep, raceTimeout, timeoutSignal', () => {
  it('sleep resolves when virtual time reaches it, not before', async () => {
    const clock = new VirtualScheduler()
    let done = false
    const slept = sleep(clock, 100).then(() => {
      done = true
    })
    clock.advance(99)
    await settle()
    expect(done).toBe(false)
    clock.advance(1)
    await slept
    expect(done).toBe(true)
  })

  it('sleep rejects with AbortError on abort and drops its timer', async () => {
    const clock = new VirtualScheduler()
    const controller = new AbortController()
    const slept = sleep(clock, 100, controller.signal)
    controller.abort()
    await expect(slept).rejects.toBeInstanceOf(AbortError)
    expect(clock.pending()).toBe(0)
    await expect(sleep(clock, 1, controller.signal)).rejects.toBeInstanceOf(AbortError)
  })

  it('raceTimeout answers with the promise, or with timedOut() (a value or a throw) at the deadline', async () => {
    const clock = new VirtualScheduler()
    await expect(raceTimeout(clock, Promise.resolve('fast'), 10, () => 'late')).resolves.toBe('fast')
    expect(clock.pending()).toBe(0)
    const never = new Promise<string>(() => {})
    const late = raceTimeout(clock, never, 10, () => 'late')
    clock.advance(10)
    await expect(late).resolves.toBe('late')
    const thrown = raceTimeout(clock, never, 10, () => {
      throw new RangeError('too slow')
    })
    clock.advance(10)
    await expect(thrown).rejects.toBeInstanceOf(RangeError)
    const controller = new AbortController()
    const aborted = raceTimeout(clock, never, 10, () => 'late', controller.signal)
    controller.abort()
    await expect(aborted).rejects.toBeInstanceOf(AbortError)
    await expect(raceTimeout(clock, Promise.reject(new TypeError('x')), 10, () => 0)).rejects.toBeInstanceOf(
      TypeError,
    )
  })

  it('timeoutSignal aborts with a TimeoutError, as AbortSignal.timeout does', () => {
    const clock = new VirtualScheduler()
    const signal = timeoutSignal(clock, 50)
    clock.advance(49)
    expect(signal.aborted).toBe(false)
    clock.advance(1)
    expect(signal.aborted).toBe(true)
    expect((signal.reason as DOMException).name).toBe('TimeoutError')
  })

  it('the system scheduler runs after(0) as a macrotask, after microtasks, and real sleeps take real time', async () => {
    const order: string[] = []
    const ran = new Promise<void>(resolve =>
      systemScheduler.after(0, () => {
        order.push('after(0)')
        resolve()
      }),
    )
    queueMicrotask(() => order.push('microtask'))
    order.push('sync')
    await ran
    expect(order).toEqual(['sync', 'microtask', 'after(0)'])
    const start = systemScheduler.now()
    await sleep(systemScheduler, 30)
    expect(systemScheduler.now() - start).toBeGreaterThanOrEqual(29)
    let ticks = 0
    const stop = systemScheduler.every(5, () => ticks++)
    await sleep(systemScheduler, 40)
    stop()
    const seen = ticks
    expect(seen).toBeGreaterThan(2)
    await sleep(systemScheduler, 20)
    expect(ticks).toBe(seen)
    const cancelled = systemScheduler.after(1, () => ticks++)
    cancelled()
    await sleep(systemScheduler, 10)
    expect(ticks).toBe(seen)
  })

  it('a skewed scheduler offsets the wall clock and scales both clocks and delays by its rate', () => {
    const base = new VirtualScheduler({ start: 0, wallStart: 10_000 })
    const ahead = new SkewedScheduler(base, { wallOffsetMs: 3_000 })
    expect(ahead.wallNow()).toBe(13_000)
    expect(ahead.now()).toBe(0)
    const fast = new SkewedScheduler(base, { rate: 2 })
    let at = -1
    fast.after(100, () => {
      at = base.now()
    })
    base.advance(50)
    expect(at).toBe(50)
    expect(fast.now()).toBe(100)
    expect(fast.wallNow()).toBe(10_100)
    fast.stepWall(-500)
    expect(fast.wallNow()).toBe(9_600)
    expect(fast.now()).toBe(100)
    expect(() => new SkewedScheduler(base, { rate: 0 })).toThrow(RangeError)
  })
})

describe('the system scheduler with long delays', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('waits out a delay longer than a Node timer can hold, in steps, rather than firing at once', () => {
    vi.useFakeTimers()
    let fired = 0
    const cancel = systemScheduler.after(2 ** 31 + 5_000, () => fired++)
    vi.advanceTimersByTime(2 ** 31 - 1)
    expect(fired).toBe(0)
    vi.advanceTimersByTime(5_000)
    expect(fired).toBe(0)
    vi.advanceTimersByTime(1)
    expect(fired).toBe(1)
    cancel()
    const never = systemScheduler.after(2 ** 32, () => fired++)
    vi.advanceTimersByTime(2 ** 31)
    never()
    vi.advanceTimersByTime(2 ** 32)
    expect(fired).toBe(1)
    expect(() => systemScheduler.every(2 ** 31, () => {})).toThrow(RangeError)
  })
})
