/**
 * Runs one agent in its own process and serves requests from the parent over Node's IPC channel: the
 * building block of the multi-process tests, the benchmark and the simulation. Start it with
 * `fork('scripts/agent-host.ts', [JSON.stringify(options)])`; it answers `{ type: 'ready', id, addrs }`
 * once started, then one `{ id, ok, value | error }` per `{ id, op, args }` request.
 */

import { writeFileSync } from 'node:fs'
import type { Session } from 'node:inspector/promises'
import { constants, monitorEventLoopDelay, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks'
import { getHeapCodeStatistics, getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8'
import type { Libp2p } from '@libp2p/interface'
import type { TaskProcessor, TaskWorkerEventDetail } from '../src/agent/api/tasks/worker.ts'
import { withScheduler, withShellBugs } from '../src/agent/internal-options.ts'
import type { ConclaveService } from '../src/agent/service.ts'
import { parseHttpAddress } from '../src/http/address.ts'
import type { Agent, AgentOptions, Lock, TaskInput } from '../src/index.ts'
import { createAgent, startDashboard } from '../src/index.ts'
import { decodeEnvelope } from '../src/state/index.ts'
import type { RaftStorage } from '../src/storage/index.ts'
import { type ClockSkew, SkewedScheduler } from '../src/time/skewed-scheduler.ts'
import { systemScheduler } from '../src/time/system-scheduler.ts'
import type { BenchRequest } from './bench-compare/protocol.ts'
import { type ChaosRequest, faultLayer, serveChaos } from './chaos/host-ops.ts'

export type HostRequest =
  | { id: number; op: 'join'; args: { bootstrap?: string[]; voters?: number } }
  | { id: number; op: 'propose'; args: { key: string; value: unknown } }
  | {
      id: number
      op: 'proposeMany'
      args: { prefix: string; count: number; concurrency: number; size: number }
    }
  | { id: number; op: 'get'; args: { key: string; consistency?: 'linearizable' | 'local' } }
  | { id: number; op: 'acquire'; args: { key: string; ttl: number } }
  | { id: number; op: 'release'; args: { handle: number } }
  | { id: number; op: 'isHeld'; args: { handle: number } }
  | { id: number; op: 'status'; args: Record<string, never> }
  | { id: number; op: 'leave'; args: Record<string, never> }
  | { id: number; op: 'stop'; args: Record<string, never> }
  | { id: number; op: 'members'; args: Record<string, never> }
  | { id: number; op: 'health'; args: Record<string, never> }
  | { id: number; op: 'memberEvents'; args: { from?: number } }
  | { id: number; op: 'membershipStats'; args: Record<string, never> }
  | { id: number; op: 'appliedIndex'; args: Record<string, never> }
  /** This replica's stored log, counted: entries by command type (config changes as `config`) and by term. */
  | { id: number; op: 'logStats'; args: Record<string, never> }
  /** This process's event-loop delay since the last call (ms): how late its timers (Raft ticks) ran. */
  | { id: number; op: 'loopDelay'; args: Record<string, never> }
  /** Tasks (without deadlines: Dates do not cross IPC), submitted `concurrency` at a time. */
  | { id: number; op: 'submitTasks'; args: { tasks: TaskInput[]; concurrency?: number } }
  /** Starts a `process()` worker whose handler waits `durationMs` (or its signal) and returns the agent's name. */
  | { id: number; op: 'startWorker'; args: { durationMs: number; concurrency?: number } }
  /** The worker's log from entry `from` on. */
  | { id: number; op: 'workerLog'; args: { from?: number } }
  | { id: number; op: 'taskStatus'; args: { ids: string[] } }
  /** Up to 1,000 tasks of a type in submission order (`tasks.list`), dates as ms. */
  | { id: number; op: 'taskList'; args: { type: string } }
  /** The comparison benchmark's requests (scripts/bench-compare), run on this agent. */
  | { id: number; op: 'bench'; args: BenchRequest }
  /** The chaos suite's and the simulation's requests, and the fault layer's rules (scripts/chaos/host-ops.ts). */
  | { id: number; op: 'chaos'; args: ChaosRequest }
  /** What the process's memory holds: `process.memoryUsage()`, V8's heap and its spaces (bytes). */
  | { id: number; op: 'memory'; args: { gc?: boolean } }
  /** Writes a V8 heap snapshot of this process to `path` (for Chrome DevTools or a script); returns the path. */
  | { id: number; op: 'heapSnapshot'; args: { path: string } }
  /** Starts a CPU profile of this process (`node:inspector`), or stops it and writes it to `path` (`.cpuprofile`). */
  | { id: number; op: 'cpuProfile'; args: { action: 'start' } | { action: 'stop'; path: string } }

/**
 * What a host process takes: the agent's options, plus `http` (serve the dashboard of this agent there:
 * `npm run simulate -- --web`), `clock` (test-only: the agent's clocks set off from the machine's and
 * running at another rate, through its injected scheduler, as the chaos suite's `--clock-skew` does) and
 * `bugs` (test-only: shell bug switches, `src/shell-bugs.ts`, as the chaos suite's `--bug`).
 */
export type HostOptions = AgentOptions & { http?: string; clock?: ClockSkew; bugs?: string[] }

export interface HostStatus {
  id: string
  isLeader: boolean
  leader: string
  term: number
  members: number
  voters: number
}

/** A change of this agent's membership view, stamped with the host's wall clock when it happened. */
export interface HostMemberEvent {
  type: string
  id: string
  status: string
  incarnation: number
  at: number
}

/** What a worker of this host did with an attempt: `completed`/`failed` once the cluster accepted it. */
export interface HostWorkerEntry {
  taskId: string
  attempt: number
  event: 'started' | 'completed' | 'failed' | 'error'
  error?: string
}

let agent: Agent
const locks = new Map<number, Lock>()
const workerLog: HostWorkerEntry[] = []
const memberEvents: HostMemberEvent[] = []
let nextHandle = 1

async function serve(request: HostRequest): Promise<unknown> {
  switch (request.op) {
    case 'join':
      await agent.join(request.args)
      return null
    case 'propose':
      return agent.consensus.propose(request.args.key, request.args.value)
    case 'proposeMany':
      return proposeMany(request.args)
    case 'get':
      return agent.consensus.get(request.args.key, { consistency: request.args.consistency })
    case 'acquire': {
      const lock = await agent.locks.acquire(request.args.key, request.args.ttl)
      const handle = nextHandle++
      locks.set(handle, lock)
      return { handle, token: lock.fencingToken.toString() }
    }
    case 'release': {
      const lock = locks.get(request.args.handle)
      locks.delete(request.args.handle)
      await lock?.release()
      return null
    }
    case 'isHeld':
      return locks.get(request.args.handle)?.isHeld() ?? false
    case 'status': {
      const members = await agent.members()
      const leader = await agent.leader()
      const status: HostStatus = {
        id: agent.id,
        isLeader: agent.isLeader(),
        leader: leader?.id ?? '',
        term: agent.election.term(),
        members: members.length,
        voters: members.filter(member => member.role === 'voter').length,
      }
      return status
    }
    case 'leave':
      await agent.leave()
      return null
    case 'stop':
      await agent.stop()
      setImmediate(() => process.exit(0))
      return null
    case 'members':
      return (await agent.members()).map(member => ({ ...member, lastSeen: member.lastSeen.getTime() }))
    case 'health': {
      const health = await agent.health()
      return {
        ...health,
        members: health.members.map(member => ({ ...member, lastSeen: member.lastSeen.getTime() })),
      }
    }
    case 'memberEvents':
      return memberEvents.slice(request.args.from ?? 0)
    case 'appliedIndex': {
      // The Raft entries this replica applied (bench:scale counts a join storm's entries per join).
      const internals = serviceOf(agent) as unknown as { replica: { state: { appliedIndex: number } } }
      return internals.replica.state.appliedIndex
    }
    case 'logStats':
      return logStats()
    case 'loopDelay': {
      const figures = {
        p50Ms: loopDelay.percentile(50) / 1e6,
        p99Ms: loopDelay.percentile(99) / 1e6,
        maxMs: loopDelay.max / 1e6,
      }
      loopDelay.reset()
      return figures
    }
    case 'membershipStats': {
      const membership = serviceOf(agent).membership
      return { ...membership.stats(), localHealth: membership.localHealth() }
    }
    case 'submitTasks': {
      const { tasks, concurrency = 16 } = request.args
      let next = 0
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < tasks.length) await agent.tasks.submit(tasks[next++])
        }),
      )
      return tasks.length
    }
    case 'startWorker':
      startWorker(request.args)
      return null
    case 'workerLog':
      return workerLog.slice(request.args.from ?? 0)
    case 'taskStatus':
      return Promise.all(
        request.args.ids.map(async id => {
          const status = await agent.tasks.status(id)
          return { ...status, updatedAt: status.updatedAt.getTime() }
        }),
      )
    case 'taskList': {
      const { tasks } = await agent.tasks.list({ type: request.args.type }, { limit: 1000 })
      return tasks.map(task => ({
        ...task,
        updatedAt: task.updatedAt.getTime(),
        createdAt: task.createdAt.getTime(),
      }))
    }
    case 'bench': {
      // Loaded on first use: agents that never run the comparison do not load the benchmark's code.
      const { serveConclaveBench } = await import('./bench-compare/conclave-side.ts')
      return serveConclaveBench(agent, request.args)
    }
    case 'chaos':
      return serveChaos(agent, request.args)
    case 'memory':
      return memoryReport(request.args.gc === true)
    case 'heapSnapshot':
      return writeHeapSnapshot(request.args.path)
    case 'cpuProfile':
      return cpuProfile(request.args)
  }
}

