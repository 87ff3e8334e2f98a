import type { Logger } from '@libp2p/interface'
import type { Abortable, DistributedTask, WorkStealer } from '../../api.ts'
import { AbortError, ClosedError, InvalidArgumentError, NotFoundError } from '../../errors.ts'
import { pubsubService } from '../../net/pubsub-service.ts'
import type { RegisteredAgent, StateEvent, TaskInfo } from '../../state/index.ts'
import type { Cancel, Scheduler } from '../../time/scheduler.ts'
import type { Client } from '../node/client.ts'
import type { Replica } from '../node/replica.ts'
import type { SessionKeeper } from '../node/session.ts'
import { checkKey, checkOptions } from '../validate.ts'
import { unexpected } from './consensus.ts'
import { submitWithSession } from './tasks/batch.ts'
import { toDistributedTask } from './tasks/input.ts'
import type { Tasks } from './tasks/tasks.ts'
import { encodeAdvert, MAX_SURPLUS, tryDecodeWorkAdvert, type WorkAdvert } from './work-stealing-codec.ts'

/** An advert older than this is no longer a reason to steal. */
const ADVERT_TTL_MS = 3000
/** Changes to this agent's queue are gathered this long before one advert goes out. */
const ADVERT_DELAY_MS = 25
/**
 * Adverts of one agent go out at most this often. Under a steady flow of tasks the surplus changes with
 * nearly every entry, and each advert is a signed gossipsub message every agent verifies and relays (with
 * up to MAX_SURPLUS ids, ~10 KB): at ADVERT_DELAY_MS apart they cost a busy 3-agent cluster more CPU per
 * task than the task's own Raft entries. A hint 200 ms late still comes well before `stealAfterMs`.
 */
const ADVERT_MIN_INTERVAL_MS = 200
/**
 * An agent with stealing enabled says so at least this often (its adverts carry `stealing`), and the others
 * advertise their surplus only while one said so within `STEALER_TTL_MS`: without a stealer anywhere, an
 * advert is a signed gossipsub message every agent verifies and relays for nobody.
 */
const ANNOUNCE_MS = 1000
const STEALER_TTL_MS = 3 * ANNOUNCE_MS
/** While this agent has surplus, the advert is repeated this often (a lost message costs at most this). */
const ADVERT_REFRESH_MS = 500
/** How often an enabled, idle agent looks for work on its own (adverts and idle `next()` calls also wake it). */
const STEAL_INTERVAL_MS = 100
/** Steals in one round, at most; the next round follows at the next wake-up. */
const MAX_STEALS_PER_ROUND = 16
/** Task ids remembered per advertising agent; the oldest go first. */
const MAX_ADVERTISED_PER_AGENT = 1024
/** Default of `stealAfterMs`. */
const DEFAULT_STEAL_AFTER_MS = 500

/** A message as gossipsub delivers it (only what is read of it). */
export interface PubSubMessage {
  type?: string
  topic: string
  data: Uint8Array
  from?: { toString(): string }
}

/** The part of a libp2p pubsub service (gossipsub) the work stealer uses. */
export interface WorkPubSub {
  subscribe(topic: string): void
  unsubscribe(topic: string): void
  publish(topic: string, data: Uint8Array): Promise<unknown>
  getSubscribers(topic: string): unknown[]
  addEventListener(type: 'message', listener: (event: CustomEvent<PubSubMessage>) => void): void
  removeEventListener(type: 'message', listener: (event: CustomEvent<PubSubMessage>) => void): void
}

/** The work topic of a cluster: `conclave/<clusterId or 'default'>/work/1.0.0`. */
export function workTopic(clusterId: string | undefined): string {
  return `conclave/${clusterId ?? 'default'}/work/1.0.0`
}

/** The node's pubsub service among libp2p components (`pubsub`), if there is one. */
export function pubsubOf(components: object): WorkPubSub | undefined {
  return pubsubService<WorkPubSub>(components, [
    'subscribe',
    'unsubscribe',
    'publish',
    'getSubscribers',
    'addEventListener',
    'removeEventListener',
  ])
}

