/**
 * The chaos suite's and the simulation's requests, served inside an agent process (`scripts/agent-host.ts`
 * op `chaos`). Every call that can wait carries its own deadline, so a request never outlives the parent's
 * interest in it by much; the parent still stamps invocation and completion times itself.
 *
 * Two reads look into the agent's replica, which the public API does not expose: the revision of a key
 * (`consensus.get` returns the value only, so a fenced read-modify-write with `expectedRevision` is not
 * possible through the API alone) and applied task steals (for the event log). See `replicaOf`.
 */
import type { Libp2p } from '@libp2p/interface'
import type { TaskProcessor, TaskWorkerEventDetail } from '../../src/agent/api/tasks/worker.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import type { Agent, Lock, TaskInput } from '../../src/index.ts'
import type { StateEvent, StateMachine } from '../../src/state/index.ts'
import { FaultLayer, type FaultRules } from './fault-layer.ts'
import { startHostile, stopHostile } from './hostile.ts'

export type ChaosRequest =
  | ({ op: 'faults' } & FaultRules)
  | { op: 'read'; key: string; timeoutMs: number }
  | { op: 'write'; key: string; value: unknown; expectedRevision?: number; timeoutMs: number }
  | { op: 'delete'; key: string; expectedRevision?: number; timeoutMs: number }
  | { op: 'acquire'; key: string; ttl: number; timeoutMs: number }
  | { op: 'held'; handle: number }
  | { op: 'release'; handle: number; timeoutMs: number }
  | { op: 'submit'; task: TaskInput; timeoutMs: number }
  | { op: 'worker'; durationMs: number; concurrency: number; steal: boolean }
  | { op: 'view' }
  | { op: 'events'; from: number }
  | { op: 'verify'; entries: [key: string, value: unknown][]; timeoutMs: number }
  | { op: 'tasks'; ids: string[]; timeoutMs: number }
  /** Starts watching `prefix` (from `fromRevision`, else from now); `watched` returns what it saw. */
  | { op: 'watch'; prefix: string; fromRevision?: number }
  | { op: 'watched'; from: number }
  /** The hostile member's attack loop (`hostile.ts`): start it, or stop it and return its counts. */
  | { op: 'hostile'; action: 'start'; roundMs: number; lockFlood: number }
  | { op: 'hostile'; action: 'stop' }

/** What one agent shows: the simulation's live view is made of these. */
export interface AgentView {
  id: string
  name: string
  /** `leader`, `follower` (a voter), `nonvoter`, or `joining` before it is in the configuration. */
  role: 'leader' | 'follower' | 'nonvoter' | 'joining'
  term: number
  leader: string
  /** Each member's status in this agent's membership view. */
  members: Record<string, string>
  load: number
  tasksDone: number
  tasksRunning: number
  locksHeld: number
}

/** Something that happened in this agent, stamped with its wall clock (all agents run on one machine). */
export type HostEvent = { at: number } & (
  | { kind: 'leader'; type: 'elected' | 'resigned' | 'changed'; leader: string; term: number }
  | { kind: 'member'; type: string; member: string; status: string }
  | { kind: 'steal'; task: string; from: string; to: string }
  | { kind: 'task'; event: 'started' | 'completed' | 'failed' | 'error'; task: string; attempt: number }
  | { kind: 'lockLost'; key: string; token: string }
)

/** A task as the checks need it. */
export interface TaskRecord {
  id: string
  state: string
  attempt: number
  assignee?: string
  result?: unknown
  error?: string
}

/** The fault layer of this process: `agent-host.ts` passes its gater to `createAgent` and attaches it. */
export const faultLayer = new FaultLayer()

/** A change a watch delivered: key, value (undefined for a delete), revision. */
export type WatchedChange = [key: string, value: unknown, revision: number]

const locks = new Map<number, Lock>()
const watched: WatchedChange[] = []
let watchError: string | undefined
const events: HostEvent[] = []
let nextHandle = 1
let worker: TaskProcessor | undefined
let tasksDone = 0
let observing: Agent | undefined

export async function serveChaos(agent: Agent, request: ChaosRequest): Promise<unknown> {
  observe(agent)
  switch (request.op) {
    case 'faults':
      await faultLayer.apply(request)
      return null
    case 'read': {
      await agent.consensus.get(request.key, { signal: AbortSignal.timeout(request.timeoutMs) })
      // Value and revision from one synchronous look at a state at least as new as the read's index.
      const entry = replicaOf(agent).get(request.key)
      return { value: entry?.value, revision: entry?.modRevision ?? 0 }
    }
    case 'write': {
      const { key, value, expectedRevision, timeoutMs } = request
      const signal = AbortSignal.timeout(timeoutMs)
      return agent.consensus.propose(key, value, { signal, ...revisionOption(expectedRevision) })
    }
    case 'delete': {
      const { key, expectedRevision, timeoutMs } = request
      return agent.consensus.delete(key, {
        signal: AbortSignal.timeout(timeoutMs),
        ...revisionOption(expectedRevision),
      })
    }
    case 'acquire': {
      const lock = await agent.locks.acquire(request.key, request.ttl, {
        signal: AbortSignal.timeout(request.timeoutMs),
      })
      const handle = nextHandle++
      locks.set(handle, lock)
      const token = lock.fencingToken.toString()
      lock.lost.addEventListener('abort', () => {
        if (locks.has(handle)) events.push({ at: Date.now(), kind: 'lockLost', key: lock.key, token })
      })
      return { handle, token }
    }
    case 'held':
      return locks.get(request.handle)?.isHeld() ?? false
    case 'release': {
      const lock = locks.get(request.handle)
      locks.delete(request.handle)
      await lock?.release({ signal: AbortSignal.timeout(request.timeoutMs) })
      return null
    }
    case 'submit': {
      const task = await agent.tasks.submit(request.task, { signal: AbortSignal.timeout(request.timeoutMs) })
      return task.id
    }
    case 'worker':
      if (worker === undefined) startWorker(agent, request)
      if (request.steal) await agent.workStealing.enable()
      return null
    case 'hostile':
      if (request.action === 'start') {
        startHostile(agent, request)
        return null
      }
      return stopHostile()
    case 'view':
      return view(agent)
    case 'events':
      return events.slice(request.from)
    case 'verify':
      return verify(agent, request.entries, request.timeoutMs)
    case 'watch':
      startWatch(agent, request.prefix, request.fromRevision)
      return null
    case 'watched':
      if (watchError !== undefined) throw new Error(`the watch failed: ${watchError}`)
      return watched.slice(request.from)
    case 'tasks':
      // A linearizable read first: the local state then holds every change acknowledged before this call.
      await agent.consensus.get('chaos/barrier', { signal: AbortSignal.timeout(request.timeoutMs) })
      return request.ids.map(id => taskRecord(agent, id))
  }
}

