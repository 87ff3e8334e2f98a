/**
 * The scenario file format, after cockroachdb/datadriven as etcd-io/raft uses it:
 *
 *     # comments and blank lines are kept as they are
 *     command arg key=value key=(a,b,c)
 *     ----
 *     expected output, up to the next blank line
 *
 * Output never contains a blank line (the printer guarantees it), so a blank line always ends a block.
 * `format` writes a file back with new outputs, which is how `REWRITE=1` regenerates the expectations.
 */

/** One argument of a command line: a bare word (`3`, `|`, `"quoted data"`) or `key=value` / `key=(a,b)`. */
export interface Argument {
  key: string
  /** The values of `key=(a,b)`, or `[value]` for `key=value`; empty for a bare word. */
  values: string[]
}

export interface Directive {
  /** The text before the command (comments, blank lines), written back unchanged. */
  preamble: string
  /** 1-based line of the command in the file, for failure messages. */
  line: number
  /** The command line as written. */
  source: string
  command: string
  args: Argument[]
  expected: string
}

export interface Scenario {
  directives: Directive[]
  /** Comments and blank lines after the last block. */
  trailer: string
}

/** A malformed scenario file: the test fails on it with the file's line. */
export class ScenarioSyntaxError extends Error {
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`)
    this.name = 'ScenarioSyntaxError'
  }
}

const SEPARATOR = '----'

/** Splits a command line at spaces, keeping `"quoted text"` and `(a, b)` lists whole. */
export function tokenize(source: string, line = 0): string[] {
  const tokens: string[] = []
  let current = ''
  let depth = 0
  let quoted = false
  for (const char of source) {
    if (quoted) {
      current += char
      if (char === '"') quoted = false
    } else if (char === '"') {
      quoted = true
      current += char
    } else if (char === '(') {
      depth++
      current += char
    } else if (char === ')') {
      if (depth === 0) throw new ScenarioSyntaxError(line, `unbalanced ')' in: ${source}`)
      depth--
      current += char
    } else if (/\s/.test(char) && depth === 0) {
      if (current !== '') tokens.push(current)
      current = ''
    } else {
      current += char
    }
  }
  if (quoted || depth !== 0) throw new ScenarioSyntaxError(line, `unterminated quote or list in: ${source}`)
  if (current !== '') tokens.push(current)
  return tokens
}

function unquote(word: string): string {
  return word.length >= 2 && word.startsWith('"') && word.endsWith('"') ? word.slice(1, -1) : word
}

function parseArgument(token: string, line: number): Argument {
  const eq = token.startsWith('"') ? -1 : token.indexOf('=')
  if (eq <= 0) return { key: unquote(token), values: [] }
  const key = token.slice(0, eq)
  const value = token.slice(eq + 1)
  if (value.startsWith('(')) {
    if (!value.endsWith(')')) throw new ScenarioSyntaxError(line, `malformed list in ${token}`)
    const inner = value.slice(1, -1).trim()
    const values = inner === '' ? [] : inner.split(/[\s,]+/).map(unquote)
    return { key, values }
  }
  return { key, values: [unquote(value)] }
}

/** Parses a scenario file. */
export function parseScenario(text: string): Scenario {
  const lines = text.split('\n')
  const directives: Directive[] = []
  let preamble: string[] = []
  let i = 0
  while (i < lines.length) {
    const line = lines[i]
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) {
      preamble.push(line)
      i++
      continue
    }
    const lineNumber = i + 1
    if (lines[i + 1] !== SEPARATOR) {
      throw new ScenarioSyntaxError(lineNumber, `expected '${SEPARATOR}' after the command: ${trimmed}`)
    }
    const tokens = tokenize(trimmed, lineNumber)
    const output: string[] = []
    i += 2
    while (i < lines.length && lines[i].trim() !== '') output.push(lines[i++])
    directives.push({
      preamble: preamble.join('\n'),
      line: lineNumber,
      source: trimmed,
      command: tokens[0],
      args: tokens.slice(1).map(token => parseArgument(token, lineNumber)),
      expected: output.join('\n'),
    })
    preamble = []
  }
  return { directives, trailer: preamble.join('\n') }
}

/** The file text with each directive's output replaced by `outputs[i]`. */
export function formatScenario(scenario: Scenario, outputs: readonly string[]): string {
  const parts: string[] = []
  scenario.directives.forEach((directive, i) => {
    if (i > 0 || directive.preamble !== '') parts.push(directive.preamble)
    parts.push(`${directive.source}\n${SEPARATOR}\n${outputs[i]}`)
  })
  // A file ends with one newline; trailing blank lines separated blocks that are no longer there.
  const trailer = scenario.trailer.replace(/\n+$/, '')
  return `${parts.join('\n')}${trailer === '' ? '' : `\n${trailer}`}\n`
}
