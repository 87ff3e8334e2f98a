/**
 * Session keep-alives off the log: the keeper's call to the leader (over the admin protocol, or in-process
 * when this agent leads) and the leader's answer from its lessor. Neither side needs a Raft log of its own
 * on the keeper's end: a member that holds none reaches the leader by peer id.
 */

import { ClosedError, InvalidArgumentError, NoLeaderError, UnauthorizedError } from '../../errors.ts'
import type { Scheduler } from '../../time/index.ts'
import { abortable, deadlineSignal, sleep } from '../node/abort.ts'
import type { LeaderPort } from '../node/port.ts'
import { remoteErrorName } from '../node/remote-errors.ts'
import type { KeepAliveAnswer } from './keep-alive-answer.ts'
import type { LeasedSession, Lessor } from './lessor.ts'

/** What the server needs of the leader's Raft runner: a ReadIndex round that confirms its leadership. */
export interface ReadIndexRunner {
  readIndex(signal?: AbortSignal): Promise<void>
}

export interface KeepAliveServerInit {
  selfId: string
  lessor: Pick<Lessor, 'follow' | 'renew' | 'current'>
  /** Who leads as this agent knows it, and in which term (named in the answers, for keepers to learn). */
  leader: Pick<LeaderPort, 'leader'> & { readonly term?: number }
  /** This agent's leadership (`RaftHost.leaderSince`: an identity per takeover) and its runner. */
  host: { readonly leaderSince?: { local: number }; current(): ReadIndexRunner | undefined }
  /** A session in this agent's applied state. */
  session(sessionId: string): LeasedSession | undefined
  scheduler: Scheduler
  /** How long the leadership confirmation may take before the keeper is told to retry. */
  timeoutMs: number
  /** How long a confirmation round waits for more keep-alives to share it (ms; a heartbeat interval). */
  batchMs: number
  closed: AbortSignal
}

/**
 * The leader's side. A keep-alive counts only once this agent has confirmed, after its arrival, that it
 * still leads (a ReadIndex round with a quorum): a deposed leader that has not heard of its successor must
 * not promise a lease the successor does not know of. The confirmation also brings the applied state up to
 * the commit point, so a session opened just before is found.
 */
export class KeepAliveServer {
  private readonly init: KeepAliveServerInit
  /** The confirmation round not yet begun: keep-alives arriving meanwhile share it. */
  private nextRound?: Promise<boolean>

  constructor(init: KeepAliveServerInit) {
    this.init = init
  }

  /**
   * Whether this agent confirmed its leadership by a ReadIndex round begun after now. Keep-alives arriving
   * within `batchMs` share one round (one heartbeat to the replicas for all of them), at the cost of that
   * much latency; a keep-alive counts from its arrival either way.
   */
  private confirmAfter(runner: ReadIndexRunner): Promise<boolean> {
    const { scheduler, timeoutMs, closed, batchMs } = this.init
    this.nextRound ??= new Promise<boolean>(resolve => {
      scheduler.after(
        batchMs,
        () => {
          this.nextRound = undefined
          const bound = deadlineSignal(timeoutMs, [], scheduler)
          abortable(runner.readIndex(bound.signal), { signal: bound.signal, closed })
            .then(
              () => resolve(true),
              () => resolve(false),
            )
            .finally(bound.cancel)
        },
        { keepAlive: true },
      )
    })
    return this.nextRound
  }

  async serve(sessionId: string, from: string): Promise<KeepAliveAnswer> {
    const { selfId, lessor, leader, host, scheduler } = this.init
    const arrivedAt = scheduler.now()
    const since = leader.leader === selfId ? host.leaderSince : undefined
    const runner = host.current()
    if (since === undefined || runner === undefined) return this.notLeader()
    lessor.follow(since)
    const leadership = lessor.current
    const confirmed = await this.confirmAfter(runner)
    if (this.init.closed.aborted) throw new ClosedError()
    if (!confirmed) return this.notLeader()
    if (host.leaderSince !== since) return this.notLeader()
    const session = this.init.session(sessionId)
    if (session === undefined) return { status: 'expired' }
    // Only its own agent keeps a session alive.
    if (session.agentId !== from) {
      throw new UnauthorizedError(`${from} may not keep alive the session of agent ${session.agentId}`)
    }
    switch (lessor.renew(sessionId, arrivedAt, leadership)) {
      case 'renewed':
        return { status: 'renewed', ttlMs: session.ttlMs, ...termOf(leader) }
      case 'expiring':
        return { status: 'expired' }
      case 'stale':
        return this.notLeader()
    }
  }

