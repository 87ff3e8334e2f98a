import type { Wire } from '../agent/api/client-protocol.ts'
import type { TaskStatus } from '../api.ts'
import { sleep } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, type Connection, withConnection } from './connection.ts'
import { onStopSignal } from './hold.ts'
import { formatValue, printJson, printLine } from './output.ts'

const FINAL_STATES = new Set(['completed', 'dead', 'expired', 'cancelled'])
const STATUS_POLL_MS = 250

const submit: CliCommand = {
  spec: {
    name: 'task submit',
    summary: 'Submit a task to the cluster; prints its id.',
    positionals: [{ name: 'type', description: 'the task type' }],
    options: [
      { name: 'id', kind: 'string', placeholder: '<id>', description: 'task id (default: generated)' },
      {
        name: 'payload',
        kind: 'string',
        placeholder: '<json>',
        description: 'JSON object handed to the worker',
      },
      { name: 'priority', kind: 'integer', placeholder: '<n>', description: 'higher runs first (default 0)' },
      {
        name: 'require',
        kind: 'list',
        placeholder: '<a,b>',
        description: 'capabilities the agent must have',
      },
      {
        name: 'prefer',
        kind: 'list',
        placeholder: '<agents>',
        description: 'agent ids or names tried first',
      },
      {
        name: 'exclude',
        kind: 'list',
        placeholder: '<agents>',
        description: 'agent ids or names never assigned',
      },
      {
        name: 'max-retries',
        kind: 'integer',
        placeholder: '<n>',
        description: 'retries after the first attempt',
      },
      {
        name: 'attempt-timeout',
        kind: 'duration',
        placeholder: '<duration>',
        description: 'how long one attempt may run (0: no limit)',
      },
      {
        name: 'affinity',
        kind: 'string',
        placeholder: '<key>',
        description: 'prefer the agent that ran this key last',
      },
      {
        name: 'deadline',
        kind: 'string',
        placeholder: '<iso-date>',
        description: 'expire if not completed by then',
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [type] = args.positionals
    const options = args.options
    const task: Record<string, unknown> = { type }
    if (options.id !== undefined) task.id = options.id
    if (options.priority !== undefined) task.priority = options.priority
    if (options.payload !== undefined) task.payload = parsePayload(options.payload as string)
    if (options.deadline !== undefined) {
      const deadline = new Date(options.deadline as string)
      if (Number.isNaN(deadline.getTime()))
        throw new UsageError('--deadline must be a date, e.g. 2030-01-01T00:00:00Z')
      task.deadline = deadline.toISOString()
    }
    const constraints: Record<string, unknown> = {}
    if (options.require !== undefined) constraints.requiredCapabilities = options.require
    if (options.prefer !== undefined) constraints.preferredAgents = options.prefer
    if (options.exclude !== undefined) constraints.excludeAgents = options.exclude
    if (options['max-retries'] !== undefined) constraints.maxRetries = options['max-retries']
    if (options['attempt-timeout'] !== undefined) constraints.timeout = options['attempt-timeout']
    if (options.affinity !== undefined) constraints.affinity = options.affinity
    if (Object.keys(constraints).length > 0) task.constraints = constraints
    const submitted = await withConnection(args, connection =>
      connection.call('task.submit', { task: task as never }),
    )
    if (options.json === true) printJson(submitted)
    else printLine(String(submitted.id))
    return 0
  },
}

const status: CliCommand = {
  spec: {
    name: 'task status',
    summary: 'Print the state of a task; with --wait, wait until it is completed, dead or expired.',
    details: 'With --wait, the exit status is 0 if the task completed and 1 otherwise.',
    positionals: [{ name: 'id', description: 'the task id' }],
    options: [{ name: 'wait', kind: 'boolean', description: 'wait for a final state' }, ...CLIENT_OPTIONS],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [id] = args.positionals
    const wait = args.options.wait === true
    const stop = onStopSignal()
    try {
      return await withConnection(args, async connection => {
        for (;;) {
          const current = await fetchStatus(connection, id)
          const final = FINAL_STATES.has(current.state)
          if (!wait || final) {
            if (args.options.json === true) printJson(current)
            else printLine(formatTaskStatus(current))
            return wait && current.state !== 'completed' ? 1 : 0
          }
          const stopped = await Promise.race([
            stop.signal,
            sleep(systemScheduler, STATUS_POLL_MS).then(() => undefined),
          ])
          if (stopped !== undefined) return 130
        }
      })
    } finally {
      stop.dispose()
    }
  },
}

function fetchStatus(connection: Connection, id: string): Promise<Wire<TaskStatus>> {
  return connection.call('task.status', { id })
}

function parsePayload(text: string): Record<string, unknown> {
  let payload: unknown
  try {
    payload = JSON.parse(text)
  } catch {
    throw new UsageError('--payload must be a JSON object')
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new UsageError('--payload must be a JSON object')
  }
  return payload as Record<string, unknown>
}

function formatTaskStatus(status: Wire<TaskStatus>): string {
  const parts = [`${status.id}: ${status.state}`, `attempt ${status.attempt}`]
  if (status.assignee !== undefined) parts.push(`assignee ${status.assignee}`)
  if (status.result !== undefined) parts.push(`result ${formatValue(status.result)}`)
  if (status.error !== undefined) parts.push(`error ${status.error}`)
  if (status.updatedAt !== undefined) parts.push(`updated ${status.updatedAt}`)
  return parts.join(', ')
}

export const taskCommands: CliCommand[] = [submit, status]
