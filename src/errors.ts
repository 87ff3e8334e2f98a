/**
 * Every rejection from the public API is one of these: an `Error` subclass with a stable `name` and `code`,
 * in the libp2p style, so callers can branch on `err.name` across package copies.
 */

export class ConclaveError extends Error {
  readonly code: string
  constructor(message: string, name: string, code: string, options?: ErrorOptions) {
    super(message, options)
    this.name = name
    this.code = code
  }
}

/** A bad key, a ttl <= 0, an unknown option, a value that is not JSON: nothing was written. */
export class InvalidArgumentError extends ConclaveError {
  static override readonly name = 'InvalidArgumentError'
  constructor(message = 'Invalid argument', options?: ErrorOptions) {
    super(message, 'InvalidArgumentError', 'ERR_INVALID_ARGUMENT', options)
  }
}

export class NotFoundError extends ConclaveError {
  static override readonly name = 'NotFoundError'
  constructor(message = 'Not found', options?: ErrorOptions) {
    super(message, 'NotFoundError', 'ERR_NOT_FOUND', options)
  }
}

/** No quorum was reachable within the operation's deadline; the operation may or may not have taken effect. */
export class NoLeaderError extends ConclaveError {
  static override readonly name = 'NoLeaderError'
  constructor(message = 'No leader reachable', options?: ErrorOptions) {
    super(message, 'NoLeaderError', 'ERR_NO_LEADER', options)
  }
}

export class LockLostError extends ConclaveError {
  static override readonly name = 'LockLostError'
  constructor(message = 'Lock lost', options?: ErrorOptions) {
    super(message, 'LockLostError', 'ERR_LOCK_LOST', options)
  }
}

/** The task's constraints exclude this agent, or another agent already runs it. */
export class NotClaimableError extends ConclaveError {
  static override readonly name = 'NotClaimableError'
  constructor(message = 'Task not claimable', options?: ErrorOptions) {
    super(message, 'NotClaimableError', 'ERR_NOT_CLAIMABLE', options)
  }
}

/** complete/fail from an attempt that is no longer the task's current one. */
export class StaleAttemptError extends ConclaveError {
  static override readonly name = 'StaleAttemptError'
  constructor(message = 'Stale task attempt', options?: ErrorOptions) {
    super(message, 'StaleAttemptError', 'ERR_STALE_ATTEMPT', options)
  }
}

export class NotVoterError extends ConclaveError {
  static override readonly name = 'NotVoterError'
  constructor(message = 'Agent is not a voter', options?: ErrorOptions) {
    super(message, 'NotVoterError', 'ERR_NOT_VOTER', options)
  }
}

/** The caller's signal aborted the operation. */
export class AbortError extends ConclaveError {
  static override readonly name = 'AbortError'
  constructor(message = 'The operation was aborted', options?: ErrorOptions) {
    super(message, 'AbortError', 'ABORT_ERR', options)
  }
}

/** The agent was stopped. */
export class ClosedError extends ConclaveError {
  static override readonly name = 'ClosedError'
  constructor(message = 'Agent is stopped', options?: ErrorOptions) {
    super(message, 'ClosedError', 'ERR_CLOSED', options)
  }
}

/** A conditional write (`expectedRevision`) found another revision: nothing was written. */
export class RevisionMismatchError extends ConclaveError {
  static override readonly name = 'RevisionMismatchError'
  constructor(message = 'Revision mismatch', options?: ErrorOptions) {
    super(message, 'RevisionMismatchError', 'ERR_REVISION_MISMATCH', options)
  }
}

/**
 * A watch asked for, or fell behind to, revisions older than the retained history. Events up to
 * `compactedRevision` are gone; `resumeRevision` (when known) is the oldest still retained: watch again
 * `fromRevision: resumeRevision` for the rest, after reading the current state (`list`) for what was missed.
 */
export class CompactedError extends ConclaveError {
  static override readonly name = 'CompactedError'
  /** Highest revision no longer retained (undefined where there is no history, e.g. elections). */
  readonly compactedRevision?: number
  /** Where a new watch picks up: `compactedRevision + 1`. */
  readonly resumeRevision?: number
  constructor(message = 'Revision compacted', options?: ErrorOptions & { compactedRevision?: number }) {
    super(message, 'CompactedError', 'ERR_COMPACTED', options)
    if (options?.compactedRevision !== undefined) {
      this.compactedRevision = options.compactedRevision
      this.resumeRevision = options.compactedRevision + 1
    }
  }
}

/**
 * A per-agent limit was reached (open watches, waiting calls; see docs/limits.md): nothing was started.
 * Retry once some of them have ended.
 */
export class LimitExceededError extends ConclaveError {
  static override readonly name = 'LimitExceededError'
  constructor(message = 'Limit exceeded', options?: ErrorOptions) {
    super(message, 'LimitExceededError', 'ERR_LIMIT_EXCEEDED', options)
  }
}

/**
 * The SPIFFE authorization policy does not allow the call: this agent's own identity may not make it, or
 * the agent that received it refused the sender's. Nothing was done; sending it again changes nothing.
 */
export class UnauthorizedError extends ConclaveError {
  static override readonly name = 'UnauthorizedError'
  constructor(message = 'Not authorized', options?: ErrorOptions) {
    super(message, 'UnauthorizedError', 'ERR_UNAUTHORIZED', options)
  }
}

/** `proclaim` from an agent that does not lead the election: nothing was changed. */
export class NotLeaderError extends ConclaveError {
  static override readonly name = 'NotLeaderError'
  constructor(message = 'Not the leader', options?: ErrorOptions) {
    super(message, 'NotLeaderError', 'ERR_NOT_LEADER', options)
  }
}

/** A task was submitted with the id of an existing task whose contents differ: nothing was written. */
export class ConflictError extends ConclaveError {
  static override readonly name = 'ConflictError'
  constructor(message = 'Conflict', options?: ErrorOptions) {
    super(message, 'ConflictError', 'ERR_CONFLICT', options)
  }
}

/**
 * A version mismatch during a rolling upgrade. From a call: the command needs a newer command-set version
 * than the cluster runs (some replica is older; nothing was written; upgrade every agent first). From an
 * agent that stopped applying its log: an entry or snapshot needs a newer version than this agent
 * supports (upgrade this agent; it resumes where it stopped).
 */
export class UnsupportedVersionError extends ConclaveError {
  static override readonly name = 'UnsupportedVersionError'
  constructor(message = 'Unsupported version', options?: ErrorOptions) {
    super(message, 'UnsupportedVersionError', 'ERR_UNSUPPORTED_VERSION', options)
  }
}
