import type { ApplyContext } from './context.ts'
import type { AgentRecord, MemberTable } from './members.ts'
import type { TaskConstraintsSpec, TaskState } from './task-spec.ts'

/** What the scheduler reads of a task. */
export interface SchedulableTask {
  readonly id: string
  readonly priority: number
  /** Submission order: unique, increasing. */
  readonly seq: number
  readonly constraints: TaskConstraintsSpec
  /** `classKeyOf(constraints)`. */
  readonly classKey: string
  readonly state: TaskState
}

/** What the scheduler needs from the task table. */
export interface SchedulerHost<Task extends SchedulableTask> {
  /** Running plus assigned tasks of the agent. */
  used(agentId: string): number
  /** The agent that started the last task with this affinity key, if remembered. */
  affinityAgent(key: string): string | undefined
  /** Places a pending task (already out of the pending index) on the agent. */
  assign(task: Task, agentId: string, context: ApplyContext): void
}

/** Schedule order: higher priority first, then submission order. Negative if `a` goes before `b`. */
export function compareTasks(a: SchedulableTask, b: SchedulableTask): number {
  if (a.priority !== b.priority) return a.priority > b.priority ? -1 : 1
  return a.seq - b.seq
}

/**
 * Tasks with the same class key pass the same hard filters on every agent (capacity aside): the key is the
 * required capabilities and the exclusions, sorted and deduplicated.
 */
export function classKeyOf(constraints: TaskConstraintsSpec): string {
  const required = [...new Set(constraints.requiredCapabilities)].sort()
  const excluded = [...new Set(constraints.excludeAgents ?? [])].sort()
  return JSON.stringify([required, excluded])
}

/** The hard filters other than liveness and capacity: all required capabilities, not excluded by id or name. */
export function meetsConstraints(constraints: TaskConstraintsSpec, agent: AgentRecord): boolean {
  for (const capability of constraints.requiredCapabilities) {
    if (!agent.capabilitySet.has(capability)) return false
  }
  const excluded = constraints.excludeAgents
  return excluded === undefined || (!excluded.includes(agent.agentId) && !excluded.includes(agent.name))
}

/** Position of the agent (by id or name) in `preferredAgents`; the list's length if absent. */
function preferenceRank(constraints: TaskConstraintsSpec, agent: AgentRecord): number {
  const preferred = constraints.preferredAgents
  if (preferred === undefined) return 0
  for (let i = 0; i < preferred.length; i++) {
    if (preferred[i] === agent.agentId || preferred[i] === agent.name) return i
  }
  return preferred.length
}

/** Pending tasks of one class, in schedule order. */
interface PendingClass<Task extends SchedulableTask> {
  /** Constraints of the class's first task: the same filters as every other task of it. */
  readonly constraints: TaskConstraintsSpec
  readonly queue: TaskQueue<Task>
}

/**
 * Tasks in schedule order: an array with a moving head. Tasks mostly leave from the front (the best goes
 * first) and arrive at the back (equal priorities in submission order), both O(1) here, so that a backlog
 * of any length costs nothing per placement; other positions are found by binary search.
 */
class TaskQueue<Task extends SchedulableTask> {
  private items: (Task | undefined)[] = []
  private head = 0

  get length(): number {
    return this.items.length - this.head
  }

  /** The task at position `i` (0 is the best), for `i` below `length`. */
  at(i: number): Task {
    return this.items[this.head + i] as Task
  }

  insert(task: Task): void {
    const position = this.position(task)
    if (position === this.items.length) this.items.push(task)
    else if (position === this.head && this.head > 0) this.items[--this.head] = task
    else this.items.splice(position, 0, task)
  }

  /** Position of `task` in the queue, or -1. */
  indexOf(task: Task): number {
    const position = this.position(task)
    return this.items[position] === task ? position - this.head : -1
  }

  removeAt(i: number): void {
    if (i > 0) {
      this.items.splice(this.head + i, 1)
      return
    }
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }

