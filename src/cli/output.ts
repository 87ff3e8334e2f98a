/** What the CLI writes: one JSON value per line for scripts, plain lines for people, one line per error. */

/** An error to report under a given name, e.g. one a remote agent answered with. */
export class CliError extends Error {
  readonly exitCode: number
  constructor(name: string, message: string, exitCode = 1) {
    super(message)
    this.name = name
    this.exitCode = exitCode
  }
}

export function printLine(text: string): void {
  process.stdout.write(`${text}\n`)
}

/** One JSON value on one line; bigints as decimal strings. */
export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_key, item) => (typeof item === 'bigint' ? `${item}` : item))}\n`,
  )
}

/** `Name: message` on one line; a stack trace some library put into its message is left out. */
export function formatError(err: unknown): string {
  const line =
    err instanceof Error ? `${err.name || 'Error'}: ${err.message || 'failed'}` : `Error: ${String(err)}`
  return line
    .replace(/\n\s+at [\s\S]*$/, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim()
}

export function printError(err: unknown): void {
  process.stderr.write(`${formatError(err)}\n`)
}

/** A value as a person reads it: strings as they are, anything else as JSON. */
export function formatValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** Rows under a header, columns padded to their widest cell. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map(row => (row[column] ?? '').length)),
  )
  const render = (row: string[]): string =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd()
  return [render(header), ...rows.map(render)].join('\n')
}
