/**
 * The security options of an agent, and their loading: PEM or JSON text given inline or as file paths,
 * parsed and checked once at construction, so a misconfigured agent fails at start with a reason rather
 * than being refused by every peer later.
 */

import type { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { InvalidArgumentError } from '../errors.ts'
import { systemScheduler } from '../time/system-scheduler.ts'
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
  /**
   * Re-read `svid` (and the bundles) every this many ms, and rotate to them when they changed: for SVIDs
   * renewed on disk (a SPIRE helper). Needs `svid.certificate` and `svid.key` as file paths. A renewed pair
   * that does not load or validate (a certificate written before its key) is skipped until it does.
   * Default: off (`agent.rotateSvid` rotates by hand).
   */
  reloadIntervalMs?: number
}

/** A renewed SVID, and optionally renewed bundles: what `agent.rotateSvid` takes. */
export interface SvidRotation {
  /** The new SVID (same SPIFFE ID): chain and key, each PEM text (or bytes) or a file path. */
  svid: { certificate: PemSource; key: PemSource }
  /** The own trust domain's new CA certificates. Default: the current ones. */
  trustBundle?: PemSource
  /** The federated trust domains' bundles, all of them. Default: the current ones. */
  federatedBundles?: Record<string, PemSource>
}

/** Loaded, checked security configuration. */
export interface ResolvedSecurity {
  svid: X509Svid
  bundles: TrustBundleSet
  policy: AuthorizationPolicy
  identityTimeoutMs: number
  closeUnauthenticated: boolean
  onRefusal: ((refusal: SecurityRefusal) => void) | undefined
  /** With `reloadIntervalMs`: where the SVID and bundles are re-read from. */
  reload: { intervalMs: number; sources: SvidRotation } | undefined
}

const SECURITY_KEYS = new Set([
  'svid',
  'trustBundle',
  'federatedBundles',
  'policy',
  'identityTimeoutMs',
  'closeUnauthenticated',
  'onRefusal',
  'reloadIntervalMs',
])

/**
 * Loads and checks `options`: undefined when SPIFFE identities are off. Throws `InvalidArgumentError`
 * (with the `SvidError` as cause for a bad certificate) for anything wrong, including an own SVID that
 * does not validate against its own bundle at `now`.
 */
export function resolveSecurity(
  options: SecurityOptions | undefined,
  now: number = systemScheduler.wallNow(),
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
  if (options.trustBundle === undefined) {
    throw new InvalidArgumentError('security.svid needs security.trustBundle')
  }
  const sources: SvidRotation = {
    svid: options.svid,
    trustBundle: options.trustBundle,
    federatedBundles: options.federatedBundles,
  }
  const { svid, bundles } = loadSvidMaterial(sources, undefined, now)
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
  const reloadIntervalMs = options.reloadIntervalMs
  let reload: ResolvedSecurity['reload']
  if (reloadIntervalMs !== undefined) {
    if (
      !(typeof reloadIntervalMs === 'number' && reloadIntervalMs >= 10 && reloadIntervalMs <= 2 ** 31 - 1)
    ) {
      throw new InvalidArgumentError('security.reloadIntervalMs must be a number of ms, at least 10')
    }
    if (!isPath(options.svid.certificate) || !isPath(options.svid.key)) {
      throw new InvalidArgumentError('security.reloadIntervalMs needs security.svid as file paths')
    }
    reload = { intervalMs: reloadIntervalMs, sources }
  }
  return { svid, bundles, policy, identityTimeoutMs: timeout, closeUnauthenticated, onRefusal, reload }
}

/**
 * Loads an SVID and its bundles and checks them together at `now`. With `current` (a rotation), the SVID
 * must keep the current SPIFFE ID, and bundles not given stay as they are. Throws `InvalidArgumentError`.
 */
export function loadSvidMaterial(
  sources: SvidRotation,
  current: { svid: X509Svid; bundles: TrustBundleSet } | undefined,
  now: number,
): { svid: X509Svid; bundles: TrustBundleSet } {
  if (
    sources === null ||
    typeof sources !== 'object' ||
    sources.svid === null ||
    typeof sources.svid !== 'object'
  ) {
    throw new InvalidArgumentError('svid must be { certificate, key }')
  }
  const svid = wrap('svid', () =>
    loadSvid(readSource(sources.svid.certificate), readSource(sources.svid.key)),
  )
  const ownDomain = svid.spiffeId.trustDomain
  if (current !== undefined && svid.spiffeId.id !== current.svid.spiffeId.id) {
    throw new InvalidArgumentError(
      `a rotated SVID must keep the SPIFFE ID ${current.svid.spiffeId.id}, not ${svid.spiffeId.id}`,
    )
  }
  const bundles = new Map<string, readonly X509Certificate[]>()
  if (sources.trustBundle !== undefined) {
    bundles.set(
      ownDomain,
      wrap('trustBundle', () => parseTrustBundle(readSource(sources.trustBundle!))),
    )
  } else if (current !== undefined) {
    bundles.set(ownDomain, current.bundles.get(ownDomain) ?? [])
  }
  if (sources.federatedBundles === undefined && current !== undefined) {
    for (const [trustDomain, bundle] of current.bundles)
      if (trustDomain !== ownDomain) bundles.set(trustDomain, bundle)
  }
  for (const [trustDomain, source] of Object.entries(sources.federatedBundles ?? {})) {
    if (!isTrustDomain(trustDomain))
      throw new InvalidArgumentError(`invalid trust domain name ${trustDomain}`)
    if (trustDomain === ownDomain) {
      throw new InvalidArgumentError(`federatedBundles repeats this agent's own trust domain ${trustDomain}`)
    }
    bundles.set(
      trustDomain,
      wrap(`federatedBundles.${trustDomain}`, () => parseTrustBundle(readSource(source))),
    )
  }
  wrap('svid', () => verifySvid(svid.chain, bundles, now))
  return { svid, bundles }
}

/** Whether `source` names a file (rather than holding the text inline). */
export function isPath(source: PemSource): boolean {
  return typeof source === 'string' && !isInline(source)
}

function isInline(source: string): boolean {
  return source.includes('-----BEGIN') || source.trimStart().startsWith('{')
}

/** Inline text (PEM or JSON) as it is; anything else is a path to read. */
function readSource(source: PemSource): string | Uint8Array {
  if (source instanceof Uint8Array) return source
  if (typeof source !== 'string') throw new InvalidArgumentError('expected PEM text, bytes or a file path')
  if (isInline(source)) return source
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
