/**
 * The ephemeral-key workload and its checker. Owners run inside agents (a service registering itself):
 * each puts fresh keys `eph/<agent>/<n>` with `ephemeral: true` through its own agent's consensus API,
 * bound to that agent's session. Readers `list` the prefix linearizably through any agent. The checker
 * samples every agent each tick (as its process would: not while it is paused): whether its session is
 * locally trusted (`SessionKeeper.validUntil`), and what its replicated state holds. Sessions end when an
 * agent crashes (its session is never kept alive again and the leader expires it) or when keep-alives fail
 * for a ttl (a partition, a pause).
 *
 * Checked, each a real violation when reported (every time is a bound in the safe direction):
 * - never deleted while the session lives: a read called after a put was answered does not see the key,
 *   yet the key's session was trusted by its agent at or after the read returned;
 * - deleted when the session ends: a read called after some replica applied the session's end still sees
 *   one of its keys; and in every replica's state, a key is present only while its session is;
 * - the end comes: a session whose agent crashed (or was shut down) is gone from the leader's state a ttl
 *   (and some slack) after the later of the crash and the leader's takeover (a new leader grants every
 *   session a full ttl). The run is driven on past its end (`drainUntil`) until that bound for each.
 */

import type { NodeId } from '../../src/raft/types.ts'
import { type ApiCall, type ApiClientEnv, isImpossibleAnswer, memberKvApi } from './api-client.ts'
import type { OpDetail } from './clients.ts'
import type { Cluster } from './cluster.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK, type Scheduler } from './scheduler.ts'

export const EPHEMERAL_PREFIX = 'eph/'
/** Past the ttl, what an expiry may take: the housekeeping interval, the entry's commit, drift. */
const EXPIRY_SLACK_MS = 50 * MS_PER_TICK

interface PutRecord {
  key: string
  session: string
  owner: NodeId
  /** Real ms the owner got the answer; undefined while open or when the outcome is unknown. */
  answeredAt?: number
}

interface ReadRecord {
  calledAt: number
  endedAt: number
  present: ReadonlySet<string>
  where: NodeId
}

/** A read of the prefix: the keys present. */
export interface EphemeralRead {
  keys: string[]
}

export class EphemeralChecker {
  readonly stats = {
    puts: 0,
    putsAnswered: 0,
    putsUnknown: 0,
    reads: 0,
    /** Reads that did not see an answered key (after its session ended, if the run is right). */
    absentSeen: 0,
    sessionsEnded: 0,
    /** Of those, sessions whose agent process still ran (an expiry under a partition or a pause). */
    endedWhileAlive: 0,
    /** Sessions of crashed or shut-down agents whose end the run waited for. */
    deadSessionsChecked: 0,
    stateChecks: 0,
  }
  private readonly scheduler: Scheduler
  private readonly cluster: Cluster
  private readonly sessionTtlMs: number
  private readonly puts = new Map<string, PutRecord>()
  private readonly keysBySession = new Map<string, string[]>()
  private readonly reads: ReadRecord[] = []
  /** Per session: the latest real ms its agent trusted it. */
  private readonly lastTrusted = new Map<string, number>()
  /** Per session: the first real ms a replica's state showed it ended (after showing it live). */
  private readonly endedAt = new Map<string, number>()
  /** `node#incarnation session` pairs whose state showed the session live. */
  private readonly liveSeen = new Set<string>()
  /** Per node: its incarnation as last sampled, and the sessions that incarnation held. */
  private readonly holders = new Map<NodeId, { incarnation: number; sessions: Set<string> }>()
  /** Per session of a crashed or shut-down incarnation: when it was found dead. */
  private readonly deadAt = new Map<string, number>()
  private leader: { id: NodeId; term: number; since: number } | undefined
  private stopped = false

  constructor(scheduler: Scheduler, cluster: Cluster, sessionTtlMs: number) {
    this.scheduler = scheduler
    this.cluster = cluster
    this.sessionTtlMs = sessionTtlMs
  }

  /** Samples every agent each tick from `delayMs` on, until `stop`. */
  start(delayMs: number): void {
    this.scheduler.after(delayMs, () => this.tick())
  }

  stop(): void {
    this.stopped = true
  }

  private tick(): void {
    if (this.stopped) return
    this.sample()
    this.scheduler.after(MS_PER_TICK, () => this.tick())
  }