export interface WorkStealingContext {
  selfId: string
  client: Client
  replica: Replica
  session: SessionKeeper
  tasks: Tasks
  closed: AbortSignal
  /** The node's pubsub service; undefined when it has none (stealing then reads the replicated state only). */
  pubsub: () => WorkPubSub | undefined
  /** The cluster's id, once this agent joined one. */
  clusterId: () => string | undefined
  log: Logger
  /** Monotonic time for the adverts' and steals' timing; the wall clock for task deadlines. */
  scheduler: Scheduler
  /** A task assigned to another agent this long without starting may be stolen without an advert. */
  stealAfterMs?: number
}

/** What the recent adverts of one agent said: its last load, and every task id it named lately. */
interface ReceivedAdverts {
  load: number
  receivedAt: number
  /** Task id → when it was last advertised, oldest first. */
  surplus: Map<string, number>
}

/**
 * Work stealing (API.md `WorkStealer`). Every agent publishes, on the cluster's work topic, its load and the
 * tasks assigned to it that it will not start soon (its surplus), and relays the topic for others. An agent
 * that `enable()`d stealing and has idle `next()` callers (a worker with free slots) and nothing queued takes
 * tasks: first from the busiest agent's advert, else (adverts lost, or no pubsub) from any agent whose
 * assigned task has waited `stealAfterMs` in the replicated state.
 *
 * The move itself is a `stealTask` entry that applies only if the task is still assigned to that agent and
 * not running, and only if this agent may run it: an advert is a hint, and a lost, late, duplicated or forged
 * one can cost a refused entry at most, never a second run.
 */
export class WorkStealing implements WorkStealer {
  private readonly context: WorkStealingContext
  private readonly stealAfterMs: number
  private enabled = false
  private subscription?: { pubsub: WorkPubSub; topic: string }
  /** After a failed lookup or subscribe, none before this time (a failed lookup costs an exception). */
  private nextSubscribeAt = 0
  private clusterIdValue?: string
  /**
   * Recent adverts by agent, merged: a lost, late or partial advert hides nothing another one named (the
   * replicated state says which of the named tasks are still waiting there).
   */
  private readonly adverts = new Map<string, ReceivedAdverts>()
  /** When this agent saw each task assigned to another agent (while stealing is enabled). */
  private readonly firstSeen = new Map<string, number>()
  /** Tasks whose steal was just refused: not tried again before the next tick. */
  private readonly refused = new Set<string>()
  private stealing = false
  private again = false
  private tickTimer?: Cancel
  private advertTimer?: Cancel
  private advertDue = 0
  /** The surplus last published, and when: an unchanged one waits for the refresh. */
  private lastSurplus = ''
  private lastPublishedAt = Number.NEGATIVE_INFINITY
  /** When an advert of another agent with stealing enabled last came (monotonic ms). */
  private stealerHeardAt = Number.NEGATIVE_INFINITY
  private disableListener?: { signal: AbortSignal; listener: () => void }
  private readonly onMessage = (event: CustomEvent<PubSubMessage>): void => this.receive(event.detail)

  constructor(context: WorkStealingContext) {
    this.context = context
    this.stealAfterMs = context.stealAfterMs ?? DEFAULT_STEAL_AFTER_MS
    context.replica.onEvent(event => this.onEvent(event))
    context.tasks.onIdle(() => this.kick())
    context.closed.addEventListener('abort', () => this.shutdown(), { once: true })
  }

  /** Turns automatic stealing on, until the agent stops or `options.signal` aborts. Idempotent. */
  async enable(options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    this.check(options?.signal)
    const signal = options?.signal
    if (signal !== undefined) {
      this.clearDisableListener()
      const listener = (): void => this.disable()
      signal.addEventListener('abort', listener, { once: true })
      this.disableListener = { signal, listener }
    }
    if (this.enabled) return
    this.enabled = true
    this.ensureSubscribed()
    this.tickTimer = this.context.scheduler.every(STEAL_INTERVAL_MS, () => this.tick())
    this.announce()
    this.kick()
  }