  /** Not (or no longer) the leader: who is, as this agent knows it. */
  private notLeader(): KeepAliveAnswer {
    const { leader, selfId } = this.init
    return { status: 'notLeader', leader: leader.leader === selfId ? '' : leader.leader, ...termOf(leader) }
  }
}

function termOf(leader: { readonly term?: number }): { term?: number } {
  return leader.term === undefined ? {} : { term: leader.term }
}

export interface KeepAliveClientInit {
  selfId: string
  /** Who leads as this agent knows it, and a wait for that to change. */
  leader: LeaderPort
  /** Sends the keep-alive to `peer` (the admin protocol). */
  call(peer: string, sessionId: string, timeoutMs: number): Promise<KeepAliveAnswer>
  /** The in-process server, for when this agent leads. */
  local: Pick<KeepAliveServer, 'serve'>
  /** A `keepAlive` log entry, for a leader older than the lessor (rolling upgrade); `NoLeaderError` past `deadline`. */
  legacy(sessionId: string, deadline: number): Promise<Exclude<KeepAliveAnswer, { status: 'notLeader' }>>
  /**
   * The replicas (voters and standbys) as this agent knows them: asked who leads when the leader it knows
   * fails or stays silent. Without it only the leader it knows and the redirects are asked.
   */
  replicas?(): readonly string[]
  /**
   * A replica named who leads in `term` (renewing, it leads itself): an agent that holds no log learns the
   * leader this way when the one it knew is lost, for its writes and its next keep-alives.
   */
  learn?(leader: string, term: number): void
  scheduler: Scheduler
  closed: AbortSignal
}

/** The pause between two attempts while no leader answers. */
const RETRY_MS = 50
/**
 * The share of a keep-alive's time after which a silent leader is no longer waited on alone: the other
 * replicas are asked who leads while its answer may still come. A leader whose machine is lost answers
 * nothing (no reset), and until the view declares it dead the member knows no other leader: asking it alone
 * until the deadline, keep-alive after keep-alive, a member outlived the ttl the new leader gave its session
 * (found by `sim:scale --silent-crashes`). A slow leader is not abandoned: its answer counts whenever it comes.
 */
const SILENT_SHARE = 1 / 3
/** The shortest silence before the others are asked (a leader batches keep-alives a heartbeat long). */
const MIN_SILENT_MS = 100

type Decisive = Exclude<KeepAliveAnswer, { status: 'notLeader' }>
type Step =
  | { answer: KeepAliveAnswer }
  | { error: unknown }
  | { silent: true }
  | { waited: true }
  | { decided: Decisive }

/**
 * The keeper's side: keeps asking the leader (following its redirects and the leader changes this agent
 * sees) until one answers `renewed` or `expired`, or `deadline` (monotonic ms) passes: then `NoLeaderError`.
 * When the leader it asks fails, or stays silent for a third of the time, it asks the other replicas (each
 * names who it sees leading), while a silent leader's own answer still counts if it comes.
 */
export class KeepAliveClient {
  private readonly init: KeepAliveClientInit
  /** Where the next search among the replicas starts (spreads searching keepers over them). */
  private rotation: number

  constructor(init: KeepAliveClientInit) {
    this.init = init
    this.rotation = spread(init.selfId)
  }

