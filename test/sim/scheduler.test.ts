import { describe, expect, it } from 'vitest'
import { Scheduler } from '../../scripts/sim/scheduler.ts'

describe('Scheduler', () => {
  it('runs events by time, then in the order they were scheduled', () => {
    const scheduler = new Scheduler()
    const order: string[] = []
    scheduler.at(5, () => order.push('5a'))
    scheduler.at(1, () => order.push('1'))
    scheduler.at(5, () => order.push('5b'))
    scheduler.at(3, () => {
      order.push('3')
      scheduler.after(0, () => order.push('3-later'))
      scheduler.after(2, () => order.push('5c'))
    })
    scheduler.runUntil(10)
    expect(order).toEqual(['1', '3', '3-later', '5a', '5b', '5c'])
    expect(scheduler.now).toBe(10)
    expect(scheduler.steps).toBe(6)
  })

  it('stops at the horizon and keeps later events', () => {
    const scheduler = new Scheduler()
    const order: number[] = []
    for (const time of [8, 2, 6, 4]) scheduler.at(time, () => order.push(time))
    scheduler.runUntil(5)
    expect(order).toEqual([2, 4])
    expect(scheduler.pending).toBe(2)
    scheduler.runUntil(8)
    expect(order).toEqual([2, 4, 6, 8])
  })

  it('never schedules into the past', () => {
    const scheduler = new Scheduler()
    let ranAt = -1
    scheduler.runUntil(20)
    scheduler.at(3, () => {
      ranAt = scheduler.now
    })
    scheduler.runUntil(25)
    expect(ranAt).toBe(20)
  })
})