function revisionOption(expectedRevision: number | undefined): { expectedRevision?: number } {
  return expectedRevision === undefined ? {} : { expectedRevision }
}

function serviceOf(agent: Agent): ConclaveService {
  return (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
}

/** The agent's applied state. Test instrumentation only: the replica is private to the service. */
function replicaOf(agent: Agent): StateMachine {
  const service = serviceOf(agent) as unknown as { replica: { state: StateMachine } }
  return service.replica.state
}

/** Subscribes, once, to what the event log records: leader changes, member changes, applied steals. */
function observe(agent: Agent): void {
  if (observing === agent) return
  observing = agent
  const service = serviceOf(agent)
  service.membership.onEvent(event => {
    const { id, status } = event.member
    events.push({ at: Date.now(), kind: 'member', type: event.type, member: id, status })
  })
  const replica = (
    service as unknown as { replica: { onEvent(listener: (event: StateEvent) => void): void } }
  ).replica
  replica.onEvent(event => {
    // Every replica applies every steal: only the thief reports it, so each steal is logged once.
    if (event.type === 'taskStolen' && event.to === agent.id) {
      events.push({ at: Date.now(), kind: 'steal', task: event.taskId, from: event.from, to: event.to })
    }
  })
  ;(async () => {
    for await (const change of agent.election.watch()) {
      events.push({
        at: Date.now(),
        kind: 'leader',
        type: change.type,
        leader: change.leaderId,
        term: change.term,
      })
    }
  })().catch(() => {})
}

function startWatch(agent: Agent, prefix: string, fromRevision: number | undefined): void {
  const options = fromRevision === undefined ? {} : { fromRevision }
  ;(async () => {
    for await (const event of agent.consensus.watch(prefix, options)) {
      watched.push([event.key, event.value, event.revision])
    }
  })().catch(err => {
    watchError = String(err)
  })
}

function startWorker(agent: Agent, args: { durationMs: number; concurrency: number }): void {
  worker = agent.tasks.process(
    async task => {
      events.push({ at: Date.now(), kind: 'task', event: 'started', task: task.id, attempt: task.attempt })
      // Work of a varying length, so that queues build up on some agents and idle ones steal.
      const duration = args.durationMs * (0.5 + Math.random())
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, duration)
        task.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      })
      task.signal.throwIfAborted()
      return { agent: agent.name, attempt: task.attempt }
    },
    { concurrency: args.concurrency },
  ) as TaskProcessor
  for (const event of ['completed', 'failed', 'error'] as const) {
    worker.addEventListener(event, e => {
      const { task } = (e as CustomEvent<TaskWorkerEventDetail>).detail
      if (event === 'completed') tasksDone++
      if (task !== undefined)
        events.push({ at: Date.now(), kind: 'task', event, task: task.id, attempt: task.attempt })
    })
  }
}

async function view(agent: Agent): Promise<AgentView> {
  const members = await agent.members()
  const self = members.find(member => member.id === agent.id)
  const leader = await agent.leader()
  const role: AgentView['role'] = agent.isLeader()
    ? 'leader'
    : self === undefined
      ? 'joining'
      : self.role === 'voter'
        ? 'follower'
        : 'nonvoter'
  let held = 0
  for (const lock of locks.values()) if (lock.isHeld()) held++
  return {
    id: agent.id,
    name: agent.name,
    role,
    term: agent.election.term(),
    leader: leader?.id ?? '',
    members: Object.fromEntries(members.map(member => [member.id, member.status])),
    load: self?.load ?? 0,
    tasksDone,
    tasksRunning: worker?.active ?? 0,
    locksHeld: held,
  }
}

/** The entries whose value differs on this agent after a linearizable read: acknowledged writes it lacks. */
async function verify(agent: Agent, entries: [string, unknown][], timeoutMs: number): Promise<string[]> {
  if (entries.length === 0) return []
  // One linearizable read brings this replica up to the cluster's commit; then every key is read locally.
  await agent.consensus.get(entries[0][0], { signal: AbortSignal.timeout(timeoutMs) })
  const state = replicaOf(agent)
  const wrong: string[] = []
  for (const [key, value] of entries) {
    if (JSON.stringify(state.get(key)?.value) !== JSON.stringify(value)) wrong.push(key)
  }
  return wrong
}

function taskRecord(agent: Agent, id: string): TaskRecord | undefined {
  const task = replicaOf(agent).task(id)
  if (task === undefined) return undefined
  return {
    id,
    state: task.state,
    attempt: task.attempt,
    assignee: task.assignee,
    result: task.result,
    error: task.error,
  }
}
