/**
 * Holding something the cluster leases to this client (a lock, a leadership) while a command runs: renew
 * at ttl/3, give up when a renewal is refused or the local bound of the lease passes, and run the
 * command as a child that is stopped the moment the lease is gone.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { constants } from 'node:os'
import { CliError, formatError } from './output.ts'

/** The signals the CLI stops on, and passes on to a child it runs. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
type StopSignal = (typeof STOP_SIGNALS)[number]

/** What the local bound of a lease keeps in reserve for clock drift and scheduling delay. */
export function leaseMargin(ttlMs: number): number {
  return Math.max(50, ttlMs * 0.1)
}

export interface LeaseKeeperOptions {
  ttlMs: number
  /** performance.now() at or before which the lease began (the send time of the request that set it). */
  startedAt: number
  /** Renews the lease; resolve = renewed for another ttl from the time it was sent. */
  renew(timeoutMs: number): Promise<void>
  /** A renewal error that means the lease is gone for good (otherwise it is retried while time remains). */
  isFatal(err: unknown): boolean
}

/** Keeps a lease alive; `lost` resolves with the reason once it is gone. */
export class LeaseKeeper {
  readonly lost: Promise<Error>
  private readonly options: LeaseKeeperOptions
  private leaseEnd: number
  private renewTimer?: NodeJS.Timeout
  private endTimer?: NodeJS.Timeout
  private stopped = false
  private declareLost: (reason: Error) => void = () => {}

  constructor(options: LeaseKeeperOptions) {
    this.options = options
    this.leaseEnd = options.startedAt + options.ttlMs - leaseMargin(options.ttlMs)
    this.lost = new Promise(resolve => {
      this.declareLost = reason => {
        if (this.stopped) return
        this.stop()
        resolve(reason)
      }
    })
    this.watchEnd()
    // Renew at ttl/3, or sooner if the lease may have begun well before this keeper.
    this.schedule(Math.min(options.ttlMs / 3, Math.max(0, (this.leaseEnd - performance.now()) / 2)))
  }

  /** Stops renewing (before releasing). */
  stop(): void {
    this.stopped = true
    clearTimeout(this.renewTimer)
    clearTimeout(this.endTimer)
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    this.renewTimer = setTimeout(() => this.renew(), delayMs)
  }

  private async renew(): Promise<void> {
    const sentAt = performance.now()
    const remaining = this.leaseEnd - sentAt
    if (remaining <= 0) return
    try {
      await this.options.renew(Math.max(1, remaining))
      if (this.stopped) return
      this.leaseEnd = sentAt + this.options.ttlMs - leaseMargin(this.options.ttlMs)
      this.watchEnd()
      this.schedule(this.options.ttlMs / 3)
    } catch (err) {
      if (this.options.isFatal(err)) {
        this.declareLost(err instanceof Error ? err : new Error(String(err)))
        return
      }
      // A passing failure (no leader for a moment, a slow answer): try again soon, while the lease lasts.
      this.schedule(Math.min(this.options.ttlMs / 10, 1000))
    }
  }

  private watchEnd(): void {
    clearTimeout(this.endTimer)
    const wait = this.leaseEnd - performance.now()
    this.endTimer = setTimeout(
      () => {
        if (performance.now() >= this.leaseEnd) {
          const error = new Error('the lease ran out before it could be renewed')
          error.name = 'LeaseExpiredError'
          this.declareLost(error)
        } else {
          this.watchEnd()
        }
      },
      Math.max(0, wait),
    )
  }
}

/**
 * Resolves with the first of SIGINT/SIGTERM/SIGHUP; `dispose()` removes the handlers. While installed,
 * those signals no longer kill the CLI: it cleans up and exits by itself.
 */
export function onStopSignal(): { signal: Promise<StopSignal>; dispose(): void } {
  const handlers = new Map<StopSignal, () => void>()
  const signal = new Promise<StopSignal>(resolve => {
    for (const name of STOP_SIGNALS) {
      const handler = (): void => resolve(name)
      handlers.set(name, handler)
      process.on(name, handler)
    }
  })
  return {
    signal,
    dispose() {
      for (const [name, handler] of handlers) process.off(name, handler)
    },
  }
}

/** The exit status a shell reports for a child that ended this way. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  const number = signal === null ? undefined : constants.signals[signal]
  return 128 + (number ?? 1)
}

export type HeldRun =
  | { kind: 'exited'; status: number }
  | { kind: 'lost'; reason: Error }
  | { kind: 'failed'; error: Error }

/**
 * Runs `argv` with `env` added to this process's environment, passing on stop signals, until it exits or
 * `lost` resolves; then the child gets SIGTERM, and SIGKILL after `killGraceMs`.
 */
