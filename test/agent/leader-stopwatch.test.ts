import { describe, expect, it } from 'vitest'
import { LeaderStopwatch } from '../../src/agent/cluster/leader-stopwatch.ts'

describe('the leader stopwatch', () => {
  it('times a thing from the round this leadership first saw it, and starts over for a new leadership', () => {
    const watch = new LeaderStopwatch<string>()
    const first = {}
    watch.begin(first)
    expect(watch.elapsed('a', 100)).toBeUndefined()
    watch.end()
    watch.begin(first)
    expect(watch.elapsed('a', 350)).toBe(250)
    watch.end()
    // A new leader waits a full period from its own first sight: it cannot know when the old one began.
    const second = {}
    watch.begin(second)
    expect(watch.elapsed('a', 400)).toBeUndefined()
    watch.end()
    watch.begin(second)
    expect(watch.elapsed('a', 450)).toBe(50)
    watch.end()
  })

  it('forgets a thing missing from a round: seen again later, it is timed anew', () => {
    const watch = new LeaderStopwatch<number>()
    const leadership = {}
    watch.begin(leadership)
    watch.elapsed(1, 0)
    watch.elapsed(2, 0)
    watch.end()
    watch.begin(leadership)
    expect(watch.elapsed(2, 100)).toBe(100)
    watch.end() // 1 ended (released, started...): forgotten
    watch.begin(leadership)
    expect(watch.elapsed(1, 200)).toBeUndefined()
    expect(watch.elapsed(2, 200)).toBe(200)
    watch.end()
  })

  it('clear() forgets everything, the leadership too', () => {
    const watch = new LeaderStopwatch<string>()
    const leadership = {}
    watch.begin(leadership)
    watch.elapsed('a', 0)
    watch.end()
    watch.clear()
    watch.begin(leadership)
    expect(watch.elapsed('a', 500)).toBeUndefined()
  })
})