function startWorker(args: { durationMs: number; concurrency?: number }): void {
  const options = args.concurrency === undefined ? {} : { concurrency: args.concurrency }
  const worker = agent.tasks.process(async task => {
    workerLog.push({ taskId: task.id, attempt: task.attempt, event: 'started' })
    await new Promise(resolve => {
      const timer = setTimeout(resolve, args.durationMs)
      task.signal.addEventListener('abort', () => {
        clearTimeout(timer)
        resolve(undefined)
      })
    })
    task.signal.throwIfAborted()
    return agent.name
  }, options) as TaskProcessor
  for (const event of ['completed', 'failed', 'error'] as const) {
    worker.addEventListener(event, e => {
      const { task, error } = (e as CustomEvent<TaskWorkerEventDetail>).detail
      workerLog.push({
        taskId: task?.id ?? '',
        attempt: task?.attempt ?? 0,
        event,
        ...(error === undefined ? {} : { error: error instanceof Error ? error.message : String(error) }),
      })
    })
  }
}

/** A closed-loop load: `concurrency` proposers writing `count` values of `size` bytes; latencies in ms. */
async function proposeMany(args: { prefix: string; count: number; concurrency: number; size: number }) {
  const value = 'x'.repeat(args.size)
  const latencies: number[] = []
  let issued = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (issued < args.count) {
        const n = issued++
        const begin = performance.now()
        await agent.consensus.propose(`${args.prefix}${n % 1000}`, value)
        latencies.push(performance.now() - begin)
      }
    }),
  )
  return { elapsedMs: performance.now() - started, latencies }
}