  async keepAlive(sessionId: string, deadline: number): Promise<Decisive> {
    const { selfId, leader, scheduler, closed } = this.init
    const silentMs = Math.max(MIN_SILENT_MS, (deadline - scheduler.now()) * SILENT_SHARE)
    let decide: (answer: Decisive) => void = () => {}
    const decided = new Promise<Step>(resolve => {
      decide = answer => resolve({ decided: answer })
    })
    let lastError: unknown
    const asked = new Set<string>()
    /** Peers that failed or stayed silent this time: not asked again while another may answer. */
    const failed = new Set<string>()
    let target = this.next(failed)
    for (;;) {
      if (closed.aborted) throw new ClosedError()
      const remaining = deadline - scheduler.now()
      if (remaining <= 0) {
        throw new NoLeaderError('No leader renewed the session in time', { cause: lastError })
      }
      if (target === '') {
        const step = await this.race(decided, waited(leader.waitChange(Math.min(remaining, RETRY_MS * 4))))
        if ('decided' in step) return step.decided
        if ('error' in step) throw step.error
        target = this.next(failed)
        continue
      }
      asked.add(target)
      const peer = target
      const sent: Promise<Step> = (
        peer === selfId
          ? this.init.local.serve(sessionId, selfId)
          : this.init.call(peer, sessionId, remaining)
      ).then(
        answer => {
          this.learnFrom(peer, answer)
          if (answer.status !== 'notLeader') decide(answer)
          return { answer }
        },
        error => ({ error }),
      )
      let step = await this.race(decided, sent, Math.min(silentMs, remaining))
      if ('silent' in step) {
        failed.add(peer)
        const other = this.next(failed)
        if (other !== '') {
          target = other
          continue
        }
        step = await this.race(decided, sent)
      }
      if ('decided' in step) return step.decided
      if ('error' in step) {
        const err = step.error
        if (err instanceof ClosedError || err instanceof UnauthorizedError) throw err
        if (remoteErrorName(err) === 'UnauthorizedError') throw err
        // A leader older than the lessor refuses the request: keep the session alive its way, by an entry.
        if (err instanceof InvalidArgumentError && peer === leader.leader) {
          return this.init.legacy(sessionId, deadline)
        }
        lastError = err
        failed.add(peer)
        const other = this.next(failed)
        // Another replica is asked at once; when every one failed, all are asked again after a pause.
        if (other !== '') {
          target = other
          continue
        }
        failed.clear()
        const paused = await this.pause(decided, remaining)
        if ('decided' in paused) return paused.decided
        target = this.next(failed)
        continue
      }
      if (!('answer' in step)) continue
      const answer = step.answer
      if (answer.status !== 'notLeader') return answer
      // A redirect to someone not yet asked is followed at once; otherwise pause, then ask whom this agent
      // sees leading (agents that point at each other during an election are not ping-ponged). One that
      // failed is asked again if a replica still sees it leading: one lost message must not leave the
      // keeper asking followers until its deadline.
      if (answer.leader !== '') failed.delete(answer.leader)
      if (answer.leader !== '' && !asked.has(answer.leader)) {
        target = answer.leader
        continue
      }
      const paused = await this.pause(decided, remaining)
      if ('decided' in paused) return paused.decided
      target = this.next(failed)
    }
  }

  /** A pause before asking again, ended early by a decisive answer; `ClosedError` if the agent closes. */
  private async pause(decided: Promise<Step>, remaining: number): Promise<Step> {
    const { closed, scheduler } = this.init
    const step = await this.race(decided, waited(sleep(Math.min(RETRY_MS, remaining), closed, scheduler)))
    if ('error' in step) throw step.error
    return step
  }

  /** Whom to ask next: the leader this agent knows unless it failed, else a replica that did not. */
  private next(failed: ReadonlySet<string>): string {
    const known = this.init.leader.leader
    if (known !== '' && !failed.has(known)) return known
    const others = (this.init.replicas?.() ?? []).filter(id => id !== this.init.selfId && !failed.has(id))
    if (others.length === 0) return failed.size > 0 ? '' : known
    this.rotation = (this.rotation + 1) % others.length
    return others[this.rotation] ?? ''
  }

  private learnFrom(peer: string, answer: KeepAliveAnswer): void {
    const learn = this.init.learn
    if (learn === undefined || answer.status === 'expired' || answer.term === undefined) return
    learn(answer.status === 'renewed' ? peer : answer.leader, answer.term)
  }

  /** The first of a decisive answer (from any peer asked), `work`, or `silentMs` passing. */
  private race(decided: Promise<Step>, work: Promise<Step>, silentMs?: number): Promise<Step> {
    const steps: Promise<Step>[] = [decided, work]
    let cancel = (): void => {}
    if (silentMs !== undefined) {
      steps.push(
        new Promise<Step>(resolve => {
          cancel = this.init.scheduler.after(silentMs, () => resolve({ silent: true }), { keepAlive: true })
        }),
      )
    }
    return Promise.race(steps).finally(cancel)
  }
}

/** A wait as a step: `waited` when it ends, its error (a close) otherwise. */
function waited(wait: Promise<void>): Promise<Step> {
  return wait.then(
    () => ({ waited: true }),
    error => ({ error }),
  )
}

function spread(text: string): number {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  return h >>> 0
}

/**
 * What an agent that holds no log makes of a replica naming who leads in `term`: a newer term replaces what
 * it knew; the same term only fills in a leader it did not know (one that has not heard of the leader yet
 * does not erase it).
 */
export function learnLeader(
  tracker: { readonly leader: string; readonly term: number; update(leader: string, term: number): void },
  leader: string,
  term: number,
): void {
  if (term > tracker.term || (term === tracker.term && leader !== '' && tracker.leader === '')) {
    tracker.update(leader, term)
  }
}
