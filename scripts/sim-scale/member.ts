/**
 * One member of a scale run: an agent that holds no Raft log, composed of the real member parts as
 * `src/agent/service.ts` composes them for a member: its state copy (`Replica`) fed by the real `Mirror`
 * long-polling a replica's real `ReplicaFeed` (`replica.entries` of the client protocol), a `RaftHost` that
 * is never started, the `Client` forwarding every command to the leader (`FORWARD_PROTOCOL`, served by the
 * leader's real `serveForward`), the `SessionKeeper` whose keep-alives go through the real
 * `KeepAliveClient` to the leader's `KeepAliveServer` and lessor. Its SWIM core lives in the run's
 * `SwimLayer`. Only the world is simulated: every RPC is a request trip and an answer trip over the run's
 * links (delay, loss, cuts), booked in the run's traffic with the bytes of its real encoding (JSON for the
 * admin and client protocols, the forwarded command's own bytes).
 *
 * A crash kills the process: its clock drops every timer, its pending calls never return; a restart builds
 * every part anew with a fresh session.
 */

import type { Logger } from '@libp2p/interface'
import { KeepAliveClient, learnLeader } from '../../src/agent/cluster/keep-alive.ts'
import type { KeepAliveAnswer } from '../../src/agent/cluster/keep-alive-answer.ts'
import { Client } from '../../src/agent/node/client.ts'
import { replicaClientContext } from '../../src/agent/node/client-context.ts'
import { LeaderTracker } from '../../src/agent/node/leader-tracker.ts'
import { Mirror } from '../../src/agent/node/mirror.ts'
import { FORWARD_PROTOCOL } from '../../src/agent/node/proposer.ts'
import { RaftHost } from '../../src/agent/node/raft-host.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import { SessionKeeper } from '../../src/agent/node/session.ts'
import type { ResolvedTiming } from '../../src/agent/options.ts'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import type { MemberStatus } from '../../src/swim/types.ts'
import { type SimAgent, SimRemoteError, SimRpcError } from '../sim/agent.ts'
import { AgentClock } from '../sim/agent-clock.ts'
import type { Network } from '../sim/network.ts'
import type { Prng } from '../sim/prng.ts'
import type { Scheduler } from '../sim/scheduler.ts'
import type { TrafficKind } from './traffic.ts'

const noop = (): void => {}
const silentLogger = Object.assign(noop, { error: noop, trace: noop, enabled: false }) as unknown as Logger
const encoder = new TextEncoder()
/** Bytes of an error answer on the wire (its name and message as JSON), roughly. */
const ERROR_BYTES = 96

/** An error the peer threw, as the RPC layer hands it back (`remoteErrorName` reads `remoteName`). */
export interface MemberEnv {
  scheduler: Scheduler
  network: Network
  timing: ResolvedTiming
  raftOptions: Partial<RaftCoreOptions>
  /** The replicas (voters and standbys) a member is told of at join. */
  replicas: readonly string[]
  replica(id: string): SimAgent | undefined
  /** `subject` in `observer`'s membership view. */
  status(observer: string, subject: string): MemberStatus | undefined
  book(agent: string, kind: TrafficKind, direction: 'in' | 'out', bytes: number, count?: number): void
  /** A session of this member's current incarnation expired in its applied state. */
  onOwnSessionExpired(member: ScaleMember, sessionId: string): void
  /** The broken variant of the test: keep-alives are never sent (the keeper believes them renewed). */
  skipKeepAlives: boolean
  trace(line: string): void
  /**
   * A call to replica `peer` is in flight: `broken` fails it if that replica's process dies first (its
   * connections reset, as a killed process's do). Returns the function that forgets it.
   */
  inFlight(peer: string, broken: () => void): () => void
}

interface Parts {
  replica: Replica
  tracker: LeaderTracker
  session: SessionKeeper
  mirror: Mirror
  client: Client
}

export class ScaleMember {
  readonly id: string
  private readonly env: MemberEnv
  private readonly clock: AgentClock
  private readonly prng: Prng
  private parts: Parts | undefined
  incarnation = 0
  /** Sessions opened, and keep-alives answered `renewed`, over the run. */
  readonly stats = { sessionsOpened: 0, keepAlivesRenewed: 0, keepAlivesFailed: 0 }

  constructor(id: string, env: MemberEnv, prng: Prng) {
    this.id = id
    this.env = env
    this.prng = prng
    this.clock = new AgentClock(env.scheduler)
  }

  get up(): boolean {
    return this.parts !== undefined
  }

  /** The session this incarnation holds ('' while none). */
  get sessionId(): string {
    return this.parts?.session.id ?? ''
  }

