import { AbortError, ClosedError, InvalidArgumentError, NoLeaderError } from '../../errors.ts'
import { NotLeaderError, ProposalDroppedError } from '../../raft/errors.ts'
import type { NodeId } from '../../raft/types.ts'
import type { ShellBugs } from '../../shell-bugs.ts'
import {
  type Command,
  type CommandResult,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
} from '../../state/index.ts'
import type { Scheduler } from '../../time/index.ts'
import { withTimeout } from './abort.ts'
import { ProposalLostError, ProposalSkippedError } from './raft-runner.ts'
import { remoteErrorName } from './remote-errors.ts'

/** The forwarding protocol: a follower hands a command envelope to the leader, which proposes it. */
export const FORWARD_PROTOCOL = '/conclave/forward/1.0.0'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** What the proposer needs from the rest of the agent. */
export interface ProposerContext {
  readonly selfId: NodeId
  /** The leader this agent knows of, '' when none. */
  leader(): NodeId
  /**
   * Propose locally; only on the leader. Resolves with the state machine's result once applied here.
   * `waiter`: the command's identity across retries (`proposalKey`).
   */
  proposeLocal(data: Uint8Array, waiter?: string): Promise<unknown>
  /** Send an envelope to the leader's forwarding handler; resolves with its encoded result. */
  forward(leader: NodeId, request: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array>
  /**
   * The result of a numbered command once this agent applies its entry (`Replica.waitForResult`): a
   * forwarded command is answered by whichever comes first, this or the leader's reply.
   */
  appliedHere?(sessionId: string, seq: number): { result: Promise<CommandResult>; cancel(): void }
  /** Resolves at the next leader change or after `ms`, whichever is first. */
  leaderChange(ms: number, signal?: AbortSignal): Promise<void>
  /**
   * On the leader, before it proposes: throws `UnsupportedVersionError` for a command above the cluster
   * version (some replica could not apply it).
   */
  admitCommand?(command: Command): void
  /** Why this agent stopped applying its log, if it did (an entry above its version): every call fails with it. */
  halted?(): Error | undefined
  /**
   * Monotonic time for deadlines and the wall clock (`wallNow`) for the timestamps the leader puts on
   * envelopes: the only time the state machine sees.
   */
  readonly scheduler: Scheduler
  readonly closed: boolean
  /**
   * Test-only switches (`src/shell-bugs.ts`): `session-window` surfaces a retry the session no longer has
   * the answer of as `InvalidArgumentError` ("nothing was written"), as it once did.
   */
  readonly bugs?: ShellBugs
}

export interface ProposeOptions {
  signal?: AbortSignal
  /** Absolute deadline (ms, the scheduler's monotonic clock). */
  deadline: number
  /** Run at most once per session (retries are answered from the session's dedup table). */
  session?: { id: string; seq: number; ackedBelow: number }
  /** Filled in as the proposer tries: see `ProposalAttempts`. */
  attempts?: ProposalAttempts
}

/**
 * How many tries of a command may have put it in some log: every try but those a leader refused before
 * appending it (not the leader, flow control, rate limit) or whose slot another leader's entry took (lost).
 * When only the answered try did, and its answer is `SessionExpired`, the command never applied: no entry
 * of its (session, seq) found the session alive.
 */
export interface ProposalAttempts {
  uncertain: number
}

/**
 * Gets a command into the log and returns its result, from any agent: proposed locally on the leader,
 * forwarded over a direct stream otherwise. Retries across leader changes until the deadline; a command with
 * a session sequence number is deduplicated by the state machine, so a retry whose first try did commit is
 * answered with the first result instead of running twice. Past the deadline: `NoLeaderError`.
 */
export async function propose(
  context: ProposerContext,
  command: Command,
  options: ProposeOptions,
): Promise<CommandResult> {
  const envelope: Envelope = { ts: 0, command }
  if (options.session !== undefined) {
    envelope.session = options.session.id
    envelope.seq = options.session.seq
    envelope.ackedBelow = options.session.ackedBelow
  }
  const session = options.session
  const here = session === undefined ? undefined : context.appliedHere?.(session.id, session.seq)
  try {
    const result = await proposeUntilDone(context, envelope, options, here?.result)
    if (context.bugs?.has('session-window') && result.type === 'error' && result.code === 'StaleRequest') {
      throw new InvalidArgumentError(`${result.code}: ${result.message}`)
    }
    return result
  } finally {
    here?.cancel()
  }
}

async function proposeUntilDone(
  context: ProposerContext,
  envelope: Envelope,
  options: ProposeOptions,
  appliedHere: Promise<CommandResult> | undefined,
): Promise<CommandResult> {
  let lastError: unknown
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw new AbortError()
    if (context.closed) throw new ClosedError()
    const halted = context.halted?.()
    if (halted !== undefined) throw halted
    const remaining = options.deadline - context.scheduler.now()
    if (remaining <= 0)
      throw new NoLeaderError('No leader committed the operation in time', { cause: lastError })
    const leader = context.leader()
    try {
      if (leader === '') {
        await context.leaderChange(Math.min(remaining, 100), options.signal)
        continue
      }
      if (options.attempts !== undefined) options.attempts.uncertain++
      if (leader === context.selfId) {
        context.admitCommand?.(envelope.command)
        envelope.ts = context.scheduler.wallNow()
        return (await withTimeout(
          context.proposeLocal(encodeEnvelope(envelope), proposalKey(envelope)),
          remaining,
          () => new NoLeaderError('The operation did not commit in time; it may or may not take effect'),
          { signal: options.signal },
          context.scheduler,
        )) as CommandResult
      }
      const answered = context
        .forward(leader, encodeEnvelope(envelope), remaining, options.signal)
        .then(response => JSON.parse(decoder.decode(response)) as CommandResult)
      return await (appliedHere === undefined ? answered : Promise.race([answered, appliedHere]))
    } catch (err) {
      if (options.attempts !== undefined && leader !== '' && isRefusedOrLost(err))
        options.attempts.uncertain--
      if (err instanceof AbortError || err instanceof ClosedError) throw err
      if (isSkipped(err) && envelope.session === undefined) {
        // Without a session a retry could apply it twice: the outcome stays unknown.
        throw new NoLeaderError('The operation may or may not have taken effect', { cause: err })
      }
      if (!isRetryable(err)) throw err
      lastError = err
      // A leader that dropped the proposal for flow control (its uncommitted bytes at the cap) or during a
      // transfer is alive and commits within a round trip: try again at once, at the pace of a tick. The
      // growing back-off is for finding a leader; here it let a large command lose to every small one
      // proposed meanwhile, and wait up to 320 ms a try (simulator, seed 23 of the KV workloads: a
      // transaction of 300 bytes under a 400-byte cap, 93 ticks after the faults had stopped; and seed 1005 of
      // the election and lease workloads: a forwarded command dropped on each try for its whole 1.5 s).
      // Retrying this soon also keeps the command's place in the leader's line for the room (a refused
      // proposal waits there while it is retried within an election timeout: src/raft/uncommitted-budget.ts).
      // Otherwise give the cluster a moment to settle: an election, a transfer, a reconnect.
      const pause = isDropped(err) ? DROPPED_RETRY_MS : 20 * 2 ** Math.min(attempt, 4)
      await context.leaderChange(Math.min(remaining, pause), options.signal)
    }
  }
}

