import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, withConnection } from './connection.ts'
import { exitStatus, holdWhile, pollUntilDone } from './hold.ts'
import { CliError, printJson, printLine } from './output.ts'

const DEFAULT_TTL_MS = 10_000

export const lockCommand: CliCommand = {
  spec: {
    name: 'lock',
    summary: 'Hold a distributed lock while a command runs, or until interrupted when no command is given.',
    details:
      'Waits for the lock (first come, first served), then runs the command with CONCLAVE_LOCK_KEY and\n' +
      'CONCLAVE_LOCK_TOKEN (the fencing token, which increases with every grant) in its environment,\n' +
      'renews the lock every ttl/3, releases it when the command ends and exits with its status. If the\n' +
      'lock is lost, the command is stopped (SIGTERM, then SIGKILL) and the exit status is 1. If this\n' +
      'process dies, the lock lapses after its ttl. With --permits N, it takes one of N permits of the\n' +
      'semaphore <key> (at most N holders at once, first come first served; each permit has its own fencing\n' +
      'token); every holder of one key must name the same N.',
    positionals: [{ name: 'key', description: 'the lock' }],
    command: { name: 'command', description: 'what to run while holding the lock', optional: true },
    options: [
      {
        name: 'ttl',
        kind: 'duration',
        placeholder: '<duration>',
        description: 'lease, renewed every ttl/3 (default 10s)',
      },
      {
        name: 'wait',
        kind: 'duration',
        placeholder: '<duration>',
        description: 'give up (exit 1) if not acquired by then (default: wait as long as it takes)',
      },
      {
        name: 'permits',
        kind: 'integer',
        placeholder: '<n>',
        description: 'hold one of n permits of a semaphore (default 1: a lock)',
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [key] = args.positionals
    const ttl = (args.options.ttl as number | undefined) ?? DEFAULT_TTL_MS
    if (ttl <= 0) throw new UsageError('--ttl must be above 0')
    const json = args.options.json === true
    const permits = args.options.permits as number | undefined
    if (permits !== undefined && permits < 1) throw new UsageError('--permits must be at least 1')
    return withConnection(args, async connection => {
      const outcome = await pollUntilDone({
        start: waitMs =>
          connection.call(
            'lock.acquire',
            permits === undefined ? { key, ttl, waitMs } : { key, ttl, waitMs, permits },
            { waitMs },
          ),
        poll: (handle, waitMs) => connection.call('lock.acquire', { handle, waitMs }, { waitMs }),
        isDone: answer => answer.acquired,
        cancel: handle => connection.call('lock.release', { handle }).then(() => {}),
        limitMs: args.options.wait as number | undefined,
      })
      if (outcome.kind === 'interrupted') return exitStatus(null, outcome.signal)
      if (outcome.kind === 'timedOut') {
        throw new CliError('TimeoutError', `lock ${key} not acquired within ${args.options.wait} ms`)
      }
      const { answer } = outcome
      if (!answer.acquired) throw new Error('unreachable: acquisition reported done without the lock')
      const { handle, fencingToken } = answer
      return holdWhile({
        ttlMs: ttl,
        startedAt: outcome.startedAt,
        renew: timeoutMs => connection.call('lock.extend', { handle, ttl }, { timeoutMs }).then(() => {}),
        isFatal: err => (err as Error).name === 'LockLostError' || (err as Error).name === 'ClosedError',
        release: () => connection.call('lock.release', { handle }).then(() => {}),
        command: args.command,
        env: { CONCLAVE_LOCK_KEY: key, CONCLAVE_LOCK_TOKEN: fencingToken },
        announce: () => {
          if (json) printJson({ key, fencingToken })
          else printLine(`acquired lock ${key} (fencing token ${fencingToken}); holding it until interrupted`)
        },
        lostError: (reason, stopped) =>
          new CliError(
            'LockLostError',
            `lock ${key} was lost (${reason.message})${stopped ? '; the command was stopped' : ''}`,
          ),
      })
    })
  },
}