  /** Until when (monotonic ms) the member trusts its session. */
  get sessionValidUntil(): number {
    return this.parts?.session.validUntil() ?? 0
  }

  /** The agents this member's state copy has sessions of (its registry). */
  knownAgents(): string[] {
    return this.parts?.replica.state.sessions().map(session => session.agentId) ?? []
  }

  get appliedIndex(): number {
    return this.parts?.replica.state.appliedIndex ?? 0
  }

  /**
   * A put through the member's real client (forwarded to the leader under its session, as
   * `consensus.propose` sends it): the revision it committed at. Rejects as the client does (`NoLeaderError`
   * when the outcome is unknown), or at once while the member is down.
   */
  async put(key: string, value: number): Promise<number> {
    const parts = this.parts
    if (parts === undefined) throw new Error(`${this.id} is down`)
    const result = await parts.client.submit({ type: 'put', key, value })
    if (result.type === 'error') throw new Error(`${result.code}: ${result.message}`)
    if (!('revision' in result) || typeof result.revision !== 'number')
      throw new Error(`a put answered ${result.type}`)
    return result.revision
  }

  /** `key`'s value in this member's own copy, while it is up. */
  localValue(key: string): unknown {
    return this.parts?.replica.state.get(key)?.value
  }

  start(): void {
    if (this.parts !== undefined) return
    const { env } = this
    const id = this.id
    const clock = this.clock.view()
    const closed = new AbortController().signal
    const timing = env.timing
    const replica = new Replica()
    const tracker = new LeaderTracker(clock)
    // A member's runner is never started (it holds no log): the client sees no runner and goes through the
    // mirror for reads and forwards every command.
    const host = new RaftHost({
      selfId: id,
      replica,
      tracker,
      timing,
      raftOptions: env.raftOptions,
      random: () => 0,
      log: silentLogger,
      send: noop,
      onConfigChange: noop,
      admit: () => true,
      isMember: () => true,
      closed,
      scheduler: clock,
    })
    const mirror = new Mirror({
      selfId: id,
      replica,
      tracker,
      call: (peer, op, args, timeoutMs, signal) => this.callFeed(peer, op, args, timeoutMs, signal),
      status: replicaId => env.status(id, replicaId),
      // Standbys are fixed in this run: a member is never chosen.
      onChosen: noop,
      operationTimeoutMs: timing.operationTimeoutMs,
      scheduler: clock,
      closed,
      log: silentLogger,
    })
    const keepAlives = new KeepAliveClient({
      selfId: id,
      leader: tracker,
      call: (peer, sessionId, timeoutMs) => this.callKeepAlive(peer, sessionId, timeoutMs),
      local: { serve: async () => ({ status: 'notLeader', leader: '' }) },
      replicas: () => [...mirror.config.voters, ...mirror.config.nonVoters],
      learn: (leaderId, term) => learnLeader(tracker, leaderId, term),
      legacy: async () => {
        throw new Error('every simulated leader runs the lessor')
      },
      scheduler: clock,
      closed,
    })
    const session: SessionKeeper = new SessionKeeper(
      id,
      timing,
      {
        submitRaw: (command, deadline) => client.submitRaw(command, deadline),
        keepAlive: async (sessionId, deadline) => {
          if (env.skipKeepAlives) return { status: 'renewed' }
          const answer = await keepAlives.keepAlive(sessionId, deadline)
          if (answer.status === 'renewed') this.stats.keepAlivesRenewed++
          return answer
        },
      },
      silentLogger,
      clock,
      () => `${id}/${this.prng.nextUint32().toString(16).padStart(8, '0')}`,
    )
    const client: Client = new Client(
      replicaClientContext({
        selfId: id,
        tracker,
        host,
        replica,
        session,
        rpc: {
          callRpc: (peer, protocol, request, options) => this.callForward(peer, protocol, request, options),
        },
        authorization: { authorizeOwn: noop },
        admitCommand: noop,
        operationTimeoutMs: timing.operationTimeoutMs,
        scheduler: clock,
        closed,
        member: mirror,
      }),
    )
    replica.onEvent(event => {
      if ((event.type === 'sessionExpired' || event.type === 'sessionClosed') && event.agentId === id) {
        if (event.type === 'sessionExpired' && event.sessionId === session.id)
          env.onOwnSessionExpired(this, event.sessionId)
        session.ended(event.sessionId)
      }
    })
    this.parts = { replica, tracker, session, mirror, client }
    mirror.start(env.replicas)
    this.open(session, clock.now())
  }

  /** The process dies: every timer and pending call of this incarnation is dropped. */
  crash(): void {
    if (this.parts === undefined) return
    this.parts = undefined
    this.incarnation++
    this.clock.kill()
  }