  /** First array position from the head whose task does not go before `task`. */
  private position(task: Task): number {
    let low = this.head
    let high = this.items.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (compareTasks(this.items[middle] as Task, task) < 0) low = middle + 1
      else high = middle
    }
    return low
  }
}

/** An alive agent with free capacity at the start of a pass, and its use as the pass goes. */
interface Slot {
  readonly agent: AgentRecord
  used: number
}

/** A class the pass walks because a freed agent may now take its tasks. */
interface Stream<Task extends SchedulableTask> {
  readonly pending: PendingClass<Task>
  /** Position of the next task to consider; tasks before it were skipped (none fits). */
  cursor: number
  /** Freed agents that pass this class's filters; the stream ends when they are all full. */
  readonly agents: Slot[]
}

/**
 * The scheduler: an index of pending tasks, and the placement pass that runs at the end of every entry.
 *
 * Invariant between entries: no pending task passes the hard filters (capabilities, exclusions, alive, a
 * worker running, free capacity) of any agent. `assigned` counts against capacity: an agent is full when
 * running + assigned tasks reach its slots. So an entry can only make placements possible by making a task pending (submit,
 * retry, re-queue) or by freeing or changing an agent; the pass looks at just those, in schedule order
 * (priority desc, submission order), and stops when no agent has capacity. Pending tasks are grouped by
 * class (same filters), so a freed agent walks only the classes it can serve, and a class's head is the
 * best task of it; work per entry is about placements × agents, never pending tasks × agents.
 *
 * An agent is chosen among the eligible ones by: rank in `preferredAgents`, then the affinity key's last
 * agent, then lower load (running + assigned) / slots, then agent id.
 */
export class Scheduler<Task extends SchedulableTask> {
  private readonly classes = new Map<string, PendingClass<Task>>()
  private indexed = 0
  /** Tasks that became pending in this entry: not in the index until the pass has tried them. */
  private readonly fresh = new Set<Task>()
  /** Agents that gained capacity or eligibility in this entry. */
  private readonly freed = new Set<string>()
  private readonly members: MemberTable
  private readonly host: SchedulerHost<Task>

  constructor(members: MemberTable, host: SchedulerHost<Task>) {
    this.members = members
    this.host = host
  }

  /** Pending tasks (between entries, all are in the index). */
  get pendingCount(): number {
    return this.indexed + this.fresh.size
  }

  /** The task became pending in this entry. */
  addPending(task: Task): void {
    this.fresh.add(task)
  }

  /** The pending task is leaving pending. */
  removePending(task: Task): void {
    if (this.fresh.delete(task)) return
    const pending = this.classes.get(task.classKey)
    if (pending === undefined) return
    const position = pending.queue.indexOf(task)
    if (position >= 0) this.removeAt(task.classKey, pending, position)
  }

  /** The agent may take more (freed capacity, new capabilities, registered). */
  agentFreed(agentId: string): void {
    this.freed.add(agentId)
  }

  /** Puts a pending task straight into the index (snapshot restore: the invariant already holds). */
  restorePending(task: Task): void {
    this.insert(task)
  }

  /** The best pending task the agent could take now, if it has capacity and one passes its filters. */
  bestPendingFor(agent: AgentRecord): Task | undefined {
    if (!agent.alive || this.host.used(agent.agentId) >= agent.concurrency) return undefined
    let best: Task | undefined
    for (const pending of this.classes.values()) {
      const head = pending.queue.at(0)
      if (!meetsConstraints(pending.constraints, agent)) continue
      if (best === undefined || compareTasks(head, best) < 0) best = head
    }
    return best
  }

