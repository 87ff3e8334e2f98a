/**
 * The parent's side of `scripts/agent-host.ts`: spawn agents as real processes on loopback TCP, send them
 * requests, kill them with real signals. Used by the multi-process tests, the benchmark and the simulation.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AGENT_MAX_SEMI_SPACE_MIB, sizesYoungGeneration } from '../../src/cli/agent-heap.ts'
import { AGENT_HOST_BUNDLE_DIR, bundleIsFresh } from '../../src/cli/bundle.ts'
import type { HostOptions, HostRequest } from '../agent-host.ts'

/**
 * The agent process's script: the sources, or with `CONCLAVE_AGENT_BUNDLE=1` their bundle (`npm run
 * build:bundle -- --agent-host`), loaded as `conclave agent` loads its own bundle; a stale one is refused.
 * `CONCLAVE_AGENT_BUNDLE_DIR=<dir>` runs the bundle kept in `<dir>` as it is (an earlier build, for A/B runs).
 */
function hostScript(): string {
  // A kept copy of an earlier bundle (`CONCLAVE_AGENT_BUNDLE_DIR`): old and new builds run back to back, A/B.
  const kept = process.env.CONCLAVE_AGENT_BUNDLE_DIR
  if (kept !== undefined && kept !== '') return join(kept, 'agent-host.js')
  if (process.env.CONCLAVE_AGENT_BUNDLE !== '1')
    return fileURLToPath(new URL('../agent-host.ts', import.meta.url))
  const dir = new URL(`../../${AGENT_HOST_BUNDLE_DIR}/`, import.meta.url)
  if (!bundleIsFresh(dir, 'agent-host.js'))
    throw new Error('CONCLAVE_AGENT_BUNDLE=1: no fresh bundle; run npm run build:bundle -- --agent-host')
  return fileURLToPath(new URL('agent-host.js', dir))
}

/**
 * Node's compile cache for the agent processes (`NODE_COMPILE_CACHE`, unless the caller set one): each process
 * otherwise strips the types of every TypeScript source and compiles every module again, about 0.6 s of CPU
 * of the 1.6 s an agent takes to start on this 2-core machine. A deployed agent runs built JavaScript, and
 * 50 agents started at once spent a minute of both cores only loading code.
 */
const COMPILE_CACHE = process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'conclave-agent-compile-cache')

/**
 * The agent processes' Node flags: `CONCLAVE_AGENT_EXEC_ARGV` (space-separated, e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof`: profiling the agents of a benchmark without the harness), and the young
 * generation `conclave agent` runs with (`src/cli/agent-heap.ts`) unless those flags or `NODE_OPTIONS` size it, so
 * the benchmarks measure agents as the command runs them.
 */
function agentExecArgv(): string[] {
  const flags = (process.env.CONCLAVE_AGENT_EXEC_ARGV ?? '').split(' ').filter(flag => flag !== '')
  const nodeOptions = (process.env.NODE_OPTIONS ?? '').split(/\s+/)
  return sizesYoungGeneration([...flags, ...nodeOptions])
    ? flags
    : [...flags, `--max-semi-space-size=${AGENT_MAX_SEMI_SPACE_MIB}`]
}

/**
 * With `CONCLAVE_AGENT_LOG_DIR`, each agent's stderr goes to `<dir>/<name>.log` (with `DEBUG=conclave*`, its
 * debug log): what a benchmark's agents did, counted afterwards, where their stderr is otherwise dropped.
 */
function agentLogFile(options: HostOptions): number | undefined {
  const dir = process.env.CONCLAVE_AGENT_LOG_DIR
  if (dir === undefined || dir === '') return undefined
  mkdirSync(dir, { recursive: true })
  return openSync(join(dir, `${options.name ?? `agent-${process.pid}-${Date.now()}`}.log`), 'a')
}

type Op = HostRequest['op']
type ArgsOf<O extends Op> = Extract<HostRequest, { op: O }>['args']

/** An error the agent process answered with, keeping the agent-side error name. */
export class HostError extends Error {
  constructor(name: string, message: string) {
    super(message)
    this.name = name
  }
}

export class AgentHost {
  readonly id: string
  readonly addrs: string[]
  readonly options: HostOptions
  private readonly child: ChildProcess
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>()
  private nextId = 1
  private exited = false
  readonly exit: Promise<number | null>

  private constructor(child: ChildProcess, ready: { id: string; addrs: string[] }, options: HostOptions) {
    this.child = child
    this.id = ready.id
    this.addrs = ready.addrs
    this.options = options
    this.exit = new Promise(resolve => {
      child.once('exit', code => {
        this.exited = true
        for (const pending of this.pending.values())
          pending.reject(new HostError('HostExited', 'agent process exited'))
        this.pending.clear()
        resolve(code)
      })
    })
    child.on('message', message => {
      const reply = message as {
        id: number
        ok: boolean
        value?: unknown
        error?: { name: string; message: string }
      }
      const pending = this.pending.get(reply.id)
      if (pending === undefined) return
      this.pending.delete(reply.id)
      if (reply.ok) pending.resolve(reply.value)
      else
        pending.reject(new HostError(reply.error?.name ?? 'Error', reply.error?.message ?? 'unknown error'))
    })
  }

  /** Starts an agent process (TCP on loopback unless the options say otherwise) and waits until it runs. */
  static async spawn(options: HostOptions, stderr: 'inherit' | 'ignore' = 'inherit'): Promise<AgentHost> {
    const logFile = agentLogFile(options)
    const child = fork(hostScript(), [JSON.stringify(options)], {
      execPath: process.execPath,
      execArgv: agentExecArgv(),
      stdio: ['ignore', 'ignore', logFile ?? stderr, 'ipc'],
      env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE },
    })
    if (logFile !== undefined) closeSync(logFile)
    const ready = await new Promise<{ id: string; addrs: string[] }>((resolve, reject) => {
      child.once('message', message => resolve(message as { id: string; addrs: string[] }))
      child.once('exit', code => reject(new Error(`agent process exited with ${code} before it was ready`)))
    })
    return new AgentHost(child, ready, options)
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  get alive(): boolean {
    return !this.exited
  }

  request<O extends Op>(op: O, args: ArgsOf<O>): Promise<unknown> {
    if (this.exited) return Promise.reject(new HostError('HostExited', 'agent process exited'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      // A child killed but not yet reaped has a closed channel: without a callback, send() would raise an
      // 'error' event on the child (an uncaught exception) instead of failing this one request.
      this.child.send({ id, op, args }, err => {
        if (err === null || !this.pending.has(id)) return
        this.pending.delete(id)
        reject(new HostError('HostExited', `agent process unreachable: ${err.message}`))
      })
    })
  }

  /** Sends a real signal: SIGKILL for a crash, SIGSTOP/SIGCONT for a pause. */
  signal(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal)
  }

  /** Asks the agent to stop cleanly, or kills it if it does not within a few seconds. */
  async stop(): Promise<void> {
    if (this.exited) return
    const stopped = this.request('stop', {}).catch(() => {})
    const timer = setTimeout(() => this.signal('SIGKILL'), 5000)
    await stopped
    await this.exit
    clearTimeout(timer)
  }
}
