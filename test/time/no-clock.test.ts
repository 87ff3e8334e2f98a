/**
 * The shell takes time from a `Scheduler` (src/time): no file under the cores (src/raft, src/swim, src/state)
 * or the agent wing (src/agent, src/net, src/storage, src/security), nor src/time itself, may read a clock or
 * start a timer, except the production scheduler (src/time/system-scheduler.ts). Otherwise a virtual clock
 * (the simulator, a skewed clock in a test) would not reach that code, and a run would depend on real time.
 *
 * Not scanned: src/cli (the command-line tool is the outermost shell and runs on real time, as a user does)
 * and src/check (the linearizability checker bounds its own search by real time).
 */

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findClockUses, importsSystemScheduler } from './clock-scan.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const SCANNED = [
  'src/agent',
  'src/net',
  'src/storage',
  'src/security',
  'src/raft',
  'src/swim',
  'src/state',
  'src/time',
]
const TOP_LEVEL = ['src/index.ts', 'src/api.ts', 'src/errors.ts']
const ALLOWED = new Set(['src/time/system-scheduler.ts'])
/**
 * The files that may fall back on the production scheduler when given none; every other part takes the
 * agent's scheduler (a part defaulting to the real clock would escape a virtual one unnoticed).
 */
const DEFAULTS_ALLOWED = [
  // The composition root: `createAgent` and `conclave()` run on it unless a test sets another.
  'src/agent/internal-options.ts',
  // libp2p service factories that also run in nodes of their own (`rpc()`, `raftTransport()`,
  // `identityService()`, the last in the CLI's client node).
  'src/net/raft-transport.ts',
  'src/net/rpc.ts',
  'src/security/identity-protocol.ts',
  // `resolveSecurity`'s check time, for a caller without a clock (the CLI); the agent passes its own.
  'src/security/options.ts',
  'src/time/index.ts',
]

function sourcesUnder(dir: string): string[] {
  const files: string[] = []
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(dir, name)
    if (statSync(join(ROOT, path)).isDirectory()) files.push(...sourcesUnder(path))
    else if (name.endsWith('.ts')) files.push(path)
  }
  return files
}

describe('no clock outside the scheduler', () => {
  it('finds no clock read or timer in the cores, the agent wing or src/time, bar the production scheduler', () => {
    const files = [...SCANNED.flatMap(sourcesUnder), ...TOP_LEVEL].filter(file => !ALLOWED.has(file))
    expect(files.length).toBeGreaterThan(100)
    const found = files.flatMap(file =>
      findClockUses(file, readFileSync(join(ROOT, file), 'utf8')).map(
        use => `${file}:${use.line} ${use.what}`,
      ),
    )
    expect(found).toEqual([])
  })

  it('lets only the entry points default to the production scheduler', () => {
    const files = [...SCANNED.flatMap(sourcesUnder), ...TOP_LEVEL].filter(file => !ALLOWED.has(file))
    const defaulting = files.filter(file =>
      importsSystemScheduler(file, readFileSync(join(ROOT, file), 'utf8')),
    )
    expect(defaulting.sort()).toEqual(DEFAULTS_ALLOWED)
  })

  it('catches every kind of clock read and timer, and nothing in comments, strings or look-alikes', () => {
    const fixture = join(import.meta.dirname, 'fixtures', 'clock-reads.ts.txt')
    const uses = findClockUses(relative(ROOT, fixture), readFileSync(fixture, 'utf8')).map(
      use => `${use.line} ${use.what}`,
    )
    expect(uses).toEqual([
      '2 import from node:timers/promises',
      '3 import from node:perf_hooks',
      '6 Date.now',
      '7 performance.now',
      '8 performance.timeOrigin',
      '9 new Date()',
      '10 Date()',
      '11 process.hrtime',
      '16 setTimeout',
      '17 clearTimeout',
      '18 setInterval',
      '19 clearInterval',
      '20 setImmediate',
      '21 clearImmediate',
      '22 globalThis.setTimeout',
      '23 AbortSignal.timeout',
      '24 setTimeout',
    ])
  })

  it('the production scheduler is where the clocks are (the check is not vacuous)', () => {
    const file = 'src/time/system-scheduler.ts'
    const kinds = new Set(findClockUses(file, readFileSync(join(ROOT, file), 'utf8')).map(use => use.what))
    expect([...kinds].sort()).toEqual(
      [
        'Date.now',
        'clearImmediate',
        'clearInterval',
        'clearTimeout',
        'performance.now',
        'setImmediate',
        'setInterval',
        'setTimeout',
      ].sort(),
    )
  })
})
