/**
 * `conclave worker -- <command>`: runs the cluster's tasks from the shell, each as a child process. The
 * worker is a client (not a member): the agent it talks to claims tasks for it and holds each attempt while
 * the worker polls it, so the attempt's end (cancelled, timed out, taken away) stops the child at once, and
 * an attempt whose worker vanished is failed for a retry. Given several agents (`--peer a,b,c`), the worker
 * moves to the next when its agent goes away; the attempts it ran there are retried by the cluster.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import type { ClientAttempt } from '../agent/api/tasks/client-workers.ts'
import type { ParsedArgs } from './args.ts'
import { UsageError } from './args.ts'
import type { CliCommand } from './command.ts'
import { CLIENT_OPTIONS, Connection } from './connection.ts'
import { onStopSignal } from './hold.ts'
import { printLine } from './output.ts'

/** How long one `task.next` poll waits on the agent. */
const NEXT_WAIT_MS = 10_000
/** How long one `task.attempt` poll waits on the agent (well inside its grace period). */
const ATTEMPT_WAIT_MS = 2_000
/** SIGTERM, then SIGKILL after this long. */
const KILL_GRACE_MS = 2_000
/** Pause after a failed call before the next, and before moving to another agent. */
const RETRY_MS = 500
/** Most tasks run at once: each slot holds one long poll on the agent, which allows 64 per client. */
const MAX_CONCURRENCY = 32
/** Most bytes of a child's stdout kept (the result) and of its stderr (the error's last line). */
const MAX_OUTPUT_BYTES = 1024 * 1024

/** How a child's run ended: a JSON result, or why the attempt failed. */
export type ChildOutcome = { result: unknown } | { error: string }

/** The environment a task's child gets, besides the worker's own. */
export function taskEnvironment(task: ClientAttempt): Record<string, string> {
  return {
    CONCLAVE_TASK_ID: task.id,
    CONCLAVE_TASK_TYPE: task.type,
    CONCLAVE_TASK_ATTEMPT: String(task.attempt),
    CONCLAVE_TASK_PRIORITY: String(task.priority),
    CONCLAVE_TASK_FENCING_TOKEN: task.fencingToken,
    CONCLAVE_TASK_PAYLOAD: JSON.stringify(task.payload),
    ...(task.deadline === undefined ? {} : { CONCLAVE_TASK_DEADLINE: task.deadline }),
  }
}

/**
 * Runs `argv` for one task: the payload as JSON on stdin, the result as JSON on stdout (empty: null); a
 * non-zero exit is a failure whose error is stderr's last line. `stop` aborting kills the child (SIGTERM,
 * then SIGKILL).
 */