  /** Opens the session (joining), again after a while if no leader committed it in time. */
  private open(session: SessionKeeper, now: number): void {
    const incarnation = this.incarnation
    session.open(now + 10_000).then(
      () => {
        if (this.incarnation === incarnation) this.stats.sessionsOpened++
      },
      () => {
        if (this.incarnation !== incarnation) return
        this.clock.after(1_000, () => this.open(session, this.clock.now()))
      },
    )
  }

  private callFeed(
    peer: string,
    op: string,
    args: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const request = encoder.encode(JSON.stringify({ op, args })).byteLength
    return this.overLink(
      peer,
      'feed',
      request,
      timeoutMs,
      signal,
      agent => agent.serveFeed(op, args),
      // The client protocol answers JSON; the copy also keeps the member from aliasing the replica's objects.
      answer => {
        const text = JSON.stringify(answer)
        return { bytes: encoder.encode(text).byteLength, value: JSON.parse(text) }
      },
    )
  }

  private callKeepAlive(peer: string, sessionId: string, timeoutMs: number): Promise<KeepAliveAnswer> {
    const request = encoder.encode(JSON.stringify({ op: 'keepAlive', sessionId })).byteLength
    return this.overLink(
      peer,
      'keepAlive',
      request,
      timeoutMs,
      undefined,
      agent => agent.serveKeepAlive(sessionId, this.id),
      answer => ({ bytes: encoder.encode(JSON.stringify({ keepAlive: answer })).byteLength, value: answer }),
    ).then(
      answer => {
        this.env.trace(`${this.id} keep-alive at ${peer}: ${answer.status}`)
        return answer
      },
      error => {
        this.stats.keepAlivesFailed++
        this.env.trace(
          `${this.id} keep-alive at ${peer} failed: ${(error as Error).name} ${(error as Error).message}`,
        )
        throw error
      },
    )
  }

  private callForward(
    peer: string,
    protocol: string,
    request: Uint8Array,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<Uint8Array> {
    if (protocol !== FORWARD_PROTOCOL) return Promise.reject(new Error(`no ${protocol} in the scale run`))
    const bytes = request.slice()
    return this.overLink(
      peer,
      'forward',
      bytes.byteLength,
      options.timeoutMs ?? this.env.timing.operationTimeoutMs,
      options.signal,
      (agent, broken) => agent.serveForward(this.id, bytes, broken),
      answer => ({ bytes: answer.byteLength, value: answer.slice() }),
    )
  }

  /**
   * An RPC to replica `peer`: the request's trip, `serve` there, the answer's trip, each booked at both ends;
   * a timeout, a lost trip (the connection breaks) or a dead peer fail it as the RPC layer would.
   */
  private overLink<T>(
    peer: string,
    kind: TrafficKind,
    requestBytes: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    serve: (agent: SimAgent, broken: () => void) => Promise<T>,
    encode: (answer: T) => { bytes: number; value: T },
  ): Promise<T> {
    const { env } = this
    const incarnation = this.incarnation
    const link = (from: string, to: string, arrive: () => void, lost: () => void): void =>
      env.network.carry(from, to, this.prng, arrive, lost)
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const settle = (fn: () => void): void => {
        if (settled || this.incarnation !== incarnation) return
        settled = true
        cancel()
        forget()
        signal?.removeEventListener('abort', onAbort)
        fn()
      }
      const cancel = this.clock.after(timeoutMs, () =>
        settle(() => reject(new SimRpcError('RpcTimeoutError', 'the call timed out'))),
      )
      // Removed once settled: the mirror passes one long-lived signal to all its calls.
      const onAbort = (): void => settle(() => reject(signal?.reason))
      signal?.addEventListener('abort', onAbort, { once: true })
      const broken = (): void =>
        settle(() => reject(new SimRpcError('RpcConnectionError', `the connection to ${peer} broke`)))
      const forget = env.inFlight(peer, broken)
      const back = (bytes: number, fn: () => void): void => {
        env.book(peer, kind, 'out', bytes)
        link(
          peer,
          this.id,
          () => {
            if (this.incarnation === incarnation) env.book(this.id, kind, 'in', bytes)
            settle(fn)
          },
          broken,
        )
      }
      env.book(this.id, kind, 'out', requestBytes)
      link(
        this.id,
        peer,
        () => {
          const agent = env.replica(peer)
          if (agent === undefined || !agent.up) {
            broken()
            return
          }
          env.book(peer, kind, 'in', requestBytes)
          serve(agent, broken).then(
            answer => {
              const { bytes, value } = encode(answer)
              back(bytes, () => resolve(value))
            },
            error => back(ERROR_BYTES, () => reject(new SimRemoteError(error))),
          )
        },
        broken,
      )
    })
  }
}