export async function runWhileHeld(
  argv: string[],
  env: Record<string, string>,
  lost: Promise<Error>,
  killGraceMs = 2000,
): Promise<HeldRun> {
  let child: ChildProcess
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } })
  } catch (err) {
    return { kind: 'failed', error: err as Error }
  }
  const forward = (signal: StopSignal) => (): void => {
    child.kill(signal)
  }
  const forwarders = STOP_SIGNALS.map(signal => [signal, forward(signal)] as const)
  for (const [signal, handler] of forwarders) process.on(signal, handler)
  const exited = new Promise<HeldRun>(resolve => {
    child.once('error', err => resolve({ kind: 'failed', error: err }))
    child.once('exit', (code, signal) => resolve({ kind: 'exited', status: exitStatus(code, signal) }))
  })
  try {
    const first = await Promise.race([exited, lost.then(reason => ({ kind: 'lost', reason }) as const)])
    if (first.kind !== 'lost') return first
    child.kill('SIGTERM')
    const killer = setTimeout(() => child.kill('SIGKILL'), killGraceMs)
    await exited
    clearTimeout(killer)
    return first
  } finally {
    for (const [signal, handler] of forwarders) process.off(signal, handler)
  }
}

/** How long one acquisition or campaign poll waits on the agent. */
const POLL_WAIT_MS = 5_000

export interface Poll {
  handle: string
}

export type PollOutcome<T> =
  | { kind: 'done'; answer: T; startedAt: number }
  | { kind: 'interrupted'; signal: StopSignal }
  | { kind: 'timedOut' }

/**
 * Polls an acquisition until `isDone`, `limitMs` passes, or a stop signal; in the last two cases the
 * handle is given back with `cancel`.
 *
 * `startedAt` bounds from below when the lease began. It was granted after the agent answered the
 * previous poll "not yet" (or the answer would have said so), and the agent answers "not yet" only once
 * that poll's wait is over: so no earlier than the previous poll's send time plus its wait. For the first
 * poll, its own send time.
 */
export async function pollUntilDone<T extends Poll>(options: {
  start(waitMs: number): Promise<T>
  poll(handle: string, waitMs: number): Promise<T>
  isDone(answer: T): boolean
  cancel(handle: string): Promise<void>
  limitMs: number | undefined
}): Promise<PollOutcome<T>> {
  const deadline =
    options.limitMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + options.limitMs
  const waitFor = (): number => Math.max(0, Math.min(POLL_WAIT_MS, deadline - performance.now()))
  const stop = onStopSignal()
  let handle: string | undefined
  let sentAt = performance.now()
  let waitMs = waitFor()
  let startedAt = sentAt
  try {
    let pending = options.start(waitMs)
    for (;;) {
      const answer = await Promise.race([pending, stop.signal])
      if (typeof answer === 'string') {
        pending.then(
          late => options.cancel(late.handle),
          () => {},
        )
        if (handle !== undefined) await options.cancel(handle).catch(() => {})
        return { kind: 'interrupted', signal: answer }
      }
      handle = answer.handle
      if (options.isDone(answer)) return { kind: 'done', answer, startedAt }
      if (performance.now() >= deadline) {
        await options.cancel(handle).catch(() => {})
        return { kind: 'timedOut' }
      }
      startedAt = sentAt + waitMs
      sentAt = performance.now()
      waitMs = waitFor()
      pending = options.poll(handle, waitMs)
    }
  } finally {
    stop.dispose()
  }
}

export interface HoldOptions {
  ttlMs: number
  startedAt: number
  renew(timeoutMs: number): Promise<void>
  isFatal(err: unknown): boolean
  release(): Promise<void>
  /** The command to run while held; empty = hold until a stop signal. */
  command: string[]
  env: Record<string, string>
  /** Prints that it is held, when there is no command. */
  announce(): void
  /** The error to exit with when the lease is lost. */
  lostError(reason: Error, commandStopped: boolean): Error
}

/** Holds a lease while the command runs (or until a stop signal), then gives it back; the exit status. */
export async function holdWhile(options: HoldOptions): Promise<number> {
  const keeper = new LeaseKeeper(options)
  let failed = false
  try {
    if (options.command.length === 0) {
      options.announce()
      const stop = onStopSignal()
      const outcome = await Promise.race([stop.signal, keeper.lost])
      stop.dispose()
      if (outcome instanceof Error) throw options.lostError(outcome, false)
      return 0
    }
    const run = await runWhileHeld(options.command, options.env, keeper.lost)
    if (run.kind === 'lost') throw options.lostError(run.reason, true)
    if (run.kind === 'failed') {
      throw new CliError('SpawnError', `could not run ${options.command[0]}: ${run.error.message}`, 127)
    }
    return run.status
  } catch (err) {
    failed = true
    throw err
  } finally {
    keeper.stop()
    await options.release().catch((err: unknown) => {
      // It lapses after its ttl anyway; say so unless an error line is already coming.
      if (!failed)
        process.stderr.write(`warning: not given back, it lapses after its ttl: ${formatError(err)}\n`)
    })
  }
}