export function runTaskChild(argv: string[], task: ClientAttempt, stop: AbortSignal): Promise<ChildOutcome> {
  return new Promise<ChildOutcome>(resolve => {
    let child: ChildProcess
    try {
      child = spawn(argv[0], argv.slice(1), {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ...taskEnvironment(task) },
        // Its own process group, so that stopping it stops what it started too (`sh -c 'sleep 30'`).
        detached: true,
      })
    } catch (err) {
      resolve({ error: `could not run ${argv[0]}: ${(err as Error).message}` })
      return
    }
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    child.stdout?.on('data', (chunk: Buffer) => {
      outBytes += chunk.length
      if (outBytes <= MAX_OUTPUT_BYTES) stdout.push(chunk)
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      errBytes += chunk.length
      stderr.push(chunk)
      // Only the tail matters (the last line): keep about the last MAX_OUTPUT_BYTES.
      while (errBytes > MAX_OUTPUT_BYTES && stderr.length > 1) errBytes -= stderr.shift()!.length
    })
    // A child that does not read its stdin must not fail the run.
    child.stdin?.on('error', () => {})
    child.stdin?.end(JSON.stringify(task.payload))
    let killer: NodeJS.Timeout | undefined
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal)
      } catch {
        child.kill(signal)
      }
    }
    const kill = (): void => {
      signalGroup('SIGTERM')
      killer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS)
    }
    stop.addEventListener('abort', kill, { once: true })
    let settled = false
    const finish = (outcome: ChildOutcome): void => {
      if (settled) return
      settled = true
      stop.removeEventListener('abort', kill)
      if (killer !== undefined) clearTimeout(killer)
      resolve(outcome)
    }
    child.once('error', err => finish({ error: `could not run ${argv[0]}: ${err.message}` }))
    child.once('close', (code, signal) => {
      if (stop.aborted) return finish({ error: 'stopped: the attempt ended' })
      if (code !== 0) {
        const last = lastLine(Buffer.concat(stderr).toString('utf8'))
        const status = code === null ? `killed by ${signal}` : `exit status ${code}`
        return finish({ error: last === '' ? `${argv[0]}: ${status}` : last })
      }
      if (outBytes > MAX_OUTPUT_BYTES) {
        return finish({ error: `the result on stdout is over ${MAX_OUTPUT_BYTES} bytes` })
      }
      const text = Buffer.concat(stdout).toString('utf8').trim()
      if (text === '') return finish({ result: null })
      try {
        finish({ result: JSON.parse(text) })
      } catch {
        finish({ error: `stdout is not JSON: ${JSON.stringify(text.slice(0, 200))}` })
      }
    })
  })
}

function lastLine(text: string): string {
  const lines = text.split('\n').map(line => line.trimEnd())
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i] !== '') return lines[i]
  return ''
}

const delay = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** The worker's slots: each claims a task, runs it as a child, and ends the attempt. */
class ShellWorker {
  private readonly connection: Connection
  private readonly argv: string[]
  private readonly type: string | undefined
  private readonly json: boolean
  private readonly stopping = new AbortController()
  /** Moving to another agent: one slot does it, the others wait for it. */
  private moving?: Promise<void>

  constructor(connection: Connection, argv: string[], type: string | undefined, json: boolean) {
    this.connection = connection
    this.argv = argv
    this.type = type
    this.json = json
  }

  stop(): void {
    this.stopping.abort()
  }

  async run(concurrency: number): Promise<void> {
    await Promise.all(Array.from({ length: concurrency }, () => this.slot()))
  }

  private async slot(): Promise<void> {
    const stopping = this.stopping.signal
    while (!stopping.aborted) {
      let task: ClientAttempt | undefined
      try {
        const answer = await this.connection.call(
          'task.next',
          { ...(this.type === undefined ? {} : { type: this.type }), waitMs: NEXT_WAIT_MS },
          { waitMs: NEXT_WAIT_MS },
        )
        task = answer.task
      } catch (err) {
        if (stopping.aborted) return
        await this.recover(err)
        continue
      }
      if (task !== undefined) await this.runTask(task)
    }
  }

  /** Runs one attempt to its end; the child is stopped as soon as the attempt is no longer this worker's. */
  private async runTask(task: ClientAttempt): Promise<void> {
    this.report({ event: 'started', taskId: task.id, attempt: task.attempt })
    const ended = new AbortController()
    const watching = this.watchAttempt(task, ended)
    const outcome = await runTaskChild(this.argv, task, ended.signal)
    const stale = ended.signal.aborted
    ended.abort()
    const reason = await watching
    if (stale) {
      this.report({ event: 'stopped', taskId: task.id, attempt: task.attempt, reason: reason ?? 'ended' })
      return
    }
    try {
      await this.connection.call('task.settle', { handle: task.handle, ...outcome })
      this.report({
        event: 'result' in outcome ? 'completed' : 'failed',
        taskId: task.id,
        attempt: task.attempt,
        ...('error' in outcome ? { error: outcome.error } : {}),
      })
    } catch (err) {
      // Not accepted (the attempt ended meanwhile, or its agent went away): the cluster retries the task.
      this.report({
        event: 'refused',
        taskId: task.id,
        attempt: task.attempt,
        reason: (err as Error).message,
      })
    }
  }

