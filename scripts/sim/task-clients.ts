/**
 * The task workload: submitters and workers of the real task API (`agent.tasks()`: `src/agent/api/tasks`)
 * on the simulated agents, under the run's faults, reporting to the task checker (`task-checker.ts`).
 *
 * - Submitters, one operation at a time each, through a random agent: plain tasks; diamonds (a, then b and c
 *   depending on a, then d depending on both; a child is submitted once its parents' submissions were
 *   answered, as parents must exist); repeats every 50..200 virtual ms; cancels of a task running now or of
 *   any task submitted. A call that fails is sent again elsewhere (submits and cancels are idempotent)
 *   until the workload stops issuing; then its outcome is unknown.
 * - Workers: on most agents, a `process()` worker per incarnation, registered as the agent does (session,
 *   then `registerAgent`, with the slot offer); now and then closed and started again, which takes its slots
 *   back. Handlers run 5..60 virtual ms on their agent's clock (a crash drops them, a pause holds them), look
 *   at their signal now and then, fail now and then, and most stop when their signal aborts; the others
 *   return anyway, so that the cluster must refuse their completion. A result names its attempt's token.
 * - At the end of issuing the repeats are cancelled; the checker's liveness wants every task ended by the
 *   end of the run. The window in which a stable leader must serve every repeat slot runs from 10 ticks after
 *   the runner saw a stable leader (`leaderStable`) to the end of issuing.
 */

import { SessionLapsedError } from '../../src/agent/cluster/directory.ts'
import { sleep } from '../../src/agent/node/abort.ts'
import type { ClaimedTask, TaskInput, TaskWorker } from '../../src/api.ts'
import { NotFoundError, StaleAttemptError } from '../../src/errors.ts'
import type { NodeId } from '../../src/raft/types.ts'
import type { StateMachine } from '../../src/state/index.ts'
import { type SimAgent, type SimTaskApi, TASK_SLOTS } from './agent.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK, type Scheduler } from './scheduler.ts'
import type { FinalTasks, TaskChecker } from './task-checker.ts'

export interface TaskWorkloadEnv {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly checker: TaskChecker
  node(id: NodeId): SimAgent
  readonly nodeIds: readonly NodeId[]
  /** Whether new operations may start. */
  issuing(): boolean
  trace(line: string): void
}

/** How long a submitter waits for an answer (above the agents' operation timeout). */
const CALL_TIMEOUT_MS = 2000
const TERMINAL = new Set(['completed', 'dead', 'expired', 'cancelled'])
/**
 * A repeat slot is served within a few housekeeping rounds of falling due (state ms of slack): its entry
 * may wait behind an earlier slot's (`LeaderDuties`), and a commit takes up to ~100 ms under the seed's
 * tightest flow control.
 */
const REPEAT_SLACK_MS = 300

/**
 * The drain past the run's hard end (`draining`): it stops once no task moved for longer than an attempt's
 * longest timeout (600 ms) and back-off (100 ms) with a claim's round trip, or after 5 s.
 */
const DRAIN_QUIET_MS = 1000
const DRAIN_MAX_MS = 5000

interface WorkerRun {
  incarnation: number
  worker?: TaskWorker
  /** Real ms at which the worker closes (while issuing), or, while none runs, at which one starts. */
  nextChange: number
  registering: boolean
}

export class TaskWorkload {
  private readonly env: TaskWorkloadEnv
  /** The agents that run workers. */
  private readonly hosts: NodeId[]
  private readonly workers = new Map<NodeId, WorkerRun>()
  /** Tasks whose submission was answered. */
  private readonly known: string[] = []
  /** Tasks a handler runs now (the targets of cancels of running tasks). */
  private readonly running = new Map<string, number>()
  private readonly schedules: { id: string; every: number }[] = []
  /**
   * Every repeat submitted, answered or not: a submission whose answer never came may still have committed,
   * and its occurrences would go on to the run's end (seed 59) unless it is cancelled with the others.
   */
  private readonly repeatIds: string[] = []
  private inFlight = 0
  private nextId = 0
  private stopped = false
  private issuingEnded = false
  /** The leader the repeat window is measured on, and the last slot each repeat had when it began. */
  private window?: { leader: SimAgent; term: number; lastSlots: Map<string, number> }
  /** Closed windows: every slot of repeat `id` in (`from`, `to`] must have its occurrence at the end. */
  private readonly windows: { id: string; from: number; to: number }[] = []
  /** When the drain past the hard end began (`draining`), and the last progress seen in it. */
  private drainStart?: number
  private drainProgress?: { count: number; at: number }
  /** The first violation seen in a callback (the runner throws it after the event). */
  violation?: Violation