  putCalled(key: string, session: string, owner: NodeId): void {
    this.stats.puts++
    this.puts.set(key, { key, session, owner })
    const keys = this.keysBySession.get(session)
    if (keys === undefined) this.keysBySession.set(session, [key])
    else keys.push(key)
  }

  putAnswered(key: string): void {
    this.stats.putsAnswered++
    this.puts.get(key)!.answeredAt = this.scheduler.now
  }

  putUnknown(): void {
    this.stats.putsUnknown++
  }

  /** A linearizable read of the prefix answered (`detail`: its call and answer times). */
  read(output: EphemeralRead, detail: OpDetail): void {
    this.stats.reads++
    this.reads.push({
      calledAt: detail.calledAt,
      endedAt: detail.endedAt,
      present: new Set(output.keys),
      where: detail.lastTarget,
    })
  }

  /** What every agent shows now: its session's trust, its state's sessions and keys. */
  sample(): void {
    const now = this.scheduler.now
    const leader = this.cluster.leader()
    if (leader !== undefined && (this.leader?.id !== leader.id || this.leader.term !== leader.term)) {
      this.leader = { id: leader.id, term: leader.term, since: now }
    }
    for (const node of this.cluster.nodes) {
      const held = this.holders.get(node.id)
      if (held !== undefined && (!node.up || held.incarnation !== node.incarnation)) {
        // That process is gone: its sessions are never kept alive again.
        for (const session of held.sessions) if (!this.deadAt.has(session)) this.deadAt.set(session, now)
        this.holders.delete(node.id)
      }
      if (!node.up || node.decommissioned) continue
      const incarnation = node.incarnation
      // As the agent's process would look: not during a pause (then when it ends), never after a crash.
      node.clock.run(node.clock.epoch, () => {
        if (!node.up || node.incarnation !== incarnation) return
        const { session, state } = node.kvApi()
        const sessionId = session.id
        if (sessionId !== '') {
          let record = this.holders.get(node.id)
          if (record === undefined) {
            record = { incarnation, sessions: new Set() }
            this.holders.set(node.id, record)
          }
          record.sessions.add(sessionId)
          if (node.clock.now() < session.validUntil()) this.lastTrusted.set(sessionId, this.scheduler.now)
        }
        this.stats.stateChecks++
        for (const [sessionId, keys] of this.keysBySession) {
          const pair = `${node.id}#${incarnation} ${sessionId}`
          const live = state.session(sessionId) !== undefined
          if (live) this.liveSeen.add(pair)
          else if (this.liveSeen.has(pair) && !this.endedAt.has(sessionId)) {
            this.endedAt.set(sessionId, this.scheduler.now)
            this.stats.sessionsEnded++
            const owner = this.puts.get(keys[0])!.owner
            if (!this.deadAt.has(sessionId) && this.holders.get(owner)?.sessions.has(sessionId))
              this.stats.endedWhileAlive++
          }
          if (live) continue
          for (const key of keys) {
            if (state.getEntry(key) !== undefined) {
              throw new Violation(
                'ephemeral-state',
                this.scheduler.now,
                `${node.id}'s state holds ${key} of session ${sessionId}, which it does not hold live`,
              )
            }
          }
        }
      })
    }
  }

  /** Checks every read against the sessions' trust and ends (at the end of the run). */
  checkReads(): void {
    for (const read of this.reads) {
      for (const put of this.puts.values()) {
        const present = read.present.has(put.key)
        if (!present && put.answeredAt !== undefined && put.answeredAt < read.calledAt) {
          this.stats.absentSeen++
          const trusted = this.lastTrusted.get(put.session)
          if (trusted !== undefined && trusted >= read.endedAt) {
            throw new Violation(
              'ephemeral-early-delete',
              this.scheduler.now,
              `a read at ${read.where} [t=${read.calledAt}, ${read.endedAt}] does not see ${put.key} (put answered at t=${put.answeredAt}), yet ${put.owner} trusted its session ${put.session} at t=${trusted}`,
            )
          }
        }
        const ended = this.endedAt.get(put.session)
        if (present && ended !== undefined && ended < read.calledAt) {
          throw new Violation(
            'ephemeral-late-delete',
            this.scheduler.now,
            `a read at ${read.where} [t=${read.calledAt}, ${read.endedAt}] sees ${put.key} of session ${put.session}, which a replica had ended at t=${ended}`,
          )
        }
      }
    }
  }