  /** Polls the attempt until `ended` aborts; aborts `ended` itself (with the reason) when the attempt ends. */
  private async watchAttempt(task: ClientAttempt, ended: AbortController): Promise<string | undefined> {
    while (!ended.signal.aborted) {
      try {
        const poll = await this.connection.call(
          'task.attempt',
          { handle: task.handle, waitMs: ATTEMPT_WAIT_MS },
          { waitMs: ATTEMPT_WAIT_MS },
        )
        if (!poll.live) {
          ended.abort()
          return poll.reason
        }
      } catch (err) {
        if (ended.signal.aborted) return undefined
        // The agent holding the attempt is gone or no longer knows it: the attempt is lost to this worker.
        ended.abort()
        return (err as Error).message
      }
    }
    return undefined
  }

  /** After a failed `task.next`: move to the next agent if this one went away, else pause. */
  private async recover(err: unknown): Promise<void> {
    const name = (err as Error).name
    const remote = ['NoLeaderError', 'LimitExceededError', 'NotClaimableError', 'ClosedError'].includes(name)
    if (!remote) {
      this.moving ??= this.connection
        .moveOn((err as Error).message)
        .catch(moveErr => {
          process.stderr.write(`conclave worker: ${(moveErr as Error).message}\n`)
        })
        .finally(() => {
          this.moving = undefined
        })
      await this.moving
    }
    await delay(RETRY_MS)
  }

  private report(line: Record<string, unknown>): void {
    if (this.json) printLine(JSON.stringify({ ...line, time: new Date().toISOString() }))
    else {
      const { event, taskId, attempt, ...rest } = line
      const more = Object.values(rest).map(String).join(' ')
      printLine(`${event} ${taskId} attempt ${attempt}${more === '' ? '' : `: ${more}`}`)
    }
  }
}

export const workerCommand: CliCommand = {
  spec: {
    name: 'worker',
    summary: 'Run the cluster’s tasks, each as a child process running a command.',
    details:
      'Claims tasks (of --type only, if given) and runs the command for each, with the payload as JSON on\n' +
      'stdin and in CONCLAVE_TASK_PAYLOAD (and CONCLAVE_TASK_ID, _TYPE, _ATTEMPT, _PRIORITY,\n' +
      '_FENCING_TOKEN, _DEADLINE). What the command prints on stdout is the result, as JSON (nothing: null).\n' +
      'A non-zero exit fails the attempt, with the last line of stderr as the error; the cluster retries it\n' +
      'as the task says. When the attempt ends otherwise (cancelled, timed out, taken away), the command is\n' +
      'stopped (SIGTERM, then SIGKILL). Runs until interrupted; then it stops claiming and waits for the\n' +
      'commands running.',
    positionals: [],
    command: { name: 'command', description: 'what to run for each task', optional: false },
    options: [
      { name: 'type', kind: 'string', placeholder: '<type>', description: 'run only tasks of this type' },
      {
        name: 'concurrency',
        kind: 'integer',
        placeholder: '<n>',
        description: `tasks run at once (default 1, at most ${MAX_CONCURRENCY})`,
      },
      ...CLIENT_OPTIONS,
    ],
  },
  async run(args: ParsedArgs): Promise<number> {
    const concurrency = (args.options.concurrency as number | undefined) ?? 1
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
      throw new UsageError(`--concurrency must be an integer from 1 to ${MAX_CONCURRENCY}`)
    }
    const type = args.options.type as string | undefined
    if (type === '') throw new UsageError('--type must not be empty')
    const connection = await Connection.open(args)
    const worker = new ShellWorker(connection, args.command, type, args.options.json === true)
    const stop = onStopSignal()
    void stop.signal.then(() => worker.stop())
    try {
      await worker.run(concurrency)
      return 0
    } finally {
      stop.dispose()
      await connection.close().catch(() => {})
    }
  },
}
