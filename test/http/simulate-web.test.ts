/** `npm run simulate -- --web`: the options that ask for the dashboard, and which agent serves it. */
import { describe, expect, it } from 'vitest'
import { parseOptions } from '../../scripts/simulate/options.ts'
import { webAgentOf } from '../../scripts/simulate/scenario.ts'

describe('simulate --web', () => {
  it('asks for a free port with --web, a given one with --web-port, and refuses a port out of range', () => {
    expect(parseOptions([], false).webPort).toBeUndefined()
    expect(parseOptions(['--web'], false).webPort).toBe(0)
    expect(parseOptions(['--web-port', '7391'], false).webPort).toBe(7391)
    expect(parseOptions(['--web-port', '7391', '--web'], false).webPort).toBe(7391)
    expect(() => parseOptions(['--web-port', '70000'], false)).toThrow(RangeError)
    expect(() => parseOptions(['--web-port'], false)).toThrow(RangeError)
  })

  it('serves from the last agent, not the founder the scenario is most likely to kill', () => {
    expect(webAgentOf({ agents: 5 })).toBe(4)
  })
})
