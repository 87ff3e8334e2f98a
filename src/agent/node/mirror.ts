import type { Logger } from '@libp2p/interface'
import { NoLeaderError } from '../../errors.ts'
import type { Config } from '../../raft/types.ts'
import type { MemberStatus } from '../../swim/types.ts'
import { type Scheduler, sleep } from '../../time/index.ts'
import type { LeaderTracker } from './leader-tracker.ts'
import type { Replica } from './replica.ts'
import { decodeEntry, type FeedAnswer, type FeedSnapshotChunk } from './replica-feed.ts'

/**
 * How long one `replica.entries` long poll waits at the replica for a new entry. An idle member's only
 * feed cost is one poll per this long (it was 3 s: a round trip every 3 s per member, a third of an idle
 * member's messages). A replica that dies closes its connections and fails the poll at once; one that
 * hangs or is cut off is left when the view holds it dead (`DOWN_CHECK_MS`), not at the poll's end.
 */
export const FEED_POLL_MS = 15_000
/** How often a member checks, while its poll waits, that the view does not hold its replica dead. */
const DOWN_CHECK_MS = 1_000
/** How long after a failure a replica is not asked again while others may answer. */
const FAILED_FOR_MS = 3_000
/**
 * How long the copy may stay where it was once the leader answered a command of this member's that it had
 * not applied: a replica that feeds it answers the long poll the instant it applies an entry, so one that
 * lets this pass with nothing applied is cut off (a partition drops the poll's answer without a reset) and
 * is left for another, from the same index, rather than after the view declares it dead. (Found by the
 * member write checker of `sim:scale --member-writes`, seed 2: a member fed by the standby that a partition
 * cut off did not see its own writes for 3 s.)
 */
export const FEED_STALL_MS = 750

/** A client-protocol call to `peer` (`{ op, args }`), its answer parsed. */
export type FeedCall = (
  peer: string,
  op: string,
  args: Record<string, unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
) => Promise<unknown>

export interface MirrorInit {
  selfId: string
  /** This agent's copy of the state, fed here instead of by a Raft runner. */
  replica: Replica
  /** Learns who leads from the replicas' answers. */
  tracker: LeaderTracker
  call: FeedCall
  /** The membership view's status of a replica (dead ones are not asked). */
  status(id: string): MemberStatus | undefined
  /** A replica's configuration names this agent: the leader chose it as a standby. */
  onChosen(): void
  operationTimeoutMs: number
  scheduler: Scheduler
  closed: AbortSignal
  log: Logger
}

/**
 * How a member (an agent that holds no Raft log) keeps its copy of the state: it long-polls one replica
 * for the entries it applied, from its own applied index, and applies them in order. Losing that replica,
 * it resumes on another from the same index, so each committed entry is applied here once, in order,
 * whichever replica served it: the watches, lock grants and task assignments its API derives from them
 * see no gap and no duplicate. Nothing is written to disk.
 */
export class Mirror {
  private readonly init: MirrorInit
  private running?: AbortController
  /** The replicas as the last answer named them. */
  config: Config = { voters: [], nonVoters: [] }
  /** The replica feeding this member now ('' between replicas). */
  serving = ''
  private readonly failedAt = new Map<string, number>()
  /** The poll waiting now, to leave its replica early. */
  private poll?: AbortController
  private cancelStallCheck?: () => void

  constructor(init: MirrorInit) {
    this.init = init
  }

  /** Whether this agent is a member fed by a replica. */
  get active(): boolean {
    return this.running !== undefined
  }

  /** Starts feeding from the replicas named (the join answer's). */
  start(replicas: readonly string[]): void {
    if (this.running !== undefined) return
    this.config = { voters: [...replicas], nonVoters: [] }
    const running = new AbortController()
    this.running = running
    void this.loop(running.signal)
  }

  stop(): void {
    this.cancelStallCheck?.()
    this.cancelStallCheck = undefined
    this.running?.abort()
    this.running = undefined
    this.serving = ''
  }

  /**
   * The leader answered a command of this member's that this copy has not applied: unless the copy applies
   * something within `FEED_STALL_MS`, the replica feeding it is left for another (`FEED_STALL_MS`).
   */
  expect(): void {
    if (this.running === undefined || this.serving === '' || this.cancelStallCheck !== undefined) return
    const { replica, scheduler, log } = this.init
    const peer = this.serving
    const applied = replica.state.appliedIndex
    this.cancelStallCheck = scheduler.after(FEED_STALL_MS, () => {
      this.cancelStallCheck = undefined
      if (this.serving !== peer || replica.state.appliedIndex !== applied) return
      log(
        'member feed: replica %s sent nothing for %d ms after a write of ours committed: trying another',
        peer,
        FEED_STALL_MS,
      )
      this.poll?.abort()
    })
  }

