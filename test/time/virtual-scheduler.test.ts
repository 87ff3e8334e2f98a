import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

describe('VirtualScheduler', () => {
  it('runs calls in due order, those due together in the order they were made, and never synchronously', () => {
    const clock = new VirtualScheduler()
    const ran: string[] = []
    clock.after(20, () => ran.push('b@20'))
    clock.after(10, () => ran.push('a@10'))
    clock.after(20, () => ran.push('c@20'))
    clock.after(0, () => ran.push('now'))
    expect(ran).toEqual([])
    clock.advance(15)
    expect(ran).toEqual(['now', 'a@10'])
    expect(clock.now()).toBe(15)
    clock.advance(5)
    expect(ran).toEqual(['now', 'a@10', 'b@20', 'c@20'])
  })

  it('moves time only when told to, to each call as it runs', () => {
    const clock = new VirtualScheduler({ start: 100 })
    const seen: number[] = []
    clock.after(50, () => seen.push(clock.now()))
    clock.after(70, () => seen.push(clock.now()))
    expect(clock.nextDue()).toBe(150)
    expect(clock.runNext()).toBe(true)
    expect(seen).toEqual([150])
    clock.runUntil(1000)
    expect(seen).toEqual([150, 170])
    expect(clock.now()).toBe(1000)
    expect(clock.runNext()).toBe(false)
    expect(clock.nextDue()).toBeUndefined()
  })

  it('repeats `every` until cancelled, and a cancelled call never runs', () => {
    const clock = new VirtualScheduler()
    const ticks: number[] = []
    const stop = clock.every(10, () => ticks.push(clock.now()))
    const never = clock.after(25, () => ticks.push(-1))
    never()
    never()
    clock.advance(35)
    expect(ticks).toEqual([10, 20, 30])
    stop()
    clock.advance(100)
    expect(ticks).toEqual([10, 20, 30])
    expect(clock.pending()).toBe(0)
    expect(() => clock.every(0, () => {})).toThrow(RangeError)
  })

  it('runs a call made while running at its own due time, after those already due', () => {
    const clock = new VirtualScheduler()
    const ran: string[] = []
    clock.after(10, () => {
      ran.push('first')
      clock.after(0, () => ran.push('nested'))
    })
    clock.after(10, () => ran.push('second'))
    clock.advance(10)
    expect(ran).toEqual(['first', 'second', 'nested'])
  })

  it('keeps wall time apart from monotonic time: a wall step moves only the wall clock', () => {
    const clock = new VirtualScheduler({ start: 0, wallStart: 1_000_000 })
    clock.advance(500)
    expect(clock.wallNow()).toBe(1_000_500)
    clock.stepWall(-3_000)
    expect(clock.wallNow()).toBe(997_500)
    expect(clock.now()).toBe(500)
  })

  it('keeps its queue small under many cancellations (compaction) and still runs the live calls in order', () => {
    const clock = new VirtualScheduler()
    const ran: number[] = []
    const live: number[] = []
    for (let i = 0; i < 10_000; i++) {
      const cancel = clock.after(i % 97, () => ran.push(i))
      if (i % 10 === 0) live.push(i)
      else cancel()
    }
    expect(clock.pending()).toBe(live.length)
    // The heap was rebuilt without the cancelled calls: it holds about the live ones, not all 10,000.
    expect((clock as unknown as { heap: unknown[] }).heap.length).toBeLessThan(2 * live.length + 64)
    clock.advance(100)
    const expected = [...live].sort((a, b) => (a % 97) - (b % 97) || a - b)
    expect(ran).toEqual(expected)
  })

  it('matches a reference model of (due, order) under random schedules and cancellations', () => {
    type Op =
      | { kind: 'after'; delay: number }
      | { kind: 'cancel'; which: number }
      | { kind: 'advance'; ms: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('after' as const), delay: fc.integer({ min: 0, max: 50 }) }),
      fc.record({ kind: fc.constant('cancel' as const), which: fc.nat() }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 30 }) }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), ops => {
        const clock = new VirtualScheduler()
        const model: { id: number; due: number; cancelled: boolean }[] = []
        const cancels: (() => void)[] = []
        const ran: number[] = []
        const expected: number[] = []
        let modelTime = 0
        const runModel = (until: number): void => {
          const due = model
            .filter(entry => !entry.cancelled && entry.due <= until)
            .sort((a, b) => a.due - b.due || a.id - b.id)
          for (const entry of due) {
            entry.cancelled = true
            expected.push(entry.id)
          }
          modelTime = until
        }
        for (const step of ops) {
          if (step.kind === 'after') {
            const id = model.length
            model.push({ id, due: modelTime + step.delay, cancelled: false })
            cancels.push(clock.after(step.delay, () => ran.push(id)))
          } else if (step.kind === 'cancel') {
            if (cancels.length === 0) continue
            const which = step.which % cancels.length
            cancels[which]()
            model[which].cancelled = true
          } else {
            clock.advance(step.ms)
            runModel(modelTime + step.ms)
          }
        }
        expect(ran).toEqual(expected)
        expect(clock.pending()).toBe(model.filter(entry => !entry.cancelled).length)
      }),
      { numRuns: 300 },
    )
  })
})
