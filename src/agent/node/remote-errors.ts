/**
 * The one place where an error a peer threw (an `RpcRemoteError` naming it) becomes a local one again: the
 * definite answers a caller acts on come back as the same typed errors a local call would throw; every
 * other remote error stays an `RpcRemoteError`, for the caller's retry logic to read its `remoteName`.
 */

import {
  type ConclaveError,
  InvalidArgumentError,
  UnauthorizedError,
  UnsupportedVersionError,
} from '../../errors.ts'
import type { RpcRemoteError } from '../../net/rpc.ts'

/** The remote errors that are definite answers, by name: the peer refused the request as it stands. */
const TYPED: Record<string, new (message: string, options?: ErrorOptions) => ConclaveError> = {
  InvalidArgumentError,
  UnauthorizedError,
  UnsupportedVersionError,
}

/** The name of the error the peer threw, if `err` is one a peer threw; else undefined. */
export function remoteErrorName(err: unknown): string | undefined {
  if ((err as Error | undefined)?.name !== 'RpcRemoteError') return undefined
  return (err as RpcRemoteError).remoteName
}

/** `err` as the local typed error it stands for (the remote one as its cause), or `err` itself. */
export function localError(err: unknown): unknown {
  const name = remoteErrorName(err)
  const Typed = name === undefined ? undefined : TYPED[name]
  return Typed === undefined ? err : new Typed((err as Error).message, { cause: err })
}