const RETRYABLE_REMOTE = new Set([
  'NotLeaderError',
  'ProposalDroppedError',
  'ProposalLostError',
  'NoLeaderError',
  'ClosedError',
  // The leader's disk failed and it stopped for good (fail-stop): as for a leader that closed, another leads.
  'StorageFailedError',
  // The leader's per-peer request rate (net/rpc.ts): the back-off below is the pause it asks for.
  'RateLimitedError',
  // Only with a session (see proposeUntilDone): the session answers the retry if it took effect.
  'ProposalSkippedError',
])

/** How soon a proposal the leader dropped (flow control, a transfer) is sent again. */
export const DROPPED_RETRY_MS = 10

/** The leader refused the proposal for now (`ProposalDroppedError`), here or where it was forwarded. */
function isDropped(err: unknown): boolean {
  return err instanceof ProposalDroppedError || remoteErrorName(err) === 'ProposalDroppedError'
}

/**
 * The try put the command in no log that can commit it: the leader refused it before appending (here or
 * where it was forwarded), or another leader's entry took its slot.
 */
function isRefusedOrLost(err: unknown): boolean {
  if (
    err instanceof NotLeaderError ||
    err instanceof ProposalDroppedError ||
    err instanceof ProposalLostError
  )
    return true
  const remoteName = remoteErrorName(err)
  return (
    remoteName === 'NotLeaderError' ||
    remoteName === 'ProposalDroppedError' ||
    remoteName === 'ProposalLostError' ||
    remoteName === 'RateLimitedError'
  )
}

/** A snapshot covered the proposal's slot, here or at the leader it was forwarded to: outcome unknown. */
function isSkipped(err: unknown): boolean {
  if (err instanceof ProposalSkippedError) return true
  return remoteErrorName(err) === 'ProposalSkippedError'
}

function isRetryable(err: unknown): boolean {
  if (
    err instanceof NotLeaderError ||
    err instanceof ProposalDroppedError ||
    err instanceof ProposalLostError ||
    err instanceof ProposalSkippedError
  ) {
    return true
  }
  const remoteName = remoteErrorName(err)
  // The remote agent's own condition (not leader any more, stopping, between runners): find the leader again.
  if (remoteName !== undefined) return RETRYABLE_REMOTE.has(remoteName)
  const name = (err as Error | undefined)?.name
  return name === 'RpcTimeoutError' || name === 'RpcConnectionError'
}

/**
 * A numbered command's identity, the same on every try (its timestamp and `ackedBelow` change between tries,
 * and with them its size): the Raft core keeps a refused proposal's place in line by it
 * (`src/raft/uncommitted-budget.ts`). Undefined for a command without a session: known by its size there.
 */
export function proposalKey(envelope: Envelope): string | undefined {
  return envelope.session === undefined || envelope.seq === undefined
    ? undefined
    : `${envelope.session}#${envelope.seq}`
}

/**
 * The leader's side of forwarding: validates the envelope (and, with `authorize`, its sender's right to
 * send it), stamps it with the leader's clock (the only time the state machine sees) and proposes it.
 * Throws `NotLeaderError` on a follower, which the caller takes as a cue to find the new leader.
 */
export async function serveForward(
  context: Pick<ProposerContext, 'proposeLocal' | 'scheduler' | 'leader' | 'selfId' | 'admitCommand'>,
  request: Uint8Array,
  authorize?: (envelope: Envelope) => Promise<void>,
): Promise<Uint8Array> {
  if (context.leader() !== context.selfId) throw new NotLeaderError(context.leader())
  const decoded = decodeEnvelope(request)
  if (!decoded.ok) throw new InvalidArgumentError(`Invalid forwarded command: ${decoded.error}`)
  if (authorize !== undefined) await authorize(decoded.envelope)
  context.admitCommand?.(decoded.envelope.command)
  decoded.envelope.ts = context.scheduler.wallNow()
  const result = await context.proposeLocal(encodeEnvelope(decoded.envelope), proposalKey(decoded.envelope))
  return encoder.encode(JSON.stringify(result))
}
