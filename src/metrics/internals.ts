/**
 * What the metrics read of an agent: the dashboard's status surface (`AgentInternals`: Raft status, the
 * replicated state, state and member events), plus counters and hooks only metrics need. Every extra is
 * optional: a metric whose source an agent does not offer is simply not updated.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Agent, LeaderElection } from '../api.ts'
import { type AgentInternals, internalsOf } from '../http/source.ts'
import type { StorageObserver } from '../storage/timed-storage.ts'
import type { StateCounts } from './state-counts.ts'

/** One command this agent got into the log (or failed to), timed from its submission to its result. */
export interface ProposalRecord {
  /** The command's type (`put`, `lockAcquire`, `keepAlive`, `submitTask`...). */
  command: string
  seconds: number
  /** `ok`: applied; `refused`: committed, but the state machine refused it; `failed`: no result (timeout...). */
  outcome: ProposalOutcome
}

export type ProposalOutcome = 'ok' | 'refused' | 'failed'

/** The request/response protocols' counters (`Rpc.stats()`). */
export interface RpcCounters {
  callsStarted: number
  callsSucceeded: number
  callsFailed: number
  requestsServed: number
  resets: number
  rateLimited: number
}

/** The Raft transport's counters (`RaftTransport.stats()`). */
export interface RaftTransportCounters {
  sent: number
  received: number
  dropped: number
  resets: number
  throttled: number
  dialFailures: number
}

/** The SWIM membership's counters (`Membership.stats()`). */
export interface MembershipCounters {
  sent: number
  sendFailures: number
  published: number
  publishFallbacks: number
  received: number
  dropped: number
}

/**
 * The status surface metrics are built on. `ConclaveService` can provide it as `metricsInternals()`; until it
 * does, `metricsInternalsOf` assembles it from the dashboard's surface and the service's fields.
 */
export interface MetricsInternals extends AgentInternals {
  /** Calls `listener` at every leader change this agent learns of (leader '' = none); returns unsubscribe. */
  onLeaderChange?(listener: (leader: string, term: number) => void): () => void
  /** Calls `listener` for every command this agent proposes or forwards; returns unsubscribe. */
  onProposal?(listener: (record: ProposalRecord) => void): () => void
  /** Subscribes to the storage's timings (a `TimedStorage`); returns unsubscribe. */
  onStorage?(observer: StorageObserver): () => void
  rpcStats?(): RpcCounters
  raftTransportStats?(): RaftTransportCounters
  membershipStats?(): MembershipCounters
  /** Lifeguard's local health score (0 = healthy). */
  localHealth?(): number
  /**
   * The sizes of the replicated state, counted by the state machine. Without it they come from a parse of
   * the state's snapshot, which costs time in proportion to the state.
   */
  stateCounts?(): StateCounts
}

type Unsubscribe = () => void

interface CommandLike {
  type?: unknown
}

type Submit = (command: CommandLike, ...rest: unknown[]) => Promise<unknown>

/** The fields of today's `ConclaveService` read here beyond the dashboard's, each checked before use. */
interface ServiceFields {
  metricsInternals?: () => MetricsInternals
  election?: Pick<LeaderElection, 'watch'>
  rpc?: { stats?: () => RpcCounters }
  transport?: { stats?: () => RaftTransportCounters }
  membership?: { stats?: () => MembershipCounters; localHealth?: () => number }
  storage?: { observe?: (observer: StorageObserver) => Unsubscribe }
  client?: { submit?: Submit; submitRaw?: Submit }
}

const noop: Unsubscribe = () => {}

/** An agent made by `createAgent`, or a libp2p node running the `conclave()` service. */
export type MetricsTarget = Agent | Libp2p

/** The libp2p node of `target`, or undefined for something else. */
export function nodeOf(target: MetricsTarget): Libp2p | undefined {
  if (target === null || typeof target !== 'object') return undefined
  if ('services' in target) return target
  const node = (target as { libp2p?: unknown }).libp2p
  return node !== null && typeof node === 'object' && 'services' in node ? (node as Libp2p) : undefined
}

