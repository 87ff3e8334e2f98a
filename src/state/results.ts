/**
 * What applying one entry answers to the proposer. A plain, JSON-safe value: it is stored in the session's
 * dedup table and in snapshots, and returned again for a retried request.
 */
export type CommandResult =
  /** Applied; nothing more to say (session closed, lock released, resigned, no-op entry). */
  | { type: 'ok' }
  /** A conditional housekeeping command (expireSession 'ttl', lockExpire, close of an unknown session) found nothing to do. */
  | { type: 'unchanged' }
  /** A KV mutation; `revision` is the store's revision after it (unchanged for a delete of an absent key). */
  | { type: 'revision'; revision: number }
  /** openSession / keepAlive: the session lives until `expiresAt` unless kept alive. */
  | { type: 'session'; sessionId: string; expiresAt: number }
  /** lockAcquire granted at once (or was already granted to this request). */
  | { type: 'lockGranted'; fencingToken: number; expiresAt: number }
  /** lockAcquire queued: `position` 1 is next in line. A later grant arrives as a `lockGranted` event. */
  | { type: 'lockQueued'; position: number }
  | { type: 'lockExtended'; fencingToken: number; expiresAt: number }
  /** campaign made (or found) this session the election's leader. */
  | { type: 'elected'; term: number }
  /** campaign queued: `position` 1 leads next. A later win arrives as an `electionChanged` event. */
  | { type: 'candidate'; position: number }
  | { type: 'error'; code: ErrorCode; message: string }

export type ErrorCode =
  /** The entry is not a valid envelope; nothing changed but `appliedIndex`. */
  | 'InvalidCommand'
  /** The session named by the envelope or the command does not exist (never opened, expired or closed). */
  | 'SessionExpired'
  /** The key's modRevision is not the expected one. */
  | 'RevisionMismatch'
  /** lockAcquire without `wait` found the lock held. */
  | 'Busy'
  /** lockRelease with a token that is not the current holder's. */
  | 'NotHolder'
  /** lockExtend of a lock the token no longer holds, or whose lease ran out. */
  | 'LockLost'
  /** The request's seq is below what the session still remembers: its answer was already acknowledged. */
  | 'StaleRequest'
  /** The entry's index is not above `appliedIndex`: the shell replayed an entry; nothing changed. */
  | 'AlreadyApplied'

export type ErrorResult = Extract<CommandResult, { type: 'error' }>

export function errorResult(code: ErrorCode, message: string): ErrorResult {
  return { type: 'error', code, message }
}

// Shared immutable results: returned on hot paths without allocating.
export const OK: CommandResult = Object.freeze({ type: 'ok' })
export const UNCHANGED: CommandResult = Object.freeze({ type: 'unchanged' })
