/**
 * A tiny certificate authority for tests: builds X.509 v3 certificates in DER by hand and signs them with
 * node:crypto, so tests can make every kind of SVID (valid, expired, CA as leaf, two URI SANs, wrong trust
 * domain, odd extensions) in microseconds, with no tool and no checked-in secret. node:crypto parses and
 * verifies certificates but cannot issue them; the openssl CLI is not on a minimal Debian image (package
 * `openssl`, priority optional) and cannot back-date certificates before OpenSSL 3.4.
 */

import { generateKeyPairSync, type KeyObject, sign, X509Certificate } from 'node:crypto'

export type KeyType = 'ec' | 'ed25519'

export type KeyUsageName = 'digitalSignature' | 'keyEncipherment' | 'keyAgreement' | 'keyCertSign' | 'cRLSign'

const KEY_USAGE_BITS: Record<KeyUsageName, number> = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
}

export interface Issued {
  cert: X509Certificate
  pem: string
  key: KeyObject
  keyPem: string
  /** What `issue` was asked for, to issue children. */
  subject: string
  keyType: KeyType
}

export interface CertSpec {
  /** Common name of the subject. */
  subject: string
  /** Self-signed when absent. */
  issuer?: Issued
  keyType?: KeyType
  /** Default: one hour ago. */
  notBefore?: Date
  /** Default: in one day. */
  notAfter?: Date
  /** `undefined` omits the basic constraints extension. */
  ca?: boolean
  pathLength?: number
  /** `undefined` omits the key usage extension. */
  keyUsage?: KeyUsageName[]
  /** Default true. */
  keyUsageCritical?: boolean
  uris?: string[]
  dnsNames?: string[]
  /** Raw extra extensions: `value` is the DER inside the extension's OCTET STRING. */
  extensions?: { oid: string; critical: boolean; value: Uint8Array }[]
}

const HOUR = 3_600_000

/** Issues one certificate as `spec` says. */
export function issue(spec: CertSpec): Issued {
  const keyType = spec.keyType ?? 'ec'
  const { privateKey, publicKey } =
    keyType === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519')
  const signer = spec.issuer ?? { key: privateKey, subject: spec.subject, keyType }
  const algorithm = algorithmIdentifier(signer.keyType)
  const now = Date.now()
  const extensions: Uint8Array[] = []
  if (spec.ca !== undefined) {
    const fields: Uint8Array[] = []
    if (spec.ca) fields.push(boolean(true))
    if (spec.pathLength !== undefined) fields.push(integer(BigInt(spec.pathLength)))
    extensions.push(extension('2.5.29.19', true, sequence(...fields)))
  }
  if (spec.keyUsage !== undefined) {
    extensions.push(extension('2.5.29.15', spec.keyUsageCritical ?? true, keyUsageBits(spec.keyUsage)))
  }
  const names = [
    ...(spec.uris ?? []).map(uri => tlv(0x86, ascii(uri))),
    ...(spec.dnsNames ?? []).map(name => tlv(0x82, ascii(name))),
  ]
  if (names.length > 0) extensions.push(extension('2.5.29.17', false, sequence(...names)))
  for (const extra of spec.extensions ?? [])
    extensions.push(extension(extra.oid, extra.critical, extra.value))
  const tbs = sequence(
    tlv(0xa0, integer(2n)),
    integer(BigInt(`0x${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex')}`) | 1n),
    algorithm,
    name(signer.subject),
    sequence(time(spec.notBefore ?? new Date(now - HOUR)), time(spec.notAfter ?? new Date(now + 24 * HOUR))),
    name(spec.subject),
    new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    ...(extensions.length > 0 ? [tlv(0xa3, sequence(...extensions))] : []),
  )
  const signature = sign(signer.keyType === 'ec' ? 'sha256' : null, tbs, signer.key)
  const der = sequence(tbs, algorithm, bitString(new Uint8Array(signature)))
  const cert = new X509Certificate(der)
  return {
    cert,
    pem: cert.toString(),
    key: privateKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    subject: spec.subject,
    keyType,
  }
}

/** A self-signed SPIFFE root CA for `trustDomain`. */
export function rootCa(trustDomain: string, spec: Partial<CertSpec> = {}): Issued {
  return issue({
    subject: `${trustDomain} root CA`,
    ca: true,
    keyUsage: ['keyCertSign', 'cRLSign'],
    uris: [`spiffe://${trustDomain}`],
    ...spec,
  })
}

