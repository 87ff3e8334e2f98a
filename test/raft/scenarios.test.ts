/**
 * Every `testdata/*.txt` scenario, run against the Raft core.
 *
 * - `REWRITE=1 npx vitest run test/raft/scenarios.test.ts` regenerates the expected outputs from what the core
 *   does now (review the diff before committing it: a changed output is a changed behaviour).
 * - `RAFT_BUGS=voteIgnoresLog,staleRead npx vitest run test/raft/scenarios.test.ts` runs them against a core
 *   broken on purpose (`RaftCoreOptions.bugs`), to see which scenarios notice and how the difference reads.
 */

import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import type { RaftBugs } from '../../src/raft/core-options.ts'
import { formatScenario, parseScenario, tokenize } from './scenario/parser.ts'
import { firstMismatch, runScenario } from './scenario/run.ts'

const dir = join(import.meta.dirname, 'testdata')
const files = readdirSync(dir)
  .filter(file => file.endsWith('.txt'))
  .sort()
const rewrite = process.env.REWRITE === '1'

const BUGS: readonly (keyof RaftBugs)[] = [
  'voteIgnoresLog',
  'commitPreviousTerm',
  'staleRead',
  'readAckAnyQuorum',
  'peerCommitAnyTerm',
]

function bugsFromEnv(): RaftBugs {
  const bugs: RaftBugs = {}
  for (const name of (process.env.RAFT_BUGS ?? '').split(',').filter(Boolean)) {
    const bug = BUGS.find(known => known === name)
    if (bug === undefined) throw new Error(`RAFT_BUGS: unknown bug ${name} (known: ${BUGS.join(', ')})`)
    bugs[bug] = true
  }
  return bugs
}

function read(file: string): string {
  return readFileSync(join(dir, file), 'utf8')
}

describe('raft scenarios (test/raft/testdata)', () => {
  test('there are scenarios to run', () => {
    expect(files.length).toBeGreaterThan(0)
  })

  test.each(files)('%s', file => {
    const run = runScenario(file, read(file), bugsFromEnv())
    if (rewrite) {
      writeFileSync(join(dir, file), run.rewritten)
    } else {
      for (const { directive, actual } of run.results) {
        expect(actual, `${file}:${directive.line}: ${directive.source}`).toBe(directive.expected)
      }
    }
    // A rewrite must not bless a broken core: no expected output may record a safety violation.
    expect(run.rewritten, `${file}: State Machine Safety violated`).not.toContain('SAFETY VIOLATION')
  })

  test.each(files)('%s is written back unchanged when nothing changed', file => {
    // REWRITE=1 must only ever touch outputs: comments, blank lines and commands survive byte for byte.
    const text = read(file)
    const scenario = parseScenario(text)
    const expected = scenario.directives.map(directive => directive.expected)
    expect(formatScenario(scenario, expected)).toBe(text)
  })

  test('a command line splits at spaces, keeping quoted data and lists whole', () => {
    expect(tokenize('propose 1 "two words"')).toEqual(['propose', '1', '"two words"'])
    const [directive] = parseScenario('add-nodes 3 voters=(1, 2,3) prevote=false\n----\nok\n').directives
    expect(directive.args).toEqual([
      { key: '3', values: [] },
      { key: 'voters', values: ['1', '2', '3'] },
      { key: 'prevote', values: ['false'] },
    ])
  })

  test('a malformed file is refused with its line', () => {
    expect(() => parseScenario('# fine\ncampaign 1\nok\n')).toThrow(/line 2: expected '----'/)
    expect(() => runScenario('x.txt', 'add-nodes 1 voters=(1)\n----\nok\n\nfly 1\n----\nok\n')).toThrow(
      /x.txt:5: fly 1[\s\S]*unknown command 'fly'/,
    )
    expect(() => runScenario('y.txt', 'add-nodes 1 voters=(1) checkQuorum=false\n----\nok\n')).toThrow(
      /add-nodes takes no option 'checkQuorum'/,
    )
  })
})

describe('the scenarios catch a broken core', () => {
  // Each known bug must change the output of the scenario about the rule it breaks, first in the section (the
  // comment and the commands under it) that shows the rule at work, not somewhere later by accident.
  // `unsafe`: the bug also lets two nodes apply different entries at one index, which the environment reports.
  test.each([
    ['prevote.txt', 'voteIgnoresLog', "# The network heals. 3 asks again; 1 and 2 refuse: 3's log", true],
    ['read_index.txt', 'staleRead', '# On the leader: no ReadState until', false],
    ['read_index_five_voters.txt', 'readAckAnyQuorum', '# No answer yet: a heartbeat round', false],
    ['figure8.txt', 'commitPreviousTerm', "# 3's acknowledgement puts index 2 of term 1 on a majority", true],
  ] as const)('%s fails with bugs.%s in the section `%s`', (file, bug, section, unsafe) => {
    const run = runScenario(file, read(file), { [bug]: true })
    const mismatch = firstMismatch(run)
    expect(mismatch, 'the scenario passes with the bug on').toBeDefined()
    const at = run.results.indexOf(mismatch!)
    const heading = run.results
      .slice(0, at + 1)
      .map(r => r.directive.preamble)
      .filter(preamble => preamble.includes('#'))
      .at(-1)
    expect(heading).toContain(section)
    expect(run.rewritten.includes('SAFETY VIOLATION')).toBe(unsafe)
  })
})
