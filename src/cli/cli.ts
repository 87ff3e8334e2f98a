/**
 * `conclave`: run an agent, or use a running cluster from the shell. Dispatches to one file per command
 * group; exit status 0 on success, 1 on an error (one line on stderr, `Name: message`), 2 on a usage
 * mistake, or the status of the command that `lock` and `elect` ran.
 */

import { readFileSync } from 'node:fs'
import { formatHelp, parseArgs, UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { formatError } from './output.ts'

interface Group {
  name: string
  summary: string
  load(): Promise<CliCommand[]>
}

// Each group is loaded only when used: `--help` and usage errors do not pay for libp2p.
const GROUPS: Group[] = [
  {
    name: 'agent',
    summary: 'run an agent in the foreground',
    load: async () => [(await import('./agent.ts')).agentCommand],
  },
  {
    name: 'status',
    summary: 'members, roles, leader, term, health',
    load: async () => [(await import('./status.ts')).statusCommand],
  },
  {
    name: 'kv',
    summary: 'put, get, delete, watch the consensus key-value store',
    load: async () => (await import('./kv.ts')).kvCommands,
  },
  {
    name: 'lock',
    summary: 'hold a distributed lock while a command runs',
    load: async () => [(await import('./lock.ts')).lockCommand],
  },
  {
    name: 'task',
    summary: 'submit, list, cancel and watch tasks; follow their status',
    load: async () => (await import('./task.ts')).taskCommands,
  },
  {
    name: 'worker',
    summary: 'run the cluster’s tasks, each as a child process running a command',
    load: async () => [(await import('./worker.ts')).workerCommand],
  },
  {
    name: 'elect',
    summary: 'lead a named election while a command runs',
    load: async () => [(await import('./elect.ts')).electCommand],
  },
  {
    name: 'snapshot',
    summary: 'save a consistent snapshot of the cluster; restore one into a new cluster',
    load: async () => (await import('./snapshot.ts')).snapshotCommands,
  },
  {
    name: 'repair-term',
    summary: "lower a stopped agent's poisoned Raft term (operator repair)",
    load: async () => [(await import('./repair-term.ts')).repairTermCommand],
  },
  {
    name: 'psk',
    summary: 'write a new pre-shared key for a private network',
    load: async () => [(await import('./psk.ts')).pskCommand],
  },
]

function topHelp(): string {
  const width = Math.max(...GROUPS.map(group => group.name.length))
  return [
    'Usage: conclave <command> [options]',
    '',
    'Peer-to-peer coordination for agents: Raft over libp2p, locks, elections, a consensus KV store, tasks.',
    '',
    'Commands:',
    ...GROUPS.map(group => `  ${group.name.padEnd(width)}  ${group.summary}`),
    '',
    'Client commands talk to any agent: --peer <multiaddr> (repeatable, tried in turn) or env CONCLAVE_PEER',
    '(a comma-separated list); --json prints JSON.',
    "Run 'conclave <command> --help' for a command's options.",
    '',
  ].join('\n')
}

function groupHelp(group: Group, commands: CliCommand[]): string {
  const width = Math.max(...commands.map(command => command.spec.name.length))
  return [
    `Usage: conclave ${group.name} <command> [options]`,
    '',
    'Commands:',
    ...commands.map(command => `  ${command.spec.name.padEnd(width)}  ${command.spec.summary}`),
    '',
    `Run 'conclave ${group.name} <command> --help' for a command's options.`,
    '',
  ].join('\n')
}

/** The package version: package.json is two levels up from src/cli, three from dist/src/cli. */
function version(): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as {
        name?: string
        version?: string
      }
      if (manifest.name === 'conclave' && manifest.version !== undefined) return manifest.version
    } catch {}
  }
  return 'unknown'
}

/** Runs the command line `argv` (without the node and script paths); resolves to the exit status. */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    const [first, ...rest] = argv
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      process.stdout.write(topHelp())
      return first === undefined ? 2 : 0
    }
    if (first === '--version' || first === '-v') {
      process.stdout.write(`${version()}\n`)
      return 0
    }
    const group = GROUPS.find(candidate => candidate.name === first)
    if (group === undefined)
      throw new UsageError(`unknown command ${JSON.stringify(first)}; see conclave --help`)
    const commands = await group.load()
    let command: CliCommand | undefined
    let commandArgs = rest
    if (commands.length === 1 && commands[0].spec.name === group.name) {
      command = commands[0]
    } else {
      const [sub, ...subArgs] = rest
      if (sub === undefined || sub === '--help' || sub === '-h') {
        process.stdout.write(groupHelp(group, commands))
        return sub === undefined ? 2 : 0
      }
      command = commands.find(candidate => candidate.spec.name === `${group.name} ${sub}`)
      if (command === undefined) {
        throw new UsageError(`unknown command "${group.name} ${sub}"; see conclave ${group.name} --help`)
      }
      commandArgs = subArgs
    }
    const args = parseArgs(command.spec, commandArgs)
    if (args.help) {
      process.stdout.write(formatHelp(command.spec))
      return 0
    }
    return await command.run(args)
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`)
    if (err instanceof UsageError) return 2
    const exitCode = (err as { exitCode?: unknown }).exitCode
    return typeof exitCode === 'number' ? exitCode : 1
  }
}