  /**
   * Moves one task assigned to `targetAgent` (id or name) and not running to this agent, if this agent may
   * run it and has a free slot; the best such task in schedule order. Undefined if there is none.
   */
  async steal(targetAgent: string, options?: Abortable): Promise<DistributedTask | undefined> {
    checkKey(targetAgent, 'target agent')
    checkOptions(options, ['signal'])
    this.check(options?.signal)
    const { client, replica, selfId } = this.context
    const signal = options?.signal
    await client.barrier(signal)
    const state = replica.state
    const target = state.agent(targetAgent) ?? state.agentByName(targetAgent)
    if (target === undefined) throw new NotFoundError(`agent ${targetAgent} is not registered`)
    if (target.agentId === selfId) return undefined
    const tried = new Set<string>()
    for (let round = 0; round < 3; round++) {
      if (!this.hasRoom()) return undefined
      const task = this.bestOf(target.agentId, tried, false)
      if (task === undefined) return undefined
      if (await this.stealOne(task.id, target.agentId, signal)) return toDistributedTask(task)
      tried.add(task.id)
    }
    return undefined
  }

  /** Publishes `task` (with this agent's other surplus) to idle agents: a hint, nothing more. */
  async offer(task: DistributedTask, options?: Abortable): Promise<void> {
    checkOptions(options, ['signal'])
    if (typeof task !== 'object' || task === null) throw new InvalidArgumentError('task must be a task')
    checkKey((task as { id?: unknown }).id, 'task id')
    this.check(options?.signal)
    const surplus = [task.id, ...this.surplus().filter(id => id !== task.id)].slice(0, MAX_SURPLUS)
    await this.publish(surplus)
  }

  // ---------- internals ----------

  private disable(): void {
    this.enabled = false
    this.tickTimer?.()
    this.tickTimer = undefined
    this.firstSeen.clear()
    this.refused.clear()
    this.clearDisableListener()
  }

  private clearDisableListener(): void {
    if (this.disableListener === undefined) return
    this.disableListener.signal.removeEventListener('abort', this.disableListener.listener)
    this.disableListener = undefined
  }

  private shutdown(): void {
    this.disable()
    this.advertTimer?.()
    const subscription = this.subscription
    this.subscription = undefined
    if (subscription === undefined) return
    try {
      subscription.pubsub.removeEventListener('message', this.onMessage)
      subscription.pubsub.unsubscribe(subscription.topic)
    } catch {}
  }

  private topic(): string {
    this.clusterIdValue ??= this.context.clusterId()
    return workTopic(this.clusterIdValue)
  }

  /**
   * Subscribes to the work topic (every agent does: followers are usually connected only to the leader, so
   * adverts reach idle agents through the subscribed relays). Undefined without pubsub or before it started.
   */
  private ensureSubscribed(): WorkPubSub | undefined {
    if (this.context.closed.aborted) return undefined
    const current = this.subscription
    const topic = this.topic()
    if (current?.topic === topic) return current.pubsub
    const now = this.context.scheduler.now()
    if (now < this.nextSubscribeAt) return undefined
    this.nextSubscribeAt = now + 1000
    const pubsub = this.context.pubsub()
    if (pubsub === undefined) return undefined
    try {
      if (current !== undefined) {
        current.pubsub.unsubscribe(current.topic)
        if (current.pubsub !== pubsub) current.pubsub.removeEventListener('message', this.onMessage)
      }
      pubsub.subscribe(topic)
      if (current?.pubsub !== pubsub) pubsub.addEventListener('message', this.onMessage)
      this.subscription = { pubsub, topic }
      this.nextSubscribeAt = 0
      return pubsub
    } catch (err) {
      // Not started yet: the next event tries again.
      this.context.log('work topic not subscribed yet: %e', err)
      this.subscription = undefined
      return undefined
    }
  }