/**
 * The metrics surface of an agent made by `createAgent`, or of a node with `services.conclave`; undefined
 * for anything else. Prefers the service's own `metricsInternals()`.
 */
export function metricsInternalsOf(target: MetricsTarget): MetricsInternals | undefined {
  const node = nodeOf(target)
  const service = (node?.services as Record<string, unknown> | undefined)?.conclave as
    | ServiceFields
    | undefined
  if (node === undefined || service === undefined || service === null) return undefined
  if (typeof service.metricsInternals === 'function') return service.metricsInternals()
  const base = internalsOf({ libp2p: node } as Agent)
  if (base === undefined) return undefined
  const membership = service.membership
  return {
    raftStatus: () => base.raftStatus(),
    state: () => base.state(),
    onStateEvent: listener => base.onStateEvent(listener),
    onMemberEvent: listener => base.onMemberEvent(listener),
    get securityEnabled() {
      return base.securityEnabled
    },
    ...(typeof service.election?.watch === 'function'
      ? { onLeaderChange: listener => followLeader(service.election!, listener) }
      : {}),
    onProposal: listener => wrapClient(service, listener),
    onStorage: observer =>
      typeof service.storage?.observe === 'function' ? service.storage.observe(observer) : noop,
    ...(typeof service.rpc?.stats === 'function' ? { rpcStats: () => service.rpc!.stats!() } : {}),
    ...(typeof service.transport?.stats === 'function'
      ? { raftTransportStats: () => service.transport!.stats!() }
      : {}),
    ...(typeof membership?.stats === 'function' ? { membershipStats: () => membership.stats!() } : {}),
    ...(typeof membership?.localHealth === 'function'
      ? { localHealth: () => membership.localHealth!() }
      : {}),
  }
}

function followLeader(
  election: Pick<LeaderElection, 'watch'>,
  listener: (leader: string, term: number) => void,
): Unsubscribe {
  const stop = new AbortController()
  const follow = async (): Promise<void> => {
    for await (const event of election.watch({ signal: stop.signal })) {
      listener(event.type === 'resigned' ? '' : event.leaderId, event.term)
    }
  }
  follow().catch(() => {})
  return () => stop.abort()
}

/**
 * Times every command through the agent's `Client` (`submit`, `submitRaw`): the API's writes, the client
 * protocol's, session keep-alives and the leader's housekeeping all go through it. An interim wrapper on the
 * instance, removed on unsubscribe, until the service reports proposals itself (`metricsInternals()`).
 */
function wrapClient(service: ServiceFields, listener: (record: ProposalRecord) => void): Unsubscribe {
  const client = service.client
  if (client === undefined || typeof client.submit !== 'function' || typeof client.submitRaw !== 'function') {
    return noop
  }
  const originals = { submit: client.submit, submitRaw: client.submitRaw }
  const timed =
    (original: Submit): Submit =>
    async (command, ...rest) => {
      const started = performance.now()
      const record = (outcome: ProposalOutcome): void => {
        listener({
          command: typeof command?.type === 'string' ? command.type : 'unknown',
          seconds: (performance.now() - started) / 1000,
          outcome,
        })
      }
      try {
        const result = await original.call(client, command, ...rest)
        record(isErrorResult(result) ? 'refused' : 'ok')
        return result
      } catch (err) {
        record('failed')
        throw err
      }
    }
  client.submit = timed(originals.submit)
  client.submitRaw = timed(originals.submitRaw)
  return () => {
    client.submit = originals.submit
    client.submitRaw = originals.submitRaw
  }
}

/** A command the state machine refused (`{ type: 'error', code }`) still committed, but did not succeed. */
function isErrorResult(result: unknown): boolean {
  return typeof result === 'object' && result !== null && (result as { type?: unknown }).type === 'error'
}