  constructor(env: TaskWorkloadEnv) {
    this.env = env
    this.hosts = env.nodeIds.filter(() => env.prng.chance(0.75))
    if (this.hosts.length === 0) this.hosts.push(env.prng.pick(env.nodeIds))
  }

  start(delayMs: number): void {
    const { scheduler, prng } = this.env
    scheduler.after(delayMs, () => this.supervise())
    const submitters = prng.between(1, 2)
    for (let i = 0; i < submitters; i++) scheduler.after(delayMs + prng.between(0, 50), () => this.issue())
  }

  /** The runner saw a leader a quorum follows (after the faults): the repeat window opens a little later. */
  leaderStable(leader: SimAgent): void {
    this.env.scheduler.after(10 * MS_PER_TICK, () => this.openWindow(leader, leader.term))
  }

  /**
   * Opens the repeat window once the state time shows the leader's clock: it advances only with entries that
   * carry a command (a leader's first entry, empty, does not), and slots are due on the leader's clock. From a
   * state time a new leader had not stamped yet, every slot up to its clock ahead of it looked due in the
   * window, though skipped by design as missed before it led (seed 195). `before`: the state time when the
   * window was first due to open, and the leader's wall clock then: the state time must pass both. Its first
   * step forward may come from an entry proposed long before and committed only now, stamped by an earlier
   * clock; the leader's clock jumps ahead once its own entries apply, and slots missed over more than
   * `MAX_CATCH_UP_SLOTS` are skipped by design (seed 417: the window opened at state time 1527 on a leader
   * whose clock read 2380, and slot 2157 was skipped).
   */
  private openWindow(leader: SimAgent, term: number, before?: { state: number; wall: number }): void {
    const state = leader.stateMachine()
    if (!state || leader.role !== 'leader' || leader.term !== term || this.issuingEnded) return
    if (before === undefined || state.time <= before.state || state.time < before.wall) {
      const since = before ?? { state: state.time, wall: leader.clock.wallNow() }
      this.env.scheduler.after(MS_PER_TICK, () => this.openWindow(leader, term, since))
      return
    }
    // From a period and a round or two after the later of the last slot served and the state's time: slots
    // missed for long before (while there was no leader) are skipped by design, and the leader's first
    // rounds may still be catching up.
    const lastSlots = new Map(
      this.schedules.map(({ every, id }) => [
        id,
        Math.max(state.repeatingTask(id)?.lastSlot ?? 0, state.time) + every + REPEAT_SLACK_MS,
      ]),
    )
    this.window = { leader, term: leader.term, lastSlots }
  }

  /** Nothing in flight, and every task the leader holds has ended. */
  idle(leader: SimAgent | undefined): boolean {
    if (!this.issuingEnded || this.inFlight > 0) return false
    const state = leader?.stateMachine()
    if (!state) return false
    const gone = new Set(this.env.nodeIds.filter(id => this.env.node(id).decommissioned))
    // Those held by an agent shut down for good stay until its session expires (see `TaskChecker.finish`).
    return allTasks(state).every(id => {
      const task = state.task(id)
      return task === undefined || TERMINAL.has(task.state) || gone.has(task.assignee ?? '')
    })
  }

