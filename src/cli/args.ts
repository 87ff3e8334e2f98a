/**
 * The CLI's own small argument parser: `--name value`, `--name=value`, boolean flags, repeatable and
 * comma-separated lists, durations (`500`, `500ms`, `10s`, `2m`), `--` before a command to run, and
 * `-h`/`--help` everywhere. Every mistake is a `UsageError` with one line that names it.
 */

export type OptionKind = 'string' | 'number' | 'integer' | 'duration' | 'boolean' | 'list'

export interface OptionSpec {
  name: string
  kind: OptionKind
  description: string
  /** Shown in help after the name, e.g. `<multiaddr>`. */
  placeholder?: string
  /** A `string` option may be given more than once; values accumulate (lists always accumulate). */
  repeatable?: boolean
}

export interface PositionalSpec {
  name: string
  description: string
  optional?: boolean
}

export interface CommandSpec {
  /** e.g. `kv put`. */
  name: string
  summary: string
  /** More text for `--help`, after the usage line. */
  details?: string
  positionals: PositionalSpec[]
  options: OptionSpec[]
  /** Takes a command to run after its positionals (or after `--`). */
  command?: { name: string; description: string; optional: boolean }
}

export type OptionValue = string | number | boolean | string[]

export interface ParsedArgs {
  options: Record<string, OptionValue>
  positionals: string[]
  /** The command to run, when the spec takes one. */
  command: string[]
  help: boolean
}

/** A mistake in the command line; exit status 2. */
export class UsageError extends Error {
  static override readonly name = 'UsageError'
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const options: Record<string, OptionValue> = {}
  const positionals: string[] = []
  const byName = new Map(spec.options.map(option => [option.name, option]))
  let help = false
  let index = 0
  let command: string[] = []
  const maxPositionals = spec.positionals.length
  while (index < argv.length) {
    const token = argv[index++]
    if (token === '--') {
      const rest = argv.slice(index)
      if (spec.command !== undefined) command = rest
      else positionals.push(...rest)
      break
    }
    if (token === '-h' || token === '--help') {
      help = true
      continue
    }
    if (token.startsWith('--') && token.length > 2) {
      const equals = token.indexOf('=')
      const name = equals < 0 ? token.slice(2) : token.slice(2, equals)
      const option = byName.get(name)
      if (option === undefined) throw new UsageError(`unknown option --${name} for "conclave ${spec.name}"`)
      if (option.kind === 'boolean') {
        if (equals >= 0) {
          const text = token.slice(equals + 1)
          if (text !== 'true' && text !== 'false') throw new UsageError(`--${name} takes no value`)
          options[name] = text === 'true'
        } else {
          options[name] = true
        }
        continue
      }
      let text: string
      if (equals >= 0) {
        text = token.slice(equals + 1)
      } else {
        // `--peer --json` is a forgotten value, not a peer named "--json".
        if (index >= argv.length || argv[index].startsWith('--'))
          throw new UsageError(`--${name} needs a value`)
        text = argv[index++]
      }
      setOption(options, option, text)
      continue
    }
    if (token.startsWith('-') && token.length > 1 && !isNumber(token)) {
      throw new UsageError(`unknown option ${token} for "conclave ${spec.name}"`)
    }
    if (positionals.length < maxPositionals) {
      positionals.push(token)
      continue
    }
    if (spec.command !== undefined) {
      // The command starts here; its own flags are its business.
      command = argv.slice(index - 1)
      break
    }
    throw new UsageError(`unexpected argument ${JSON.stringify(token)} for "conclave ${spec.name}"`)
  }
  if (!help) {
    const required = spec.positionals.filter(positional => positional.optional !== true)
    if (positionals.length < required.length) {
      throw new UsageError(`"conclave ${spec.name}" needs <${required[positionals.length].name}>`)
    }
    if (spec.command !== undefined && !spec.command.optional && command.length === 0) {
      throw new UsageError(`"conclave ${spec.name}" needs a command to run after --`)
    }
  }
  return { options, positionals, command, help }
}

function setOption(options: Record<string, OptionValue>, option: OptionSpec, text: string): void {
  const name = option.name
  switch (option.kind) {
    case 'list': {
      const items = text
        .split(',')
        .map(item => item.trim())
        .filter(item => item !== '')
      options[name] = [...((options[name] as string[] | undefined) ?? []), ...items]
      return
    }
    case 'string':
      if (option.repeatable === true) {
        options[name] = [...((options[name] as string[] | undefined) ?? []), text]
      } else {
        options[name] = text
      }
      return
    case 'number':
      if (!isNumber(text)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(text)}`)
      options[name] = Number(text)
      return
    case 'integer':
      if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(text)}`)
      }
      options[name] = Number(text)
      return
    case 'duration':
      options[name] = parseDuration(name, text)
      return
    case 'boolean':
      options[name] = true
      return
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `1500`, `1500ms`, `1.5s`, `2m`, `1h` → milliseconds. */
export function parseDuration(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (match === null) {
    throw new UsageError(`--${name} must be a duration like 500ms, 10s or 2m, got ${JSON.stringify(text)}`)
  }
  return Math.round(Number(match[1]) * UNITS[match[2] ?? 'ms'])
}

function isNumber(text: string): boolean {
  return text.trim() !== '' && Number.isFinite(Number(text))
}

/** The `--help` text of one command. */
export function formatHelp(spec: CommandSpec): string {
  const usage = ['conclave', spec.name]
  for (const positional of spec.positionals) {
    usage.push(positional.optional === true ? `[<${positional.name}>]` : `<${positional.name}>`)
  }
  if (spec.options.length > 0) usage.push('[options]')
  if (spec.command !== undefined) {
    const text = `-- <${spec.command.name}...>`
    usage.push(spec.command.optional ? `[${text}]` : text)
  }
  const lines = [`Usage: ${usage.join(' ')}`, '', spec.summary]
  if (spec.details !== undefined) lines.push('', spec.details)
  const rows: [string, string][] = []
  for (const positional of spec.positionals) rows.push([`<${positional.name}>`, positional.description])
  if (spec.command !== undefined) rows.push([`<${spec.command.name}...>`, spec.command.description])
  if (rows.length > 0) lines.push('', 'Arguments:', ...table(rows))
  const optionRows: [string, string][] = spec.options.map(option => [
    `--${option.name}${option.kind === 'boolean' ? '' : ` ${option.placeholder ?? `<${option.kind}>`}`}`,
    option.description,
  ])
  optionRows.push(['-h, --help', 'show this help'])
  lines.push('', 'Options:', ...table(optionRows))
  return `${lines.join('\n')}\n`
}

function table(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length))
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`)
}