  /** The placement pass: called once at the end of every entry. */
  schedule(context: ApplyContext): void {
    if (this.fresh.size === 0 && this.freed.size === 0) return
    const fresh = [...this.fresh].filter(task => task.state === 'pending').sort(compareTasks)
    this.fresh.clear()
    const freed = [...this.freed]
    this.freed.clear()

    const slots: Slot[] = []
    for (const agent of this.members.allRecords()) {
      // Automatic placement only where a worker runs (an agent without one still claims explicitly).
      if (!agent.alive || !agent.runsTasks) continue
      const used = this.host.used(agent.agentId)
      if (used < agent.concurrency) slots.push({ agent, used })
    }
    let free = slots.length
    const streams: Stream<Task>[] = []
    if (freed.length > 0 && free > 0) {
      const freedSlots = slots.filter(slot => freed.includes(slot.agent.agentId))
      if (freedSlots.length > 0) {
        for (const pending of this.classes.values()) {
          const agents = freedSlots.filter(slot => meetsConstraints(pending.constraints, slot.agent))
          if (agents.length > 0) streams.push({ pending, cursor: 0, agents })
        }
      }
    }

    let next = 0
    const unplaced: Task[] = []
    while (free > 0) {
      let best: Task | undefined = next < fresh.length ? fresh[next] : undefined
      let source: Stream<Task> | undefined
      for (const stream of streams) {
        const queue = stream.pending.queue
        if (stream.cursor >= queue.length) continue
        if (!stream.agents.some(hasRoom)) {
          stream.cursor = queue.length
          continue
        }
        const head = queue.at(stream.cursor)
        if (best === undefined || compareTasks(head, best) < 0) {
          best = head
          source = stream
        }
      }
      if (best === undefined) break
      const slot = this.choose(best, slots)
      if (slot === undefined) {
        if (source !== undefined) source.cursor++
        else {
          unplaced.push(best)
          next++
        }
        continue
      }
      if (source !== undefined) this.removeAt(best.classKey, source.pending, source.cursor)
      else next++
      slot.used++
      if (!hasRoom(slot)) free--
      this.host.assign(best, slot.agent.agentId, context)
    }
    for (const task of unplaced) this.insert(task)
    for (let i = next; i < fresh.length; i++) this.insert(fresh[i])
  }

  /** The best slot with room whose agent passes the task's filters, or undefined. */
  private choose(task: Task, slots: Slot[]): Slot | undefined {
    const constraints = task.constraints
    const affinityAgent =
      constraints.affinity === undefined ? undefined : this.host.affinityAgent(constraints.affinity)
    let best: Slot | undefined
    let bestRank = 0
    for (const slot of slots) {
      if (!hasRoom(slot) || !meetsConstraints(constraints, slot.agent)) continue
      const rank = preferenceRank(constraints, slot.agent)
      if (best === undefined || rank < bestRank) {
        best = slot
        bestRank = rank
        continue
      }
      if (rank > bestRank) continue
      const affine = slot.agent.agentId === affinityAgent
      const bestAffine = best.agent.agentId === affinityAgent
      if (affine !== bestAffine) {
        if (affine) best = slot
        continue
      }
      // Lower load first, compared exactly: used/slots < bestUsed/bestSlots.
      const load = slot.used * best.agent.concurrency
      const bestLoad = best.used * slot.agent.concurrency
      if (load < bestLoad || (load === bestLoad && slot.agent.agentId < best.agent.agentId)) best = slot
    }
    return best
  }

  private insert(task: Task): void {
    let pending = this.classes.get(task.classKey)
    if (pending === undefined) {
      pending = { constraints: task.constraints, queue: new TaskQueue() }
      this.classes.set(task.classKey, pending)
    }
    pending.queue.insert(task)
    this.indexed++
  }

  private removeAt(key: string, pending: PendingClass<Task>, position: number): void {
    pending.queue.removeAt(position)
    this.indexed--
    if (pending.queue.length === 0 && this.classes.get(key) === pending) this.classes.delete(key)
  }
}

function hasRoom(slot: Slot): boolean {
  return slot.used < slot.agent.concurrency
}