  /**
   * Whether the run should go on past its hard end for the tasks: some are not ended, and the cluster still
   * makes progress on them (a task ended, or an attempt started, in the last `DRAIN_QUIET_MS`), for at most
   * `DRAIN_MAX_MS` past the first call. Liveness is that every task ends once the faults stopped, not that a
   * backlog drains by a fixed time: one or two workers left on the agents that keep up, at two slots each,
   * run fewer handlers than three repeats every 50 ms create, and such a backlog was still being worked off,
   * task after task, at the hard end (seeds 20, 29 and 283: the last occurrences' handlers running then). A
   * task held up (nothing happens to any task for `DRAIN_QUIET_MS`) ends the drain and fails the check.
   */
  draining(leader: SimAgent | undefined, now: number): boolean {
    const state = leader?.stateMachine()
    if (!state || this.idle(leader)) return false
    this.drainStart ??= now
    let progress = this.env.checker.stats.starts
    for (const id of allTasks(state)) {
      const task = state.task(id)
      if (task !== undefined) progress += task.attempt + (TERMINAL.has(task.state) ? 1 : 0)
    }
    if (progress !== this.drainProgress?.count) this.drainProgress = { count: progress, at: now }
    return now - this.drainProgress.at < DRAIN_QUIET_MS && now - this.drainStart < DRAIN_MAX_MS
  }

  abandon(): void {
    this.stopped = true
  }

  /** Checks the final state of `leader` (the run's end). */
  finish(leader: SimAgent | undefined, at: number): void {
    if (this.violation) throw this.violation
    const state = leader?.stateMachine()
    if (!state) return
    // Agents that cannot start what they hold: shut down for good, or with a replica still behind the leader's
    // commit at the end (a follower receiving a snapshot in the seed's smallest chunks takes seconds: it claims
    // through the leader, but starts an attempt only once its replica applied the claim).
    const gone = new Set(
      this.env.nodeIds.filter(id => {
        const agent = this.env.node(id)
        return agent.decommissioned || (agent.up && agent.applied < (leader?.commit ?? 0))
      }),
    )
    for (const id of gone) this.env.trace(`task workload: ${id} is gone or behind at the end`)
    // Tasks can end only where a worker runs on an agent that keeps up: with none (every worker's agent gone
    // or still catching up, seeds 72 and 86), what waits to run is no finding.
    const able = this.hosts.filter(id => {
      const agent = this.env.node(id)
      const run = this.workers.get(id)
      return agent.up && run?.incarnation === agent.incarnation && run.worker !== undefined && !gone.has(id)
    })
    if (able.length === 0) this.env.trace('task workload: no worker on an agent that keeps up at the end')
    this.env.checker.finish(finalTasks(state), at, able.length > 0, gone)
    const ids = new Set(allTasks(state))
    for (const { id, from, to } of this.windows) this.env.checker.checkRepeatWindow(id, from, to, ids, at)
  }

  // ---------- submitters ----------

  private issue(): void {
    const { prng, scheduler } = this.env
    if (this.stopped || !this.env.issuing()) return
    const kind = prng.weighted({
      plain: 35,
      diamond: 25,
      cancel: 30,
      repeat: this.schedules.length < 2 ? 10 : 0,
    })
    const done = (): void => {
      scheduler.after(prng.between(20, 150), () => this.issue())
    }
    switch (kind) {
      case 'plain':
        void this.submit(this.spec(`t${++this.nextId}`, [])).then(done)
        return
      case 'diamond':
        void this.diamond().then(done)
        return
      case 'repeat':
        void this.submitRepeat().then(done)
        return
      default:
        void this.cancel().then(done)
    }
  }

  private spec(id: string, parents: string[]): TaskInput {
    const prng = this.env.prng
    this.env.checker.submitting(id, { parents, maxRetries: 8 })
    return {
      id,
      type: 'work',
      payload: { id },
      constraints: { maxRetries: 8, timeout: prng.between(300, 600) },
      backoff: { type: 'fixed', delay: prng.between(10, 100) },
      ...(parents.length > 0 ? { dependsOn: parents } : {}),
    }
  }

  private async diamond(): Promise<void> {
    const n = ++this.nextId
    this.env.checker.stats.diamonds++
    if (!(await this.submit(this.spec(`d${n}a`, [])))) return
    const [b, c] = await Promise.all([
      this.submit(this.spec(`d${n}b`, [`d${n}a`])),
      this.submit(this.spec(`d${n}c`, [`d${n}a`])),
    ])
    if (b && c) await this.submit(this.spec(`d${n}d`, [`d${n}b`, `d${n}c`]))
  }

