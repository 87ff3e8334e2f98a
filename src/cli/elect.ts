import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, withConnection } from './connection.ts'
import { exitStatus, holdWhile, pollUntilDone } from './hold.ts'
import { CliError, printJson, printLine } from './output.ts'

const DEFAULT_TTL_MS = 10_000

export const electCommand: CliCommand = {
  spec: {
    name: 'elect',
    summary: 'Campaign in a named election and lead it while a command runs, or until interrupted.',
    details:
      'The agent named by --peer stands as the candidate for this client, first come first served. Once it\n' +
      'leads, the command runs with CONCLAVE_ELECTION and CONCLAVE_ELECTION_TERM (increases with every\n' +
      'new leader) in its environment; leadership is renewed every ttl/3 and resigned when the command\n' +
      "ends, and the exit status is the command's. If leadership is lost the command is stopped and the\n" +
      'exit status is 1. If this process dies, the agent resigns after the ttl. With --value, the\n' +
      'leader is observed with that JSON value (etcd Proclaim/Observe): every watcher of the election sees it.',
    positionals: [{ name: 'name', description: 'the election' }],
    command: { name: 'command', description: 'what to run while leading', optional: true },
    options: [
      {
        name: 'ttl',
        kind: 'duration',
        placeholder: '<duration>',
        description: 'how long leadership outlives this process (default 10s)',
      },
      {
        name: 'wait',
        kind: 'duration',
        placeholder: '<duration>',
        description: 'give up (exit 1) if not elected by then (default: wait as long as it takes)',
      },
      {
        name: 'value',
        kind: 'string',
        placeholder: '<json>',
        description: "the leader's value while this client leads, JSON data (e.g. an address)",
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [name] = args.positionals
    const ttl = (args.options.ttl as number | undefined) ?? DEFAULT_TTL_MS
    if (ttl <= 0) throw new UsageError('--ttl must be above 0')
    const json = args.options.json === true
    const value = parseValue(args.options.value as string | undefined)
    return withConnection(args, async connection => {
      const outcome = await pollUntilDone({
        start: waitMs =>
          connection.call(
            'elect.campaign',
            value === undefined ? { name, ttl, waitMs } : { name, ttl, waitMs, value: value.json },
            { waitMs },
          ),
        poll: (handle, waitMs) => connection.call('elect.campaign', { handle, waitMs }, { waitMs }),
        isDone: answer => answer.elected,
        cancel: handle => connection.call('elect.resign', { handle }).then(() => {}),
        limitMs: args.options.wait as number | undefined,
      })
      if (outcome.kind === 'interrupted') return exitStatus(null, outcome.signal)
      if (outcome.kind === 'timedOut') {
        throw new CliError('TimeoutError', `not elected in ${name} within ${args.options.wait} ms`)
      }
      const { answer } = outcome
      if (!answer.elected) throw new Error('unreachable: campaign reported done without leadership')
      const { handle, term } = answer
      return holdWhile({
        ttlMs: ttl,
        startedAt: outcome.startedAt,
        renew: timeoutMs => connection.call('elect.extend', { handle }, { timeoutMs }).then(() => {}),
        isFatal: err =>
          (err as Error).name === 'LeadershipLostError' || (err as Error).name === 'ClosedError',
        release: () => connection.call('elect.resign', { handle }).then(() => {}),
        command: args.command,
        env: { CONCLAVE_ELECTION: name, CONCLAVE_ELECTION_TERM: String(term) },
        announce: () => {
          if (json) printJson({ name, term, agent: connection.peer })
          else printLine(`elected leader of ${name} (term ${term}); holding it until interrupted`)
        },
        lostError: (reason, stopped) =>
          new CliError(
            'LeadershipLostError',
            `leadership of ${name} was lost (${reason.message})${stopped ? '; the command was stopped' : ''}`,
          ),
      })
    })
  },
}

/** `--value` as JSON data; absent when not given. */
function parseValue(text: string | undefined): { json: unknown } | undefined {
  if (text === undefined) return undefined
  try {
    return { json: JSON.parse(text) }
  } catch {
    throw new UsageError(`--value is not JSON: ${text.slice(0, 80)} (a string needs quotes: '"text"')`)
  }
}
