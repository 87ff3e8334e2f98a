/**
 * SPIFFE IDs (`spiffe://<trust-domain>/<path>`), checked as the SPIFFE ID standard and go-spiffe read it:
 * lowercase `spiffe` scheme; a trust domain of lowercase letters, digits, `.`, `-` and `_`, with no
 * userinfo or port; a path of segments of letters, digits, `.`, `-` and `_`, with no empty, `.` or `..`
 * segment and no trailing slash; no query, fragment or percent-encoding; at most 2048 bytes.
 */

import { SvidError } from './errors.ts'

/** A parsed, valid SPIFFE ID. */
export interface SpiffeId {
  /** The whole ID, as written. */
  id: string
  trustDomain: string
  /** '' for the trust domain's root ID, else starting with '/'. */
  path: string
}

const PREFIX = 'spiffe://'
const MAX_ID_BYTES = 2048
const MAX_TRUST_DOMAIN_BYTES = 255
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/

/** Parses `text` as a SPIFFE ID; throws `SvidError` with reason `spiffe-id` saying what is wrong. */
export function parseSpiffeId(text: string): SpiffeId {
  const fail = (why: string): never => {
    throw new SvidError('spiffe-id', `Invalid SPIFFE ID ${JSON.stringify(text.slice(0, 100))}: ${why}`)
  }
  if (typeof text !== 'string') fail('not a string')
  if (text.length > MAX_ID_BYTES) fail(`longer than ${MAX_ID_BYTES} bytes`)
  if (!text.startsWith(PREFIX)) fail('scheme must be spiffe://')
  const rest = text.slice(PREFIX.length)
  const slash = rest.indexOf('/')
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  if (trustDomain === '') fail('empty trust domain')
  if (trustDomain.length > MAX_TRUST_DOMAIN_BYTES) fail(`trust domain longer than ${MAX_TRUST_DOMAIN_BYTES}`)
  if (trustDomain.includes('@')) fail('userinfo is not allowed')
  if (trustDomain.includes(':')) fail('a port is not allowed')
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    fail('trust domain may hold only lowercase letters, digits, ".", "-" and "_"')
  }
  if (path !== '') checkPath(path, fail)
  return { id: text, trustDomain, path }
}

/** Whether `text` is a valid trust domain name (the host part of a SPIFFE ID). */
export function isTrustDomain(text: string): boolean {
  return (
    typeof text === 'string' &&
    text.length > 0 &&
    text.length <= MAX_TRUST_DOMAIN_BYTES &&
    TRUST_DOMAIN_CHARS.test(text)
  )
}

function checkPath(path: string, fail: (why: string) => never): void {
  if (path.includes('?')) fail('a query is not allowed')
  if (path.includes('#')) fail('a fragment is not allowed')
  if (path.includes('%')) fail('percent-encoding is not allowed')
  const segments = path.slice(1).split('/')
  for (const segment of segments) {
    if (segment === '') fail('empty path segment (double or trailing slash)')
    if (segment === '.' || segment === '..') fail('"." and ".." segments are not allowed')
    if (!SEGMENT_CHARS.test(segment)) fail('path segments may hold only letters, digits, ".", "-" and "_"')
  }
}