  private async submitRepeat(): Promise<void> {
    const id = `r${++this.nextId}`
    const every = this.env.prng.pick([50, 100, 200])
    this.env.checker.repeat(id, every)
    this.env.checker.stats.repeats++
    const task: TaskInput = {
      id,
      type: 'work',
      payload: { id },
      constraints: { maxRetries: 8, timeout: this.env.prng.between(300, 600) },
      backoff: { type: 'fixed', delay: 20 },
      repeat: { every },
    }
    this.repeatIds.push(id)
    const answer = await this.call(`submit ${id}`, api => api.tasks.submit(task))
    if (answer === undefined) return
    this.env.checker.repeat(id, every, answer.value.createdAt.getTime())
    this.schedules.push({ id, every })
  }

  /** Submits until answered (true) or the workload stops issuing (false: outcome unknown). */
  private async submit(task: TaskInput): Promise<boolean> {
    const id = task.id!
    this.env.checker.stats.submitted++
    const answer = await this.call(`submit ${id}`, api => api.tasks.submit(task))
    if (answer === undefined) return false
    this.known.push(id)
    return true
  }

  private async cancel(): Promise<void> {
    const { prng, checker } = this.env
    const running = [...this.running.keys()].filter(id => !id.includes(':'))
    const ofRunning = running.length > 0 && prng.chance(0.5)
    const pool = ofRunning ? running : this.known
    if (pool.length === 0) return
    const id = prng.pick(pool)
    checker.cancelSent(id, ofRunning)
    const answer = await this.call(`cancel ${id}`, api => api.tasks.cancel(id, { reason: 'by the workload' }))
    if (answer === undefined) return
    this.guard(() => checker.cancelAcknowledged(id, this.env.scheduler.now, answer.applied))
  }

  private async cancelRepeats(): Promise<void> {
    for (const id of this.repeatIds) {
      const answer = await this.call(`cancel ${id}`, api => api.tasks.cancel(id), true)
      if (answer === undefined) this.env.trace(`task workload: the cancel of repeat ${id} went unanswered`)
    }
  }

  /**
   * Calls `fn` on a random agent that is up, again elsewhere after a failure, until answered, or until the
   * workload stops issuing (`pastIssuing`: until the run ends). Answers the value and an index at or above
   * the entry of the call.
   */
  private async call<T>(
    what: string,
    fn: (api: SimTaskApi) => Promise<T>,
    pastIssuing = false,
  ): Promise<{ value: T; applied: number } | undefined> {
    const { prng, scheduler } = this.env
    this.inFlight++
    try {
      for (let tries = 1; !this.stopped && (pastIssuing || this.env.issuing()); tries++) {
        // An agent that is up and in its own configuration (a spare not added, or a removed one, would wait
        // for a leader it never hears from), as the KV clients choose.
        const members = this.env.nodeIds.filter(id => isMember(this.env.node(id)))
        const agent = this.env.node(prng.pick(members.length > 0 ? members : this.env.nodeIds))
        try {
          // A call to an agent that crashes meanwhile never returns (its process died): given up after a
          // while, as a client's RPC times out, and tried elsewhere.
          const value = await new Promise<T>((resolve, reject) => {
            scheduler.after(CALL_TIMEOUT_MS, () => reject(new Error('no answer in time')))
            fn(agent.tasks()).then(resolve, reject)
          })
          // The answer may come from the leader before this agent applied the entry: the highest index any
          // agent committed or applied bounds the entry's index from above (it applied before the answer).
          // Applied too: an agent's commit as observed here is its last Raft status, which can trail the
          // entries it has just applied and answered (seed 289: a cancel at entry 22 answered while every
          // observed commit still read 19).
          let committed = 0
          for (const id of this.env.nodeIds) {
            const node = this.env.node(id)
            committed = Math.max(committed, node.commit, node.applied)
          }
          return { value, applied: committed }
        } catch (error) {
          if (tries === 1 || tries % 10 === 0) {
            this.env.trace(`task workload: ${what} at ${agent.id} failed: ${(error as Error)?.name}`)
          }
          // The task is not there (its submission's outcome was unknown): nothing to cancel.
          if (error instanceof NotFoundError) return undefined
          if (isUnexpected(error)) {
            this.guard(() => {
              throw new Violation('api', scheduler.now, `${what} at ${agent.id}: ${(error as Error).stack}`)
            })
            return undefined
          }
        }
        await new Promise<void>(resolve => scheduler.after(prng.between(10, 50), resolve))
      }
      return undefined
    } finally {
      this.inFlight--
    }
  }

