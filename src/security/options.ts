/**
 * The security options of an agent, and their loading: PEM or JSON text given inline or as file paths,
 * parsed and checked once at construction, so a misconfigured agent fails at start with a reason rather
 * than being refused by every peer later.
 */

import { readFileSync } from 'node:fs'
import { InvalidArgumentError } from '../errors.ts'
import { SvidError } from './errors.ts'
import { type Action, AuthorizationPolicy, type PolicyRule } from './policy.ts'
import { isTrustDomain } from './spiffe-id.ts'
import { loadSvid, parseTrustBundle, type TrustBundleSet, verifySvid, type X509Svid } from './svid.ts'

/** A peer (or this agent's own call) refused: for metrics or an audit log. */
export interface SecurityRefusal {
  /** The peer's id (this agent's own id for a local call it may not make). */
  peer: string
  /** The action refused; undefined when the peer's identity could not be established at all. */
  action: Action | undefined
  reason: string
}

/** Text given inline (PEM, or JSON for a SPIFFE bundle) or as the path of a file holding it. */
export type PemSource = string | Uint8Array

export interface SecurityOptions {
  /**
   * This agent's X509-SVID: `certificate` is the chain (leaf first, then intermediates), `key` the leaf's
   * private key, each PEM text (or bytes) or a file path. Without it, SPIFFE identities are off.
   */
  svid?: { certificate: PemSource; key: PemSource }
  /** CA certificates of this agent's own trust domain (PEM, or a SPIFFE bundle in JSON). Required with `svid`. */
  trustBundle?: PemSource
  /** Bundles of other trust domains whose agents are accepted too (federation), by trust domain name. */
  federatedBundles?: Record<string, PemSource>
  /** Who may do what. Default: every peer with a valid SVID may do everything. */
  policy?: PolicyRule[]
  /** Longest an identity exchange may take. Default 5 s. */
  identityTimeoutMs?: number
  /**
   * Close the connections of peers that fail the identity exchange, and of peers that connect without
   * starting one, so that no peer without a valid SVID stays connected (gossip included). Default true;
   * set false when the libp2p node also serves peers that are not conclave agents.
   */
  closeUnauthenticated?: boolean
  /**
   * Called with every refusal (a failed identity exchange, a request the policy does not allow), besides
   * the log line. Must not throw.
   */
  onRefusal?: (refusal: SecurityRefusal) => void
}

/** Loaded, checked security configuration. */
export interface ResolvedSecurity {
  svid: X509Svid
  bundles: TrustBundleSet
  policy: AuthorizationPolicy
  identityTimeoutMs: number
  closeUnauthenticated: boolean
  onRefusal: ((refusal: SecurityRefusal) => void) | undefined
}

const SECURITY_KEYS = new Set([
  'svid',
  'trustBundle',
  'federatedBundles',
  'policy',
  'identityTimeoutMs',
  'closeUnauthenticated',
  'onRefusal',
])

/**
 * Loads and checks `options`: undefined when SPIFFE identities are off. Throws `InvalidArgumentError`
 * (with the `SvidError` as cause for a bad certificate) for anything wrong, including an own SVID that
 * does not validate against its own bundle at `now`.
 */
export function resolveSecurity(
  options: SecurityOptions | undefined,
  now: number = Date.now(),
): ResolvedSecurity | undefined {
  if (options === undefined) return undefined
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('security must be an object')
  }
  for (const key of Object.keys(options)) {
    if (!SECURITY_KEYS.has(key)) throw new InvalidArgumentError(`unknown security option ${key}`)
  }
  if (options.svid === undefined) {
    if (options.trustBundle !== undefined || options.policy !== undefined) {
      throw new InvalidArgumentError('security.trustBundle and security.policy need security.svid')
    }
    return undefined
  }
  const svid = wrap('svid', () =>
    loadSvid(readSource(options.svid!.certificate), readSource(options.svid!.key)),
  )
  if (options.trustBundle === undefined)
    throw new InvalidArgumentError('security.svid needs security.trustBundle')
  const bundles = new Map<string, ReturnType<typeof parseTrustBundle>>()
  bundles.set(
    svid.spiffeId.trustDomain,
    wrap('trustBundle', () => parseTrustBundle(readSource(options.trustBundle!))),
  )
  for (const [trustDomain, source] of Object.entries(options.federatedBundles ?? {})) {
    if (!isTrustDomain(trustDomain))
      throw new InvalidArgumentError(`invalid trust domain name ${trustDomain}`)
    if (bundles.has(trustDomain)) {
      throw new InvalidArgumentError(`federatedBundles repeats this agent's own trust domain ${trustDomain}`)
    }
    bundles.set(
      trustDomain,
      wrap(`federatedBundles.${trustDomain}`, () => parseTrustBundle(readSource(source))),
    )
  }
  wrap('svid', () => verifySvid(svid.chain, bundles, now))
  const timeout = options.identityTimeoutMs ?? 5_000
  if (!(typeof timeout === 'number' && timeout > 0 && timeout <= 2 ** 31 - 1)) {
    throw new InvalidArgumentError('security.identityTimeoutMs must be a positive number of ms')
  }
  const policy =
    options.policy === undefined ? AuthorizationPolicy.allowAll() : new AuthorizationPolicy(options.policy)
  const closeUnauthenticated = options.closeUnauthenticated ?? true
  if (typeof closeUnauthenticated !== 'boolean') {
    throw new InvalidArgumentError('security.closeUnauthenticated must be a boolean')
  }
  const onRefusal = options.onRefusal
  if (onRefusal !== undefined && typeof onRefusal !== 'function') {
    throw new InvalidArgumentError('security.onRefusal must be a function')
  }
  return { svid, bundles, policy, identityTimeoutMs: timeout, closeUnauthenticated, onRefusal }
}

/** Inline text (PEM or JSON) as it is; anything else is a path to read. */
function readSource(source: PemSource): string | Uint8Array {
  if (source instanceof Uint8Array) return source
  if (typeof source !== 'string') throw new InvalidArgumentError('expected PEM text, bytes or a file path')
  if (source.includes('-----BEGIN') || source.trimStart().startsWith('{')) return source
  try {
    return readFileSync(source)
  } catch (cause) {
    throw new InvalidArgumentError(`could not read ${source}`, { cause })
  }
}

function wrap<T>(what: string, load: () => T): T {
  try {
    return load()
  } catch (err) {
    if (err instanceof SvidError) {
      throw new InvalidArgumentError(`security.${what}: ${err.message}`, { cause: err })
    }
    throw err
  }
}
