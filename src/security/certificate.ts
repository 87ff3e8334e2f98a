/**
 * The parts of an X.509 certificate that SPIFFE validation needs and node:crypto's `X509Certificate` does
 * not expose (it has `ca`, but not the key usage bits, the path length, the URI SANs as a list, or which
 * extensions are critical), read from the DER with a strict parser.
 */

import type { X509Certificate } from 'node:crypto'
import {
  children,
  DerError,
  DerReader,
  readBitString,
  readBoolean,
  readOid,
  readSmallUnsigned,
  TAG_BIT_STRING,
  TAG_BOOLEAN,
  TAG_INTEGER,
  TAG_OCTET_STRING,
  TAG_OID,
  TAG_SEQUENCE,
} from './der.ts'
import { SvidError } from './errors.ts'

export const OID_BASIC_CONSTRAINTS = '2.5.29.19'
export const OID_KEY_USAGE = '2.5.29.15'
export const OID_SUBJECT_ALT_NAME = '2.5.29.17'
export const OID_EXT_KEY_USAGE = '2.5.29.37'
export const OID_NAME_CONSTRAINTS = '2.5.29.30'
export const OID_SUBJECT_KEY_ID = '2.5.29.14'
export const OID_AUTHORITY_KEY_ID = '2.5.29.35'

/** Key usage bits (RFC 5280 4.2.1.3) that SPIFFE rules are about. */
export interface KeyUsage {
  digitalSignature: boolean
  keyEncipherment: boolean
  keyAgreement: boolean
  keyCertSign: boolean
  cRLSign: boolean
}

export interface CertificateExtensions {
  /** Basic constraints; absent means not a CA. */
  basicConstraints?: { ca: boolean; pathLength?: number }
  keyUsage?: { critical: boolean; usage: KeyUsage }
  /** URI names of the subject alternative names, in order. */
  uris: string[]
  /** OIDs of every extension, with criticality. */
  extensions: { oid: string; critical: boolean }[]
}

const CONTEXT_0_EXPLICIT = 0xa0
const CONTEXT_1_IMPLICIT = 0x81
const CONTEXT_2_IMPLICIT = 0x82
const CONTEXT_3_EXPLICIT = 0xa3
/** GeneralName `uniformResourceIdentifier`: [6] IMPLICIT IA5String. */
const SAN_URI = 0x86

/** Reads the extensions of `cert` from its DER; a malformed certificate is an `SvidError` (`malformed`). */
export function readExtensions(cert: X509Certificate): CertificateExtensions {
  try {
    return parseExtensions(new Uint8Array(cert.raw.buffer, cert.raw.byteOffset, cert.raw.byteLength))
  } catch (err) {
    if (err instanceof DerError) {
      throw new SvidError('malformed', `Malformed certificate: ${err.message}`, { cause: err })
    }
    throw err
  }
}

function parseExtensions(der: Uint8Array): CertificateExtensions {
  const top = new DerReader(der)
  const certificate = top.read(TAG_SEQUENCE)
  top.end()
  const tbs = children(children(certificate).read(TAG_SEQUENCE))
  tbs.readOptional(CONTEXT_0_EXPLICIT) // version
  tbs.read(TAG_INTEGER) // serial number
  tbs.read(TAG_SEQUENCE) // signature algorithm
  tbs.read(TAG_SEQUENCE) // issuer
  tbs.read(TAG_SEQUENCE) // validity
  tbs.read(TAG_SEQUENCE) // subject
  tbs.read(TAG_SEQUENCE) // subject public key info
  tbs.readOptional(CONTEXT_1_IMPLICIT) // issuer unique id
  tbs.readOptional(CONTEXT_2_IMPLICIT) // subject unique id
  const result: CertificateExtensions = { uris: [], extensions: [] }
  const wrapper = tbs.readOptional(CONTEXT_3_EXPLICIT)
  tbs.end()
  if (wrapper === undefined) return result
  const outer = children(wrapper)
  const list = children(outer.read(TAG_SEQUENCE))
  outer.end()
  const seen = new Set<string>()
  while (!list.done) {
    const extension = children(list.read(TAG_SEQUENCE))
    const oid = readOid(extension.read(TAG_OID))
    const criticalElement = extension.readOptional(TAG_BOOLEAN)
    const critical = criticalElement === undefined ? false : readBoolean(criticalElement)
    const value = extension.read(TAG_OCTET_STRING).content
    extension.end()
    // RFC 5280 4.2: a certificate must not include more than one instance of an extension.
    if (seen.has(oid)) throw new DerError(`Extension ${oid} appears twice`)
    seen.add(oid)
    result.extensions.push({ oid, critical })
    switch (oid) {
      case OID_BASIC_CONSTRAINTS:
        result.basicConstraints = parseBasicConstraints(value)
        break
      case OID_KEY_USAGE:
        result.keyUsage = { critical, usage: parseKeyUsage(value) }
        break
      case OID_SUBJECT_ALT_NAME:
        result.uris = parseUris(value)
        break
    }
  }
  return result
}

function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLength?: number } {
  const outer = new DerReader(value)
  const sequence = children(outer.read(TAG_SEQUENCE))
  outer.end()
  const caElement = sequence.readOptional(TAG_BOOLEAN)
  const ca = caElement === undefined ? false : readBoolean(caElement)
  const pathElement = sequence.readOptional(TAG_INTEGER)
  sequence.end()
  return pathElement === undefined ? { ca } : { ca, pathLength: readSmallUnsigned(pathElement) }
}

function parseKeyUsage(value: Uint8Array): KeyUsage {
  const outer = new DerReader(value)
  const bit = readBitString(outer.read(TAG_BIT_STRING))
  outer.end()
  return {
    digitalSignature: bit(0),
    keyEncipherment: bit(2),
    keyAgreement: bit(4),
    keyCertSign: bit(5),
    cRLSign: bit(6),
  }
}

function parseUris(value: Uint8Array): string[] {
  const outer = new DerReader(value)
  const names = children(outer.read(TAG_SEQUENCE))
  outer.end()
  const uris: string[] = []
  while (!names.done) {
    const name = names.read()
    if (name.tag !== SAN_URI) continue
    let uri = ''
    for (const byte of name.content) {
      if (byte > 0x7f) throw new DerError('URI SAN is not IA5 (ASCII)')
      uri += String.fromCharCode(byte)
    }
    uris.push(uri)
  }
  return uris
}