  // ---------- workers ----------

  /** Every tick: a worker on every host that is up, for its current incarnation; the end of issuing. */
  private supervise(): void {
    const { scheduler, prng } = this.env
    if (this.stopped) return
    if (!this.issuingEnded && !this.env.issuing()) {
      this.issuingEnded = true
      this.closeWindow()
      void this.cancelRepeats()
    }
    for (const id of this.hosts) {
      const agent = this.env.node(id)
      if (!agent.up || agent.decommissioned) continue
      let run = this.workers.get(id)
      if (run === undefined || run.incarnation !== agent.incarnation) {
        run = { incarnation: agent.incarnation, nextChange: scheduler.now, registering: false }
        this.workers.set(id, run)
      }
      const api = agent.tasks()
      if (run.worker === undefined && scheduler.now >= run.nextChange) {
        run.nextChange = scheduler.now + prng.between(1000, 4000)
        this.startWorker(agent, api, run)
      } else if (run.worker !== undefined && this.env.issuing() && scheduler.now >= run.nextChange) {
        // The worker closes (its slots go back: what is assigned here returns to pending); a new one starts
        // a while later. Once issuing ends, workers stay.
        const worker = run.worker
        run.worker = undefined
        run.nextChange = scheduler.now + prng.between(50, 500)
        this.env.trace(`task workload: the worker on ${id} closes`)
        void worker.close()
      }
      // A session lost and not reopened (its reopening failed): registered again, as the agent's join does.
      if (run.worker !== undefined && api.session.id === '' && !run.registering) void this.register(api, run)
    }
    scheduler.after(MS_PER_TICK, () => this.supervise())
  }

  private startWorker(agent: SimAgent, api: SimTaskApi, run: WorkerRun): void {
    const { checker, scheduler, prng } = this.env
    checker.stats.workerStarts++
    const epoch = agent.clock.epoch
    // At least two slots: a repeat every 50 ms beside other work outruns a single slot (handlers run up to
    // 60 ms), and a backlog still growing when issuing ends outlasts the liveness window (seed 2), which is
    // an overloaded workload, not a task held up.
    const worker = api.tasks.process(task => this.handle(agent, epoch, task), {
      concurrency: prng.between(2, TASK_SLOTS),
    })
    run.worker = worker
    worker.addEventListener('completed', event => {
      const task = (event as CustomEvent<{ task: ClaimedTask }>).detail.task
      this.guard(() => checker.completionAccepted(task.id, task.fencingToken, scheduler.now))
    })
    worker.addEventListener('failed', () => {
      checker.stats.failed++
    })
    worker.addEventListener('error', event => {
      const detail = (event as CustomEvent<{ task?: ClaimedTask; error?: unknown }>).detail
      if (detail.task !== undefined && detail.error instanceof StaleAttemptError) checker.stats.refused++
    })
    this.env.trace(`task workload: a worker starts on ${agent.id}`)
    api.registerOnOpen()
    if (!run.registering) void this.register(api, run)
  }

  /** Opens the session (which registers the agent) or registers under the open one, until it holds. */
  private async register(api: SimTaskApi, run: WorkerRun): Promise<void> {
    run.registering = true
    try {
      for (let pause = 50; !this.stopped; pause = Math.min(pause * 2, 800)) {
        try {
          if (api.session.id === '') await api.session.open(api.client.deadline())
          else api.tasks.slotOffer.registered(await api.directory.register(api.session.id))
          return
        } catch (error) {
          if (error instanceof SessionLapsedError) api.session.ended(error.sessionId)
          await sleep(pause, api.closed, api.scheduler)
        }
      }
    } finally {
      run.registering = false
    }
  }