  private onEvent(event: StateEvent): void {
    if (this.subscription === undefined) this.ensureSubscribed()
    const selfId = this.context.selfId
    switch (event.type) {
      case 'taskAssigned':
        if (event.agentId === selfId) this.scheduleAdvert(ADVERT_DELAY_MS)
        else if (this.enabled) this.firstSeen.set(event.taskId, this.context.scheduler.now())
        return
      case 'taskStolen':
        if (event.from === selfId || event.to === selfId) this.scheduleAdvert(ADVERT_DELAY_MS)
        if (event.to !== selfId && this.enabled)
          this.firstSeen.set(event.taskId, this.context.scheduler.now())
        else this.firstSeen.delete(event.taskId)
        return
      case 'taskStarted':
      case 'taskUnassigned':
        this.firstSeen.delete(event.taskId)
        if (event.agentId === selfId) this.scheduleAdvert(ADVERT_DELAY_MS)
        return
      default:
        return
    }
  }

  private receive(message: PubSubMessage): void {
    if (message.topic !== this.subscription?.topic) return
    const advert = tryDecodeWorkAdvert(message.data)
    if (advert === undefined || advert.agentId === this.context.selfId) return
    // An advert speaks for its publisher only.
    if (message.type === 'signed' && message.from?.toString() !== advert.agentId) return
    if (this.context.replica.state.agent(advert.agentId)?.alive !== true) return
    const now = this.context.scheduler.now()
    if (advert.stealing === true) {
      const quiet = now - this.stealerHeardAt > STEALER_TTL_MS
      this.stealerHeardAt = now
      // The first stealer after a quiet spell hears of the surplus held back meanwhile.
      if (quiet && this.surplus().length > 0) this.scheduleAdvert(ADVERT_DELAY_MS)
    }
    if (!this.enabled) return
    let received = this.adverts.get(advert.agentId)
    if (received === undefined) {
      received = { load: advert.load, receivedAt: now, surplus: new Map() }
      this.adverts.set(advert.agentId, received)
    }
    received.load = advert.load
    received.receivedAt = now
    for (const taskId of advert.surplus) {
      received.surplus.delete(taskId)
      received.surplus.set(taskId, now)
    }
    for (const taskId of received.surplus.keys()) {
      if (received.surplus.size <= MAX_ADVERTISED_PER_AGENT) break
      received.surplus.delete(taskId)
    }
    this.kick()
  }

  // ---- publishing ----

  /** Tasks assigned to this agent and not running, less the best ones its idle `next()` calls will take now. */
  private surplus(): string[] {
    const { replica, selfId, tasks } = this.context
    const waiting = replica.state.tasksAssignedTo(selfId).filter(task => task.state === 'assigned')
    return waiting
      .slice(tasks.idleWaiters)
      .slice(0, MAX_SURPLUS)
      .map(task => task.id)
  }

  private scheduleAdvert(delayMs: number): void {
    if (this.context.closed.aborted) return
    const now = this.context.scheduler.now()
    const due = Math.max(now + delayMs, this.lastPublishedAt + ADVERT_MIN_INTERVAL_MS)
    if (this.advertTimer !== undefined && this.advertDue <= due) return
    this.advertTimer?.()
    this.advertDue = due
    this.advertTimer = this.context.scheduler.after(due - now, () => {
      this.advertTimer = undefined
      this.advertise().catch(err => this.context.log('advert not published: %e', err))
    })
  }