/** Event-loop delay, sampled every 20 ms (`loopDelay`). */
const loopDelay = monitorEventLoopDelay({ resolution: 20 })
loopDelay.enable()

/** The stored log by entry kind and by term (bench:scale counts what a join storm wrote). */
function logStats(): {
  byType: Record<string, number>
  byTerm: Record<number, number>
  snapshotIndex: number
} {
  const storage = (serviceOf(agent) as unknown as { storage?: RaftStorage }).storage
  const state = storage?.load()
  const byType: Record<string, number> = {}
  const byTerm: Record<number, number> = {}
  for (const entry of state?.entries ?? []) {
    const decoded = entry.type === 'config' ? undefined : decodeEnvelope(entry.data)
    const type =
      entry.type === 'config'
        ? 'config'
        : decoded?.ok === true
          ? decoded.envelope.command.type
          : entry.data.byteLength === 0
            ? 'empty'
            : 'undecodable'
    byType[type] = (byType[type] ?? 0) + 1
    byTerm[entry.term] = (byTerm[entry.term] ?? 0) + 1
  }
  return { byType, byTerm, snapshotIndex: state?.snapshot?.meta.index ?? 0 }
}

let profiler: Session | undefined

/** Loaded on first use, as the comparison's code: an agent that is never profiled does not load the inspector. */
async function cpuProfile(args: { action: 'start' } | { action: 'stop'; path: string }): Promise<unknown> {
  if (args.action === 'start') {
    const { Session } = await import('node:inspector/promises')
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.start')
    return null
  }
  if (profiler === undefined) throw new Error('no CPU profile was started')
  const { profile } = await profiler.post('Profiler.stop')
  profiler.disconnect()
  profiler = undefined
  writeFileSync(args.path, JSON.stringify(profile))
  return args.path
}

