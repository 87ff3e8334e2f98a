/** How the clients classify a failed operation: refused for certain, or of unknown outcome. */
import type { Outcome } from './history.ts'

/**
 * How a failed write ended. Refused for certain: a compare-and-set that found another revision, or an
 * argument the agent rejected. Everything else may still take effect, including a write refused because
 * the agent's session expired: the agent may have sent it twice, and the first copy may have applied.
 */
export function outcomeOf(err: unknown): Outcome {
  const { name, message } = (err ?? {}) as Error
  if (name === 'RevisionMismatchError') return 'fail'
  if (name === 'InvalidArgumentError' && !String(message).includes('SessionExpired')) return 'fail'
  return 'unknown'
}

/** `NoLeaderError`, `Timeout`, ... and `InvalidArgumentError(SessionExpired)` told apart. */
export function errorName(err: unknown): string {
  const { name, message } = (err ?? {}) as Error
  return name === 'InvalidArgumentError' && String(message).includes('SessionExpired')
    ? 'InvalidArgumentError(SessionExpired)'
    : String(name)
}