  private async advertise(): Promise<void> {
    const surplus = this.surplus()
    const now = this.context.scheduler.now()
    // Nobody steals: the surplus is kept back, and no refresh is armed for it (the first stealer heard
    // schedules an advert); an empty advert still says a published surplus is gone.
    if (surplus.length > 0 && now - this.stealerHeardAt > STEALER_TTL_MS && !this.enabled) return
    if (surplus.length > 0) this.scheduleAdvert(ADVERT_REFRESH_MS)
    const key = surplus.join('\n')
    // Unchanged: only the refresh repeats it. Empty: said once, after the last non-empty one.
    if (
      key === this.lastSurplus &&
      (surplus.length === 0 || now - this.lastPublishedAt < ADVERT_REFRESH_MS)
    ) {
      return
    }
    this.lastSurplus = key
    this.lastPublishedAt = now
    await this.publish(surplus)
  }

  /** Says this agent steals (with its surplus, if any), so that the others advertise theirs. */
  private announce(): void {
    this.lastPublishedAt = this.context.scheduler.now()
    this.publish(this.surplus()).catch(err => this.context.log('advert not published: %e', err))
  }

  private async publish(surplus: string[]): Promise<void> {
    const pubsub = this.ensureSubscribed()
    const topic = this.subscription?.topic
    if (pubsub === undefined || topic === undefined) return
    if (pubsub.getSubscribers(topic).length === 0) return
    const { replica, selfId } = this.context
    const load = replica.state.agentLoad(selfId)
    const advert: WorkAdvert = {
      agentId: selfId,
      load: load === undefined || load.slots === 0 ? 0 : (load.running + load.assigned) / load.slots,
      surplus,
    }
    if (this.enabled) advert.stealing = true
    try {
      await pubsub.publish(topic, encodeAdvert(advert))
    } catch (err) {
      this.context.log('advert not published: %e', err)
    }
  }

  // ---- stealing ----

  private tick(): void {
    if (this.context.scheduler.now() - this.lastPublishedAt >= ANNOUNCE_MS) this.announce()
    this.refused.clear()
    const state = this.context.replica.state
    for (const taskId of this.firstSeen.keys()) {
      if (state.task(taskId)?.state !== 'assigned') this.firstSeen.delete(taskId)
    }
    const now = this.context.scheduler.now()
    for (const [agentId, received] of this.adverts) {
      for (const [taskId, advertisedAt] of received.surplus) {
        if (now - advertisedAt <= ADVERT_TTL_MS) break
        received.surplus.delete(taskId)
      }
      if (now - received.receivedAt > ADVERT_TTL_MS) this.adverts.delete(agentId)
    }
    this.kick()
  }

  private kick(): void {
    if (!this.enabled || this.context.closed.aborted) return
    if (this.stealing) {
      this.again = true
      return
    }
    this.stealing = true
    this.stealWhileIdle()
      .catch(err => this.context.log('stealing failed: %e', err))
      .finally(() => {
        this.stealing = false
      })
  }

  private async stealWhileIdle(): Promise<void> {
    do {
      this.again = false
      for (let round = 0; round < MAX_STEALS_PER_ROUND; round++) {
        if (!this.enabled || this.context.closed.aborted || !this.idle()) return
        const choice = this.choose()
        if (choice === undefined) break
        const stolen = await this.stealOne(choice.task.id, choice.from)
        if (!stolen) this.refused.add(choice.task.id)
      }
    } while (this.again)
  }

  /** Idle: more `next()` callers waiting than tasks queued here, and a free slot in the replicated state. */
  private idle(): boolean {
    const waiters = this.context.tasks.idleWaiters
    if (waiters === 0) return false
    const load = this.context.replica.state.agentLoad(this.context.selfId)
    return load !== undefined && load.running + load.assigned < load.slots && waiters > load.assigned
  }

  private hasRoom(): boolean {
    const state = this.context.replica.state
    const load = state.agentLoad(this.context.selfId)
    return (
      state.agent(this.context.selfId)?.alive === true &&
      load !== undefined &&
      load.running + load.assigned < load.slots
    )
  }