  /** Sessions of dead processes still live in the leader's state, and when each must be gone. */
  private overdue(): { session: string; deadline: number }[] {
    const leader = this.cluster.leader()
    if (leader === undefined || this.leader === undefined) return []
    const state = leader.kvApi().state
    const due: { session: string; deadline: number }[] = []
    for (const [session, deadAt] of this.deadAt) {
      if (state.session(session) === undefined) continue
      due.push({
        session,
        deadline: Math.max(deadAt, this.leader.since) + this.sessionTtlMs + EXPIRY_SLACK_MS,
      })
    }
    return due
  }

  /** How long the run must go on for every dead session's end to be due; undefined if none waits. */
  drainUntil(): number | undefined {
    const due = this.overdue()
    return due.length === 0 ? undefined : Math.max(...due.map(d => d.deadline))
  }

  /** At the very end: no dead session outlived its bound on the leader. */
  checkEnds(): void {
    const now = this.scheduler.now
    for (const { session, deadline } of this.overdue()) {
      if (deadline <= now) {
        throw new Violation(
          'ephemeral-liveness',
          now,
          `session ${session} of a dead agent process (dead at t=${this.deadAt.get(session)}) is still live on the leader at t=${now}, past its bound t=${deadline}`,
        )
      }
    }
    this.stats.deadSessionsChecked = this.deadAt.size
  }
}

/** Puts one owner has in flight at most. */
const OWNER_IN_FLIGHT = 3

/** A service inside agent `owner`: puts fresh ephemeral keys through that agent, a few at a time. */
export class EphemeralOwner {
  readonly owner: NodeId
  private readonly env: {
    scheduler: Scheduler
    prng: Prng
    cluster: Cluster
    checker: EphemeralChecker
    issuing(): boolean
    fail(error: Error): void
    trace(line: string): void
  }
  private count = 0
  private readonly maxPuts: number
  /** Puts in flight, and the incarnation of the agent they went to (those of a dead one are forgotten). */
  private pending = { incarnation: -1, count: 0 }

  constructor(owner: NodeId, env: EphemeralOwner['env'], maxPuts: number) {
    this.owner = owner
    this.env = env
    this.maxPuts = maxPuts
  }

  start(delayMs: number): void {
    this.env.scheduler.after(delayMs, () => this.step())
  }

  private step(): void {
    const env = this.env
    if (!env.issuing() || this.count >= this.maxPuts) return
    env.scheduler.after(env.prng.between(10, 60), () => this.step())
    const agent = env.cluster.node(this.owner)
    if (!agent.up || agent.decommissioned) return
    const incarnation = agent.incarnation
    if (this.pending.incarnation !== incarnation) this.pending = { incarnation, count: 0 }
    const pending = this.pending
    if (pending.count >= OWNER_IN_FLIGHT) return
    agent.clock.run(agent.clock.epoch, () => {
      let api: ReturnType<typeof memberKvApi>
      try {
        api = memberKvApi(agent)
      } catch {
        return
      }
      const session = api.session.id
      if (session === '') return
      const key = `${EPHEMERAL_PREFIX}${this.owner}/${++this.count}`
      env.checker.putCalled(key, session, this.owner)
      pending.count++
      env.trace(`ephemeral owner ${this.owner} puts ${key} on session ${session}`)
      // The consensus API binds the put to the session it reads synchronously here: `session`.
      api.consensus.propose(key, this.count, { ephemeral: true }).then(
        () => {
          pending.count--
          env.checker.putAnswered(key)
        },
        error => {
          pending.count--
          if (isImpossibleAnswer(error))
            env.fail(new Error(`ephemeral put ${key}: ${(error as Error).message}`))
          else env.checker.putUnknown()
        },
      )
    })
  }
}

/** A reader's calls: a linearizable `list` of the prefix. */
export class EphemeralReaderWorkload {
  next(): ApiCall<'list', EphemeralRead> {
    return {
      input: 'list',
      read: true,
      run: async agent => {
        const page = await memberKvApi(agent).consensus.list(EPHEMERAL_PREFIX, { limit: 10_000 })
        return { keys: page.entries.map(entry => entry.key) }
      },
    }
  }
}

export type EphemeralReaderEnv = ApiClientEnv<'list', EphemeralRead>
