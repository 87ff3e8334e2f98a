/**
 * Runs a scenario file against a fresh interaction environment: each directive's actual output next to the
 * expected one, and the file as it would be rewritten with the actual outputs.
 */

import type { RaftBugs } from '../../../src/raft/core-options.ts'
import { InteractionEnv } from './interaction-env.ts'
import { type Directive, formatScenario, parseScenario } from './parser.ts'

export interface DirectiveResult {
  directive: Directive
  actual: string
}

export interface ScenarioRun {
  results: DirectiveResult[]
  /** The file with every expected output replaced by the actual one (what `REWRITE=1` writes). */
  rewritten: string
}

/** Runs every directive in order; a malformed command throws with the file name and line. */
export function runScenario(name: string, text: string, bugs: RaftBugs = {}): ScenarioRun {
  const scenario = parseScenario(text)
  const env = new InteractionEnv(bugs)
  const results = scenario.directives.map(directive => {
    try {
      return { directive, actual: env.handle(directive) }
    } catch (error) {
      const reason = error instanceof Error ? (error.stack ?? error.message) : String(error)
      throw new Error(`${name}:${directive.line}: ${directive.source}\n${reason}`)
    }
  })
  return {
    results,
    rewritten: formatScenario(
      scenario,
      results.map(r => r.actual),
    ),
  }
}

/** The first directive whose output differs from the expected one, if any. */
export function firstMismatch(run: ScenarioRun): DirectiveResult | undefined {
  return run.results.find(r => r.actual !== r.directive.expected)
}