  /** The task to steal: from the busiest fresh advert, else from the busiest agent in the replicated state. */
  private choose(): { task: TaskInfo; from: string } | undefined {
    const { replica, selfId } = this.context
    const state = replica.state
    const self = state.agent(selfId)
    if (self === undefined || !self.alive) return undefined
    const now = this.context.scheduler.now()
    const wallNow = this.context.scheduler.wallNow()
    const adverts = [...this.adverts]
      .filter(([, advert]) => now - advert.receivedAt <= ADVERT_TTL_MS)
      .sort((a, b) => b[1].load - a[1].load)
    for (const [agentId, advert] of adverts) {
      let best: TaskInfo | undefined
      for (const [taskId, advertisedAt] of advert.surplus) {
        if (now - advertisedAt > ADVERT_TTL_MS || this.refused.has(taskId)) continue
        const task = state.task(taskId)
        if (task === undefined || task.state !== 'assigned' || task.assignee !== agentId) continue
        if (!mayRun(task, self, wallNow) || (best !== undefined && !goesBefore(task, best))) continue
        best = task
      }
      if (best !== undefined) return { task: best, from: agentId }
    }
    let choice: { task: TaskInfo; from: string } | undefined
    let choiceLoad = -1
    for (const agent of state.agents()) {
      if (agent.agentId === selfId || !agent.alive) continue
      const load = state.agentLoad(agent.agentId)
      if (load === undefined || load.assigned === 0 || load.slots === 0) continue
      const ratio = (load.running + load.assigned) / load.slots
      if (ratio <= choiceLoad) continue
      const task = this.bestOf(agent.agentId, this.refused, true)
      if (task === undefined) continue
      choice = { task, from: agent.agentId }
      choiceLoad = ratio
    }
    return choice
  }

  /** The first task in schedule order assigned to `agentId`, not running, that this agent may run. */
  private bestOf(agentId: string, skip: ReadonlySet<string>, onlyWaiting: boolean): TaskInfo | undefined {
    const state = this.context.replica.state
    const self = state.agent(this.context.selfId)
    if (self === undefined) return undefined
    const now = this.context.scheduler.now()
    const wallNow = this.context.scheduler.wallNow()
    for (const task of state.tasksAssignedTo(agentId)) {
      if (task.state !== 'assigned' || skip.has(task.id) || !mayRun(task, self, wallNow)) continue
      if (onlyWaiting) {
        const seen = this.firstSeen.get(task.id)
        if (seen !== undefined && now - seen < this.stealAfterMs) continue
      }
      return task
    }
    return undefined
  }

  private async stealOne(taskId: string, from: string, signal?: AbortSignal): Promise<boolean> {
    const { result } = await submitWithSession(
      this.context,
      () => ({ type: 'stealTask', taskId, fromAgentId: from, toAgentId: this.context.selfId }),
      signal,
    )
    if (result.type === 'taskAssigned') {
      this.context.log('stole task %s from %s', taskId, from)
      return true
    }
    if (result.type === 'error' && result.code === 'NotStealable') return false
    throw unexpected(result)
  }

  private check(signal?: AbortSignal): void {
    if (this.context.closed.aborted) throw new ClosedError()
    if (signal?.aborted) throw new AbortError()
  }
}

/**
 * The task's hard constraints (capabilities, exclusions, deadline) allow `agent` to run it. `wallNow`: the
 * deadline is a wall-clock time (a hint here: the steal entry checks it against the leader's stamp).
 */
function mayRun(task: TaskInfo, agent: RegisteredAgent, wallNow: number): boolean {
  const { requiredCapabilities, excludeAgents } = task.constraints
  for (const capability of requiredCapabilities) {
    if (!agent.capabilities.includes(capability)) return false
  }
  if (excludeAgents?.includes(agent.agentId) || excludeAgents?.includes(agent.name)) return false
  return task.deadline === undefined || task.deadline > wallNow
}

/** Schedule order: higher priority first, then older. */
function goesBefore(a: TaskInfo, b: TaskInfo): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority
  return a.createdAt < b.createdAt
}
