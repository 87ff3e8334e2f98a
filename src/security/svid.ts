/**
 * X509-SVIDs: loading an agent's own (PEM certificate chain and private key) and validating a peer's
 * against the trust bundles, as the SPIFFE X509-SVID standard requires (RFC 5280 path validation plus the
 * SPIFFE leaf rules).
 *
 * node:crypto's `X509Certificate` checks a signature (`verify`) and issuer/subject linkage (`checkIssued`);
 * everything else is checked here, on extensions read from the DER (`certificate.ts`):
 * - leaf: exactly one URI SAN, a valid SPIFFE ID with a non-root path, in a trust domain that has a
 *   bundle; basic constraints cA false; key usage present, critical, with digitalSignature and without
 *   keyCertSign or cRLSign;
 * - every signing certificate on the path: cA true, keyCertSign, its pathLenConstraint respected, a URI
 *   SAN (if any) that is a SPIFFE ID with no path;
 * - every certificate (the trust anchor included): inside its validity period, no critical extension this
 *   validator does not process (name constraints included, which the standard allows validators to
 *   refuse), and each link signed by the next certificate's key.
 */

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto'
import {
  type CertificateExtensions,
  OID_AUTHORITY_KEY_ID,
  OID_BASIC_CONSTRAINTS,
  OID_EXT_KEY_USAGE,
  OID_KEY_USAGE,
  OID_NAME_CONSTRAINTS,
  OID_SUBJECT_ALT_NAME,
  OID_SUBJECT_KEY_ID,
  readExtensions,
} from './certificate.ts'
import { SvidError } from './errors.ts'
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts'

/** CA certificates trusted for each trust domain, by trust domain name. */
export type TrustBundleSet = ReadonlyMap<string, readonly X509Certificate[]>

/** An agent's own X509-SVID: its chain (leaf first) and the leaf's private key. */
export interface X509Svid {
  spiffeId: SpiffeId
  chain: X509Certificate[]
  privateKey: KeyObject
}

/** A chain that passed validation. */
export interface VerifiedSvid {
  spiffeId: SpiffeId
  /** The validated path: leaf, intermediates, then the trust anchor from the bundle. */
  path: X509Certificate[]
  /** The earliest `notAfter` on the path (ms since epoch): the identity holds until then. */
  expiresAt: number
}

/** Longest chain accepted from a peer (leaf included); real SVID chains have 1 to 3 certificates. */
export const MAX_CHAIN_LENGTH = 8

/** Extensions this validator processes; any other marked critical rejects the certificate. */
const PROCESSED_EXTENSIONS = new Set([
  OID_BASIC_CONSTRAINTS,
  OID_KEY_USAGE,
  OID_SUBJECT_ALT_NAME,
  OID_EXT_KEY_USAGE,
  OID_SUBJECT_KEY_ID,
  OID_AUTHORITY_KEY_ID,
])

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g
const utf8 = new TextDecoder()

/** Every certificate in PEM text (other PEM blocks are ignored); at least one, or `SvidError` (`malformed`). */
export function parsePemCertificates(pem: string | Uint8Array): X509Certificate[] {
  const text = typeof pem === 'string' ? pem : utf8.decode(pem)
  const blocks = text.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) throw new SvidError('malformed', 'No PEM certificate found')
  return blocks.map(block => parseCertificate(block))
}

/** One certificate from PEM or DER; `SvidError` (`malformed`) if it does not parse. */
export function parseCertificate(input: string | Uint8Array): X509Certificate {
  try {
    return new X509Certificate(typeof input === 'string' ? input : Buffer.from(input))
  } catch (err) {
    throw new SvidError('malformed', `Certificate does not parse: ${(err as Error).message}`, { cause: err })
  }
}

