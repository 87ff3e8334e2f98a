/**
 * Every `testdata/*.txt` scenario, run against the Raft core.
 *
 * - `REWRITE=1 npx vitest run test/raft/scenarios.test.ts` regenerates the expected outputs from what the core
 *   does now (review the diff before committing it: a changed output is a changed behaviour).
 * - `RAFT_BUGS=voteIgnoresLog,staleRead npx vitest run test/raft/scenarios.test.ts` runs them against a core
 *   broken on purpose (`RaftOptions.bugs`), to see which scenarios notice and how the difference reads.
 */

import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import type { RaftBugs } from '../../src/raft/types.ts'
import { formatScenario, parseScenario } from './scenario/parser.ts'
import { firstMismatch, runScenario } from './scenario/run.ts'

const dir = join(import.meta.dirname, 'testdata')
const files = readdirSync(dir)
  .filter(file => file.endsWith('.txt'))
  .sort()
const rewrite = process.env.REWRITE === '1'

function bugsFromEnv(): RaftBugs {
  const bugs: Record<string, boolean> = {}
  for (const name of (process.env.RAFT_BUGS ?? '').split(',').filter(Boolean)) bugs[name] = true
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
      return
    }
    for (const { directive, actual } of run.results) {
      expect(actual, `${file}:${directive.line}: ${directive.source}`).toBe(directive.expected)
    }
  })

  test.each(files)('%s is written back unchanged when nothing changed', file => {
    // REWRITE=1 must only ever touch outputs: comments, blank lines and commands survive byte for byte.
    const text = read(file)
    const scenario = parseScenario(text)
    expect(
      formatScenario(
        scenario,
        scenario.directives.map(d => d.expected),
      ),
    ).toBe(text)
  })

  test('a malformed file is refused with its line', () => {
    expect(() => parseScenario('# fine\ncampaign 1\nok\n')).toThrow(/line 2: expected '----'/)
    expect(() => runScenario('x.txt', 'add-nodes 1 voters=(1)\n----\nok\n\nfly 1\n----\nok\n')).toThrow(
      /x.txt:5: fly 1[\s\S]*unknown command 'fly'/,
    )
  })
})

describe('the scenarios catch a broken core', () => {
  // Each known bug must change the output of the scenario about the rule it breaks, right at the step that
  // shows the rule at work (the one after `trigger`), not somewhere later by accident.
  test.each([
    ['prevote.txt', 'voteIgnoresLog', 'campaign 3'],
    ['read_index.txt', 'staleRead', 'read-index 1 r1'],
  ] as const)('%s fails with bugs.%s, at the step after `%s`', (file, bug, trigger) => {
    const run = runScenario(file, read(file), { [bug]: true })
    const sources = run.results.map(r => r.directive.source)
    const expectedAt = run.results[sources.indexOf(trigger) + 1].directive.line
    expect(sources).toContain(trigger)
    expect(firstMismatch(run)?.directive.line).toBe(expectedAt)
  })
})
