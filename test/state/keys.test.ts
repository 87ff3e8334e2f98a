import fc from 'fast-check'
import { expect, it } from 'vitest'
import { compareKeys, SortedKeys } from '../../src/state/keys.ts'

/** The index as the KV store drives it (add only for new keys, remove only for present ones) vs a plain sort. */
it('SortedKeys scans what a sorted filter of the live keys gives, through adds, removes and scans', () => {
  const universe = Array.from(
    { length: 400 },
    (_, i) => `${['a', 'b', 'ab', '\u{1F600}', '\uFF5E'][i % 5]}/${i % 97}/${i}`,
  )
  const action = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('toggle' as const),
        key: fc.nat({ max: universe.length - 1 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('scan' as const),
        prefix: fc.constantFrom('', 'a', 'a/', 'ab/', 'b/1', '\u{1F600}', '\uFF5E/'),
        after: fc.option(fc.nat({ max: universe.length - 1 }), { nil: undefined }),
        limit: fc.integer({ min: 1, max: 500 }),
      }),
    },
  )
  fc.assert(
    fc.property(fc.array(action, { maxLength: 800, size: 'max' }), actions => {
      const live = new Set<string>()
      const index = new SortedKeys(key => live.has(key))
      for (const step of actions) {
        if (step.kind === 'toggle') {
          const key = universe[step.key]
          if (live.delete(key)) index.remove(key)
          else {
            live.add(key)
            index.add(key)
          }
          continue
        }
        const after = step.after === undefined ? undefined : universe[step.after]
        const expected = [...live]
          .filter(key => key.startsWith(step.prefix) && (after === undefined || compareKeys(key, after) > 0))
          .sort(compareKeys)
          .slice(0, step.limit)
        const scanned: string[] = []
        index.scan(step.prefix, after, key => {
          scanned.push(key)
          return scanned.length < step.limit
        })
        expect(scanned).toEqual(expected)
      }
    }),
    { numRuns: 150 },
  )
})
