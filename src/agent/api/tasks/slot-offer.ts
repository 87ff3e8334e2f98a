import type { Logger } from '@libp2p/interface'
import type { Cancel, Scheduler } from '../../../time/index.ts'
import { sleep } from '../../node/abort.ts'
import type { CommitPort } from '../../node/port.ts'
import type { Replica } from '../../node/replica.ts'

/**
 * How long the slots stay offered after the last `next()` call (outside a `process()` worker) returned: a
 * loop of `next()` calls is a worker too, and must not withdraw and offer again between two tasks.
 */
export const NEXT_LINGER_MS = 1000
/** The pause before the offer is sent again after a failure that is not the cluster's answer. */
const RETRY_MS = 200

/** Who runs tasks on this agent now. */
export type SlotHolder = 'worker' | 'next'

/** What the slot offer needs of the agent. */
export interface SlotOfferContext {
  selfId: string
  commit: CommitPort
  replica: Replica
  scheduler: Scheduler
  closed: AbortSignal
  log: Logger
}

/**
 * Whether this agent offers its task slots to the scheduler: only while a worker of it runs (a `process()`
 * worker, or a `next()` call), so tasks are never placed where nothing would start them. The offer is the
 * `runsTasks` field of the agent's registry entry: registered with the current value, changed with
 * `updateAgent` as workers come and go. Withdrawing it sends the tasks assigned here (not started) back to
 * pending, for the agents that run workers; running attempts go on.
 */
export class SlotOffer {
  private readonly context: SlotOfferContext
  private readonly holders: Record<SlotHolder, number> = { worker: 0, next: 0 }
  private wanted = false
  /** The value the registry holds as far as this agent knows (its last registration or update). */
  private sent: boolean | undefined
  private syncing = false
  private linger?: Cancel

  constructor(context: SlotOfferContext) {
    this.context = context
    // The leader takes the slots of an agent that does not start its assignments off placement
    // (`StalledAssignmentClock`); once this replica applies that, the slots are offered again if wanted.
    context.replica.onEvent(event => {
      if (event.type === 'agentChanged' && event.agentId === context.selfId) this.follow()
    })
    // A snapshot replaces the state without the events in between: an entry taking the slots off may be among
    // them (simulator, 5 agents, seed 362: a replica installing snapshots while the leader took its slots
    // off; it never offered them again, and a task waited with no agent to run it).
    context.replica.onRestore(() => this.follow())
  }

  /** The registry's value as this replica applied it: offered again if it differs from what is wanted. */
  private follow(): void {
    if (this.sent === undefined) return
    const registered = this.context.replica.state.agent(this.context.selfId)
    if (registered === undefined || registered.runsTasks === this.sent) return
    this.sent = registered.runsTasks
    this.sync()
  }

  /** Whether the slots are offered now: what a registration carries. */
  get runsTasks(): boolean {
    return this.wanted
  }

  /** A worker (or a `next()` call) starts: the slots are offered until every holder released them. */
  hold(holder: SlotHolder): () => void {
    this.holders[holder]++
    this.linger?.()
    this.linger = undefined
    this.want(true)
    let released = false
    return () => {
      if (released) return
      released = true
      this.holders[holder]--
      if (this.holders.worker + this.holders.next > 0) return
      if (holder === 'worker') {
        this.want(false)
        return
      }
      this.linger?.()
      this.linger = this.context.scheduler.after(NEXT_LINGER_MS, () => {
        this.linger = undefined
        if (this.holders.worker + this.holders.next === 0) this.want(false)
      })
    }
  }

  /** The agent registered (or re-registered) with `runsTasks`: the registry holds that now. */
  registered(runsTasks: boolean): void {
    this.sent = runsTasks
    this.sync()
  }

  private want(runsTasks: boolean): void {
    this.wanted = runsTasks
    this.sync()
  }

  /** Sends `updateAgent` until the registry holds what is wanted; one at a time. */
  private sync(): void {
    if (this.syncing || this.sent === undefined || this.sent === this.wanted) return
    this.syncing = true
    void this.send().finally(() => {
      this.syncing = false
    })
  }

  private async send(): Promise<void> {
    const { commit, selfId, closed, scheduler, log } = this.context
    while (!closed.aborted && this.sent !== undefined && this.sent !== this.wanted) {
      const runsTasks = this.wanted
      try {
        const result = await commit.submitRaw(
          { type: 'updateAgent', agentId: selfId, runsTasks },
          commit.deadline(),
        )
        if (result.type === 'error') {
          // Not registered (yet, or any more): the next registration carries the value.
          log('slot offer not sent: %s', result.message)
          this.sent = undefined
          return
        }
        this.sent = runsTasks
      } catch (err) {
        if (closed.aborted) return
        log('slot offer failed, sent again: %s', err)
        await sleep(RETRY_MS, closed, scheduler)
      }
    }
  }
}
