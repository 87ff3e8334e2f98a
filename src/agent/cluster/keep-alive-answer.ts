/**
 * The leader's answer to a session keep-alive, as the admin protocol carries it (`keep-alive.ts` serves and
 * sends it). Apart from the server so that the protocol's types do not pull in the Raft runner.
 */

/** The leader's answer to a keep-alive. */
export type KeepAliveAnswer =
  /** Renewed from the keep-alive's arrival at the leader, for `ttlMs`; `term`: the leader's (absent from older agents). */
  | { status: 'renewed'; ttlMs: number; term?: number }
  /** The session does not exist (any more), or the leader is expiring it: open a new one. */
  | { status: 'expired' }
  /**
   * The answering agent does not lead (any more); `leader` is who it thinks does ('' if none), in `term`
   * (absent from older agents).
   */
  | { status: 'notLeader'; leader: string; term?: number }

/** The keep-alive answer in an admin response, checked for shape; undefined if it is not one. */
export function parseKeepAliveAnswer(value: unknown): KeepAliveAnswer | undefined {
  if (value === null || typeof value !== 'object') return undefined
  const answer = value as Record<string, unknown>
  const term =
    Number.isSafeInteger(answer.term) && (answer.term as number) >= 0 ? { term: answer.term as number } : {}
  switch (answer.status) {
    case 'renewed':
      return typeof answer.ttlMs === 'number' && answer.ttlMs > 0
        ? { status: 'renewed', ttlMs: answer.ttlMs, ...term }
        : undefined
    case 'expired':
      return { status: 'expired' }
    case 'notLeader':
      return typeof answer.leader === 'string'
        ? { status: 'notLeader', leader: answer.leader, ...term }
        : undefined
  }
  return undefined
}
