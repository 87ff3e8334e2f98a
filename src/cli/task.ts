import type { Wire } from '../agent/api/client-protocol.ts'
import type { TaskEvent, TaskStatus } from '../api.ts'
import { TASK_STATES } from '../state/task-spec.ts'
import { sleep } from '../time/sleep.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
import type { OptionSpec, ParsedArgs } from './args.ts'
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
      { name: 'run-at', kind: 'string', placeholder: '<iso-date>', description: 'do not start before then' },
      {
        name: 'depends-on',
        kind: 'list',
        placeholder: '<ids>',
        description: 'start only after these tasks completed',
      },
      {
        name: 'every',
        kind: 'duration',
        placeholder: '<duration>',
        description: 'repeat: a new occurrence every so often',
      },
      { name: 'cron', kind: 'string', placeholder: '<expr>', description: 'repeat: on this cron schedule' },
      {
        name: 'timezone',
        kind: 'string',
        placeholder: '<tz>',
        description: 'the time zone of --cron (default UTC)',
      },
      { name: 'limit', kind: 'integer', placeholder: '<n>', description: 'repeat: at most n occurrences' },
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
    if (options.deadline !== undefined) task.deadline = isoDate(options.deadline as string, '--deadline')
    if (options['run-at'] !== undefined) task.runAt = isoDate(options['run-at'] as string, '--run-at')
    if (options['depends-on'] !== undefined) task.dependsOn = options['depends-on']
    if (options.every !== undefined && options.cron !== undefined) {
      throw new UsageError('give one of --every and --cron')
    }
    if (options.every !== undefined || options.cron !== undefined) {
      const repeat: Record<string, unknown> = {}
      if (options.every !== undefined) repeat.every = options.every
      if (options.cron !== undefined) repeat.cron = options.cron
      if (options.timezone !== undefined) repeat.timezone = options.timezone
      if (options.limit !== undefined) repeat.limit = options.limit
      task.repeat = repeat
    } else if (options.timezone !== undefined || options.limit !== undefined) {
      throw new UsageError('--timezone and --limit go with --every or --cron')
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
    summary:
      'Print the state of a task; with --wait, wait until it is completed, dead, expired or cancelled.',
    details:
      'With --wait, the exit status is 0 if the task completed and 1 otherwise; while it waits, it says on\n' +
      'stderr what the task waits for (a date, its parents, a worker, the attempt running).',
    positionals: [{ name: 'id', description: 'the task id' }],
    options: [{ name: 'wait', kind: 'boolean', description: 'wait for a final state' }, ...CLIENT_OPTIONS],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [id] = args.positionals
    const wait = args.options.wait === true
    const stop = onStopSignal()
    try {
      return await withConnection(args, async connection => {
        const names = new AgentNames(connection)
        let told = ''
        for (;;) {
          const current = await fetchStatus(connection, id)
          const final = FINAL_STATES.has(current.state)
          if (!wait || final) {
            const assigneeName = current.assignee === undefined ? undefined : await names.of(current.assignee)
            if (args.options.json === true)
              printJson(assigneeName === undefined ? current : { ...current, assigneeName })
            else printLine(formatTaskStatus(current, assigneeName))
            return wait && current.state !== 'completed' ? 1 : 0
          }
          const waitingFor = await describeWait(connection, current, names)
          if (waitingFor !== told) {
            process.stderr.write(`waiting: ${waitingFor}\n`)
            told = waitingFor
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

/** Agent names by id, from the cluster's member list (fetched once, again for an id it did not know). */
class AgentNames {
  private readonly connection: Connection
  private names?: Map<string, string>

  constructor(connection: Connection) {
    this.connection = connection
  }

  async of(id: string): Promise<string> {
    if (this.names?.has(id) !== true) {
      const cluster = await this.connection.call('status', {})
      this.names = new Map(cluster.members.map(member => [member.id, member.name]))
    }
    return this.names.get(id) ?? id
  }
}

/** What a task that is not final waits for, in words. */
async function describeWait(
  connection: Connection,
  task: Wire<TaskStatus>,
  names: AgentNames,
): Promise<string> {
  switch (task.state) {
    case 'waiting': {
      const parts: string[] = []
      if (task.runAt !== undefined && Date.parse(task.runAt) > Date.now())
        parts.push(`its start time ${task.runAt}`)
      const open: string[] = []
      for (const parent of task.dependsOn ?? []) {
        const state = await fetchStatus(connection, parent).then(
          found => found.state,
          () => 'unknown',
        )
        if (state !== 'completed') open.push(`${parent} (${state})`)
      }
      if (open.length > 0) parts.push(`task${open.length > 1 ? 's' : ''} ${open.join(', ')} to complete`)
      return `${task.id} is waiting for ${parts.length > 0 ? parts.join(' and ') : 'its turn'}`
    }
    case 'pending':
      return (
        `${task.id} is pending: no agent running a worker has taken it yet ` +
        '(run one: conclave worker --peer <agent> -- <command>; or the task asks for capabilities no worker has)'
      )
    case 'assigned':
      return `${task.id} is assigned to ${await names.of(task.assignee ?? '?')}, which has not started it yet`
    case 'running':
      return `${task.id} is running on ${await names.of(task.assignee ?? '?')} (attempt ${task.attempt})`
    case 'failed':
      return `${task.id}: attempt ${task.attempt} failed (${task.error ?? 'no error given'}); a retry is due after its back-off`
    default:
      return `${task.id} is ${task.state}`
  }
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

function formatTaskStatus(status: Wire<TaskStatus>, assigneeName?: string): string {
  const parts = [`${status.id}: ${status.state}`, `attempt ${status.attempt}`]
  if (status.assignee !== undefined) {
    const name = assigneeName ?? status.assignee
    parts.push(name === status.assignee ? `assignee ${name}` : `assignee ${name} (${status.assignee})`)
  }
  if (status.result !== undefined) parts.push(`result ${formatValue(status.result)}`)
  if (status.error !== undefined) parts.push(`error ${status.error}`)
  if (status.cancelReason !== undefined) parts.push(`reason ${status.cancelReason}`)
  if (status.updatedAt !== undefined) parts.push(`updated ${status.updatedAt}`)
  return parts.join(', ')
}

function isoDate(text: string, option: string): string {
  const date = new Date(text)
  if (Number.isNaN(date.getTime()))
    throw new UsageError(`${option} must be a date, e.g. 2030-01-01T00:00:00Z`)
  return date.toISOString()
}

const FILTER_OPTIONS: OptionSpec[] = [
  {
    name: 'state',
    kind: 'list',
    placeholder: '<states>',
    description: `only these states (${TASK_STATES.join(', ')})`,
  },
  { name: 'type', kind: 'string', placeholder: '<type>', description: 'only tasks of this type' },
  { name: 'assignee', kind: 'string', placeholder: '<agent-id>', description: 'only tasks on this agent' },
]

/** The `TaskFilter` of the filter options; an unknown state is a usage error. */
function filterOf(args: ParsedArgs, withId = false): Record<string, unknown> {
  const filter: Record<string, unknown> = {}
  const states = args.options.state as string[] | undefined
  if (states !== undefined) {
    for (const state of states) {
      if (!(TASK_STATES as readonly string[]).includes(state)) {
        throw new UsageError(
          `--state ${JSON.stringify(state)} is not a task state (${TASK_STATES.join(', ')})`,
        )
      }
    }
    filter.state = states
  }
  if (args.options.type !== undefined) filter.type = args.options.type
  if (args.options.assignee !== undefined) filter.assignee = args.options.assignee
  if (withId && args.options.id !== undefined) filter.id = args.options.id
  return filter
}

const list: CliCommand = {
  spec: {
    name: 'task list',
    summary: 'List tasks in submission order, by state, type or assignee.',
    details: 'Prints one page (--limit, default 100); when there are more, says how to get the next.',
    positionals: [],
    options: [
      ...FILTER_OPTIONS,
      { name: 'limit', kind: 'integer', placeholder: '<n>', description: 'tasks per page (default 100)' },
      { name: 'after', kind: 'string', placeholder: '<id>', description: 'start after this task id' },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const filter = filterOf(args)
    const limit = (args.options.limit as number | undefined) ?? 100
    const after = args.options.after as string | undefined
    const page = await withConnection(args, async connection => {
      const answer = await connection.call('task.list', {
        filter: filter as never,
        limit,
        ...(after === undefined ? {} : { after }),
      })
      const names = new AgentNames(connection)
      const rows = await Promise.all(
        answer.tasks.map(async task => ({
          task,
          name: task.assignee === undefined ? undefined : await names.of(task.assignee),
        })),
      )
      return { ...answer, rows }
    })
    if (args.options.json === true) {
      printJson({
        tasks: page.rows.map(row =>
          row.name === undefined ? row.task : { ...row.task, assigneeName: row.name },
        ),
        more: page.more,
      })
      return 0
    }
    for (const { task, name } of page.rows) {
      printLine(
        [
          task.id,
          task.state,
          task.type,
          `attempt ${task.attempt}`,
          ...(name === undefined ? [] : [`on ${name}`]),
        ].join('  '),
      )
    }
    if (page.more) {
      const last = page.rows[page.rows.length - 1]?.task.id
      process.stderr.write(`more tasks: conclave task list --after ${last} ...\n`)
    }
    return 0
  },
}

const cancel: CliCommand = {
  spec: {
    name: 'task cancel',
    summary: 'Cancel a task: at once if it has not started; a running attempt is stopped and refused.',
    details: 'A task already completed, dead, expired or cancelled is left as it is.',
    positionals: [{ name: 'id', description: 'the task id' }],
    options: [
      { name: 'reason', kind: 'string', placeholder: '<text>', description: 'why, kept with the task' },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const [id] = args.positionals
    const reason = args.options.reason as string | undefined
    const after = await withConnection(args, async connection => {
      await connection.call('task.cancel', { id, ...(reason === undefined ? {} : { reason }) })
      return fetchStatus(connection, id)
    })
    if (args.options.json === true) printJson(after)
    else printLine(formatTaskStatus(after))
    return 0
  },
}

/** How long one `task.events` poll waits on the agent. */
const WATCH_WAIT_MS = 10_000

const watch: CliCommand = {
  spec: {
    name: 'task watch',
    summary: 'Print every task change (and progress) as it happens, until interrupted.',
    details:
      'Each line carries the change revision; --from-revision resumes after a stop. If the agent goes away,\n' +
      'the watch resumes on the next agent given (--peer a,b,c) from its last revision: no change is missed\n' +
      'or printed twice.',
    positionals: [],
    options: [
      ...FILTER_OPTIONS,
      { name: 'id', kind: 'string', placeholder: '<id>', description: 'only this task' },
      {
        name: 'from-revision',
        kind: 'integer',
        placeholder: '<n>',
        description: 'start at this revision (default: changes from now on)',
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const filter = filterOf(args, true)
    let fromRevision = args.options['from-revision'] as number | undefined
    const stop = onStopSignal()
    let stopped = false
    void stop.signal.then(() => {
      stopped = true
    })
    try {
      return await withConnection(args, async connection => {
        while (!stopped) {
          const answer = await Promise.race([
            connection.call(
              'task.events',
              {
                filter: filter as never,
                waitMs: WATCH_WAIT_MS,
                ...(fromRevision === undefined ? {} : { fromRevision }),
              },
              { waitMs: WATCH_WAIT_MS },
            ),
            stop.signal.then(() => undefined),
          ])
          if (answer === undefined) break
          for (const event of answer.events) {
            if (args.options.json === true) printLine(JSON.stringify(event))
            else printLine(formatTaskEvent(event))
          }
          fromRevision = answer.nextRevision
        }
        return 130
      })
    } finally {
      stop.dispose()
    }
  },
}

function formatTaskEvent(event: Wire<TaskEvent>): string {
  const parts = [`${event.revision}`, event.type, event.taskId, event.taskType, `attempt ${event.attempt}`]
  if (event.assignee !== undefined) parts.push(`on ${event.assignee}`)
  if (event.progress !== undefined) parts.push(`progress ${formatValue(event.progress)}`)
  if (event.result !== undefined) parts.push(`result ${formatValue(event.result)}`)
  if (event.error !== undefined) parts.push(`error ${event.error}`)
  return parts.join('  ')
}

export const taskCommands: CliCommand[] = [submit, status, list, cancel, watch]