/** A private key from PEM (PKCS#8, SEC1 or PKCS#1); `SvidError` (`malformed`) if it does not parse. */
export function parsePrivateKey(pem: string | Uint8Array): KeyObject {
  try {
    return createPrivateKey(typeof pem === 'string' ? pem : Buffer.from(pem))
  } catch (err) {
    throw new SvidError('malformed', `Private key does not parse: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Builds this agent's SVID from PEM text: the chain (leaf first) and the leaf's key, which must match the
 * leaf (`key-mismatch`). The leaf must satisfy the SPIFFE leaf rules; its chain is validated against the
 * bundles by `verifySvid` when the caller has them.
 */
export function loadSvid(certificatePem: string | Uint8Array, keyPem: string | Uint8Array): X509Svid {
  const chain = parsePemCertificates(certificatePem)
  const privateKey = parsePrivateKey(keyPem)
  const leaf = chain[0]
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new SvidError('key-mismatch', 'The private key does not belong to the SVID leaf certificate')
  }
  const spiffeId = checkLeaf(readExtensions(leaf))
  return { spiffeId, chain, privateKey }
}

/**
 * Parses a trust bundle: PEM certificates, or a SPIFFE bundle (JWK set whose `x509-svid` entries carry the
 * CA certificate in `x5c[0]`). Every authority must be a CA certificate with keyCertSign.
 */
export function parseTrustBundle(input: string | Uint8Array): X509Certificate[] {
  const text = typeof input === 'string' ? input : utf8.decode(input)
  const authorities = text.trimStart().startsWith('{') ? parseJwkBundle(text) : parsePemCertificates(text)
  for (const authority of authorities) checkSigningCertificate(authority, readExtensions(authority))
  return authorities
}

function parseJwkBundle(text: string): X509Certificate[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new SvidError('malformed', 'Trust bundle is neither PEM nor JSON', { cause: err })
  }
  const keys = (parsed as { keys?: unknown }).keys
  if (!Array.isArray(keys)) throw new SvidError('malformed', 'SPIFFE bundle has no "keys" array')
  const authorities: X509Certificate[] = []
  for (const key of keys as { use?: unknown; x5c?: unknown }[]) {
    // SPIFFE bundle spec 6.2: entries other than x509-svid, or without x5c, are ignored; x5c[0] is the CA.
    if (key?.use !== 'x509-svid' || !Array.isArray(key.x5c) || typeof key.x5c[0] !== 'string') continue
    authorities.push(parseCertificate(Buffer.from(key.x5c[0], 'base64')))
  }
  if (authorities.length === 0) throw new SvidError('malformed', 'SPIFFE bundle has no x509-svid authority')
  return authorities
}

/**
 * Validates a peer's X509-SVID chain (leaf first, then any intermediates, in any order) at time `now` (ms
 * since epoch) and returns its SPIFFE ID. Throws `SvidError` with the reason of the refusal.
 */
export function verifySvid(
  chain: readonly (X509Certificate | Uint8Array)[],
  bundles: TrustBundleSet,
  now: number,
): VerifiedSvid {
  if (chain.length === 0) throw new SvidError('malformed', 'Empty certificate chain')
  if (chain.length > MAX_CHAIN_LENGTH) {
    throw new SvidError('malformed', `Chain of ${chain.length} certificates; at most ${MAX_CHAIN_LENGTH}`)
  }
  const certs = chain.map(cert => (cert instanceof X509Certificate ? cert : parseCertificate(cert)))
  const leaf = certs[0]
  const spiffeId = checkLeaf(readExtensions(leaf))
  const authorities = bundles.get(spiffeId.trustDomain)
  if (authorities === undefined || authorities.length === 0) {
    throw new SvidError('trust-domain', `No trust bundle for trust domain ${spiffeId.trustDomain}`)
  }
  checkValidity(leaf, now, 'leaf')
  // Duplicates would only multiply the paths to try.
  const intermediates = [...new Map(certs.slice(1).map(cert => [cert.fingerprint256, cert])).values()]
  const candidates = buildPaths(leaf, intermediates, authorities)
  if (candidates.length === 0) {
    throw new SvidError(
      'untrusted',
      `The chain of ${spiffeId.id} does not lead to an authority of trust domain ${spiffeId.trustDomain}`,
    )
  }
  let firstError: unknown
  for (const path of candidates) {
    try {
      checkPath(path, now)
      const expiresAt = Math.min(...path.map(cert => cert.validToDate.getTime()))
      return { spiffeId, path, expiresAt }
    } catch (err) {
      firstError ??= err
    }
  }
  throw firstError
}

/** The SPIFFE leaf rules; returns the leaf's SPIFFE ID. */
function checkLeaf(extensions: CertificateExtensions): SpiffeId {
  if (extensions.uris.length !== 1) {
    throw new SvidError(
      'uri-san-count',
      `An SVID has exactly one URI SAN; this one has ${extensions.uris.length}`,
    )
  }
  const spiffeId = parseSpiffeId(extensions.uris[0])
  if (spiffeId.path === '') {
    throw new SvidError('spiffe-id', `Leaf SPIFFE ID ${spiffeId.id} has no path (it names a trust domain)`)
  }
  if (extensions.basicConstraints?.ca === true) {
    throw new SvidError('leaf-is-ca', `The leaf certificate of ${spiffeId.id} is a CA certificate`)
  }
  const keyUsage = extensions.keyUsage
  if (keyUsage === undefined) throw new SvidError('key-usage', 'The leaf has no key usage extension')
  if (!keyUsage.critical) throw new SvidError('key-usage', 'The leaf key usage extension is not critical')
  if (!keyUsage.usage.digitalSignature) {
    throw new SvidError('key-usage', 'The leaf key usage lacks digitalSignature')
  }
  if (keyUsage.usage.keyCertSign || keyUsage.usage.cRLSign) {
    throw new SvidError('leaf-is-ca', 'The leaf key usage has keyCertSign or cRLSign (a signing certificate)')
  }
  checkCriticalExtensions(extensions, 'leaf')
  return spiffeId
}

/** The rules for a CA certificate on the path (intermediate or trust anchor). */
function checkSigningCertificate(cert: X509Certificate, extensions: CertificateExtensions): void {
  if (extensions.basicConstraints?.ca !== true) {
    throw new SvidError('not-a-ca', `${describe(cert)} signs certificates but is not a CA (cA false)`)
  }
  if (extensions.keyUsage?.usage.keyCertSign !== true) {
    throw new SvidError('key-usage', `${describe(cert)} signs certificates but lacks keyCertSign`)
  }
  for (const uri of extensions.uris) {
    if (parseSpiffeId(uri).path !== '') {
      throw new SvidError('spiffe-id', `Signing certificate SPIFFE ID ${uri} has a path`)
    }
  }
  checkCriticalExtensions(extensions, describe(cert))
}

function checkCriticalExtensions(extensions: CertificateExtensions, what: string): void {
  for (const { oid, critical } of extensions.extensions) {
    if (!critical || PROCESSED_EXTENSIONS.has(oid)) continue
    const name = oid === OID_NAME_CONSTRAINTS ? 'name constraints' : `extension ${oid}`
    throw new SvidError('unsupported-extension', `${what} has a critical ${name}, which is not supported`)
  }
}

function checkValidity(cert: X509Certificate, now: number, what: string): void {
  if (now < cert.validFromDate.getTime()) {
    throw new SvidError('not-yet-valid', `The ${what} certificate is not valid before ${cert.validFrom}`)
  }
  if (now > cert.validToDate.getTime()) {
    throw new SvidError('expired', `The ${what} certificate expired at ${cert.validTo}`)
  }
}

/**
 * Paths from `leaf` to an authority whose links verify (issuer name and signature), shortest first, at most
 * `MAX_PATHS`. Intermediates may come in any order; each is used at most once per path. Link checks are
 * memoized, so a hostile chain costs at most one signature check per pair of certificates.
 */
function buildPaths(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  authorities: readonly X509Certificate[],
): X509Certificate[][] {
  const paths: X509Certificate[][] = []
  const links = new Map<X509Certificate, Map<X509Certificate, boolean>>()
  const issuedBy = (child: X509Certificate, issuer: X509Certificate): boolean => {
    let row = links.get(child)
    if (row === undefined) {
      row = new Map()
      links.set(child, row)
    }
    let result = row.get(issuer)
    if (result === undefined) {
      result = verifiesLink(child, issuer)
      row.set(issuer, result)
    }
    return result
  }
  const extend = (path: X509Certificate[], used: Set<X509Certificate>): void => {
    const current = path[path.length - 1]
    for (const authority of authorities) {
      if (paths.length < MAX_PATHS && issuedBy(current, authority)) paths.push([...path, authority])
    }
    if (path.length >= MAX_CHAIN_LENGTH) return
    for (const candidate of intermediates) {
      if (paths.length >= MAX_PATHS) return
      if (used.has(candidate) || !issuedBy(current, candidate)) continue
      used.add(candidate)
      extend([...path, candidate], used)
      used.delete(candidate)
    }
  }
  extend([leaf], new Set())
  return paths.sort((a, b) => a.length - b.length)
}

const MAX_PATHS = 8

/**
 * Name chaining and the signature. OpenSSL's `checkIssued` also refuses an issuer without keyCertSign;
 * the subject comparison lets such a link through to `checkPath`, which refuses it with a precise reason.
 */
function verifiesLink(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return (child.checkIssued(issuer) || child.issuer === issuer.subject) && child.verify(issuer.publicKey)
  } catch {
    return false
  }
}

/** Validity, CA rules and path length of every certificate above the leaf (the leaf was checked first). */
function checkPath(path: X509Certificate[], now: number): void {
  for (let index = 1; index < path.length; index++) {
    const cert = path[index]
    const isAnchor = index === path.length - 1
    const extensions = readExtensions(cert)
    checkSigningCertificate(cert, extensions)
    checkValidity(cert, now, isAnchor ? 'trust anchor' : 'intermediate')
    // Non-leaf certificates between this CA and the leaf.
    const below = index - 1
    const limit = extensions.basicConstraints?.pathLength
    if (limit !== undefined && below > limit) {
      throw new SvidError(
        'path-length',
        `${describe(cert)} allows ${limit} intermediate(s) below it; the path has ${below}`,
      )
    }
  }
}

function describe(cert: X509Certificate): string {
  return `Certificate "${cert.subject.replaceAll('\n', ', ')}"`
}