/** An intermediate signing CA under `issuer`. */
export function intermediateCa(issuer: Issued, trustDomain: string, spec: Partial<CertSpec> = {}): Issued {
  return issue({
    subject: `${trustDomain} intermediate CA ${crypto.randomUUID().slice(0, 8)}`,
    issuer,
    ca: true,
    keyUsage: ['keyCertSign', 'cRLSign'],
    uris: [`spiffe://${trustDomain}`],
    ...spec,
  })
}

/** A leaf X509-SVID for `spiffeId` under `issuer`, as SPIRE issues them. */
export function leafSvid(issuer: Issued, spiffeId: string, spec: Partial<CertSpec> = {}): Issued {
  return issue({
    subject: `svid ${spiffeId}`,
    issuer,
    ca: false,
    keyUsage: ['digitalSignature', 'keyEncipherment', 'keyAgreement'],
    uris: [spiffeId],
    ...spec,
  })
}

/** PEM of `leaf` followed by `intermediates`: an SVID certificate file. */
export function chainPem(leaf: Issued, ...intermediates: Issued[]): string {
  return [leaf, ...intermediates].map(item => item.pem).join('')
}

// ---------- DER encoding ----------

function algorithmIdentifier(keyType: KeyType): Uint8Array {
  // ecdsa-with-SHA256 and Ed25519 both take absent parameters.
  return sequence(oid(keyType === 'ec' ? '1.2.840.10045.4.3.2' : '1.3.101.112'))
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), tlv(0x04, value))
}

function keyUsageBits(usages: KeyUsageName[]): Uint8Array {
  const bits = usages.map(usage => KEY_USAGE_BITS[usage])
  if (bits.length === 0) return tlv(0x03, new Uint8Array([0]))
  const highest = Math.max(...bits)
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1)
  for (const bit of bits) bytes[bit >> 3] |= 0x80 >> (bit & 7)
  // DER: trailing zero bits are dropped and counted as unused.
  return tlv(0x03, new Uint8Array([7 - (highest % 8), ...bytes]))
}

function name(commonName: string): Uint8Array {
  return sequence(tlv(0x31, sequence(oid('2.5.4.3'), tlv(0x0c, new TextEncoder().encode(commonName)))))
}

function time(date: Date): Uint8Array {
  const iso = date.toISOString()
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '')
  const year = date.getUTCFullYear()
  if (year >= 1950 && year < 2050) return tlv(0x17, ascii(`${digits.slice(2)}Z`))
  return tlv(0x18, ascii(`${digits}Z`))
}

function sequence(...contents: Uint8Array[]): Uint8Array {
  return tlv(0x30, ...contents)
}

function boolean(value: boolean): Uint8Array {
  return tlv(0x01, new Uint8Array([value ? 0xff : 0]))
}

function integer(value: bigint): Uint8Array {
  let hex = value.toString(16)
  if (hex.length % 2 === 1) hex = `0${hex}`
  let bytes = Buffer.from(hex, 'hex')
  if (bytes[0] & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes])
  return tlv(0x02, new Uint8Array(bytes))
}

function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(0x03, new Uint8Array([0]), bytes)
}

function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number)
  const values = [arcs[0] * 40 + arcs[1], ...arcs.slice(2)]
  const out: number[] = []
  for (const value of values) {
    const chunk = [value & 0x7f]
    let rest = Math.floor(value / 128)
    while (rest > 0) {
      chunk.unshift((rest & 0x7f) | 0x80)
      rest = Math.floor(rest / 128)
    }
    out.push(...chunk)
  }
  return tlv(0x06, new Uint8Array(out))
}

function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const length = contents.reduce((sum, part) => sum + part.byteLength, 0)
  let header: number[]
  if (length < 0x80) {
    header = [tag, length]
  } else {
    const lengthBytes: number[] = []
    for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthBytes.unshift(rest & 0xff)
    header = [tag, 0x80 | lengthBytes.length, ...lengthBytes]
  }
  const out = new Uint8Array(header.length + length)
  out.set(header, 0)
  let offset = header.length
  for (const part of contents) {
    out.set(part, offset)
    offset += part.byteLength
  }
  return out
}
