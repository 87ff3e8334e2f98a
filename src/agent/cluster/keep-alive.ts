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
  leader: Pick<LeaderPort, 'leader'>
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
    if (since === undefined || runner === undefined)
      return { status: 'notLeader', leader: notSelf(leader.leader, selfId) }
    lessor.follow(since)
    const leadership = lessor.current
    const confirmed = await this.confirmAfter(runner)
    if (this.init.closed.aborted) throw new ClosedError()
    if (!confirmed) return { status: 'notLeader', leader: notSelf(leader.leader, selfId) }
    if (host.leaderSince !== since) return { status: 'notLeader', leader: notSelf(leader.leader, selfId) }
    const session = this.init.session(sessionId)
    if (session === undefined) return { status: 'expired' }
    // Only its own agent keeps a session alive.
    if (session.agentId !== from) {
      throw new UnauthorizedError(`${from} may not keep alive the session of agent ${session.agentId}`)
    }
    switch (lessor.renew(sessionId, arrivedAt, leadership)) {
      case 'renewed':
        return { status: 'renewed', ttlMs: session.ttlMs }
      case 'expiring':
        return { status: 'expired' }
      case 'stale':
        return { status: 'notLeader', leader: notSelf(leader.leader, selfId) }
    }
  }
}

function notSelf(leader: string, selfId: string): string {
  return leader === selfId ? '' : leader
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
  scheduler: Scheduler
  closed: AbortSignal
}

/** The pause between two attempts while no leader answers. */
const RETRY_MS = 50

/**
 * The keeper's side: keeps asking the leader (following its redirects and the leader changes this agent
 * sees) until one answers `renewed` or `expired`, or `deadline` (monotonic ms) passes: then `NoLeaderError`.
 */
export class KeepAliveClient {
  private readonly init: KeepAliveClientInit

  constructor(init: KeepAliveClientInit) {
    this.init = init
  }

  async keepAlive(
    sessionId: string,
    deadline: number,
  ): Promise<Exclude<KeepAliveAnswer, { status: 'notLeader' }>> {
    const { selfId, leader, scheduler, closed } = this.init
    let target = leader.leader
    let lastError: unknown
    const asked = new Set<string>()
    for (;;) {
      if (closed.aborted) throw new ClosedError()
      const remaining = deadline - scheduler.now()
      if (remaining <= 0) {
        throw new NoLeaderError('No leader renewed the session in time', { cause: lastError })
      }
      if (target === '') {
        await leader.waitChange(Math.min(remaining, RETRY_MS * 4))
        target = leader.leader
        continue
      }
      asked.add(target)
      let answer: KeepAliveAnswer
      try {
        answer =
          target === selfId
            ? await this.init.local.serve(sessionId, selfId)
            : await this.init.call(target, sessionId, remaining)
      } catch (err) {
        if (err instanceof ClosedError || err instanceof UnauthorizedError) throw err
        if (remoteErrorName(err) === 'UnauthorizedError') throw err
        // A leader older than the lessor refuses the request: keep the session alive its way, by an entry.
        if (err instanceof InvalidArgumentError && target === leader.leader) {
          return this.init.legacy(sessionId, deadline)
        }
        lastError = err
        await sleep(Math.min(RETRY_MS, remaining), closed, scheduler)
        target = leader.leader
        continue
      }
      if (answer.status !== 'notLeader') return answer
      // A redirect to someone not yet asked is followed at once; otherwise pause, then ask whom this agent
      // sees leading (agents that point at each other during an election are not ping-ponged).
      if (answer.leader !== '' && !asked.has(answer.leader)) {
        target = answer.leader
        continue
      }
      await sleep(Math.min(RETRY_MS, remaining), closed, scheduler)
      target = leader.leader
    }
  }
}
