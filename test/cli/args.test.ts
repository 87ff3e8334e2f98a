import { describe, expect, it } from 'vitest'
import { type CommandSpec, formatHelp, parseArgs, parseDuration, UsageError } from '../../src/cli/args.ts'

const spec: CommandSpec = {
  name: 'lock',
  summary: 'Hold a lock.',
  positionals: [{ name: 'key', description: 'the lock' }],
  command: { name: 'command', description: 'what to run', optional: true },
  options: [
    { name: 'ttl', kind: 'duration', description: 'lease' },
    { name: 'peer', kind: 'string', description: 'agent' },
    { name: 'listen', kind: 'string', repeatable: true, description: 'address' },
    { name: 'bootstrap', kind: 'list', description: 'members' },
    { name: 'voters', kind: 'integer', description: 'voters' },
    { name: 'json', kind: 'boolean', description: 'JSON' },
  ],
}

function usageError(argv: string[]): string {
  try {
    parseArgs(spec, argv)
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError)
    return (err as Error).message
  }
  throw new Error('expected a UsageError')
}

describe('parseArgs', () => {
  it('reads options in both spellings, lists, repeats, and the command after the positionals', () => {
    const parsed = parseArgs(spec, [
      'k',
      '--ttl=2s',
      '--peer',
      '/ip4/1.2.3.4/tcp/5',
      '--listen',
      'a',
      '--listen=b',
      '--bootstrap',
      'x,y',
      '--bootstrap',
      'z',
      '--voters',
      '3',
      '--json',
      'node',
      '-e',
      '--ttl',
    ])
    expect(parsed.positionals).toEqual(['k'])
    expect(parsed.options).toEqual({
      ttl: 2000,
      peer: '/ip4/1.2.3.4/tcp/5',
      listen: ['a', 'b'],
      bootstrap: ['x', 'y', 'z'],
      voters: 3,
      json: true,
    })
    expect(parsed.command).toEqual(['node', '-e', '--ttl'])
    expect(parseArgs(spec, ['k', '--', '--not-an-option']).command).toEqual(['--not-an-option'])
    expect(parseArgs(spec, ['--help']).help).toBe(true)
  })

  it('names the mistake in one line', () => {
    expect(usageError(['k', '--nope'])).toBe('unknown option --nope for "conclave lock"')
    expect(usageError(['k', '-x'])).toContain('unknown option -x')
    expect(usageError(['k', '--peer'])).toBe('--peer needs a value')
    expect(usageError(['k', '--peer', '--json'])).toBe('--peer needs a value')
    expect(usageError(['k', '--voters', '2.5'])).toContain('--voters must be an integer')
    expect(usageError(['k', '--ttl', 'soon'])).toContain('--ttl must be a duration')
    expect(usageError(['k', '--json=yes'])).toBe('--json takes no value')
    expect(usageError([])).toBe('"conclave lock" needs <key>')
    expect(() => parseArgs({ ...spec, command: undefined }, ['k', 'extra'])).toThrow(
      'unexpected argument "extra"',
    )
  })

  it('parses durations with units', () => {
    expect(parseDuration('t', '1500')).toBe(1500)
    expect(parseDuration('t', '250ms')).toBe(250)
    expect(parseDuration('t', '1.5s')).toBe(1500)
    expect(parseDuration('t', '2m')).toBe(120_000)
    expect(parseDuration('t', '1h')).toBe(3_600_000)
    expect(() => parseDuration('t', '-1s')).toThrow(UsageError)
  })

  it('formats help with usage, arguments and options', () => {
    const help = formatHelp(spec)
    expect(help.startsWith('Usage: conclave lock <key> [options] [-- <command...>]\n')).toBe(true)
    expect(help).toContain('  --ttl <duration>')
    expect(help).toContain('  -h, --help')
  })
})