/** Garbage collections since the process started: how many and how long they paused it, by kind. */
const gcTotals = { scavenges: 0, scavengeMs: 0, majors: 0, majorMs: 0 }
new PerformanceObserver(list => {
  for (const entry of list.getEntries()) {
    const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gcTotals.scavenges++
      gcTotals.scavengeMs += entry.duration
    } else {
      gcTotals.majors++
      gcTotals.majorMs += entry.duration
    }
  }
}).observe({ entryTypes: ['gc'] })

/** `gc`: collect first (only when the process runs with `--expose-gc`), to see what stays live. */
function memoryReport(gc: boolean) {
  const collect = (globalThis as { gc?: () => void }).gc
  if (gc && collect !== undefined) collect()
  return {
    usage: process.memoryUsage(),
    heap: getHeapStatistics(),
    spaces: getHeapSpaceStatistics().map(space => ({
      name: space.space_name,
      size: space.space_size,
      used: space.space_used_size,
    })),
    code: getHeapCodeStatistics(),
    gc: { ...gcTotals },
  }
}

function serviceOf(running: Agent): ConclaveService {
  return (running.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
}

async function main(): Promise<void> {
  // `http` and `clock` are the host's own (see HostOptions), not agent options.
  const { http, clock, bugs, ...options } = JSON.parse(process.argv[2] ?? '{}') as HostOptions
  // The fault layer's gater and stream hook stay inert until the chaos suite sets rules.
  let agentOptions: AgentOptions = { ...options, connectionGater: faultLayer.gater }
  if (clock !== undefined)
    agentOptions = withScheduler(agentOptions, new SkewedScheduler(systemScheduler, clock))
  if (bugs !== undefined) agentOptions = withShellBugs(agentOptions, bugs)
  agent = await createAgent(agentOptions)
  if (http !== undefined) await startDashboard(agent, parseHttpAddress(http))
  faultLayer.attach(agent.libp2p)
  serviceOf(agent).membership.onEvent(event => {
    const { id, status, incarnation } = event.member
    memberEvents.push({ type: event.type, id, status, incarnation, at: Date.now() })
  })
  process.on('message', message => {
    const request = message as HostRequest
    serve(request).then(
      value => process.send?.({ id: request.id, ok: true, value }),
      (err: Error) =>
        process.send?.({ id: request.id, ok: false, error: { name: err.name, message: err.message } }),
    )
  })
  process.on('disconnect', () => {
    agent.stop().finally(() => process.exit(0))
  })
  process.send?.({ type: 'ready', id: agent.id, addrs: agent.multiaddrs() })
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
