/**
 * Errors thrown by the Raft core's methods. They are internal to the core's contract: the shell maps them to
 * the public errors of `src/errors.ts` (a `NotLeaderError` becomes a forward to `leader`, or `NoLeaderError`).
 */

import type { NodeId } from './types.ts'

/** Base of every error the Raft core throws, with a stable `name` and `code`. */
export class RaftError extends Error {
  readonly code: string
  constructor(message: string, name: string, code: string) {
    super(message)
    this.name = name
    this.code = code
  }
}

/** The call needs leadership and this node is not the leader. */
export class NotLeaderError extends RaftError {
  static override readonly name = 'NotLeaderError'
  /** The leader this node knows of, or '' when none is known. */
  readonly leader: NodeId
  constructor(leader: NodeId) {
    super(
      leader === '' ? 'Not the leader; no leader known' : `Not the leader; leader is ${leader}`,
      'NotLeaderError',
      'ERR_NOT_LEADER',
    )
    this.leader = leader
  }
}

/** `ProposalDroppedError`'s message when the leader's `maxUncommittedBytes` is full (it frees as entries commit). */
export const UNCOMMITTED_BYTES_FULL = 'Too many uncommitted bytes on the leader'

/** The leader refused a proposal: a leadership transfer is under way, too much is uncommitted, or it was removed. */
export class ProposalDroppedError extends RaftError {
  static override readonly name = 'ProposalDroppedError'
  constructor(message = 'Proposal dropped') {
    super(message, 'ProposalDroppedError', 'ERR_PROPOSAL_DROPPED')
  }
}

/** A membership change that is invalid, or made while another one is still uncommitted. */
export class ConfigChangeError extends RaftError {
  static override readonly name = 'ConfigChangeError'
  constructor(message: string) {
    super(message, 'ConfigChangeError', 'ERR_CONFIG_CHANGE')
  }
}

/** A call with arguments the core cannot honour (compacting past `applied`, transferring to a non-voter). */
export class InvalidRequestError extends RaftError {
  static override readonly name = 'InvalidRequestError'
  constructor(message: string) {
    super(message, 'InvalidRequestError', 'ERR_INVALID_REQUEST')
  }
}
