import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SvidError, type SvidRejection } from '../../src/security/errors.ts'
import {
  loadSvid,
  parsePemCertificates,
  parseTrustBundle,
  type TrustBundleSet,
  verifySvid,
} from '../../src/security/svid.ts'
import { chainPem, type Issued, intermediateCa, issue, leafSvid, rootCa } from './pki.ts'

const TD = 'example.org'
const root = rootCa(TD)
const intermediate = intermediateCa(root, TD)
const bundles: TrustBundleSet = new Map([[TD, parseTrustBundle(root.pem)]])
const now = Date.now()
const HOUR = 3_600_000
const DAY = 24 * HOUR

function rejection(run: () => unknown): SvidRejection {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(SvidError)
    return (err as SvidError).reason
  }
  throw new Error('expected a rejection')
}

function verify(leaf: Issued, ...intermediates: Issued[]) {
  return verifySvid([leaf.cert, ...intermediates.map(item => item.cert)], bundles, now)
}

describe('X509-SVID validation: admitted', () => {
  it('admits a leaf issued by the root', () => {
    const leaf = leafSvid(root, `spiffe://${TD}/agent/a`)
    const verified = verify(leaf)
    expect(verified.spiffeId).toEqual({ id: `spiffe://${TD}/agent/a`, trustDomain: TD, path: '/agent/a' })
    expect(verified.path.map(cert => cert.subject)).toEqual([leaf.cert.subject, root.cert.subject])
    expect(verified.expiresAt).toBe(
      Math.min(leaf.cert.validToDate.getTime(), root.cert.validToDate.getTime()),
    )
  })

  it('admits a leaf through intermediates given in any order, and Ed25519 keys', () => {
    const second = intermediateCa(intermediate, TD, { keyType: 'ed25519' })
    const leaf = leafSvid(second, `spiffe://${TD}/agent/b`, { keyType: 'ed25519' })
    expect(verify(leaf, intermediate, second).path).toHaveLength(4)
    expect(verify(leaf, second, intermediate).path).toHaveLength(4)
    // A chain that carries the root too (as some issuers send it) ends at the bundle's copy.
    expect(verify(leaf, second, intermediate, root).path).toHaveLength(4)
  })

  it('builds the same chain as OpenSSL accepts (an independent check of the test PKI)', () => {
    let openssl = true
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' })
    } catch {
      openssl = false
    }
    if (!openssl) return // the openssl CLI is optional on Debian; the rest of the suite does not need it
    const dir = mkdtempSync(join(tmpdir(), 'conclave-svid-'))
    try {
      const leaf = leafSvid(intermediate, `spiffe://${TD}/agent/c`)
      writeFileSync(join(dir, 'root.pem'), root.pem)
      writeFileSync(join(dir, 'intermediate.pem'), intermediate.pem)
      writeFileSync(join(dir, 'leaf.pem'), leaf.pem)
      const out = execFileSync(
        'openssl',
        ['verify', '-CAfile', 'root.pem', '-untrusted', 'intermediate.pem', 'leaf.pem'],
        { cwd: dir, encoding: 'utf8' },
      )
      expect(out.trim()).toBe('leaf.pem: OK')
      expect(verify(leaf, intermediate).spiffeId.id).toBe(`spiffe://${TD}/agent/c`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('X509-SVID validation: refused', () => {
  it('refuses an SVID of another trust domain (no bundle for it)', () => {
    const otherRoot = rootCa('other.org')
    const leaf = leafSvid(otherRoot, 'spiffe://other.org/agent/a')
    expect(rejection(() => verify(leaf))).toBe('trust-domain')
  })

  it("refuses an SVID claiming this trust domain but issued by another domain's CA", () => {
    const otherRoot = rootCa('other.org')
    const leaf = leafSvid(otherRoot, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(leaf))).toBe('untrusted')
  })

  it('refuses an expired SVID, and one not yet valid', () => {
    const expired = leafSvid(root, `spiffe://${TD}/agent/a`, {
      notBefore: new Date(now - 2 * DAY),
      notAfter: new Date(now - DAY),
    })
    expect(rejection(() => verify(expired))).toBe('expired')
    const early = leafSvid(root, `spiffe://${TD}/agent/a`, {
      notBefore: new Date(now + HOUR),
      notAfter: new Date(now + 2 * HOUR),
    })
    expect(rejection(() => verify(early))).toBe('not-yet-valid')
    // The same SVID is fine at a time inside its validity period.
    expect(verifySvid([early.cert], bundles, now + HOUR + 1000).spiffeId.path).toBe('/agent/a')
    expect(rejection(() => verifySvid([early.cert], bundles, now + 3 * HOUR))).toBe('expired')
  })

  it('refuses a chain whose intermediate or root has expired', () => {
    const oldIntermediate = intermediateCa(root, TD, { notAfter: new Date(now - 1000) })
    const leaf = leafSvid(oldIntermediate, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(leaf, oldIntermediate))).toBe('expired')
    const oldRoot = rootCa(TD, { notAfter: new Date(now - 1000) })
    const oldBundles = new Map([[TD, parseTrustBundle(oldRoot.pem)]])
    const child = leafSvid(oldRoot, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verifySvid([child.cert], oldBundles, now))).toBe('expired')
  })

  it('refuses a CA certificate used as a leaf', () => {
    const caLeaf = issue({
      subject: 'a CA posing as a leaf',
      issuer: root,
      ca: true,
      keyUsage: ['digitalSignature', 'keyCertSign'],
      uris: [`spiffe://${TD}/agent/a`],
    })
    expect(rejection(() => verify(caLeaf))).toBe('leaf-is-ca')
    // cA false but keyCertSign or cRLSign set is still a signing certificate.
    for (const usage of ['keyCertSign', 'cRLSign'] as const) {
      const signer = leafSvid(root, `spiffe://${TD}/agent/a`, { keyUsage: ['digitalSignature', usage] })
      expect(rejection(() => verify(signer))).toBe('leaf-is-ca')
    }
    // The root itself, presented as a leaf (its SPIFFE ID has no path, and it is a CA).
    expect(rejection(() => verifySvid([root.cert], bundles, now))).toBe('spiffe-id')
  })

  it('refuses an SVID with two URI SANs, or none', () => {
    const two = leafSvid(root, `spiffe://${TD}/agent/a`, {
      uris: [`spiffe://${TD}/agent/a`, `spiffe://${TD}/agent/admin`],
    })
    expect(rejection(() => verify(two))).toBe('uri-san-count')
    const none = leafSvid(root, `spiffe://${TD}/agent/a`, { uris: [], dnsNames: ['agent.example.org'] })
    expect(rejection(() => verify(none))).toBe('uri-san-count')
    // Other SAN types are allowed next to the one URI.
    const withDns = leafSvid(root, `spiffe://${TD}/agent/a`, { dnsNames: ['agent.example.org'] })
    expect(verify(withDns).spiffeId.path).toBe('/agent/a')
  })

  it('refuses a URI SAN that is not a valid SPIFFE ID with a path', () => {
    for (const uri of [
      `https://${TD}/agent/a`,
      `spiffe://${TD}`,
      `spiffe://${TD}/`,
      `spiffe://${TD}/agent?x=1`,
      `spiffe://user@${TD}/agent`,
      `spiffe://${TD}:8443/agent`,
      `spiffe://Example.org/agent`,
    ]) {
      const leaf = leafSvid(root, `spiffe://${TD}/agent/a`, { uris: [uri] })
      expect(
        rejection(() => verify(leaf)),
        uri,
      ).toBe('spiffe-id')
    }
  })

  it('refuses a leaf without a critical key usage with digitalSignature', () => {
    const missing = leafSvid(root, `spiffe://${TD}/agent/a`, { keyUsage: undefined })
    expect(rejection(() => verify(missing))).toBe('key-usage')
    const notCritical = leafSvid(root, `spiffe://${TD}/agent/a`, { keyUsageCritical: false })
    expect(rejection(() => verify(notCritical))).toBe('key-usage')
    const noSignature = leafSvid(root, `spiffe://${TD}/agent/a`, { keyUsage: ['keyEncipherment'] })
    expect(rejection(() => verify(noSignature))).toBe('key-usage')
  })

  it('refuses a chain through a certificate that is not a CA, or lacks keyCertSign', () => {
    const notCa = issue({
      subject: 'not a CA',
      issuer: root,
      ca: false,
      keyUsage: ['keyCertSign'],
    })
    const leaf1 = leafSvid(notCa, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(leaf1, notCa))).toBe('not-a-ca')
    const noCertSign = intermediateCa(root, TD, { keyUsage: ['digitalSignature'] })
    const leaf2 = leafSvid(noCertSign, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(leaf2, noCertSign))).toBe('key-usage')
    const withPath = intermediateCa(root, TD, { uris: [`spiffe://${TD}/ca`] })
    const leaf3 = leafSvid(withPath, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(leaf3, withPath))).toBe('spiffe-id')
  })

  it('enforces pathLenConstraint', () => {
    const strictRoot = rootCa(TD, { pathLength: 0 })
    const strictBundles = new Map([[TD, parseTrustBundle(strictRoot.pem)]])
    const direct = leafSvid(strictRoot, `spiffe://${TD}/agent/a`)
    expect(verifySvid([direct.cert], strictBundles, now).path).toHaveLength(2)
    const middle = intermediateCa(strictRoot, TD)
    const below = leafSvid(middle, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verifySvid([below.cert, middle.cert], strictBundles, now))).toBe('path-length')
    // A limit on an intermediate counts the intermediates below it.
    const first = intermediateCa(root, TD, { pathLength: 0 })
    const second = intermediateCa(first, TD)
    const deep = leafSvid(second, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(deep, first, second))).toBe('path-length')
  })

  it('refuses unknown critical extensions and name constraints, accepts unknown non-critical ones', () => {
    const value = new Uint8Array([0x05, 0x00])
    const critical = leafSvid(root, `spiffe://${TD}/agent/a`, {
      extensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value }],
    })
    expect(rejection(() => verify(critical))).toBe('unsupported-extension')
    const benign = leafSvid(root, `spiffe://${TD}/agent/a`, {
      extensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: false, value }],
    })
    expect(verify(benign).spiffeId.path).toBe('/agent/a')
    const constrained = intermediateCa(root, TD, {
      extensions: [{ oid: '2.5.29.30', critical: true, value: new Uint8Array([0x30, 0x00]) }],
    })
    const leaf = leafSvid(constrained, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verify(leaf, constrained))).toBe('unsupported-extension')
  })

  it('refuses a tampered certificate (the signature does not verify)', () => {
    const leaf = leafSvid(root, `spiffe://${TD}/agent/a`)
    const der = new Uint8Array(leaf.cert.raw)
    const raw = Buffer.from(der).toString('latin1')
    const at = raw.indexOf('/agent/a')
    der[at + 7] = 'b'.charCodeAt(0) // spiffe://example.org/agent/b, same signature
    expect(rejection(() => verifySvid([der], bundles, now))).toBe('untrusted')
  })

  it('refuses an empty or over-long chain', () => {
    expect(rejection(() => verifySvid([], bundles, now))).toBe('malformed')
    const leaf = leafSvid(root, `spiffe://${TD}/agent/a`)
    expect(rejection(() => verifySvid(Array(9).fill(leaf.cert), bundles, now))).toBe('malformed')
  })

  it('throws only SvidError on arbitrary or mutated input', () => {
    const leaf = leafSvid(intermediate, `spiffe://${TD}/agent/a`)
    const der = new Uint8Array(leaf.cert.raw)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), bytes => {
        expect(() => verifySvid([bytes], bundles, now)).toThrow(SvidError)
      }),
    )
    fc.assert(
      fc.property(fc.nat(der.byteLength - 1), fc.integer({ min: 1, max: 255 }), (index, delta) => {
        const mutated = der.slice()
        mutated[index] = (mutated[index] + delta) & 0xff
        try {
          verifySvid([mutated, intermediate.cert], bundles, now)
        } catch (err) {
          expect(err).toBeInstanceOf(SvidError)
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('loading an SVID and a trust bundle', () => {
  it('loads a PEM chain with its key, and refuses a key of another certificate', () => {
    const leaf = leafSvid(intermediate, `spiffe://${TD}/agent/a`)
    const svid = loadSvid(chainPem(leaf, intermediate), leaf.keyPem)
    expect(svid.spiffeId.id).toBe(`spiffe://${TD}/agent/a`)
    expect(svid.chain).toHaveLength(2)
    expect(verifySvid(svid.chain, bundles, now).path).toHaveLength(3)
    const other = leafSvid(intermediate, `spiffe://${TD}/agent/b`)
    expect(rejection(() => loadSvid(chainPem(leaf, intermediate), other.keyPem))).toBe('key-mismatch')
    expect(rejection(() => loadSvid('no certificate here', leaf.keyPem))).toBe('malformed')
    expect(rejection(() => loadSvid(leaf.pem, 'not a key'))).toBe('malformed')
  })

  it('reads a SPIFFE bundle in JWK form, ignoring entries that are not x509-svid', () => {
    const jwks = JSON.stringify({
      keys: [
        { use: 'jwt-svid', kty: 'EC' },
        { use: 'x509-svid', kty: 'EC', x5c: [Buffer.from(root.cert.raw).toString('base64')] },
        { use: 'x509-svid', kty: 'EC' },
      ],
    })
    const authorities = parseTrustBundle(jwks)
    expect(authorities.map(cert => cert.fingerprint256)).toEqual([root.cert.fingerprint256])
  })

  it('refuses a bundle holding a certificate that is not a CA', () => {
    const leaf = leafSvid(root, `spiffe://${TD}/agent/a`)
    expect(rejection(() => parseTrustBundle(leaf.pem + root.pem))).toBe('not-a-ca')
    expect(rejection(() => parseTrustBundle('{"keys": []}'))).toBe('malformed')
    expect(parsePemCertificates(root.pem + intermediate.pem)).toHaveLength(2)
  })
})
