/** Reading samples out of Prometheus' text exposition format, for tests. */

/**
 * The value of the sample `name` whose labels include `labels` (all of them, any order); undefined when
 * there is none. Throws when several samples match, so a test names the one it means.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found: number[] = []
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const have = parseLabels(match[2] ?? '')
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) found.push(Number(match[3]))
  }
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]
}

/** The `# HELP` and `# TYPE` of `name`. */
export function describe(text: string, name: string): { help?: string; type?: string } {
  const help = new RegExp(`^# HELP ${name} (.*)$`, 'm').exec(text)?.[1]
  const type = new RegExp(`^# TYPE ${name} (.*)$`, 'm').exec(text)?.[1]
  return { help, type }
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const match of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
    labels[match[1]] = match[2]
  return labels
}
