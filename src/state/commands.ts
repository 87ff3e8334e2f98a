import type { JsonValue } from './json.ts'

/**
 * The commands of the replicated coordination state. Each normal Raft entry carries one `Envelope`
 * (see `codec.ts`); the state machine applies its command deterministically.
 */

/** Write `value` under `key`. With `expectedRevision`, only if the key's modRevision equals it (0 = absent). */
export interface PutCommand {
  type: 'put'
  key: string
  value: JsonValue
  expectedRevision?: number
}

/** Remove `key`. With `expectedRevision`, only if the key's modRevision equals it (0 = absent). */
export interface DeleteCommand {
  type: 'delete'
  key: string
  expectedRevision?: number
}

/** Open a session (lease) for `agentId`; idempotent for the same id and agent. */
export interface OpenSessionCommand {
  type: 'openSession'
  sessionId: string
  agentId: string
  ttlMs: number
}

/** Push the session's expiry to `time + ttlMs`. */
export interface KeepAliveCommand {
  type: 'keepAlive'
  sessionId: string
}

/** End the session on its owner's request: releases its locks and withdraws its candidacies. */
export interface CloseSessionCommand {
  type: 'closeSession'
  sessionId: string
}

/**
 * End the session on the leader's housekeeping. `ttl` applies only if the session's `expiresAt <= time`, so a
 * proposal that raced with a keepAlive does nothing; `dead` (membership declared the agent dead) always applies.
 */
export interface ExpireSessionCommand {
  type: 'expireSession'
  sessionId: string
  reason: 'ttl' | 'dead'
}

/** Take `key` for the session, or queue FIFO behind the holder if `wait`, else answer `Busy`. */
export interface LockAcquireCommand {
  type: 'lockAcquire'
  key: string
  sessionId: string
  /** Unique per acquire call of the session: a session may queue several requests for one key. */
  requestId: string
  ttlMs: number
  wait: boolean
}

/** Give up the lock; only the current holder's token is accepted. */
export interface LockReleaseCommand {
  type: 'lockRelease'
  key: string
  sessionId: string
  fencingToken: number
}

/** Push the held lock's expiry to `time + ttlMs`; `LockLost` if the token no longer holds. */
export interface LockExtendCommand {
  type: 'lockExtend'
  key: string
  sessionId: string
  fencingToken: number
  ttlMs: number
}

/**
 * Abandon an acquire, whatever became of it: a queued request leaves the queue, and a request that was
 * granted meanwhile releases the lock. Unknown requests are ignored.
 */
export interface LockCancelCommand {
  type: 'lockCancel'
  key: string
  sessionId: string
  requestId: string
}

/** The leader's housekeeping: applies only if `fencingToken` still holds and its `expiresAt <= time`. */
export interface LockExpireCommand {
  type: 'lockExpire'
  key: string
  fencingToken: number
}

/** Stand in the named election; candidates form a FIFO queue whose head leads. One candidacy per session. */
export interface CampaignCommand {
  type: 'campaign'
  name: string
  sessionId: string
  agentId: string
  requestId: string
}

/** Withdraw the session's candidacy (leading or queued); unknown candidacies are ignored. */
export interface ResignCommand {
  type: 'resign'
  name: string
  sessionId: string
}

export type Command =
  | PutCommand
  | DeleteCommand
  | OpenSessionCommand
  | KeepAliveCommand
  | CloseSessionCommand
  | ExpireSessionCommand
  | LockAcquireCommand
  | LockReleaseCommand
  | LockExtendCommand
  | LockCancelCommand
  | LockExpireCommand
  | CampaignCommand
  | ResignCommand

export type CommandType = Command['type']

/**
 * What one normal Raft entry carries. `ts` is the leader's wall clock in ms when it proposed the entry; it is
 * the only source of time inside the state machine. With `session` and `seq` the command is applied at most
 * once per (session, seq) (Raft dissertation section 6.3); `ackedBelow` tells that the client has received
 * the answers of all its seqs below it, so their stored results may be discarded.
 */
export interface Envelope {
  ts: number
  session?: string
  seq?: number
  ackedBelow?: number
  command: Command
}