  private handle(agent: SimAgent, epoch: number, task: ClaimedTask): Promise<unknown> {
    const { checker, scheduler, prng } = this.env
    const token = task.fencingToken
    const current = (): boolean => {
      const info = agent.stateMachine()?.task(task.id)
      return info?.state === 'running' && BigInt(info.fencingToken) === token
    }
    if (task.id.includes(':')) checker.stats.occurrences++
    this.guard(() => checker.started(task.id, token, task.attempt, agent.id, scheduler.now, current()))
    this.running.set(task.id, (this.running.get(task.id) ?? 0) + 1)
    const runMs = prng.between(5, 60)
    const honors = prng.chance(0.7)
    const fails = prng.chance(0.08)
    this.env.trace(
      `task workload: ${agent.id} runs ${task.id} attempt ${task.attempt} (token ${token}) for ${runMs} ms${honors ? '' : ', deaf to its signal'}${fails ? ', to fail' : ''}`,
    )
    return new Promise((resolve, reject) => {
      let done = false
      const end = (fn: () => void): void => {
        if (done) return
        done = true
        const left = (this.running.get(task.id) ?? 1) - 1
        if (left === 0) this.running.delete(task.id)
        else this.running.set(task.id, left)
        fn()
      }
      if (honors) {
        task.signal.addEventListener('abort', () => end(() => reject(task.signal.reason)), { once: true })
      }
      const looks = prng.between(0, 2)
      for (let i = 0; i < looks; i++) {
        scheduler.after(prng.between(1, runMs), () =>
          agent.clock.run(epoch, () => {
            if (done || task.signal.aborted) return
            this.guard(() => checker.alive(task.id, token, agent.id, scheduler.now, current()))
          }),
        )
      }
      scheduler.after(runMs, () =>
        agent.clock.run(epoch, () =>
          end(() => {
            if (fails) {
              reject(new Error('the handler failed (as the workload meant)'))
              return
            }
            checker.returned(task.id, token, scheduler.now)
            resolve({ token: String(token), by: agent.id })
          }),
        ),
      )
    })
  }

  // ---------- the repeat window ----------

  /**
   * The window closes at the end of issuing (the repeats are cancelled next), still under the leader it opened
   * under; its slots are checked against the final state (`finish`): an occurrence whose entry was still on
   * its way at the close counts.
   */
  private closeWindow(): void {
    const window = this.window
    this.window = undefined
    if (!window) return
    const { leader, term, lastSlots } = window
    const state = leader.stateMachine()
    if (!state || leader.role !== 'leader' || leader.term !== term) return
    const to = state.time
    for (const { id, every } of this.schedules) {
      const from = lastSlots.get(id)
      if (from !== undefined) this.windows.push({ id, from, to: to - every - REPEAT_SLACK_MS })
    }
  }

  private guard(fn: () => void): void {
    try {
      fn()
    } catch (error) {
      if (!(error instanceof Violation)) throw error
      this.violation ??= error
    }
  }
}

function isMember(agent: SimAgent): boolean {
  const config = agent.up && !agent.decommissioned ? agent.config() : undefined
  return config !== undefined && (config.voters.includes(agent.id) || config.nonVoters.includes(agent.id))
}

/** Every task id `state` holds, in submission order. */
function allTasks(state: StateMachine): string[] {
  const ids: string[] = []
  let after: string | undefined
  for (;;) {
    const page = state.listTasks({}, 1000, after)
    if (page === undefined) return ids
    for (const task of page.tasks) ids.push(task.id)
    if (!page.more || page.tasks.length === 0) return ids
    after = page.tasks[page.tasks.length - 1].id
  }
}

function finalTasks(state: StateMachine): FinalTasks {
  return { task: id => state.task(id), ids: () => allTasks(state) }
}

/** An error the task API never throws for a well-formed call to a cluster that is only slow or cut off. */
function isUnexpected(error: unknown): boolean {
  const name = (error as Error)?.name
  return name === 'InvalidArgumentError' || name === 'ConflictError' || name === 'TypeError'
}