  /**
   * A linearizable read point (the `readIndex` of a runner, for `Client.barrier`): a replica confirms the
   * leader's lead and answers the index it applied; resolves once this copy applied as far.
   */
  async readIndex(signal?: AbortSignal): Promise<void> {
    const peer = this.pick()
    if (peer === undefined) throw new NoLeaderError('No replica to read through')
    const { index } = (await this.init.call(
      peer,
      'replica.readIndex',
      {},
      this.init.operationTimeoutMs,
      signal,
    )) as { index: number }
    await this.init.replica.waitApplied(index, { signal, closed: this.init.closed })
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const { replica, scheduler, log } = this.init
    let backoff = 50
    while (!signal.aborted && !this.init.closed.aborted) {
      const peer = this.pick()
      if (peer === undefined) {
        await sleep(scheduler, 200, signal).catch(() => {})
        continue
      }
      this.serving = peer
      const poll = new AbortController()
      this.poll = poll
      const stopPoll = (): void => poll.abort()
      signal.addEventListener('abort', stopPoll, { once: true })
      const cancelCheck = scheduler.every(DOWN_CHECK_MS, () => {
        const status = this.init.status(peer)
        if (status === 'dead' || status === 'left') poll.abort()
      })
      // The replica polled led, and now another term or leader is known (a keep-alive or a forward learned it
      // elsewhere): it is lost or deposed, and a lost machine would hold the poll until the view declares it
      // dead. Another replica is asked, from the same index.
      const cancelLeaderWatch = this.init.tracker.onChange((_leader, previous) => {
        if (previous === peer) poll.abort()
      })
      try {
        const answer = (await this.init.call(
          peer,
          'replica.entries',
          { fromIndex: replica.state.appliedIndex + 1, waitMs: FEED_POLL_MS },
          FEED_POLL_MS + this.init.operationTimeoutMs,
          poll.signal,
        )) as FeedAnswer
        if (signal.aborted) return
        if (answer.snapshot) await this.install(peer, signal)
        else this.applyAll(answer)
        this.learn(answer)
        // A replica behind this copy, or that knows no leader, may be cut off: another is asked.
        if (
          answer.entries.length === 0 &&
          (answer.leader === '' || answer.applied < replica.state.appliedIndex)
        ) {
          this.failedAt.set(peer, scheduler.now())
          this.serving = ''
        }
        backoff = 50
      } catch (err) {
        if (signal.aborted) return
        log('member feed: replica %s failed, trying another: %e', peer, err)
        this.failedAt.set(peer, scheduler.now())
        this.serving = ''
        await sleep(scheduler, backoff, signal).catch(() => {})
        backoff = Math.min(backoff * 2, 1_000)
      } finally {
        cancelCheck()
        cancelLeaderWatch()
        signal.removeEventListener('abort', stopPoll)
      }
    }
  }

  private applyAll(answer: FeedAnswer): void {
    const { replica } = this.init
    for (const entry of answer.entries) {
      // Contiguous from our own index, or not at all (an answer to an older question).
      if (entry.index !== replica.state.appliedIndex + 1) {
        if (entry.index <= replica.state.appliedIndex) continue
        return
      }
      replica.apply(decodeEntry(entry))
    }
  }

  /** Who leads, what the replicas are, and whether this agent is now one of them. */
  private learn(answer: FeedAnswer): void {
    const { tracker, selfId } = this.init
    if (answer.term >= tracker.term) tracker.update(answer.leader, answer.term)
    this.config = answer.config
    if (answer.config.voters.includes(selfId) || answer.config.nonVoters.includes(selfId))
      this.init.onChosen()
  }

  /** The state at the replica's index, in chunks, replacing this copy (only if it is ahead of it). */
  private async install(peer: string, signal: AbortSignal): Promise<void> {
    const timeout = this.init.operationTimeoutMs
    const first = (await this.init.call(peer, 'replica.snapshot', {}, timeout, signal)) as FeedSnapshotChunk
    const bytes = new Uint8Array(first.totalBytes)
    let offset = 0
    let chunk = first
    for (;;) {
      const data = Buffer.from(chunk.chunk, 'base64')
      bytes.set(data, offset)
      offset += data.byteLength
      if (offset >= first.totalBytes || data.byteLength === 0) break
      chunk = (await this.init.call(
        peer,
        'replica.snapshot',
        { index: first.index, offset },
        timeout,
        signal,
      )) as FeedSnapshotChunk
    }
    if (signal.aborted || first.index <= this.init.replica.state.appliedIndex) return
    this.init.replica.restore({
      meta: { index: first.index, term: 0, config: this.config },
      data: bytes,
    })
    this.init.log('member feed: state installed from %s at index %d', peer, first.index)
  }

  /**
   * The replica to ask: the one serving now while it answers, else one the view does not hold dead and
   * that did not just fail, spread over the replicas by this agent's id: the standbys first, then the
   * voters, the leader last. The voters' acknowledgements and the leader's work are on every write's
   * commit path; the standbys are on none, so feeding members there keeps that path short.
   *
   * The one serving is left when it leads and another replica may answer: a member joins knowing only the
   * replicas the join answer named, and not who leads, so in a join storm the first members all began on
   * the founder (the only replica then, and the leader) and stayed there: at 50 agents the leader answered
   * the long polls of most members, every committed entry one answer and one new poll each, on top of its
   * work as leader and bootstrap member (bench:scale, 31 of 81 state installs served by the leader).
   */
  private pick(): string | undefined {
    const { selfId, scheduler, tracker } = this.init
    const now = scheduler.now()
    const all = [...this.config.voters, ...this.config.nonVoters].filter(id => id !== selfId).sort()
    const up = all.filter(id => {
      const status = this.init.status(id)
      return status !== 'dead' && status !== 'left'
    })
    const fresh = up.filter(id => now - (this.failedAt.get(id) ?? -Infinity) > FAILED_FOR_MS)
    const leaderServes = this.serving === tracker.leader && fresh.some(id => id !== tracker.leader)
    if (this.serving !== '' && fresh.includes(this.serving) && !leaderServes) return this.serving
    const pool = fresh.length > 0 ? fresh : up.length > 0 ? up : all
    const spared = pool.length > 1 ? pool.filter(id => id !== tracker.leader) : pool
    const standbys = spared.filter(id => this.config.nonVoters.includes(id))
    const chosen = standbys.length > 0 ? standbys : spared
    if (chosen.length === 0) return undefined
    return chosen[hash(selfId) % chosen.length]
  }
}

function hash(text: string): number {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  return h >>> 0
}
