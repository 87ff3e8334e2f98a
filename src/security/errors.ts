/**
 * Errors of conclave's security layer. Each carries a machine-readable `reason`, so a refusal can be logged
 * and tested by cause rather than by message text.
 */

import { ConclaveError } from '../errors.ts'

// Defined with the other errors of the public API; the security layer is where it is thrown.
export { UnauthorizedError } from '../errors.ts'

/** Why an X509-SVID (or its chain, or a SPIFFE ID) was rejected. */
export type SvidRejection =
  | 'malformed'
  | 'spiffe-id'
  | 'uri-san-count'
  | 'trust-domain'
  | 'leaf-is-ca'
  | 'key-usage'
  | 'not-a-ca'
  | 'path-length'
  | 'expired'
  | 'not-yet-valid'
  | 'untrusted'
  | 'unsupported-extension'
  | 'key-mismatch'

/** An SVID, a chain, a trust bundle or a SPIFFE ID that does not satisfy the SPIFFE standard. */
export class SvidError extends ConclaveError {
  static override readonly name = 'SvidError'
  readonly reason: SvidRejection
  constructor(reason: SvidRejection, message: string, options?: ErrorOptions) {
    super(message, 'SvidError', 'ERR_SVID_INVALID', options)
    this.reason = reason
  }
}

/** Why the identity exchange with a peer failed. */
export type IdentityFailure =
  /** The peer's SVID chain was rejected; `cause` is the `SvidError`. */
  | 'svid'
  /** The signature does not prove the SVID key signed this peer id and our nonce (a replay or a forgery). */
  | 'proof'
  /** The peer broke the protocol: a malformed or unexpected message, or a closed stream. */
  | 'protocol'
  /** The peer refused our identity (its reason is in the message). */
  | 'refused'
  | 'timeout'
  /** The exchange could not start: no connection, or the peer does not speak the protocol. */
  | 'unreachable'

/** The identity exchange with a peer did not establish who it is. */
export class IdentityError extends ConclaveError {
  static override readonly name = 'IdentityError'
  readonly reason: IdentityFailure
  constructor(reason: IdentityFailure, message: string, options?: ErrorOptions) {
    super(message, 'IdentityError', 'ERR_IDENTITY', options)
    this.reason = reason
  }
}
